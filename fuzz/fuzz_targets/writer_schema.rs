//! A hostile writer schema, as a registry could serve it, then a datum written with it:
//! refused or decoded, never a stack overflow, a panic or a huge allocation.
//! Input: schema text, a 0xFF byte, the datum.
#![no_main]

use aura::codec::Codec;
use aura::model::TdaAnomaly;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0xFF) else {
        return;
    };
    let Ok(schema) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let codec = Codec::embedded();
    if codec.insert_writer_schema(4242, schema).is_err() {
        return;
    }
    let mut framed = vec![0, 0, 0, 0x10, 0x92];
    framed.extend_from_slice(&data[split + 1..]);
    let _ = futures::executor::block_on(codec.decode::<TdaAnomaly>(&framed));
});
