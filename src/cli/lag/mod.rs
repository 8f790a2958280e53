//! `aura lag`: a consumer group's lag from the broker, printed once, watched, or exported.

mod serve;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::lag::{GroupLag, LagReader};

/// Show a consumer group's lag as the broker sees it: for each partition, the group's committed
/// offset, the partition's end offset and the difference, like `kafka-consumer-groups.sh
/// --describe`. It never joins the group, so it works (and matters most) while every instance
/// is down. Topics are those the group has committed offsets on or owns; --topic narrows them.
///
///   aura lag --bootstrap-servers localhost:9092 --group aura
///   aura lag --group aura --json          # [{"topic":"tda.anomalies","partition":0,
///                                         #   "committed":120,"end":130,"lag":10,"owner":...}]
///   aura lag --group aura --watch         # again every --interval-ms, until Ctrl-C
///   aura lag --group aura --serve 0.0.0.0:9308
///                                         # a Prometheus exporter: aura_group_lag and friends
///                                         # on /metrics, read from the broker every --interval-ms
///
/// Connection settings ([kafka.properties] and [kafka.secrets], e.g. SASL) come from --config when
/// given, and from AURA_KAFKA_* variables (e.g. AURA_KAFKA_SASL_PASSWORD_FILE), as for `aura run`.
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct LagArgs {
    /// A service configuration (TOML): its bootstrap servers, group id, [kafka.properties] and
    /// [kafka.secrets].
    #[arg(long, short, env = "AURA_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides kafka."bootstrap.servers".
    #[arg(long, env = "AURA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,
    /// The consumer group; default kafka."group.id" (Aura's own group, `aura`).
    #[arg(long, env = "AURA_GROUP_ID")]
    group: Option<String>,
    /// Only this topic (repeat for more); default every topic the group has offsets on.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Print a JSON array of {topic, partition, committed, end, lag, owner}; `committed` and
    /// `lag` are null where the group has no committed offset, `owner` where no member owns it.
    #[arg(long)]
    json: bool,
    /// Print again every --interval-ms until interrupted (with --json: one array per line).
    #[arg(long, conflicts_with = "serve")]
    watch: bool,
    /// Serve the lag as Prometheus metrics on this address (`/metrics`, `/healthz`).
    #[arg(long, value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,
    /// How often --watch and --serve read the lag again.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..))]
    interval_ms: u64,
    /// How long each broker request may take.
    #[arg(long, default_value_t = 10000)]
    timeout_ms: u64,
}

impl LagArgs {
    /// Whether this runs as the long-lived exporter (`--serve`), which logs like a service.
    pub fn serves(&self) -> bool {
        self.serve.is_some()
    }
}

pub async fn run(args: LagArgs) -> anyhow::Result<()> {
    // Without a file, the defaults with the environment's AURA_KAFKA_* settings.
    let mut kafka = match &args.config {
        Some(path) => Config::load(path)?.kafka,
        None => {
            Config::default()
                .validated(&crate::config::builtin_origin())?
                .kafka
        }
    };
    if let Some(b) = &args.bootstrap_servers {
        kafka.bootstrap_servers = b.clone();
    }
    let group = args.group.clone().unwrap_or(kafka.group_id.clone());
    let reader = std::sync::Arc::new(LagReader::new(
        &kafka,
        &group,
        args.topics.clone(),
        Duration::from_millis(args.timeout_ms),
    )?);
    let interval = Duration::from_millis(args.interval_ms);
    if let Some(listen) = args.serve {
        return serve::run(reader, &group, listen, interval).await;
    }
    loop {
        let lag = read(&reader).await?;
        if !args.watch && lag.partitions.is_empty() && lag.members == 0 {
            anyhow::bail!(
                "group {group} has no committed offsets{} and no members at {}: check the name \
                 (Aura's group is kafka.\"group.id\", `aura` by default)",
                if args.topics.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", args.topics.join(", "))
                },
                kafka.bootstrap_servers
            );
        }
        if args.json {
            println!("{}", serde_json::to_string(&lag.partitions)?);
        } else {
            print!("{}", table(&lag));
        }
        if !args.watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        if !args.json {
            println!();
        }
    }
}

/// One read, off the async threads: the client's calls block.
async fn read(reader: &std::sync::Arc<LagReader>) -> anyhow::Result<GroupLag> {
    let reader = reader.clone();
    Ok(tokio::task::spawn_blocking(move || reader.read())
        .await
        .context("the lag reader panicked")??)
}

/// The human form: a header with the group's state, then one line per partition.
fn table(lag: &GroupLag) -> String {
    use std::fmt::Write;
    let dash = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    let width = lag
        .partitions
        .iter()
        .map(|p| p.topic.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!(
        "GROUP {}  STATE {}  MEMBERS {}\n\n{:<width$}  {:>9}  {:>12}  {:>12}  {:>10}  OWNER\n",
        lag.group, lag.state, lag.members, "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
    );
    for p in &lag.partitions {
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>12}  {:>12}  {:>10}  {}",
            p.topic,
            p.partition,
            dash(p.committed),
            p.end,
            dash(p.lag),
            p.owner.as_deref().unwrap_or("-"),
        );
    }
    let total: i64 = lag.partitions.iter().filter_map(|p| p.lag).sum();
    let _ = writeln!(out, "\nTOTAL LAG {total}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lag::PartitionLag;

    #[test]
    fn the_table_shows_dashes_where_nothing_is_committed_or_owned() {
        let lag = GroupLag {
            group: "aura".into(),
            state: "Empty".into(),
            members: 0,
            partitions: vec![
                PartitionLag {
                    topic: "tda.anomalies".into(),
                    partition: 0,
                    committed: Some(7),
                    end: 10,
                    lag: Some(3),
                    owner: Some("aura-aura-0@/127.0.0.1".into()),
                },
                PartitionLag {
                    topic: "tda.anomalies".into(),
                    partition: 1,
                    committed: None,
                    end: 4,
                    lag: None,
                    owner: None,
                },
            ],
        };
        let text = table(&lag);
        assert!(
            text.starts_with("GROUP aura  STATE Empty  MEMBERS 0\n"),
            "{text}"
        );
        let lines: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with("tda."))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "tda.anomalies",
                "0",
                "7",
                "10",
                "3",
                "aura-aura-0@/127.0.0.1"
            ]
        );
        assert_eq!(lines[1], ["tda.anomalies", "1", "-", "4", "-", "-"]);
        assert!(text.ends_with("TOTAL LAG 3\n"), "{text}");
    }
}
