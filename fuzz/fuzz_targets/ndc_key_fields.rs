//! Fuzz the NDC key-material readers: the extended key change's key field (`<3-hex length><key
//! as 3-digit decimals>`) and PIN buffer A in the terminal's character set. Neither may panic;
//! whatever parses must encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::ndc::{KeyLoad, PinBuffer};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = KeyLoad::parse_field(&text) {
        let again = KeyLoad::parse_field(&k.encode_field()).expect("re-encoded key field parses");
        assert_eq!(again.key_bytes(), k.key_bytes());
        let _ = format!("{k:?}");
    }
    let buffer = PinBuffer::new(text.as_ref());
    if let Ok(block) = buffer.to_bytes() {
        assert_eq!(PinBuffer::from_bytes(&block).to_bytes().ok(), Some(block));
    }
    let _ = format!("{buffer:?}");
});
