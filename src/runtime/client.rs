//! The producer's side of the runtime: a [`Client`] enqueues typed jobs on one queue and answers
//! their ids. One job or a batch; a batch is one pipelined round trip (per partition it
//! touches), whatever mix of options its jobs carry.
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize)] struct SendEmail { to: String }
//! # impl conveyor::JobType for SendEmail { const NAME: &'static str = "email.send"; }
//! # async fn example(client: conveyor::Client) -> conveyor::Result<()> {
//! use conveyor::Enqueue;
//! use std::time::Duration;
//!
//! let id = client.enqueue(&SendEmail { to: "a@example.com".into() }).await?;
//! let later = client
//!     .enqueue_with(
//!         &SendEmail { to: "b@example.com".into() },
//!         Enqueue::new().delay(Duration::from_secs(60)).max_attempts(5).key("customer-7"),
//!     )
//!     .await?;
//! let ids = client.enqueue_batch(&[SendEmail { to: "c@example.com".into() }]).await?;
//! # Ok(()) }
//! ```

use crate::runtime::error::{Error, Result};
use crate::runtime::handler::JobType;
use crate::runtime::queue::{BatchReport, Cancelled, Enqueued, Envelope, JobId, NewJob, Priority, Queue, Status};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Per-job options of an enqueue call. Unset options fall back to the job type's
/// [`JobType::defaults`], then to the queue's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enqueue {
    run_at: Option<RunAt>,
    max_attempts: Option<u16>,
    timeout: Option<Duration>,
    unique: Option<(String, Duration)>,
    key: Option<String>,
    headers: Option<std::sync::Arc<[u8]>>,
    keep: Option<Duration>,
    id: Option<String>,
    deadline: Option<SystemTime>,
    priority: Option<Priority>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RunAt {
    After(Duration),
    At(SystemTime),
}

