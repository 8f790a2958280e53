//! The `incidents` store: one partition's open incidents, by correlation key.
//!
//! An incident is a session window over one correlation key: an anomaly joins the key's open
//! incident when its `detected_at` is within `gap_ms` of the incident's span (and, when
//! `max_distance` is set, its diagram is close enough to the incident's), and opens a new one
//! otherwise. A storm therefore stays one incident however long it lasts, and never splits at
//! a clock boundary. The store is changelogged like the saga store, keyed by correlation key;
//! an incident is forgotten once no on-time anomaly can join it any more.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::config::CorrelationConfig;
use crate::model::PersistencePoint;
use crate::semantic::SlicedWasserstein;

/// The store's name, and so its changelog topic: `<group.id>-incidents-changelog`.
pub const INCIDENT_STORE: &str = "incidents";

/// Points of the opening anomaly's diagram kept as the incident's representative: the most
/// persistent ones. The rest lie near the diagonal (noise) and would only cost memory.
const REPRESENTATIVE_POINTS: usize = 8;

/// The correlation key of an incident (or saga) id `<correlation key>@<ms>[.<n>]`: the key
/// its partition is chosen by.
pub fn incident_key(incident_id: &str) -> &str {
    incident_id
        .rsplit_once('@')
        .map_or(incident_id, |(key, _)| key)
}

/// One open incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Also its saga's id: `<correlation key>@<detected_at of the opening anomaly>`.
    pub id: String,
    /// Earliest and latest `detected_at` of its anomalies.
    pub first_at: i64,
    pub last_at: i64,
    /// Anomalies joined so far, the opening one included.
    pub anomalies: u32,
    /// The representative diagram as `(dimension, birth, death)`, rounded to 1e-4.
    pub diagram: Vec<(i32, f32, f32)>,
}

/// The open incidents of one correlation key, as the changelog holds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct KeyIncidents {
    open: Vec<Incident>,
}

/// What one anomaly did.
#[derive(Debug, Clone, PartialEq)]
pub enum Correlation {
    /// It opened this incident (and, with sagas, its saga).
    Opened { incident_id: String },
    /// It joined an open incident: `distance` to its diagram, and the window as it now is.
    Joined {
        incident_id: String,
        distance: f64,
        window_start: i64,
        window_end: i64,
    },
}

/// One partition's incidents, with an index of when each key's last incident closes.
#[derive(Debug, Default)]
pub struct IncidentStore {
    keys: HashMap<String, KeyIncidents>,
    /// `(close_at, key)`: a key's entry can go once its latest incident's window has closed.
    closing: BTreeSet<(i64, String)>,
}

impl IncidentStore {
    /// Correlates one valid anomaly with its key's open incidents. Returns what it did and the
    /// key's new changelog record.
    pub fn observe(
        &mut self,
        config: &CorrelationConfig,
        distance: &SlicedWasserstein,
        key: &str,
        detected_at: i64,
        diagram: &[PersistencePoint],
    ) -> (Correlation, Vec<u8>) {
        let entry = self.keys.entry(key.to_string()).or_default();
        let old_close = close_at(entry, config);
        let candidate = entry
            .open
            .iter_mut()
            .filter(|i| {
                detected_at >= i.first_at.saturating_sub(config.gap_ms)
                    && detected_at <= i.last_at.saturating_add(config.gap_ms)
            })
            .map(|i| {
                let d = distance.distance(diagram, &points(&i.diagram));
                (d, i)
            })
            .filter(|(d, _)| config.max_distance.is_none_or(|max| *d <= max))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let correlation = match candidate {
            Some((d, incident)) => {
                incident.first_at = incident.first_at.min(detected_at);
                incident.last_at = incident.last_at.max(detected_at);
                incident.anomalies = incident.anomalies.saturating_add(1);
                Correlation::Joined {
                    incident_id: incident.id.clone(),
                    distance: d,
                    window_start: incident.first_at,
                    window_end: incident.last_at.saturating_add(config.gap_ms),
                }
            }
            None => {
                let mut id = format!("{key}@{detected_at}");
                let mut n = 1;
                while entry.open.iter().any(|i| i.id == id) {
                    id = format!("{key}@{detected_at}.{n}");
                    n += 1;
                }
                if entry.open.len() >= config.max_open_per_key {
                    // The oldest goes; anomalies of its shape open a new incident later.
                    let oldest = (0..entry.open.len())
                        .min_by_key(|&i| entry.open[i].last_at)
                        .expect("not empty");
                    entry.open.remove(oldest);
                }
                entry.open.push(Incident {
                    id: id.clone(),
                    first_at: detected_at,
                    last_at: detected_at,
                    anomalies: 1,
                    diagram: representative(diagram),
                });
                Correlation::Opened { incident_id: id }
            }
        };
        let record = serde_json::to_vec(&*entry).expect("incidents serialize");
        let new_close = close_at(entry, config);
        self.reindex(key, old_close, new_close);
        (correlation, record)
    }

