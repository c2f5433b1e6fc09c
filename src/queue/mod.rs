//! The queue: how jobs live in Redis and every operation on them.
//!
//! One Redis Stream per queue holds the jobs, payload inline; a consumer group hands each
//! entry to one worker and its pending-entries list records who holds what and for how long.
//! Settling a job acknowledges its entry in one atomic round trip with whatever else the
//! outcome needs: failed jobs move to the delayed sorted set with their next due time (retry
//! with backoff) or to the dead-letter stream after their last attempt. Acknowledged entries
//! leave the stream in bulk: [`Queue::trim`] (the scheduler's, every few milliseconds) cuts
//! the stream's head up to the oldest entry still held or not yet delivered, far cheaper for
//! Redis than deleting entries one by one. Delayed jobs wait in the sorted set until
//! [`Queue::promote_due`] moves them back. Jobs whose worker stopped renewing its lease come
//! back through [`Queue::reclaim`].
//!
//! Delivery is at-least-once. With auditing on, settling a job also sets bit `seq` of the
//! audit bitmap, so a run can tell exactly which jobs finished, and how many finished twice.
//!
//! A queue may have several partitions (see [`partition`]): each is a full set of the keys
//! above under a hash tag of its own, so on Redis Cluster the partitions spread over masters.
//! A job stays in the partition it was enqueued to for its whole life (retries, reclaims, dead
//! letters, audit bit), so every script and pipeline still touches one slot, and the queue-wide
//! figures (depth, audit) are sums over partitions.

mod backoff;
mod job;
mod keys;
pub mod partition;
mod scripts;
mod slot;
mod unique;

pub use backoff::Backoff;
pub use job::{DecodeError, Job, JobKind, SEQ_LIMIT};
pub use keys::{GROUP, QueueKeys};
pub use unique::{Enqueued, MAX_KEY_BYTES};

use crate::clock::SharedClock;
use crate::connection::{Conn, Redis};
use crate::error::Result;
use keys::{JOB_FIELD, REASON_FIELD};
use partition::{Health, Rotation, group_by_partition};
use redis::Value;
use std::sync::Arc;
use std::time::Duration;

/// How a queue treats its jobs.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Every key starts with `{prefix:queue}`.
    pub prefix: String,
    /// A job whose worker has not renewed its hold for this long is given to another worker.
    pub lease: Duration,
    /// Attempts before a failing job goes to the dead letters (1 = no retry).
    pub max_attempts: u16,
    /// Times a job may be reclaimed from a dead or stalled worker before it is declared dead
    /// (a job that crashes every worker that runs it must not circulate forever).
    pub max_reclaims: u32,
    pub backoff: Backoff,
    /// Record every settled job in the audit bitmap (benchmarks always do).
    pub audit: bool,
    /// Partitions of the queue, each under a hash tag of its own (1 = unpartitioned).
    pub partitions: u16,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            prefix: "conveyor".into(),
            lease: Duration::from_secs(30),
            max_attempts: 3,
            max_reclaims: 5,
            backoff: Backoff::default(),
            audit: true,
            partitions: 1,
        }
    }
}

/// A job handed to a worker by [`Queue::claim`].
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Stream entry id: what acknowledging and renewing refer to.
    pub entry_id: String,
    /// The decoded job, or why it could not be decoded (a poison entry).
    pub job: Result<Job, DecodeError>,
    /// The encoded job as stored, moved unchanged to the dead letters if it must die.
    pub raw: Vec<u8>,
    /// The partition whose stream the entry is in (0 when the queue is not partitioned).
    pub partition: u16,
}

/// How a worker finished a claimed job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    Failed(String),
}

/// What the audit bitmaps say (see [`Queue::audit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Audit {
    /// Distinct jobs finished (completed or dead).
    pub finished: u64,
    /// Copies of finished jobs that also finished in another partition: duplicates.
    pub overlap: u64,
}

/// What one [`Queue::settle`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    pub completed: u64,
    pub retried: u64,
    pub dead: u64,
    /// Jobs whose audit bit was already set: they had finished before (a duplicate delivery).
    pub duplicates: u64,
}

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

