//! The terminal's electronic journal as the agent keeps it: one line per entry, numbered per
//! terminal in the order received, with the time it was stored. What an operator is shown has its
//! PAN-like digit runs masked (`protocols::ndc::mask_pan_runs`, in `adapters::control`).

use serde::{Deserialize, Serialize};

/// One stored journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalLine {
    /// Per terminal, from 1, never reused.
    pub seq: u64,
    /// When the agent stored it (ms since the Unix epoch).
    pub at_ms: u64,
    pub text: String,
}
