//! Arbitrary bytes through every frame codec configuration: must never panic or over-allocate.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocols::framing::{FrameCodec, LengthPrefix};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    for prefix in [LengthPrefix::BinaryU16, LengthPrefix::Ascii4] {
        for header_len in [0, 5] {
            let mut codec = FrameCodec::new(prefix).with_header_len(header_len).with_max_frame_len(2048);
            let mut buf = BytesMut::from(data);
            while let Ok(Some(frame)) = codec.decode(&mut buf) {
                assert!(frame.header.len() + frame.payload.len() <= 2048);
            }
        }
    }
});
