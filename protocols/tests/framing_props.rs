//! Property tests for the frame codec: encode∘decode is the identity for any payload sequence,
//! and decoding arbitrary bytes, fed in arbitrary chunks, never panics.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use protocols::framing::{Frame, FrameCodec, LengthPrefix};
use tokio_util::codec::{Decoder, Encoder};

fn codec(ascii: bool, header_len: usize) -> FrameCodec {
    let prefix = if ascii {
        LengthPrefix::Ascii4
    } else {
        LengthPrefix::BinaryU16
    };
    FrameCodec::new(prefix)
        .with_header_len(header_len)
        .with_max_frame_len(4096)
}

proptest! {
    #[test]
    fn frames_survive_encode_then_chunked_decode(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..8),
        ascii in any::<bool>(),
        header in proptest::collection::vec(any::<u8>(), 0..6),
        chunk in 1usize..64,
    ) {
        let mut c = codec(ascii, header.len());
        let frames: Vec<Frame> = payloads
            .into_iter()
            .map(|p| Frame { header: Bytes::from(header.clone()), payload: Bytes::from(p) })
            .collect();
        let mut wire = BytesMut::new();
        for f in &frames {
            c.encode(f.clone(), &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(f) = c.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        prop_assert_eq!(out, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn decoding_random_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        ascii in any::<bool>(),
        header_len in 0usize..6,
    ) {
        let mut c = codec(ascii, header_len);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(f)) = c.decode(&mut buf) {
            prop_assert!(f.header.len() + f.payload.len() <= 4096);
        }
    }
}
