//! The scheduler's duties, each one script call per partition: trim settled entries off the
//! ready streams (every priority's, in the same call), promote delayed jobs that are due (each
//! to the stream of its priority), and reclaim jobs whose worker stopped renewing its lease.

use super::envelope::JobId;
use super::keys::QueueKeys;
use super::priority::Priority;
use super::{GROUP, Queue, partition, scripts};
use crate::runtime::error::Result;

/// What one [`Queue::reclaim`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Jobs given back to the ready stream.
    pub moved: u64,
    /// Jobs reclaimed too often, moved to the dead letters.
    pub dead: u64,
    /// Pending records whose entry had already been deleted.
    pub gone: u64,
    /// Where the next call continues its scan (`0-0` once the scan wrapped around); with
    /// several partitions, one cursor per partition separated by commas.
    pub cursor: String,
}

impl Queue {
    /// Removes settled entries from the head of every partition's ready stream: every entry
    /// older than the oldest one a worker holds or none has been handed yet. Returns how many
    /// left. Until a trim runs, acknowledged entries still take memory in Redis; the scheduler
    /// trims every few milliseconds, so a deployment that settles jobs without one (library use
    /// of [`Queue::settle`] alone) must call this itself.
    pub async fn trim(&self) -> Result<u64> {
        let each = self.partitions.iter().map(|keys| {
            let streams = keys.ready_all();
            async move {
                self.redis
                    .with_conn(async |c| scripts::TRIM.key(&streams).arg(GROUP).invoke_async::<u64>(c).await)
                    .await
            }
        });
        Ok(futures::future::try_join_all(each).await?.into_iter().sum())
    }

    /// Moves up to `limit` (≤ 1000) delayed jobs whose due time has passed into the ready
    /// stream, in each partition. Returns how many moved.
    pub async fn promote_due(&self, limit: usize) -> Result<u64> {
        let moved =
            futures::future::try_join_all(self.partitions.iter().map(|k| self.promote_due_in(k, limit))).await?;
        Ok(moved.into_iter().sum())
    }

    async fn promote_due_in(&self, keys: &QueueKeys, limit: usize) -> Result<u64> {
        let (delayed, ready, dead, now) = (keys.delayed(), keys.ready(), keys.dead(), self.clock.now_ms());
        let retrying = keys.retrying();
        let limit = limit.min(1000);
        self.redis
            .with_conn(async |c| {
                scripts::PROMOTE
                    .key(&delayed)
                    .key(&ready)
                    .key(&dead)
                    .key(&retrying)
                    .key(keys.ready_at(Priority::High))
                    .key(keys.ready_at(Priority::Low))
                    .arg(now)
                    .arg(limit)
                    .invoke_async(c)
                    .await
            })
            .await
    }

    /// Gives back up to `limit` jobs (per partition) whose worker has not renewed its lease,
    /// scanning each partition's pending list from its part of `cursor` (start with `"0-0"`;
    /// then pass back the cursor the previous call returned).
    pub async fn reclaim(&self, cursor: &str, limit: usize) -> Result<Reclaimed> {
        let cursors = partition::split_cursor(cursor, self.partition_count());
        let each = self
            .partitions
            .iter()
            .zip(&cursors)
            .enumerate()
            .map(|(p, (keys, cursor))| self.reclaim_in(p as u16, keys, cursor, limit));
        let each = futures::future::try_join_all(each).await?;
        Ok(Reclaimed {
            moved: each.iter().map(|r| r.moved).sum(),
            dead: each.iter().map(|r| r.dead).sum(),
            gone: each.iter().map(|r| r.gone).sum(),
            cursor: partition::join_cursor(each.iter().map(|r| r.cursor.as_str())),
        })
    }

    async fn reclaim_in(&self, p: u16, keys: &QueueKeys, cursor: &str, limit: usize) -> Result<Reclaimed> {
        let (ready, dead, audit, events) = (keys.ready(), keys.dead(), keys.audit_done(), keys.events());
        let batch_prefix = keys.audit_of(Some(""));
        let now = self.clock.now_ms();
        let lease_ms = self.options.lease.as_millis() as u64;
        let cursors = split_levels(cursor);
        let (moved, dead_n, gone, normal, high, low): (u64, u64, u64, String, String, String) = self
            .redis
            .with_conn(async |c| {
                scripts::RECLAIM
                    .key(&ready)
                    .key(&dead)
                    .key(&audit)
                    .key(&events)
                    .key(keys.ready_at(Priority::High))
                    .key(keys.ready_at(Priority::Low))
                    .arg(GROUP)
                    .arg(lease_ms)
                    .arg(limit)
                    .arg("reclaimer")
                    .arg(self.options.max_reclaims)
                    .arg(&cursors[1])
                    .arg(if self.options.audit { "1" } else { "0" })
                    .arg(JobId::suffix(p))
                    .arg(keys.job_prefix())
                    .arg(&batch_prefix)
                    .arg(now)
                    .arg(super::track::EVENTS_KEPT)
                    .arg(&cursors[0])
                    .arg(&cursors[2])
                    .arg(JobId::suffix_at(p, Priority::High))
                    .arg(JobId::suffix_at(p, Priority::Low))
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(Reclaimed { moved, dead: dead_n, gone, cursor: join_levels(&normal, &high, &low) })
    }
}

/// One partition's reclaim cursor as one cursor per priority (high, normal, low): the normal
/// stream's alone while the others are at their start (so a queue without priorities keeps
/// the cursor of before), else `normal;high;low`.
fn split_levels(cursor: &str) -> [String; 3] {
    let mut parts = cursor.split(';').map(str::to_owned);
    let normal = parts.next().filter(|c| !c.is_empty()).unwrap_or_else(|| "0-0".into());
    let high = parts.next().unwrap_or_else(|| "0-0".into());
    let low = parts.next().unwrap_or_else(|| "0-0".into());
    [high, normal, low]
}

/// The inverse of [`split_levels`].
fn join_levels(normal: &str, high: &str, low: &str) -> String {
    if high == "0-0" && low == "0-0" { normal.to_owned() } else { format!("{normal};{high};{low}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_holds_every_priority_and_is_as_before_without_them() {
        assert_eq!(split_levels("0-0"), ["0-0", "0-0", "0-0"]);
        assert_eq!(join_levels("5-1", "0-0", "0-0"), "5-1");
        assert_eq!(split_levels(&join_levels("5-1", "7-0", "0-0")), ["7-0", "5-1", "0-0"]);
    }
}
