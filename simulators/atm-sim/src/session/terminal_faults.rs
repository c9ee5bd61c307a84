//! The dispense when a terminal fault strikes after the reply (see [`crate::faults`]): what
//! leaves the cassettes, what reaches the customer, what goes to the reject bin, and the status
//! (or silence) the host gets instead of a clear answer.
//!
//! Whatever the status says, the terminal's own records stay true: the cassettes count what
//! left, the last transaction status (next `11`, supply counters) carries the reply's TSN and
//! the notes that reached the customer, and the truth ledger gets the whole story.

use std::time::Duration;

use protocols::ndc::{DispenseOutcome, LastStatus, TerminalMessage, TransactionReply};

use super::{partial, AtmSim, Behaviour, Done, Outcome, Physical, NO_STATUS_GRACE_MS};
use crate::faults::TerminalFault;
use crate::messages;
use crate::terminal::Terminal;
use crate::truth::Reported;

/// What the dispenser did in a faulty dispense.
struct Moved {
    picked: Vec<u32>,
    delivered: Vec<u32>,
    diverted: Vec<u32>,
    /// Value of `delivered`.
    value: u64,
    /// The status in place of the ready, if one is sent.
    status: Option<TerminalMessage>,
}

impl AtmSim {
    /// Performs a dispense reply under `fault` (a fault that strikes after the reply).
    pub(super) async fn faulty_dispense(
        &mut self,
        r: &TransactionReply,
        fault: &TerminalFault,
    ) -> Done {
        let wanted = r.notes_to_dispense.clone();
        let mut done = match fault {
            TerminalFault::Short { delivered } => {
                self.dispense(r, &Behaviour::PartialDispense(delivered.clone()))
                    .await
            }
            TerminalFault::PowerBeforeDispense => self.power_loss(&vec![0; wanted.len()]).await,
            TerminalFault::PowerMidDispense { delivered } => {
                self.power_loss(&partial(&wanted, delivered)).await
            }
            TerminalFault::PowerAfterDispense => self.power_loss(&wanted).await,
            _ => self.misreported_dispense(&wanted, fault).await,
        };
        done.fault = Some(fault.clone());
        done
    }

    /// The notes move, then the host gets an ambiguous status or none at all.
    async fn misreported_dispense(&mut self, wanted: &[u32], fault: &TerminalFault) -> Done {
        let (before, moved) = self
            .shared
            .with(|t| {
                let before = t.cassettes.levels();
                (before, misreport(t, wanted, fault))
            })
            .await;
        tracing::warn!(
            fault = %fault,
            picked = ?moved.picked,
            delivered = ?moved.delivered,
            "terminal fault after the dispense"
        );
        match &moved.status {
            Some(msg) => {
                self.send_status(msg).await;
                self.report_low_supplies(&before, &moved.delivered).await;
            }
            None => self.stay_silent().await,
        }
        let outcome = if moved.delivered == wanted {
            Outcome::Approved
        } else {
            Outcome::ShortDispense
        };
        Done {
            outcome,
            physical: Physical {
                reported: reported(fault),
                picked: moved.picked,
                diverted: moved.diverted,
            },
            notes: moved.delivered,
            dispensed_minor: moved.value,
            deposited_minor: 0,
            fault: None,
        }
    }

    /// A terminal that failed to report hangs until the agent's status timer has run out.
    async fn stay_silent(&self) {
        let hold_ms = self
            .options
            .no_status_hold_ms
            .unwrap_or(self.profile.timers.status_after_reply_ms + NO_STATUS_GRACE_MS);
        tracing::warn!(hold_ms, "no status after the dispense: terminal silent");
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    }
}

/// Moves the notes as `fault` says (picked from the cassettes, part of them to the customer,
/// the rest to the reject bin), records the last transaction truthfully and builds the status.
fn misreport(t: &mut Terminal, wanted: &[u32], fault: &TerminalFault) -> Moved {
    let target = match fault {
        TerminalFault::ShortWithoutCounts { delivered } => partial(wanted, delivered),
        _ => wanted.to_vec(),
    };
    let (picked, _) = t.dispense(&target);
    let delivered = match fault {
        TerminalFault::Unknown { delivered }
        | TerminalFault::UnknownWithoutCounts { delivered } => partial(&picked, delivered),
        TerminalFault::Retracted { taken } => partial(&picked, taken),
        _ => picked.clone(),
    };
    let rest: Vec<u32> = picked.iter().zip(&delivered).map(|(p, d)| p - d).collect();
    let (diverted, _) = t.divert(&rest);
    let value = t.cassettes.value_minor(&delivered);
    let status = status_for(t, fault, wanted, &picked);
    let last = match status {
        Some(_) => LastStatus::Error,
        None => LastStatus::None,
    };
    t.reply_finished(last, &delivered);
    Moved {
        picked,
        delivered,
        diverted,
        value,
        status,
    }
}

/// The status sent in place of the ready under `fault`; `None` for silence.
fn status_for(
    t: &Terminal,
    fault: &TerminalFault,
    wanted: &[u32],
    picked: &[u32],
) -> Option<TerminalMessage> {
    let cash = |outcome, notes: &[u32]| {
        Some(messages::dispense_fault(
            &t.luno,
            outcome,
            notes.to_vec(),
            &t.cassettes,
        ))
    };
    match fault {
        // E3 carries the requested counts (NDC.md section 3).
        TerminalFault::Unknown { .. } => cash(DispenseOutcome::Unknown, wanted),
        TerminalFault::UnknownWithoutCounts { .. } => cash(DispenseOutcome::Unknown, &[]),
        TerminalFault::Retracted { .. } => cash(DispenseOutcome::Retracted, picked),
        TerminalFault::ShortWithoutCounts { .. } => cash(DispenseOutcome::ShortDispense, &[]),
        TerminalFault::DeviceFault => Some(messages::other_device_fault(&t.luno)),
        _ => None,
    }
}

/// What the host is told under `fault` (a fault after the reply, not a power loss).
fn reported(fault: &TerminalFault) -> Reported {
    match fault {
        TerminalFault::Unknown { .. } => Reported::UnknownWithCounts,
        TerminalFault::UnknownWithoutCounts { .. } => Reported::UnknownWithoutCounts,
        TerminalFault::Retracted { .. } => Reported::Retracted,
        TerminalFault::ShortWithoutCounts { .. } => Reported::ShortWithoutCounts,
        TerminalFault::DeviceFault => Reported::OtherDeviceFault,
        TerminalFault::NoStatus => Reported::NoStatus,
        TerminalFault::Short { .. } => Reported::ShortDispense,
        TerminalFault::PowerBeforeRequest
        | TerminalFault::PowerAwaitingReply
        | TerminalFault::PowerBeforeDispense
        | TerminalFault::PowerMidDispense { .. }
        | TerminalFault::PowerAfterDispense => Reported::PowerLoss,
    }
}
