//! Every customer gets an answer: a transaction request `11` that does not parse (a field that
//! does not read, a dialect mismatch) is still a customer at the terminal, waiting for a reply
//! until the terminal's own timer gives up. As long as its LUNO and message coordination number
//! can be read (fields 2 and 5, found by position between FS separators, as the terminal wrote
//! them), the agent answers it with the profile's decline screen, the declined next state and the
//! card returned, at once. Nothing goes to the switch. A request whose MCN cannot be read cannot
//! be answered (the terminal would reject a reply that does not echo it): that is logged.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Session, SessionEnd};
use crate::app::conversation::{CustomerReply, Decline};
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

const FS: u8 = 0x1C;

/// What can be read of a transaction request that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawRequest {
    pub luno: String,
    /// The TVN to echo: the third field when it is 8 hex digits, else empty.
    pub tvn: String,
    /// The message coordination number (second character of the fifth field), if there is one.
    pub mcn: Option<char>,
}

impl RawRequest {
    /// `Some` for a message of class `11`, whatever else is wrong with it.
    pub fn read(payload: &[u8]) -> Option<RawRequest> {
        let mut fields = payload.split(|b| *b == FS);
        if fields.next()? != b"11" {
            return None;
        }
        let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
        let luno = text(fields.next().unwrap_or_default());
        let _reserved = fields.next();
        let tvn = fields.next().unwrap_or_default();
        let tvn = if tvn.len() == 8 && tvn.iter().all(u8::is_ascii_hexdigit) {
            text(tvn)
        } else {
            String::new()
        };
        // Top of receipt, then the MCN: a printable ASCII character.
        let mcn = fields
            .next()
            .and_then(|f| f.get(1))
            .filter(|b| b.is_ascii_graphic())
            .map(|b| char::from(*b));
        Some(RawRequest { luno, tvn, mcn })
    }
}

impl<IO, L, S, Q> Session<IO, L, S, Q>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    /// Queues the decline of an unreadable request (sent at the session's next turn, never in
    /// the middle of another exchange).
    pub(super) fn owe_decline(&mut self, raw: RawRequest) {
        match raw.mcn {
            Some(mcn) => {
                tracing::warn!(terminal = self.tid(), mcn = %mcn, "transaction request that does not parse: the customer is declined, card returned");
                // Bounded: a terminal sends one request at a time; more than a few unanswered
                // are malformed traffic, closed by `max_malformed_in_a_row` anyway.
                if self.owed_declines.len() < 8 {
                    self.owed_declines.push_back((raw.tvn, mcn));
                }
            }
            None => {
                tracing::error!(
                    terminal = self.tid(),
                    "transaction request without a readable MCN: it cannot be answered"
                );
            }
        }
    }

    /// Sends the declines owed to unreadable requests.
    pub(super) async fn pay_owed_declines(&mut self) -> Result<(), SessionEnd> {
        while let Some((tvn, mcn)) = self.owed_declines.pop_front() {
            self.answering = Some((tvn, mcn));
            self.send_reply(CustomerReply::Decline(Decline::Declined))
                .await?;
            self.svc.registry.update(self.tid(), |v| v.customers += 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luno_tvn_and_mcn_are_read_from_a_broken_request() {
        let r = RawRequest::read(b"11\x1c001\x1c\x1c\x1c14\x1c;garbage\x1c\x1cA       \x1c12x4")
            .unwrap();
        assert_eq!(
            r,
            RawRequest {
                luno: "001".into(),
                tvn: String::new(),
                mcn: Some('4')
            }
        );
        let r = RawRequest::read(b"11\x1c001000001\x1c\x1c01A468E4\x1c1?\x1c").unwrap();
        assert_eq!(r.tvn, "01A468E4");
        assert_eq!(r.mcn, Some('?'));
        assert_eq!(RawRequest::read(b"11\x1c001").unwrap().mcn, None);
        assert_eq!(RawRequest::read(b"12\x1c001\x1c\x1cB0022"), None);
        assert_eq!(RawRequest::read(b""), None);
    }
}
