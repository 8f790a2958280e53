//! `aura lag --serve`: a Prometheus exporter of one group's broker-side lag. It runs apart
//! from the service (its own Deployment or compose service), so lag stays visible, and the lag
//! alerts keep firing, while every instance of the group is down.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::header;
use axum::routing::get;
use axum::Router;
use tracing::{info, warn};

use crate::lag::{GroupLag, LagReader};
use crate::telemetry::GroupLagMetrics;

pub async fn run(
    reader: Arc<LagReader>,
    group: &str,
    listen: SocketAddr,
    interval: Duration,
) -> anyhow::Result<()> {
    let metrics = GroupLagMetrics::new();
    let app = Router::new()
        .route(
            "/metrics",
            get({
                let metrics = metrics.clone();
                move || async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (--serve); pick a free port"))?;
    info!(address = %listener.local_addr()?, group, "lag exporter listening");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut published = HashSet::new();
    let refresh = async {
        loop {
            let read = {
                let reader = reader.clone();
                tokio::task::spawn_blocking(move || reader.read()).await
            };
            match read {
                Ok(Ok(lag)) => {
                    published = publish(&metrics, &lag, published);
                    metrics.refreshes.with_label_values(&[group, "ok"]).inc();
                }
                Ok(Err(error)) => {
                    // Keep the last values: a broker blip must not look like zero lag.
                    warn!(
                        group,
                        error = format!("{:#}", anyhow::Error::from(error)),
                        "cannot read group lag; keeping the last values"
                    );
                    metrics.refreshes.with_label_values(&[group, "error"]).inc();
                }
                Err(panic) => return Err(anyhow::anyhow!("the lag reader panicked: {panic}")),
            }
            tokio::time::sleep(interval).await;
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = refresh => result,
        result = server => Ok(result.context("the HTTP server task failed")??),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    }
}

type Series = (String, i32);

/// Sets every partition's gauges, and removes those of partitions no longer reported (a deleted
/// topic) so they do not linger at their last value. Returns what is now published.
fn publish(metrics: &GroupLagMetrics, lag: &GroupLag, before: HashSet<Series>) -> HashSet<Series> {
    let group = lag.group.as_str();
    let mut now = HashSet::new();
    for p in &lag.partitions {
        let partition = p.partition.to_string();
        let labels = [group, p.topic.as_str(), partition.as_str()];
        metrics.end.with_label_values(&labels).set(p.end);
        metrics
            .owned
            .with_label_values(&labels)
            .set(i64::from(p.owner.is_some()));
        match (p.committed, p.lag) {
            (Some(committed), Some(lag)) => {
                metrics.committed.with_label_values(&labels).set(committed);
                metrics.lag.with_label_values(&labels).set(lag);
            }
            _ => {
                let _ = metrics.committed.remove_label_values(&labels);
                let _ = metrics.lag.remove_label_values(&labels);
            }
        }
        now.insert((p.topic.clone(), p.partition));
    }
    for (topic, partition) in before.difference(&now) {
        let partition = partition.to_string();
        let labels = [group, topic.as_str(), partition.as_str()];
        for gauge in [
            &metrics.end,
            &metrics.owned,
            &metrics.committed,
            &metrics.lag,
        ] {
            let _ = gauge.remove_label_values(&labels);
        }
    }
    metrics
        .members
        .with_label_values(&[group])
        .set(lag.members as i64);
    metrics
        .last_success
        .with_label_values(&[group])
        .set(crate::clock::now_ms() / 1000);
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lag::PartitionLag;

    fn partition(p: i32, committed: Option<i64>, owner: bool) -> PartitionLag {
        PartitionLag {
            topic: "in".into(),
            partition: p,
            committed,
            end: 10,
            lag: committed.map(|c| 10 - c),
            owner: owner.then(|| "c@h".to_string()),
        }
    }

    #[test]
    fn gauges_follow_the_partitions_and_vanished_ones_are_removed() {
        let m = GroupLagMetrics::new();
        let lag = |partitions| GroupLag {
            group: "g".into(),
            state: "Stable".into(),
            members: 1,
            partitions,
        };
        let published = publish(
            &m,
            &lag(vec![partition(0, Some(4), true), partition(1, None, false)]),
            HashSet::new(),
        );
        let text = m.render();
        assert!(
            text.contains(r#"aura_group_lag{group="g",partition="0",topic="in"} 6"#),
            "{text}"
        );
        assert!(
            text.contains(r#"aura_group_partition_owned{group="g",partition="1",topic="in"} 0"#)
        );
        assert!(
            !text.contains(r#"aura_group_lag{group="g",partition="1""#),
            "no lag without a commit"
        );
        assert!(text.contains(r#"aura_group_members{group="g"} 1"#));

        publish(&m, &lag(vec![partition(1, Some(10), true)]), published);
        let text = m.render();
        assert!(
            !text.contains(r#"partition="0""#),
            "partition 0 removed:\n{text}"
        );
        assert!(
            text.contains(r#"aura_group_lag{group="g",partition="1",topic="in"} 0"#),
            "{text}"
        );
    }
}
