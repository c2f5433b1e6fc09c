//! A worker claims a batch of jobs in one round trip, runs each with the handler its job type
//! has in the [`Registry`] (up to `concurrency` at a time), and settles the whole batch in one
//! atomic round trip. While a batch runs longer than a third of the lease, it renews the lease
//! of the jobs it still holds, so a long job is not handed to a second worker. It exports its
//! own metrics (counts and stage latencies, folded into Prometheus buckets every
//! [`REPORT_EVERY`]) and tells an optional [`Observer`] of every settled batch. On [`Stop`] it
//! finishes the batch it holds, settles it, and ends.

use super::lifecycle::{Join, Lifecycle, Stop};
use super::observer::{Observer, SettledBatch, SettledJob, Settlement};
use crate::clock;
use crate::handler::{JobError, Ran, Registry, Start};
use crate::queue::{Claimed, Outcome, Queue, Settled};
use crate::stats::WorkerStats;
use crate::telemetry::{JobMetrics, WorkerMetrics};
use actix::prelude::*;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Export metrics after this many settled jobs...
const REPORT_EVERY_JOBS: u64 = 5_000;
/// ...or this long, whichever comes first.
pub const REPORT_EVERY: Duration = Duration::from_millis(250);
/// First wait after a Redis error; doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(50);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// How one worker claims and runs jobs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Consumer name in the group: unique per worker across every process.
    pub consumer: String,
    /// Jobs run at the same time.
    pub concurrency: usize,
    /// Most jobs claimed per round trip.
    pub batch: usize,
    /// Longest a claim waits for work (bounds how long a stop takes to be noticed).
    pub block: Duration,
}

/// One worker of a queue (an actor; see the module docs).
pub struct Worker {
    queue: Queue,
    config: WorkerConfig,
    /// The handlers it runs jobs with.
    registry: Arc<Registry>,
    /// Told of every settled batch; taken by the loop when it starts.
    observer: Option<Box<dyn Observer>>,
    lifecycle: Lifecycle,
}

impl Worker {
    /// A worker of `queue` running jobs with `registry`'s handlers.
    pub fn new(queue: Queue, config: WorkerConfig, registry: Arc<Registry>) -> Self {
        Self { queue, config, registry, observer: None, lifecycle: Lifecycle::new() }
    }

    /// Also tells `observer` of every settled batch.
    pub fn observed_by(mut self, observer: Box<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let work = WorkLoop {
            queue: self.queue.clone(),
            config: self.config.clone(),
            registry: self.registry.clone(),
            observer: self.observer.take(),
            lifecycle: self.lifecycle.clone(),
            tally: Tally::new(self.queue.name()),
        };
        ctx.spawn(work.run().into_actor(self));
    }
}

impl Handler<Stop> for Worker {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) -> Self::Result {
        self.lifecycle.request_stop();
        Box::pin(self.lifecycle.finished())
    }
}

/// Claim nothing for this long (the batch in hand is finished and settled): stall injection.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Pause(pub Duration);

impl Handler<Pause> for Worker {
    type Result = ();

    fn handle(&mut self, pause: Pause, _: &mut Context<Self>) {
        self.lifecycle.pause_for(pause.0);
    }
}

impl Handler<Join> for Worker {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Join, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.lifecycle.finished())
    }
}

/// The worker's own metrics since they were last exported.
struct Tally {
    stats: WorkerStats,
    jobs: u64,
    since: Instant,
    export: JobMetrics,
}

impl Tally {
    fn new(queue: &str) -> Self {
        Self { stats: WorkerStats::default(), jobs: 0, since: Instant::now(), export: JobMetrics::new(queue) }
    }

    fn flush_if_due(&mut self, force: bool) {
        if force || self.jobs >= REPORT_EVERY_JOBS || self.since.elapsed() >= REPORT_EVERY {
            if !self.stats.is_empty() {
                self.export.workers_reported(&std::mem::take(&mut self.stats));
            }
            self.jobs = 0;
            self.since = Instant::now();
        }
    }
}