impl Enqueue {
    /// No options: ready now, the queue's attempts, no timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Not before `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.run_at = Some(RunAt::After(delay));
        self
    }

    /// Not before `at`.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(RunAt::At(at));
        self
    }

    /// Runs allowed before the job goes to the dead letters (1: no retry).
    pub fn max_attempts(mut self, attempts: u16) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Longest one run may take; the handler's future is dropped then and the attempt fails.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds the job only if no job was added with the idempotency key `key` within `ttl`
    /// (the answer is then [`Enqueued::Duplicate`] with the first job's id).
    pub fn unique_for(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.unique = Some((key.into(), ttl));
        self
    }

    /// Partition key: on a partitioned queue, jobs with the same key stay in one partition and
    /// are handed out in the order they were enqueued.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Opaque bytes carried with the job to its handler ([`JobContext::headers`](crate::JobContext::headers)),
    /// e.g. a trace context.
    pub fn headers(mut self, headers: impl Into<Vec<u8>>) -> Self {
        self.headers = Some(headers.into().into());
        self
    }

    /// Tracked: its status (and its handler's result) can be asked for by id
    /// ([`Client::status`]), kept for a day after it finished; its events go to the queue's
    /// events stream. Untracked jobs write nothing of the kind.
    pub fn track(self) -> Self {
        self.track_for(crate::runtime::queue::track::DEFAULT_KEEP)
    }

    /// Tracked, its status kept for `retention` after it finished.
    pub fn track_for(mut self, retention: Duration) -> Self {
        self.keep = Some(retention);
        self
    }

    /// An id of the job's own (an order number, say; 1 to 256 bytes). The job is tracked, and a
    /// second job with the same id is not added while the first's status is kept
    /// ([`Enqueued::Duplicate`]).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Not to be started after `at`: a job still waiting then goes to the dead letters, and a
    /// run never lasts past it (its timeout is cut short). The handler sees it in
    /// [`JobContext::deadline`](crate::JobContext::deadline).
    pub fn deadline(mut self, at: SystemTime) -> Self {
        self.deadline = Some(at);
        self
    }

    /// Its priority (default normal): high jobs are served before normal ones, low after, as
    /// each worker's [`Service`](crate::runtime::queue::Service) says (weighted by default: low
    /// jobs are still served under a flood of high ones).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// `self`, with what it leaves unset taken from `defaults`.
    pub fn or(self, defaults: Enqueue) -> Self {
        Self {
            run_at: self.run_at.or(defaults.run_at),
            max_attempts: self.max_attempts.or(defaults.max_attempts),
            timeout: self.timeout.or(defaults.timeout),
            unique: self.unique.or(defaults.unique),
            key: self.key.or(defaults.key),
            headers: self.headers.or(defaults.headers),
            keep: self.keep.or(defaults.keep),
            id: self.id.or(defaults.id),
            deadline: self.deadline.or(defaults.deadline),
            priority: self.priority.or(defaults.priority),
        }
    }

    /// The job to store for `name` and `payload` with these options, at `now_us`.
    pub fn build(self, name: &str, payload: Vec<u8>, now_us: u64) -> NewJob {
        let due_ms = self.run_at.map(|when| match when {
            RunAt::After(d) => now_us / 1000 + d.as_millis() as u64,
            RunAt::At(t) => t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        });
        NewJob {
            envelope: Envelope {
                name: name.to_owned(),
                payload,
                enqueued_us: Some(now_us),
                headers: self.headers,
                max_attempts: self.max_attempts,
                timeout_ms: self.timeout.map(|t| t.as_millis().max(1) as u64),
                // A job with an id of its own is tracked: its hash is what holds the id.
                keep_ms: self
                    .keep
                    .or(self.id.as_ref().map(|_| crate::runtime::queue::track::DEFAULT_KEEP))
                    .map(|k| k.as_millis().max(1) as u64),
                deadline_ms: self.deadline.map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)),
                id: self.id,
                priority: self.priority.unwrap_or_default(),
                ..Envelope::default()
            },
            // A due time already past is a job ready now (and keeps its id from the stream).
            due_ms: due_ms.filter(|&due| due > now_us / 1000),
            unique: self.unique,
            partition_key: self.key,
            fresh_id: false,
        }
    }
}

/// Enqueues jobs on one queue; cheap to clone, usable from any async runtime.
#[derive(Debug, Clone)]
pub struct Client {
    queue: Queue,
}

impl Client {
    /// A client of `queue`.
    pub fn new(queue: Queue) -> Self {
        Self { queue }
    }

    /// The queue it enqueues on.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Enqueues `job` with its type's default options; returns its id.
    pub async fn enqueue<J: JobType>(&self, job: &J) -> Result<JobId> {
        Ok(self.enqueue_with(job, Enqueue::new()).await?.into_id())
    }

    /// Enqueues `job` with `options`.
    pub async fn enqueue_with<J: JobType>(&self, job: &J, options: Enqueue) -> Result<Enqueued> {
        let new = options.or(J::defaults()).build(J::NAME, encode(job)?, self.now_us());
        Ok(self.queue.enqueue_jobs(vec![new]).await?.pop().expect("one result per job"))
    }

