//! The switch's messages to a bank host and the host's answers, field by field
//! (docs/ISO8583_FIELDS.md, "switch ↔ bank host"). Values are written in the `Message`'s
//! spec-neutral form; the host's `Spec` packs them (BCD, binary bitmap, EBCDIC…).

use keystore::EncryptedPinBlock;
use protocols::dialect::{
    Acceptance, Balances, EntryMode, ResponseCode, TransactionType, MERCHANT_TYPE_ATM,
};
use protocols::iso8583::{
    Encoding, FieldError, Message, Mti, OriginalData, PinBlock, ReplacementAmounts, Sign,
    SignedAmount, Spec, TransmissionDateTime,
};
use protocols::types::{Amount, Pan, Stan, TerminalId};
use serde::{Deserialize, Serialize};

use crate::domain::issuer::{AdviceKind, HostAnswer, HostRequest, HostTrace, HostTxn};

/// What the host is told about this switch and its terminals when the agent did not say.
#[derive(Debug, Clone)]
pub struct Acquirer {
    /// Field 32.
    pub id: String,
    /// Field 43 when the agent sent none.
    pub location: Option<String>,
}

/// The card and acceptance data of a request, kept (sealed) so its advices can name the card
/// after a restart: never track 2, never a PIN block.
#[derive(Clone, Serialize, Deserialize)]
pub struct OriginalCard {
    pub pan: String,
    pub expiry: Option<String>,
    pub entry_mode: Option<String>,
    pub acceptor_id: Option<String>,
    pub acceptor_location: Option<String>,
}

impl std::fmt::Debug for OriginalCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginalCard(****)")
    }
}

fn transaction_type(txn: HostTxn) -> TransactionType {
    match txn {
        HostTxn::Withdrawal => TransactionType::Withdrawal,
        HostTxn::BalanceInquiry => TransactionType::BalanceInquiry,
        HostTxn::Deposit => TransactionType::Deposit,
    }
}

/// Field 52 as the host's spec carries it: 8 raw bytes when binary, else 16 hex characters.
fn pin_value(spec: &Spec, block: &EncryptedPinBlock) -> PinBlock {
    match spec.field(52).map(|f| f.data_enc) {
        Some(Encoding::Binary) => PinBlock::new(block.0.to_vec()),
        _ => PinBlock::new(block.to_hex().into_bytes()),
    }
}

fn location_field(loc: &str) -> String {
    format!("{:<40.40}", loc)
}

fn trace_fields(m: &mut Message, trace: &HostTrace) -> Result<(), FieldError> {
    m.set_str(12, &trace.local_time)?;
    m.set_str(13, &trace.local_date)?;
    m.set_str(37, &format!("{:<12}", trace.rrn))?;
    Ok(())
}

/// The card data to keep for the advices of `req`.
pub fn original_card(req: &HostRequest) -> OriginalCard {
    let a = &req.acceptance;
    OriginalCard {
        pan: req.pan.expose().to_owned(),
        expiry: expiry_of(a),
        entry_mode: Some(entry_mode_of(a).to_string()),
        acceptor_id: a.acceptor_id.clone(),
        acceptor_location: a.acceptor_location.clone(),
    }
}

fn expiry_of(a: &Acceptance) -> Option<String> {
    a.expiry.map(|e| e.to_string()).or_else(|| {
        a.track2
            .as_ref()
            .and_then(|t| t.expiry_yymm().map(str::to_owned))
    })
}

fn entry_mode_of(a: &Acceptance) -> EntryMode {
    a.entry_mode.unwrap_or(if a.track2.is_some() {
        EntryMode::MAGSTRIPE
    } else {
        EntryMode::KEYED
    })
}

