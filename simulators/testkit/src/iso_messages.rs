//! The agent↔switch requests a test sends, built through `protocols::dialect` as the agent builds
//! them (the switch's tests probe it with exactly these, and with variations of them).
//!
//! Every request carries a card-present context as the agent fills it: track 2 of the card (35)
//! and its expiry (14), entry mode 901, local time and date of [`AT`] (12, 13), acquirer
//! [`ACQUIRER`] (32), RRN `632911` + STAN (37), acceptor [`TERMINAL`] at [`LOCATION`] (42, 43).
//! Advices carry their original's, without track 2.

use protocols::dialect::{
    Acceptance, Advice, CardRequest, EntryMode, Expiry, MessageKey, NetworkCode, NetworkRequest,
    OriginalKey, Request, TransactionType,
};
use protocols::iso8583::{LocalDate, LocalTime, Message, TransmissionDateTime};
use protocols::types::{Amount, Currency, Pan, Rrn, Stan, TerminalId, Track2};

/// Field 7 (transmission date and time, `MMDDhhmmss`) of every test message.
pub const AT: &str = "1125114000";
/// The terminal every test message comes from.
pub const TERMINAL: &str = "ATM00001";
/// Field 32 of every test message.
pub const ACQUIRER: &str = "12345678901";
/// Field 43 of every test message (40 characters: name and street, city, country).
pub const LOCATION: &str = "1 MAIN STREET            SPRINGFIELD  US";

/// The context the agent gives a request with `stan` at [`AT`] (2026-11-25 11:40:00 UTC, day
/// 329): no track 2.
pub fn acceptance(stan: u32) -> Acceptance {
    Acceptance {
        track2: None,
        expiry: Expiry::parse("2812"),
        entry_mode: None,
        local_time: Some(LocalTime {
            hour: 11,
            minute: 40,
            second: 0,
        }),
        local_date: Some(LocalDate { month: 11, day: 25 }),
        acquirer_id: Some(ACQUIRER.into()),
        rrn: Some(Rrn::parse(&format!("632911{stan:06}")).unwrap()),
        acceptor_id: Some(TERMINAL.into()),
        acceptor_location: Some(LOCATION.into()),
    }
}

/// Track 2 of `pan` as a terminal reads it (expiry 2812, service code 201), within field 35's
/// 37 characters.
pub fn track2(pan: &str) -> Track2 {
    let raw: String = format!("{pan}=28122011143804400000")
        .chars()
        .take(37)
        .collect();
    Track2::parse(&raw).unwrap()
}

fn key(stan: u32) -> MessageKey {
    MessageKey {
        terminal: TerminalId::parse(TERMINAL).unwrap(),
        stan: Stan::new(stan).unwrap(),
        transmitted_at: TransmissionDateTime::parse(AT).unwrap(),
    }
}

fn card(stan: u32, pan: &str, minor: u64) -> CardRequest {
    CardRequest {
        acceptance: Acceptance {
            track2: Some(track2(pan)),
            entry_mode: Some(EntryMode::MAGSTRIPE),
            ..acceptance(stan)
        },
        key: key(stan),
        pan: Pan::parse(pan).unwrap(),
        amount: Amount::new(minor, Currency::EUR),
        pin: None,
        repeat: false,
    }
}

fn advice(stan: u32, orig_stan: u32, pan: &str, requested: u64, t: TransactionType) -> Advice {
    Advice {
        acceptance: acceptance(orig_stan),
        key: key(stan),
        original: OriginalKey {
            mti: t.request_mti(),
            stan: Stan::new(orig_stan).unwrap(),
            transmitted_at: TransmissionDateTime::parse(AT).unwrap(),
        },
        transaction: t,
        amount: Amount::new(requested, Currency::EUR),
        dispensed_minor: None,
        pan: Some(Pan::parse(pan).unwrap()),
        repeat: false,
    }
}

/// 0100 cash withdrawal authorization of `minor` EUR cents.
pub fn withdrawal(stan: u32, pan: &str, minor: u64) -> Message {
    Request::Withdrawal(card(stan, pan, minor))
        .to_message()
        .unwrap()
}

/// 0200 deposit of `minor` EUR cents.
pub fn deposit(stan: u32, pan: &str, minor: u64) -> Message {
    Request::Deposit(card(stan, pan, minor))
        .to_message()
        .unwrap()
}

/// 0100 balance inquiry.
pub fn balance_inquiry(stan: u32, pan: &str) -> Message {
    Request::BalanceInquiry(card(stan, pan, 0))
        .to_message()
        .unwrap()
}

/// 0220 for `orig_stan`, saying `dispensed` of `requested` left the ATM.
pub fn completion(stan: u32, orig_stan: u32, pan: &str, requested: u64, dispensed: u64) -> Message {
    let mut a = advice(stan, orig_stan, pan, requested, TransactionType::Withdrawal);
    a.dispensed_minor = Some(dispensed);
    Request::Completion(a).to_message().unwrap()
}

/// 0420 reversal of `orig_stan` (a withdrawal, or a deposit when `proc` starts with `21`).
pub fn reversal(stan: u32, orig_stan: u32, pan: &str, requested: u64, proc: &str) -> Message {
    let t = if proc.starts_with("21") {
        TransactionType::Deposit
    } else {
        TransactionType::Withdrawal
    };
    let mut m = Request::Reversal(advice(stan, orig_stan, pan, requested, t))
        .to_message()
        .unwrap();
    // The processing code exactly as the test asks (a probe may send one the switch refuses).
    m.set_str(3, proc).unwrap();
    m
}

/// 0800 echo test.
pub fn echo(stan: u32) -> Message {
    Request::Network(NetworkRequest {
        code: NetworkCode::Echo,
        stan: Some(Stan::new(stan).unwrap()),
        transmitted_at: Some(TransmissionDateTime::parse(AT).unwrap()),
        terminal: None,
    })
    .to_message()
    .unwrap()
}

/// The response code (field 39), `--` when there is none.
pub fn code(m: &Message) -> &str {
    m.get_str(39).unwrap_or("--")
}
