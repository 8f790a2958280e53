//! One task per input partition: records in offset order, one at a time.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::processor::Processor;
use crate::runtime::{InputRecord, RecordHandler};

use super::committer::Committer;
use super::RuntimeError;

/// Processes one partition's records until the channel closes or the partition is revoked.
///
/// Decoding may wait on the registry, so it happens outside the commit gate; processing and
/// handing outputs to the producer happen inside it, so a commit sees a record with all of
/// its outputs or not at all.
pub async fn run(
    mut records: mpsc::Receiver<InputRecord>,
    handler: RecordHandler,
    committer: Arc<Committer>,
    mut processor: Box<dyn Processor>,
    failures: mpsc::Sender<RuntimeError>,
) {
    let epoch = committer.epoch();
    while let Some(record) = records.recv().await {
        let started = Instant::now();
        handler
            .metrics()
            .records_in
            .with_label_values(&[&record.topic])
            .inc();
        let decoded = handler.decode(&record).await;
        let outcome = {
            let _gate = committer.enter();
            if committer.epoch() != epoch {
                return; // revoked: the next owner processes what is left
            }
            let outputs = handler.handle(
                processor.as_mut(),
                &record,
                decoded,
                crate::clock::now_ms(),
                started,
            );
            outputs
                .iter()
                .try_for_each(|o| committer.send(o))
                .map(|()| committer.record_done(&record))
        };
        if let Err(error) = outcome {
            let _ = failures.send(error).await;
            return;
        }
    }
}
