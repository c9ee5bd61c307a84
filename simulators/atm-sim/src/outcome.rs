//! What happened to each customer, in words a test or an operator can compare with the switch
//! and the ledger.
//!
//! A [`CustomerOutcome`] is decided by the terminal alone, from the transaction reply it got (the
//! function id and the profile's `screens.*` numbers) and from what its dispenser really did. It
//! deliberately does not know what the host meant: if the agent dispensed on a "declined" screen,
//! the outcome says so and the money columns show it.

use std::fmt;

use protocols::types::{Amount, Currency};
use serde::Serialize;

use super::customer::Kind;
use super::faults::TerminalFault;

/// Why the host said no (from the reply's screen number, via the profile's `screens.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    Declined,
    InsufficientFunds,
    /// The profile's `wrong_pin` screen: incorrect PIN, the customer may try again.
    WrongPin,
    /// The profile's `pin_tries_exceeded` screen: too many wrong PINs, the card is blocked.
    PinTriesExceeded,
    CannotDispenseAmount,
    /// A screen number the profile does not name.
    Unknown,
}

/// How the customer's session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Withdrawal dispensed in full, deposit accepted, or balance shown. A terminal fault after
    /// every note reached the customer (`device-fault`, `no-status`, an `E3` that delivered
    /// everything) ends here too: `CustomerOutcome::terminal_fault` says what the host was told.
    Approved,
    /// The host declined (display-and-print / next-state reply on a decline screen).
    Declined {
        screen: String,
        reason: DeclineReason,
    },
    /// The host answered with the profile's `host_unavailable` screen.
    HostUnavailable { screen: String },
    /// Less than the reply asked for reached the customer (status `8 E1`, or `E2` if nothing;
    /// or a terminal fault: `E3`, `E5`, `E1` without counts).
    ShortDispense,
    /// The customer cancelled at the cash slot; nothing was dispensed (status `8 E2`).
    Cancelled,
    /// Power failed (during the dispense, or at another step of the exchange with a terminal
    /// fault); no status was sent and the connection is gone. `notes_left`: some notes reached
    /// the customer.
    PowerLoss { notes_left: bool },
    /// No transaction reply within the host reply timer; the terminal gave up (no message).
    Timeout,
    /// The terminal rejected the reply (`C` + reason, or `A`): wrong MCN, function, note mix.
    ReplyRejected { reason: String },
    /// The terminal was out of service (or in supervisor mode): the customer was turned away.
    OutOfService,
}

impl Outcome {
    /// Short name for reports and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined { .. } => "declined",
            Self::HostUnavailable { .. } => "host_unavailable",
            Self::ShortDispense => "short_dispense",
            Self::Cancelled => "cancelled",
            Self::PowerLoss { .. } => "power_loss",
            Self::Timeout => "timeout",
            Self::ReplyRejected { .. } => "reply_rejected",
            Self::OutOfService => "out_of_service",
        }
    }

    /// Why the host declined, for a decline.
    pub fn decline_reason(&self) -> Option<DeclineReason> {
        match self {
            Self::Declined { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Declined { screen, reason } => {
                write!(f, "declined ({reason:?}, screen {screen})")
            }
            Self::HostUnavailable { screen } => write!(f, "host unavailable (screen {screen})"),
            Self::PowerLoss { notes_left } => write!(f, "power loss (notes left: {notes_left})"),
            Self::ReplyRejected { reason } => write!(f, "reply rejected ({reason})"),
            other => f.write_str(other.name()),
        }
    }
}

/// One customer's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerOutcome {
    /// First 6 / last 4 digits only.
    pub pan_masked: String,
    pub kind: Kind,
    pub outcome: Outcome,
    pub requested_minor: u64,
    /// Value of the notes that left the cassettes.
    pub dispensed_minor: u64,
    /// Deposit accepted by the terminal (deposit-and-print reply).
    pub deposited_minor: u64,
    /// Notes that left per cassette type (index 0 = type 1); empty when no dispense was tried.
    pub notes_dispensed: Vec<u32>,
    /// The reply's transaction serial number, when a reply was processed.
    pub tsn: Option<u16>,
    /// The request's message coordination number (none when no request was sent).
    pub mcn: Option<char>,
    /// The reply's screen number.
    pub screen: Option<String>,
    /// The customer typed a PIN other than the card's (a scripted or drawn wrong PIN).
    pub wrong_pin_entered: bool,
    /// PIN buffer A carried an enciphered PIN block (the terminal had a PIN key); `false` when
    /// it went empty or no request was sent.
    pub pin_block_sent: bool,
    /// The terminal fault that struck this customer ([`crate::Behaviour::TerminalFault`]),
    /// `None` when none did (also when the host declined before a dispense fault could).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_fault: Option<TerminalFault>,
}

