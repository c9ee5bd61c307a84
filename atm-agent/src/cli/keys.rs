//! `atmctl keys …`: key entry by custodians and key management, through the agent's control socket.
//!
//! `load-master ID` and `load-zone-master` read the custodians' components and check values with
//! `keystore::ceremony` (one `COMPONENT_HEX KCV_HEX` line each, not echoed on a terminal, each
//! pair checked as it is typed), then send them once over the 0600 control socket; they are never
//! written to disk or to a log. The agent checks each component's check value again and stores only
//! the combined key, wrapped.

use std::path::Path;

use keystore::{Component, Kcv};
use serde_json::Value;
use zeroize::Zeroizing;

use super::CliError;
use crate::control_api::{ComponentEntry, Request};

/// The custodians' components as the control socket takes them (hex in zeroizing buffers).
fn entries(components: &[Component], kcvs: &[Kcv]) -> Vec<ComponentEntry> {
    components
        .iter()
        .zip(kcvs)
        .map(|(c, k)| {
            ComponentEntry::new(Zeroizing::new(hex::encode_upper(c.expose())), k.to_string())
        })
        .collect()
}

/// Master keys are double or triple length: a component is as long as the key it makes.
const MASTER_KEY_MIN_BYTES: usize = 16;

/// The count and lengths of the components, checked before anything is sent. Errors name counts
/// and lengths only, never what was typed.
fn check_count(components: &[Component], kcvs: &[Kcv]) -> Result<(), CliError> {
    if components.len() != kcvs.len() {
        return Err(CliError::new("one check value per component"));
    }
    if !(2..=keystore::ceremony::MAX_COMPONENTS).contains(&components.len()) {
        return Err(CliError::new(format!(
            "a key is entered as 2 to {} components",
            keystore::ceremony::MAX_COMPONENTS
        )));
    }
    let length = components[0].expose().len();
    if components.iter().any(|c| c.expose().len() != length) {
        return Err(CliError::new(
            "the components are of different lengths: each is as long as the key",
        ));
    }
    if length < MASTER_KEY_MIN_BYTES {
        return Err(CliError::new(format!(
            "components of {} hex digits make a single-DES key: a master key is entered in \
             components of 32 or 48 hex digits",
            2 * length
        )));
    }
    Ok(())
}

/// `atmctl keys load-master ID`: sends the custodians' components to the agent.
pub fn load_master(
    socket: &Path,
    terminal: &str,
    components: &[Component],
    kcvs: &[Kcv],
) -> Result<String, CliError> {
    check_count(components, kcvs)?;
    if !terminal.bytes().all(|b| b.is_ascii_alphanumeric()) || terminal.is_empty() {
        return Err(CliError::new(format!("bad terminal id {terminal:?}")));
    }
    let data = super::control::send(
        socket,
        &Request::KeysLoadMaster {
            terminal: terminal.to_owned(),
            components: entries(components, kcvs),
        },
    )?;
    Ok(render_loaded(&data))
}

/// `atmctl keys load-zone-master`: sends the custodians' components to the agent.
pub fn load_zone_master(
    socket: &Path,
    components: &[Component],
    kcvs: &[Kcv],
) -> Result<String, CliError> {
    check_count(components, kcvs)?;
    let data = super::control::send(
        socket,
        &Request::KeysLoadZoneMaster {
            components: entries(components, kcvs),
        },
    )?;
    Ok(render_loaded(&data))
}

fn render_loaded(data: &Value) -> String {
    let mut out = format!(
        "loaded {} version {} check value {}",
        data["name"].as_str().unwrap_or("?"),
        data["version"],
        data["kcv"].as_str().unwrap_or("?")
    );
    if let Some(p) = data["pin_key"].as_str() {
        out.push_str(&format!("\nterminal PIN key: {p}"));
    }
    out
}

/// `atmctl keys ls`: names, versions, usages and check values (never keys).
pub fn render_list(data: &Value) -> String {
    let mut out = String::from("NAME                 VERSION  USAGE             KCV     CREATED\n");
    for k in data.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<20} {:>7}  {:<17} {:<7} {}\n",
            k["name"].as_str().unwrap_or("?"),
            k["version"],
            k["usage"].as_str().unwrap_or("?"),
            k["kcv"].as_str().unwrap_or("?"),
            k["created_unix"]
        ));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_each_component_and_its_check_value() {
        let c = Component::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let k = keystore::crypto::kcv(c.expose()).unwrap();
        let line = serde_json::to_string(&Request::KeysLoadZoneMaster {
            components: entries(&[c], &[k]),
        })
        .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["components"][0]["component"],
            "0123456789ABCDEFFEDCBA9876543210"
        );
        assert_eq!(v["components"][0]["kcv"], "08D7B4");
        let one = [Component::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap()];
        assert!(
            check_count(&one, &[k]).is_err(),
            "one component is not a key entry"
        );
    }

    #[test]
    fn single_des_or_ragged_components_are_refused_before_sending_without_quoting_them() {
        let short = ["0123456789ABCDEF", "FEDCBA9876543210"];
        let components: Vec<Component> = short
            .iter()
            .map(|h| Component::from_hex(h).unwrap())
            .collect();
        let kcvs: Vec<Kcv> = components
            .iter()
            .map(|c| keystore::crypto::kcv(c.expose()).unwrap())
            .collect();
        let err = check_count(&components, &kcvs).unwrap_err().to_string();
        assert!(err.contains("single-DES"), "{err}");
        for typed in short {
            assert!(!err.contains(typed), "{err}");
        }
        let ragged = [
            Component::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap(),
            Component::from_hex("0123456789ABCDEFFEDCBA98765432100123456789ABCDEF").unwrap(),
        ];
        let err = check_count(&ragged, &kcvs).unwrap_err().to_string();
        assert!(err.contains("different lengths"), "{err}");
    }
}
