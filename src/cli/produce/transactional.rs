//! `aura produce --transactional-id`: records published in Kafka transactions, so a
//! read_committed consumer (Aura is one) sees each exactly once, even across a broker restart.
//!
//! The delivery rule: a transaction holds the records of one `--commit-interval-ms`. It
//! commits, or it is aborted and the same records are sent again in the next one, which is
//! why they are kept until their commit. An idempotent producer alone does not promise this:
//! when librdkafka gives up on a request and bumps the producer epoch, records already written
//! can be written again under the new epoch.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tracing::warn;

pub struct TransactionalSink {
    producer: FutureProducer,
    topic: String,
    interval: Duration,
    /// How long one commit may take before it counts as failed (and is tried again).
    patience: Duration,
    opened: Instant,
    /// The open transaction's records, sent again if it is aborted.
    batch: Vec<(Vec<u8>, Vec<u8>)>,
    pub committed: u64,
    /// Transactions aborted and sent again.
    pub aborted: u64,
}

impl TransactionalSink {
    /// Fences an earlier producer with the same transactional id and opens a transaction.
    pub async fn open(
        producer: FutureProducer,
        topic: &str,
        interval: Duration,
        patience: Duration,
    ) -> anyhow::Result<Self> {
        let p = producer.clone();
        blocking(move || {
            p.init_transactions(patience)?;
            p.begin_transaction()
        })
        .await
        .context("cannot start a transaction; is the broker up, and may this client use its transactional id?")?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            interval,
            patience,
            opened: Instant::now(),
            batch: Vec::new(),
            committed: 0,
            aborted: 0,
        })
    }

    /// Adds a record to the open transaction, committing it once it is `interval` old.
    pub async fn send(&mut self, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<()> {
        self.hand_over(&key, &value).await?;
        self.batch.push((key, value));
        if self.opened.elapsed() >= self.interval {
            self.commit().await?;
        }
        Ok(())
    }

    /// Commits what is left.
    pub async fn finish(&mut self) -> anyhow::Result<()> {
        self.commit().await
    }

    async fn hand_over(&self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        loop {
            let record = FutureRecord::to(&self.topic).key(key).payload(value);
            match self.producer.send_result(record) {
                // The delivery report is not awaited: the commit waits for every record of
                // its transaction, and fails if one was not delivered.
                Ok(_) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err((error, _)) => {
                    return Err(error).context("cannot hand a record to the producer")
                }
            }
        }
    }

    /// Commits the open transaction and begins the next. A commit that fails in a way that
    /// leaves the transaction open (a timeout) is tried again; one that needs an abort is
    /// aborted, and its records are sent again in a new transaction. A fenced or fatal
    /// producer ends the run.
    async fn commit(&mut self) -> anyhow::Result<()> {
        loop {
            let (p, patience) = (self.producer.clone(), self.patience);
            match blocking(move || p.commit_transaction(patience)).await {
                Ok(()) => break,
                Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                    warn!(error = %e, "commit not answered yet; trying again");
                }
                Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                    warn!(error = %e, records = self.batch.len(), "transaction aborted; sending its records again");
                    let p = self.producer.clone();
                    blocking(move || {
                        p.abort_transaction(patience)?;
                        p.begin_transaction()
                    })
                    .await
                    .context("cannot abort the failed transaction")?;
                    self.aborted += 1;
                    for (key, value) in &self.batch {
                        self.hand_over(key, value).await?;
                    }
                }
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!(
                            "the transaction cannot commit ({} records committed before it); \
                             was another producer started with the same --transactional-id?",
                            self.committed
                        )
                    })
                }
            }
        }
        self.committed += self.batch.len() as u64;
        self.batch.clear();
        let p = self.producer.clone();
        blocking(move || p.begin_transaction())
            .await
            .context("cannot begin the next transaction")?;
        self.opened = Instant::now();
        Ok(())
    }
}

/// librdkafka's transactional calls block: they run off the async worker threads.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
}
