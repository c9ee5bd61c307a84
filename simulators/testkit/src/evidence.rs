//! What a security test looks at after the fact: the log lines a tracing subscriber wrote, and
//! every byte a store left on disk (sled's segments and snapshots read raw, as an attacker with a
//! copy of the disk would).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A `tracing_subscriber` writer that keeps what it is given, for a test to read back:
/// `fmt().with_writer(move || logs.clone())`.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// The lines that contain `pattern`.
    pub fn lines_with(&self, pattern: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(pattern))
            .map(str::to_owned)
            .collect()
    }
}

/// Every byte of every regular file under `dir`, recursively (sockets and links are skipped: a
/// control socket cannot be read, and a link points at something searched on its own).
pub fn bytes_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the directory") {
        let entry = entry.expect("a directory entry");
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            out.extend(bytes_under(&entry.path()));
        } else if kind.is_file() {
            out.extend(std::fs::read(entry.path()).expect("read a file"));
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn holds(haystack: &[u8], needle: impl AsRef<[u8]>) -> bool {
    let needle = needle.as_ref();
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_recursively_and_searched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("db/seg"), b"xx4761739001010010yy").unwrap();
        let all = bytes_under(dir.path());
        assert!(holds(&all, "4761739001010010"));
        assert!(!holds(&all, "4761739001010011"));
        assert!(!holds(&all, ""));

        let mut logs = CapturedLogs::default();
        logs.write_all(b"a security: one\nb info: two\n").unwrap();
        assert_eq!(logs.lines_with(" security:"), vec!["a security: one"]);
    }
}
