//! Terminal faults at the dispense step: the statuses and power failures that leave the host
//! unsure what the customer got, and what really happened in each.
//!
//! No I/O. A [`FaultMode`] is a name (`e3`, `short-no-counts`, `power-awaiting-reply` …) as a
//! CLI flag or the lab's configuration gives it; a [`TerminalFault`] is one drawn fault with the
//! truth it hides (how much of the notes really reached the customer), carried by the customer
//! as [`crate::Behaviour::TerminalFault`] so a scripted test picks it exactly and a seeded
//! [`crate::RandomCustomers`] stream draws the same faults every run ([`FaultPlan`]).
//!
//! What the terminal sends for each (NDC.md section 3), and what the truth ledger
//! ([`crate::truth`]) records:
//!
//! | mode | status after the reply | notes that reach the customer |
//! |---|---|---|
//! | `e3` | `22 … 8 FS E3<requested counts> …` | `delivered` of them; the rest purged to the reject bin |
//! | `e3-no-counts` | `22 … 8 FS E3 …` | as `e3` |
//! | `e5` | `22 … 8 FS E5<presented counts> …` | `taken` before the retract; the rest retracted |
//! | `short` | `22 … 8 FS E1<counts that left> …` (`E2` if none) | `delivered` |
//! | `short-no-counts` | `22 … 8 FS E1 …` | `delivered` (at least one note when more than one was asked) |
//! | `device-fault` | `22 … 8 FS G1 …` (receipt printer) | all |
//! | `no-status` | nothing until past the agent's status timer | all |
//! | `power-before-request` | no `11` at all; the socket drops | none |
//! | `power-awaiting-reply` | the `11` is on the wire, the socket drops before the reply | none |
//! | `power-before-dispense` | reply accepted, the socket drops before a note moves | none |
//! | `power-mid-dispense` | the socket drops while notes move | `delivered` |
//! | `power-after-dispense` | every note out, the socket drops before the status | all |
//!
//! After any of them the terminal's later reports are truthful, as a real terminal's counters
//! are: the next `11`'s last transaction status (dialects with it) and the supply counters carry
//! the reply's TSN and the notes that reached the customer; notes purged or retracted count as
//! rejected, not dispensed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::customer::Partial;
use super::rng::XorShift64;

/// A kind of terminal fault, by the name the CLI and the lab use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultMode {
    #[serde(rename = "e3")]
    Unknown,
    #[serde(rename = "e3-no-counts")]
    UnknownWithoutCounts,
    #[serde(rename = "e5")]
    Retracted,
    #[serde(rename = "short")]
    Short,
    #[serde(rename = "short-no-counts")]
    ShortWithoutCounts,
    #[serde(rename = "device-fault")]
    DeviceFault,
    #[serde(rename = "no-status")]
    NoStatus,
    #[serde(rename = "power-before-request")]
    PowerBeforeRequest,
    #[serde(rename = "power-awaiting-reply")]
    PowerAwaitingReply,
    #[serde(rename = "power-before-dispense")]
    PowerBeforeDispense,
    #[serde(rename = "power-mid-dispense")]
    PowerMidDispense,
    #[serde(rename = "power-after-dispense")]
    PowerAfterDispense,
}