/// 0100 (withdrawal, inquiry) or 0200 (deposit) to the host.
pub fn request(spec: &Spec, acquirer: &Acquirer, req: &HostRequest) -> Result<Message, FieldError> {
    let mut m = Message::new(req.txn.mti())?;
    let t = transaction_type(req.txn);
    let a = &req.acceptance;
    m.set_pan(&req.pan).set_processing_code(t.processing_code());
    m.set_amount(req.amount.minor)?;
    m.set_str(7, &req.trace.transmitted_at)?;
    m.set_str(11, &format!("{:06}", req.trace.stan))?;
    trace_fields(&mut m, &req.trace)?;
    if let Some(e) = expiry_of(a) {
        m.set_str(14, &e)?;
    }
    m.set_str(18, MERCHANT_TYPE_ATM)?;
    m.set_str(22, entry_mode_of(a).as_str())?;
    m.set_str(32, &acquirer.id)?;
    if let Some(t2) = &a.track2 {
        m.set_track2(t2);
    }
    m.set_terminal_id(&req.terminal);
    acceptor_fields(
        &mut m,
        acquirer,
        &req.terminal,
        a.acceptor_id.as_deref(),
        a.acceptor_location.as_deref(),
    )?;
    m.set_currency(req.amount.currency)?;
    if let Some(block) = &req.pin {
        m.set_pin_block(&pin_value(spec, block));
    }
    Ok(m)
}

fn acceptor_fields(
    m: &mut Message,
    acquirer: &Acquirer,
    terminal: &TerminalId,
    acceptor_id: Option<&str>,
    location: Option<&str>,
) -> Result<(), FieldError> {
    m.set_str(
        42,
        &format!("{:<15.15}", acceptor_id.unwrap_or(terminal.as_str())),
    )?;
    if let Some(loc) = location.or(acquirer.location.as_deref()) {
        m.set_str(43, &location_field(loc))?;
    }
    Ok(())
}

/// What an advice needs besides the domain advice: its own STAN and time (fixed when queued) and
/// the original's card.
pub struct AdviceParts<'a> {
    pub kind: AdviceKind,
    pub original: &'a HostTrace,
    pub original_txn: HostTxn,
    pub card: &'a OriginalCard,
    pub terminal: &'a TerminalId,
    pub amount: Amount,
    pub actual_minor: Option<u64>,
    pub stan: u32,
    pub transmitted_at: &'a str,
}

/// 0220 completion or 0420 reversal (the first send; repeats change the MTI only).
pub fn advice(acquirer: &Acquirer, p: &AdviceParts<'_>) -> Result<Message, FieldError> {
    let mti = match p.kind {
        AdviceKind::Completion => "0220",
        AdviceKind::Reversal => "0420",
    };
    let mut m = Message::new(mti)?;
    let pan = Pan::parse(&p.card.pan).map_err(|source| FieldError::Value { field: 2, source })?;
    m.set_pan(&pan)
        .set_processing_code(transaction_type(p.original_txn).processing_code());
    m.set_amount(p.amount.minor)?;
    m.set_str(7, p.transmitted_at)?;
    m.set_str(11, &format!("{:06}", p.stan))?;
    trace_fields(&mut m, p.original)?;
    if let Some(e) = &p.card.expiry {
        m.set_str(14, e)?;
    }
    m.set_str(18, MERCHANT_TYPE_ATM)?;
    if let Some(mode) = &p.card.entry_mode {
        m.set_str(22, mode)?;
    }
    m.set_str(32, &acquirer.id)?;
    m.set_terminal_id(p.terminal);
    acceptor_fields(
        &mut m,
        acquirer,
        p.terminal,
        p.card.acceptor_id.as_deref(),
        p.card.acceptor_location.as_deref(),
    )?;
    m.set_currency(p.amount.currency)?;
    let original_mti = Mti::parse(&p.original.mti).map_err(|_| FieldError::Malformed {
        field: 90,
        reason: "original MTI",
    })?;
    let stan =
        Stan::new(p.original.stan).map_err(|source| FieldError::Value { field: 90, source })?;
    m.set_original_data(&OriginalData {
        mti: original_mti,
        stan,
        transmission: TransmissionDateTime::parse(&p.original.transmitted_at),
        acquirer_id: acquirer.id.parse().unwrap_or(0),
        forwarding_id: 0,
    })?;
    if let Some(actual) = p.actual_minor {
        let nothing = SignedAmount {
            sign: Sign::Credit,
            minor: 0,
        };
        m.set_replacement_amounts(&ReplacementAmounts {
            actual_amount: actual,
            settlement_amount: actual,
            transaction_fee: nothing,
            settlement_fee: nothing,
        })?;
    }
    Ok(m)
}

