//! The scheduler moves due delayed jobs into the ready stream, takes back jobs whose worker
//! stopped renewing its lease, trims settled entries off the ready stream, and samples queue
//! depth. It keeps no state of its own beyond a scan cursor: Redis holds the truth, so any
//! number of schedulers (one per process) may run. Each duty does one unit of work per tick; a
//! failure is logged and counted ([`duty_failed`]), and the next tick tries again.

use crate::runtime::queue::{Depth, Queue};
use crate::runtime::telemetry::SchedulerMetrics;
use actix::prelude::*;
use std::time::{Duration, Instant};

/// How often due delayed jobs are promoted (bounds how late a delayed job can start).
const PROMOTE_EVERY: Duration = Duration::from_millis(20);
/// Most jobs promoted per script call.
const PROMOTE_LIMIT: usize = 1_000;
/// Most pending entries reclaimed per script call.
const RECLAIM_LIMIT: usize = 500;
/// How often settled entries are trimmed off the ready stream: at 100,000 jobs/s, at most
/// about 2,000 settled entries (a few hundred kilobytes) wait for their trim.
pub const TRIM_EVERY: Duration = Duration::from_millis(20);
/// How long stopping waits for the last trim (Redis may be gone).
const LAST_TRIM_WAIT: Duration = Duration::from_secs(1);
/// How often queue depth is sampled.
const DEPTH_EVERY: Duration = Duration::from_secs(1);

/// Queue depth at a moment, sent once a second to whoever asked for it.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct DepthSample {
    /// How many jobs were in each state.
    pub depth: Depth,
}

/// The scheduler of one queue (an actor; see the module docs).
pub struct Scheduler {
    queue: Queue,
    /// Where depth samples go, besides the metrics.
    depth_to: Option<Recipient<DepthSample>>,
    /// Where the next reclaim scan of the pending list continues.
    cursor: String,
    /// A duty still running from an earlier tick is not started again.
    promoting: bool,
    reclaiming: bool,
    trimming: bool,
    metrics: SchedulerMetrics,
}

impl Scheduler {
    /// A scheduler of `queue`.
    pub fn new(queue: Queue) -> Self {
        let metrics = SchedulerMetrics::new(queue.keys().queue());
        Self {
            queue,
            depth_to: None,
            cursor: "0-0".into(),
            promoting: false,
            reclaiming: false,
            trimming: false,
            metrics,
        }
    }

    /// Also sends every depth sample to `to`.
    pub fn sampling_depth_to(mut self, to: Recipient<DepthSample>) -> Self {
        self.depth_to = Some(to);
        self
    }

    /// Promotes due jobs until fewer than a full batch were due.
    fn promote(&mut self, ctx: &mut Context<Self>) {
        if self.promoting {
            return;
        }
        self.promoting = true;
        let (queue, metrics) = (self.queue.clone(), self.metrics.clone());
        let work = async move {
            loop {
                let began = Instant::now();
                match queue.promote_due(PROMOTE_LIMIT).await {
                    Ok(n) => {
                        metrics.promoted(n, began.elapsed());
                        if n < PROMOTE_LIMIT as u64 {
                            break;
                        }
                    }
                    Err(e) => {
                        duty_failed("promoting delayed jobs", &e);
                        break;
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|_, act, _| act.promoting = false));
    }

    fn reclaim(&mut self, ctx: &mut Context<Self>) {
        if self.reclaiming {
            return;
        }
        self.reclaiming = true;
        let (queue, cursor) = (self.queue.clone(), self.cursor.clone());
        let began = Instant::now();
        let work = async move { queue.reclaim(&cursor, RECLAIM_LIMIT).await };
        ctx.spawn(work.into_actor(self).map(move |result, act, _| {
            act.reclaiming = false;
            match result {
                Ok(r) => {
                    if r.moved + r.dead > 0 {
                        tracing::info!(moved = r.moved, dead = r.dead, "reclaimed jobs whose lease expired");
                    }
                    act.metrics.reclaimed(&r, began.elapsed());
                    act.cursor = r.cursor;
                }
                Err(e) => duty_failed("reclaiming expired leases", &e),
            }
        }));
    }

    fn trim(&mut self, ctx: &mut Context<Self>) {
        if self.trimming {
            return;
        }
        self.trimming = true;
        let queue = self.queue.clone();
        let began = Instant::now();
        let work = async move { queue.trim().await };
        ctx.spawn(work.into_actor(self).map(move |result, act, _| {
            act.trimming = false;
            match result {
                Ok(_) => act.metrics.trimmed(began.elapsed()),
                Err(e) => duty_failed("trimming settled entries", &e),
            }
        }));
    }

    fn sample_depth(&mut self, ctx: &mut Context<Self>) {
        let (queue, depth_to, metrics) = (self.queue.clone(), self.depth_to.clone(), self.metrics.clone());
        ctx.spawn(
            async move {
                let began = Instant::now();
                match queue.depth().await {
                    Ok(depth) => {
                        let took = began.elapsed();
                        let oldest = queue.oldest_waiting_age().await;
                        if let Err(e) = &oldest {
                            tracing::debug!(error = %e, "reading the oldest waiting job failed");
                        }
                        metrics.sampled(&depth, oldest.ok(), took);
                        match queue.live_workers().await {
                            Ok(live) => crate::runtime::telemetry::worker_processes(queue.name(), live.len()),
                            Err(e) => tracing::debug!(error = %e, "reading live workers failed"),
                        }
                        if let Some(to) = depth_to {
                            to.do_send(DepthSample { depth });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "sampling queue depth failed"),
                }
            }
            .into_actor(self),
        );
    }
}

/// Counts and logs a duty that failed against Redis; its next tick tries again.
fn duty_failed(doing: &str, e: &crate::Error) {
    crate::runtime::telemetry::redis_error("scheduler");
    tracing::warn!(error = %e, "{doing} failed; next tick retries");
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A lease is noticed as expired within a quarter of its length.
        let reclaim_every = (self.queue.options().lease / 4).max(Duration::from_millis(10));
        ctx.run_interval(PROMOTE_EVERY, |act, ctx| act.promote(ctx));
        ctx.run_interval(reclaim_every, |act, ctx| act.reclaim(ctx));
        ctx.run_interval(TRIM_EVERY, |act, ctx| act.trim(ctx));
        ctx.run_interval(DEPTH_EVERY, |act, ctx| act.sample_depth(ctx));
    }
}

/// Stops the scheduler: one last trim (so the entries settled since the last tick do not stay
/// in Redis), then it ends; its duties are idempotent ticks, so nothing else is waited for.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Halt;

impl Handler<Halt> for Scheduler {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Halt, _: &mut Context<Self>) -> Self::Result {
        let queue = self.queue.clone();
        let last_trim = async move { tokio::time::timeout(LAST_TRIM_WAIT, queue.trim()).await };
        Box::pin(last_trim.into_actor(self).map(|result, _, ctx| {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "the last trim failed; the next scheduler to run trims"),
                Err(_) => tracing::warn!("the last trim took too long; the next scheduler to run trims"),
            }
            ctx.stop();
        }))
    }
}
