//! Enqueue with an idempotency key: the same key twice, while the key lives, yields one job.
//! A producer that retries after a lost reply, or two producers that learn of the same event,
//! then add the job once. The check and the add are one Lua script (`enqueue_unique`), so two
//! concurrent calls cannot both add; the general path ([`Queue::enqueue_jobs`]) sends it in the
//! same pipeline as any other job of a batch.

use super::Queue;
use super::enqueue::{Enqueued, NewJob};
use super::envelope::Envelope;
use crate::runtime::error::{Error, Result};
use std::time::Duration;

/// Longest idempotency key accepted, in bytes (Redis allows far more; a key this long is a bug).
pub const MAX_KEY_BYTES: usize = 1024;

/// An idempotency key and time to live the script accepts.
pub(super) fn check(key: &str, ttl: Duration) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidArgument {
            what: "idempotency key",
            message: format!("expected 1 to {MAX_KEY_BYTES} bytes, got {}", key.len()),
        });
    }
    if ttl.as_millis() == 0 {
        return Err(Error::InvalidArgument {
            what: "idempotency key",
            message: "expected a time to live of at least 1ms".into(),
        });
    }
    Ok(())
}

impl Queue {
    /// Adds `job` unless a job with idempotency key `key` was added within `ttl` of now.
    pub async fn enqueue_unique(&self, job: &Envelope, key: &str, ttl: Duration) -> Result<Enqueued> {
        let new = NewJob { envelope: job.clone(), unique: Some((key.to_owned(), ttl)), ..NewJob::default() };
        Ok(self.enqueue_jobs(vec![new]).await?.pop().expect("one result per job"))
    }
}