    /// Enqueues `jobs` with their type's default options in one pipelined round trip; returns
    /// their ids in order.
    pub async fn enqueue_batch<J: JobType>(&self, jobs: &[J]) -> Result<Vec<JobId>> {
        let now = self.now_us();
        let defaults = J::defaults();
        if defaults == Enqueue::new() {
            // The fast path: every job ready now, one XADD each, one partition.
            let envelopes = jobs
                .iter()
                .map(|job| Ok(Envelope { enqueued_us: Some(now), ..Envelope::new(J::NAME, encode(job)?) }))
                .collect::<Result<Vec<_>>>()?;
            return self.queue.enqueue_batch(&envelopes).await;
        }
        let new = jobs
            .iter()
            .map(|job| Ok(defaults.clone().build(J::NAME, encode(job)?, now)))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.queue.enqueue_jobs(new).await?.into_iter().map(Enqueued::into_id).collect())
    }

    /// Enqueues jobs, each with its own options, in one pipelined round trip per partition.
    pub async fn enqueue_batch_with<J: JobType>(
        &self,
        jobs: impl IntoIterator<Item = (J, Enqueue)>,
    ) -> Result<Vec<Enqueued>> {
        let now = self.now_us();
        let new = jobs
            .into_iter()
            .map(|(job, options)| Ok(options.or(J::defaults()).build(J::NAME, encode(&job)?, now)))
            .collect::<Result<Vec<_>>>()?;
        self.queue.enqueue_jobs(new).await
    }

    /// Enqueues a job of type `name` whose payload is already encoded (another codec, a proxy,
    /// the command line's `conveyor enqueue`).
    pub async fn enqueue_raw(&self, name: &str, payload: Vec<u8>, options: Enqueue) -> Result<Enqueued> {
        if name.is_empty() || name.len() > crate::runtime::queue::envelope::MAX_NAME_BYTES {
            return Err(Error::InvalidArgument {
                what: "job type",
                message: format!("expected a name of 1 to 256 bytes, got {} bytes", name.len()),
            });
        }
        let new = options.build(name, payload, self.now_us());
        Ok(self.queue.enqueue_jobs(vec![new]).await?.pop().expect("one result per job"))
    }

    /// Where tracked job `id` is: its state, attempt, last error, result.
    pub async fn status(&self, id: &str) -> Result<Status> {
        self.queue.status(id).await
    }

    /// Asks for job `id` to be cancelled: a waiting or delayed job does not start, a running
    /// one sees its cancellation token trip.
    pub async fn cancel(&self, id: &str) -> Result<Cancelled> {
        self.queue.cancel(id).await
    }

    /// An audited batch of this queue: jobs enqueued through it are numbered 0, 1, 2, ... and
    /// settling each sets its bit, so the batch can say at any time how many finished, which
    /// never did, and which ran twice (an import of N rows, a nightly fan-out).
    pub fn audited_batch(&self, name: impl Into<String>) -> AuditedBatch {
        AuditedBatch { client: self.clone(), name: name.into() }
    }

    /// Follows the events of tracked jobs (completed, failed, dead, cancelled), from now on.
    pub fn events(&self) -> Events {
        Events { queue: self.queue.clone(), conn: None, cursor: "$".into() }
    }

    fn now_us(&self) -> u64 {
        self.queue.clock().now_us()
    }
}

/// Jobs enqueued under an exact-delivery audit (see [`Client::audited_batch`]). Its numbers are
/// handed out before the jobs are sent: a call that fails leaves its numbers unfinished, which is
/// what happened (the caller decides whether to send those jobs again).
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct ImportRow { line: u64 }
/// # impl conveyor::JobType for ImportRow { const NAME: &'static str = "import.row"; }
/// # async fn example(client: conveyor::Client, rows: Vec<ImportRow>) -> conveyor::Result<()> {
/// let import = client.audited_batch("import-2026-12-01");
/// import.enqueue(&rows).await?;          // rows[i] is job i of the batch
/// let report = import.report(100).await?;
/// println!("{} of {} finished; never finished: {:?}; ran twice: {:?}",
///     report.finished, report.enqueued, report.unfinished, report.ran_twice);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuditedBatch {
    client: Client,
    name: String,
}

impl AuditedBatch {
    /// Enqueues `jobs` as the batch's next numbers, in order, in one pipelined round trip;
    /// returns their ids.
    pub async fn enqueue<J: JobType>(&self, jobs: &[J]) -> Result<Vec<JobId>> {
        let with_defaults = jobs.iter().map(|job| Ok((encode(job)?, J::defaults())));
        let sent = self.send::<J>(with_defaults.collect::<Result<Vec<_>>>()?).await?;
        Ok(sent.into_iter().map(Enqueued::into_id).collect())
    }

