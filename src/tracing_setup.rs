//! Logging and trace export, set up once per process: a log layer (text or JSON lines on stderr)
//! and, when the standard OpenTelemetry variables ask for it, span export over OTLP/HTTP.
//!
//! Export is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set; `OTEL_SERVICE_NAME` names the service (default `aura`). The pipeline's spans
//! (decode, validate, enrich, assess, route, saga transition, commit) are only created when
//! something reads them: an exporter, or JSON logs, whose lines carry `trace_id` and `span_id`.
//! With neither, [`spans_enabled`] is false and the hot path pays one atomic load per stage.

pub mod context;
mod json_log;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// The target of every pipeline span, so one filter directive enables them all.
pub const SPAN_TARGET: &str = "aura::span";

static SPANS: AtomicBool = AtomicBool::new(false);

/// Whether the pipeline's spans are read by anything (exporter or JSON logs).
#[inline]
pub fn spans_enabled() -> bool {
    SPANS.load(Ordering::Relaxed)
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` of the current span.
    Json,
}

/// Keeps the span exporter alive; dropping it flushes the spans still queued.
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: trace export did not flush: {e}");
            }
        }
    }
}

/// Where spans go, from the standard environment variables; `None` when export is off.
pub fn otlp_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok())
    .find(|v| !v.trim().is_empty())
}

/// Installs the global subscriber. `default_filter` applies unless `AURA_LOG` is set.
/// Call once, before the tokio runtime starts (the exporter's HTTP client blocks on its own
/// thread). A bad exporter setting is reported and export stays off: logs still work.
pub fn init(default_filter: &str, format: LogFormat) -> TracingGuard {
    let filter =
        EnvFilter::try_from_env("AURA_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let provider = otlp_endpoint().and_then(|endpoint| match exporting_provider() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("warning: OTLP trace export to {endpoint} is off: {e}");
            None
        }
    });
    // JSON logs need span ids even without an exporter: a provider with no exporter makes them.
    let provider_for_ids = provider
        .clone()
        .or_else(|| (format == LogFormat::Json).then(|| SdkTracerProvider::builder().build()));
    let filter = if provider_for_ids.is_some() {
        SPANS.store(true, Ordering::Relaxed);
        filter.add_directive(
            format!("{SPAN_TARGET}=info")
                .parse()
                .expect("a valid directive"),
        )
    } else {
        filter
    };
    let otel = provider_for_ids.map(|p| {
        let tracer = p.tracer("aura");
        opentelemetry::global::set_tracer_provider(p);
        tracing_opentelemetry::layer().with_tracer(tracer)
    });
    let log = match format {
        LogFormat::Text => {
            use std::io::IsTerminal;
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .boxed()
        }
        LogFormat::Json => json_log::JsonLog::default().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(log)
        .init();
    TracingGuard { provider }
}

/// The exporter reads the endpoint variables itself (appending `/v1/traces` to the base one,
/// as the specification says).
fn exporting_provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "aura".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
