//! Arbitrary bytes through the ISO 8583 unpacker with both built-in specs: it must never panic,
//! and whatever it accepts must pack again and unpack to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocols::iso8583::{Message, Spec};

fuzz_target!(|data: &[u8]| {
    let _ = Spec::iso87_ascii().unpack(data);
    let _ = Spec::iso87_binary().unpack(data);
    for spec in [Spec::iso87_ascii(), Spec::iso87_binary()] {
        if let Ok(msg) = spec.unpack(data) {
            let packed = spec.pack(&msg).expect("an unpacked message packs again");
            assert_eq!(spec.unpack(&packed).expect("a packed message unpacks"), msg);
            let _ = msg.describe();
            let json = msg.to_json(spec, true);
            assert_eq!(
                Message::from_json(&json, spec).expect("own JSON reads back"),
                msg
            );
        }
    }
});
