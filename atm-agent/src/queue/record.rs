//! The on-disk format, kept in one place. Pure functions, no I/O.
//!
//! Key: partition bytes, `0x00`, sequence as u64 big-endian. sled orders keys bytewise, so one
//! partition's keys are contiguous and in FIFO order, and partitions can be visited by skipping
//! to `partition + 0x01` (a partition never contains `0x00`).
//! Value: a JSON [`Record`]; unknown fields are ignored and new fields have defaults, so an older
//! agent's queue opens after an upgrade.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::QueueError;

/// Longest partition (terminal id) in bytes.
pub const MAX_PARTITION_BYTES: usize = 64;
/// Largest encoded record; an advice is a few hundred bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Longest `last_error` kept, so an error message cannot grow a record without bound.
pub(crate) const MAX_ERROR_CHARS: usize = 512;

const SEPARATOR: u8 = 0x00;
const SEQ_BYTES: usize = 8;

/// Why and when an entry was taken out of the flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Parked {
    pub reason: String,
    pub parked_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record<T> {
    pub payload: T,
    /// Sends begun; persisted before each send, so a crash after sending still makes the next
    /// send a repeat.
    #[serde(default)]
    pub attempts: u32,
    /// Failures that count against `park_after_failures` (not 91s, not timeouts).
    #[serde(default)]
    pub counted_failures: u32,
    pub enqueued_at_ms: u64,
    #[serde(default)]
    pub next_attempt_at_ms: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub parked: Option<Parked>,
    /// The caller's name for the advice ([`super::SafQueue::enqueue_once`]): queued once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once_key: Option<String>,
}

impl<T> Record<T> {
    pub fn new(payload: T, now_ms: u64) -> Self {
        Self {
            payload,
            attempts: 0,
            counted_failures: 0,
            enqueued_at_ms: now_ms,
            next_attempt_at_ms: now_ms,
            last_error: None,
            parked: None,
            once_key: None,
        }
    }
}

pub(crate) fn encode<T: Serialize>(record: &Record<T>) -> Result<Vec<u8>, QueueError> {
    let bytes = serde_json::to_vec(record).map_err(QueueError::Encode)?;
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(QueueError::TooLarge {
            bytes: bytes.len(),
            max_bytes: MAX_RECORD_BYTES,
        });
    }
    Ok(bytes)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Record<T>, String> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(format!(
            "record of {} bytes exceeds {MAX_RECORD_BYTES}",
            bytes.len()
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Terminal ids are printable ASCII; the limits keep keys small and `0x00` free for the separator.
pub(crate) fn validate_partition(partition: &str) -> Result<(), QueueError> {
    let reason = if partition.is_empty() {
        Some("empty")
    } else if partition.len() > MAX_PARTITION_BYTES {
        Some("longer than 64 bytes")
    } else if !partition.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Some("not printable ASCII")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(QueueError::InvalidPartition {
            partition: partition.escape_default().to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn encode_key(partition: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(partition.len() + 1 + SEQ_BYTES);
    key.extend_from_slice(partition.as_bytes());
    key.push(SEPARATOR);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The partition and sequence of a key, or `None` for a key this queue never wrote.
pub(crate) fn decode_key(key: &[u8]) -> Option<(String, u64)> {
    let split = key.len().checked_sub(SEQ_BYTES + 1)?;
    if key[split] != SEPARATOR {
        return None;
    }
    let partition = std::str::from_utf8(&key[..split]).ok()?;
    validate_partition(partition).ok()?;
    let seq = u64::from_be_bytes(key[split + 1..].try_into().ok()?);
    Some((partition.to_string(), seq))
}

/// The index key of an advice queued once: partition, `0x00`, the caller's key.
pub(crate) fn encode_once_key(partition: &str, once_key: &str) -> Vec<u8> {
    let mut key = partition_prefix(partition);
    key.extend_from_slice(once_key.as_bytes());
    key
}

/// The first key of `partition` (a prefix of all its keys).
pub(crate) fn partition_prefix(partition: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(partition.len() + 1);
    p.extend_from_slice(partition.as_bytes());
    p.push(SEPARATOR);
    p
}

/// A key above every key of `partition` and below every key of the partitions sorting after it.
pub(crate) fn partition_end(partition: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(partition.len() + 1);
    p.extend_from_slice(partition.as_bytes());
    p.push(SEPARATOR + 1);
    p
}

/// A printable name for a key, valid or not, for logs.
pub(crate) fn describe_key(key: &[u8]) -> String {
    match decode_key(key) {
        Some((partition, seq)) => format!("{partition}/{seq}"),
        None => format!("raw key {}", key.escape_ascii()),
    }
}

pub(crate) fn truncate_error(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_partition_then_sequence() {
        let mut keys = [
            encode_key("B", 1),
            encode_key("A", 300),
            encode_key("AB", 0),
            encode_key("A", 2),
        ];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| decode_key(k).unwrap()).collect();
        assert_eq!(
            decoded,
            vec![
                ("A".into(), 2),
                ("A".into(), 300),
                ("AB".into(), 0),
                ("B".into(), 1)
            ]
        );
        assert!(partition_end("A") > encode_key("A", u64::MAX));
        assert!(partition_end("A") < encode_key("A ", 0));
    }

    #[test]
    fn foreign_keys_and_bad_partitions_are_recognised() {
        assert_eq!(decode_key(b"short"), None);
        assert_eq!(decode_key(b"ABCDEFGHIJKL"), None);
        assert!(validate_partition("").is_err());
        assert!(validate_partition("A\0B").is_err());
        assert!(validate_partition(&"x".repeat(65)).is_err());
        assert!(validate_partition("ATM 0001").is_ok());
    }

    #[test]
    fn records_round_trip_and_tolerate_missing_fields() {
        let r = Record::new(7u32, 1000);
        assert_eq!(decode::<u32>(&encode(&r).unwrap()).unwrap(), r);
        let old: Record<u32> = decode(br#"{"payload":7,"enqueued_at_ms":5}"#).unwrap();
        assert_eq!((old.attempts, old.next_attempt_at_ms), (0, 0));
        assert!(decode::<u32>(b"\xff\x00garbage").is_err());
    }
}
