//! The agent↔switch requests a test sends, built field by field as the agent builds them (the
//! switch's tests probe it with exactly these, and with variations of them).

use protocols::iso8583::{Message, Mti};

/// Field 7 (transmission date and time, `MMDDhhmmss`) of every test message.
pub const AT: &str = "1125114000";
/// The terminal every test message comes from.
pub const TERMINAL: &str = "ATM00001";

fn base(mti: &str, stan: u32, terminal: &str) -> Message {
    let mut m = Message::new(mti).unwrap();
    m.set_str(7, AT).unwrap();
    m.set_str(11, &format!("{stan:06}")).unwrap();
    m.set_str(41, &format!("{terminal:<8}")).unwrap();
    m.set_str(49, "978").unwrap();
    m
}

/// 0100 cash withdrawal authorization of `minor` EUR cents.
pub fn withdrawal(stan: u32, pan: &str, minor: u64) -> Message {
    let mut m = base("0100", stan, TERMINAL);
    m.set_str(2, pan).unwrap();
    m.set_str(3, "011000").unwrap();
    m.set_str(4, &format!("{minor:012}")).unwrap();
    m
}

/// 0200 deposit of `minor` EUR cents.
pub fn deposit(stan: u32, pan: &str, minor: u64) -> Message {
    let mut m = withdrawal(stan, pan, minor);
    m.set_mti(Mti::parse("0200").unwrap());
    m.set_str(3, "210010").unwrap();
    m
}

/// 0100 balance inquiry.
pub fn balance_inquiry(stan: u32, pan: &str) -> Message {
    let mut m = withdrawal(stan, pan, 0);
    m.set_str(3, "311000").unwrap();
    m
}

fn original_data(orig_mti: &str, orig_stan: u32) -> String {
    format!("{orig_mti}{orig_stan:06}{AT}{:011}{:011}", 0, 0)
}

/// 0220 for `orig_stan`, saying `dispensed` of `requested` left the ATM.
pub fn completion(stan: u32, orig_stan: u32, pan: &str, requested: u64, dispensed: u64) -> Message {
    let mut m = withdrawal(stan, pan, requested);
    m.set_mti(Mti::parse("0220").unwrap());
    m.set_str(90, &original_data("0100", orig_stan)).unwrap();
    m.set_str(95, &format!("{dispensed:012}{:012}C00000000C00000000", 0))
        .unwrap();
    m
}

/// 0420 reversal of `orig_stan` (a withdrawal, or a deposit when `proc` starts with `21`).
pub fn reversal(stan: u32, orig_stan: u32, pan: &str, requested: u64, proc: &str) -> Message {
    let mut m = withdrawal(stan, pan, requested);
    m.set_mti(Mti::parse("0420").unwrap());
    m.set_str(3, proc).unwrap();
    let orig_mti = if proc.starts_with("21") { "0200" } else { "0100" };
    m.set_str(90, &original_data(orig_mti, orig_stan)).unwrap();
    m
}

/// 0800 echo test.
pub fn echo(stan: u32) -> Message {
    let mut m = Message::new("0800").unwrap();
    m.set_str(7, AT).unwrap();
    m.set_str(11, &format!("{stan:06}")).unwrap();
    m.set_str(70, "301").unwrap();
    m
}

/// The response code (field 39), `--` when there is none.
pub fn code(m: &Message) -> &str {
    m.get_str(39).unwrap_or("--")
}