/// An 0800: sign-on (001), sign-off (002) or echo (301).
pub fn network(code: u16, stan: u32, transmitted_at: &str) -> Result<Message, FieldError> {
    let mut m = Message::new("0800")?;
    m.set_str(7, transmitted_at)?;
    m.set_str(11, &format!("{stan:06}"))?;
    m.set_network_management_code(code)?;
    Ok(m)
}

/// The host's answer to a request. A code the dialect does not know reads as 05 (logged by the
/// caller): the terminal is told "declined", never "approved".
pub fn answer(msg: &Message) -> Result<HostAnswer, String> {
    let code_text = msg
        .response_code()
        .map_err(|e| e.to_string())?
        .ok_or("no response code (field 39)")?;
    let code = ResponseCode::parse(code_text).unwrap_or(ResponseCode::DoNotHonour);
    let approval_code = msg
        .get_str(38)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let balances = match msg.additional_amounts() {
        Ok(Some(amounts)) => Balances::from_additional_amounts(&amounts),
        _ => None,
    };
    Ok(HostAnswer {
        code,
        approval_code,
        balances,
    })
}

/// How a response is matched to its request: the response MTI (origin digit 0), field 41 (empty
/// for network messages) and field 11.
pub type MatchKey = (String, String, String);

pub fn request_match_key(msg: &Message) -> MatchKey {
    let resp = msg.mti().response();
    let mut mti = resp.as_str().to_owned();
    mti.replace_range(3..4, "0");
    (
        mti,
        msg.get_str(41).unwrap_or("").trim().to_owned(),
        msg.get_str(11).unwrap_or("").to_owned(),
    )
}

pub fn response_match_key(msg: &Message) -> MatchKey {
    let mut mti = msg.mti().as_str().to_owned();
    mti.replace_range(3..4, "0");
    (
        mti,
        msg.get_str(41).unwrap_or("").trim().to_owned(),
        msg.get_str(11).unwrap_or("").to_owned(),
    )
}

