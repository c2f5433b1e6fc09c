//! The exact-delivery audit: settling a job that carries a sequence number sets that bit of
//! its partition's audit bitmap in the same atomic round trip as its acknowledgement, so the
//! bitmaps say exactly which jobs finished; a bit found already set is a duplicate.

use super::Queue;
use super::envelope::SEQ_LIMIT;
use crate::runtime::error::{Error, Result};

/// What the audit bitmaps say (see [`Queue::audit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Audit {
    /// Distinct jobs finished (completed or dead).
    pub finished: u64,
    /// Copies of finished jobs that also finished in another partition: duplicates.
    pub overlap: u64,
}

impl Queue {
    /// The distinct jobs finished (completed or dead), from the audit bitmaps.
    pub async fn audited_done(&self) -> Result<u64> {
        Ok(self.audit().await?.finished)
    }

    /// Whether at least `n` distinct jobs finished: for polling. With several partitions the
    /// summed BITCOUNTs (one round trip each, nothing transferred) bound the distinct count from
    /// above, so the bitmaps themselves are only read once that bound reaches `n`.
    pub async fn finished_at_least(&self, n: u64) -> Result<bool> {
        if self.partitions.len() > 1 && self.audit_bitcount_sum().await? < n {
            return Ok(false);
        }
        Ok(self.audit().await?.finished >= n)
    }

    /// The audit: distinct jobs finished, and copies finished in a second partition. One
    /// partition: its BITCOUNT. Several: the union of their bitmaps, since a job can be in two
    /// partitions (a batch sent again to another partition after its first one failed
    /// mid-reply); both copies ran, and a settle only sees duplicates within its own partition.
    pub async fn audit(&self) -> Result<Audit> {
        if self.partitions.len() == 1 {
            return Ok(Audit { finished: self.audit_bitcount_sum().await?, overlap: 0 });
        }
        let (union, sum) = self.audit_bits(None).await?;
        let finished = union.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
        Ok(Audit { finished, overlap: sum - finished })
    }

    /// Set bits of every partition's audit bitmap, added up.
    async fn audit_bitcount_sum(&self) -> Result<u64> {
        let each =
            self.partitions.iter().map(|k| {
                let key = k.audit_done();
                async move {
                    self.redis.with_conn(async |c| redis::cmd("BITCOUNT").arg(&key).query_async::<u64>(c).await).await
                }
            });
        Ok(futures::future::try_join_all(each).await?.into_iter().sum())
    }

    /// Up to `limit` sequence numbers below `produced` whose audit bit is set in no partition.
    pub async fn missing(&self, produced: u64, limit: usize) -> Result<Vec<u64>> {
        let bits = self.audit_bits(None).await?.0;
        let bit = |seq: u64| bits.get((seq / 8) as usize).is_some_and(|b| b & (0x80 >> (seq % 8)) != 0);
        Ok((0..produced).filter(|&s| !bit(s)).take(limit).collect())
    }

    /// The union of every partition's bitmap of `batch` (`None`: the queue's own audit), and the
    /// sum of their set bits.
    async fn audit_bits(&self, batch: Option<&str>) -> Result<(Vec<u8>, u64)> {
        self.union_of(|keys| keys.audit_of(batch)).await
    }

    /// The union of one bitmap of every partition, and the sum of their set bits.
    async fn union_of(&self, key_of: impl Fn(&super::QueueKeys) -> String) -> Result<(Vec<u8>, u64)> {
        let mut bits: Vec<u8> = Vec::new();
        let mut sum = 0;
        for keys in self.partitions.iter() {
            let key = key_of(keys);
            let part: Vec<u8> = self
                .redis
                .with_conn(async |c| redis::cmd("GET").arg(&key).query_async::<Option<Vec<u8>>>(c).await)
                .await?
                .unwrap_or_default();
            sum += part.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
            if bits.len() < part.len() {
                bits.resize(part.len(), 0);
            }
            bits.iter_mut().zip(&part).for_each(|(b, p)| *b |= p);
        }
        Ok((bits, sum))
    }

    /// Hands out `n` sequence numbers of audited batch `batch`: the first of them (the batch's
    /// numbers run 0, 1, 2, ... in the order they were handed out).
    pub async fn reserve_seqs(&self, batch: &str, n: u64) -> Result<u64> {
        check_batch(batch)?;
        let key = self.keys.audit_size(batch);
        let total: u64 =
            self.redis.with_conn(async |c| redis::cmd("INCRBY").arg(&key).arg(n).query_async(c).await).await?;
        if total > SEQ_LIMIT {
            return Err(Error::InvalidArgument {
                what: "audited batch",
                message: format!("{batch:?} would hold {total} jobs; a batch holds at most 2^32"),
            });
        }
        Ok(total - n)
    }

    /// What audited batch `batch` says now: how many jobs it handed numbers to, how many
    /// finished, and (up to `limit` each) which never finished and which finished more than once.
    pub async fn batch_report(&self, batch: &str, limit: usize) -> Result<BatchReport> {
        check_batch(batch)?;
        let key = self.keys.audit_size(batch);
        let size: Option<u64> =
            self.redis.with_conn(async |c| redis::cmd("GET").arg(&key).query_async(c).await).await?;
        let size = size.unwrap_or(0);
        let (done, _) = self.audit_bits(Some(batch)).await?;
        let (twice, _) = self.union_of(|keys| keys.audit_twice(batch)).await?;
        let bit = |bits: &[u8], seq: u64| bits.get((seq / 8) as usize).is_some_and(|b| b & (0x80 >> (seq % 8)) != 0);
        let finished = (0..size).filter(|&s| bit(&done, s)).count() as u64;
        Ok(BatchReport {
            batch: batch.to_owned(),
            enqueued: size,
            finished,
            unfinished: (0..size).filter(|&s| !bit(&done, s)).take(limit).collect(),
            ran_twice: (0..size).filter(|&s| bit(&twice, s)).take(limit).collect(),
        })
    }

    /// Deletes audited batch `batch`'s bitmaps and counter (its jobs are untouched).
    pub async fn forget_batch(&self, batch: &str) -> Result<()> {
        check_batch(batch)?;
        let size = self.keys.audit_size(batch);
        self.redis.with_conn(async |c| redis::cmd("UNLINK").arg(&size).query_async::<()>(c).await).await?;
        for keys in self.partitions.iter() {
            let (done, twice) = (keys.audit_of(Some(batch)), keys.audit_twice(batch));
            self.redis
                .with_conn(async |c| redis::cmd("UNLINK").arg(&done).arg(&twice).query_async::<()>(c).await)
                .await?;
        }
        Ok(())
    }
}

/// What an audited batch says (see [`Queue::batch_report`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    /// Its name.
    pub batch: String,
    /// Jobs it handed sequence numbers to (0 to `enqueued - 1`).
    pub enqueued: u64,
    /// Of those, distinct jobs that finished (completed, dead or cancelled).
    pub finished: u64,
    /// Sequence numbers that have not finished (yet): still queued, running, or lost.
    pub unfinished: Vec<u64>,
    /// Sequence numbers that finished more than once (at-least-once delivery at work).
    pub ran_twice: Vec<u64>,
}

/// A batch name: 1 to 200 bytes, no control characters.
fn check_batch(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument {
            what: "audited batch",
            message: format!("expected a name of 1 to 200 bytes without control characters, got {name:?}"),
        });
    }
    Ok(())
}