/// How many jobs are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    /// In the stream and not yet handed to a worker.
    pub waiting: u64,
    /// Handed to a worker and not yet settled.
    pub in_flight: u64,
    /// Waiting for their due time (delayed jobs and retries).
    pub delayed: u64,
    pub dead: u64,
}

/// One queue on one Redis deployment; cheap to clone.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Partition 0's keys: the queue's name, run counter and published statistics.
    keys: QueueKeys,
    /// Every partition's keys, partition 0 first.
    partitions: Arc<[QueueKeys]>,
    redis: Redis,
    options: QueueOptions,
    clock: SharedClock,
    /// Which partition the next enqueued batch goes to (shared by clones in this process).
    enqueue_to: Rotation,
    /// Which partition the next claim looks at first.
    claim_from: Rotation,
    /// Partitions that failed a request recently (their master is down): passed over a while.
    health: Health,
}

impl Queue {
    pub fn new(redis: Redis, name: &str, options: QueueOptions, clock: SharedClock) -> Self {
        let partitions: Arc<[QueueKeys]> = {
            let n = options.partitions.max(1);
            (0..n).map(|p| QueueKeys::partition(&options.prefix, name, p, n)).collect()
        };
        Self {
            keys: partitions[0].clone(),
            partitions,
            redis,
            options,
            clock,
            enqueue_to: Rotation::default(),
            claim_from: Rotation::default(),
            health: Health::default(),
        }
    }

    /// Partition 0's keys (the only ones of an unpartitioned queue).
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// Every partition's keys, partition 0 first.
    pub fn partition_keys(&self) -> &[QueueKeys] {
        &self.partitions
    }

    fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Creates the stream and its consumer group of every partition if they do not exist yet.
    pub async fn ensure_group(&self) -> Result<()> {
        for keys in self.partitions.iter() {
            self.ensure_group_in(keys).await?;
        }
        Ok(())
    }

