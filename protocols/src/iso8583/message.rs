//! An ISO 8583 message in memory: an MTI and the values of fields 2-128.
//!
//! A message is spec-independent: it holds logical values (text as ASCII, BCD as its digits,
//! binary fields as raw bytes) and a [`Spec`](super::Spec) decides how they go on the wire. To keep
//! the switch fast there is no map per message: all values live in one buffer, indexed by a fixed
//! table of spans and a 128-bit presence mask that is also the bitmap. Unpacking a message costs
//! one allocation.
//!
//! Card data never leaves through `Debug` or [`Message::describe`]: PAN and extended PAN show
//! first 6 / last 4, track data and the PIN block are hidden, ICC data shows only its length.

use std::borrow::Cow;
use std::fmt;

use crate::types::{mask_pan, mask_track2};

use super::error::FieldError;
use super::mti::Mti;
use super::spec::Spec;

#[derive(Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

/// An ISO 8583 message. Build one with [`Message::new`] and the setters, or get one from
/// [`Spec::unpack`].
#[derive(Clone)]
pub struct Message {
    mti: Mti,
    /// Field `n` present ⇔ bit `128 - n` set: `to_be_bytes()` is the wire bitmap.
    present: u128,
    spans: [Span; 129],
    data: Vec<u8>,
    /// Bytes of `data` no longer referenced (overwritten values), reclaimed by `compact`.
    garbage: usize,
}

#[inline]
pub(crate) fn bit(n: u8) -> u128 {
    1u128 << (128 - u32::from(n))
}

/// Whether `n` is a data field a message can carry (field 1 and bit 65 are bitmaps).
#[inline]
pub(crate) fn is_data_field(n: u8) -> bool {
    (2..=128).contains(&n) && n != 65
}

impl Message {
    /// A message with this MTI and no fields; the MTI must be four digits.
    pub fn new(mti: &str) -> Result<Message, FieldError> {
        Ok(Self::with_mti(Mti::parse(mti)?))
    }

    pub fn with_mti(mti: Mti) -> Message {
        Self::with_capacity(mti, 256)
    }

    pub(crate) fn with_capacity(mti: Mti, capacity: usize) -> Message {
        Message {
            mti,
            present: 0,
            spans: [Span::default(); 129],
            data: Vec::with_capacity(capacity),
            garbage: 0,
        }
    }

    pub fn mti(&self) -> Mti {
        self.mti
    }

    pub fn set_mti(&mut self, mti: Mti) -> &mut Self {
        self.mti = mti;
        self
    }

    /// Present fields as a 128-bit mask (bit 127 = field 1 … bit 0 = field 128).
    pub(crate) fn presence(&self) -> u128 {
        self.present
    }

    pub fn contains(&self, n: u8) -> bool {
        is_data_field(n) && self.present & bit(n) != 0
    }

    /// The value of field `n`, as the message holds it.
    #[inline]
    pub fn get(&self, n: u8) -> Option<&[u8]> {
        if !self.contains(n) {
            return None;
        }
        let span = self.spans.get(usize::from(n))?;
        let start = span.start as usize;
        self.data.get(start..start + span.len as usize)
    }

    /// The value of field `n` as text; `None` if absent or not UTF-8 (a binary field).
    pub fn get_str(&self, n: u8) -> Option<&str> {
        self.get(n).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Sets field `n` (2-64, 66-128). The value is checked against a spec when packed.
    pub fn set(&mut self, n: u8, value: impl AsRef<[u8]>) -> Result<&mut Self, FieldError> {
        if !is_data_field(n) {
            return Err(FieldError::NotSettable(n));
        }
        let value = value.as_ref();
        let i = usize::from(n);
        if self.present & bit(n) != 0 && value.len() <= self.spans[i].len as usize {
            // Overwrite in place: no growth for a value that fits.
            let start = self.spans[i].start as usize;
            self.garbage += self.spans[i].len as usize - value.len();
            if let Some(slot) = self.data.get_mut(start..start + value.len()) {
                slot.copy_from_slice(value);
                self.spans[i].len = value.len() as u32;
                return Ok(self);
            }
        }
        if self.present & bit(n) != 0 {
            self.garbage += self.spans[i].len as usize;
        }
        self.maybe_compact();
        let start = self.data.len();
        self.data.extend_from_slice(value);
        self.record(n, start, value.len());
        Ok(self)
    }

    pub fn set_str(&mut self, n: u8, value: &str) -> Result<&mut Self, FieldError> {
        self.set(n, value.as_bytes())
    }

    /// Removes field `n`, returning its value.
    pub fn remove(&mut self, n: u8) -> Option<Vec<u8>> {
        let value = self.get(n)?.to_vec();
        self.present &= !bit(n);
        self.garbage += value.len();
        Some(value)
    }

    /// Present fields in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        self.field_numbers()
            .filter_map(|n| self.get(n).map(|v| (n, v)))
    }

