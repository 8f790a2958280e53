//! Aura Orchestrator: turns TDA anomaly events on Kafka into agent commands, exactly once.
//!
//! # Layout
//! The modules follow the data's way through the service.
//! - [`config`]: the TOML configuration and its validation (fatal errors name file, field, value).
//! - [`auth`]: signed commands and authenticated agent answers (HMAC per agent type, rotation).
//! - [`model`]: one Rust type per Avro record in `schemas/` (the field-name contract).
//! - [`codec`]: Confluent wire format over a schema registry, or the embedded catalog.
//! - [`processor`]: the processor trait, the anomaly chain (validate, enrich, score, route)
//!   and the saga processor with its changelogged store; synchronous and free of I/O.
//! - [`control_plane`]: the agent registry and feature flags, live: table listeners that keep
//!   routing current, and the heartbeat sweep.
//! - [`table`]: keyed tables loaded from compacted topics (`tda.context`).
//! - [`dead_letter`]: why a record was rejected, one constructor per stage.
//! - [`runtime`]: record handling shared by both runtimes, the Kafka runtime (exactly-once
//!   or at-least-once, sub-topologies, store restore), the embedded in-memory log, and
//!   read-only queries of partition tasks' state (Kafka's partitioner finds the owner).
//! - [`saga`]: durable sagas: workflow definitions (`topologies/workflows/`), the saga state
//!   machine (retries, timeouts, compensation, escalation) and its timer index; pure, driven
//!   by the runtime.
//! - [`semantic`]: the semantic engine: TDA features, diagram distances, pattern matching that
//!   learns, urgency, complexity and cached capability routing.
//! - [`sim`]: simulated agents and a virtual-time saga run (the demo's agents).
//! - [`security`]: secrets that never reach a log, Kafka TLS/SASL settings for every client,
//!   the schema registry's CA and credentials.
//! - [`telemetry`]: every metric, named in one place.
//! - [`tracing_setup`]: logs (text or JSON) and OTLP span export, set up once per process.
//! - [`lag`]: a consumer group's lag as the broker sees it (`aura lag`), without joining it.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` and `/sagas/{id}`.
//! - [`generator`]: synthetic, realistic anomalies (and malformed ones) for `produce` and `demo`.
//! - [`topology`]: every input and output topic declared once: what it carries, its schema,
//!   how it is read; decoding, encoding, topic creation and `aura topology graph` follow it.
//! - [`app`]: assembles codec, tables, processors and runtime from the configuration.
//! - [`cli`]: the `aura` command line.
//! - [`clock`]: wall-clock milliseconds.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod config;
pub mod control_plane;
pub mod dead_letter;
pub mod generator;
pub mod http;
pub mod lag;
pub mod model;
pub mod processor;
pub mod runtime;
pub mod saga;
pub mod security;
pub mod semantic;
pub mod sim;
pub mod table;
pub mod telemetry;
pub mod topology;
pub mod tracing_setup;
