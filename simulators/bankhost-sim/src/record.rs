//! The record of everything the host received and what became of it, so a test can check that a
//! reversal arrived and how many repeats came, and counters by MTI and response code.
//!
//! Bounded: past [`RECORD_MAX`] exchanges the oldest are forgotten (the counters keep counting).

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use protocols::iso8583::{Message, Mti};

/// Most exchanges kept in the record.
pub const RECORD_MAX: usize = 200_000;

/// What happened to a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Waiting for its latency, or being written.
    Pending,
    /// The answer was written to the connection.
    Answered,
    /// Applied, answer withheld (a `drop_answer` rule or `drop_next_answers`).
    AnswerDropped,
    /// Neither applied nor answered (a `no_apply_no_answer` rule, a silent outage, or a message
    /// the host does not answer).
    Swallowed,
    /// The answer could not be written (connection gone, or it did not pack).
    SendFailed,
}

/// One received message and its outcome.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// Which connection it came on (from 1, in order of acceptance).
    pub connection: u64,
    pub at: SystemTime,
    pub mti: Mti,
    pub request: Message,
    /// The answer the host built (kept even when it was dropped).
    pub answer: Option<Message>,
    /// Field 39 of the answer.
    pub response_code: Option<String>,
    /// The rule that matched, by name (or its index as `#N`).
    pub rule: Option<String>,
    pub fate: Fate,
}

impl Exchange {
    /// Whether the answer reached the connection.
    pub fn answered(&self) -> bool {
        self.fate == Fate::Answered
    }
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub received_by_mti: BTreeMap<String, u64>,
    /// Answers written, by field 39.
    pub answered_by_code: BTreeMap<String, u64>,
    pub answers_dropped: u64,
    pub swallowed: u64,
    pub send_failures: u64,
    /// Frames that did not decode (each closed its connection).
    pub undecodable_frames: u64,
    pub connections_accepted: u64,
    /// Connections closed by a `Refuse` outage.
    pub connections_refused: u64,
}

#[derive(Debug, Default)]
pub struct Recorder {
    exchanges: VecDeque<Exchange>,
    next_seq: u64,
    pub stats: Stats,
}

impl Recorder {
    /// Records a received message; returns its sequence number.
    pub fn received(&mut self, connection: u64, request: &Message) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        *self
            .stats
            .received_by_mti
            .entry(request.mti().to_string())
            .or_default() += 1;
        if self.exchanges.len() >= RECORD_MAX {
            self.exchanges.pop_front();
        }
        self.exchanges.push_back(Exchange {
            seq,
            connection,
            at: SystemTime::now(),
            mti: request.mti(),
            request: request.clone(),
            answer: None,
            response_code: None,
            rule: None,
            fate: Fate::Pending,
        });
        seq
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Exchange> {
        let first = self.exchanges.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.exchanges.get_mut(index)
    }

    /// What the host decided: the answer it built and the rule that matched.
    pub fn decided(&mut self, seq: u64, answer: Option<&Message>, rule: Option<String>) {
        if let Some(e) = self.get_mut(seq) {
            e.answer = answer.cloned();
            e.response_code = answer.and_then(|a| a.get_str(39)).map(str::to_owned);
            e.rule = rule;
        }
    }

    /// The final fate of exchange `seq`.
    pub fn settle(&mut self, seq: u64, fate: Fate) {
        let code = self.get_mut(seq).and_then(|e| {
            e.fate = fate;
            e.response_code.clone()
        });
        match fate {
            Fate::Answered => {
                *self
                    .stats
                    .answered_by_code
                    .entry(code.unwrap_or_else(|| "--".into()))
                    .or_default() += 1;
            }
            Fate::AnswerDropped => self.stats.answers_dropped += 1,
            Fate::Swallowed => self.stats.swallowed += 1,
            Fate::SendFailed => self.stats.send_failures += 1,
            Fate::Pending => {}
        }
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchanges_are_settled_by_sequence() {
        let mut r = Recorder::default();
        let m = Message::new("0800").unwrap();
        let a = r.received(1, &m);
        let b = r.received(1, &m);
        let mut answer = Message::new("0810").unwrap();
        answer.set_str(39, "00").unwrap();
        r.decided(b, Some(&answer), None);
        r.settle(b, Fate::Answered);
        r.settle(a, Fate::Swallowed);
        let all = r.exchanges();
        assert_eq!(all[0].fate, Fate::Swallowed);
        assert!(all[1].answered());
        assert_eq!(all[1].response_code.as_deref(), Some("00"));
        assert_eq!(r.stats.received_by_mti["0800"], 2);
        assert_eq!(r.stats.answered_by_code["00"], 1);
        assert_eq!(r.stats.swallowed, 1);
    }
}