    async fn ensure_group_in(&self, keys: &QueueKeys) -> Result<()> {
        let ready = keys.ready();
        let created = self
            .redis
            .with_conn(async |c| {
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&ready)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async::<()>(c)
                    .await
            })
            .await;
        match created {
            Err(crate::Error::Redis(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Deletes every key of the queue, in every partition (a benchmark run starts from nothing).
    pub async fn reset(&self) -> Result<()> {
        for keys in self.partitions.iter() {
            self.reset_in(keys).await?;
        }
        Ok(())
    }

    async fn reset_in(&self, keys: &QueueKeys) -> Result<()> {
        let (pattern, ready) = (keys.pattern(), keys.ready());
        self.redis
            .with_conn(async |c| {
                // Every key of the queue shares one hash tag, so one slot: on a cluster the
                // scan goes to the master of that slot.
                let keys = c.scan_slot(&pattern, &ready).await?;
                for chunk in keys.chunks(1000) {
                    redis::cmd("UNLINK").arg(chunk).query_async::<()>(c).await?;
                }
                Ok(())
            })
            .await
    }

    /// Adds one job to the ready stream.
    pub async fn enqueue(&self, job: &Job) -> Result<()> {
        self.enqueue_batch(std::slice::from_ref(job)).await
    }

    /// Adds jobs to the ready stream in one pipelined round trip. With several partitions, each
    /// call goes to the next partition in turn (round-robin by batch: one slot per round trip),
    /// passing over a partition that failed recently; a failed call marks its partition, so the
    /// caller's retry goes to another one.
    pub async fn enqueue_batch(&self, jobs: &[Job]) -> Result<()> {
        let n = self.partition_count();
        if n == 1 {
            return self.enqueue_batch_to(0, jobs).await;
        }
        let p = self.health.first_usable(self.enqueue_to.next(n), n);
        let sent = self.enqueue_batch_to(p as u16, jobs).await;
        match &sent {
            Ok(()) => self.health.answered(p),
            Err(_) => self.health.failed(p),
        }
        sent
    }

    /// Adds `job` to the partition that `key` maps to: jobs with the same key stay in one
    /// partition, so they are handed out in the order they were enqueued.
    pub async fn enqueue_keyed(&self, job: &Job, key: &str) -> Result<()> {
        let p = partition::of_key(key, self.partition_count());
        self.enqueue_batch_to(p, std::slice::from_ref(job)).await
    }

    /// Adds jobs to the ready stream of partition `p` in one pipelined round trip.
    pub async fn enqueue_batch_to(&self, p: u16, jobs: &[Job]) -> Result<()> {
        let ready = self.partition(p)?.ready();
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.cmd("XADD").arg(&ready).arg("*").arg(JOB_FIELD).arg(job.encode()).ignore();
        }
        self.redis.with_conn(async |c| pipe.query_async::<()>(c).await).await
    }

    /// Adds a job that must not run before `due_ms` (ms since the epoch).
    pub async fn schedule(&self, job: &Job, due_ms: u64) -> Result<()> {
        let delayed = self.keys.delayed();
        self.redis
            .with_conn(async |c| {
                redis::cmd("ZADD").arg(&delayed).arg(due_ms).arg(job.encode()).query_async::<()>(c).await
            })
            .await
    }

    /// Claims up to `count` jobs for `consumer`, waiting up to `block` for the first one.
    /// Runs on a dedicated connection: a blocking read holds up its connection.
    ///
    /// With several partitions, every claim starts at the next partition in turn and takes the
    /// first partition that has jobs (one non-blocking read each); only when every partition is
    /// empty does it block, on the partition it started at. So partitions are served fairly and
    /// a busy partition never waits behind an empty one. (A read cannot span partitions: on a
    /// cluster their streams are on different nodes.) A partition that fails (its master is
    /// down) is passed over for a while; the claim fails only when every partition it tried did.
    pub async fn claim(&self, conn: &mut Conn, consumer: &str, count: usize, block: Duration) -> Result<Vec<Claimed>> {
        let n = self.partition_count();
        if n == 1 {
            return self.claim_in(0, conn, consumer, count, Some(block)).await;
        }
        let start = self.claim_from.next(n);
        let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        let usable: Vec<usize> = order.iter().copied().filter(|&p| self.health.usable(p)).collect();
        let mut last_error = None;
        let mut empty = None;
        for p in if usable.is_empty() { order } else { usable } {
            match self.claim_in(p as u16, conn, consumer, count, None).await {
                Ok(claimed) if !claimed.is_empty() => {
                    self.health.answered(p);
                    return Ok(claimed);
                }
                Ok(_) => {
                    self.health.answered(p);
                    empty.get_or_insert(p);
                }
                Err(e) => {
                    self.health.failed(p);
                    last_error = Some(e);
                }
            }
        }
        match (empty, last_error) {
            // Every partition that answered is empty: wait on the first of them.
            (Some(p), _) => self.claim_in(p as u16, conn, consumer, count, Some(block)).await,
            (None, Some(e)) => Err(e),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// One XREADGROUP on partition `p`, blocking up to `block` when given.
    async fn claim_in(
        &self,
        p: u16,
        conn: &mut Conn,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Claimed>> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg(GROUP).arg(consumer).arg("COUNT").arg(count);
        if let Some(block) = block {
            read.arg("BLOCK").arg(block.as_micros().div_ceil(1000).max(1) as u64); // BLOCK 0 would wait forever
        }
        let reply: Value = read.arg("STREAMS").arg(self.partition(p)?.ready()).arg(">").query_async(conn).await?;
        Ok(parse_read_reply(reply, p))
    }

    /// The keys of partition `p`; an error for a partition the queue does not have (a claimed
    /// job is always of one of ours).
    fn partition(&self, p: u16) -> Result<&QueueKeys> {
        self.partitions.get(usize::from(p)).ok_or_else(|| {
            crate::Error::Other(format!(
                "queue {} has {} partition(s), not {p}",
                self.keys.queue(),
                self.partitions.len()
            ))
        })
    }

    /// Settles a batch of claimed jobs in one atomic round trip: completed jobs are
    /// acknowledged (the next [`Queue::trim`] removes their entries); failed jobs are scheduled
    /// for a retry with backoff, or moved to the dead letters after their last attempt;
    /// undecodable entries go to the dead letters with the reason.
    ///
    /// A batch that spans partitions (a claim reads one, so this is rare) is settled in one
    /// round trip per partition, at the same time; each is atomic on its own.
    pub async fn settle(&self, batch: &[(Claimed, Outcome)]) -> Result<Settled> {
        let groups = group_by_partition(batch, |(c, _)| c.partition);
        let settled = futures::future::try_join_all(groups.iter().map(|(p, jobs)| self.settle_in(*p, jobs))).await?;
        Ok(settled.into_iter().fold(Settled::default(), |a, b| Settled {
            completed: a.completed + b.completed,
            retried: a.retried + b.retried,
            dead: a.dead + b.dead,
            duplicates: a.duplicates + b.duplicates,
        }))
    }

    async fn settle_in(&self, p: u16, batch: &[&(Claimed, Outcome)]) -> Result<Settled> {
        if batch.is_empty() {
            return Ok(Settled::default());
        }
        let keys = self.partition(p)?;
        let (ready, delayed, dead) = (keys.ready(), keys.delayed(), keys.dead());
        let now_ms = self.clock.now_ms();
        let mut rng = rand::rng();
        let mut settled = Settled::default();
        let mut audit_bits = redis::cmd("BITFIELD");
        audit_bits.arg(keys.audit_done());
        let mut audited = 0usize;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let ids: Vec<&str> = batch.iter().map(|(c, _)| c.entry_id.as_str()).collect();
        pipe.cmd("XACK").arg(&ready).arg(GROUP).arg(&ids).ignore();
        for (claimed, outcome) in batch {
            let finished_seq = match (&claimed.job, outcome) {
                (Ok(job), Outcome::Completed) => {
                    settled.completed += 1;
                    Some(job.seq)
                }
                (Ok(job), Outcome::Failed(reason)) => {
                    if job.attempt + 1 < self.options.max_attempts {
                        let mut next = job.clone();
                        next.attempt += 1;
                        let due = now_ms + self.options.backoff.delay(job.attempt, &mut rng).as_millis() as u64;
                        pipe.cmd("ZADD").arg(&delayed).arg(due).arg(next.encode()).ignore();
                        settled.retried += 1;
                        None
                    } else {
                        let why = format!("failed {} times; last error: {reason}", job.attempt + 1);
                        pipe.cmd("XADD").arg(&dead).arg("*").arg(JOB_FIELD).arg(&claimed.raw);
                        pipe.arg(REASON_FIELD).arg(why).ignore();
                        settled.dead += 1;
                        Some(job.seq)
                    }
                }
                (Err(e), _) => {
                    pipe.cmd("XADD").arg(&dead).arg("*").arg(JOB_FIELD).arg(&claimed.raw);
                    pipe.arg(REASON_FIELD).arg(e.to_string()).ignore();
                    settled.dead += 1;
                    None
                }
            };
            if let (Some(seq), true) = (finished_seq, self.options.audit) {
                audit_bits.arg("SET").arg("u1").arg(seq).arg(1);
                audited += 1;
            }
        }
        if audited > 0 {
            pipe.add_command(audit_bits);
        }
        let reply: Value = self.redis.with_conn(async |c| pipe.query_async(c).await).await?;
        if audited > 0 {
            settled.duplicates = count_set_bits(reply);
        }
        Ok(settled)
    }

    /// Removes settled entries from the head of every partition's ready stream: every entry
    /// older than the oldest one a worker holds or none has been handed yet. Returns how many
    /// left. Until a trim runs, acknowledged entries still take memory in Redis; the scheduler
    /// trims every few milliseconds, so a deployment that settles jobs without one (library use
    /// of [`Queue::settle`] alone) must call this itself.
    pub async fn trim(&self) -> Result<u64> {
        let each = self.partitions.iter().map(|keys| {
            let ready = keys.ready();
            async move {
                self.redis.with_conn(async |c| scripts::TRIM.key(&ready).arg(GROUP).invoke_async::<u64>(c).await).await
            }
        });
        Ok(futures::future::try_join_all(each).await?.into_iter().sum())
    }

    /// Resets the idle time of jobs `consumer` still runs, so they are not reclaimed.
    pub async fn renew(&self, consumer: &str, held: &[Claimed]) -> Result<()> {
        for (p, claimed) in group_by_partition(held, |c| c.partition) {
            let ids: Vec<&str> = claimed.iter().map(|c| c.entry_id.as_str()).collect();
            self.renew_in(p, consumer, &ids).await?;
        }
        Ok(())
    }

    async fn renew_in(&self, p: u16, consumer: &str, entry_ids: &[&str]) -> Result<()> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let ready = self.partition(p)?.ready();
        self.redis
            .with_conn(async |c| {
                redis::cmd("XCLAIM")
                    .arg(&ready)
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(0)
                    .arg(entry_ids)
                    .arg("JUSTID")
                    .query_async::<()>(c)
                    .await
            })
            .await
    }

    /// Moves up to `limit` (≤ 1000) delayed jobs whose due time has passed into the ready
    /// stream, in each partition. Returns how many moved.
    pub async fn promote_due(&self, limit: usize) -> Result<u64> {
        let moved =
            futures::future::try_join_all(self.partitions.iter().map(|k| self.promote_due_in(k, limit))).await?;
        Ok(moved.into_iter().sum())
    }

    async fn promote_due_in(&self, keys: &QueueKeys, limit: usize) -> Result<u64> {
        let (delayed, ready, now) = (keys.delayed(), keys.ready(), self.clock.now_ms());
        let limit = limit.min(1000);
        self.redis
            .with_conn(async |c| {
                scripts::PROMOTE.key(&delayed).key(&ready).arg(now).arg(limit).arg(JOB_FIELD).invoke_async(c).await
            })
            .await
    }

    /// Gives back up to `limit` jobs (per partition) whose worker has not renewed its lease,
    /// scanning each partition's pending list from its part of `cursor` (start with `"0-0"`;
    /// then pass back the cursor the previous call returned).
    pub async fn reclaim(&self, cursor: &str, limit: usize) -> Result<Reclaimed> {
        let cursors = partition::split_cursor(cursor, self.partition_count());
        let each = self.partitions.iter().zip(&cursors).map(|(keys, cursor)| self.reclaim_in(keys, cursor, limit));
        let each = futures::future::try_join_all(each).await?;
        Ok(Reclaimed {
            moved: each.iter().map(|r| r.moved).sum(),
            dead: each.iter().map(|r| r.dead).sum(),
            gone: each.iter().map(|r| r.gone).sum(),
            cursor: partition::join_cursor(each.iter().map(|r| r.cursor.as_str())),
        })
    }

    async fn reclaim_in(&self, keys: &QueueKeys, cursor: &str, limit: usize) -> Result<Reclaimed> {
        let (ready, dead, audit) = (keys.ready(), keys.dead(), keys.audit_done());
        let lease_ms = self.options.lease.as_millis() as u64;
        let (moved, dead_n, gone, cursor): (u64, u64, u64, String) = self
            .redis
            .with_conn(async |c| {
                scripts::RECLAIM
                    .key(&ready)
                    .key(&dead)
                    .key(&audit)
                    .arg(GROUP)
                    .arg(lease_ms)
                    .arg(limit)
                    .arg("reclaimer")
                    .arg(self.options.max_reclaims)
                    .arg(cursor)
                    .arg(if self.options.audit { "1" } else { "0" })
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(Reclaimed { moved, dead: dead_n, gone, cursor })
    }

    /// How many jobs are in each state, summed over partitions (one round trip each).
    pub async fn depth(&self) -> Result<Depth> {
        let each = futures::future::try_join_all(self.partitions.iter().map(|k| self.depth_in(k))).await?;
        Ok(each.into_iter().fold(Depth::default(), |a, b| Depth {
            waiting: a.waiting + b.waiting,
            in_flight: a.in_flight + b.in_flight,
            delayed: a.delayed + b.delayed,
            dead: a.dead + b.dead,
        }))
    }

    async fn depth_in(&self, keys: &QueueKeys) -> Result<Depth> {
        let (ready, delayed, dead) = (keys.ready(), keys.delayed(), keys.dead());
        let (len, groups, delayed_n, dead_n): (u64, Value, u64, u64) = self
            .redis
            .with_conn(async |c| {
                redis::pipe()
                    .cmd("XLEN")
                    .arg(&ready)
                    .cmd("XINFO")
                    .arg("GROUPS")
                    .arg(&ready)
                    .cmd("ZCARD")
                    .arg(&delayed)
                    .cmd("XLEN")
                    .arg(&dead)
                    .query_async(c)
                    .await
            })
            .await?;
        // XINFO GROUPS errors only when the stream is missing: then nothing is waiting.
        let group = GroupInfo::of(&groups).unwrap_or_default();
        // Settled entries stay in the stream until the next trim, so the stream's length
        // overstates what waits; the group's lag (Redis 7: entries added but not yet read) is
        // exact. Redis 6.2 has no lag: the length less what is pending is the bound left.
        let waiting = group.lag.unwrap_or_else(|| len.saturating_sub(group.pending));
        Ok(Depth { waiting, in_flight: group.pending, delayed: delayed_n, dead: dead_n })
    }

    /// How long the oldest job not yet handed to a worker has waited (zero when none waits):
    /// the first entry after the group's last-delivered id, whose id is the time Redis added
    /// it (ms), against Redis's own clock (`TIME`), so client clock skew does not matter.
    /// With several partitions: the oldest over all of them.
    pub async fn oldest_waiting_age(&self) -> Result<Duration> {
        let each = futures::future::try_join_all(self.partitions.iter().map(|k| self.oldest_waiting_age_in(k))).await?;
        Ok(each.into_iter().max().unwrap_or_default())
    }

    async fn oldest_waiting_age_in(&self, keys: &QueueKeys) -> Result<Duration> {
        let ready = keys.ready();
        let (groups, (secs, micros)): (Value, (u64, u64)) = self
            .redis
            .with_conn(async |c| redis::pipe().cmd("XINFO").arg("GROUPS").arg(&ready).cmd("TIME").query_async(c).await)
            .await?;
        let last_delivered = GroupInfo::of(&groups).and_then(|g| g.last_delivered);
        let start = format!("({}", last_delivered.unwrap_or_else(|| "0-0".into()));
        let first: Value = self
            .redis
            .with_conn(async |c| {
                redis::cmd("XRANGE").arg(&ready).arg(&start).arg("+").arg("COUNT").arg(1).query_async(c).await
            })
            .await?;
        let added_ms = match &first {
            Value::Array(entries) => match entries.first() {
                Some(Value::Array(entry)) => entry.first().and_then(text),
                _ => None,
            },
            _ => None,
        }
        .and_then(|id| id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()));
        let now_ms = secs * 1000 + micros / 1000;
        Ok(added_ms.map_or(Duration::ZERO, |ms| Duration::from_millis(now_ms.saturating_sub(ms))))
    }

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

    /// Dead letters as `(job, reason)`, oldest first within each partition (partition 0
    /// first), at most `limit`.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<(Vec<u8>, String)>> {
        let mut out = Vec::new();
        for keys in self.partitions.iter() {
            if out.len() >= limit {
                break;
            }
            out.extend(self.dead_letters_in(keys, limit - out.len()).await?);
        }
        Ok(out)
    }

    async fn dead_letters_in(&self, keys: &QueueKeys, limit: usize) -> Result<Vec<(Vec<u8>, String)>> {
        let dead = keys.dead();
        let reply: Value = self
            .redis
            .with_conn(async |c| {
                redis::cmd("XRANGE").arg(&dead).arg("-").arg("+").arg("COUNT").arg(limit).query_async(c).await
            })
            .await?;
        let mut out = Vec::new();
        if let Value::Array(entries) = reply {
            for entry in entries {
                let fields = entry_fields(entry);
                let job = field(&fields, JOB_FIELD).unwrap_or_default();
                let reason = String::from_utf8_lossy(&field(&fields, REASON_FIELD).unwrap_or_default()).into_owned();
                out.push((job, reason));
            }
        }
        Ok(out)
    }

    /// Starts a new benchmark run on this queue and returns its number.
    pub async fn start_run(&self) -> Result<u32> {
        let key = self.keys.run();
        self.redis.with_conn(async |c| redis::cmd("INCR").arg(&key).query_async(c).await).await
    }

    /// Stores `instance`'s encoded statistics for `run` (worker processes publish theirs).
    pub async fn publish_stats(&self, run: u32, instance: &str, stats: &[u8]) -> Result<()> {
        let key = self.keys.stats(run);
        self.redis
            .with_conn(async |c| {
                redis::pipe()
                    .cmd("HSET")
                    .arg(&key)
                    .arg(instance)
                    .arg(stats)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(7 * 24 * 3600)
                    .ignore()
                    .query_async::<()>(c)
                    .await
            })
            .await
    }

    /// Every worker process's published statistics for `run`, by instance name.
    pub async fn published_stats(&self, run: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let key = self.keys.stats(run);
        self.redis.with_conn(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await).await
    }
}

/// XREADGROUP's reply: `[[stream, [[id, [field, value, ...]], ...]]]`, or nil on timeout.
fn parse_read_reply(reply: Value, partition: u16) -> Vec<Claimed> {
    let Value::Array(streams) = reply else { return Vec::new() };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(mut parts) = stream else { continue };
        let Some(Value::Array(entries)) = parts.pop() else { continue };
        out.reserve(entries.len());
        for entry in entries {
            let Value::Array(mut pair) = entry else { continue };
            if pair.len() != 2 {
                continue;
            }
            let fields = pair.pop().map(entry_fields_of).unwrap_or_default();
            let entry_id = match pair.pop() {
                Some(Value::BulkString(id)) => String::from_utf8_lossy(&id).into_owned(),
                _ => continue,
            };
            let raw = field(&fields, JOB_FIELD);
            let job = match &raw {
                Some(bytes) => Job::decode(bytes),
                None => Err(DecodeError("entry has no job field".into())),
            };
            out.push(Claimed { entry_id, job, raw: raw.unwrap_or_default(), partition });
        }
    }
    out
}

/// What `XINFO GROUPS` says of conveyor's consumer group on one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GroupInfo {
    /// Entries handed to a worker and not yet acknowledged.
    pending: u64,
    /// The id of the last entry handed to a worker.
    last_delivered: Option<String>,
    /// Entries added and not yet handed to a worker; Redis 7 and later, and only while Redis
    /// can count it (no entry deleted past the group's position).
    lag: Option<u64>,
}

impl GroupInfo {
    /// Conveyor's group in an `XINFO GROUPS` reply: each group is a flat `[name, value, ...]`
    /// list (RESP2) or a map (RESP3). `None` when the group is not there.
    fn of(groups: &Value) -> Option<Self> {
        let Value::Array(groups) = groups else { return None };
        groups.iter().find_map(|g| {
            let fields: Vec<(Option<String>, &Value)> = match g {
                Value::Array(kv) => kv.chunks_exact(2).map(|p| (text(&p[0]), &p[1])).collect(),
                Value::Map(kv) => kv.iter().map(|(k, v)| (text(k), v)).collect(),
                _ => return None,
            };
            let get = |name: &str| fields.iter().find(|(k, _)| k.as_deref() == Some(name)).map(|(_, v)| *v);
            if get("name").and_then(text).as_deref() != Some(GROUP) {
                return None;
            }
            let int = |v: &Value| match v {
                Value::Int(n) => u64::try_from(*n).ok(),
                _ => None,
            };
            Some(Self {
                pending: get("pending").and_then(int).unwrap_or(0),
                last_delivered: get("last-delivered-id").and_then(text),
                lag: get("lag").and_then(int),
            })
        })
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `[id, [field, value, ...]]` → the field/value list.
fn entry_fields(entry: Value) -> Vec<Value> {
    match entry {
        Value::Array(mut pair) if pair.len() == 2 => pair.pop().map(entry_fields_of).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn entry_fields_of(fields: Value) -> Vec<Value> {
    match fields {
        Value::Array(f) => f,
        _ => Vec::new(),
    }
}

fn field(fields: &[Value], name: &str) -> Option<Vec<u8>> {
    fields.chunks_exact(2).find_map(|kv| match kv {
        [Value::BulkString(k), Value::BulkString(v)] if k == name.as_bytes() => Some(v.clone()),
        _ => None,
    })
}

/// The EXEC reply's last element is BITFIELD's list of previous bit values.
fn count_set_bits(reply: Value) -> u64 {
    let last = match reply {
        Value::Array(mut items) => items.pop(),
        other => Some(other),
    };
    match last {
        Some(Value::Array(bits)) => bits.iter().filter(|b| matches!(b, Value::Int(1))).count() as u64,
        _ => 0,
    }
}
