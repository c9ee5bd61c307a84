//! The store-and-forward queue (`crate::queue::SafQueue`, sled) as the application's
//! [`AdviceQueue`]: advices are partitioned by terminal id, and queued once per advice key
//! (STAN and transmission time within the terminal).

use protocols::types::TerminalId;

use crate::domain::advice::Advice;
use crate::ports::{AdviceQueue, Entry, EntryId, QueueError, RetryOutcome};
use crate::queue::SafQueue;

impl AdviceQueue for SafQueue<Advice> {
    async fn enqueue(&self, terminal: &TerminalId, advice: Advice) -> Result<(), QueueError> {
        let once_key = format!("{}:{}", advice.stan, advice.transmitted_at);
        SafQueue::enqueue_once(self, terminal.as_str(), &once_key, advice)
            .await
            .map(|_| ())
    }

    fn claim_due(&self, now_ms: u64, max: usize) -> Vec<Entry<Advice>> {
        SafQueue::claim_due(self, now_ms, max)
    }

    fn release(&self, id: &EntryId) {
        SafQueue::release(self, id)
    }

    async fn begin_attempt(&self, id: &EntryId) -> Result<Entry<Advice>, QueueError> {
        SafQueue::begin_attempt(self, id).await
    }

    async fn complete(&self, id: &EntryId) -> Result<(), QueueError> {
        SafQueue::complete(self, id).await
    }

    async fn retry_later(
        &self,
        id: &EntryId,
        error: &str,
        counts_against_limit: bool,
    ) -> Result<RetryOutcome, QueueError> {
        SafQueue::retry_later(self, id, error, counts_against_limit).await
    }

    async fn park(&self, id: &EntryId, reason: &str) -> Result<(), QueueError> {
        SafQueue::park(self, id, reason).await
    }
}