    /// [`AuditedBatch::enqueue`] with per-job options.
    pub async fn enqueue_with<J: JobType>(
        &self,
        jobs: impl IntoIterator<Item = (J, Enqueue)>,
    ) -> Result<Vec<Enqueued>> {
        let encoded = jobs.into_iter().map(|(job, options)| Ok((encode(&job)?, options.or(J::defaults()))));
        self.send::<J>(encoded.collect::<Result<Vec<_>>>()?).await
    }

    async fn send<J: JobType>(&self, jobs: Vec<(Vec<u8>, Enqueue)>) -> Result<Vec<Enqueued>> {
        let queue = &self.client.queue;
        let first = queue.reserve_seqs(&self.name, jobs.len() as u64).await?;
        let now = self.client.now_us();
        let new = jobs
            .into_iter()
            .enumerate()
            .map(|(i, (payload, options))| {
                let mut job = options.build(J::NAME, payload, now);
                job.envelope.seq = Some((first + i as u64) as u32);
                job.envelope.batch = Some(self.name.clone());
                job
            })
            .collect();
        queue.enqueue_jobs(new).await
    }

    /// How many of the batch's jobs finished, and (up to `limit` each) which never did and
    /// which ran twice, by number.
    pub async fn report(&self, limit: usize) -> Result<BatchReport> {
        self.client.queue.batch_report(&self.name, limit).await
    }

    /// Deletes the batch's audit (its jobs are untouched).
    pub async fn forget(&self) -> Result<()> {
        self.client.queue.forget_batch(&self.name).await
    }
}

/// The events of a queue's tracked jobs, read in order (see [`Client::events`]). The stream keeps
/// about [`EVENTS_KEPT`](crate::runtime::queue::track::EVENTS_KEPT) events: a reader further behind
/// misses the oldest.
#[derive(Debug)]
pub struct Events {
    queue: Queue,
    conn: Option<crate::runtime::connection::Conn>,
    cursor: String,
}

impl Events {
    /// From the oldest event still kept instead of from now.
    pub fn from_oldest(mut self) -> Self {
        self.cursor = "0-0".into();
        self
    }

    /// The next events — those of up to 1,000 entries of the events stream, where one settle's
    /// events share an entry — waiting up to `wait` for the first.
    pub async fn next(&mut self, wait: Duration) -> Result<Vec<crate::runtime::queue::Event>> {
        if self.conn.is_none() {
            self.conn = Some(self.queue.redis().blocking_connection().await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        match self.queue.events(conn, &self.cursor, 1_000, wait).await {
            Ok((events, cursor)) => {
                self.cursor = cursor;
                Ok(events)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

pub(crate) fn encode<J: JobType>(job: &J) -> Result<Vec<u8>> {
    job.encode().map_err(|message| Error::Encode { job_type: J::NAME.to_owned(), message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_fall_back_to_the_defaults_and_build_the_envelope() {
        let defaults = Enqueue::new().max_attempts(5).timeout(Duration::from_secs(30));
        let new = Enqueue::new().max_attempts(2).key("k").delay(Duration::from_secs(1)).or(defaults).build(
            "email.send",
            b"{}".to_vec(),
            10_000_000,
        );
        assert_eq!(new.envelope.max_attempts, Some(2));
        assert_eq!(new.envelope.timeout_ms, Some(30_000));
        assert_eq!(new.envelope.enqueued_us, Some(10_000_000));
        assert_eq!(new.due_ms, Some(11_000));
        assert_eq!(new.partition_key.as_deref(), Some("k"));
        let past = Enqueue::new().run_at(UNIX_EPOCH).build("x", Vec::new(), 10_000_000);
        assert_eq!(past.due_ms, None, "a time already past is now");
    }
}
