//! Fuzz the NDC parser: any bytes, every built-in dialect. Parsing must never panic, and whatever
//! parses must re-encode and read back to the same message (the codec's round-trip guarantee).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::ndc::{Dialect, NdcMessage};

fuzz_target!(|data: &[u8]| {
    for (name, dialect) in Dialect::builtin() {
        let Ok(msg) = NdcMessage::parse(data, &dialect) else {
            continue;
        };
        let bytes = msg
            .encode(&dialect)
            .unwrap_or_else(|e| panic!("{name}: parsed {msg:?} but cannot encode it: {e}"));
        let again = NdcMessage::parse(&bytes, &dialect)
            .unwrap_or_else(|e| panic!("{name}: re-encoded message does not parse: {e}"));
        assert_eq!(again, msg, "{name}: round trip changed the message");
        // Debug must work on anything that parsed (logs print it).
        let _ = format!("{msg:?}");
    }
});
