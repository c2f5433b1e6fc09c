//! A worker claims a batch of jobs in one round trip, runs them (up to `concurrency` at a
//! time), and settles the whole batch in one atomic round trip. While a batch runs longer than
//! a third of the lease, it renews the lease of the jobs it still holds, so a long job is not
//! handed to a second worker. It keeps its own statistics and reports them to the collector in
//! batches. On [`Stop`] it finishes the batch it holds, settles it, reports, and ends.

use super::collector::WorkerReport;
use super::lifecycle::{Join, Lifecycle, Stop};
use crate::clock;
use crate::handler;
use crate::queue::{Claimed, Outcome, Queue};
use crate::stats::WorkerStats;
use crate::telemetry::WorkerMetrics;
use actix::prelude::*;
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Report to the collector after this many settled jobs...
const REPORT_EVERY_JOBS: u64 = 5_000;
/// ...or this long, whichever comes first.
const REPORT_EVERY: Duration = Duration::from_millis(250);
/// First wait after a Redis error; doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(50);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

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

pub struct Worker {
    queue: Queue,
    config: WorkerConfig,
    /// Where batched statistics go.
    collector: Recipient<WorkerReport>,
    lifecycle: Lifecycle,
}

impl Worker {
    pub fn new(queue: Queue, config: WorkerConfig, collector: Recipient<WorkerReport>) -> Self {
        Self { queue, config, collector, lifecycle: Lifecycle::new() }
    }
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let work = work_loop(self.queue.clone(), self.config.clone(), self.collector.clone(), self.lifecycle.clone());
        ctx.spawn(work.into_actor(self));
    }
}

impl Handler<Stop> for Worker {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) -> Self::Result {
        self.lifecycle.request_stop();
        Box::pin(self.lifecycle.finished())
    }
}

/// Stall injection: claim nothing for this long (the batch in hand is finished and settled).
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

/// Statistics not yet reported, per run.
struct Pending {
    run: u32,
    stats: WorkerStats,
    jobs: u64,
    since: Instant,
}

impl Pending {
    fn new() -> Self {
        Self { run: 0, stats: WorkerStats::default(), jobs: 0, since: Instant::now() }
    }

    fn flush(&mut self, to: &Recipient<WorkerReport>) {
        if !self.stats.is_empty() {
            to.do_send(WorkerReport { run: self.run, stats: std::mem::take(&mut self.stats) });
        }
        self.jobs = 0;
        self.since = Instant::now();
    }

    fn due(&self) -> bool {
        self.jobs >= REPORT_EVERY_JOBS || self.since.elapsed() >= REPORT_EVERY
    }
}

async fn work_loop(queue: Queue, config: WorkerConfig, collector: Recipient<WorkerReport>, lifecycle: Lifecycle) {
    let mut pending = Pending::new();
    let mut conn = None;
    let mut retry_wait = FIRST_RETRY_WAIT;
    let metrics = WorkerMetrics::new(queue.keys().queue());
    while !lifecycle.stopping() {
        lifecycle.wait_while_paused().await;
        if conn.is_none() {
            match queue.redis().blocking_connection().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(consumer = %config.consumer, error = %e, "worker cannot connect; retrying");
                    tokio::time::sleep(retry_wait).await;
                    retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
                    continue;
                }
            }
        }
        let claim_began = Instant::now();
        let claimed = match queue
            .claim(conn.as_mut().expect("connected above"), &config.consumer, config.batch, config.block)
            .await
        {
            Ok(c) => c,
            Err(e) if e.is_missing_group() => {
                // The queue was reset (a new benchmark run): join its new consumer group.
                if let Err(e) = queue.ensure_group().await {
                    tracing::warn!(consumer = %config.consumer, error = %e, "cannot rejoin the consumer group");
                    tokio::time::sleep(retry_wait).await;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(consumer = %config.consumer, error = %e, "claim failed; reconnecting");
                metrics::counter!("conveyor_redis_errors_total", "role" => "worker").increment(1);
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
            let outcomes = run_batch(&queue, &config, &claimed, &mut pending).await;
            let settle_began = Instant::now();
            settle(&queue, &config, claimed, outcomes, &mut pending, &lifecycle).await;
            metrics.settled(jobs, settle_began.elapsed());
        }
        if pending.due() {
            pending.flush(&collector);
        }
    }
    pending.flush(&collector);
    metrics.stopped();
    lifecycle.finish();
}

