//! The queue: how jobs live in Redis and every operation on them.
//!
//! One Redis Stream per queue holds the jobs, payload inline, one entry per job in the wire
//! format of [`envelope`]; a consumer group hands each entry to one worker and its
//! pending-entries list records who holds what and for how long. Settling a job acknowledges
//! its entry in one atomic round trip with whatever else the outcome needs: failed jobs move to
//! the delayed sorted set with their next due time (retry with backoff) or to the dead-letter
//! stream after their last attempt. Acknowledged entries leave the stream in bulk:
//! [`Queue::trim`] (the scheduler's, every few milliseconds) cuts the stream's head up to the
//! oldest entry still held or not yet delivered, far cheaper for Redis than deleting entries
//! one by one. Delayed jobs wait in the sorted set until [`Queue::promote_due`] moves them
//! back. Jobs whose worker stopped renewing its lease come back through [`Queue::reclaim`].
//!
//! Delivery is at-least-once. A job that carries an audit sequence number (benchmark runs,
//! audited batches) also sets its bit of the audit bitmap when it settles, in the same atomic
//! round trip, so a run can tell exactly which jobs finished, and how many finished twice.
//!
//! A queue may have several partitions (see [`partition`]): each is a full set of the keys
//! above under a hash tag of its own, so on Redis Cluster the partitions spread over masters.
//! A job stays in the partition it was enqueued to for its whole life (retries, reclaims, dead
//! letters, audit bit), so every script and pipeline still touches one slot, and the queue-wide
//! figures (depth, audit) are sums over partitions.
//!
//! The operations are grouped by what they do: [`enqueue`](Queue::enqueue_batch) (`enqueue.rs`,
//! `unique.rs`), [`claim`](Queue::claim) (`claim.rs`), [`settle`](Queue::settle) and renew
//! (`settle.rs`), the scheduler's duties (`maintain.rs`), what is in the queue (`inspect.rs`),
//! the exact-delivery audit (`audit.rs`) and tracked jobs (`track.rs`).
//!
//! Priorities (`priority.rs`): a high or low job waits in a stream of its own beside the
//! normal one, under the same hash tag; a claim reads all three in one script call
//! (`lanes.rs`), which also applies the queue's rate limit (`limit.rs`). Delayed, retrying and
//! dead jobs stay in the shared sets and carry their priority back to its stream.

mod audit;
mod backoff;
mod claim;
mod enqueue;
pub mod envelope;
mod inspect;
mod keys;
mod lanes;
mod limit;
mod maintain;
pub mod manage;
pub mod partition;
mod periodic;
pub mod priority;
mod scripts;
mod settle;
mod slot;
pub mod track;
mod unique;

pub use audit::{Audit, BatchReport};
pub use backoff::Backoff;
pub use claim::{Claimed, PackPlace, Poison};
pub use enqueue::{Enqueued, NewJob, WAKE_ONCE_UP_TO};
pub use envelope::{DecodeError, Envelope, JobId, SEQ_LIMIT};
pub use inspect::{ByPriority, DeadLetter, Depth};
pub use keys::{GROUP, QueueKeys};
pub use lanes::{ClaimPlan, LIMITED_POLL};
pub use limit::{Limit, Settings};
pub use maintain::Reclaimed;
pub use manage::{DeadDone, JobSummary, JobsIn, Page, Pick, Rates, SecondCount, WorkerRecord};
pub use periodic::CronEntry;
pub use priority::{Priority, Service};
pub use settle::{Outcome, Settled};
pub use track::{Cancelled, Event, JobInfo, JobState, Status};
pub use unique::MAX_KEY_BYTES;

use crate::runtime::clock::SharedClock;
use crate::runtime::connection::Redis;
use crate::runtime::error::{Error, Result};
use partition::{Health, Rotation};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How a queue treats its jobs.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Every key starts with `{prefix:queue}`.
    pub prefix: String,
    /// A job whose worker has not renewed its hold for this long is given to another worker.
    pub lease: Duration,
    /// Attempts before a failing job goes to the dead letters (1 = no retry), for jobs that do
    /// not carry their own.
    pub max_attempts: u16,
    /// Times a job may be reclaimed from a dead or stalled worker before it is declared dead
    /// (a job that crashes every worker that runs it must not circulate forever).
    pub max_reclaims: u32,
    /// Delay before each retry.
    pub backoff: Backoff,
    /// Record settled jobs that carry a sequence number in the audit bitmap.
    pub audit: bool,
    /// Partitions of the queue, each under a hash tag of its own (1 = unpartitioned).
    pub partitions: u16,
    /// Most jobs an enqueue packs into one stream entry (1 = one job per entry, up to
    /// [`envelope::MAX_PACK`]). Consecutive plain jobs of one batch — ready now, untracked,
    /// without an idempotency key or an id of their own, of one priority — share an entry: one
    /// `XADD`, one pending record and one `XACK` for all of them, while each keeps its own id,
    /// attempts, retries and dead letter. The jobs of one entry go to one worker, so keep it
    /// small for long jobs; see `docs/wire-format.md` for what a reclaim does with them.
    pub pack: u16,
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
            pack: 1,
        }
    }
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
    /// The queue's meta hash says high or low jobs were enqueued (read by the workers' watcher,
    /// or written by this process): claims read every priority's stream, and an enqueue of a
    /// high or low job need not say so again.
    lanes: Arc<AtomicBool>,
}

impl Queue {
    /// The queue `name` on `redis`. Nothing is sent to Redis until an operation runs; call
    /// [`Queue::ensure_group`] once before workers claim.
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
            lanes: Arc::default(),
        }
    }

    /// This process knows the queue uses priorities.
    pub(crate) fn lanes_known(&self) -> bool {
        self.lanes.load(Ordering::Relaxed)
    }

    /// The queue was seen to use priorities.
    fn lanes_seen(&self) {
        self.lanes.store(true, Ordering::Relaxed);
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.keys.queue()
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

    /// How the queue treats its jobs.
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// The Redis deployment the queue lives on.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The clock due times and backoff are measured with.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The keys of partition `p`; an error for a partition the queue does not have (a claimed
    /// job is always of one of ours).
    fn partition(&self, p: u16) -> Result<&QueueKeys> {
        self.partitions.get(usize::from(p)).ok_or_else(|| Error::InvalidArgument {
            what: "partition",
            message: format!("queue {} has {} partition(s), not {p}", self.keys.queue(), self.partitions.len()),
        })
    }

    /// Creates the stream and its consumer group of every partition if they do not exist yet.
    pub async fn ensure_group(&self) -> Result<()> {
        for keys in self.partitions.iter() {
            self.ensure_group_in(keys).await?;
        }
        self.record_meta().await
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
            Err(Error::Redis(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
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
}
