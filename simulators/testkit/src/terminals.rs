//! The lab's terminals: the `i`th (from 0) has LUNO `00N` and terminal id `ATM0000N`, the ids the
//! lab's agent certificate is made for (`mtls::pki::LAB_TERMINAL_IDS`).

/// ISO 8583 field 41 of the `i`th lab terminal.
pub fn terminal_id(i: usize) -> String {
    format!("ATM{:05}", i + 1)
}

/// NDC logical unit number of the `i`th lab terminal (3 characters, the basic dialect).
pub fn luno(i: usize) -> String {
    format!("{:03}", i + 1)
}
