//! Putting jobs on the queue: ready now (`XADD` to the stream of the job's priority), delayed (`ZADD` to the delayed set of the
//! job's partition) or under an idempotency key (the `enqueue_unique` script), any mix of them
//! in one pipelined round trip per partition touched.
//!
//! Partitions: jobs with a partition key go to that key's partition (jobs of one key keep their
//! order); jobs under an idempotency key and no partition key go to the idempotency key's
//! partition (a repeat finds the first); tracked jobs otherwise to their id's (a lookup by id
//! finds them first); every other job of a call goes to the next partition in turn, passing
//! over one that failed recently.

use super::envelope::{Envelope, JobId};
use super::priority::Priority;
use super::{Queue, partition, scripts};
use crate::runtime::error::Result;
use redis::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

/// A job to enqueue with its per-job options.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// The job as it will be stored.
    pub envelope: Envelope,
    /// Not before this time (ms since the epoch); `None`: ready now.
    pub due_ms: Option<u64>,
    /// Idempotency key and how long it holds.
    pub unique: Option<(String, Duration)>,
    /// Partition key: jobs with the same key stay in one partition, in order.
    pub partition_key: Option<String>,
    /// The envelope's id was made for this job just now (a UUID): no other job can hold it, so a
    /// tracked job needs no check that its id is free.
    pub fresh_id: bool,
}

/// What enqueueing one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The job was added, with this id.
    Added(JobId),
    /// A job with the same idempotency key was added before and the key still holds: nothing
    /// was added; the first job's id.
    Duplicate(JobId),
}

impl Enqueued {
    /// The id of the job that now holds the place (the new one, or the first for a duplicate).
    pub fn id(&self) -> &JobId {
        match self {
            Enqueued::Added(id) | Enqueued::Duplicate(id) => id,
        }
    }