impl FaultMode {
    pub const ALL: [FaultMode; 12] = [
        FaultMode::Unknown,
        FaultMode::UnknownWithoutCounts,
        FaultMode::Retracted,
        FaultMode::Short,
        FaultMode::ShortWithoutCounts,
        FaultMode::DeviceFault,
        FaultMode::NoStatus,
        FaultMode::PowerBeforeRequest,
        FaultMode::PowerAwaitingReply,
        FaultMode::PowerBeforeDispense,
        FaultMode::PowerMidDispense,
        FaultMode::PowerAfterDispense,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "e3",
            Self::UnknownWithoutCounts => "e3-no-counts",
            Self::Retracted => "e5",
            Self::Short => "short",
            Self::ShortWithoutCounts => "short-no-counts",
            Self::DeviceFault => "device-fault",
            Self::NoStatus => "no-status",
            Self::PowerBeforeRequest => "power-before-request",
            Self::PowerAwaitingReply => "power-awaiting-reply",
            Self::PowerBeforeDispense => "power-before-dispense",
            Self::PowerMidDispense => "power-mid-dispense",
            Self::PowerAfterDispense => "power-after-dispense",
        }
    }

    /// Modes from a comma-separated list of names; `all` (or an empty list) is every mode.
    pub fn parse_list(s: &str) -> Result<Vec<FaultMode>, String> {
        let mut modes = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                return Ok(Self::ALL.to_vec());
            }
            let m: FaultMode = name.parse()?;
            if !modes.contains(&m) {
                modes.push(m);
            }
        }
        Ok(if modes.is_empty() {
            Self::ALL.to_vec()
        } else {
            modes
        })
    }

    /// One fault of this mode, with the truth drawn from `rng`: how much reaches the customer
    /// where that is not fixed by the mode.
    pub fn draw(self, rng: &mut XorShift64) -> TerminalFault {
        let mut pick =
            |choices: &[u8]| Partial::Percent(choices[rng.below(choices.len() as u64) as usize]);
        match self {
            // The customer may have had everything, part, or nothing.
            Self::Unknown => TerminalFault::Unknown {
                delivered: pick(&[100, 50, 0]),
            },
            Self::UnknownWithoutCounts => TerminalFault::UnknownWithoutCounts {
                delivered: pick(&[100, 50, 0]),
            },
            // Mostly nobody took them; sometimes the customer grabbed part before the retract.
            Self::Retracted => TerminalFault::Retracted {
                taken: pick(&[0, 0, 50]),
            },
            Self::Short => TerminalFault::Short {
                delivered: pick(&[25, 50, 75]),
            },
            Self::ShortWithoutCounts => TerminalFault::ShortWithoutCounts {
                delivered: pick(&[25, 50, 75]),
            },
            Self::DeviceFault => TerminalFault::DeviceFault,
            Self::NoStatus => TerminalFault::NoStatus,
            Self::PowerBeforeRequest => TerminalFault::PowerBeforeRequest,
            Self::PowerAwaitingReply => TerminalFault::PowerAwaitingReply,
            Self::PowerBeforeDispense => TerminalFault::PowerBeforeDispense,
            Self::PowerMidDispense => TerminalFault::PowerMidDispense {
                delivered: pick(&[25, 50, 75]),
            },
            Self::PowerAfterDispense => TerminalFault::PowerAfterDispense,
        }
    }
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown terminal fault {s:?}; one of all, {}",
                    names.join(", ")
                )
            })
    }
}

/// One terminal fault and the truth behind it (see the module table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode")]
pub enum TerminalFault {
    /// `8 E3<requested counts>`: the dispenser cannot say whether the customer had access;
    /// `delivered` of the notes picked really reached the customer, the rest were purged.
    #[serde(rename = "e3")]
    Unknown { delivered: Partial },
    /// `8 E3` without counts; otherwise as [`TerminalFault::Unknown`].
    #[serde(rename = "e3-no-counts")]
    UnknownWithoutCounts { delivered: Partial },
    /// `8 E5<presented counts>`: presented, not taken in time, retracted; `taken` of them were
    /// grabbed before the shutter closed.
    #[serde(rename = "e5")]
    Retracted { taken: Partial },
    /// `8 E1<counts that left>`: a short dispense that says what left.
    #[serde(rename = "short")]
    Short { delivered: Partial },
    /// `8 E1` without counts: cash did leave, the status does not say how much.
    #[serde(rename = "short-no-counts")]
    ShortWithoutCounts { delivered: Partial },
    /// Every note out, then `8 FS G1 …`: a receipt printer fault, nothing about the cash.
    #[serde(rename = "device-fault")]
    DeviceFault,
    /// Every note out, then no status until the agent's status timer has run out.
    #[serde(rename = "no-status")]
    NoStatus,
    /// Power fails once the customer asked, before the `11` leaves.
    #[serde(rename = "power-before-request")]
    PowerBeforeRequest,
    /// Power fails after the `11` is on the wire, before the reply arrives.
    #[serde(rename = "power-awaiting-reply")]
    PowerAwaitingReply,
    /// Power fails after the reply is accepted, before a note moves.
    #[serde(rename = "power-before-dispense")]
    PowerBeforeDispense,
    /// Power fails while the notes move: `delivered` of them reach the customer.
    #[serde(rename = "power-mid-dispense")]
    PowerMidDispense { delivered: Partial },
    /// Power fails after every note reached the customer, before the status.
    #[serde(rename = "power-after-dispense")]
    PowerAfterDispense,
}

