//! The store-and-forward queue (`crate::queue::SafQueue`, sled) as the application's
//! [`AdviceQueue`]: advices are partitioned by terminal id.

use protocols::types::TerminalId;

use crate::domain::advice::Advice;
use crate::ports::{AdviceQueue, Entry, EntryId, QueueError, RetryOutcome};
use crate::queue::SafQueue;

impl AdviceQueue for SafQueue<Advice> {
    async fn enqueue(&self, terminal: &TerminalId, advice: Advice) -> Result<(), QueueError> {
        SafQueue::enqueue(self, terminal.as_str(), advice)
            .await
            .map(|_| ())
    }

    fn due(&self, now_ms: u64) -> Vec<Entry<Advice>> {
        SafQueue::due(self, now_ms)
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
