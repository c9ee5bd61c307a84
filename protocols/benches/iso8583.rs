//! Pack and unpack of typical ATM messages with iso87-ascii, beside a plain copy of the same bytes
//! as a baseline from the same run (the floor no codec can beat).

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use protocols::iso8583::{Message, PinBlock, Spec};

fn withdrawal_0100() -> Message {
    let mut m = Message::new("0100").unwrap();
    for (n, v) in [
        (2u8, "4761739001010010"),
        (3, "010000"),
        (4, "000000010000"),
        (7, "1125103015"),
        (11, "000123"),
        (12, "113015"),
        (13, "1125"),
        (22, "051"),
        (32, "12345678901"),
        (35, "4761739001010010=22122011143804400000"),
        (37, "533012000123"),
        (41, "ATM00001"),
        (42, "BANKMERCHANT001"),
        (49, "978"),
    ] {
        m.set_str(n, v).unwrap();
    }
    m.set_pin_block(&PinBlock::new(*b"1A2B3C4D5E6F7081"));
    m
}

fn approval_0110(req: &Message) -> Message {
    let mut m = Message::response_to(req);
    m.set_str(38, "A1B2C3").unwrap().set_str(39, "00").unwrap();
    m.set_str(54, "1001978C0000012345671002978C000001234567")
        .unwrap();
    m
}

fn bench(c: &mut Criterion) {
    let spec = Spec::iso87_ascii();
    let req = withdrawal_0100();
    let resp = approval_0110(&req);
    for (name, msg) in [("0100", &req), ("0110", &resp)] {
        let bytes = spec.pack(msg).unwrap();
        let mut g = c.benchmark_group(format!("iso87-ascii {name} ({} bytes)", bytes.len()));
        g.throughput(Throughput::Elements(1));
        g.bench_function("baseline: copy bytes", |b| {
            let mut buf = BytesMut::with_capacity(1024);
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(black_box(&bytes));
                black_box(&buf);
            })
        });
        g.bench_function("pack_into", |b| {
            let mut buf = BytesMut::with_capacity(1024);
            b.iter(|| {
                buf.clear();
                spec.pack_into(black_box(msg), &mut buf).unwrap();
                black_box(&buf);
            })
        });
        g.bench_function("pack (Vec)", |b| {
            b.iter(|| spec.pack(black_box(msg)).unwrap())
        });
        g.bench_function("unpack", |b| {
            b.iter(|| spec.unpack(black_box(&bytes)).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
