//! Any bytes as a saga changelog record, as a restore reads them: refused or stored, and a
//! stored record is always readable afterwards (`get`, `iter`, timers), never a panic.
#![no_main]

use aura::saga::SagaStore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut store = SagaStore::new();
    // Records come one after another on a changelog: feed each line as one record.
    for record in data.split(|b| *b == b'\n') {
        let _ = store.insert_record(record);
    }
    for saga in store.iter() {
        assert!(store.get(&saga.saga_id).is_some());
        let _ = store.record(&saga.saga_id);
    }
    let _ = store.census();
    let _ = store.timers().len();
});