/// What happened to one claimed job while it ran.
struct Ran {
    outcome: Outcome,
    /// µs since the epoch; 0 for entries that never ran (undecodable).
    started_us: u64,
    finished_us: u64,
}

/// Runs every job of the batch, `concurrency` at a time, renewing leases while it takes long.
async fn run_batch(queue: &Queue, config: &WorkerConfig, claimed: &[Claimed], pending: &mut Pending) -> Vec<Ran> {
    let jobs = futures::stream::iter(claimed.iter().map(|c| async move {
        match &c.job {
            Ok(job) => {
                let started_us = clock::now_us();
                let outcome = match handler::execute(job.kind).await {
                    Ok(()) => Outcome::Completed,
                    Err(reason) => Outcome::Failed(reason),
                };
                Ran { outcome, started_us, finished_us: clock::now_us() }
            }
            Err(e) => Ran { outcome: Outcome::Failed(e.to_string()), started_us: 0, finished_us: 0 },
        }
    }))
    .buffered(config.concurrency)
    .collect::<Vec<Ran>>();
    tokio::pin!(jobs);

    let renew_every = queue.options().lease / 3;
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
    let ran = loop {
        tokio::select! {
            ran = &mut jobs => break ran,
            _ = renew.tick() => {
                if let Err(e) = queue.renew(&config.consumer, claimed).await {
                    tracing::warn!(consumer = %config.consumer, error = %e, "lease renewal failed");
                }
            }
        }
    };
    // Latency of the waiting and running stages, per measured job.
    for (c, r) in claimed.iter().zip(&ran) {
        if let Ok(job) = &c.job {
            if pending.run != job.run {
                pending.run = pending.run.max(job.run);
            }
            pending.stats.counts.started += 1;
            if !job.warmup {
                pending.stats.enqueue_to_start.record_us(r.started_us.saturating_sub(job.intended_us));
                pending.stats.start_to_complete.record_us(r.finished_us.saturating_sub(r.started_us));
                let first = &mut pending.stats.counts.first_start_us;
                if *first == 0 || r.started_us < *first {
                    *first = r.started_us;
                }
            }
        }
    }
    ran
}

/// Settles the batch, retrying while Redis is unreachable: a job is only done once Redis says so.
async fn settle(
    queue: &Queue,
    config: &WorkerConfig,
    claimed: Vec<Claimed>,
    ran: Vec<Ran>,
    pending: &mut Pending,
    lifecycle: &Lifecycle,
) {
    let batch: Vec<(Claimed, Outcome)> = claimed.into_iter().zip(ran.iter().map(|r| r.outcome.clone())).collect();
    let mut wait = FIRST_RETRY_WAIT;
    let settled = loop {
        match queue.settle(&batch).await {
            Ok(s) => break s,
            Err(e) => {
                metrics::counter!("conveyor_redis_errors_total", "role" => "worker").increment(1);
                // Past the lease the jobs will have been reclaimed anyway; stop retrying then.
                if wait > queue.options().lease || (lifecycle.stopping() && wait >= MAX_RETRY_WAIT) {
                    tracing::error!(consumer = %config.consumer, error = %e, jobs = batch.len(), "giving up settling a batch; its jobs will be reclaimed");
                    return;
                }
                tracing::warn!(consumer = %config.consumer, error = %e, "settle failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
        }
    };
    let settled_us = clock::now_us();
    let c = &mut pending.stats.counts;
    c.completed += settled.completed;
    c.retried += settled.retried;
    c.dead += settled.dead;
    c.duplicates += settled.duplicates;
    for ((claimed, outcome), r) in batch.iter().zip(&ran) {
        match &claimed.job {
            Ok(job) if !job.warmup && *outcome == Outcome::Completed => {
                pending.stats.end_to_end.record_us(settled_us.saturating_sub(job.intended_us));
                pending.stats.counts.measured_completed += 1;
                let last = &mut pending.stats.counts.last_complete_us;
                *last = (*last).max(r.finished_us.max(settled_us));
            }
            Err(_) => pending.stats.counts.poison += 1,
            _ => {}
        }
    }
    pending.jobs += batch.len() as u64;
}
