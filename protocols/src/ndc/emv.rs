//! EMV configuration `8` (host → terminal): the tables an EMV-capable terminal needs before it
//! can read chip cards (currencies, transaction types, languages, terminal data, applications).
//!
//! ```text
//! 8[flag] FS luno FS <table> FS <record> [FS <record> ...] [FS mac]
//! ```
//!
//! `table` is `1` currency, `2` transaction, `3` language, `4` terminal data, `5` application
//! (others kept as sent); the records are kept raw, as the host wrote them (their layout is the
//! EMV kernel's). The terminal answers like any data command: `22 … 9` ready, `A` or `C` reject.

use serde::Serialize;

use super::dialect::Dialect;
use super::error::{NdcError, Reason};
use super::fields::{host_class, is_zero, Reader, Writer};

/// Which EMV table a message loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EmvTable {
    Currency,
    Transaction,
    Language,
    TerminalData,
    Application,
}

impl EmvTable {
    pub fn from_id(id: &str) -> Option<Self> {
        Some(match id {
            "1" => Self::Currency,
            "2" => Self::Transaction,
            "3" => Self::Language,
            "4" => Self::TerminalData,
            "5" => Self::Application,
            _ => return None,
        })
    }

    pub fn id(self) -> &'static str {
        match self {
            Self::Currency => "1",
            Self::Transaction => "2",
            Self::Language => "3",
            Self::TerminalData => "4",
            Self::Application => "5",
        }
    }
}

/// EMV configuration message `8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmvConfiguration {
    pub response_flag: Option<char>,
    pub luno: String,
    /// The table identifier as sent (`1` … `5`; see [`EmvConfiguration::table`]).
    pub table_id: String,
    /// The records after the table identifier, raw.
    pub records: Vec<String>,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS), written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

impl EmvConfiguration {
    pub fn new(luno: impl Into<String>, table: EmvTable, records: Vec<String>) -> Self {
        Self {
            response_flag: None,
            luno: luno.into(),
            table_id: table.id().to_owned(),
            records,
            mac: None,
            trailing_fs: 0,
        }
    }

    /// The table, when the identifier is one we name.
    pub fn table(&self) -> Option<EmvTable> {
        EmvTable::from_id(&self.table_id)
    }

    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new_exact("8", bytes);
        let response_flag = host_class(&r, b'8', dialect)?;
        let trailing_fs = r.take_trailing(3);
        let mac = r.take_mac(3, dialect);
        let luno = r.luno_any(1)?;
        let table_id = r.text(2, "EMV table")?;
        Ok(Self {
            response_flag,
            luno,
            table_id,
            records: r.extra(3),
            mac,
            trailing_fs,
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("8");
        w.host_class('8', self.response_flag, dialect)?
            .fs()
            .luno_any(&self.luno)?
            .fs()
            .text("EMV table", &self.table_id)?;
        if self.mac.is_none() && self.records.last().is_some_and(String::is_empty) {
            return Err(w.err(
                "EMV record",
                Reason::Invalid("last record must not be empty (count it as a trailing FS)"),
            ));
        }
        for rec in &self.records {
            w.fs().text("EMV record", rec)?;
        }
        w.mac(&self.mac, dialect)?.trailing(self.trailing_fs);
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_records_are_kept_as_sent() {
        let d = Dialect::ncr_advance();
        for raw in [
            &b"8\x1c001\x1c1\x1c01\x1c0978\x1c0012\x1c2"[..],
            b"80\x1c\x1c5\x1c02A0000000041010\x1c\x1c",
            b"8\x1c001000001\x1c4\x1c9F1A020840"[..].as_ref(),
        ] {
            let m = EmvConfiguration::parse(raw, &d).unwrap();
            assert_eq!(m.encode(&d).unwrap(), raw);
        }
        let m = EmvConfiguration::parse(b"8\x1c001\x1c1\x1c01\x1c0978", &d).unwrap();
        assert_eq!(m.table(), Some(EmvTable::Currency));
        assert_eq!(m.records, ["01", "0978"]);
    }
}
