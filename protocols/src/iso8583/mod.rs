//! ISO 8583 messages whose field layout is data.
//!
//! The agent and the switch talk ISO 8583:1987 in the layout of pyiso8583 4.0.1's `default_ascii`
//! spec; bank hosts each have their dialect. So the layout is a [`Spec`] — built in, or loaded from
//! a TOML file — and the codec is one piece of code that reads any spec:
//!
//! ```
//! use protocols::iso8583::{Message, Spec};
//! use protocols::types::Stan;
//!
//! let spec = Spec::iso87_ascii();
//! let mut m = Message::new("0800")?;
//! m.set_stan(Stan::new(1)?).set_network_management_code(301)?;
//! let bytes = spec.pack(&m)?;
//! assert_eq!(spec.unpack(&bytes)?, m);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layout (read in this order):
//! - [`spec`]: [`Spec`] and [`FieldSpec`]: length types, encodings, content classes; TOML loading;
//!   the built-in `iso87-ascii` and `iso87-binary` (`specs/*.toml`, generated from pyiso8583).
//! - `field`: one field on the wire (length header + value) in every encoding; `ebcdic`: cp500.
//! - [`message`]: [`Message`], values in one buffer indexed by a presence mask; masked `Debug`.
//! - `codec`: [`Spec::pack`], [`Spec::pack_into`], [`Spec::unpack`]: MTI, bitmaps, fields.
//! - `typed`: typed accessors (PAN, amount, STAN, fields 54/90/95 …) and [`Message::response_to`].
//! - `json`: [`Message::to_json`] / [`Message::from_json`] in pyiso8583's `decode` layout.
//! - [`error`]: every failure, naming the field and (when unpacking) the byte offset.
//!
//! Covered:
//! - Fields 2-128 with primary and secondary bitmaps (ASCII/EBCDIC hex or binary); MTI as
//!   ASCII, EBCDIC or BCD.
//! - Fixed, LVAR … LLLLVAR fields; length headers in ASCII, EBCDIC (cp500), BCD or binary; values
//!   in ASCII, EBCDIC, BCD (with pyiso8583's `len_count = "nibbles"` and left/right pad) or binary.
//! - Content classes n, an, ans, z, x+n, b, checked both when packing and when unpacking.
//! - Byte-for-byte interoperability with pyiso8583 4.0.1 `default_ascii` and `default`, checked
//!   against vectors it produced (`tests/vectors/iso8583/`).
//!
//! Not covered (and how the codec behaves):
//! - Message headers before the MTI (pyiso8583's `h`); framing is `crate::framing`'s job.
//! - Tertiary bitmaps and fields 129-192: bit 65 set is an [`UnpackErrorKind::TertiaryBitmap`].
//! - Text outside ASCII: an EBCDIC or ASCII byte that does not decode to ASCII is rejected
//!   (pyiso8583 would accept Latin-1 characters in cp500 fields).
//! - Where pyiso8583 is laxer than the standard we are stricter: length headers must be plain digits
//!   (Python's `int()` also takes `" 9"` or `"+9"`), n fields digits only, bitmaps without spaces.
//! - Field 53 stays ASCII in `iso87-binary`, as in pyiso8583's `default` spec.
//! - Subfields of private fields (48, 60-63, 120-127) and EMV TLV parsing of field 55.
//! - MAC computation (fields 64/128 are carried, not computed or verified).
#![forbid(unsafe_code)]

mod codec;
mod ebcdic;
pub mod error;
mod field;
mod json;
pub mod message;
mod mti;
pub mod spec;
mod typed;

pub use error::{
    FieldError, FieldRef, JsonError, PackError, PackErrorKind, SpecError, UnpackError,
    UnpackErrorKind,
};
pub use message::Message;
pub use mti::Mti;
pub use spec::{ContentClass, Encoding, FieldSpec, LenCount, LenType, Pad, Spec};
pub use typed::{utc_fields, utc_year_and_day};
pub use typed::{
    AdditionalAmount, LocalDate, LocalTime, OriginalData, PinBlock, ProcessingCode,
    ReplacementAmounts, Sign, SignedAmount, TransmissionDateTime, ECHO_FIELDS,
};
