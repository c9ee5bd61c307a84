//! Arbitrary bytes as an agent↔switch message (`iso87-ascii`), read as a request and as an
//! answer of the dialect, and as field 63's offline deposit ranges: reading must never panic, and
//! whatever reads as a request or a range list writes back and reads as itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocols::dialect::{Answer, OfflineDeposits, Request};
use protocols::iso8583::Spec;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(ranges) = OfflineDeposits::from_field(text) {
            assert_eq!(OfflineDeposits::from_field(&ranges.to_field()), Some(ranges));
        }
    }
    let Ok(msg) = Spec::iso87_ascii().unpack(data) else {
        return;
    };
    let _ = Answer::from_message(&msg);
    if let Ok(request) = Request::from_message(&msg) {
        if let Ok(again) = request.to_message() {
            assert_eq!(Request::from_message(&again).ok(), Some(request));
        }
    }
});
