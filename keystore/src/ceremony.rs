//! Key entry by custodians: each types one component of a key and its check value, the pair is
//! checked at once (a typing error is caught before anything is sent or stored), and the clear
//! components live only in zeroizing buffers. Used by `host-switch keys load-components` (the key
//! goes straight into the switch's store) and `atmctl keys load-master` (it goes to the agent over
//! its control socket).
//!
//! Input: one `COMPONENT_HEX KCV_HEX` line per component, ended by an empty line or the end of
//! input. On a terminal, typing is not echoed and a prompt goes to stderr. A component never
//! appears in an error or on the screen.

use std::io::{BufRead, IsTerminal, Read, Write};

use zeroize::Zeroizing;

use crate::{crypto, Component, Kcv, KeyStoreError};

/// Most components one key may be entered in.
pub const MAX_COMPONENTS: usize = 9;
/// The longest line a custodian may type: 64 hex digits, a space, 6 hex digits and some slack.
const LINE_MAX: usize = 255;

/// Reads components until an empty line or the end of input. `prompt`, when given (a terminal),
/// is asked before each line and told what was accepted.
pub fn read_components(
    mut input: impl BufRead,
    mut prompt: Option<&mut dyn Write>,
) -> Result<(Vec<Component>, Vec<Kcv>), String> {
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
        // Sized once and read through `take`, so the buffer never grows: a reallocation would
        // leave a copy of the component behind in freed memory that nothing wipes.
        let mut line = Zeroizing::new(String::with_capacity(LINE_MAX + 1));
        let read = (&mut input)
            .take(LINE_MAX as u64)
            .read_line(&mut line)
            .map_err(|e| format!("cannot read component {n}: {e}"))?;
        if read == LINE_MAX && !line.ends_with('\n') {
            return Err(format!(
                "component {n}: the line is longer than {LINE_MAX} characters"
            ));
        }
        if let Some(p) = prompt.as_deref_mut() {
            let _ = writeln!(p);
        }
        let line = line.trim();
        if read == 0 || line.is_empty() {
            break;
        }
        if n > MAX_COMPONENTS {
            return Err(format!("at most {MAX_COMPONENTS} components"));
        }
        let (component, kcv) = parse_line(line).map_err(|e| format!("component {n}: {e}"))?;
        // Every component is as long as the key: a shorter one is a part of a key, not a share.
        if let Some(first) = components.first() {
            let (len, first_len) = (component.expose().len(), Component::expose(first).len());
            if len != first_len {
                return Err(format!(
                    "component {n} is {} hex digits, component 1 was {}: every component is as \
                     long as the key",
                    2 * len,
                    2 * first_len
                ));
            }
        }
        if let Some(p) = prompt.as_deref_mut() {
            let _ = writeln!(p, "component {n} accepted (KCV {kcv})");
        }
        components.push(component);
        kcvs.push(kcv);
    }
    if components.len() < 2 {
        return Err(format!(
            "a key is entered in at least 2 components, got {}",
            components.len()
        ));
    }
    Ok((components, kcvs))
}

/// [`read_components`] from stdin; on a terminal with echo off and a prompt on stderr.
pub fn read_components_from_stdin() -> Result<(Vec<Component>, Vec<Kcv>), String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return read_components(stdin.lock(), None);
    }
    let _echo = EchoOff::new()?;
    let mut stderr = std::io::stderr();
    read_components(stdin.lock(), Some(&mut stderr))
}

/// One `COMPONENT_HEX KCV_HEX` line, the component checked against its KCV.
fn parse_line(line: &str) -> Result<(Component, Kcv), String> {
    let mut parts = line.split_whitespace();
    let (Some(hex), Some(kcv), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected two words: the component in hex and its KCV (6 hex digits)".into());
    };
    let component = Component::from_hex(hex).map_err(|e| e.to_string())?;
    let kcv: Kcv = kcv
        .to_ascii_uppercase()
        .parse()
        .map_err(|e: KeyStoreError| e.to_string())?;
    let computed = crypto::kcv(component.expose()).map_err(|e| e.to_string())?;
    if !computed.ct_eq(&kcv) {
        // Neither check value is repeated: the one typed may be a slip of the component itself,
        // and the one computed tells about a component that is one typo from the real one.
        return Err(
            "the component does not give the check value typed with it: one of them was mistyped"
                .into(),
        );
    }
    Ok((component, kcv))
}

/// Terminal echo off (`stty -echo`) while a custodian types, back on when dropped.
pub struct EchoOff;

impl EchoOff {
    /// Fails (rather than show components) when echo cannot be turned off.
    pub fn new() -> Result<Self, String> {
        let ok = std::process::Command::new("stty")
            .arg("-echo")
            // stty needs nothing from the environment: a KEK given there must not reach it.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Ok(EchoOff)
        } else {
            Err(
                "cannot turn terminal echo off (stty -echo): refusing to show key components"
                    .into(),
            )
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = std::process::Command::new("stty")
            .arg("echo")
            // stty needs nothing from the environment: a KEK given there must not reach it.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::inherit())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_read_until_an_empty_line_each_checked_by_its_kcv() {
        let input = "0123456789ABCDEFFEDCBA9876543210 08d7b4\n\
                     1111111111111111AAAAAAAAAAAAAAAA {}\n\n ignored\n";
        let second =
            crypto::kcv(&hex::decode("1111111111111111AAAAAAAAAAAAAAAA").unwrap()).unwrap();
        let input = input.replace("{}", &second.to_string());
        let (c, k) = read_components(input.as_bytes(), None).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(k[0].to_string(), "08D7B4");
    }

    #[test]
    fn an_overlong_line_is_refused_without_quoting_it() {
        let line = format!("{}\n", "AB".repeat(200));
        let err = read_components(line.as_bytes(), None).err().unwrap();
        assert!(err.contains("longer than 255"), "{err}");
        assert!(!err.contains("ABAB"), "{err}");
    }

    #[test]
    fn too_few_components_and_bad_lines_are_refused_without_echo() {
        let err = read_components("0123456789ABCDEFFEDCBA9876543210 000000\n".as_bytes(), None)
            .err()
            .unwrap();
        assert!(err.contains("component 1"), "{err}");
        assert!(
            !err.contains("0123456789ABCDEF"),
            "no component in errors: {err}"
        );
        let err = read_components("nothex\n".as_bytes(), None).err().unwrap();
        assert!(err.contains("two words"), "{err}");
        let err = read_components("".as_bytes(), None).err().unwrap();
        assert!(err.contains("at least 2"), "{err}");
    }
}
