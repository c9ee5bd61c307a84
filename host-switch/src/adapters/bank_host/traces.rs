//! STANs, retrieval references and transmission times for the messages to one host.
//!
//! A STAN comes from sled's persistent id generator (`generate_id`: monotonic across restarts,
//! never handed out twice), so two requests in flight, or a request and its reversal after a
//! restart, never share one. STANs cycle through 000001..=999999; at the ATM volumes of one
//! switch a STAN is not reused within a day. The RRN (field 37) is `YDDDhh` + STAN, 12 digits
//! (`Rrn::julian`), as the agents make theirs.

use protocols::iso8583::{utc_fields, TransmissionDateTime};

use crate::domain::issuer::{HostTrace, HostTxn};

pub struct Traces {
    db: sled::Db,
    host: String,
}

#[derive(Debug, thiserror::Error)]
#[error("no STAN: {0}")]
pub struct TraceError(#[from] sled::Error);

impl Traces {
    pub fn new(db: sled::Db, host: &str) -> Self {
        Self {
            db,
            host: host.to_owned(),
        }
    }

    /// A STAN and the transmission time (field 7) for a message sent now.
    pub fn next_stan(&self) -> Result<(u32, String), TraceError> {
        let id = self.db.generate_id()?;
        let stan = (id % 999_999) as u32 + 1;
        Ok((stan, now_transmission()))
    }

    /// The full trace of a request sent now.
    pub fn trace(&self, txn: HostTxn) -> Result<HostTrace, TraceError> {
        let secs = now_secs();
        let id = self.db.generate_id()?;
        let stan = (id % 999_999) as u32 + 1;
        let [month, day, hour, minute, second] = utc_fields(secs);
        Ok(HostTrace {
            host: self.host.clone(),
            stan,
            transmitted_at: TransmissionDateTime::from_unix_secs(secs).to_string(),
            rrn: protocols::types::Stan::new(stan)
                .map(|s| protocols::types::Rrn::julian(secs, s).as_str().to_owned())
                .unwrap_or_default(),
            mti: txn.mti().to_owned(),
            local_time: format!("{hour:02}{minute:02}{second:02}"),
            local_date: format!("{month:02}{day:02}"),
        })
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn now_transmission() -> String {
    TransmissionDateTime::from_unix_secs(now_secs()).to_string()
}
