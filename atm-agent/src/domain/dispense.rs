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

use super::pending::{Doubt, PendingDispense, Purpose};

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

/// What the terminal's last transaction (TSN `reported_tsn`, notes worth `dispensed_minor`, from
/// its last transaction status or supply counters) says about one record in doubt; `None` when it
/// cannot tell, and the record waits for a technician.
///
/// - Same TSN: the terminal's own count for this transaction settles it, unless the terminal
///   already said it cannot count it ([`Doubt::Uncounted`]: `E3`, `E5` …).
/// - Another TSN: the terminal's last transaction is another one. Only for the record still
///   awaiting its report (the last reply the terminal was sent) does that mean the terminal never
///   acted on it; a record the terminal went past ([`Doubt::Unreported`]) may have been paid out.
pub fn after_last_transaction(
    pending: &PendingDispense,
    reported_tsn: u16,
    dispensed_minor: u64,
) -> Option<Settlement> {
    match (&pending.doubt, pending.tsn == reported_tsn) {
        (Doubt::Uncounted { .. }, _) => None,
        (Doubt::Unreported, false) => None,
        (Doubt::Awaiting, false) => Some(Settlement::Reverse),
        (Doubt::Awaiting | Doubt::Unreported, true) => Some(match pending.purpose {
            Purpose::Withdrawal => after_power_failure(dispensed_minor),
            // The terminal processed the deposit reply: it took the cash (the supply counters
            // and the last transaction status carry no deposit detail to say otherwise).
            Purpose::OnlineDeposit | Purpose::StoredDeposit => Settlement::Complete {
                dispensed_minor: pending.amount.minor,
            },
        }),
    }
}

/// Why a technician's word cannot settle a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorSettlementError {
    #[error("invalid: {dispensed_minor} is more than the approved {approved_minor} (minor units)")]
    AboveApproved {
        dispensed_minor: u64,
        approved_minor: u64,
    },
    #[error("invalid: a dispensed amount of 0 is --nothing")]
    Zero,
    #[error("invalid: a deposit is taken whole ({amount_minor}) or not at all (--nothing)")]
    PartialDeposit { amount_minor: u64 },
    #[error("invalid: a reason is required (--reason)")]
    NoReason,
}

/// The settlement a technician's word calls for: `dispensed_minor` (what left, or was taken for a
/// deposit), `None` for nothing.
pub fn after_operator(
    pending: &PendingDispense,
    dispensed_minor: Option<u64>,
    reason: &str,
) -> Result<Settlement, OperatorSettlementError> {
    if reason.trim().is_empty() {
        return Err(OperatorSettlementError::NoReason);
    }
    let approved_minor = pending.amount.minor;
    match (pending.purpose, dispensed_minor) {
        (_, None) => Ok(Settlement::Reverse),
        (_, Some(0)) => Err(OperatorSettlementError::Zero),
        (_, Some(d)) if d > approved_minor => Err(OperatorSettlementError::AboveApproved {
            dispensed_minor: d,
            approved_minor,
        }),
        (Purpose::Withdrawal, Some(d)) => Ok(Settlement::Complete { dispensed_minor: d }),
        (Purpose::OnlineDeposit | Purpose::StoredDeposit, Some(d)) if d == approved_minor => {
            Ok(Settlement::Complete { dispensed_minor: d })
        }
        (Purpose::OnlineDeposit | Purpose::StoredDeposit, Some(_)) => {
            Err(OperatorSettlementError::PartialDeposit {
                amount_minor: approved_minor,
            })
        }
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

    fn record(purpose: Purpose, tsn: u16, doubt: Doubt) -> PendingDispense {
        PendingDispense {
            purpose,
            card_ref: None,
            tsn,
            stan: protocols::types::Stan::new(1).unwrap(),
            transmitted_at: protocols::iso8583::TransmissionDateTime::parse("1125114000").unwrap(),
            amount: protocols::types::Amount::new(8000, protocols::types::Currency::EUR),
            notes: vec![0, 0, 0, 0],
            since_ms: 0,
            doubt,
            advice_key: None,
            acceptance: Default::default(),
        }
    }

    #[test]
    fn the_last_transaction_settles_only_what_it_can_tell() {
        let awaiting = record(Purpose::Withdrawal, 5, Doubt::Awaiting);
        assert_eq!(
            after_last_transaction(&awaiting, 5, 3000),
            Some(Settlement::Complete {
                dispensed_minor: 3000
            })
        );
        assert_eq!(
            after_last_transaction(&awaiting, 6, 3000),
            Some(Settlement::Reverse),
            "the last reply never acted on"
        );
        let went_past = record(Purpose::Withdrawal, 5, Doubt::Unreported);
        assert_eq!(after_last_transaction(&went_past, 6, 0), None);
        assert_eq!(
            after_last_transaction(&went_past, 5, 0),
            Some(Settlement::Reverse)
        );
        let e3 = Doubt::Uncounted {
            report: "E3".into(),
        };
        assert_eq!(
            after_last_transaction(&record(Purpose::Withdrawal, 5, e3), 5, 8000),
            None
        );
        let deposit = record(Purpose::StoredDeposit, 5, Doubt::Awaiting);
        assert_eq!(
            after_last_transaction(&deposit, 5, 0),
            Some(Settlement::Complete {
                dispensed_minor: 8000
            })
        );
    }

    #[test]
    fn a_technician_settles_within_the_approved_amount_and_with_a_reason() {
        let w = record(Purpose::Withdrawal, 5, Doubt::Unreported);
        assert_eq!(
            after_operator(&w, Some(5000), "counted the cassettes"),
            Ok(Settlement::Complete {
                dispensed_minor: 5000
            })
        );
        assert_eq!(after_operator(&w, None, "jammed"), Ok(Settlement::Reverse));
        assert!(matches!(
            after_operator(&w, Some(8001), "x"),
            Err(OperatorSettlementError::AboveApproved { .. })
        ));
        assert_eq!(
            after_operator(&w, Some(0), "x"),
            Err(OperatorSettlementError::Zero)
        );
        assert_eq!(
            after_operator(&w, None, "  "),
            Err(OperatorSettlementError::NoReason)
        );
        let d = record(Purpose::OnlineDeposit, 5, Doubt::Unreported);
        assert!(matches!(
            after_operator(&d, Some(4000), "x"),
            Err(OperatorSettlementError::PartialDeposit { .. })
        ));
    }

    #[test]
    fn dispensed_value_uses_each_cassettes_denomination() {
        let denom = |t: u8| [1000, 2000, 5000, 10000].get(usize::from(t) - 1).copied();
        assert_eq!(dispensed_value(&[1, 0, 2, 0], denom), 11000);
    }
}
