//! Enqueue with an idempotency key: the same key twice, while the key lives, yields one job.
//! A producer that retries after a lost reply, or two producers that learn of the same event,
//! then add the job once. The check and the add are one Lua script, so two concurrent calls
//! cannot both add.

use super::Job;
use super::Queue;
use super::keys::JOB_FIELD;
use super::scripts;
use crate::error::{Error, Result};
use std::time::Duration;

/// Longest idempotency key accepted, in bytes (Redis allows far more; a key this long is a bug).
pub const MAX_KEY_BYTES: usize = 1024;

/// What [`Queue::enqueue_unique`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The job was added; its stream entry id.
    Added(String),
    /// A job with this key was added before (and the key has not expired); the first job's
    /// entry id. Nothing was added.
    Duplicate(String),
}

impl Enqueued {
    /// The entry id of the job that holds the key.
    pub fn entry_id(&self) -> &str {
        match self {
            Enqueued::Added(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

impl Queue {
    /// Adds `job` unless a job with idempotency key `key` was added within `ttl` of now.
    pub async fn enqueue_unique(&self, job: &Job, key: &str, ttl: Duration) -> Result<Enqueued> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(Error::Other(format!(
                "idempotency key: expected 1 to {MAX_KEY_BYTES} bytes, got {}",
                key.len()
            )));
        }
        let ttl_ms = ttl.as_millis();
        if ttl_ms == 0 {
            return Err(Error::Other("idempotency key: expected a time to live of at least 1ms".into()));
        }
        // The key picks the partition, so a repeat lands where the first job's key lives.
        let keys = &self.partition_keys()[usize::from(super::partition::of_key(key, self.partition_keys().len()))];
        let (unique, ready) = (keys.unique(key), keys.ready());
        let (added, id): (u8, String) = self
            .redis
            .with_conn(async |c| {
                scripts::ENQUEUE_UNIQUE
                    .key(&unique)
                    .key(&ready)
                    .arg(JOB_FIELD)
                    .arg(job.encode())
                    .arg(ttl_ms as u64)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(if added == 1 { Enqueued::Added(id) } else { Enqueued::Duplicate(id) })
    }
}
