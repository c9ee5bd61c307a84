//! # protocols — the wire formats of the ATM gateway
//!
//! Pure codecs, no sockets. Everything else in the workspace speaks through this crate, so it is
//! written to be correct to the byte, impossible to crash on any input, and fast.
//!
//! Layout:
//! - [`types`]: value types shared by all codecs (`Pan`, `Track2`, `Stan`, `TerminalId`, `Amount` …),
//!   with masking of card data in `Debug`/`Display`.
//! - [`iso8583`]: ISO 8583 messages whose field layout is data (a `Spec`), with built-in specs that
//!   interoperate byte for byte with pyiso8583 4.0.1 and specs loaded from TOML.
//! - [`ndc`]: NCR NDC messages between an ATM and its host, with dialect options in a `Dialect` value.
//! - [`dialect`]: the agent ↔ switch dialect as types: each request and answer the two daemons
//!   exchange, its processing and response codes, to and from an `iso87-ascii` message.
//! - [`framing`]: tokio-util `Decoder`/`Encoder`s for length-prefixed frames, with a hard size limit.
#![forbid(unsafe_code)]

pub mod dialect;
pub mod framing;
pub mod iso8583;
pub mod ndc;
pub mod types;
