//! Fuzz NDC decoding as the agent and `atmctl ndc decode` meet real traffic: any bytes, every
//! built-in dialect. `decode` never fails and never panics, gives back exactly the same bytes,
//! and `Debug` (what logs print) works on whatever it gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::ndc::{Dialect, HostMessage, NdcMessage, TerminalMessage};

fuzz_target!(|data: &[u8]| {
    for (name, dialect) in Dialect::builtin() {
        let msg = NdcMessage::decode(data, &dialect);
        let bytes = msg
            .encode(&dialect)
            .unwrap_or_else(|e| panic!("{name}: decoded {msg:?} but cannot encode it: {e}"));
        assert_eq!(bytes, data, "{name}: decode then encode changed the bytes");
        // The direction-specific readers agree on exactness.
        let t = TerminalMessage::decode(data, &dialect);
        assert_eq!(
            t.encode(&dialect).ok().as_deref(),
            Some(data),
            "{name}: terminal"
        );
        let h = HostMessage::decode(data, &dialect);
        assert_eq!(
            h.encode(&dialect).ok().as_deref(),
            Some(data),
            "{name}: host"
        );
        let _ = format!("{msg:?}");
    }
});
