//! The terminal's electronic journal: upload blocks `61` are stored, then acknowledged.
//!
//! A terminal uploads its journal in blocks, each saying where it ends (its last character
//! number); the acknowledgement `6 … 1<last char>` tells the terminal the host holds everything up
//! to there, and it may forget it. So the block's lines are made durable in the agent's state
//! store (`TerminalStore::append_journal`, group-committed) before the acknowledgement leaves:
//! a block the terminal was told is stored survives any crash. A block that could not be stored
//! is not acknowledged (the terminal sends it again); one sent again after a lost
//! acknowledgement (same last character number) is acknowledged again without being stored
//! twice. A block without a header is stored but cannot be acknowledged (logged).
//!
//! Uploads are taken as they arrive and stored at the session's next turn, never in the middle of
//! another exchange (bounded: [`MAX_QUEUED_BLOCKS`]; a block beyond it is dropped unacknowledged,
//! and the terminal sends it again).

use protocols::ndc::{HostMessage, JournalUpload};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Session, SessionEnd};
use crate::ports::{AdviceQueue, JournalAppend, SwitchLink, TerminalStore};

/// Upload blocks waiting for the session's next turn.
pub(super) const MAX_QUEUED_BLOCKS: usize = 8;

impl<IO, L, S, Q> Session<IO, L, S, Q>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    /// Queues an upload block (its LUNO was checked) for [`Self::store_journal`].
    pub(super) fn take_journal_upload(&mut self, u: JournalUpload) {
        if self.journal_blocks.len() >= MAX_QUEUED_BLOCKS {
            tracing::warn!(
                terminal = self.tid(),
                "electronic journal blocks arrive faster than they are stored: block dropped unacknowledged (the terminal sends it again)"
            );
            return;
        }
        self.journal_blocks.push_back(u);
    }

    /// Stores the queued upload blocks, each acknowledged once durable.
    pub(super) async fn store_journal(&mut self) -> Result<(), SessionEnd> {
        while let Some(u) = self.journal_blocks.pop_front() {
            let lines: Vec<String> = u.text.lines().map(str::to_owned).collect();
            let stored = self
                .svc
                .state
                .append_journal(
                    &self.terminal_id,
                    crate::clock::now_ms(),
                    u.last_char(),
                    &lines,
                )
                .await;
            match stored {
                Ok(JournalAppend::Stored { removed }) => {
                    tracing::debug!(
                        terminal = self.tid(),
                        lines = lines.len(),
                        "electronic journal block stored"
                    );
                    if removed > 0 {
                        tracing::warn!(
                            terminal = self.tid(),
                            removed,
                            "electronic journal full: oldest lines removed"
                        );
                    }
                }
                Ok(JournalAppend::AlreadyStored) => {
                    tracing::info!(terminal = self.tid(), last_char = ?u.last_char(), "electronic journal block sent again: already stored, acknowledged again");
                }
                Err(e) => {
                    tracing::error!(terminal = self.tid(), error = %e, "electronic journal upload not stored: not acknowledged");
                    continue;
                }
            }
            let Some(ack) = u.ack() else {
                tracing::warn!(
                    terminal = self.tid(),
                    "electronic journal block without a header: stored, but it cannot be acknowledged"
                );
                continue;
            };
            self.send(HostMessage::Journal(ack)).await?;
        }
        Ok(())
    }
}
