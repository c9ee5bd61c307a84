//! What the switch answers, and the only code that knows which field carries what in an answer:
//! the request's echo fields (41, 11, 7 … see `iso8583::ECHO_FIELDS`), field 70 for an 0800,
//! 39 the response code, 38 the approval code, 54 the balances of an inquiry, 53 the zone PIN key
//! version (sign-on, echo, key change), 48 that key under the zone master key (key change) and 63
//! the card ranges whose deposits an agent may take while the switch is unreachable (sign-on and
//! echo: `476173+,4761739-,5-`, longest prefix wins, `+` taken, `-` not).

use crate::iso8583::{AdditionalAmount, Message, Sign, SignedAmount};
use crate::types::Currency;

use super::codes::ResponseCode;
use super::error::DialectError;
use super::{key_version_field, parse_key_version_field};

/// A wallet's balances, as an approved balance inquiry carries them in field 54 (account type
/// 00; amount type 01 ledger, 02 available). Negative when the wallet is overdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Balances {
    pub currency: Currency,
    pub ledger_minor: i64,
    pub available_minor: i64,
}

impl Balances {
    const LEDGER: u8 = 1;
    const AVAILABLE: u8 = 2;

    pub fn to_additional_amounts(self) -> [AdditionalAmount; 2] {
        let entry = |amount_type, v: i64| AdditionalAmount {
            account_type: 0,
            amount_type,
            currency: self.currency,
            amount: SignedAmount {
                sign: if v < 0 { Sign::Debit } else { Sign::Credit },
                minor: v.unsigned_abs(),
            },
        };
        [
            entry(Self::LEDGER, self.ledger_minor),
            entry(Self::AVAILABLE, self.available_minor),
        ]
    }

    /// The balances in a field 54; `None` when the available balance is not there.
    pub fn from_additional_amounts(amounts: &[AdditionalAmount]) -> Option<Balances> {
        let value = |amount_type| {
            amounts
                .iter()
                .find(|a| a.amount_type == amount_type)
                .and_then(|a| {
                    let v = i64::try_from(a.amount.minor).ok()?;
                    Some((
                        a.currency,
                        match a.amount.sign {
                            Sign::Credit => v,
                            Sign::Debit => -v,
                        },
                    ))
                })
        };
        let (currency, available_minor) = value(Self::AVAILABLE)?;
        let ledger_minor = value(Self::LEDGER).map_or(available_minor, |(_, v)| v);
        Some(Balances {
            currency,
            ledger_minor,
            available_minor,
        })
    }
}

/// An answer of the switch to a request of the dialect. `Debug` shows field 48's key only by its
/// length.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: ResponseCode,
    /// Field 38, when approved.
    pub approval_code: Option<String>,
    /// Field 54, answering a balance inquiry.
    pub balances: Option<Balances>,
    /// Field 53: the zone PIN key version in use (answers to sign-on, echo and key change).
    pub zone_key_version: Option<u32>,
    /// Field 48 of a key change answer: the zone PIN key under the zone master key (hex), its
    /// check value and the MAC binding them to the version (`keystore::KeyDelivery::body`).
    pub zone_key_under_zmk: Option<String>,
    /// Field 63 of a sign-on or echo answer: which cards' deposits may be taken offline.
    pub offline_deposits: Option<OfflineDeposits>,
}

/// The card ranges whose deposits an agent may take while the switch is unreachable, as the
/// switch's routing table says (a card no route serves would leave cash nobody can credit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfflineDeposits {
    /// (prefix, taken), longest prefix first.
    ranges: Vec<(String, bool)>,
}

