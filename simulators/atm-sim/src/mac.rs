//! NDC MAC mode, the terminal's side: what it MACs, what it checks, and how a test tampers.
//!
//! When the profile's `[mac]` says so and the PIN pad holds a MAC key (loaded by the host with
//! `3 … 45`):
//! - a transaction request `11` gets a fresh TVN (8 hex digits) and, as its last field, the MAC of
//!   its bytes (`protocols::ndc::mac`: the message without the MAC field, through the FS before
//!   it; ANSI X9.19 retail MAC, the leftmost 4 bytes in hex);
//! - every solicited status `22` likewise (`solicited_status`);
//! - a transaction reply `4` must carry a MAC that verifies and echo the request's TVN, else it is
//!   rejected before anything else is looked at: `C` + reason `1` (MAC) or `2` (TVN), and it
//!   becomes last transaction status `3` (reply rejected).
//!
//! Without a MAC key the terminal sends its messages without TVN or MAC (the agent refuses such
//! a request) and rejects every reply in MAC mode.
//!
//! [`RequestTamper`] lets a test play a man in the middle: the request is changed after it was
//! MACed, as an attacker on the line would change it; `AtmSim::tamper_next_status_mac` does the
//! same to the next solicited status.

use protocols::ndc::{
    mac_field, parse_mac_field, TerminalMessage, TransactionReply, TransactionRequest,
};

use super::epp::EppError;
use super::messages::reason;
use super::terminal::Terminal;

/// A change made to the next transaction request after the terminal MACed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTamper {
    /// The amount is replaced (minor units).
    Amount(u64),
    /// The MAC field is replaced by another 8 hex digits.
    Mac(String),
    /// The MAC field is removed.
    NoMac,
    /// The previous request, recorded on the line, is sent again instead (same TVN, same MAC).
    Replay,
}

impl RequestTamper {
    /// Changes `req`; `previous` is the request the terminal sent before it (for a replay).
    pub(crate) fn apply(
        &self,
        req: &mut TransactionRequest,
        previous: Option<&TransactionRequest>,
    ) {
        match self {
            Self::Amount(a) => req.amount = Some(*a),
            Self::Mac(m) => req.mac = Some(m.clone()),
            Self::NoMac => req.mac = None,
            Self::Replay => {
                if let Some(p) = previous {
                    *req = p.clone();
                }
            }
        }
    }
}

impl Terminal {
    /// The next time-variant number: unique per message on this terminal (a counter started
    /// from the LUNO, so two simulated terminals do not share a sequence).
    fn next_tvn(&mut self) -> String {
        if self.tvn == 0 {
            self.tvn = self
                .luno
                .bytes()
                .fold(0x2545_F491u32, |h, b| h.rotate_left(5) ^ u32::from(b));
        }
        self.tvn = self.tvn.wrapping_add(1);
        format!("{:08X}", self.tvn)
    }

    /// MACs a transaction request in place when the profile MACs requests and the PIN pad has a
    /// MAC key; remembers its TVN for the reply. Returns whether it was MACed.
    pub(crate) fn authenticate_request(
        &mut self,
        req: &mut TransactionRequest,
    ) -> Result<bool, EppError> {
        self.awaiting_tvn = None;
        if !self.mac.transaction_request || self.epp.mac_key_kcv().is_none() {
            return Ok(false);
        }
        let tvn = self.next_tvn();
        req.tvn = Some(tvn.clone());
        req.mac = None;
        let Ok(input) = req.mac_input(&self.dialect) else {
            // Encoding fails later with its own error; nothing to MAC.
            return Ok(false);
        };
        if let Some(mac) = self.epp.mac(&input)? {
            req.mac = Some(mac_field(&mac));
        }
        self.awaiting_tvn = Some(tvn);
        Ok(true)
    }

    /// MACs a solicited status in place (any other message is left as it is) when the profile
    /// MACs statuses and the PIN pad has a MAC key.
    pub(crate) fn authenticate_status(&mut self, msg: &mut TerminalMessage) {
        let TerminalMessage::SolicitedStatus(s) = msg else {
            return;
        };
        if !self.mac.solicited_status || self.epp.mac_key_kcv().is_none() {
            return;
        }
        s.tvn = Some(self.next_tvn());
        s.mac = None;
        let mac = s
            .mac_input(&self.dialect)
            .ok()
            .and_then(|input| self.epp.mac(&input).ok().flatten());
        s.mac = mac.map(|m| mac_field(&m));
        if let Some(forged) = self.tamper_status_mac.take() {
            tracing::warn!("status MAC replaced after it was made");
            s.mac = Some(forged);
        }
    }

    /// Checks a transaction reply's MAC and echoed TVN (MAC mode); the reject reason if bad.
    pub(crate) fn check_reply_mac(&self, r: &TransactionReply) -> Result<(), &'static str> {
        if !self.mac.transaction_reply {
            return Ok(());
        }
        let verified = match (
            r.mac.as_deref().and_then(parse_mac_field),
            r.mac_input(&self.dialect),
        ) {
            (Some(mac), Ok(input)) => self.epp.verify_mac(&input, &mac).unwrap_or(false),
            _ => false,
        };
        if !verified {
            return Err(reason::MAC);
        }
        match &self.awaiting_tvn {
            Some(tvn) if *tvn == r.sequence => Ok(()),
            _ => Err(reason::TVN),
        }
    }
}
