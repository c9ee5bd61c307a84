//! The requests of the agent's control socket, typed once for both ends: the agent parses them
//! (`adapters::control`) and `atmctl`, the lab and the tests send them (`cli::control::send`),
//! so the two cannot disagree. On the wire: one JSON object per line, tagged by `cmd`:
//! `{"cmd":"status"}`, `{"cmd":"queue_ls"}`, `{"cmd":"queue_retry","terminal":null}`,
//! `{"cmd":"queue_requeue","terminal":"ATM00001","seq":12,"reason":"…","by":"jane"}`,
//! `{"cmd":"terminal","terminal":"ATM00001","action":"in_service"|"out_of_service"|"supply_counters"}`,
//! `{"cmd":"keys_load_master","terminal":"ATM00001","components":[{"component":"<hex>","kcv":"<6 hex>"},…]}`,
//! `{"cmd":"keys_load_zone_master","components":[…]}`, `{"cmd":"keys_rotate","terminal":"ATM00001"}`,
//! `{"cmd":"keys_ls"}`, `{"cmd":"dispense_ls","terminal":null}`,
//! `{"cmd":"dispense_settle","terminal":"ATM00001","tsn":7,"outcome":{"dispensed":{"amount_minor":5000}}|"nothing","reason":"…","by":"jane"}`.
//! `{"cmd":"ej","terminal":"ATM00001","last":50,"reveal":false}` (the terminal's electronic
//! journal, card-number-like digit runs masked unless `reveal`).
//!
//! Key components are secrets: they live in zeroizing buffers on both ends and never print.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    QueueLs,
    QueueRetry {
        #[serde(default)]
        terminal: Option<String>,
    },
    /// An operator puts a parked advice back in its terminal's queue, saying why.
    QueueRequeue {
        terminal: String,
        seq: u64,
        reason: String,
        #[serde(default)]
        by: Option<String>,
    },
    Terminal {
        terminal: String,
        action: Action,
    },
    KeysLoadMaster {
        terminal: String,
        components: Vec<ComponentEntry>,
    },
    KeysLoadZoneMaster {
        components: Vec<ComponentEntry>,
    },
    KeysRotate {
        terminal: String,
    },
    KeysLs,
    /// The dispenses in doubt (all, or one terminal's).
    DispenseLs {
        #[serde(default)]
        terminal: Option<String>,
    },
    /// The last lines of a terminal's electronic journal (default 50), masked unless `reveal`.
    Ej {
        terminal: String,
        #[serde(default)]
        last: Option<usize>,
        #[serde(default)]
        reveal: bool,
    },
    /// A technician settles a dispense in doubt: what left the ATM, and why they say so.
    DispenseSettle {
        terminal: String,
        tsn: u16,
        outcome: SettleOutcome,
        reason: String,
        /// The technician's name (`atmctl --by`).
        #[serde(default)]
        by: Option<String>,
    },
}

/// What the technician found for a dispense in doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettleOutcome {
    /// This much left the ATM (minor units; for a deposit: it was taken, whole).
    Dispensed { amount_minor: u64 },
    /// Nothing left the ATM (nothing was taken, for a deposit).
    Nothing,
}

impl SettleOutcome {
    pub fn dispensed_minor(self) -> Option<u64> {
        match self {
            Self::Dispensed { amount_minor } => Some(amount_minor),
            Self::Nothing => None,
        }
    }
}

/// One custodian's key component (hex) and its check value. `Debug` hides the component.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentEntry {
    component: Zeroizing<String>,
    kcv: String,
}

impl ComponentEntry {
    pub fn new(component_hex: Zeroizing<String>, kcv: String) -> Self {
        Self {
            component: component_hex,
            kcv,
        }
    }
    pub fn component_hex(&self) -> &str {
        &self.component
    }
    pub fn kcv(&self) -> &str {
        &self.kcv
    }
}

impl std::fmt::Debug for ComponentEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComponentEntry {{ component: ****, kcv: {} }}", self.kcv)
    }
}

/// What `{"cmd":"terminal"}` asks the terminal to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    InService,
    OutOfService,
    SupplyCounters,
}

impl std::str::FromStr for Action {
    type Err = String;
    /// The technician's spelling: `in-service`, `out-of-service`, `supply-counters`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "in-service" => Ok(Self::InService),
            "out-of-service" => Ok(Self::OutOfService),
            "supply-counters" => Ok(Self::SupplyCounters),
            other => Err(format!(
                "unknown action {other:?}: in-service, out-of-service or supply-counters"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_the_lines_the_agent_always_read() {
        let line = |r: &Request| serde_json::to_string(r).unwrap();
        assert_eq!(line(&Request::Status), r#"{"cmd":"status"}"#);
        assert_eq!(
            line(&Request::QueueRequeue {
                terminal: "ATM00001".into(),
                seq: 12,
                reason: "switch fixed".into(),
                by: Some("jane".into()),
            }),
            r#"{"cmd":"queue_requeue","terminal":"ATM00001","seq":12,"reason":"switch fixed","by":"jane"}"#
        );
        assert_eq!(
            line(&Request::Terminal {
                terminal: "ATM00001".into(),
                action: Action::SupplyCounters
            }),
            r#"{"cmd":"terminal","terminal":"ATM00001","action":"supply_counters"}"#
        );
        let keys = Request::KeysLoadZoneMaster {
            components: vec![ComponentEntry::new(
                Zeroizing::new("0123456789ABCDEFFEDCBA9876543210".into()),
                "08D7B4".into(),
            )],
        };
        let text = line(&keys);
        assert!(text.contains(r#""cmd":"keys_load_zone_master""#), "{text}");
        let back: Request = serde_json::from_str(&text).unwrap();
        let Request::KeysLoadZoneMaster { components } = back else {
            panic!("{back:?}")
        };
        assert_eq!(
            components[0].component_hex(),
            "0123456789ABCDEFFEDCBA9876543210"
        );
        assert!(!format!("{components:?}").contains("0123"), "never printed");
    }

    #[test]
    fn a_settlement_is_one_line_naming_the_record_the_outcome_and_the_reason() {
        let r = Request::DispenseSettle {
            terminal: "ATM00001".into(),
            tsn: 7,
            outcome: SettleOutcome::Dispensed { amount_minor: 5000 },
            reason: "counted".into(),
            by: Some("jane".into()),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"cmd":"dispense_settle","terminal":"ATM00001","tsn":7,"outcome":{"dispensed":{"amount_minor":5000}},"reason":"counted","by":"jane"}"#
        );
        let nothing: Request = serde_json::from_str(
            r#"{"cmd":"dispense_settle","terminal":"ATM00001","tsn":7,"outcome":"nothing","reason":"jam"}"#,
        )
        .unwrap();
        assert!(matches!(
            nothing,
            Request::DispenseSettle {
                outcome: SettleOutcome::Nothing,
                by: None,
                ..
            }
        ));
    }
}
