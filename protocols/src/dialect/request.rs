//! What an agent asks of the switch, one type per message of the dialect, and the only code that
//! knows which field carries what in a request:
//!
//! | request | MTI | fields |
//! |---|---|---|
//! | [`Request::Network`] | 0800 | 7, 11, 41 when present; 70 |
//! | [`Request::Withdrawal`] | 0100 (0101 repeat) | 2, 3 = 011000, 4, 7, 11, 18 = 6011, 41, 49; 52 + 53 with a PIN; the acceptance fields present: 12, 13, 14, 22, 32, 35, 37, 42, 43 |
//! | [`Request::BalanceInquiry`] | 0100 (0101) | as a withdrawal, 3 = 311000, 4 zero |
//! | [`Request::Deposit`] | 0200 (0201) | as a withdrawal, 3 = 210010 |
//! | [`Request::Completion`] | 0220 (0221) | 3, 4 = amount held, 7, 11, 41, 49, 90 = the original (acquirer id = field 32, else 0), 95 = dispensed; 2 optional; the original's acceptance fields present: 12, 13, 14, 22, 32, 37, 42, 43, never 35 |
//! | [`Request::DepositAdvice`] | 0220 (0221) | as a deposit, no 90, no 52, no 35: a deposit taken while the switch was unreachable |
//! | [`Request::Reversal`] | 0420 (0421) | as a completion; 95 only for a partial reversal |
//! | [`Request::Status`] | 0820 | 7, 11, 41, 48 = what the terminal reported |
//!
//! Every acceptance field is optional when read (a missing one is `None`); one that is present
//! but malformed is refused with the field's number (answered 30). Field 18 is written as 6011
//! on every card request and not read back. 42 and 43 are space-padded to 15 and 40 on the wire
//! and trimmed when read. An advice's field 32, when absent, is read from field 90's acquiring
//! institution id (when not zero). Track 2 (35) travels in online requests only: advices are
//! stored, track 2 never is, so writing an advice with one is refused (like a PIN block in a
//! deposit advice) and one read in an advice is dropped.
//!
//! The switch reads field 35 (track 2) when field 2 is absent, and field 63 when an 0820 carries
//! no 48, so requests from other acquirers' habits still read. When both 2 and 35 are present
//! they must name the same card.

use crate::iso8583::{
    FieldError, Message, Mti, OriginalData, PinBlock, ReplacementAmounts, Sign, SignedAmount,
    TransmissionDateTime,
};
use crate::types::{Amount, Currency, Pan, Stan, TerminalId};

use super::acceptance::{Acceptance, MERCHANT_TYPE_ATM};
use super::codes::{NetworkCode, TransactionType};
use super::error::DialectError;
use super::{key_version_field, parse_key_version_field};

/// What identifies a message of a terminal: field 41, field 11 and field 7. A replayed message
/// carries the same key, and the switch answers it with the answer it recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageKey {
    pub terminal: TerminalId,
    pub stan: Stan,
    pub transmitted_at: TransmissionDateTime,
}

/// The transaction an advice is about (field 90): its MTI, STAN and transmission time, at the
/// same terminal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginalKey {
    pub mti: Mti,
    pub stan: Stan,
    pub transmitted_at: TransmissionDateTime,
}

/// The PIN a request carries: field 52 exactly as sent (16 hex characters when well formed: the
/// block under the zone PIN key) and field 53 (the version of that key). Never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinField {
    pub block: PinBlock,
    /// `None` when field 53 is absent or not a version number.
    pub key_version: Option<u32>,
}

/// An 0800.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRequest {
    pub code: NetworkCode,
    pub stan: Option<Stan>,
    pub transmitted_at: Option<TransmissionDateTime>,
    /// Field 41: sent by an agent for a terminal, absent for the link itself.
    pub terminal: Option<TerminalId>,
}

/// A request with a card: withdrawal, balance inquiry or deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRequest {
    pub key: MessageKey,
    pub pan: Pan,
    /// The amount asked for (zero for a balance inquiry) in the terminal's currency.
    pub amount: Amount,
    pub pin: Option<PinField>,
    /// Where and how the card was accepted (fields 12, 13, 14, 18, 22, 32, 35, 37, 42, 43).
    pub acceptance: Acceptance,
    /// Sent as 0101/0201: the acquirer repeats a request it got no answer to.
    pub repeat: bool,
}

