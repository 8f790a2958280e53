//! A system under test as a child process of the bench, so the measuring client never shares
//! a process (allocator, runtime threads, librdkafka queues) with what it measures.
//!
//! A child is ready when its HTTP `/readyz` answers 200 (`aura run`) or when it prints
//! `state RUNNING` on stdout (the passthrough loop and the Kafka Streams application).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::config::Config;

use super::probe::http_get;

/// How the bench learns that a child processes records.
pub enum Readiness {
    /// `GET /readyz` on this address answers 200.
    Http(String),
    /// The child printed `state RUNNING` on stdout.
    RunningLine(Arc<AtomicBool>),
}

/// A running child process; killed when dropped, so a bench that fails half-way leaves
/// nothing behind.
pub struct SystemProcess {
    child: Child,
    readiness: Readiness,
    log: PathBuf,
}

impl SystemProcess {
    /// Starts `command` with stderr to `log`. With `http`, readiness is `/readyz` there;
    /// otherwise the child's stdout is watched for `state RUNNING` (and copied to the log).
    pub fn spawn(mut command: Command, log: &Path, http: Option<String>) -> anyhow::Result<Self> {
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let running = Arc::new(AtomicBool::new(false));
        let seen = running.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == "state RUNNING" {
                    seen.store(true, Ordering::Release);
                }
            }
        });
        let readiness = match http {
            Some(address) => Readiness::Http(address),
            None => Readiness::RunningLine(running),
        };
        Ok(Self {
            child,
            readiness,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The child's HTTP address, when it has one.
    pub fn http(&self) -> Option<&str> {
        match &self.readiness {
            Readiness::Http(address) => Some(address),
            Readiness::RunningLine(_) => None,
        }
    }

    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the system under test exited with {status}; see {}",
                    self.log.display()
                );
            }
            let ready = match &self.readiness {
                Readiness::Http(address) => {
                    matches!(http_get(address, "/readyz").await, Some((200, _)))
                }
                Readiness::RunningLine(running) => running.load(Ordering::Acquire),
            };
            if ready {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "the system under test was not ready within {within:?}; see {}",
            self.log.display()
        )
    }

    /// Fails when the child has exited: a crash mid-measurement must not read as a stall.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the system under test exited with {status} while being measured; see {}",
                self.log.display()
            );
        }
        Ok(())
    }

    /// SIGTERM, so it commits and leaves its group; SIGKILL after 20 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The `aura.toml` a child runs with: the bench's topics, group, guarantee, commit interval,
/// sagas switch, HTTP address, the connection's `[kafka.properties]` with any extra ones, its
/// `[kafka.secrets]` (where each secret is read from, never its value) and its registry. The
/// child inherits the environment, so AURA_KAFKA_* settings reach it too.
pub fn write_config(
    dir: &Path,
    config: &Config,
    http: &str,
    properties: &[(String, String)],
) -> anyhow::Result<PathBuf> {
    let k = &config.kafka;
    let t = &config.topics;
    let mut text = format!(
        "[kafka]\n\"bootstrap.servers\" = {:?}\n\"group.id\" = {:?}\n\"processing.guarantee\" = {:?}\n\"commit.interval.ms\" = {}\n\"output.partitions\" = {}\n\"static.membership\" = {}\n\n",
        k.bootstrap_servers,
        k.group_id,
        k.processing_guarantee.to_string(),
        k.commit_interval_ms,
        k.output_partitions,
        k.static_membership
    );
    let mut all = k.properties.clone();
    all.extend(properties.iter().cloned());
    if !all.is_empty() {
        text += "[kafka.properties]\n";
        for (name, value) in &all {
            text += &format!("{name:?} = {value:?}\n");
        }
        text += "\n";
    }
    if !k.secrets.is_empty() {
        text += "[kafka.secrets]\n";
        for (name, source) in &k.secrets {
            text += &format!("{name:?} = {source}\n");
        }
        text += "\n";
    }
    let r = &config.schema_registry;
    if let Some(url) = &r.url {
        text += &format!("[schema_registry]\nurl = {url:?}\n");
        if let Some(ca) = &r.ca_location {
            text += &format!("\"ssl.ca.location\" = {:?}\n", ca.display().to_string());
        }
        if let Some(username) = &r.username {
            text += &format!("username = {username:?}\n");
        }
        if let Some(password) = &r.password {
            text += &format!("password = {password}\n");
        }
        if let Some(token) = &r.token {
            text += &format!("token = {token}\n");
        }
        text += "\n";
    }
    text += &format!("[sagas]\nenabled = {}\n\n", config.sagas.enabled);
    text += "[topics]\n";
    for (field, topic) in [
        ("anomalies", &t.anomalies),
        ("context", &t.context),
        ("commands", &t.commands),
        ("dead_letters", &t.dead_letters),
        ("agent_results", &t.agent_results),
        ("agent_votes", &t.agent_votes),
        ("sagas", &t.sagas),
        ("compensations", &t.compensations),
        ("escalations", &t.escalations),
    ] {
        text += &format!("{field} = {topic:?}\n");
    }
    text += &format!("\n[http]\nlisten = {http:?}\n");
    let path = dir.join("aura.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A loopback address no one listens on now.
pub fn free_local_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_config_loads_with_the_benchs_settings() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.kafka.commit_interval_ms = 7;
        config.sagas.enabled = false;
        config.topics.commands = "bench-x-commands".into();
        let props = [("debug".to_string(), "eos".to_string())];
        let path = write_config(dir.path(), &config, "127.0.0.1:1", &props).unwrap();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded.kafka.commit_interval_ms, 7);
        assert!(!loaded.sagas.enabled);
        assert_eq!(loaded.topics.commands, "bench-x-commands");
        assert_eq!(
            loaded.kafka.properties.get("debug").map(String::as_str),
            Some("eos")
        );
        assert_eq!(loaded.http.listen, "127.0.0.1:1");
    }

    #[test]
    fn the_written_config_carries_the_connections_security_but_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("kafka.password");
        std::fs::write(&password, "kafka-pw-5e1d").unwrap();
        let registry_password = dir.path().join("registry.password");
        std::fs::write(&registry_password, "registry-pw-9c2a").unwrap();
        let user = Config::parse(
            &format!(
                "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.username\" = \"aura\"\n\
                 [kafka.secrets]\n\"sasl.password\" = {{ file = {:?} }}\n\
                 [schema_registry]\nurl = \"https://registry:8081\"\nusername = \"u\"\npassword = {{ file = {:?} }}\n",
                password.display().to_string(),
                registry_password.display().to_string()
            ),
            Path::new("user.toml"),
        )
        .unwrap();
        let mut config = Config::default();
        crate::security::tools::carry_connection(&user, &mut config);
        let props = [("debug".to_string(), "eos".to_string())];
        let path = write_config(dir.path(), &config, "127.0.0.1:1", &props).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("kafka-pw-5e1d") && !text.contains("registry-pw-9c2a"),
            "{text}"
        );
        let loaded = Config::load(&path).unwrap();
        let client = crate::security::client_config(&loaded.kafka);
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("sasl.password"), Some("kafka-pw-5e1d"));
        assert_eq!(client.get("debug"), Some("eos"));
        let access = loaded.schema_registry.access().unwrap();
        assert!(matches!(
            access.auth,
            crate::security::RegistryAuth::Basic { .. }
        ));
    }
}
