//! What the typed agent ↔ switch dialect costs on the hot path: a withdrawal written through
//! `protocols::dialect` and read back on the switch's side, beside the same message written field
//! by field with `set_str` (how the daemons built it before) and read with the typed getters, in
//! the same run.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use protocols::dialect::{CardRequest, MessageKey, Request};
use protocols::iso8583::{Message, Spec, TransmissionDateTime};
use protocols::types::{Amount, Currency, Pan, Stan, TerminalId};

fn request() -> Request {
    Request::Withdrawal(CardRequest {
        acceptance: Default::default(),
        key: MessageKey {
            terminal: TerminalId::parse("ATM00001").unwrap(),
            stan: Stan::new(123).unwrap(),
            transmitted_at: TransmissionDateTime::parse("1125114000").unwrap(),
        },
        pan: Pan::parse("4761739001010010").unwrap(),
        amount: Amount::new(10_000, Currency::EUR),
        pin: None,
        repeat: false,
    })
}

/// The 0100 as the agent wrote it by hand before the dialect existed.
fn by_hand() -> Message {
    let mut m = Message::new("0100").unwrap();
    for (n, v) in [
        (2u8, "4761739001010010"),
        (3, "011000"),
        (4, "000000010000"),
        (7, "1125114000"),
        (11, "000123"),
        (41, "ATM00001"),
        (49, "978"),
    ] {
        m.set_str(n, v).unwrap();
    }
    m
}

/// What the switch read by hand: key, card, amount, currency.
fn read_by_hand(m: &Message) -> (TerminalId, Stan, TransmissionDateTime, Pan, u64, Currency) {
    (
        m.terminal_id().unwrap().unwrap(),
        m.stan().unwrap().unwrap(),
        m.transmission_datetime().unwrap().unwrap(),
        m.pan().unwrap().unwrap(),
        m.amount().unwrap().unwrap(),
        m.currency().unwrap().unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    let spec = Spec::iso87_ascii();
    let typed = request();
    let wire = spec.pack(&by_hand()).unwrap();
    assert_eq!(wire, spec.pack(&typed.to_message().unwrap()).unwrap());

    let mut g = c.benchmark_group("0100 written");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline: set_str field by field", |b| {
        b.iter(|| black_box(by_hand()))
    });
    g.bench_function("dialect: Request::to_message", |b| {
        b.iter(|| black_box(black_box(&typed).to_message().unwrap()))
    });
    g.finish();

    let msg = spec.unpack(&wire).unwrap();
    let mut g = c.benchmark_group("0100 read");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline: typed getters by hand", |b| {
        b.iter(|| black_box(read_by_hand(black_box(&msg))))
    });
    g.bench_function("dialect: Request::from_message", |b| {
        b.iter(|| black_box(Request::from_message(black_box(&msg)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