/// What a worker's loop owns.
struct WorkLoop {
    queue: Queue,
    config: WorkerConfig,
    registry: Arc<Registry>,
    observer: Option<Box<dyn Observer>>,
    lifecycle: Lifecycle,
    tally: Tally,
}

/// What happened to one claimed job while it ran.
struct Run {
    outcome: Outcome,
    /// µs since the epoch; 0 for jobs that never ran.
    started_us: u64,
    finished_us: u64,
}

impl WorkLoop {
    async fn run(mut self) {
        let mut conn = None;
        let mut retry_wait = FIRST_RETRY_WAIT;
        let metrics = WorkerMetrics::new(self.queue.name());
        let queue_name: Arc<str> = Arc::from(self.queue.name());
        while !self.lifecycle.stopping() {
            self.lifecycle.wait_while_paused().await;
            if conn.is_none() {
                match self.queue.redis().blocking_connection().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::warn!(consumer = %self.config.consumer, error = %e, "worker cannot connect; retrying");
                        tokio::time::sleep(retry_wait).await;
                        retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
                        continue;
                    }
                }
            }
            let claim_began = Instant::now();
            let claimed = match self
                .queue
                .claim(
                    conn.as_mut().expect("connected above"),
                    &self.config.consumer,
                    self.config.batch,
                    self.config.block,
                )
                .await
            {
                Ok(c) => c,
                Err(e) if e.is_missing_group() => {
                    // The queue was reset (a new benchmark run): join its new consumer group.
                    if let Err(e) = self.queue.ensure_group().await {
                        tracing::warn!(consumer = %self.config.consumer, error = %e, "cannot rejoin the consumer group");
                        tokio::time::sleep(retry_wait).await;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(consumer = %self.config.consumer, error = %e, "claim failed; reconnecting");
                    crate::telemetry::redis_error("worker");
                    conn = None;
                    tokio::time::sleep(retry_wait).await;
                    retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
                    continue;
                }
            };
            retry_wait = FIRST_RETRY_WAIT;
            if !claimed.is_empty() {
                let jobs = claimed.len();
                metrics.claimed(jobs, claim_began.elapsed());
                let runs = self.run_batch(&claimed, &queue_name).await;
                let settle_began = Instant::now();
                self.settle(claimed, runs).await;
                metrics.settled(jobs, settle_began.elapsed());
            }
            self.tally.flush_if_due(false);
            if let Some(o) = &mut self.observer {
                o.tick(false);
            }
        }
        self.tally.flush_if_due(true);
        if let Some(o) = &mut self.observer {
            o.tick(true);
        }
        metrics.stopped();
        self.lifecycle.finish();
    }

    /// Runs every job of the batch, `concurrency` at a time, renewing leases while it takes long.
    async fn run_batch(&mut self, claimed: &[Claimed], queue_name: &Arc<str>) -> Vec<Run> {
        let registry = &self.registry;
        let default_attempts = self.queue.options().max_attempts;
        let jobs = futures::stream::iter(claimed.iter().map(|c| async move {
            let job = match &c.job {
                Ok(job) => job,
                Err(poison) => {
                    return Run { outcome: Outcome::Dead(poison.error.to_string()), started_us: 0, finished_us: 0 };
                }
            };
            let start = Start {
                id: c.job_id(),
                attempt: job.attempt,
                max_attempts: job.max_attempts.unwrap_or(default_attempts).max(1),
                queue: queue_name.clone(),
                enqueued_us: c.enqueued_us(),
                timeout: job.timeout_ms.map(Duration::from_millis),
                headers: job.headers.clone(),
            };
            let started_us = clock::now_us();
            let outcome = match registry.run(&job.name, &job.payload, start).await {
                Ran::Done(Ok(())) => Outcome::Completed,
                Ran::Done(Err(JobError::Retry { reason })) => Outcome::Failed(reason),
                Ran::Done(Err(JobError::RetryAfter { delay, reason })) => Outcome::RetryAfter(delay, reason),
                Ran::Done(Err(JobError::Fail { reason })) => Outcome::Dead(reason),
                Ran::Refused(reason) => return Run { outcome: Outcome::Dead(reason), started_us: 0, finished_us: 0 },
            };
            Run { outcome, started_us, finished_us: clock::now_us() }
        }))
        .buffered(self.config.concurrency)
        .collect::<Vec<Run>>();
        tokio::pin!(jobs);

        let renew_every = self.queue.options().lease / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        loop {
            tokio::select! {
                runs = &mut jobs => break runs,
                _ = renew.tick() => {
                    if let Err(e) = self.queue.renew(&self.config.consumer, claimed).await {
                        tracing::warn!(consumer = %self.config.consumer, error = %e, "lease renewal failed");
                    }
                }
            }
        }
    }

    /// Settles the batch, retrying while Redis is unreachable (a job is only done once Redis
    /// says so), then records it and tells the observer.
    async fn settle(&mut self, claimed: Vec<Claimed>, runs: Vec<Run>) {
        let times: Vec<(u64, u64)> = runs.iter().map(|r| (r.started_us, r.finished_us)).collect();
        let batch: Vec<(Claimed, Outcome)> = claimed.into_iter().zip(runs).map(|(c, r)| (c, r.outcome)).collect();
        let mut wait = FIRST_RETRY_WAIT;
        let settled = loop {
            match self.queue.settle(&batch).await {
                Ok(s) => break s,
                Err(e) => {
                    crate::telemetry::redis_error("worker");
                    // Past the lease the jobs will have been reclaimed anyway; stop retrying then.
                    if wait > self.queue.options().lease || (self.lifecycle.stopping() && wait >= MAX_RETRY_WAIT) {
                        tracing::error!(consumer = %self.config.consumer, error = %e, jobs = batch.len(), "giving up settling a batch; its jobs will be reclaimed");
                        return;
                    }
                    tracing::warn!(consumer = %self.config.consumer, error = %e, "settle failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY_WAIT);
                }
            }
        };
        let settled_us = clock::now_us();
        let max_attempts = self.queue.options().max_attempts;
        let jobs: Vec<SettledJob<'_>> = batch
            .iter()
            .zip(&times)
            .map(|((claimed, outcome), &(started_us, finished_us))| {
                let job = claimed.job.as_ref().ok();
                let last = job.is_none_or(|j| j.attempt + 1 >= j.max_attempts.unwrap_or(max_attempts).max(1));
                let settlement = match outcome {
                    _ if started_us == 0 => Settlement::Refused,
                    Outcome::Completed => Settlement::Completed,
                    Outcome::Dead(_) => Settlement::Dead,
                    Outcome::Failed(_) | Outcome::RetryAfter(..) if last => Settlement::Dead,
                    Outcome::Failed(_) | Outcome::RetryAfter(..) => Settlement::Retried,
                };
                SettledJob {
                    name: job.map_or("", |j| j.name.as_str()),
                    headers: job.and_then(|j| j.headers.as_deref()),
                    seq: job.and_then(|j| j.seq),
                    attempt: job.map_or(0, |j| j.attempt),
                    enqueued_us: claimed.enqueued_us(),
                    started_us,
                    finished_us,
                    settlement,
                }
            })
            .collect();
        self.record(&jobs, settled, settled_us);
        if let Some(o) = &mut self.observer {
            o.settled(&SettledBatch { jobs: &jobs, settled, settled_us });
        }
    }

    /// The worker's own figures: every job, latency from its enqueue time.
    fn record(&mut self, jobs: &[SettledJob<'_>], settled: Settled, settled_us: u64) {
        let s = &mut self.tally.stats;
        s.counts.completed += settled.completed;
        s.counts.retried += settled.retried;
        s.counts.dead += settled.dead;
        s.counts.duplicates += settled.duplicates;
        for job in jobs {
            if job.started_us == 0 {
                s.counts.poison += 1;
                continue;
            }
            s.counts.started += 1;
            s.enqueue_to_start.record_us(job.started_us.saturating_sub(job.enqueued_us));
            s.start_to_complete.record_us(job.finished_us.saturating_sub(job.started_us));
            if job.settlement == Settlement::Completed {
                s.end_to_end.record_us(settled_us.saturating_sub(job.enqueued_us));
            }
        }
        self.tally.jobs += jobs.len() as u64;
    }
}
