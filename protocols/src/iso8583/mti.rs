//! The message type indicator: four digits that say what a message is and how to answer it.
//!
//! Digit 1 is the version, 2 the class (1 authorization, 2 financial, 4 reversal, 8 network
//! management), 3 the function (0 request, 1 request response, 2 advice, 3 advice response,
//! 4 notification) and 4 the origin (0 acquirer, 1 acquirer repeat, 2 issuer, 3 issuer repeat …).
//! Matching a response to its request works on the class, so the rule lives here.

use std::fmt;

use super::error::FieldError;

/// A message type indicator: always exactly four ASCII digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

impl Mti {
    pub fn parse(s: &str) -> Result<Mti, FieldError> {
        match s.as_bytes() {
            &[a, b, c, d] if [a, b, c, d].iter().all(u8::is_ascii_digit) => Ok(Mti([a, b, c, d])),
            _ => Err(FieldError::BadMti(s.chars().take(16).collect())),
        }
    }

    pub(crate) fn from_digits(b: [u8; 4]) -> Option<Mti> {
        b.iter().all(u8::is_ascii_digit).then_some(Mti(b))
    }

    /// For the crate's own constants, whose four bytes are ASCII digits by construction.
    pub(crate) const fn from_known_digits(b: [u8; 4]) -> Mti {
        Mti(b)
    }

    pub fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Always ASCII digits by construction.
        std::str::from_utf8(&self.0).unwrap_or("0000")
    }

    /// Whether this MTI answers another: function digit 1 (request response) or 3 (advice response).
    pub fn is_response(self) -> bool {
        matches!(self.0[2], b'1' | b'3' | b'5')
    }

    /// The MTI of the answer: request → request response (0100 → 0110), advice → advice response
    /// (0220 → 0230), notification → acknowledgement (0x40 → 0x50); the repeat flag is cleared
    /// (0421 → 0430). An MTI that is already a response is returned with only the repeat cleared.
    pub fn response(self) -> Mti {
        let [v, c, f, o] = self.0;
        let function = match f {
            b'0' => b'1',
            b'2' => b'3',
            b'4' => b'5',
            other => other,
        };
        let origin = match o {
            b'1' | b'3' | b'5' => o - 1,
            other => other,
        };
        Mti([v, c, function, origin])
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_follow_the_mti_class() {
        for (req, resp) in [
            ("0100", "0110"),
            ("0200", "0210"),
            ("0220", "0230"),
            ("0420", "0430"),
            ("0421", "0430"),
            ("0800", "0810"),
            ("0820", "0830"),
            ("0221", "0230"),
        ] {
            assert_eq!(Mti::parse(req).unwrap().response().as_str(), resp, "{req}");
        }
        assert!(Mti::parse("0110").unwrap().is_response());
        assert!(!Mti::parse("0100").unwrap().is_response());
    }

    #[test]
    fn parse_rejects_anything_but_four_digits() {
        for bad in ["", "010", "01000", "01A0", "０１００"] {
            assert!(Mti::parse(bad).is_err(), "{bad}");
        }
    }
}
