//! Field splitting and joining: the only place that knows about FS/GS bytes and byte widths.
//!
//! NDC is positional: a message is fields separated by FS (0x1C), empty fields keep their
//! separators, and some fields are split again by GS (0x1D). [`Reader`] indexes the FS fields
//! without ever slicing out of bounds; [`Writer`] joins them back and refuses a value that would
//! break the framing (an FS or GS inside a field, a character that is not one byte).
//!
//! Text is decoded byte-for-char (ISO 8859-1), so every byte string has a `String` form and
//! encoding gives back the same bytes: printer data with code-page bytes survives a round trip.

use super::dialect::Dialect;
use super::error::{NdcError, Reason};

pub(crate) const FS: u8 = 0x1C;
pub(crate) const GS: u8 = 0x1D;

/// For `skip_serializing_if` on a message's trailing FS count.
pub(crate) fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Bytes to text, one char per byte.
pub(crate) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

pub(crate) fn is_digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

pub(crate) fn is_hex8(b: &[u8]) -> bool {
    b.len() == 8 && b.iter().all(u8::is_ascii_hexdigit)
}

/// A fixed-width decimal number.
pub(crate) fn fixed_digits(b: &[u8], width: usize) -> Result<u64, Reason> {
    if b.len() != width {
        return Err(Reason::BadLength {
            expected: width,
            got: b.len(),
        });
    }
    digits_value(b)
}

