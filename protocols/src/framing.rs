//! Length-prefixed framing for ISO 8583 and NDC over TCP.
//!
//! Both protocols ride on a stream socket, each message preceded by its length. This module turns
//! a byte stream into frames and back, as tokio-util [`Decoder`]/[`Encoder`]s:
//!
//! - [`LengthPrefix::BinaryU16`] (the default): 2-byte unsigned big-endian length (jPOS NACChannel,
//!   NDC over TCP), excluding the 2 bytes themselves;
//! - [`LengthPrefix::Ascii4`]: 4 ASCII decimal digits (`"0123"`), used by some bank hosts;
//! - an optional fixed header after the length (e.g. a 5-byte TPDU), counted in the length and
//!   handed to the caller separately from the payload.
//!
//! A hostile length header must not become an allocation: the declared length is checked against
//! [`FrameCodec::max_frame_len`] *before* any buffer is reserved, and an oversized or malformed header
//! is an error. After such an error the stream is out of sync; the connection policy of every caller
//! is to log it and close the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

/// The default upper bound of one frame (header + payload). ISO 8583 messages of an ATM network are
/// well under 2 KiB; NDC customisation messages (screens) can be larger.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024;

/// How the length of a frame is written in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LengthPrefix {
    /// 2-byte unsigned big-endian binary length.
    #[default]
    BinaryU16,
    /// 4-byte ASCII decimal length, zero-filled.
    Ascii4,
}

impl LengthPrefix {
    /// Bytes the prefix itself occupies.
    pub const fn width(self) -> usize {
        match self {
            Self::BinaryU16 => 2,
            Self::Ascii4 => 4,
        }
    }
    /// The largest length the prefix can express.
    pub const fn max_len(self) -> usize {
        match self {
            Self::BinaryU16 => u16::MAX as usize,
            Self::Ascii4 => 9999,
        }
    }
}

/// What can go wrong while framing. Every variant except `Io` means the peer sent something that
/// is not a frame of the configured kind.
#[derive(Debug, Error)]
pub enum FramingError {
    #[error("frame of {declared} bytes exceeds the limit of {max} bytes")]
    TooLarge { declared: usize, max: usize },
    #[error("length header {header:?} is not {digits} ASCII decimal digits")]
    BadAsciiLength { header: String, digits: usize },
    #[error("frame of {declared} bytes is shorter than the {header_len}-byte fixed header")]
    ShorterThanHeader { declared: usize, header_len: usize },
    #[error("fixed header must be {expected} bytes, got {got}")]
    HeaderLength { expected: usize, got: usize },
    #[error("i/o error on the framed stream: {0}")]
    Io(#[from] std::io::Error),
}

/// One frame: the fixed header (empty when none is configured) and the message payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub header: Bytes,
    pub payload: Bytes,
}

impl Frame {
    /// A frame without fixed header.
    pub fn payload(payload: impl Into<Bytes>) -> Self {
        Self {
            header: Bytes::new(),
            payload: payload.into(),
        }
    }
}

/// Length-prefixed frame codec: the one `Decoder`/`Encoder` for every framed socket here.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    prefix: LengthPrefix,
    header_len: usize,
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(LengthPrefix::BinaryU16)
    }
}