    /// Numbers of the present fields, ascending.
    pub fn field_numbers(&self) -> impl Iterator<Item = u8> {
        let mut bits = self.present;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let n = bits.leading_zeros() as u8 + 1;
            bits &= !bit(n);
            Some(n)
        })
    }

    /// Number of present fields.
    pub fn len(&self) -> usize {
        self.present.count_ones() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// An upper estimate of the packed size, to reserve once.
    pub(crate) fn encoded_len_hint(&self) -> usize {
        self.data.len() - self.garbage.min(self.data.len()) + 4 * self.len() + 4 + 32
    }

    /// The value buffer, for the decoder to append to; followed by [`Message::record`].
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Marks `data[start..start + len]` as the value of field `n`.
    pub(crate) fn record(&mut self, n: u8, start: usize, len: usize) {
        if let Some(span) = self.spans.get_mut(usize::from(n)) {
            *span = Span {
                start: start as u32,
                len: len as u32,
            };
            self.present |= bit(n);
        }
    }

    fn maybe_compact(&mut self) {
        if self.garbage < 1024 || self.garbage * 2 < self.data.len() {
            return;
        }
        let mut data = Vec::with_capacity(self.data.len() - self.garbage + 64);
        for n in self.field_numbers().collect::<Vec<_>>() {
            if let Some(v) = self.get(n) {
                let start = data.len();
                data.extend_from_slice(v);
                self.spans[usize::from(n)] = Span {
                    start: start as u32,
                    len: v.len() as u32,
                };
            }
        }
        self.data = data;
        self.garbage = 0;
    }

    /// A multi-line description for logs and the CLI, card data masked.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let names = Spec::iso87_ascii();
        let mut out = format!("MTI {}\n", self.mti);
        for (n, v) in self.iter() {
            let _ = writeln!(
                out,
                "  {n:03} {:<40} {}",
                names.description(n),
                self.display_field(n, v)
            );
        }
        out
    }

    /// Whether field 48 of this message carries a key: a key change answer (network management
    /// code 161 in field 70) holds the zone PIN key under the zone master key there.
    fn carries_key(&self, n: u8) -> bool {
        n == KEY_DATA_FIELD && self.get(70) == Some(KEY_CHANGE_CODE)
    }

    /// The masked form of field `n` of this message: card data (any message), and the key of a
    /// key change answer. Enciphered, but a logged key cryptogram helps whoever later gets the
    /// master key, so only its length shows.
    pub(crate) fn masked_field(&self, n: u8, v: &[u8]) -> Option<String> {
        if self.carries_key(n) {
            return Some(format!("**** (key, {} characters)", v.len()));
        }
        masked_value(n, v)
    }

    /// [`display_value`] with this message's context (see [`Message::masked_field`]).
    fn display_field<'a>(&self, n: u8, v: &'a [u8]) -> Cow<'a, str> {
        match self.masked_field(n, v) {
            Some(masked) => Cow::Owned(masked),
            None => display_value(n, v),
        }
    }
}

/// Field 48, additional data: where the dialect's key change answer carries the key.
const KEY_DATA_FIELD: u8 = 48;
/// Field 70's network management code of a key change.
const KEY_CHANGE_CODE: &[u8] = b"161";

/// How field `n` may be shown to a human: masked card data, text, or hex for binary values.
pub(crate) fn display_value(n: u8, v: &[u8]) -> Cow<'_, str> {
    if let Some(masked) = masked_value(n, v) {
        return Cow::Owned(masked);
    }
    match std::str::from_utf8(v) {
        Ok(s) if s.bytes().all(|b| (0x20..=0x7E).contains(&b)) => Cow::Borrowed(s),
        _ => Cow::Owned(hex::encode_upper(v)),
    }
}