/// Any-width decimal number of at most 18 digits.
pub(crate) fn digits_value(b: &[u8]) -> Result<u64, Reason> {
    if b.is_empty() || !is_digits(b) {
        return Err(Reason::NonDigit);
    }
    if b.len() > 18 {
        return Err(Reason::Invalid("number longer than 18 digits"));
    }
    Ok(b.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

/// Consecutive fixed-width counts (notes per cassette).
pub(crate) fn counts(b: &[u8], n: usize, width: usize) -> Result<Vec<u32>, Reason> {
    if b.len() != n * width {
        return Err(Reason::BadLength {
            expected: n * width,
            got: b.len(),
        });
    }
    b.chunks(width)
        .map(|c| digits_value(c).map(|v| v as u32))
        .collect()
}

/// The FS fields of one message, read by position.
pub(crate) struct Reader<'a> {
    class: &'static str,
    fields: Vec<&'a [u8]>,
    /// Where the fields a message knows end (set by [`Reader::end`]); the rest are extra.
    known_end: std::cell::Cell<Option<usize>>,
}

impl<'a> Reader<'a> {
    /// Splits on FS and keeps every field (trailing empty ones are the parser's to take with
    /// [`Reader::take_trailing`], so that they are written back). Whatever the dialect: real
    /// terminals end messages with any number of FS.
    pub(crate) fn new(class: &'static str, bytes: &'a [u8], _dialect: &Dialect) -> Self {
        Self::new_exact(class, bytes)
    }

    /// Splits on FS and keeps every field: the caller takes trailing empty fields with
    /// [`Reader::take_trailing`] and writes them back.
    pub(crate) fn new_exact(class: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            class,
            fields: bytes.split(|&b| b == FS).collect(),
            known_end: std::cell::Cell::new(None),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.fields.get(i).copied()
    }

    pub(crate) fn err(&self, i: usize, field: &'static str, reason: Reason) -> NdcError {
        NdcError::Field {
            class: self.class,
            field,
            position: i,
            reason,
        }
    }

    pub(crate) fn req(&self, i: usize, field: &'static str) -> Result<&'a [u8], NdcError> {
        self.get(i)
            .ok_or_else(|| self.err(i, field, Reason::Missing))
    }

    /// A field that must exist, as text.
    pub(crate) fn text(&self, i: usize, field: &'static str) -> Result<String, NdcError> {
        self.req(i, field).map(latin1)
    }

    /// A field that must be absent or empty (a reserved slot).
    pub(crate) fn empty(&self, i: usize, field: &'static str) -> Result<(), NdcError> {
        match self.get(i) {
            Some(f) if !f.is_empty() => {
                Err(self.err(i, field, Reason::Invalid("reserved field must be empty")))
            }
            _ => Ok(()),
        }
    }

    /// Takes the last field as the MAC when the dialect has a MAC trailer, more than `min_fields`
    /// fields are present and the last one is exactly 8 hex digits.
    pub(crate) fn take_mac(&mut self, min_fields: usize, dialect: &Dialect) -> Option<String> {
        if dialect.mac
            && self.fields.len() > min_fields
            && self.fields.last().is_some_and(|f| is_hex8(f))
        {
            return self.fields.pop().map(latin1);
        }
        None
    }

    /// Removes the empty fields at the end of the message beyond its first `fixed` positions
    /// and says how many there were. Real terminals and hosts end messages with any number of
    /// FS; the count is kept on the message so that encoding writes them back.
    pub(crate) fn take_trailing(&mut self, fixed: usize) -> usize {
        let mut n = 0;
        while self.fields.len() > fixed.max(1) && self.fields.last().is_some_and(|f| f.is_empty()) {
            self.fields.pop();
            n += 1;
        }
        n
    }

    /// Every field from `i` on, as text: the fields after the last one a message knows.
    pub(crate) fn extra(&self, i: usize) -> Vec<String> {
        self.rest(i).iter().map(|f| latin1(f)).collect()
    }

    /// A LUNO as it is: 0 to 9 printable characters whatever the dialect's length (a host may
    /// send an empty one, an Advance NDC terminal a 3-character one).
    pub(crate) fn luno_any(&self, i: usize) -> Result<String, NdcError> {
        let f = self.get(i).unwrap_or_default();
        check_luno_any(f).map_err(|r| self.err(i, "LUNO", r))?;
        Ok(latin1(f))
    }

    /// Every field from `i` on.
    pub(crate) fn rest(&self, i: usize) -> &[&'a [u8]] {
        self.fields.get(i..).unwrap_or(&[])
    }

    /// Marks field `i` as the first one the message does not know: it and the fields after it
    /// are the message's extra fields ([`Reader::extras`]), kept as sent.
    pub(crate) fn end(&self, i: usize) -> Result<(), NdcError> {
        self.known_end.set(Some(i));
        Ok(())
    }

    /// The fields after the last known one (see [`Reader::end`]); none when the message's last
    /// part is an open list.
    pub(crate) fn extras(&self) -> Vec<String> {
        self.known_end
            .get()
            .map(|i| self.extra(i))
            .unwrap_or_default()
    }

    /// The LUNO at position `i`, as it is (see [`Reader::luno_any`]); the dialect's length is
    /// what we write, not what we demand.
    pub(crate) fn luno(&self, i: usize, _dialect: &Dialect) -> Result<String, NdcError> {
        self.luno_any(i)
    }

    /// A message sequence number or echoed TVN, free-form (3 digits or 8 hex digits in practice).
    pub(crate) fn sequence(&self, i: usize) -> Result<String, NdcError> {
        Ok(latin1(self.get(i).unwrap_or_default()))
    }

    /// An optional TVN: empty, or kept as sent (8 hex digits in a MAC dialect; anything else
    /// is kept too and simply never matches a TVN the agent expects).
    pub(crate) fn tvn(&self, i: usize, _dialect: &Dialect) -> Result<Option<String>, NdcError> {
        match self.get(i) {
            None | Some([]) => Ok(None),
            Some(f) => Ok(Some(latin1(f))),
        }
    }
}

/// Raw fields as text, without trailing empty ones: an empty last field cannot survive a
/// dialect that drops a trailing FS, so "absent" is its only canonical reading.
pub(crate) fn raw_trimmed(fields: &[&[u8]]) -> Vec<String> {
    let n = fields
        .iter()
        .rposition(|f| !f.is_empty())
        .map_or(0, |i| i + 1);
    fields.iter().take(n).map(|f| latin1(f)).collect()
}

/// Reads field 0 of a host message: the class digit and a response flag (`4`, `40`); the flag
/// is optional unless the dialect says the host always sends one.
pub(crate) fn host_class(
    r: &Reader<'_>,
    class: u8,
    dialect: &Dialect,
) -> Result<Option<char>, NdcError> {
    match r.get(0) {
        Some([c]) if *c == class && dialect.host_response_flag => {
            Err(r.err(0, "response flag", Reason::Missing))
        }
        Some([c]) if *c == class => Ok(None),
        Some([c, f]) if *c == class && (0x20..0x7F).contains(f) => Ok(Some(char::from(*f))),
        _ => Err(r.err(
            0,
            "message class",
            Reason::Invalid("unexpected class or response flag"),
        )),
    }
}

/// A LUNO as read: at most 9 printable ASCII characters, possibly none.
pub(crate) fn check_luno_any(f: &[u8]) -> Result<(), Reason> {
    if f.len() > MAX_LUNO_LEN {
        return Err(Reason::BadLength {
            expected: MAX_LUNO_LEN,
            got: f.len(),
        });
    }
    if !f.iter().all(|b| (0x20..0x7F).contains(b)) {
        return Err(Reason::Invalid("LUNO must be printable ASCII"));
    }
    Ok(())
}

/// The longest LUNO read or written (3 digits + a 6-character machine number).
pub const MAX_LUNO_LEN: usize = 9;

/// Builds one message field by field.
pub(crate) struct Writer {
    class: &'static str,
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(class: &'static str) -> Self {
        Self {
            class,
            buf: Vec::with_capacity(128),
        }
    }

    pub(crate) fn err(&self, field: &'static str, reason: Reason) -> NdcError {
        NdcError::Encode {
            class: self.class,
            field,
            reason,
        }
    }

    pub(crate) fn fs(&mut self) -> &mut Self {
        self.buf.push(FS);
        self
    }

    /// Text that may contain GS but not FS.
    pub(crate) fn text(&mut self, field: &'static str, s: &str) -> Result<&mut Self, NdcError> {
        self.put(field, s, false)
    }

    /// Text inside a GS-separated group: neither FS nor GS.
    pub(crate) fn text_no_gs(
        &mut self,
        field: &'static str,
        s: &str,
    ) -> Result<&mut Self, NdcError> {
        self.put(field, s, true)
    }

    fn put(&mut self, field: &'static str, s: &str, no_gs: bool) -> Result<&mut Self, NdcError> {
        for c in s.chars() {
            let b =
                u8::try_from(u32::from(c)).map_err(|_| self.err(field, Reason::NotSingleByte))?;
            if b == FS || (no_gs && b == GS) {
                return Err(self.err(field, Reason::ContainsSeparator));
            }
            self.buf.push(b);
        }
        Ok(self)
    }

    pub(crate) fn ch(&mut self, field: &'static str, c: char) -> Result<&mut Self, NdcError> {
        let mut tmp = [0u8; 4];
        self.put(field, c.encode_utf8(&mut tmp), false)
    }

    pub(crate) fn gs(&mut self) -> &mut Self {
        self.buf.push(GS);
        self
    }

    /// A zero-filled fixed-width number.
    pub(crate) fn num(
        &mut self,
        field: &'static str,
        v: u64,
        width: usize,
    ) -> Result<&mut Self, NdcError> {
        let s = format!("{v:0width$}");
        if s.len() != width {
            return Err(self.err(field, Reason::TooLarge { value: v, width }));
        }
        self.buf.extend_from_slice(s.as_bytes());
        Ok(self)
    }

    /// Note counts, `n` of `width` digits each.
    pub(crate) fn counts(
        &mut self,
        field: &'static str,
        v: &[u32],
        n: usize,
        width: usize,
    ) -> Result<&mut Self, NdcError> {
        if v.len() != n {
            return Err(self.err(
                field,
                Reason::BadLength {
                    expected: n,
                    got: v.len(),
                },
            ));
        }
        for &c in v {
            self.num(field, u64::from(c), width)?;
        }
        Ok(self)
    }

    /// The LUNO the value carries, 0 to 9 printable characters (a value built by the agent or
    /// the simulator carries the dialect's length; one read from the wire, what was read).
    pub(crate) fn luno(&mut self, s: &str, _dialect: &Dialect) -> Result<&mut Self, NdcError> {
        self.luno_any(s)
    }

    /// A LUNO as the value carries it (0 to 9 printable characters, see [`Reader::luno_any`]).
    pub(crate) fn luno_any(&mut self, s: &str) -> Result<&mut Self, NdcError> {
        check_luno_any(s.as_bytes()).map_err(|r| self.err("LUNO", r))?;
        self.text("LUNO", s)
    }

    /// `FS field` for each extra field.
    /// Without a MAC after them the last one must not be empty: it would read back as a
    /// trailing FS.
    pub(crate) fn extra(
        &mut self,
        extra: &[String],
        mac: &Option<String>,
    ) -> Result<&mut Self, NdcError> {
        if mac.is_none() && extra.last().is_some_and(|f| f.is_empty()) {
            return Err(self.err(
                "extra field",
                Reason::Invalid("last extra field must not be empty (count it as a trailing FS)"),
            ));
        }
        for f in extra {
            self.fs().text("extra field", f)?;
        }
        Ok(self)
    }

    /// `n` trailing FS.
    pub(crate) fn trailing(&mut self, n: usize) -> &mut Self {
        self.buf.extend(std::iter::repeat_n(FS, n));
        self
    }

    /// Field 0 of a host message.
    pub(crate) fn host_class(
        &mut self,
        class: char,
        flag: Option<char>,
        dialect: &Dialect,
    ) -> Result<&mut Self, NdcError> {
        if dialect.host_response_flag && flag.is_none() {
            return Err(self.err("response flag", Reason::Missing));
        }
        self.ch("message class", class)?;
        if let Some(f) = flag {
            if !(' '..='~').contains(&f) {
                return Err(self.err("response flag", Reason::Invalid("must be printable ASCII")));
            }
            self.ch("response flag", f)?;
        }
        Ok(self)
    }

    pub(crate) fn sequence(&mut self, s: &str) -> Result<&mut Self, NdcError> {
        self.text("sequence number", s)
    }

    pub(crate) fn hex8(&mut self, field: &'static str, s: &str) -> Result<&mut Self, NdcError> {
        if !is_hex8(s.as_bytes()) {
            return Err(self.err(field, Reason::NonHex));
        }
        self.text(field, s)
    }

    /// An optional TVN value (the slot's separators are the caller's).
    pub(crate) fn tvn(
        &mut self,
        tvn: &Option<String>,
        dialect: &Dialect,
    ) -> Result<&mut Self, NdcError> {
        let _ = dialect;
        match tvn {
            None => Ok(self),
            Some(t) if t.is_empty() => Err(self.err(
                "TVN",
                Reason::Invalid("an empty TVN is None (it would read back as absent)"),
            )),
            Some(t) => self.text("TVN", t),
        }
    }

    /// `FS mac` if there is one.
    pub(crate) fn mac(
        &mut self,
        mac: &Option<String>,
        dialect: &Dialect,
    ) -> Result<&mut Self, NdcError> {
        match mac {
            None => Ok(self),
            Some(_) if !dialect.mac => Err(self.err("MAC", Reason::NotInDialect)),
            Some(m) => {
                self.fs();
                self.hex8("MAC", m)
            }
        }
    }

    /// Refuses a list whose last element is empty (see [`raw_trimmed`]).
    pub(crate) fn no_trailing_empty(
        &self,
        field: &'static str,
        list: &[&str],
    ) -> Result<(), NdcError> {
        if list.last().is_some_and(|s| s.is_empty()) {
            return Err(self.err(
                field,
                Reason::Invalid("last field must not be empty (it would read back as absent)"),
            ));
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_keep_their_position() {
        let d = Dialect::basic();
        let r = Reader::new("22", b"22\x1c000\x1c\x1c8", &d);
        assert_eq!(r.len(), 4);
        assert_eq!(r.get(2), Some(&b""[..]));
        assert_eq!(r.get(9), None);
    }

    #[test]
    fn trailing_fs_are_counted_beyond_the_fixed_fields() {
        let d = Dialect::basic();
        let mut r = Reader::new("11", b"11\x1c777\x1c\x1c\x1c", &d);
        assert_eq!(r.take_trailing(2), 3);
        assert_eq!(r.len(), 2);
        let mut r = Reader::new("11", b"11\x1c\x1c\x1c", &d);
        assert_eq!(r.take_trailing(4), 0, "fixed positions stay, empty or not");
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn writer_refuses_separators_and_wide_chars() {
        let mut w = Writer::new("11");
        assert!(w.text("x", "a\u{1c}b").is_err());
        assert!(w.text_no_gs("x", "a\u{1d}b").is_err());
        assert!(w.text("x", "\u{20ac}").is_err());
        assert!(w.num("x", 1000, 3).is_err());
        assert!(w.text("x", "caf\u{e9}").is_ok());
    }

    #[test]
    fn latin1_round_trips_every_byte() {
        let all: Vec<u8> = (0u8..=255).filter(|&b| b != FS).collect();
        let mut w = Writer::new("x");
        w.text("x", &latin1(&all)).unwrap();
        assert_eq!(w.finish(), all);
    }
}