    /// Forgets the keys whose incidents can no longer be joined at `now_ms`; returns them, so
    /// their changelog records can be deleted.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let mut gone = Vec::new();
        while let Some((close, _)) = self.closing.first() {
            if *close > now_ms {
                break;
            }
            let (_, key) = self.closing.pop_first().expect("just seen");
            self.keys.remove(&key);
            gone.push(key);
        }
        gone
    }

    /// Applies a changelog record read back in a restore; `None` or an unreadable record
    /// drops the key. An unreadable record's error says why.
    pub fn restore(
        &mut self,
        config: &CorrelationConfig,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), serde_json::Error> {
        let old = self.keys.remove(key).map(|e| close_at(&e, config));
        let (new, readable) = match value.map(serde_json::from_slice::<KeyIncidents>) {
            Some(Ok(entry)) if !entry.open.is_empty() => {
                let close = close_at(&entry, config);
                self.keys.insert(key.to_string(), entry);
                (close, Ok(()))
            }
            Some(Err(e)) => (None, Err(e)),
            _ => (None, Ok(())),
        };
        self.reindex(key, old.flatten(), new);
        readable
    }

    /// The key's open incidents, for state queries.
    pub fn open(&self, key: &str) -> Option<&[Incident]> {
        self.keys.get(key).map(|e| e.open.as_slice())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn reindex(&mut self, key: &str, old: Option<i64>, new: Option<i64>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.closing.remove(&(old, key.to_string()));
        }
        if let Some(new) = new {
            self.closing.insert((new, key.to_string()));
        }
    }
}

/// When the key's last open incident stops accepting on-time anomalies. Event time and
/// processing time are compared here: an anomaly detected long ago that arrives late opens an
/// incident of its own rather than keeping state alive forever.
fn close_at(entry: &KeyIncidents, config: &CorrelationConfig) -> Option<i64> {
    entry
        .open
        .iter()
        .map(|i| i.last_at.saturating_add(config.gap_ms))
        .max()
}

fn representative(diagram: &[PersistencePoint]) -> Vec<(i32, f32, f32)> {
    let mut finite: Vec<&PersistencePoint> = diagram
        .iter()
        .filter(|p| p.birth.is_finite() && p.death.is_finite())
        .collect();
    finite.sort_by(|a, b| (b.death - b.birth).total_cmp(&(a.death - a.birth)));
    let round = |x: f64| ((x * 1e4).round() / 1e4) as f32;
    finite
        .into_iter()
        .take(REPRESENTATIVE_POINTS)
        .map(|p| (p.dimension, round(p.birth), round(p.death)))
        .collect()
}

