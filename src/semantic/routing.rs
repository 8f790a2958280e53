//! Capability routing: workflow, agent types, coordination and layer for a matched anomaly, checked
//! against the live agent registry and cached in moka.
//!
//! Coordination rules, first match wins: consensus when urgency is high and confidence low; hierarchical
//! when complexity is high; fan-out when several entities are affected; otherwise the pattern's default
//! (pipeline for every shipped pattern). Unknown anomalies go to an Analyst for triage.
//!
//! # Layer policy
//! The layer is the higher of the pattern's own layer and the band of the anomaly's **base urgency**
//! (severity and detector score, weighted by `[semantic.urgency.weights]`, before amplification and
//! decay): STRATEGIC from `strategic_urgency` (0.9), TACTICAL from `tactical_urgency` (0.6), and at least
//! TACTICAL when coordination is hierarchical. Base urgency, not the amplified and decayed one, because
//! the layer says who owns the incident and that must not change with the source's running baseline or
//! with how late the record is read (a backlog replayed after an outage keeps its layers). Amplified
//! urgency still decides consensus. The generator's route labels follow this text
//! (`semantic::archetypes`), and `aura eval` measures the code against them.
//!
//! The cache key is the decision's inputs bucketed at the rules' own thresholds (which rules fire, the
//! urgency layer band, the pattern, the flags that apply to the source) plus an epoch that every registry,
//! flag or library change bumps. Bucketing at the thresholds means a cached route is exactly the route the
//! rules would compute now, and `invalidate_all` is only there to free memory early.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::config::RoutingConfig;
use super::patterns::{PatternSpec, StepSpec};
use crate::model::{AgentRegistration, AgentStatus, AgentType, Coordination, FeatureFlag, Layer};

/// Flags the router reads; an absent flag counts as enabled.
pub const FLAG_CONSENSUS: &str = "semantic.consensus";
pub const FLAG_HIERARCHICAL: &str = "semantic.hierarchical";
pub const FLAG_FAN_OUT: &str = "semantic.fan_out";

/// Where an anomaly goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub workflow: String,
    /// The agent type of the first step.
    pub agent_type: AgentType,
    /// The agent type of each step, in order.
    pub agent_types: Vec<AgentType>,
    pub coordination: Coordination,
    pub layer: Layer,
    /// Capabilities the pattern needs.
    pub capabilities: Vec<String>,
    /// Needed capabilities no live agent of the required type offers (empty when all are covered).
    pub missing_capabilities: Vec<String>,
    /// Steps whose agent type the registry made routing change, by step name: the saga's
    /// commands for those steps go to the new type.
    pub reassigned: Vec<(String, AgentType)>,
}

/// The scores routing depends on.
#[derive(Debug, Clone, Copy)]
pub struct RouteInputs<'a> {
    /// None for unknown.
    pub pattern: Option<(usize, &'a PatternSpec)>,
    pub confidence: f64,
    pub urgency: f64,
    /// Severity and score alone, before amplification and decay: the layer follows it (layer policy).
    pub base_urgency: f64,
    pub complexity: f64,
    pub entities: usize,
    pub source: &'a str,
}

/// A route and the reason for it, as cached.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub route: Route,
    pub why: String,
}

/// Cache and latency counters; the lead exports them as Prometheus metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RouterStats {
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: f64,
    /// Total time spent deciding (hits and misses), for a mean decision latency.
    pub decision_nanos: u64,
    pub decisions: u64,
}

/// (router epoch, library version, pattern + 1 or 0 for unknown, rules that fired, layer band).
type Key = (u64, u64, u32, u8, u8);

pub struct Router {
    cfg: RoutingConfig,
    registry: RwLock<HashMap<String, AgentRegistration>>,
    flags: RwLock<HashMap<String, FeatureFlag>>,
    epoch: AtomicU64,
    cache: Cache<Key, Arc<Decision>, BuildHasherDefault<DefaultHasher>>,
    hits: AtomicU64,
    misses: AtomicU64,
    nanos: AtomicU64,
}

fn triage_steps() -> Vec<StepSpec> {
    vec![StepSpec {
        name: "triage".into(),
        agent_type: AgentType::Analyst,
        capabilities: vec![],
    }]
}

impl Router {
    pub fn new(cfg: RoutingConfig) -> Self {
        let cache = Cache::builder()
            .max_capacity(cfg.cache_capacity)
            .time_to_live(Duration::from_millis(cfg.cache_ttl_ms))
            .build_with_hasher(BuildHasherDefault::<DefaultHasher>::default());
        Router {
            cfg,
            registry: RwLock::default(),
            flags: RwLock::default(),
            epoch: AtomicU64::new(0),
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        }
    }