/// A completion (0220) or reversal (0420) advice about an earlier transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// This advice's own key: fixed when it is queued, so a resend is the same message.
    pub key: MessageKey,
    pub original: OriginalKey,
    /// The original's transaction type.
    pub transaction: TransactionType,
    /// Field 4: the original amount.
    pub amount: Amount,
    /// Field 95's actual amount: what was dispensed (a completion; a partial reversal).
    pub dispensed_minor: Option<u64>,
    /// Field 2, when the advice must name the card (the switch finds the original without it).
    pub pan: Option<Pan>,
    /// The original's acceptance context, without track 2 (advices are stored): its RRN (37),
    /// acquirer (32, also in field 90), local time and date, acceptor (42, 43), expiry (14).
    pub acceptance: Acceptance,
    /// Sent as 0221/0421: every resend after the first.
    pub repeat: bool,
}

impl Advice {
    /// What a completion says left the terminal: field 95 when present, else the whole amount.
    pub fn dispensed_or_all(&self) -> u64 {
        self.dispensed_minor.unwrap_or(self.amount.minor)
    }
}

/// An 0820: a terminal's status for the fleet view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusAdvice {
    pub key: MessageKey,
    pub detail: String,
}

/// A request of the dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Network(NetworkRequest),
    Withdrawal(CardRequest),
    BalanceInquiry(CardRequest),
    Deposit(CardRequest),
    /// A deposit the terminal took while the switch was unreachable: the cash is in the ATM, the
    /// switch journals it, answers at once and posts the credit itself. An 0220 with processing
    /// code 21 and no field 90 (a completion always names its original).
    DepositAdvice(CardRequest),
    Completion(Advice),
    Reversal(Advice),
    Status(StatusAdvice),
}

impl Request {
    /// The key of the message (network requests have none of their own).
    pub fn key(&self) -> Option<&MessageKey> {
        match self {
            Request::Network(_) => None,
            Request::Withdrawal(r)
            | Request::BalanceInquiry(r)
            | Request::Deposit(r)
            | Request::DepositAdvice(r) => Some(&r.key),
            Request::Completion(a) | Request::Reversal(a) => Some(&a.key),
            Request::Status(s) => Some(&s.key),
        }
    }

    /// The MTI this request is sent with.
    pub fn mti(&self) -> Mti {
        let repeat = match self {
            Request::Withdrawal(r)
            | Request::BalanceInquiry(r)
            | Request::Deposit(r)
            | Request::DepositAdvice(r) => r.repeat,
            Request::Completion(a) | Request::Reversal(a) => a.repeat,
            Request::Network(_) | Request::Status(_) => false,
        };
        let [a, b, c] = match self {
            Request::Network(_) => *b"080",
            Request::Withdrawal(_) | Request::BalanceInquiry(_) => *b"010",
            Request::Deposit(_) => *b"020",
            Request::Completion(_) | Request::DepositAdvice(_) => *b"022",
            Request::Reversal(_) => *b"042",
            Request::Status(_) => *b"082",
        };
        let origin = if repeat { b'1' } else { b'0' };
        Mti::from_known_digits([a, b, c, origin])
    }

    /// The ISO 8583 message of this request.
    pub fn to_message(&self) -> Result<Message, DialectError> {
        let mut m = Message::with_mti(self.mti());
        self.write(&mut m).map_err(DialectError::Encode)?;
        Ok(m)
    }

    fn write(&self, m: &mut Message) -> Result<(), FieldError> {
        match self {
            Request::Network(n) => {
                if let Some(at) = n.transmitted_at {
                    m.set_transmission_datetime(at);
                }
                if let Some(stan) = n.stan {
                    m.set_stan(stan);
                }
                if let Some(t) = &n.terminal {
                    m.set_terminal_id(t);
                }
                m.set_network_management_code(n.code.code())?;
            }
            Request::Withdrawal(r) => write_card(m, r, TransactionType::Withdrawal)?,
            Request::BalanceInquiry(r) => write_card(m, r, TransactionType::BalanceInquiry)?,
            Request::Deposit(r) => write_card(m, r, TransactionType::Deposit)?,
            Request::DepositAdvice(r) => {
                if r.pin.is_some() {
                    // PIN blocks are never stored, so an advice never carries one.
                    return Err(FieldError::Malformed {
                        field: 52,
                        reason: "a deposit advice carries no PIN block",
                    });
                }
                if r.acceptance.track2.is_some() {
                    // Track 2 is never stored: an advice names the card by field 2 (and 14).
                    return Err(FieldError::Malformed {
                        field: 35,
                        reason: "a deposit advice carries no track 2",
                    });
                }
                write_card(m, r, TransactionType::Deposit)?
            }
            Request::Completion(a) | Request::Reversal(a) => write_advice(m, a)?,
            Request::Status(s) => {
                write_key(m, &s.key);
                m.set_str(48, &s.detail)?;
            }
        }
        Ok(())
    }

