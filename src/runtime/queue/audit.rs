//! The exact-delivery audit: settling a job that carries a sequence number sets that bit of
//! its partition's audit bitmap in the same atomic round trip as its acknowledgement, so the
//! bitmaps say exactly which jobs finished; a bit found already set is a duplicate.

use super::Queue;
use crate::runtime::error::Result;

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
        let (union, sum) = self.audit_bits().await?;
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
        let bits = self.audit_bits().await?.0;
        let bit = |seq: u64| bits.get((seq / 8) as usize).is_some_and(|b| b & (0x80 >> (seq % 8)) != 0);
        Ok((0..produced).filter(|&s| !bit(s)).take(limit).collect())
    }

    /// The union of every partition's audit bitmap, and the sum of their set bits.
    async fn audit_bits(&self) -> Result<(Vec<u8>, u64)> {
        let mut bits: Vec<u8> = Vec::new();
        let mut sum = 0;
        for keys in self.partitions.iter() {
            let key = keys.audit_done();
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
}