impl OfflineDeposits {
    /// Longest prefix wins; each prefix is 1 to 19 digits.
    pub fn new(ranges: impl IntoIterator<Item = (String, bool)>) -> Option<Self> {
        let mut ranges: Vec<(String, bool)> = ranges.into_iter().collect();
        if ranges
            .iter()
            .any(|(p, _)| p.is_empty() || p.len() > 19 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        ranges.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Some(Self { ranges })
    }

    /// Whether a deposit with this card may be taken offline.
    pub fn accepts(&self, pan: &crate::types::Pan) -> bool {
        let digits = pan.expose();
        self.ranges
            .iter()
            .find(|(p, _)| digits.starts_with(p.as_str()))
            .is_some_and(|(_, taken)| *taken)
    }

    /// The field 63 text.
    pub fn to_field(&self) -> String {
        self.ranges
            .iter()
            .map(|(p, taken)| format!("{p}{}", if *taken { '+' } else { '-' }))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads field 63; `None` when it is not a list of ranges.
    pub fn from_field(text: &str) -> Option<Self> {
        if text.is_empty() {
            return Self::new([]);
        }
        let ranges = text
            .split(',')
            .map(|r| {
                let (prefix, sign) = r.split_at(r.len().checked_sub(1)?);
                match sign {
                    "+" => Some((prefix.to_owned(), true)),
                    "-" => Some((prefix.to_owned(), false)),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Self::new(ranges)
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self
            .zone_key_under_zmk
            .as_ref()
            .map(|k| format!("**** (key, {} characters)", k.len()));
        f.debug_struct("Answer")
            .field("code", &self.code)
            .field("approval_code", &self.approval_code)
            .field("balances", &self.balances)
            .field("zone_key_version", &self.zone_key_version)
            .field("zone_key_under_zmk", &key)
            .field("offline_deposits", &self.offline_deposits)
            .finish()
    }
}

impl Answer {
    /// An answer that is only a code.
    pub fn code(code: ResponseCode) -> Answer {
        Answer {
            code,
            approval_code: None,
            balances: None,
            zone_key_version: None,
            zone_key_under_zmk: None,
            offline_deposits: None,
        }
    }

    /// The message answering `request`: its response MTI and echo fields, then what this answer
    /// adds.
    pub fn to_message(&self, request: &Message) -> Result<Message, DialectError> {
        let mut m = Message::response_to(request);
        // Network management answers say what they answer (the key exchange needs 161).
        if request.mti().as_str() == "0800" {
            if let Some(code) = request.get(70) {
                m.set(70, code).map_err(DialectError::Encode)?;
            }
        }
        m.set_str(39, self.code.code())
            .map_err(DialectError::Encode)?;
        if let Some(code) = &self.approval_code {
            m.set_str(38, code).map_err(DialectError::Encode)?;
        }
        if let Some(b) = self.balances {
            m.set_additional_amounts(&b.to_additional_amounts())
                .map_err(DialectError::Encode)?;
        }
        if let Some(v) = self.zone_key_version {
            m.set_str(53, &key_version_field(v))
                .map_err(DialectError::Encode)?;
        }
        if let Some(k) = &self.zone_key_under_zmk {
            m.set_str(48, k).map_err(DialectError::Encode)?;
        }
        if let Some(d) = &self.offline_deposits {
            m.set_str(63, &d.to_field()).map_err(DialectError::Encode)?;
        }
        Ok(m)
    }

    /// Reads an answer. A code outside the dialect is an error, not a guess: the caller decides
    /// what an answer it cannot read means (for a request that moved money: the outcome is
    /// unknown).
    pub fn from_message(msg: &Message) -> Result<Answer, DialectError> {
        if !msg.mti().is_response() {
            return Err(DialectError::NotAnAnswer(msg.mti()));
        }
        let text = msg.get_str(39).ok_or(DialectError::Missing {
            field: 39,
            name: "response code",
        })?;
        let code = ResponseCode::parse(text)
            .ok_or_else(|| DialectError::UnknownResponseCode(text.chars().take(8).collect()))?;
        let balances = msg
            .additional_amounts()
            .map_err(|source| DialectError::Malformed {
                field: 54,
                name: "additional amounts",
                source,
            })?
            .and_then(|a| Balances::from_additional_amounts(&a));
        Ok(Answer {
            code,
            approval_code: msg.get_str(38).map(str::to_owned),
            balances,
            zone_key_version: msg.get_str(53).and_then(parse_key_version_field),
            zone_key_under_zmk: msg.get_str(48).map(str::to_owned),
            // A list it cannot read takes no deposit offline, rather than refusing the answer.
            offline_deposits: msg
                .get_str(63)
                .map(|t| OfflineDeposits::from_field(t).unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{CardRequest, MessageKey, Request};
    use crate::iso8583::TransmissionDateTime;
    use crate::types::{Amount, Pan, Stan, TerminalId};

    fn inquiry() -> Message {
        Request::BalanceInquiry(CardRequest {
            acceptance: Default::default(),
            key: MessageKey {
                terminal: TerminalId::parse("ATM00001").unwrap(),
                stan: Stan::new(7).unwrap(),
                transmitted_at: TransmissionDateTime::parse("1125114000").unwrap(),
            },
            pan: Pan::parse("4761739001010010").unwrap(),
            amount: Amount::new(0, Currency::EUR),
            pin: None,
            repeat: false,
        })
        .to_message()
        .unwrap()
    }

    #[test]
    fn balances_are_the_field_54_the_switch_always_sent() {
        let answer = Answer {
            balances: Some(Balances {
                currency: Currency::EUR,
                ledger_minor: 12345,
                available_minor: -5,
            }),
            ..Answer::code(ResponseCode::Approved)
        };
        let m = answer.to_message(&inquiry()).unwrap();
        assert_eq!(m.mti().as_str(), "0110");
        assert_eq!(
            m.get_str(54),
            Some("0001978C0000000123450002978D000000000005")
        );
        assert_eq!(m.get_str(41), Some("ATM00001"));
        assert_eq!(Answer::from_message(&m).unwrap(), answer);
    }

    #[test]
    fn offline_deposits_follow_the_longest_prefix_and_read_back() {
        let d = OfflineDeposits::new([
            ("476173".to_owned(), true),
            ("4761739".to_owned(), false),
            ("5".to_owned(), false),
        ])
        .unwrap();
        let pan = |p: &str| Pan::parse(p).unwrap();
        assert!(d.accepts(&pan("4761731001010010")));
        assert!(!d.accepts(&pan("4761739001010010")));
        assert!(!d.accepts(&pan("5413330089020011")));
        assert!(!d.accepts(&pan("3413330089020011")), "no route: not taken");
        assert_eq!(d.to_field(), "4761739-,476173+,5-");
        assert_eq!(OfflineDeposits::from_field(&d.to_field()), Some(d.clone()));
        for bad in ["47x+", "476173", "+", "476173+,,5-"] {
            assert_eq!(OfflineDeposits::from_field(bad), None, "{bad}");
        }
        let answer = Answer {
            offline_deposits: Some(d),
            ..Answer::code(ResponseCode::Approved)
        };
        let m = answer.to_message(&inquiry()).unwrap();
        assert_eq!(Answer::from_message(&m).unwrap(), answer);
    }

    #[test]
    fn a_key_change_answer_carries_version_and_cryptogram() {
        let mut req = Message::new("0800").unwrap();
        req.set_str(70, "161").unwrap();
        let answer = Answer {
            zone_key_version: Some(3),
            zone_key_under_zmk: Some("00".repeat(16) + "ABCDEF"),
            ..Answer::code(ResponseCode::Approved)
        };
        let m = answer.to_message(&req).unwrap();
        assert_eq!(m.get_str(53), Some("0000000000000003"));
        assert_eq!(m.get_str(70), Some("161"));
        assert_eq!(Answer::from_message(&m).unwrap(), answer);
        for text in [format!("{answer:?}"), format!("{m:?}")] {
            assert!(!text.contains(&"00".repeat(16)), "key in {text}");
        }
    }

    #[test]
    fn unknown_codes_and_requests_are_not_answers() {
        let mut m = Answer::code(ResponseCode::Approved)
            .to_message(&inquiry())
            .unwrap();
        m.set_str(39, "Q9").unwrap();
        assert_eq!(
            Answer::from_message(&m).unwrap_err(),
            DialectError::UnknownResponseCode("Q9".into())
        );
        assert_eq!(
            Answer::from_message(&inquiry()).unwrap_err(),
            DialectError::NotAnAnswer(inquiry().mti())
        );
    }
}
