//! What the terminal's word after a dispense means for the money (ARCHITECTURE.md, the saga).
//!
//! ready → completion for the full amount; `E1` short dispense → completion for what left the
//! cassettes; `E2`/`E4` nothing dispensed → reversal; `E3`/`E5` unknown or retracted → in doubt,
//! for an operator (never silently voided: the cash may be in the customer's hand).
//!
//! Only the terminal's positive "nothing dispensed" (`E2`/`E4`) reverses. A short dispense or a
//! fault whose note counts are missing (or all zero) says that *something* went wrong, not that
//! nothing left: it stays in doubt too.

use protocols::ndc::DispenseOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Send 0220 for this many minor units.
    Complete { dispensed_minor: u64 },
    /// Send 0420: nothing left the ATM.
    Reverse,
    /// Neither: keep the hold and raise it to an operator.
    InDoubt,
}

/// Value of the notes dispensed, given the denomination of each cassette type (1-based).
pub fn dispensed_value(notes: &[u32], denomination: impl Fn(u8) -> Option<u64>) -> u64 {
    notes
        .iter()
        .enumerate()
        .map(|(i, n)| u64::from(*n) * denomination(i as u8 + 1).unwrap_or(0))
        .sum()
}

/// The terminal reported ready: everything asked for was dispensed.
pub fn after_ready(requested_minor: u64) -> Settlement {
    Settlement::Complete {
        dispensed_minor: requested_minor,
    }
}

/// The terminal reported a cash handler fault, with the value of the notes that left the
/// cassettes when the status carried counts (`None`: no counts in the status).
pub fn after_fault(outcome: DispenseOutcome, dispensed_minor: Option<u64>) -> Settlement {
    match (outcome, dispensed_minor) {
        (DispenseOutcome::NoneDispensed | DispenseOutcome::NoneDispensedCardNotEjected, _) => {
            Settlement::Reverse
        }
        (DispenseOutcome::Success | DispenseOutcome::ShortDispense, Some(dispensed_minor))
            if dispensed_minor > 0 =>
        {
            Settlement::Complete { dispensed_minor }
        }
        // A fault without counts, or counts of zero, from a terminal that did not say "nothing
        // dispensed": cash may have left. Neither captured nor voided by a guess.
        (DispenseOutcome::Success | DispenseOutcome::ShortDispense, _) => Settlement::InDoubt,
        (DispenseOutcome::Unknown | DispenseOutcome::Retracted, _) => Settlement::InDoubt,
    }
}

/// After a power failure: the terminal's last-transaction status (or supply counters) says how
/// many notes it dispensed in the transaction with that TSN.
pub fn after_power_failure(dispensed_minor: u64) -> Settlement {
    if dispensed_minor > 0 {
        Settlement::Complete { dispensed_minor }
    } else {
        Settlement::Reverse
    }
}

/// What the terminal said after a transaction reply that moved cash, in money terms (the session
/// reads it from the NDC solicited status and values the notes with the profile's denominations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalReport {
    /// Ready: the reply was carried out in full.
    Ready,
    /// A cash handler fault, with the value of the notes that did leave the cassettes, or
    /// `None` when the status carried no note counts (which is not "nothing dispensed").
    CashHandlerFault {
        outcome: DispenseOutcome,
        dispensed_minor: Option<u64>,
    },
    /// The terminal rejected the reply: it did nothing.
    Rejected,
    /// A status that says nothing about the cash (another device's fault, a terminal state).
    Unclear,
}

/// The settlement the terminal's report calls for, for a reply that asked for `requested_minor`.
pub fn after_report(report: TerminalReport, requested_minor: u64) -> Settlement {
    match report {
        TerminalReport::Ready => after_ready(requested_minor),
        TerminalReport::CashHandlerFault {
            outcome,
            dispensed_minor,
        } => after_fault(outcome, dispensed_minor),
        TerminalReport::Rejected => Settlement::Reverse,
        TerminalReport::Unclear => Settlement::InDoubt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_settles_as_the_saga_says() {
        assert_eq!(
            after_ready(5000),
            Settlement::Complete {
                dispensed_minor: 5000
            }
        );
        assert_eq!(
            after_fault(DispenseOutcome::ShortDispense, Some(2000)),
            Settlement::Complete {
                dispensed_minor: 2000
            }
        );
        assert_eq!(
            after_fault(DispenseOutcome::NoneDispensed, Some(0)),
            Settlement::Reverse
        );
        assert_eq!(
            after_fault(DispenseOutcome::NoneDispensedCardNotEjected, None),
            Settlement::Reverse
        );
        assert_eq!(
            after_fault(DispenseOutcome::Unknown, Some(5000)),
            Settlement::InDoubt
        );
        assert_eq!(
            after_fault(DispenseOutcome::Retracted, Some(5000)),
            Settlement::InDoubt
        );
        assert_eq!(after_power_failure(0), Settlement::Reverse);
        assert_eq!(
            after_power_failure(1000),
            Settlement::Complete {
                dispensed_minor: 1000
            }
        );
    }

    #[test]
    fn a_fault_without_counts_or_with_zero_counts_is_in_doubt_unless_nothing_was_dispensed() {
        for outcome in [DispenseOutcome::ShortDispense, DispenseOutcome::Success] {
            assert_eq!(
                after_fault(outcome, None),
                Settlement::InDoubt,
                "{outcome:?}"
            );
            assert_eq!(
                after_fault(outcome, Some(0)),
                Settlement::InDoubt,
                "{outcome:?}"
            );
        }
        for outcome in [
            DispenseOutcome::NoneDispensed,
            DispenseOutcome::NoneDispensedCardNotEjected,
        ] {
            assert_eq!(
                after_fault(outcome, None),
                Settlement::Reverse,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn a_rejected_reply_is_reversed_and_an_unclear_status_stays_in_doubt() {
        assert_eq!(
            after_report(TerminalReport::Rejected, 5000),
            Settlement::Reverse
        );
        assert_eq!(
            after_report(TerminalReport::Unclear, 5000),
            Settlement::InDoubt
        );
        assert_eq!(
            after_report(TerminalReport::Ready, 5000),
            Settlement::Complete {
                dispensed_minor: 5000
            }
        );
    }

    #[test]
    fn dispensed_value_uses_each_cassettes_denomination() {
        let denom = |t: u8| [1000, 2000, 5000, 10000].get(usize::from(t) - 1).copied();
        assert_eq!(dispensed_value(&[1, 0, 2, 0], denom), 11000);
    }
}