impl CustomerOutcome {
    /// One line for a console report.
    pub fn report_line(&self, currency: Currency) -> String {
        format!(
            "{} {:<10} {:>14} {:<40} dispensed {:>14} deposited {:>14} notes {:?} tsn {}{}",
            self.pan_masked,
            self.kind.to_string(),
            Amount::new(self.requested_minor, currency).to_string(),
            self.outcome.to_string(),
            Amount::new(self.dispensed_minor, currency).to_string(),
            Amount::new(self.deposited_minor, currency).to_string(),
            self.notes_dispensed,
            self.tsn
                .map_or_else(|| "-".to_owned(), |t| format!("{t:04}")),
            self.terminal_fault
                .as_ref()
                .map_or_else(String::new, |f| format!(" terminal fault {f}")),
        )
    }
}

/// Customers counted by outcome. Every customer counts once in one of the outcome columns
/// ([`OutcomeCounts::total`]); `wrong_pin` and `pin_tries_exceeded` break `declined` down further
/// (they are part of it: plain declines are [`OutcomeCounts::plain_declined`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    pub approved: u32,
    /// Every decline, including the PIN ones below.
    pub declined: u32,
    /// Declines on the profile's `wrong_pin` screen.
    pub wrong_pin: u32,
    /// Declines on the profile's `pin_tries_exceeded` screen.
    pub pin_tries_exceeded: u32,
    pub host_unavailable: u32,
    pub short_dispense: u32,
    pub cancelled: u32,
    pub power_loss: u32,
    pub timeout: u32,
    pub reply_rejected: u32,
    pub out_of_service: u32,
    /// Customers a terminal fault struck (counted in their outcome column too).
    pub terminal_faults: u32,
}

impl OutcomeCounts {
    pub fn record(&mut self, o: &Outcome) {
        match o.decline_reason() {
            Some(DeclineReason::WrongPin) => self.wrong_pin += 1,
            Some(DeclineReason::PinTriesExceeded) => self.pin_tries_exceeded += 1,
            _ => {}
        }
        let c = match o {
            Outcome::Approved => &mut self.approved,
            Outcome::Declined { .. } => &mut self.declined,
            Outcome::HostUnavailable { .. } => &mut self.host_unavailable,
            Outcome::ShortDispense => &mut self.short_dispense,
            Outcome::Cancelled => &mut self.cancelled,
            Outcome::PowerLoss { .. } => &mut self.power_loss,
            Outcome::Timeout => &mut self.timeout,
            Outcome::ReplyRejected { .. } => &mut self.reply_rejected,
            Outcome::OutOfService => &mut self.out_of_service,
        };
        *c += 1;
    }

    pub fn total(&self) -> u32 {
        self.approved
            + self.declined
            + self.host_unavailable
            + self.short_dispense
            + self.cancelled
            + self.power_loss
            + self.timeout
            + self.reply_rejected
            + self.out_of_service
    }

    /// Declines for another reason than the PIN.
    pub fn plain_declined(&self) -> u32 {
        self.declined
            .saturating_sub(self.wrong_pin)
            .saturating_sub(self.pin_tries_exceeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_declines_are_counted_within_declines() {
        let declined = |reason| Outcome::Declined {
            screen: "070".into(),
            reason,
        };
        let mut c = OutcomeCounts::default();
        for o in [
            Outcome::Approved,
            declined(DeclineReason::Declined),
            declined(DeclineReason::WrongPin),
            declined(DeclineReason::WrongPin),
            declined(DeclineReason::PinTriesExceeded),
            declined(DeclineReason::InsufficientFunds),
        ] {
            c.record(&o);
        }
        assert_eq!((c.approved, c.declined, c.total()), (1, 5, 6));
        assert_eq!((c.wrong_pin, c.pin_tries_exceeded), (2, 1));
        assert_eq!(c.plain_declined(), 2);
        let json = serde_json::to_string(&declined(DeclineReason::PinTriesExceeded)).unwrap();
        assert!(json.contains("\"reason\":\"pin_tries_exceeded\""), "{json}");
    }
}