    /// Reads a request. The error says why it is not one and which code answers it.
    pub fn from_message(msg: &Message) -> Result<Request, DialectError> {
        let mti = msg.mti();
        let repeat = mti.as_bytes()[3] == b'1';
        match mti.as_str() {
            "0800" => Ok(Request::Network(NetworkRequest {
                code: NetworkCode::from_code(required(
                    msg.network_management_code(),
                    70,
                    "network management code",
                )?),
                stan: optional(msg.stan(), 11, "STAN")?,
                transmitted_at: optional(msg.transmission_datetime(), 7, "transmission date-time")?,
                terminal: optional(msg.terminal_id(), 41, "terminal id")?,
            })),
            "0100" | "0101" => {
                let key = read_key(msg)?;
                match transaction_type(msg)? {
                    Some(TransactionType::Withdrawal) => {
                        Ok(Request::Withdrawal(read_card(msg, key, repeat, true)?))
                    }
                    Some(TransactionType::BalanceInquiry) => {
                        Ok(Request::BalanceInquiry(read_card(msg, key, repeat, false)?))
                    }
                    _ => Err(unserved(msg)),
                }
            }
            "0200" | "0201" => {
                let key = read_key(msg)?;
                match transaction_type(msg)? {
                    Some(TransactionType::Deposit) => {
                        Ok(Request::Deposit(read_card(msg, key, repeat, true)?))
                    }
                    _ => Err(unserved(msg)),
                }
            }
            "0220" | "0221" if msg.contains(90) => {
                Ok(Request::Completion(read_advice(msg, repeat)?))
            }
            "0220" | "0221" => {
                let key = read_key(msg)?;
                match transaction_type(msg)? {
                    Some(TransactionType::Deposit) => {
                        let mut r = read_card(msg, key, repeat, true)?;
                        r.pin = None;
                        r.acceptance.track2 = None;
                        Ok(Request::DepositAdvice(r))
                    }
                    // Any other 0220 is a completion without its original: refused by name.
                    _ => Ok(Request::Completion(read_advice(msg, repeat)?)),
                }
            }
            "0420" | "0421" => Ok(Request::Reversal(read_advice(msg, repeat)?)),
            "0820" => {
                let key = read_key(msg)?;
                let detail = msg.get_str(48).or_else(|| msg.get_str(63)).unwrap_or("");
                Ok(Request::Status(StatusAdvice {
                    key,
                    detail: detail.to_owned(),
                }))
            }
            _ => Err(DialectError::UnservedMti(mti)),
        }
    }
}

fn write_key(m: &mut Message, key: &MessageKey) {
    m.set_transmission_datetime(key.transmitted_at)
        .set_stan(key.stan)
        .set_terminal_id(&key.terminal);
}

fn write_card(m: &mut Message, r: &CardRequest, t: TransactionType) -> Result<(), FieldError> {
    m.set_pan(&r.pan).set_processing_code(t.processing_code());
    m.set_amount(r.amount.minor)?;
    write_key(m, &r.key);
    m.set_currency(r.amount.currency)?;
    m.set_str(18, MERCHANT_TYPE_ATM)?;
    r.acceptance.write(m)?;
    if let Some(pin) = &r.pin {
        m.set_pin_block(&pin.block);
        if let Some(v) = pin.key_version {
            m.set_str(53, &key_version_field(v))?;
        }
    }
    Ok(())
}