/// The MTI of a repeat (0221, 0421).
pub fn as_repeat(msg: &mut Message) {
    let mut digits = *msg.mti().as_bytes();
    digits[3] = b'1';
    if let Ok(mti) = Mti::parse(std::str::from_utf8(&digits).unwrap_or("")) {
        msg.set_mti(mti);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::types::{Currency, Track2};

    fn trace() -> HostTrace {
        HostTrace {
            host: "acme".into(),
            stan: 42,
            transmitted_at: "1204103000".into(),
            rrn: "120410000042".into(),
            mti: "0100".into(),
            local_time: "103000".into(),
            local_date: "1204".into(),
        }
    }

    fn acquirer() -> Acquirer {
        Acquirer {
            id: "1234567".into(),
            location: Some("OUR ATM NETWORK          LISBON       PT".into()),
        }
    }

    fn withdrawal() -> HostRequest {
        HostRequest {
            txn: HostTxn::Withdrawal,
            trace: trace(),
            terminal: TerminalId::parse("ATM00001").unwrap(),
            pan: Pan::parse("5413330089020011").unwrap(),
            acceptance: Acceptance {
                track2: Some(Track2::parse("5413330089020011=29121010000012300000").unwrap()),
                ..Acceptance::default()
            },
            amount: Amount::new(20_000, Currency::EUR),
            pin: Some(EncryptedPinBlock([0x11; 8])),
        }
    }

    #[test]
    fn a_withdrawal_packs_and_unpacks_in_both_builtin_specs() {
        for name in ["iso87-binary", "iso87-ascii"] {
            let spec = Spec::builtin(name).unwrap();
            let m = request(spec, &acquirer(), &withdrawal()).unwrap();
            let back = spec.unpack(&spec.pack(&m).unwrap()).unwrap();
            assert_eq!(back, m, "{name}");
            assert_eq!(back.get_str(18), Some("6011"));
            assert_eq!(back.get_str(22), Some("901"), "swiped: full track read");
            assert_eq!(back.get_str(14), Some("2912"), "expiry from track 2");
            assert_eq!(back.get_str(32), Some("1234567"));
            assert_eq!(back.get_str(37), Some("120410000042"));
            assert_eq!(back.get_str(42), Some("ATM00001       "));
            assert_eq!(back.get_str(43).map(str::len), Some(40));
            assert!(back.contains(35));
        }
        let binary = Spec::builtin("iso87-binary").unwrap();
        let m = request(binary, &acquirer(), &withdrawal()).unwrap();
        assert_eq!(m.get(52), Some(&[0x11u8; 8][..]));
        let ascii = Spec::builtin("iso87-ascii").unwrap();
        let m = request(ascii, &acquirer(), &withdrawal()).unwrap();
        assert_eq!(m.get_str(52), Some("1111111111111111"));
    }

    #[test]
    fn an_advice_names_its_original_and_never_carries_track_2_or_a_pin() {
        let req = withdrawal();
        let card = original_card(&req);
        assert_eq!(format!("{card:?}"), "OriginalCard(****)");
        let spec = Spec::builtin("iso87-binary").unwrap();
        let parts = AdviceParts {
            kind: AdviceKind::Reversal,
            original: &req.trace,
            original_txn: HostTxn::Withdrawal,
            card: &card,
            terminal: &req.terminal,
            amount: req.amount,
            actual_minor: Some(5_000),
            stan: 43,
            transmitted_at: "1204103005",
        };
        let m = advice(&acquirer(), &parts).unwrap();
        let back = spec.unpack(&spec.pack(&m).unwrap()).unwrap();
        assert_eq!(back.mti().as_str(), "0420");
        assert!(!back.contains(35) && !back.contains(52));
        assert_eq!(back.get_str(11), Some("000043"), "its own STAN");
        assert_eq!(back.get_str(37), Some("120410000042"), "the original's RRN");
        let o = back.original_data().unwrap().unwrap();
        assert_eq!(o.mti.as_str(), "0100");
        assert_eq!(o.stan.value(), 42);
        assert_eq!(o.transmission.unwrap().to_string(), "1204103000");
        assert_eq!(o.acquirer_id, 1_234_567);
        assert_eq!(
            back.replacement_amounts().unwrap().unwrap().actual_amount,
            5_000
        );
        let mut repeat = back.clone();
        as_repeat(&mut repeat);
        assert_eq!(repeat.mti().as_str(), "0421");
        assert_eq!(
            request_match_key(&repeat),
            response_match_key(&{
                let mut r = Message::response_to(&repeat);
                r.set_str(39, "00").unwrap();
                r
            })
        );
    }

    #[test]
    fn an_unknown_answer_code_is_a_decline_and_a_missing_one_is_an_error() {
        let mut m = Message::new("0110").unwrap();
        m.set_str(39, "Z9").unwrap();
        assert_eq!(answer(&m).unwrap().code, ResponseCode::DoNotHonour);
        m.set_str(39, "00").unwrap();
        m.set_str(38, "ABC123").unwrap();
        let a = answer(&m).unwrap();
        assert_eq!(
            (a.code, a.approval_code.as_deref()),
            (ResponseCode::Approved, Some("ABC123"))
        );
        assert!(answer(&Message::new("0110").unwrap()).is_err());
    }
}