impl TerminalFault {
    pub fn mode(&self) -> FaultMode {
        match self {
            Self::Unknown { .. } => FaultMode::Unknown,
            Self::UnknownWithoutCounts { .. } => FaultMode::UnknownWithoutCounts,
            Self::Retracted { .. } => FaultMode::Retracted,
            Self::Short { .. } => FaultMode::Short,
            Self::ShortWithoutCounts { .. } => FaultMode::ShortWithoutCounts,
            Self::DeviceFault => FaultMode::DeviceFault,
            Self::NoStatus => FaultMode::NoStatus,
            Self::PowerBeforeRequest => FaultMode::PowerBeforeRequest,
            Self::PowerAwaitingReply => FaultMode::PowerAwaitingReply,
            Self::PowerBeforeDispense => FaultMode::PowerBeforeDispense,
            Self::PowerMidDispense { .. } => FaultMode::PowerMidDispense,
            Self::PowerAfterDispense => FaultMode::PowerAfterDispense,
        }
    }

    /// Whether the fault strikes before the terminal has a reply to act on (so it applies to a
    /// customer whatever the host would have answered).
    pub fn before_reply(&self) -> bool {
        matches!(self, Self::PowerBeforeRequest | Self::PowerAwaitingReply)
    }
}

impl fmt::Display for TerminalFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mode().name())
    }
}

/// How often a random customer stream injects terminal faults, and which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultPlan {
    /// Percentage of withdrawals that meet a terminal fault; 0 (the default) draws nothing, so
    /// a stream without terminal faults is the same as before they existed.
    pub percent: u8,
    /// The modes drawn from, equally likely.
    pub modes: Vec<FaultMode>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            percent: 0,
            modes: FaultMode::ALL.to_vec(),
        }
    }
}

impl FaultPlan {
    /// `percent` of withdrawals, from `modes` (empty: every mode).
    pub fn new(percent: u8, modes: Vec<FaultMode>) -> Self {
        Self {
            percent: percent.min(100),
            modes: if modes.is_empty() {
                FaultMode::ALL.to_vec()
            } else {
                modes
            },
        }
    }

    /// A fault for a withdrawal, or `None` (drawing nothing when the plan is off).
    pub fn draw(&self, rng: &mut XorShift64) -> Option<TerminalFault> {
        if self.percent == 0 || self.modes.is_empty() || !rng.chance(self.percent) {
            return None;
        }
        let mode = self.modes[rng.below(self.modes.len() as u64) as usize];
        Some(mode.draw(rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_round_trip_through_text_and_json() {
        for m in FaultMode::ALL {
            assert_eq!(m.name().parse::<FaultMode>(), Ok(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            let fault = m.draw(&mut XorShift64::new(3));
            assert_eq!(fault.mode(), m);
            let json = serde_json::to_value(&fault).unwrap();
            assert_eq!(json["mode"], m.name());
            let back: TerminalFault = serde_json::from_value(json).unwrap();
            assert_eq!(back, fault);
        }
        assert!("e4"
            .parse::<FaultMode>()
            .unwrap_err()
            .contains("e3-no-counts"));
    }

    #[test]
    fn a_list_of_modes_parses_and_all_means_every_mode() {
        assert_eq!(
            FaultMode::parse_list("e3, e5,e3").unwrap(),
            vec![FaultMode::Unknown, FaultMode::Retracted]
        );
        assert_eq!(FaultMode::parse_list("all").unwrap().len(), 12);
        assert_eq!(FaultMode::parse_list("").unwrap().len(), 12);
        assert!(FaultMode::parse_list("e3,bogus").is_err());
    }

    #[test]
    fn a_plan_draws_its_rate_from_its_modes_and_nothing_when_off() {
        let plan = FaultPlan::new(30, vec![FaultMode::NoStatus, FaultMode::Short]);
        let mut rng = XorShift64::new(11);
        let drawn: Vec<_> = (0..1000).filter_map(|_| plan.draw(&mut rng)).collect();
        assert!((200..400).contains(&drawn.len()), "{} of 1000", drawn.len());
        assert!(drawn
            .iter()
            .all(|f| matches!(f.mode(), FaultMode::NoStatus | FaultMode::Short)));
        let mut a = XorShift64::new(5);
        let b = a.clone();
        assert_eq!(FaultPlan::default().draw(&mut a), None);
        assert_eq!(
            a.next_u64(),
            b.clone().next_u64(),
            "an off plan draws nothing"
        );
    }
}
