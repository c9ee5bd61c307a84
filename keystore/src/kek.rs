//! The local key-encryption key (KEK) that wraps every stored key: 32 bytes, given as 64 hex digits
//! in a file readable by its owner only (mode 0600 or stricter), or in an environment variable.
//!
//! The KEK is the root of the software store: whoever reads it and the store file has every key.
//! So the file must not be readable by group or others, and no error ever echoes its content.

use zeroize::Zeroizing;

use crate::KeyStoreError;

/// Where a daemon's KEK comes from: the `[keys]` section names exactly one of `kek_file` and
/// `kek_env`. The agent and the switch read it the same way through this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    File(std::path::PathBuf),
    Env(String),
}

impl KekSource {
    /// The source a configuration names; an error unless exactly one is given.
    pub fn from_config(
        file: Option<&std::path::Path>,
        env: Option<&str>,
    ) -> Result<Self, KeyStoreError> {
        match (file, env) {
            (Some(f), None) => Ok(Self::File(f.to_owned())),
            (None, Some(v)) => Ok(Self::Env(v.to_owned())),
            _ => Err(KeyStoreError::Kek(
                "give exactly one of keys.kek_file and keys.kek_env".into(),
            )),
        }
    }

    /// Reads the KEK from its source.
    pub fn load(&self) -> Result<Kek, KeyStoreError> {
        match self {
            Self::File(path) => Kek::from_file(path),
            Self::Env(var) => Kek::from_env(var),
        }
    }
}

/// A loaded KEK. `Debug` shows `****`.
pub struct Kek(pub(crate) Zeroizing<[u8; 32]>);

impl Kek {
    /// Reads a KEK file: 64 hex digits (surrounding whitespace allowed); refuses a file whose mode
    /// lets group or others read it.
    pub fn from_file(path: &std::path::Path) -> Result<Self, KeyStoreError> {
        let shown = path.display();
        let unreadable = |source| KeyStoreError::KekFile {
            path: shown.to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyStoreError::Kek(format!(
                    "KEK file {shown} has mode {mode:04o}, open to group or others: chmod 600 {shown}"
                )));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(unreadable)?);
        Self::from_hex(&text).map_err(|e| match e {
            KeyStoreError::Kek(reason) => KeyStoreError::Kek(format!("KEK file {shown}: {reason}")),
            other => other,
        })
    }

    /// Reads the KEK from environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, KeyStoreError> {
        let text = Zeroizing::new(std::env::var(var).map_err(|e| {
            let why = match e {
                std::env::VarError::NotPresent => "is not set",
                std::env::VarError::NotUnicode(_) => "is not valid text",
            };
            KeyStoreError::Kek(format!("environment variable {var} {why}"))
        })?);
        Self::from_hex(&text).map_err(|e| match e {
            KeyStoreError::Kek(reason) => {
                KeyStoreError::Kek(format!("environment variable {var}: {reason}"))
            }
            other => other,
        })
    }

    /// 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, KeyStoreError> {
        let s = s.trim();
        if s.len() != 64 {
            return Err(KeyStoreError::Kek(format!(
                "a KEK is 64 hex digits, got {} characters",
                s.len()
            )));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s, &mut key[..])
            .map_err(|_| KeyStoreError::Kek("a KEK is hex digits only".into()))?;
        Ok(Kek(key))
    }

    /// A fresh random KEK (lab and first install), with its hex form to write to a 0600 file.
    pub fn generate() -> Result<(Self, Zeroizing<String>), KeyStoreError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut key[..]).map_err(|e| {
            KeyStoreError::Kek(format!("no randomness from the operating system: {e}"))
        })?;
        let hex = Zeroizing::new(hex::encode_upper(&key[..]));
        Ok((Kek(key), hex))
    }

    /// The raw 32 bytes, for [`crate::crypto::aes_key_unwrap`] (tools and tests that read the
    /// store file directly).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_exactly_one_of_file_and_environment() {
        use std::path::Path;
        assert_eq!(
            KekSource::from_config(Some(Path::new("/k")), None).unwrap(),
            KekSource::File("/k".into())
        );
        assert_eq!(
            KekSource::from_config(None, Some("KEK")).unwrap(),
            KekSource::Env("KEK".into())
        );
        assert!(KekSource::from_config(Some(Path::new("/k")), Some("KEK")).is_err());
        assert!(KekSource::from_config(None, None).is_err());
    }

    #[test]
    fn an_unreadable_kek_file_keeps_the_cause() {
        use std::error::Error as _;
        let e = KekSource::File("/nonexistent/kek".into())
            .load()
            .unwrap_err();
        assert!(matches!(e, KeyStoreError::KekFile { .. }), "{e:?}");
        assert!(e.source().is_some());
        assert!(e.to_string().contains("/nonexistent/kek"), "{e}");
    }

    use std::io::Write;

    const HEX: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";

    fn kek_message(r: Result<Kek, KeyStoreError>) -> String {
        match r {
            Err(KeyStoreError::Kek(m)) => m,
            Err(e @ KeyStoreError::KekFile { .. }) => e.to_string(),
            other => panic!("expected a Kek error, got {other:?}"),
        }
    }

    #[test]
    fn from_hex_accepts_64_digits_with_whitespace() {
        let k = Kek::from_hex(&format!("  {HEX}\n")).unwrap();
        assert_eq!(k.expose()[31], 0x1F);
        assert_eq!(format!("{k:?}"), "Kek(****)");
    }

    #[test]
    fn from_hex_refuses_bad_input_without_echoing_it() {
        let m = kek_message(Kek::from_hex(&HEX[..62]));
        assert!(!m.contains("0001"), "{m}");
        let m = kek_message(Kek::from_hex(&HEX.replace("1F", "ZZ")));
        assert!(!m.contains("0001"), "{m}");
    }

    #[cfg(unix)]
    #[test]
    fn from_file_refuses_a_file_group_or_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.hex");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "{HEX}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let m = kek_message(Kek::from_file(&path));
        assert!(
            m.contains("0644") && m.contains("chmod 600") && m.contains("kek.hex"),
            "{m}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Kek::from_file(&path).unwrap().expose()[0], 0);
    }

    #[test]
    fn from_file_names_a_missing_file() {
        let m = kek_message(Kek::from_file(std::path::Path::new("/nonexistent/kek.hex")));
        assert!(m.contains("/nonexistent/kek.hex"), "{m}");
    }

    #[test]
    fn from_env_names_the_variable_never_the_value() {
        let var = "KEYSTORE_TEST_KEK_FROM_ENV";
        assert!(kek_message(Kek::from_env(var)).contains(var));
        std::env::set_var(var, "00112233SECRET");
        let m = kek_message(Kek::from_env(var));
        assert!(
            m.contains(var) && !m.contains("SECRET") && !m.contains("0011"),
            "{m}"
        );
        std::env::set_var(var, HEX);
        assert!(Kek::from_env(var).is_ok());
        std::env::remove_var(var);
    }

    #[test]
    fn generated_keks_differ_and_round_trip_through_hex() {
        let (a, a_hex) = Kek::generate().unwrap();
        let (b, _) = Kek::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(Kek::from_hex(&a_hex).unwrap().expose(), a.expose());
    }
}