impl FrameCodec {
    /// A codec with the given prefix, no fixed header and [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new(prefix: LengthPrefix) -> Self {
        Self {
            prefix,
            header_len: 0,
            max_frame_len: DEFAULT_MAX_FRAME_LEN.min(prefix.max_len()),
        }
    }
    /// Adds a fixed header of `len` bytes (e.g. 5 for a TPDU) after the length.
    pub fn with_header_len(mut self, len: usize) -> Self {
        self.header_len = len;
        self
    }
    /// Sets the largest accepted frame (header + payload), capped by what the prefix can express.
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max.min(self.prefix.max_len());
        self
    }
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
    pub fn prefix(&self) -> LengthPrefix {
        self.prefix
    }
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Reads the declared length from the start of `src`, which holds at least the prefix.
    fn declared_len(&self, src: &[u8]) -> Result<usize, FramingError> {
        match self.prefix {
            LengthPrefix::BinaryU16 => Ok(usize::from(u16::from_be_bytes([src[0], src[1]]))),
            LengthPrefix::Ascii4 => {
                let digits = &src[..4];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err(FramingError::BadAsciiLength {
                        header: String::from_utf8_lossy(digits).into_owned(),
                        digits: 4,
                    });
                }
                Ok(digits
                    .iter()
                    .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
            }
        }
    }

    fn write_len(&self, len: usize, dst: &mut BytesMut) {
        match self.prefix {
            // `len` was checked against max_frame_len, which is capped by max_len().
            LengthPrefix::BinaryU16 => dst.put_u16(len as u16),
            LengthPrefix::Ascii4 => dst.put_slice(format!("{len:04}").as_bytes()),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        let prefix_len = self.prefix.width();
        if src.len() < prefix_len {
            return Ok(None);
        }
        let declared = self.declared_len(src)?;
        if declared > self.max_frame_len {
            return Err(FramingError::TooLarge {
                declared,
                max: self.max_frame_len,
            });
        }
        if declared < self.header_len {
            return Err(FramingError::ShorterThanHeader {
                declared,
                header_len: self.header_len,
            });
        }
        let total = prefix_len + declared;
        if src.len() < total {
            // Bounded by max_frame_len, checked above: reserving is safe.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(prefix_len);
        let mut body = src.split_to(declared).freeze();
        let payload = body.split_off(self.header_len);
        Ok(Some(Frame {
            header: body,
            payload,
        }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FramingError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FramingError> {
        if frame.header.len() != self.header_len {
            return Err(FramingError::HeaderLength {
                expected: self.header_len,
                got: frame.header.len(),
            });
        }
        let len = frame.header.len() + frame.payload.len();
        if len > self.max_frame_len {
            return Err(FramingError::TooLarge {
                declared: len,
                max: self.max_frame_len,
            });
        }
        dst.reserve(self.prefix.width() + len);
        self.write_len(len, dst);
        dst.put_slice(&frame.header);
        dst.put_slice(&frame.payload);
        Ok(())
    }
}

/// Encodes a bare payload; only valid for a codec without fixed header.
impl Encoder<Bytes> for FrameCodec {
    type Error = FramingError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), FramingError> {
        self.encode(Frame::payload(payload), dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> Result<Vec<Frame>, FramingError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn binary_prefix_round_trip() {
        let mut c = FrameCodec::default();
        let mut buf = BytesMut::new();
        c.encode(Bytes::from_static(b"0800"), &mut buf).unwrap();
        assert_eq!(&buf[..], b"\x00\x040800");
        let frames = decode_all(&mut c, &buf).unwrap();
        assert_eq!(frames, vec![Frame::payload(&b"0800"[..])]);
    }

    #[test]
    fn ascii_prefix_round_trip() {
        let mut c = FrameCodec::new(LengthPrefix::Ascii4);
        let mut buf = BytesMut::new();
        c.encode(Bytes::from_static(b"hello"), &mut buf).unwrap();
        assert_eq!(&buf[..], b"0005hello");
        assert_eq!(
            decode_all(&mut c, &buf).unwrap()[0].payload,
            Bytes::from_static(b"hello")
        );
    }

    #[test]
    fn partial_input_waits_for_more() {
        let mut c = FrameCodec::default();
        let mut buf = BytesMut::from(&b"\x00\x05ab"[..]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"cde\x00");
        assert_eq!(
            c.decode(&mut buf).unwrap().unwrap().payload,
            Bytes::from_static(b"abcde")
        );
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert_eq!(&buf[..], b"\x00");
    }

    #[test]
    fn hostile_length_is_an_error_not_an_allocation() {
        let mut c = FrameCodec::default().with_max_frame_len(1024);
        let mut buf = BytesMut::from(&b"\xff\xff"[..]);
        let err = c.decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            FramingError::TooLarge {
                declared: 65535,
                max: 1024
            }
        ));
        assert!(
            buf.capacity() < 1024,
            "no buffer was reserved for the hostile frame"
        );
    }

    #[test]
    fn non_digit_ascii_length_is_rejected() {
        let mut c = FrameCodec::new(LengthPrefix::Ascii4);
        let err = decode_all(&mut c, b"00x5hello").unwrap_err();
        assert!(matches!(err, FramingError::BadAsciiLength { .. }), "{err}");
    }

    #[test]
    fn fixed_header_is_split_from_payload() {
        let mut c = FrameCodec::default().with_header_len(5);
        let mut buf = BytesMut::new();
        let frame = Frame {
            header: Bytes::from_static(b"\x60\x00\x01\x00\x00"),
            payload: Bytes::from_static(b"0800"),
        };
        c.encode(frame.clone(), &mut buf).unwrap();
        assert_eq!(&buf[..2], b"\x00\x09");
        assert_eq!(decode_all(&mut c, &buf).unwrap(), vec![frame]);
        let err = decode_all(&mut c, b"\x00\x03abc").unwrap_err();
        assert!(matches!(
            err,
            FramingError::ShorterThanHeader {
                declared: 3,
                header_len: 5
            }
        ));
        let err = c
            .encode(Bytes::from_static(b"x"), &mut BytesMut::new())
            .unwrap_err();
        assert!(matches!(
            err,
            FramingError::HeaderLength {
                expected: 5,
                got: 0
            }
        ));
    }

    #[test]
    fn oversized_outbound_frame_is_refused() {
        let mut c = FrameCodec::default().with_max_frame_len(4);
        let err = c
            .encode(Bytes::from_static(b"12345"), &mut BytesMut::new())
            .unwrap_err();
        assert!(matches!(
            err,
            FramingError::TooLarge {
                declared: 5,
                max: 4
            }
        ));
    }

    #[test]
    fn empty_frame_is_a_frame() {
        let mut c = FrameCodec::default();
        assert_eq!(
            decode_all(&mut c, b"\x00\x00").unwrap(),
            vec![Frame::default()]
        );
    }
}
