//! The exact-delivery audit: settling a job that carries a sequence number sets that bit of
//! its partition's audit bitmap in the same atomic round trip as its acknowledgement, so the
//! bitmaps say exactly which jobs finished; a bit found already set is a duplicate.
//!
//! A settle writes its bits as [`AuditBits`]: one `BITFIELD` field per run of up to 63
//! consecutive sequence numbers rather than one per job, so a batch of 200 consecutive jobs
//! costs Redis 4 fields to parse and run instead of 200.

use super::Queue;
use super::envelope::SEQ_LIMIT;
use crate::runtime::error::{Error, Result};
use redis::Value;

/// Most bits one `BITFIELD` field sets (`u63` is the widest unsigned type Redis takes).
const FIELD_BITS: u8 = 63;

/// The audit bits one settle sets in one bitmap (see the module docs).
#[derive(Debug, Default, PartialEq)]
pub(super) struct AuditBits {
    /// Runs of consecutive sequence numbers: (first, how many), at most [`FIELD_BITS`] each.
    fields: Vec<(u32, u8)>,
    /// Numbers the batch holds more than once (copies of one job settled together): all but
    /// the first copy of each, duplicates whatever the bitmap says.
    repeated: Vec<u32>,
}

impl AuditBits {
    /// The bits of `seqs` (any order, repeats allowed).
    pub(super) fn of(mut seqs: Vec<u32>) -> Self {
        seqs.sort_unstable();
        let mut bits = Self::default();
        let mut last: Option<u32> = None;
        for seq in seqs {
            if last == Some(seq) {
                bits.repeated.push(seq);
                continue;
            }
            last = Some(seq);
            match bits.fields.last_mut() {
                Some((first, n)) if *n < FIELD_BITS && u64::from(*first) + u64::from(*n) == u64::from(seq) => *n += 1,
                _ => bits.fields.push((seq, 1)),
            }
        }
        bits
    }

    /// The `BITFIELD` setting every bit of `key`, each field all ones; its reply holds each
    /// field's old value.
    pub(super) fn command(&self, key: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("BITFIELD");
        cmd.arg(key);
        for &(first, n) in &self.fields {
            cmd.arg("SET").arg(format!("u{n}")).arg(first).arg((1u64 << n) - 1);
        }
        cmd
    }

    /// The numbers that had finished before, from the `BITFIELD`'s reply (a field's old value
    /// holds its first number in its highest bit), and the batch's own repeats.
    pub(super) fn already_set(&self, reply: &[Value]) -> Vec<u32> {
        let mut again = self.repeated.clone();
        for (&(first, n), old) in self.fields.iter().zip(reply) {
            // 0, the common case: none of the field's jobs had finished before.
            let Value::Int(old @ 1..) = *old else { continue };
            let old = old as u64;
            again.extend((0..n).filter(|i| old >> (n - 1 - i) & 1 == 1).map(|i| first + u32::from(i)));
        }
        again
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(bits: &AuditBits) -> Vec<String> {
        bits.command("k")
            .args_iter()
            .skip(2)
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn consecutive_numbers_share_a_field_of_at_most_63_bits() {
        let bits = AuditBits::of((0..200).rev().collect());
        assert_eq!(bits.fields, vec![(0, 63), (63, 63), (126, 63), (189, 11)]);
        assert_eq!(&fields(&bits)[..4], ["SET", "u63", "0", &i64::MAX.to_string()]);
        assert_eq!(&fields(&bits)[12..], ["SET", "u11", "189", "2047"]);
        // Gaps start a new field; a number held twice is a repeat, not a second bit.
        let bits = AuditBits::of(vec![7, 3, 4, 4, 9, 8, u32::MAX]);
        assert_eq!(bits.fields, vec![(3, 2), (7, 3), (u32::MAX, 1)]);
        assert_eq!(bits.repeated, vec![4]);
    }

    #[test]
    fn an_old_value_names_the_numbers_that_had_finished_before() {
        let bits = AuditBits::of(vec![10, 11, 12, 13, 20, 20]);
        // 13 was set (lowest bit of the 4-bit field at 10), and 10 (its highest); 20 was not.
        let again = bits.already_set(&[Value::Int(0b1001), Value::Int(0)]);
        assert_eq!(again, vec![20, 10, 13]);
    }
}