    /// The id, whichever it is.
    pub fn into_id(self) -> JobId {
        match self {
            Enqueued::Added(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// Most entries a batch writes in one transaction (see [`Queue::enqueue_batch_to`]).
pub const WAKE_ONCE_UP_TO: usize = 100;

impl Queue {
    /// Adds one job to the ready stream; returns its id.
    pub async fn enqueue(&self, job: &Envelope) -> Result<JobId> {
        let mut ids = self.enqueue_batch(std::slice::from_ref(job)).await?;
        Ok(ids.pop().expect("one id per job"))
    }

    /// Adds jobs to the ready stream in one pipelined round trip; returns their ids in order.
    /// With several partitions, each call goes to the next partition in turn (round-robin by
    /// batch: one slot per round trip), passing over a partition that failed recently; a failed
    /// call marks its partition, so the caller's retry goes to another one.
    pub async fn enqueue_batch(&self, jobs: &[Envelope]) -> Result<Vec<JobId>> {
        let p = self.next_enqueue_partition();
        let sent = self.enqueue_batch_to(p, jobs).await;
        self.note_health(p, sent.is_ok());
        sent
    }

    /// Adds jobs to the ready stream of partition `p` in one pipelined round trip (consecutive
    /// plain jobs packed into entries of up to [`QueueOptions::pack`](super::QueueOptions::pack)).
    /// A batch of 2 to 100 entries on a single server goes in one `MULTI`/`EXEC`, so a worker
    /// waiting for work claims it in one read; a larger batch is a plain pipeline.
    pub async fn enqueue_batch_to(&self, p: u16, jobs: &[Envelope]) -> Result<Vec<JobId>> {
        let keys = self.partition(p)?;
        self.mark_lanes(jobs.iter().map(|j| j.priority)).await?;
        let mut pipe = redis::pipe();
        // Per command: its first job and how many it carries (more than one: packed).
        let mut runs: Vec<(usize, usize)> = Vec::with_capacity(jobs.len());
        let mut i = 0;
        while i < jobs.len() {
            let n = self.packable_run(jobs[i..].iter());
            let stream = keys.ready_at(jobs[i].priority);
            add_entry(&mut pipe, &stream, &jobs[i..i + n]);
            runs.push((i, n));
            i += n;
        }
        // Redis serves blocked readers after each command, so each XADD of a plain pipeline
        // wakes another blocked worker with an entry or two. In MULTI/EXEC it serves them once,
        // after EXEC: the first blocked worker claims the batch in one read. Queuing each
        // command costs Redis more than that saves in a large batch, whose workers are seldom
        // waiting anyway. (A cluster connection takes no transactions; one batch is one slot.)
        if (2..=WAKE_ONCE_UP_TO).contains(&runs.len()) && !self.redis.is_cluster() {
            pipe.atomic();
        }
        let ids: Vec<String> = self.redis.with_conn(async |c| pipe.query_async(c).await).await?;
        crate::runtime::telemetry::jobs_enqueued(self.name(), jobs.len() as u64);
        let mut out = Vec::with_capacity(jobs.len());
        for (id, (first, n)) in ids.into_iter().zip(runs) {
            let priority = jobs[first].priority;
            if n > 1 {
                out.extend((0..n).map(|k| JobId::of_packed(&id, k as u16, p, priority)));
            } else if priority == Priority::Normal {
                out.push(JobId::from_entry(id, p));
            } else {
                out.push(JobId::of_entry_at(&id, p, priority));
            }
        }
        Ok(out)
    }

    /// How many of `jobs`, from the first, one entry takes: 1, or — when the queue packs — the
    /// plain jobs of the first one's priority that follow it, up to the queue's `pack`.
    fn packable_run<'a>(&self, jobs: impl Iterator<Item = &'a Envelope>) -> usize {
        let most = usize::from(self.options.pack).clamp(1, super::envelope::MAX_PACK);
        let mut jobs = jobs.peekable();
        let Some(first) = jobs.peek().copied() else { return 0 };
        if most == 1 || !packable(first) {
            return 1;
        }
        jobs.take(most).take_while(|j| packable(j) && j.priority == first.priority).count()
    }

    /// Before the first high or low job this process enqueues: records in the queue's meta
    /// hash that it uses priorities, so every worker reads every priority's stream from its
    /// next poll on (a queue of normal jobs only keeps its one-stream claim).
    async fn mark_lanes(&self, priorities: impl Iterator<Item = Priority>) -> Result<()> {
        let mut priorities = priorities;
        if self.lanes_known() || priorities.all(|p| p == Priority::Normal) {
            return Ok(());
        }
        let meta = self.keys.meta();
        self.redis
            .with_conn(async |c| {
                redis::cmd("HSET").arg(&meta).arg(super::limit::LANES_FIELD).arg(1).query_async::<()>(c).await
            })
            .await?;
        self.lanes_seen();
        Ok(())
    }

    /// Adds `job` to the partition that `key` maps to: jobs with the same key stay in one
    /// partition, so they are handed out in the order they were enqueued.
    pub async fn enqueue_keyed(&self, job: &Envelope, key: &str) -> Result<JobId> {
        let p = partition::of_key(key, self.partition_count());
        let mut ids = self.enqueue_batch_to(p, std::slice::from_ref(job)).await?;
        Ok(ids.pop().expect("one id per job"))
    }

    /// Adds a job that must not run before `due_ms` (ms since the epoch); returns its id.
    pub async fn schedule(&self, job: &Envelope, due_ms: u64) -> Result<JobId> {
        let new = NewJob { envelope: job.clone(), due_ms: Some(due_ms), ..NewJob::default() };
        Ok(self.enqueue_jobs(vec![new]).await?.pop().expect("one result per job").into_id())
    }

    /// Enqueues jobs with per-job options, in one pipelined round trip per partition touched
    /// (all at the same time); returns what happened to each, in order.
    pub async fn enqueue_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        for job in &jobs {
            if let Some((key, ttl)) = &job.unique {
                super::unique::check(key, *ttl)?;
            }
        }
        self.mark_lanes(jobs.iter().map(|j| j.envelope.priority)).await?;
        let n = self.partition_count();
        let rotated = self.next_enqueue_partition();
        let mut by_partition: BTreeMap<u16, Vec<(usize, NewJob)>> = BTreeMap::new();
        for (i, mut job) in jobs.into_iter().enumerate() {
            // A tracked job needs its id now: it lives in its id's partition (unless it has a
            // partition key), where a lookup by id finds it first.
            if job.envelope.keep_ms.is_some() && job.envelope.id.is_none() {
                job.envelope.id = Some(JobId::generate().into());
                job.fresh_id = true;
            }
            let p = match (&job.partition_key, &job.unique, &job.envelope.id) {
                (Some(key), _, _) | (None, Some((key, _)), _) => partition::of_key(key, n),
                (None, None, Some(id)) if job.envelope.keep_ms.is_some() => partition::of_key(id, n),
                (None, None, _) => rotated,
            };
            by_partition.entry(p).or_default().push((i, job));
        }
        let total = by_partition.values().map(Vec::len).sum();
        let sent = futures::future::join_all(by_partition.into_iter().map(|(p, jobs)| async move {
            let result = self.enqueue_jobs_to(p, &jobs).await;
            self.note_health(p, result.is_ok());
            result.map(|done| jobs.into_iter().map(|(i, _)| i).zip(done).collect::<Vec<_>>())
        }))
        .await;
        let mut out: Vec<Option<Enqueued>> = vec![None; total];
        for part in sent {
            for (i, done) in part? {
                out[i] = Some(done);
            }
        }
        Ok(out.into_iter().map(|e| e.expect("every job answered")).collect())
    }

    /// One pipeline to partition `p`: an `XADD`, `ZADD` or script call per job.
    async fn enqueue_jobs_to(&self, p: u16, jobs: &[(usize, NewJob)]) -> Result<Vec<Enqueued>> {
        let keys = self.partition(p)?;
        let delayed = keys.delayed();
        let ready_normal = keys.ready_at(Priority::Normal);
        let mut pipe = redis::pipe();
        // What each reply means: an entry id (ready now) of a job of that priority, a known id
        // (delayed), a script reply.
        enum Reply {
            Entry(Priority),
            /// An entry packing this many jobs of that priority.
            Packed(Priority, usize),
            Known(JobId),
            /// The script's arguments, to send again if Redis does not know the script.
            Script(Vec<Vec<u8>>),
        }
        let now_ms = self.clock.now_ms();
        // Tracked jobs with ids of their own making: their statuses come first, in one script
        // call for the batch (so a worker that claims one finds its status), and their entries
        // (or delayed members) below, with no copy of the job when it has its id.
        let mut statuses = super::track::TrackedEnqueue::default();
        let fresh: Vec<Option<Cow<'_, Envelope>>> = jobs
            .iter()
            .map(|(_, job)| {
                (job.envelope.keep_ms.is_some() && job.unique.is_none() && job.fresh_id).then(|| {
                    let envelope = match &job.envelope.id {
                        Some(_) => Cow::Borrowed(&job.envelope),
                        None => Cow::Owned(Envelope { id: Some(JobId::generate().into()), ..job.envelope.clone() }),
                    };
                    statuses.record(
                        keys,
                        envelope.id.as_deref().unwrap_or_default(),
                        &job.envelope,
                        job.due_ms,
                        now_ms,
                    );
                    envelope
                })
            })
            .collect();
        statuses.write(&mut pipe, now_ms);
        let mut replies = Vec::with_capacity(jobs.len());
        let plain = |job: &NewJob| job.due_ms.is_none() && job.unique.is_none() && packable(&job.envelope);
        let mut skip = 0;
        for (at, (_, job)) in jobs.iter().enumerate() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            // Plain jobs that follow one another share an entry, when the queue packs.
            if plain(job) {
                let n = self.packable_run(jobs[at..].iter().map_while(|(_, j)| plain(j).then_some(&j.envelope)));
                if n > 1 {
                    let run: Vec<&Envelope> = jobs[at..at + n].iter().map(|(_, j)| &j.envelope).collect();
                    add_packed(&mut pipe, &keys.ready_at(job.envelope.priority), &run);
                    replies.push(Reply::Packed(job.envelope.priority, n));
                    skip = n - 1;
                    continue;
                }
            }
            let tracked = job.envelope.keep_ms.is_some();
            // A tracked job with an id of its own making (its status is written above): its
            // entry or delayed member, no script.
            if let Some(envelope) = &fresh[at] {
                let id = JobId::from_string(envelope.id.clone().expect("set above"));
                match job.due_ms {
                    Some(due) => pipe.cmd("ZADD").arg(&delayed).arg(due).arg(envelope.pack()).ignore(),
                    None => {
                        let other;
                        let ready = match envelope.priority {
                            Priority::Normal => ready_normal.as_str(),
                            level => {
                                other = keys.ready_at(level);
                                other.as_str()
                            }
                        };
                        pipe.cmd("XADD").arg(ready).arg("*");
                        envelope.write_to_pipe(&mut pipe);
                        pipe.ignore()
                    }
                };
                replies.push(Reply::Known(id));
                continue;
            }
            let mut envelope = job.envelope.clone();
            // A delayed job has no entry yet, and a tracked one needs its id for its hash.
            let made_id = (job.due_ms.is_some() || tracked)
                .then(|| envelope.id.clone().map_or_else(JobId::generate, JobId::from_string));
            if let Some(id) = &made_id {
                envelope.id = Some(id.as_str().to_owned());
            }
            let unique = &job.unique;
            let ready = keys.ready_at(envelope.priority);
            match job.due_ms {
                due if unique.is_some() || tracked => {
                    let id = envelope.id.clone().unwrap_or_default();
                    let (unique_key, unique_ttl) = match unique {
                        Some((key, ttl)) => (keys.unique(key), ttl.as_millis() as u64),
                        None => (keys.unique(""), 0),
                    };
                    let due = due.unwrap_or(0);
                    let pending_ttl = due.saturating_sub(now_ms) + super::track::PENDING_TTL.as_millis() as u64;
                    let mut args: Vec<Vec<u8>> = Vec::with_capacity(24);
                    push(&mut args, 4);
                    push(&mut args, &ready);
                    push(&mut args, &delayed);
                    push(&mut args, keys.job(&id));
                    push(&mut args, &unique_key);
                    push(&mut args, if unique.is_some() { "u" } else { "" });
                    push(&mut args, unique_ttl);
                    push(&mut args, if tracked { "t" } else { "" });
                    push(&mut args, pending_ttl);
                    push(&mut args, due);
                    push(&mut args, now_ms);
                    push(&mut args, &envelope.name);
                    push(&mut args, JobId::suffix_at(p, envelope.priority));
                    push(&mut args, &id);
                    if due > 0 {
                        push(&mut args, envelope.pack());
                    } else {
                        push(&mut args, "");
                        for (name, value) in envelope.fields() {
                            push(&mut args, name);
                            push(&mut args, value.as_bytes());
                        }
                    }
                    // By hash: the script's text is not sent with every job.
                    pipe.cmd("EVALSHA").arg(scripts::ENQUEUE_JOB.get_hash()).arg(&args);
                    replies.push(Reply::Script(args));
                }
                Some(due) => {
                    pipe.cmd("ZADD").arg(&delayed).arg(due).arg(envelope.pack()).ignore();
                    replies.push(Reply::Known(made_id.expect("set for delayed jobs")));
                }
                None => {
                    pipe.cmd("XADD").arg(&ready).arg("*");
                    envelope.write_to_pipe(&mut pipe);
                    replies.push(Reply::Entry(envelope.priority));
                }
            }
        }
        pipe.ignore_errors();
        let values: Vec<redis::RedisResult<Value>> = self.redis.with_conn(async |c| pipe.query_async(c).await).await?;
        let mut values = values.into_iter();
        // Each reply's answer (none for commands whose reply is ignored).
        let mut answers: Vec<Option<redis::RedisResult<Value>>> =
            replies.iter().map(|r| if matches!(r, Reply::Known(_)) { None } else { values.next() }).collect();
        // Redis did not know the script (restarted, flushed): those EVALSHAs did nothing. Load
        // it once, and send just those jobs again, in one pipeline.
        let no_script = |a: &Option<redis::RedisResult<Value>>| matches!(a, Some(Err(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript));
        let again: Vec<usize> = (0..answers.len()).filter(|&i| no_script(&answers[i])).collect();
        if !again.is_empty() {
            let mut retry = redis::pipe();
            for &i in &again {
                if let Reply::Script(args) = &replies[i] {
                    retry.cmd("EVALSHA").arg(scripts::ENQUEUE_JOB.get_hash()).arg(args);
                }
            }
            let redone: Vec<Value> = self
                .redis
                .with_conn(async |c| {
                    scripts::ENQUEUE_JOB.prepare_invoke().load_async(c).await?;
                    retry.query_async(c).await
                })
                .await?;
            for (i, v) in again.into_iter().zip(redone) {
                answers[i] = Some(Ok(v));
            }
        }
        let mut out = Vec::with_capacity(replies.len());
        for (reply, answer) in replies.into_iter().zip(answers) {
            let value = answer.transpose()?.unwrap_or(Value::Nil);
            let one = match reply {
                Reply::Known(id) => Enqueued::Added(id),
                Reply::Entry(priority) => {
                    let id: String = redis::from_redis_value(value).map_err(redis::RedisError::from)?;
                    Enqueued::Added(JobId::of_entry_at(&id, p, priority))
                }
                Reply::Packed(priority, n) => {
                    let id: String = redis::from_redis_value(value).map_err(redis::RedisError::from)?;
                    out.extend((0..n).map(|k| Enqueued::Added(JobId::of_packed(&id, k as u16, p, priority))));
                    continue;
                }
                Reply::Script(_) => {
                    let (added, id): (u8, String) = redis::from_redis_value(value).map_err(redis::RedisError::from)?;
                    let id = JobId::from_string(id);
                    if added == 1 { Enqueued::Added(id) } else { Enqueued::Duplicate(id) }
                }
            };
            out.push(one);
        }
        let added = out.iter().filter(|e| matches!(e, Enqueued::Added(_))).count();
        crate::runtime::telemetry::jobs_enqueued(self.name(), added as u64);
        Ok(out)
    }

    /// The partition the next un-keyed batch goes to.
    fn next_enqueue_partition(&self) -> u16 {
        let n = self.partition_count();
        if n == 1 { 0 } else { self.health.first_usable(self.enqueue_to.next(n), n) as u16 }
    }

    /// Remembers whether partition `p` answered (a failed one is passed over for a while).
    fn note_health(&self, p: u16, answered: bool) {
        if self.partition_count() > 1 {
            if answered { self.health.answered(usize::from(p)) } else { self.health.failed(usize::from(p)) }
        }
    }
}

/// Whether a job may share an entry with others: untracked and without an id of its own (a
/// packed job's id is made from its entry's).
fn packable(job: &Envelope) -> bool {
    job.keep_ms.is_none() && job.id.is_none() && job.reclaims == 0
}

/// Adds the `XADD` of one entry holding `jobs` to `pipe`: the job's own fields for one job,
/// the jobs packed (version 2) for more.
fn add_entry(pipe: &mut redis::Pipeline, stream: &str, jobs: &[Envelope]) {
    if let [job] = jobs {
        pipe.cmd("XADD").arg(stream).arg("*");
        job.write_to_pipe(pipe);
    } else {
        let run: Vec<&Envelope> = jobs.iter().collect();
        add_packed(pipe, stream, &run);
    }
}

/// Adds the `XADD` of a version 2 entry packing `jobs` to `pipe`.
fn add_packed(pipe: &mut redis::Pipeline, stream: &str, jobs: &[&Envelope]) {
    let mut packed = Vec::with_capacity(8 + jobs.iter().map(|j| 32 + j.name.len() + j.payload.len()).sum::<usize>());
    super::envelope::pack_entry(jobs.iter().copied(), &mut packed);
    pipe.cmd("XADD").arg(stream).arg("*");
    pipe.arg(super::envelope::field::VERSION).arg(super::envelope::PACKED_VERSION);
    pipe.arg(super::envelope::field::JOBS).arg(packed);
}

/// Appends `a` to a command's arguments.
fn push(args: &mut Vec<Vec<u8>>, a: impl redis::ToRedisArgs) {
    a.write_redis_args(args);
}
