//! Messages as JSON dictionaries, in exactly the layout pyiso8583 4.0.1's `decode` returns.
//!
//! `atmctl iso8583 decode/encode` speaks this format so that its output can be compared with, or
//! fed to, pyiso8583: key `"t"` is the MTI, keys `"2"` … `"128"` are fields, every value is a
//! string, and fields with binary data encoding are uppercase hex. Bitmaps (`"p"`, `"1"`) are
//! left out when writing and ignored when reading, since they follow from the fields.
//! Unless `reveal` is asked for, card data is masked (PAN, track data, PIN block, ICC data).

use serde_json::{Map, Value};

use super::error::JsonError;
use super::message::Message;
use super::mti::Mti;
use super::spec::{Encoding, Spec};

impl Message {
    /// The pyiso8583 `decode` dictionary of this message, without bitmaps. With `reveal == false`,
    /// fields 2 and 34 show first 6 / last 4, 35 and 36 the masked PAN only, 45, 52 and 55 `"****"`,
    /// and so does field 48 of a key change answer (70 = 161), which carries a key.
    pub fn to_json(&self, spec: &Spec, reveal: bool) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(
            "t".to_owned(),
            Value::String(self.mti().as_str().to_owned()),
        );
        for (n, v) in self.iter() {
            let text = if !reveal && self.masked_field(n, v).is_some() {
                match n {
                    45 | 48 | 52 | 55 => "****".to_owned(),
                    _ => self.masked_field(n, v).unwrap_or_default(),
                }
            } else if spec.field(n).map(|f| f.data_enc) == Some(Encoding::Binary) {
                hex::encode_upper(v)
            } else {
                String::from_utf8_lossy(v).into_owned()
            };
            map.insert(n.to_string(), Value::String(text));
        }
        map
    }

    /// Reads a pyiso8583-style dictionary. `"p"`, `"1"` and `"65"` (bitmaps, which pyiso8583 also
    /// recomputes) are ignored; any other key must be `"t"` or a field the spec defines. Values are
    /// checked against the spec when the message is packed.
    pub fn from_json(map: &Map<String, Value>, spec: &Spec) -> Result<Message, JsonError> {
        let mti = match map.get("t") {
            None => return Err(JsonError::MissingMti),
            Some(Value::String(s)) => Mti::parse(s)?,
            Some(_) => return Err(JsonError::NotAString("t".to_owned())),
        };
        let mut msg = Message::with_mti(mti);
        for (key, value) in map {
            let n: u8 = match key.as_str() {
                "t" | "p" | "1" | "65" => continue,
                k => match k.parse::<u8>() {
                    Ok(n @ 2..=128)
                        if k.bytes().all(|b| b.is_ascii_digit()) && !k.starts_with('0') =>
                    {
                        n
                    }
                    _ => return Err(JsonError::UnknownKey(key.clone())),
                },
            };
            let field = spec
                .field(n)
                .ok_or_else(|| JsonError::UndefinedField(key.clone()))?;
            let Value::String(text) = value else {
                return Err(JsonError::NotAString(key.clone()));
            };
            match field.data_enc {
                Encoding::Binary => {
                    let bytes = hex::decode(text).map_err(|_| JsonError::BadHex(key.clone()))?;
                    msg.set(n, bytes)?;
                }
                // pyiso8583 accepts lowercase hex for BCD and prints it uppercase.
                Encoding::Bcd => {
                    msg.set(n, text.to_ascii_uppercase())?;
                }
                Encoding::Ascii | Encoding::Ebcdic => {
                    msg.set(n, text.as_bytes())?;
                }
            }
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test literal is an object"),
        }
    }

    #[test]
    fn binary_fields_are_uppercase_hex_and_masked_unless_revealed() {
        let spec = Spec::iso87_binary();
        let mut m = Message::new("0100").unwrap();
        m.set_str(2, "4761739001010010").unwrap();
        m.set(52, [0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89])
            .unwrap();
        m.set(64, [0x0A; 8]).unwrap();
        let revealed = m.to_json(spec, true);
        assert_eq!(
            Value::Object(revealed.clone()),
            json!({"t": "0100", "2": "4761739001010010", "52": "ABCDEF0123456789", "64": "0A0A0A0A0A0A0A0A"})
        );
        assert_eq!(Message::from_json(&revealed, spec).unwrap(), m);
        let masked = m.to_json(spec, false);
        assert_eq!(masked["2"], "476173******0010");
        assert_eq!(masked["52"], "****");
    }

    #[test]
    fn bitmap_keys_are_ignored_and_unknown_keys_rejected() {
        let spec = Spec::iso87_ascii();
        let m = Message::from_json(
            &obj(json!({"t": "0800", "p": "8220000000000000", "1": "04", "70": "301"})),
            spec,
        )
        .unwrap();
        assert_eq!(m.get_str(70), Some("301"));
        for (bad, want) in [
            (json!({"70": "301"}), JsonError::MissingMti),
            (
                json!({"t": "0800", "x": "1"}),
                JsonError::UnknownKey("x".into()),
            ),
            (
                json!({"t": "0800", "129": "1"}),
                JsonError::UnknownKey("129".into()),
            ),
            (
                json!({"t": "0800", "070": "301"}),
                JsonError::UnknownKey("070".into()),
            ),
            (
                json!({"t": "0800", "70": 301}),
                JsonError::NotAString("70".into()),
            ),
        ] {
            assert_eq!(Message::from_json(&obj(bad), spec).unwrap_err(), want);
        }
        let e = Message::from_json(
            &obj(json!({"t": "0100", "52": "XYZ"})),
            Spec::iso87_binary(),
        )
        .unwrap_err();
        assert_eq!(e, JsonError::BadHex("52".into()));
        assert!(Message::from_json(&obj(json!({"t": "01"})), spec).is_err());
    }
}
