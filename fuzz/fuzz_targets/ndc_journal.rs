//! Fuzz the parsers of the electronic journal upload (`61`), the EJ command (`6`), EMV
//! configuration (`8`) and raw unknown messages: never a panic, and whatever parses encodes back
//! to the same bytes. The input is prefixed with each class so that the fuzzer spends its time
//! inside the message rather than on the class.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::ndc::{Dialect, EmvConfiguration, JournalAck, JournalUpload, UnknownMessage};

fuzz_target!(|data: &[u8]| {
    for (name, dialect) in Dialect::builtin() {
        let with = |class: &[u8]| [class, b"\x1c", data].concat();
        let raw = with(b"61");
        if let Ok(u) = JournalUpload::parse(&raw, &dialect) {
            assert_eq!(u.encode(&dialect).ok(), Some(raw), "{name}: 61");
            let _ = u.ack().map(|a| a.encode(&dialect));
            let _ = format!("{u:?}");
        }
        let raw = with(b"6");
        if let Ok(a) = JournalAck::parse(&raw, &dialect) {
            assert_eq!(a.encode(&dialect).ok(), Some(raw), "{name}: 6");
        }
        let raw = with(b"8");
        if let Ok(m) = EmvConfiguration::parse(&raw, &dialect) {
            assert_eq!(m.encode(&dialect).ok(), Some(raw), "{name}: 8");
        }
        let u = UnknownMessage::parse(data);
        assert_eq!(u.encode().ok().as_deref(), Some(data), "{name}: unknown");
        let _ = format!("{u:?}");
    }
});
