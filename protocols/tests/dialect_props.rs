//! The agent ↔ switch dialect round-trips: any request the agent can build, packed in
//! `iso87-ascii` and unpacked on the other side, reads back as the same request; any answer the
//! switch can build reads back as the same answer. This is the test that notices when the two
//! daemons drift apart, since both speak only through `protocols::dialect`.

use proptest::option;
use proptest::prelude::*;
use protocols::dialect::{
    Acceptance, Advice, Answer, Balances, CardRequest, EntryMode, Expiry, MessageKey, NetworkCode,
    NetworkRequest, OfflineDeposits, OriginalKey, PinField, Request, ResponseCode, StatusAdvice,
    TransactionType,
};
use protocols::iso8583::{
    LocalDate, LocalTime, Message, Mti, PinBlock, Spec, TransmissionDateTime,
};
use protocols::types::{Amount, Currency, Pan, Rrn, Stan, TerminalId, Track2};

fn wire(m: &Message) -> Message {
    let spec = Spec::iso87_ascii();
    let bytes = spec.pack(m).expect("a dialect message packs");
    spec.unpack(&bytes).expect("and unpacks")
}

fn transmission() -> impl Strategy<Value = TransmissionDateTime> {
    (1u8..=12, 1u8..=28, 0u8..24, 0u8..60, 0u8..60).prop_map(|(mo, d, h, mi, s)| {
        TransmissionDateTime::parse(&format!("{mo:02}{d:02}{h:02}{mi:02}{s:02}")).unwrap()
    })
}

fn stan() -> impl Strategy<Value = Stan> {
    (1u32..=Stan::MAX).prop_map(|v| Stan::new(v).unwrap())
}

fn terminal() -> impl Strategy<Value = TerminalId> {
    "[A-Z0-9]{1,8}".prop_map(|s| TerminalId::parse(&s).unwrap())
}

fn key() -> impl Strategy<Value = MessageKey> {
    (terminal(), stan(), transmission()).prop_map(|(terminal, stan, transmitted_at)| MessageKey {
        terminal,
        stan,
        transmitted_at,
    })
}

fn pan() -> impl Strategy<Value = Pan> {
    "[0-9]{12,19}".prop_map(|s| Pan::parse(&s).unwrap())
}

fn amount() -> impl Strategy<Value = Amount> {
    (
        0..=Amount::MAX_MINOR,
        prop::sample::select(vec![978u16, 840, 826, 392, 4]),
    )
        .prop_map(|(m, c)| Amount::new(m, Currency { numeric: c }))
}

fn pin() -> impl Strategy<Value = PinField> {
    ("[0-9A-F]{16}", option::of(1u32..=u32::MAX)).prop_map(|(b, v)| PinField {
        block: PinBlock::new(b.into_bytes()),
        key_version: v,
    })
}

/// Track 2 of `pan` as a terminal reads it: separator, expiry, service code and discretionary
/// data, with or without the start and end sentinels, within field 35's 37 characters.
fn track2_of(pan: &Pan) -> impl Strategy<Value = Track2> {
    let pan = pan.expose().to_owned();
    (
        prop::sample::select(vec!["=", "D"]),
        "[0-9]{2}(0[1-9]|1[0-2])",
        "[0-9]{0,14}",
        any::<bool>(),
    )
        .prop_map(move |(sep, expiry, rest, sentinels)| {
            let body = format!("{pan}{sep}{expiry}{rest}");
            let body: String = body.chars().take(if sentinels { 35 } else { 37 }).collect();
            let raw = if sentinels { format!(";{body}?") } else { body };
            Track2::parse(&raw).unwrap()
        })
}

/// Printable text that fits a space-padded field: no trailing space (trimmed when read).
fn padded_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~]{{0,{}}}[!-~]", max - 1)).unwrap()
}

/// Any acceptance context, with track 2 (of `pan`) only when `with_track2`.
fn acceptance(pan: &Pan, with_track2: bool) -> BoxedStrategy<Acceptance> {
    let track = if with_track2 {
        option::of(track2_of(pan)).boxed()
    } else {
        Just(None).boxed()
    };
    (
        track,
        option::of((0u8..=99, 1u8..=12)),
        option::of(prop::sample::select(vec![
            EntryMode::MAGSTRIPE,
            EntryMode::CHIP,
            EntryMode::KEYED,
        ])),
        option::of((0u8..24, 0u8..60, 0u8..60)),
        option::of((1u8..=12, 1u8..=31)),
        option::of("[0-9]{1,11}"),
        option::of("[A-Za-z0-9]{1,12}"),
        option::of(padded_text(15)),
        option::of(padded_text(40)),
    )
        .prop_map(
            |(track2, expiry, entry_mode, time, date, acquirer_id, rrn, acceptor_id, location)| {
                Acceptance {
                    track2,
                    expiry: expiry.and_then(|(y, m)| Expiry::parse(&format!("{y:02}{m:02}"))),
                    entry_mode,
                    local_time: time.map(|(hour, minute, second)| LocalTime {
                        hour,
                        minute,
                        second,
                    }),
                    local_date: date.map(|(month, day)| LocalDate { month, day }),
                    acquirer_id,
                    rrn: rrn.map(|r| Rrn::parse(&r).unwrap()),
                    acceptor_id,
                    acceptor_location: location,
                }
            },
        )
        .boxed()
}

