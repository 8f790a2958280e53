//! Any bytes, framed or not, decoded as every record type the service reads, with the
//! shipped (embedded) schemas: a malformed record is an error, never a panic or a hang.
#![no_main]

use aura::codec::Codec;
use aura::model::{AgentCommand, AgentResult, AgentVote, TdaAnomaly, TdaContext};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn codec() -> &'static Codec {
    static CODEC: OnceLock<Codec> = OnceLock::new();
    CODEC.get_or_init(Codec::embedded)
}

fuzz_target!(|data: &[u8]| {
    let codec = codec();
    // The embedded codec never waits: its futures are ready at once.
    let _ = futures::executor::block_on(codec.decode::<TdaAnomaly>(data));
    let _ = futures::executor::block_on(codec.decode::<AgentResult>(data));
    let _ = futures::executor::block_on(codec.decode::<AgentVote>(data));
    let _ = futures::executor::block_on(codec.decode::<AgentCommand>(data));
    let _ = futures::executor::block_on(codec.decode::<TdaContext>(data));
    // A well-framed TdaAnomaly header in front of the bytes, so the Avro reader is reached
    // on every input, not only on the ones that happen to start with a valid header.
    let mut framed = vec![0, 0, 0, 0, 1];
    framed.extend_from_slice(data);
    if let Ok(a) = futures::executor::block_on(codec.decode::<TdaAnomaly>(&framed)) {
        let _ = aura::processor::validate(&a, &Default::default(), 0);
    }
});
