//! What `aura run`'s own `/metrics` say about a phase: how often it committed, how long its
//! commits took, and so how long partition tasks stood at the commit gate.

use std::time::Duration;

use serde::Serialize;

use super::probe::{http_get, metric_sum};

/// Commit buckets (seconds) whose counts the bench reports: a commit over 20 ms is one that
/// waited on librdkafka's fixed 20 ms retry or on the broker.
const SLOW_COMMIT_S: &str = "0.025";

/// Counters read at one moment.
#[derive(Clone, Default)]
pub struct Scrape {
    commits: f64,
    commit_seconds: f64,
    commits_under_slow: f64,
    processing_seconds: f64,
    processed: f64,
    /// Per commit phase (see `PHASES`): seconds summed, and how many.
    phases: [(f64, f64); 3],
}

/// The phases of a transactional commit, as `aura_commit_phase_seconds` labels them.
const PHASES: [&str; 3] = ["flush", "offsets", "end"];

/// The service's figures over a phase.
#[derive(Serialize, Clone)]
pub struct ServiceFigures {
    /// Commits in the phase.
    pub commits: u64,
    /// Commits per second of sending.
    pub commits_per_second: f64,
    /// Mean duration of one commit.
    pub commit_mean_ms: f64,
    /// Commits that took longer than 25 ms.
    pub commits_over_25ms: u64,
    /// Share of the phase during which the commit gate was closed to partition tasks (the
    /// commit's write lock is held for the whole commit).
    pub gate_closed_fraction: f64,
    /// Mean time a partition task spent on one record (decode, process, hand to producer).
    pub processing_mean_us: f64,
    /// Mean duration of each phase of a transactional commit, in `PHASES` order: waiting for
    /// the outputs' acknowledgements, send_offsets_to_transaction, commit_transaction.
    pub commit_phase_mean_ms: [f64; 3],
}

impl ServiceFigures {
    /// Reads the counters now; zeros when the service does not answer.
    pub async fn scrape(http: &str) -> Scrape {
        let text = http_get(http, "/metrics")
            .await
            .map(|(_, t)| t)
            .unwrap_or_default();
        parse(&text)
    }
}

fn parse(text: &str) -> Scrape {
    Scrape {
        commits: metric_sum(text, "aura_commit_seconds_count", ""),
        commit_seconds: metric_sum(text, "aura_commit_seconds_sum", ""),
        commits_under_slow: metric_sum(
            text,
            "aura_commit_seconds_bucket",
            &format!("le=\"{SLOW_COMMIT_S}\""),
        ),
        processing_seconds: metric_sum(text, "aura_processing_seconds_sum", ""),
        processed: metric_sum(text, "aura_processing_seconds_count", ""),
        phases: PHASES.map(|phase| {
            let label = format!("phase=\"{phase}\"");
            (
                metric_sum(text, "aura_commit_phase_seconds_sum", &label),
                metric_sum(text, "aura_commit_phase_seconds_count", &label),
            )
        }),
    }
}

impl Scrape {
    /// The figures between `earlier` and this scrape, over `span` of sending.
    pub fn since(&self, earlier: &Scrape, span: Duration) -> ServiceFigures {
        let commits = (self.commits - earlier.commits).max(0.0);
        let seconds = (self.commit_seconds - earlier.commit_seconds).max(0.0);
        let slow = commits - (self.commits_under_slow - earlier.commits_under_slow).max(0.0);
        let processed = (self.processed - earlier.processed).max(0.0);
        let span = span.as_secs_f64().max(1e-9);
        let mut commit_phase_mean_ms = [0.0; 3];
        for (i, mean) in commit_phase_mean_ms.iter_mut().enumerate() {
            let n = self.phases[i].1 - earlier.phases[i].1;
            if n > 0.0 {
                *mean = (self.phases[i].0 - earlier.phases[i].0) * 1000.0 / n;
            }
        }
        ServiceFigures {
            commits: commits as u64,
            commits_per_second: commits / span,
            commit_mean_ms: if commits > 0.0 {
                seconds * 1000.0 / commits
            } else {
                0.0
            },
            commits_over_25ms: slow.max(0.0) as u64,
            gate_closed_fraction: seconds / span,
            processing_mean_us: if processed > 0.0 {
                (self.processing_seconds - earlier.processing_seconds) * 1e6 / processed
            } else {
                0.0
            },
            commit_phase_mean_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_the_difference_of_two_scrapes() {
        let before = parse(
            "aura_commit_seconds_count{guarantee=\"exactly_once_v2\"} 10\n\
             aura_commit_seconds_sum{guarantee=\"exactly_once_v2\"} 0.05\n\
             aura_commit_seconds_bucket{guarantee=\"exactly_once_v2\",le=\"0.025\"} 10\n",
        );
        let after = parse(
            "aura_commit_seconds_count{guarantee=\"exactly_once_v2\"} 110\n\
             aura_commit_seconds_sum{guarantee=\"exactly_once_v2\"} 0.55\n\
             aura_commit_seconds_bucket{guarantee=\"exactly_once_v2\",le=\"0.025\"} 107\n\
             aura_processing_seconds_sum 0.002\n\
             aura_processing_seconds_count 200\n\
             aura_commit_phase_seconds_sum{phase=\"flush\"} 0.2\n\
             aura_commit_phase_seconds_count{phase=\"flush\"} 100\n",
        );
        let f = after.since(&before, Duration::from_secs(1));
        assert_eq!(f.commits, 100);
        assert!((f.commit_mean_ms - 5.0).abs() < 1e-9);
        assert_eq!(f.commits_over_25ms, 3);
        assert!((f.gate_closed_fraction - 0.5).abs() < 1e-9);
        assert!((f.processing_mean_us - 10.0).abs() < 1e-9);
        assert!((f.commit_phase_mean_ms[0] - 2.0).abs() < 1e-9);
        assert_eq!(f.commit_phase_mean_ms[1], 0.0, "no offsets phase scraped");
    }
}
