//! The requests of the agent's control socket, typed once for both ends: the agent parses them
//! (`adapters::control`) and `atmctl`, the lab and the tests send them (`cli::control::send`),
//! so the two cannot disagree. On the wire: one JSON object per line, tagged by `cmd`:
//! `{"cmd":"status"}`, `{"cmd":"queue_ls"}`, `{"cmd":"queue_retry","terminal":null}`,
//! `{"cmd":"terminal","terminal":"ATM00001","action":"in_service"|"out_of_service"|"supply_counters"}`,
//! `{"cmd":"keys_load_master","terminal":"ATM00001","components":[{"component":"<hex>","kcv":"<6 hex>"},…]}`,
//! `{"cmd":"keys_load_zone_master","components":[…]}`, `{"cmd":"keys_rotate","terminal":"ATM00001"}`,
//! `{"cmd":"keys_ls"}`.
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
}