    /// Forgets every cached decision.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Relaxed);
        self.cache.invalidate_all();
    }

    pub fn on_registration(&self, reg: &AgentRegistration) {
        self.registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reg.agent_id.clone(), reg.clone());
        self.invalidate();
    }

    pub fn on_flag(&self, flag: &FeatureFlag) {
        self.flags
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(flag.name.clone(), flag.clone());
        self.invalidate();
    }

    /// Whether `name` is on for `key`: absent means on; otherwise enabled and within the
    /// rollout share, by the stable hash of [`super::flags`].
    pub fn flag_on(&self, name: &str, key: &str) -> bool {
        self.flag_state(name, key).unwrap_or(true)
    }

    /// Whether `name` applies to `key`, or `None` when no such flag exists.
    pub fn flag_state(&self, name: &str, key: &str) -> Option<bool> {
        let flags = self.flags.read().unwrap_or_else(|e| e.into_inner());
        flags.get(name).map(|f| super::flags::applies(f, key))
    }

    /// A tombstone on the flag table: the flag is gone, and reads as absent again.
    pub fn remove_flag(&self, name: &str) {
        let removed = self
            .flags
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if removed.is_some() {
            self.invalidate();
        }
    }

    /// A tombstone on the registry: the agent is gone.
    pub fn on_deregistration(&self, agent_id: &str) {
        let removed = self
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(agent_id);
        if removed.is_some() {
            self.invalidate();
        }
    }

    /// Removes every agent whose last heartbeat (`updated_at`) is older than `timeout_ms` at
    /// `now_ms`, as a tombstone would; returns their ids.
    pub fn expire_registrations(&self, now_ms: i64, timeout_ms: i64) -> Vec<String> {
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        let expired: Vec<String> = registry
            .values()
            .filter(|r| r.updated_at.saturating_add(timeout_ms) < now_ms)
            .map(|r| r.agent_id.clone())
            .collect();
        for id in &expired {
            registry.remove(id);
        }
        drop(registry);
        if !expired.is_empty() {
            self.invalidate();
        }
        expired
    }

    /// Agents that take work (available or busy, with capacity) of type `t`, with their
    /// capacity, by agent id.
    pub fn live_agents(&self, t: AgentType) -> Vec<(String, i32)> {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let mut live: Vec<(String, i32)> = registry
            .values()
            .filter(|r| {
                r.agent_type == t
                    && r.capacity > 0
                    && matches!(r.status, AgentStatus::Available | AgentStatus::Busy)
            })
            .map(|r| (r.agent_id.clone(), r.capacity))
            .collect();
        live.sort();
        live
    }

    /// The registry as this instance sees it: agents by type and status.
    pub fn registry_census(&self) -> Vec<(AgentType, AgentStatus, i64)> {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let mut counts: HashMap<(AgentType, AgentStatus), i64> = HashMap::new();
        for r in registry.values() {
            *counts.entry((r.agent_type, r.status)).or_default() += 1;
        }
        counts.into_iter().map(|((t, s), n)| (t, s, n)).collect()
    }

    /// How often a registry, flag or library change has invalidated the cached routes.
    pub fn invalidations(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    pub fn stats(&self) -> RouterStats {
        let (hits, misses) = (self.hits.load(Relaxed), self.misses.load(Relaxed));
        let decisions = hits + misses;
        RouterStats {
            hits,
            misses,
            hit_ratio: if decisions > 0 {
                hits as f64 / decisions as f64
            } else {
                0.0
            },
            decision_nanos: self.nanos.load(Relaxed),
            decisions,
        }
    }

    fn layer_band(&self, urgency: f64) -> u8 {
        if urgency >= self.cfg.strategic_urgency {
            2
        } else if urgency >= self.cfg.tactical_urgency {
            1
        } else {
            0
        }
    }

    /// The route for `inp`, from the cache when an equivalent decision is there. `version` is the pattern
    /// library's version, so new prototypes never reuse old decisions.
    pub fn route(&self, inp: &RouteInputs, version: u64) -> Arc<Decision> {
        let start = Instant::now();
        let c = &self.cfg;
        let has_flags = !self
            .flags
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        let on = |name| !has_flags || self.flag_on(name, inp.source);
        let mut rules = 0u8;
        if inp.urgency >= c.consensus_urgency
            && inp.confidence < c.consensus_confidence
            && on(FLAG_CONSENSUS)
        {
            rules |= 1;
        }
        if inp.complexity > c.hierarchical_complexity && on(FLAG_HIERARCHICAL) {
            rules |= 2;
        }
        if inp.entities >= c.fan_out_entities as usize && on(FLAG_FAN_OUT) {
            rules |= 4;
        }
        let pattern_key = inp.pattern.map_or(0, |(i, _)| i as u32 + 1);
        let key = (
            self.epoch.load(Relaxed),
            version,
            pattern_key,
            rules,
            self.layer_band(inp.base_urgency),
        );
        let decision = match self.cache.get(&key) {
            Some(d) => {
                self.hits.fetch_add(1, Relaxed);
                d
            }
            None => {
                self.misses.fetch_add(1, Relaxed);
                let d = Arc::new(self.decide(inp, rules, key.4));
                self.cache.insert(key, d.clone());
                d
            }
        };
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        decision
    }

    fn decide(&self, inp: &RouteInputs, rules: u8, band: u8) -> Decision {
        let c = &self.cfg;
        let triage = triage_steps();
        let (workflow, steps, default_coord, base_layer, caps) = match inp.pattern {
            Some((_, p)) => (
                p.workflow.as_str(),
                &p.steps,
                p.coordination,
                p.layer,
                p.capabilities.clone(),
            ),
            None => (
                "triage",
                &triage,
                Coordination::Pipeline,
                Layer::Operational,
                vec![],
            ),
        };
        let (coordination, rule) = if rules & 1 != 0 {
            (
                Coordination::Consensus,
                format!(
                    "consensus: urgency >= {} and confidence < {}",
                    c.consensus_urgency, c.consensus_confidence
                ),
            )
        } else if rules & 2 != 0 {
            (
                Coordination::Hierarchical,
                format!("hierarchical: complexity > {}", c.hierarchical_complexity),
            )
        } else if rules & 4 != 0 {
            (
                Coordination::FanOut,
                format!("fan-out: >= {} entities", c.fan_out_entities),
            )
        } else {
            (
                default_coord,
                "no rule fired: the workflow's default".to_string(),
            )
        };
        let mut layer =
            base_layer.max([Layer::Operational, Layer::Tactical, Layer::Strategic][band as usize]);
        if coordination == Coordination::Hierarchical {
            layer = layer.max(Layer::Tactical);
        }
        let mut why =
            format!("workflow {workflow}; coordination {coordination:?} ({rule}); layer {layer:?}");
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let mut missing: Vec<String> = Vec::new();
        let mut reassigned = Vec::new();
        let agent_types: Vec<AgentType> = if registry.is_empty() {
            why.push_str("; registry empty, capabilities not checked");
            steps.iter().map(|s| s.agent_type).collect()
        } else {
            steps
                .iter()
                .map(|s| {
                    let able = |t: AgentType| {
                        registry.values().any(|r| {
                            r.agent_type == t
                                && r.capacity > 0
                                && matches!(r.status, AgentStatus::Available | AgentStatus::Busy)
                                && s.capabilities
                                    .iter()
                                    .all(|cap| r.capabilities.contains(cap))
                        })
                    };
                    if able(s.agent_type) {
                        return s.agent_type;
                    }
                    // Analysts can do most work at a pinch; supervisors can approve anything.
                    match [
                        AgentType::Analyst,
                        AgentType::Supervisor,
                        AgentType::Observer,
                    ]
                    .into_iter()
                    .find(|&t| able(t))
                    {
                        Some(t) => {
                            why.push_str(&format!(
                                "; step {} reassigned {:?} -> {t:?} (capabilities)",
                                s.name, s.agent_type
                            ));
                            reassigned.push((s.name.clone(), t));
                            t
                        }
                        None => {
                            for cap in &s.capabilities {
                                if !missing.contains(cap) {
                                    missing.push(cap.clone());
                                }
                            }
                            why.push_str(&format!(
                                "; no live agent can do step {} {:?}",
                                s.name, s.capabilities
                            ));
                            s.agent_type
                        }
                    }
                })
                .collect()
        };
        Decision {
            route: Route {
                workflow: workflow.to_string(),
                agent_type: agent_types[0],
                agent_types,
                coordination,
                layer,
                capabilities: caps,
                missing_capabilities: missing,
                reassigned,
            },
            why,
        }
    }
}
