//! `host-switch keys load-components` and `host-switch keys list`: the key custodians' offline
//! ceremony. Components are read one per line as `COMPONENT_HEX KCV_HEX`; each is checked against
//! its check value as soon as it is typed, and the key store checks them all again before storing
//! the combined key. A component never appears in an error or on the screen.

use std::io::{BufRead, Write};

use keystore::{Component, Kcv, KeyInfo};

use super::CliError;

/// Most components one key may be entered in.
pub const MAX_COMPONENTS: usize = 9;

/// Reads components until an empty line or the end of input. `prompt`, when given (a terminal),
/// is asked before each line and told what was accepted.
pub fn read_components(
    mut input: impl BufRead,
    mut prompt: Option<&mut dyn Write>,
) -> Result<(Vec<Component>, Vec<Kcv>), CliError> {
    let mut components = Vec::new();
    let mut kcvs = Vec::new();
    loop {
        let n = components.len() + 1;
        if let Some(p) = prompt.as_deref_mut() {
            let _ = write!(
                p,
                "component {n} and its KCV (hex hex), empty line when done: "
            );
            let _ = p.flush();
        }
        let mut line = String::new();
        let read = input
            .read_line(&mut line)
            .map_err(|e| CliError::new(format!("cannot read component {n}: {e}")))?;
        if let Some(p) = prompt.as_deref_mut() {
            let _ = writeln!(p);
        }
        let line = line.trim();
        if read == 0 || line.is_empty() {
            break;
        }
        if n > MAX_COMPONENTS {
            return Err(CliError::new(format!(
                "at most {MAX_COMPONENTS} components"
            )));
        }
        let (component, kcv) =
            parse_line(line).map_err(|e| CliError::new(format!("component {n}: {e}")))?;
        if let Some(p) = prompt.as_deref_mut() {
            let _ = writeln!(p, "component {n} accepted (KCV {kcv})");
        }
        components.push(component);
        kcvs.push(kcv);
    }
    if components.len() < 2 {
        return Err(CliError::new(format!(
            "a key is entered in at least 2 components, got {}",
            components.len()
        )));
    }
    Ok((components, kcvs))
}

/// One `COMPONENT_HEX KCV_HEX` line, the component checked against its KCV.
fn parse_line(line: &str) -> Result<(Component, Kcv), String> {
    let mut parts = line.split_whitespace();
    let (Some(hex), Some(kcv), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected two words: the component in hex and its KCV (6 hex digits)".into());
    };
    let component = Component::from_hex(hex).map_err(|e| e.to_string())?;
    let kcv: Kcv = kcv
        .parse()
        .map_err(|e: keystore::KeyStoreError| e.to_string())?;
    let computed = keystore::crypto::kcv(component.expose()).map_err(|e| e.to_string())?;
    if !computed.ct_eq(&kcv) {
        return Err(format!(
            "check value mismatch: typed {kcv}, the component gives {computed}; check the component"
        ));
    }
    Ok((component, kcv))
}

/// What a load printed: name, version, check value.
pub fn render_loaded(info: &KeyInfo) -> String {
    format!(
        "{} v{} loaded: usage {}, KCV {}, {} bytes",
        info.name, info.version, info.usage, info.kcv, info.length
    )
}

/// One line per key version.
pub fn render_list(keys: &[KeyInfo]) -> String {
    let mut out = String::from(
        "NAME                 VERSION  USAGE             KCV     BYTES  CREATED (UNIX)\n",
    );
    for k in keys {
        out.push_str(&format!(
            "{:<20} {:>7}  {:<16}  {}  {:>5}  {}\n",
            k.name.as_str(),
            k.version,
            k.usage.as_str(),
            k.kcv,
            k.length,
            k.created_unix
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_components_and_bad_lines_are_refused_without_echo() {
        let err = read_components("0123456789ABCDEFFEDCBA9876543210 000000\n".as_bytes(), None)
            .err()
            .unwrap();
        assert!(err.0.contains("component 1"), "{err}");
        assert!(
            !err.0.contains("0123456789ABCDEF"),
            "no component in errors: {err}"
        );
        let err = read_components("nothex\n".as_bytes(), None).err().unwrap();
        assert!(err.0.contains("two words"), "{err}");
        let err = read_components("".as_bytes(), None).err().unwrap();
        assert!(err.0.contains("at least 2"), "{err}");
    }
}