fn card_request() -> BoxedStrategy<CardRequest> {
    card_request_with(true)
}

fn card_request_with(with_track2: bool) -> BoxedStrategy<CardRequest> {
    pan()
        .prop_flat_map(move |pan| (Just(pan.clone()), acceptance(&pan, with_track2)))
        .prop_flat_map(|(pan, acceptance)| {
            (
                key(),
                Just(pan),
                Just(acceptance),
                amount(),
                option::of(pin()),
                any::<bool>(),
            )
        })
        .prop_map(|(key, pan, acceptance, amount, pin, repeat)| CardRequest {
            acceptance,
            key,
            pan,
            amount,
            pin,
            repeat,
        })
        .boxed()
}

fn advice() -> BoxedStrategy<Advice> {
    (
        key(),
        (
            prop::sample::select(vec!["0100", "0200"]),
            stan(),
            transmission(),
        ),
        prop::sample::select(TransactionType::ALL.to_vec()),
        amount(),
        option::of(0..=Amount::MAX_MINOR),
        option::of(pan()),
        any::<bool>(),
        pan().prop_flat_map(|p| acceptance(&p, false)),
    )
        .prop_map(
            |(
                key,
                (mti, ostan, at),
                transaction,
                amount,
                dispensed_minor,
                pan,
                repeat,
                acceptance,
            )| Advice {
                acceptance,
                key,
                original: OriginalKey {
                    mti: Mti::parse(mti).unwrap(),
                    stan: ostan,
                    transmitted_at: at,
                },
                transaction,
                amount,
                dispensed_minor,
                pan,
                repeat,
            },
        )
        .boxed()
}

fn network() -> impl Strategy<Value = NetworkRequest> {
    (
        prop::sample::select(vec![1u16, 2, 161, 301, 999]),
        option::of(stan()),
        option::of(transmission()),
        option::of(terminal()),
    )
        .prop_map(|(code, stan, transmitted_at, terminal)| NetworkRequest {
            code: NetworkCode::from_code(code),
            stan,
            transmitted_at,
            terminal,
        })
}

fn request() -> BoxedStrategy<Request> {
    prop_oneof![
        network().prop_map(Request::Network),
        card_request().prop_map(Request::Withdrawal),
        card_request().prop_map(Request::BalanceInquiry),
        card_request().prop_map(Request::Deposit),
        card_request_with(false)
            .prop_map(|r| Request::DepositAdvice(CardRequest { pin: None, ..r })),
        advice().prop_map(Request::Completion),
        advice().prop_map(Request::Reversal),
        (key(), "[ -~]{0,200}")
            .prop_map(|(key, detail)| Request::Status(StatusAdvice { key, detail })),
    ]
    .boxed()
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        prop::sample::select(ResponseCode::ALL.to_vec()),
        option::of("[A-Z0-9]{6}"),
        option::of((
            -999_999_999_999i64..=999_999_999_999,
            -999_999_999_999i64..=999_999_999_999,
        )),
        option::of(1u32..=u32::MAX),
        option::of("[0-9A-F]{38}"),
        option::of(prop::collection::vec(("[0-9]{1,11}", any::<bool>()), 0..6)),
    )
        .prop_map(
            |(code, approval_code, balances, version, under, ranges)| Answer {
                code,
                approval_code,
                balances: balances.map(|(l, a)| Balances {
                    currency: Currency::EUR,
                    ledger_minor: l,
                    available_minor: a,
                }),
                zone_key_version: version,
                zone_key_under_zmk: under,
                offline_deposits: ranges.map(|r| {
                    let mut seen = std::collections::BTreeSet::new();
                    let unique = r.into_iter().filter(|(p, _)| seen.insert(p.clone()));
                    OfflineDeposits::new(unique).unwrap()
                }),
            },
        )
}

proptest! {
    #[test]
    fn every_request_reads_back_as_itself_after_the_wire(r in request()) {
        let m = r.to_message().unwrap();
        prop_assert_eq!(m.mti(), r.mti());
        prop_assert_eq!(Request::from_message(&wire(&m)).unwrap(), r);
    }

    #[test]
    fn every_answer_reads_back_as_itself_after_the_wire(r in request(), a in answer()) {
        let request = wire(&r.to_message().unwrap());
        let m = a.to_message(&request).unwrap();
        let m = wire(&m);
        prop_assert_eq!(m.mti(), request.mti().response());
        // The answer carries the request's key, which is how the agent matches it.
        prop_assert_eq!(m.get(41), request.get(41));
        prop_assert_eq!(m.get(11), request.get(11));
        prop_assert_eq!(Answer::from_message(&m).unwrap(), a);
    }

    #[test]
    fn reading_any_message_never_panics(r in request(), field in 2u8..=128, junk in "[ -~]{0,30}") {
        let mut m = r.to_message().unwrap();
        let _ = m.set_str(field, &junk);
        let _ = Request::from_message(&m);
        let _ = Answer::from_message(&m);
    }
}