fn write_advice(m: &mut Message, a: &Advice) -> Result<(), FieldError> {
    if a.acceptance.track2.is_some() {
        // Advices are stored and repeated; track 2 is never stored.
        return Err(FieldError::Malformed {
            field: 35,
            reason: "an advice carries no track 2",
        });
    }
    if let Some(pan) = &a.pan {
        m.set_pan(pan);
    }
    m.set_processing_code(a.transaction.processing_code());
    m.set_amount(a.amount.minor)?;
    write_key(m, &a.key);
    m.set_currency(a.amount.currency)?;
    a.acceptance.write(m)?;
    m.set_original_data(&OriginalData {
        mti: a.original.mti,
        stan: a.original.stan,
        transmission: Some(a.original.transmitted_at),
        acquirer_id: a.acceptance.acquirer_number(),
        forwarding_id: 0,
    })?;
    if let Some(actual) = a.dispensed_minor {
        let nothing = SignedAmount {
            sign: Sign::Credit,
            minor: 0,
        };
        m.set_replacement_amounts(&ReplacementAmounts {
            actual_amount: actual,
            settlement_amount: 0,
            transaction_fee: nothing,
            settlement_fee: nothing,
        })?;
    }
    Ok(())
}

/// A field the request cannot do without, through its typed getter.
fn required<T>(
    value: Result<Option<T>, FieldError>,
    field: u8,
    name: &'static str,
) -> Result<T, DialectError> {
    optional(value, field, name)?.ok_or(DialectError::Missing { field, name })
}

fn optional<T>(
    value: Result<Option<T>, FieldError>,
    field: u8,
    name: &'static str,
) -> Result<Option<T>, DialectError> {
    value.map_err(|source| DialectError::Malformed {
        field,
        name,
        source,
    })
}

fn read_key(msg: &Message) -> Result<MessageKey, DialectError> {
    Ok(MessageKey {
        terminal: required(msg.terminal_id(), 41, "terminal id")?,
        stan: required(msg.stan(), 11, "STAN")?,
        transmitted_at: required(msg.transmission_datetime(), 7, "transmission date-time")?,
    })
}

fn transaction_type(msg: &Message) -> Result<Option<TransactionType>, DialectError> {
    let pc = required(msg.processing_code(), 3, "processing code")?;
    Ok(TransactionType::from_code(pc.transaction_type))
}

fn unserved(msg: &Message) -> DialectError {
    DialectError::UnservedTransaction {
        mti: msg.mti(),
        transaction_type: msg
            .processing_code()
            .ok()
            .flatten()
            .map_or(0, |p| p.transaction_type),
    }
}

fn read_pan(msg: &Message) -> Result<Pan, DialectError> {
    if let Some(p) = msg.pan().map_err(DialectError::InvalidCard)? {
        return Ok(p);
    }
    match msg.track2().map_err(DialectError::InvalidCard)? {
        Some(t) => Ok(t.pan().clone()),
        None => Err(DialectError::NoCard),
    }
}

fn read_currency(msg: &Message) -> Result<Currency, DialectError> {
    required(msg.currency(), 49, "currency")
}

/// Field 4 with field 49; a balance inquiry may leave field 4 out.
fn read_amount(msg: &Message, amount_required: bool) -> Result<Amount, DialectError> {
    let minor = msg.amount().map_err(DialectError::InvalidAmount)?;
    let minor = match (minor, amount_required) {
        (Some(m), _) => m,
        (None, false) => 0,
        (None, true) => {
            return Err(DialectError::Missing {
                field: 4,
                name: "amount",
            })
        }
    };
    Ok(Amount::new(minor, read_currency(msg)?))
}

fn read_pin(msg: &Message) -> Option<PinField> {
    let block = msg.pin_block()?;
    Some(PinField {
        block,
        key_version: msg.get_str(53).and_then(parse_key_version_field),
    })
}

fn read_card(
    msg: &Message,
    key: MessageKey,
    repeat: bool,
    amount_required: bool,
) -> Result<CardRequest, DialectError> {
    let pan = read_pan(msg)?;
    let acceptance = read_acceptance(msg)?;
    if acceptance.track2.as_ref().is_some_and(|t| t.pan() != &pan) {
        return Err(DialectError::Malformed {
            field: 35,
            name: "track 2",
            source: FieldError::Malformed {
                field: 35,
                reason: "track 2 names another card than field 2",
            },
        });
    }
    Ok(CardRequest {
        key,
        pan,
        amount: read_amount(msg, amount_required)?,
        pin: read_pin(msg),
        acceptance,
        repeat,
    })
}