fn points(diagram: &[(i32, f32, f32)]) -> Vec<PersistencePoint> {
    diagram
        .iter()
        .map(|&(dimension, birth, death)| PersistencePoint {
            dimension,
            birth: birth.into(),
            death: death.into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;

    fn p(birth: f64, death: f64) -> PersistencePoint {
        PersistencePoint {
            dimension: 1,
            birth,
            death,
        }
    }

    fn config() -> CorrelationConfig {
        CorrelationConfig::default()
    }

    fn observe(
        s: &mut IncidentStore,
        c: &CorrelationConfig,
        at: i64,
        d: &[PersistencePoint],
    ) -> Correlation {
        s.observe(c, &SlicedWasserstein::new(16), "checkout", at, d)
            .0
    }

    #[test]
    fn a_storm_across_a_five_minute_boundary_is_one_incident() {
        let c = config();
        let mut s = IncidentStore::default();
        // 4:59 and 5:01 past a bucket boundary: two buckets, one storm.
        let boundary = (T0 / (5 * MIN) + 1) * 5 * MIN;
        let first = observe(&mut s, &c, boundary - 1_000, &[p(0.1, 0.9)]);
        let Correlation::Opened { incident_id } = first else {
            panic!("{first:?}")
        };
        assert_eq!(incident_id, format!("checkout@{}", boundary - 1_000));
        for i in 0..20 {
            let at = boundary + i * 10_000;
            let c2 = observe(&mut s, &c, at, &[p(0.1, 0.9)]);
            assert!(
                matches!(&c2, Correlation::Joined { incident_id: id, .. } if *id == incident_id),
                "{c2:?}"
            );
        }
    }

    #[test]
    fn an_incident_id_names_its_key_even_when_the_key_has_an_at_sign() {
        assert_eq!(
            incident_key("user@example.com@1700000000000"),
            "user@example.com"
        );
        assert_eq!(incident_key("checkout@1700000000000.2"), "checkout");
        assert_eq!(incident_key("no-at-sign"), "no-at-sign");
    }

    #[test]
    fn an_anomaly_after_the_gap_opens_a_new_incident() {
        let c = config();
        let mut s = IncidentStore::default();
        observe(&mut s, &c, T0, &[]);
        let later = observe(&mut s, &c, T0 + c.gap_ms + 1, &[]);
        assert_eq!(
            later,
            Correlation::Opened {
                incident_id: format!("checkout@{}", T0 + c.gap_ms + 1)
            }
        );
    }

    #[test]
    fn a_distant_diagram_opens_a_second_incident_when_distance_gates() {
        let c = CorrelationConfig {
            max_distance: Some(0.05),
            ..config()
        };
        let mut s = IncidentStore::default();
        observe(&mut s, &c, T0, &[p(0.1, 0.2)]);
        let near = observe(&mut s, &c, T0 + 1, &[p(0.1, 0.21)]);
        assert!(matches!(near, Correlation::Joined { distance, .. } if distance < 0.05));
        let far = observe(&mut s, &c, T0 + 2, &[p(0.0, 5.0)]);
        assert!(matches!(far, Correlation::Opened { .. }), "{far:?}");
        assert_eq!(s.open("checkout").unwrap().len(), 2);
    }

    #[test]
    fn same_millisecond_incidents_get_distinct_ids() {
        let c = CorrelationConfig {
            max_distance: Some(0.0),
            ..config()
        };
        let mut s = IncidentStore::default();
        observe(&mut s, &c, T0, &[p(0.1, 0.2)]);
        let second = observe(&mut s, &c, T0, &[p(0.0, 5.0)]);
        assert_eq!(
            second,
            Correlation::Opened {
                incident_id: format!("checkout@{T0}.1")
            }
        );
    }

    #[test]
    fn closed_incidents_expire_and_restore_rebuilds_the_index() {
        let c = config();
        let mut s = IncidentStore::default();
        let (_, record) = s.observe(&c, &SlicedWasserstein::new(16), "a", T0, &[p(0.1, 0.9)]);
        s.observe(&c, &SlicedWasserstein::new(16), "b", T0 + MIN, &[]);
        assert!(s.expire(T0 + c.gap_ms - 1).is_empty());
        assert_eq!(s.expire(T0 + c.gap_ms), vec!["a".to_string()]);

        let mut restored = IncidentStore::default();
        assert!(restored.restore(&c, "a", Some(&record)).is_ok());
        assert_eq!(restored.open("a").unwrap()[0].diagram, vec![(1, 0.1, 0.9)]);
        assert_eq!(restored.expire(T0 + c.gap_ms), vec!["a".to_string()]);
        assert!(restored.restore(&c, "x", Some(b"not json")).is_err());
        assert!(restored.is_empty());
    }
}