/// The masked form of a sensitive field, `None` for fields that are not card data.
pub(crate) fn masked_value(n: u8, v: &[u8]) -> Option<String> {
    match n {
        2 | 34 => Some(mask_pan(&String::from_utf8_lossy(v))),
        35 | 36 => Some(mask_track2(&String::from_utf8_lossy(v))),
        45 | 52 => Some("****".to_owned()),
        55 => Some(format!("[{} bytes]", v.len())),
        _ => None,
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.mti == other.mti && self.present == other.present && self.iter().eq(other.iter())
    }
}
impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Fields<'a>(&'a Message);
        impl fmt::Debug for Fields<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(n, v)| (n, self.0.display_field(n, v))))
                    .finish()
            }
        }
        f.debug_struct("Message")
            .field("mti", &self.mti.as_str())
            .field("fields", &Fields(self))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_remove_and_iterate_in_order() {
        let mut m = Message::new("0100").unwrap();
        m.set_str(41, "ATM00001")
            .unwrap()
            .set_str(3, "010000")
            .unwrap()
            .set(128, [1u8; 8])
            .unwrap();
        assert_eq!(m.get_str(3), Some("010000"));
        assert_eq!(m.get(128), Some(&[1u8; 8][..]));
        assert_eq!(m.field_numbers().collect::<Vec<_>>(), vec![3, 41, 128]);
        assert_eq!(m.remove(41), Some(b"ATM00001".to_vec()));
        assert_eq!(m.remove(41), None);
        assert_eq!(m.len(), 2);
        assert!(
            m.set_str(1, "x").is_err()
                && m.set_str(65, "x").is_err()
                && m.set_str(129, "x").is_err()
        );
        assert!(m.set_str(0, "x").is_err());
        assert_eq!(m.get(1), None);
    }

    #[test]
    fn overwriting_reuses_or_compacts_the_buffer() {
        let mut m = Message::new("0100").unwrap();
        for i in 0..10_000u32 {
            m.set_str(48, &"x".repeat((i % 300) as usize)).unwrap();
            m.set_str(11, &format!("{:06}", i)).unwrap();
        }
        assert_eq!(m.get_str(11), Some("009999"));
        assert!(m.data.len() < 8 * 1024, "buffer grew to {}", m.data.len());
    }

    #[test]
    fn equality_ignores_buffer_layout() {
        let mut a = Message::new("0200").unwrap();
        a.set_str(3, "999999")
            .unwrap()
            .set_str(3, "210000")
            .unwrap()
            .set_str(4, "000000000100")
            .unwrap();
        let mut b = Message::new("0200").unwrap();
        b.set_str(4, "000000000100")
            .unwrap()
            .set_str(3, "210000")
            .unwrap();
        assert_eq!(a, b);
        b.set_str(4, "000000000101").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn field_48_of_a_key_change_answer_is_masked_in_debug_describe_and_json() {
        let key = "8A1B2C3D4E5F60718293A4B5C6D7E8F908D7B41122334455667788";
        let mut m = Message::new("0810").unwrap();
        m.set_str(39, "00").unwrap();
        m.set_str(48, key).unwrap();
        m.set_str(53, "0000000000000003").unwrap();
        m.set_str(70, "161").unwrap();
        let spec = Spec::iso87_ascii();
        let json = serde_json::Value::Object(m.to_json(spec, false)).to_string();
        for text in [format!("{m:?}"), m.describe(), json] {
            assert!(!text.contains(&key[..16]), "key leaked in {text}");
            assert!(text.contains("****"), "{text}");
        }
        assert_eq!(m.to_json(spec, true)["48"], key, "--reveal shows it");
        // Field 48 of other messages (a status advice's detail) is left as it is.
        let mut status = Message::new("0820").unwrap();
        status.set_str(48, "cassette 2 low").unwrap();
        status.set_str(70, "301").unwrap();
        assert!(format!("{status:?}").contains("cassette 2 low"));
    }

    #[test]
    fn debug_and_describe_mask_card_data() {
        let mut m = Message::new("0100").unwrap();
        m.set_str(2, "4761739001010010").unwrap();
        m.set_str(35, "4761739001010010=22122011143804400000")
            .unwrap();
        m.set_str(45, "B4761739001010010^DOE/JOHN^2212").unwrap();
        m.set(52, [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0])
            .unwrap();
        for text in [format!("{m:?}"), format!("{m:#?}"), m.describe()] {
            for secret in [
                "4761739001010010",
                "22122011143804400000",
                "DOE/JOHN",
                "123456789ABCDEF0",
            ] {
                assert!(!text.contains(secret), "{secret} leaked in {text}");
            }
            assert!(text.contains("476173******0010"), "{text}");
        }
    }
}