/// The acceptance fields, each optional; a malformed one is refused by its number and name.
fn read_acceptance(msg: &Message) -> Result<Acceptance, DialectError> {
    Acceptance::read(msg).map_err(|source| {
        let field = match &source {
            FieldError::Malformed { field, .. } | FieldError::Value { field, .. } => *field,
            FieldError::NotSettable(n) => *n,
            FieldError::BadMti(_) => 0,
        };
        let name = match field {
            12 => "local transaction time",
            13 => "local transaction date",
            14 => "expiry date",
            22 => "POS entry mode",
            32 => "acquiring institution id",
            35 => "track 2",
            37 => "retrieval reference number",
            42 => "card acceptor id",
            43 => "card acceptor name/location",
            _ => "acceptance data",
        };
        DialectError::Malformed {
            field,
            name,
            source,
        }
    })
}

fn read_advice(msg: &Message, repeat: bool) -> Result<Advice, DialectError> {
    let key = read_key(msg)?;
    let original = required(msg.original_data(), 90, "original data elements")?;
    let transaction = transaction_type(msg)?.ok_or_else(|| unserved(msg))?;
    let dispensed_minor =
        optional(msg.replacement_amounts(), 95, "replacement amounts")?.map(|r| r.actual_amount);
    // An advice settles money already moved: the switch finds the original by field 90, so a
    // card number it cannot read is left out rather than the advice refused.
    let pan = read_pan(msg).ok();
    let mut acceptance = read_acceptance(msg)?;
    acceptance.track2 = None;
    if acceptance.acquirer_id.is_none() && original.acquirer_id != 0 {
        acceptance.acquirer_id = Some(original.acquirer_id.to_string());
    }
    Ok(Advice {
        key,
        original: OriginalKey {
            mti: original.mti,
            stan: original.stan,
            transmitted_at: original.transmission.ok_or(DialectError::NoOriginalTime)?,
        },
        transaction,
        amount: read_amount(msg, true)?,
        dispensed_minor,
        pan,
        acceptance,
        repeat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::ResponseCode;

    fn key() -> MessageKey {
        MessageKey {
            terminal: TerminalId::parse("ATM00001").unwrap(),
            stan: Stan::new(123).unwrap(),
            transmitted_at: TransmissionDateTime::parse("1125114000").unwrap(),
        }
    }

    fn withdrawal() -> CardRequest {
        CardRequest {
            acceptance: Default::default(),
            key: key(),
            pan: Pan::parse("4761739001010010").unwrap(),
            amount: Amount::new(2000, Currency::EUR),
            pin: None,
            repeat: false,
        }
    }

    #[test]
    fn a_withdrawal_is_the_0100_the_agent_always_sent() {
        let m = Request::Withdrawal(withdrawal()).to_message().unwrap();
        assert_eq!(m.mti().as_str(), "0100");
        for (n, v) in [
            (2, "4761739001010010"),
            (3, "011000"),
            (4, "000000002000"),
            (7, "1125114000"),
            (11, "000123"),
            (18, "6011"),
            (41, "ATM00001"),
            (49, "978"),
        ] {
            assert_eq!(m.get_str(n), Some(v), "field {n}");
        }
        assert_eq!(
            m.field_numbers().count(),
            8,
            "no acceptance field it was not given"
        );
    }

    fn acceptance() -> Acceptance {
        use crate::dialect::{EntryMode, Expiry};
        use crate::iso8583::{LocalDate, LocalTime};
        use crate::types::{Rrn, Track2};
        Acceptance {
            track2: Some(Track2::parse("4761739001010010=28122011143804400000").unwrap()),
            expiry: Expiry::parse("2812"),
            entry_mode: Some(EntryMode::MAGSTRIPE),
            local_time: Some(LocalTime {
                hour: 11,
                minute: 40,
                second: 0,
            }),
            local_date: Some(LocalDate { month: 11, day: 25 }),
            acquirer_id: Some("12345678901".into()),
            rrn: Some(Rrn::parse("632911000123").unwrap()),
            acceptor_id: Some("ATM00001".into()),
            acceptor_location: Some("1 MAIN STREET            SPRINGFIELD  US".into()),
        }
    }

    fn completion() -> Advice {
        Advice {
            acceptance: acceptance().without_track2(),
            key: MessageKey {
                stan: Stan::new(124).unwrap(),
                ..key()
            },
            original: OriginalKey {
                mti: Mti::parse("0100").unwrap(),
                stan: Stan::new(123).unwrap(),
                transmitted_at: TransmissionDateTime::parse("1125114000").unwrap(),
            },
            transaction: TransactionType::Withdrawal,
            amount: Amount::new(2000, Currency::EUR),
            dispensed_minor: None,
            pan: None,
            repeat: false,
        }
    }

    #[test]
    fn a_card_request_carries_the_card_present_context() {
        let r = CardRequest {
            acceptance: acceptance(),
            ..withdrawal()
        };
        let m = Request::Withdrawal(r.clone()).to_message().unwrap();
        for (n, v) in [
            (12, "114000"),
            (13, "1125"),
            (14, "2812"),
            (18, "6011"),
            (22, "901"),
            (32, "12345678901"),
            (35, "4761739001010010=28122011143804400000"),
            (37, "632911000123"),
            (42, "ATM00001       "),
            (43, "1 MAIN STREET            SPRINGFIELD  US"),
        ] {
            assert_eq!(m.get_str(n), Some(v), "field {n}");
        }
        assert_eq!(Request::from_message(&m).unwrap(), Request::Withdrawal(r));
    }

    #[test]
    fn an_advice_never_carries_track_2() {
        let with_track = Advice {
            acceptance: acceptance(),
            ..completion()
        };
        assert!(Request::Completion(with_track.clone())
            .to_message()
            .is_err());
        assert!(Request::Reversal(with_track).to_message().is_err());
        let deposit = CardRequest {
            acceptance: acceptance(),
            ..withdrawal()
        };
        let e = Request::DepositAdvice(deposit).to_message().unwrap_err();
        assert!(e.to_string().contains("written"), "{e}");
        let m = Request::Reversal(completion()).to_message().unwrap();
        assert!(!m.contains(35) && !m.contains(52));
        for n in [12, 13, 14, 32, 37, 42, 43] {
            assert!(m.contains(n), "field {n}");
        }
        // A track 2 someone else put in an advice is dropped when read, never kept.
        let mut m = m;
        m.set_str(35, "4761739001010010=28122011143804400000")
            .unwrap();
        let Request::Reversal(read) = Request::from_message(&m).unwrap() else {
            panic!("not a reversal")
        };
        assert_eq!(read.acceptance.track2, None);
    }

    #[test]
    fn field_90_names_the_real_acquirer() {
        let m = Request::Completion(completion()).to_message().unwrap();
        assert_eq!(
            m.get_str(90),
            Some("010000012311251140001234567890100000000000")
        );
        assert_eq!(
            Request::from_message(&m).unwrap(),
            Request::Completion(completion())
        );
        // Without field 32 the acquirer is read from field 90.
        let mut m = m;
        m.remove(32);
        let Request::Completion(read) = Request::from_message(&m).unwrap() else {
            panic!("not a completion")
        };
        assert_eq!(read.acceptance.acquirer_id.as_deref(), Some("12345678901"));
        // No acquirer: zero, as before.
        let none = Advice {
            acceptance: Acceptance::default(),
            ..completion()
        };
        let m = Request::Completion(none).to_message().unwrap();
        assert!(m.get_str(90).unwrap().ends_with(&"0".repeat(22)));
    }

    #[test]
    fn a_malformed_acceptance_field_is_a_format_error_naming_it() {
        for (n, bad) in [
            (12, "256100"),
            (13, "1340"),
            (14, "2813"),
            (22, "9X1"),
            (32, "12A"),
            (35, "4761739001010010"),
            (37, "!!"),
            (42, "\u{7f}"),
        ] {
            let mut m = Request::Withdrawal(withdrawal()).to_message().unwrap();
            m.set_str(n, bad).unwrap();
            let e = Request::from_message(&m).unwrap_err();
            assert_eq!(e.answer_code(), ResponseCode::FormatError, "field {n}");
            assert!(
                matches!(e, DialectError::Malformed { field, .. } if field == n),
                "field {n}: {e:?}"
            );
        }
        let mut m = Request::Withdrawal(withdrawal()).to_message().unwrap();
        m.set_str(35, "5500000000000004=28122011143804400000")
            .unwrap();
        assert!(matches!(
            Request::from_message(&m).unwrap_err(),
            DialectError::Malformed { field: 35, .. }
        ));
    }

    #[test]
    fn values_a_field_cannot_carry_are_refused_not_cut() {
        for a in [
            Acceptance {
                acquirer_id: Some("123456789012".into()),
                ..Acceptance::default()
            },
            Acceptance {
                acceptor_id: Some("A".repeat(16)),
                ..Acceptance::default()
            },
            Acceptance {
                acceptor_location: Some("L".repeat(41)),
                ..Acceptance::default()
            },
        ] {
            let r = CardRequest {
                acceptance: a,
                ..withdrawal()
            };
            assert!(Request::Withdrawal(r).to_message().is_err());
        }
    }

    #[test]
    fn a_completion_names_its_original_and_what_was_dispensed() {
        let a = Advice {
            acceptance: Default::default(),
            dispensed_minor: Some(1000),
            repeat: true,
            ..completion()
        };
        let m = Request::Completion(a.clone()).to_message().unwrap();
        assert_eq!(m.mti().as_str(), "0221");
        assert_eq!(
            m.get_str(90),
            Some("010000012311251140000000000000000000000000")
        );
        assert_eq!(
            m.get_str(95),
            Some("000000001000000000000000C00000000C00000000")
        );
        assert_eq!(
            Request::from_message(&m).unwrap(),
            Request::Completion(a.clone())
        );
        assert_eq!(a.dispensed_or_all(), 1000);
    }

    #[test]
    fn a_deposit_advice_is_an_0220_without_an_original_or_a_pin() {
        let deposit = CardRequest {
            pin: None,
            amount: Amount::new(7000, Currency::EUR),
            ..withdrawal()
        };
        let m = Request::DepositAdvice(deposit.clone())
            .to_message()
            .unwrap();
        assert_eq!(m.mti().as_str(), "0220");
        assert!(!m.contains(90) && !m.contains(52));
        assert_eq!(m.get_str(3), Some("210010"));
        assert_eq!(
            Request::from_message(&m).unwrap(),
            Request::DepositAdvice(deposit.clone())
        );
        let with_pin = CardRequest {
            pin: Some(PinField {
                block: PinBlock::new(b"0412AC89ABCDEF67".to_vec()),
                key_version: Some(1),
            }),
            ..deposit
        };
        assert!(Request::DepositAdvice(with_pin).to_message().is_err());
    }

    #[test]
    fn unreadable_requests_say_which_code_answers_them() {
        let mut m = Request::Withdrawal(withdrawal()).to_message().unwrap();
        m.remove(11);
        assert_eq!(
            Request::from_message(&m).unwrap_err().answer_code(),
            ResponseCode::FormatError
        );
        let mut m = Request::Withdrawal(withdrawal()).to_message().unwrap();
        m.set_str(3, "401000").unwrap();
        assert_eq!(
            Request::from_message(&m).unwrap_err().answer_code(),
            ResponseCode::InvalidTransaction
        );
        m.set_str(3, "011000").unwrap().set_str(2, "12AB").unwrap();
        assert_eq!(
            Request::from_message(&m).unwrap_err().answer_code(),
            ResponseCode::InvalidAccount
        );
        m.remove(2);
        assert_eq!(Request::from_message(&m).unwrap_err(), DialectError::NoCard);
        let m = Message::new("0600").unwrap();
        assert_eq!(
            Request::from_message(&m).unwrap_err().answer_code(),
            ResponseCode::InvalidTransaction
        );
    }

    #[test]
    fn track_2_stands_in_for_a_missing_pan() {
        let mut m = Request::Withdrawal(withdrawal()).to_message().unwrap();
        m.remove(2);
        m.set_str(35, "4761739001010010=28122011143804400000")
            .unwrap();
        let Request::Withdrawal(r) = Request::from_message(&m).unwrap() else {
            panic!("not a withdrawal")
        };
        assert_eq!(r.pan.bin(), "476173");
    }

    #[test]
    fn a_pin_travels_with_its_key_version_and_never_prints() {
        let mut r = withdrawal();
        r.pin = Some(PinField {
            block: PinBlock::new(b"0123456789ABCDEF".to_vec()),
            key_version: Some(3),
        });
        let m = Request::Withdrawal(r.clone()).to_message().unwrap();
        assert_eq!(m.get_str(53), Some("0000000000000003"));
        assert!(!format!("{r:?}").contains("0123456789"));
        assert_eq!(Request::from_message(&m).unwrap(), Request::Withdrawal(r));
    }
}
