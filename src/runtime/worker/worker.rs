//! A worker claims jobs in batches (one round trip each), runs each with the handler its job
//! type has in the [`Registry`], up to `concurrency` at a time, and settles finished jobs in
//! micro-batches (one atomic round trip each) without waiting for the slowest job it holds:
//! a settle goes out when a whole batch has finished or nothing else runs (so a batch of quick
//! jobs is one claim and one settle, as before), when no job has finished for [`SETTLE_IDLE`]
//! (what still runs is slow), or when the first finished job has waited [`SETTLE_WITHIN`]. It
//! claims again as soon as half its batch is free, while the rest still run — but not while a
//! settle is in flight (the claim in its loop says why). Every third of the lease it renews
//! the lease of every job it holds, so a long job is not handed to a second worker; the loop
//! never waits for Redis itself (claims, settles and renewals are futures it polls beside its
//! runs).
//!
//! It exports its own metrics (counts and stage latencies, folded into Prometheus buckets every
//! [`REPORT_EVERY`]) and tells an optional [`Observer`] of every settled batch. On [`Stop`] it
//! claims no more, finishes and settles what it holds, and ends.

use super::board::{Board, SharedBoard};
use super::lifecycle::{Join, Lifecycle, Stop};
use super::observer::{Observer, SettledBatch, SettledJob, Settlement};
use crate::runtime::cancel::CancelToken;
use crate::runtime::clock;
use crate::runtime::connection::Conn;
use crate::runtime::handler::{Attempt, JobError, Registry, Start};
use crate::runtime::queue::{ClaimPlan, JobId, Priority, Service};
use crate::runtime::queue::{Claimed, Outcome, Queue, Settled};
use crate::runtime::telemetry::{JobMetrics, JobTally, WorkerMetrics};
use actix::prelude::*;
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Export metrics after this many settled jobs...
const REPORT_EVERY_JOBS: u64 = 5_000;
/// ...or this long, whichever comes first.
pub const REPORT_EVERY: Duration = Duration::from_millis(250);
/// Settle finished jobs once no job has finished for this long (what still runs is slow)...
pub const SETTLE_IDLE: Duration = Duration::from_millis(1);
/// ...or once the first of them has waited this long, whichever comes first; and at once when a
/// whole batch has finished or nothing else runs.
pub const SETTLE_WITHIN: Duration = Duration::from_millis(20);
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
    /// How it shares its claims among priorities (once the queue uses them).
    pub service: Service,
}

/// One worker of a queue (an actor; see the module docs).
pub struct Worker {
    queue: Queue,
    config: WorkerConfig,
    /// The handlers it runs jobs with.
    registry: Arc<Registry>,
    /// Told of every settled batch; taken by the loop when it starts.
    observer: Option<Box<dyn Observer>>,
    /// The cancellations its pool's watcher reads.
    board: SharedBoard,
    lifecycle: Lifecycle,
}

impl Worker {
    /// A worker of `queue` running jobs with `registry`'s handlers; it learns of cancellations
    /// from `board` (see [`WorkerPool`](super::WorkerPool), which keeps one up to date).
    pub fn new(queue: Queue, config: WorkerConfig, registry: Arc<Registry>, board: SharedBoard) -> Self {
        Self { queue, config, registry, observer: None, board, lifecycle: Lifecycle::new() }
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
            board: self.board.clone(),
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
    stats: JobTally,
    jobs: u64,
    since: Instant,
    export: JobMetrics,
    /// Loop turns: the clock is read every [`LOOK_EVERY_TURNS`] of them, not on every one.
    turns: u32,
}

/// How many loop turns pass between two looks at the clock for an export that is due (a busy
/// loop turns every few µs; an idle one at least once per claim's wait).
const LOOK_EVERY_TURNS: u32 = 8;
/// Most jobs a worker starts in one turn of its loop.
const START_BUDGET: usize = 64;

impl Tally {
    fn new(queue: &str) -> Self {
        Self { stats: JobTally::default(), jobs: 0, since: Instant::now(), export: JobMetrics::new(queue), turns: 0 }
    }

    fn flush_if_due(&mut self, force: bool) {
        self.turns = self.turns.wrapping_add(1);
        let look = self.jobs > 0 && self.turns.is_multiple_of(LOOK_EVERY_TURNS);
        if force || self.jobs >= REPORT_EVERY_JOBS || (look && self.since.elapsed() >= REPORT_EVERY) {
            if !self.stats.is_empty() {
                self.export.export(&std::mem::take(&mut self.stats));
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
    board: SharedBoard,
    lifecycle: Lifecycle,
    tally: Tally,
}

/// A claimed job and what happened to it while it ran.
struct Ran {
    /// Its place in the worker's [`Held`] entries.
    slot: usize,
    claimed: Claimed,
    outcome: Outcome,
    /// µs since the epoch; 0 for jobs that never ran.
    started_us: u64,
    finished_us: u64,
    /// Its entry is acknowledged when it settles: the entry's only job, or the last of the jobs
    /// it packs to finish.
    ack: bool,
}

/// One job a worker holds.
struct HeldJob {
    partition: u16,
    /// Which of its partition's streams the entry is in.
    priority: Priority,
    entry_id: Arc<str>,
    /// The job's id when it is not its entry's (see [`Claimed::job_id`]).
    explicit_id: Option<String>,
    /// Its run's token, tripped when the job is cancelled while it runs.
    cancel: CancelToken,
    /// In an entry that packs several jobs: its index, and how many of the entry's jobs have
    /// not finished yet (shared by them).
    pack: Option<(u16, Rc<Cell<u16>>)>,
}

impl HeldJob {
    /// The same id as its [`Claimed::job_id`].
    fn job_id(&self) -> JobId {
        let index = self.pack.as_ref().map(|(index, _)| *index);
        JobId::of_claimed(self.explicit_id.as_deref(), &self.entry_id, index, self.partition, self.priority)
    }
}

/// Every entry a worker holds (claimed and not settled yet), for renewing their leases and
/// cancelling their runs: a slab, so a job's place is taken and given back without hashing.
#[derive(Default)]
struct Held {
    entries: Vec<Option<HeldJob>>,
    free: Vec<usize>,
    len: usize,
    /// Tokens of settled jobs that nothing holds any more, for the next jobs.
    spare_tokens: Vec<CancelToken>,
}

impl Held {
    /// Holds a claimed job; `left` is the count its entry's jobs share when it packs several.
    fn insert(&mut self, c: &Claimed, left: Option<&Rc<Cell<u16>>>) -> usize {
        self.len += 1;
        let explicit_id = c.job.as_ref().ok().and_then(|j| j.id.clone());
        let pack = c.pack.zip(left).map(|(place, left)| (place.index, left.clone()));
        let entry = Some(HeldJob {
            partition: c.partition,
            priority: c.priority,
            entry_id: c.entry_id.clone(),
            explicit_id,
            cancel: self.spare_tokens.pop().unwrap_or_default(),
            pack,
        });
        match self.free.pop() {
            Some(i) => {
                self.entries[i] = entry;
                i
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(mut job) = self.entries.get_mut(slot).and_then(Option::take) {
            self.len -= 1;
            self.free.push(slot);
            if job.cancel.reuse() {
                self.spare_tokens.push(job.cancel);
            }
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The job in `slot` finished: whether its entry is to be acknowledged with it (it was the
    /// entry's only job, or the last of its jobs to finish).
    fn finished(&self, slot: usize) -> bool {
        match self.entries.get(slot).and_then(Option::as_ref).and_then(|h| h.pack.as_ref()) {
            Some((_, left)) => {
                left.set(left.get().saturating_sub(1));
                left.get() == 0
            }
            None => true,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry held, once (the jobs of a packed entry share it).
    fn entries(&self) -> Vec<(u16, Priority, Arc<str>)> {
        let mut all: Vec<(u16, Priority, Arc<str>)> =
            self.entries.iter().flatten().map(|h| (h.partition, h.priority, h.entry_id.clone())).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    fn token(&self, slot: usize) -> CancelToken {
        self.entries[slot].as_ref().map_or_else(CancelToken::new, |h| h.cancel.clone())
    }

    /// Trips the token of every job held whose id `board` has.
    fn cancel_from(&self, board: &Board) {
        for held in self.entries.iter().flatten() {
            if !held.cancel.is_cancelled() && board.contains(&held.job_id()) {
                held.cancel.cancel();
            }
        }
    }
}

/// A claim in flight: it owns the worker's blocking connection until it returns; the jobs come
/// back with the indexes of those cancelled meanwhile.
type Claiming = LocalBoxFuture<'static, (Conn, crate::Result<(Vec<Claimed>, Vec<usize>)>, Duration)>;
/// A settle in flight, with the jobs it settles (`None`: given up after retries).
type Settling = LocalBoxFuture<'static, (Vec<Ran>, Option<Settled>, Duration)>;

impl WorkLoop {
    async fn run(mut self) {
        let metrics = WorkerMetrics::new(self.queue.name());
        let queue_name: Arc<str> = Arc::from(self.queue.name());
        let mut conn: Option<Conn> = None;
        let mut retry_wait = FIRST_RETRY_WAIT;
        let mut not_before = Instant::now();
        let mut claiming: Option<Claiming> = None;
        let mut settling: Option<Settling> = None;
        // Claimed, waiting for a free slot; running; finished, waiting for the next settle.
        let mut queued: VecDeque<(usize, Claimed)> = VecDeque::new();
        // Each run's future as it is (no box of its own: the set keeps it in its task node).
        let mut running = FuturesUnordered::new();
        let mut done: Vec<Ran> = Vec::new();
        // When the first job of `done` and the latest finished (µs since the epoch).
        let (mut first_done, mut last_done) = (0u64, 0u64);
        // Wakes the loop to look at `done` again; armed only while finished jobs wait.
        let settle_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(settle_timer);
        let mut timer_armed = false;
        // Every entry this worker holds (claimed and not settled), for lease renewal.
        let mut held = Held::default();
        let renew_every = self.queue.options().lease / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewing: Option<LocalBoxFuture<'static, ()>> = None;
        let capacity = self.config.batch.max(1);
        let mut seen_generation = 0;
        // Jobs per entry in the latest claim (entries may pack several jobs).
        let mut per_entry = 1usize;

        loop {
            let stopping = self.lifecycle.stopping();
            if stopping && held.is_empty() && claiming.is_none() && settling.is_none() {
                break;
            }
            // Start what fits.
            // Cancellations read since the last turn reach the runs in progress.
            let generation = self.board.borrow().generation();
            if generation != seen_generation {
                seen_generation = generation;
                held.cancel_from(&self.board.borrow());
            }
            // Jobs started (and polled once) this turn: past START_BUDGET the loop yields
            // (a handler may answer at once after long work of its own).
            let mut started_here = 0;
            if running.len() < self.config.concurrency && !queued.is_empty() {
                // This task's context: each job's first poll happens here, in this turn.
                let waker = std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await;
                let mut cx = std::task::Context::from_waker(&waker);
                while running.len() < self.config.concurrency
                    && started_here < START_BUDGET
                    && let Some((slot, c)) = queued.pop_front()
                {
                    started_here += 1;
                    let cancel = held.token(slot);
                    match self.start(slot, c, cancel, &queue_name, &mut cx) {
                        Started::Running(run) => running.push(run),
                        Started::Ran(ran) => finished(&mut done, (&mut first_done, &mut last_done), &held, ran),
                    }
                }
            }
            // Settle what finished: a whole batch of it, nothing else running, no job finished
            // for a moment (what still runs is slow), or the first has waited long enough.
            if settling.is_none() && !done.is_empty() {
                let now = clock::now_us();
                let (idle_us, within_us) = (SETTLE_IDLE.as_micros() as u64, SETTLE_WITHIN.as_micros() as u64);
                let nothing_else = running.is_empty() && queued.is_empty();
                // (A system clock set back counts as quiet: the settle goes out, never stalls.)
                let quiet = now >= last_done + idle_us || now < first_done;
                if nothing_else || quiet || done.len() >= capacity || now >= first_done + within_us {
                    // The next batch is likely the size of this one: room for it, not growth.
                    let room = done.len();
                    settling = Some(self.settle(std::mem::replace(&mut done, Vec::with_capacity(room))));
                    timer_armed = false;
                } else if !timer_armed {
                    let at_us = (last_done + idle_us).min(first_done + within_us);
                    let wait = Duration::from_micros(at_us.saturating_sub(now)).min(SETTLE_WITHIN);
                    let at = tokio::time::Instant::now() + wait;
                    settle_timer.as_mut().reset(at);
                    timer_armed = true;
                }
            }
            // Claim when half the batch is free, unless stopping or paused.
            let paused = self.lifecycle.paused_until();
            // Paused by an operator (every process's workers, through the board).
            let queue_paused = self.board.borrow().paused();
            let holding = held.len();
            let free = capacity.saturating_sub(holding);
            let retry_later = Instant::now() < not_before;
            // Not while a settle is in flight (one short round trip): claims that overlap
            // settles come back with a few jobs each, ten workers racing for every batch a
            // producer sends, and each job then costs Redis and this process more.
            if claiming.is_none()
                && settling.is_none()
                && !stopping
                && paused.is_none()
                && !queue_paused
                && !retry_later
                && (free >= capacity.div_ceil(2) || holding == 0)
            {
                match conn.take() {
                    // A claim waits for work on its own connection while held jobs run and
                    // settle beside it.
                    // Entries, not jobs: an entry may pack several.
                    Some(c) => claiming = Some(self.claim(c, free.div_ceil(per_entry).max(1), self.config.block)),
                    None => match self.queue.redis().blocking_connection().await {
                        Ok(c) => {
                            conn = Some(c);
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(consumer = %self.config.consumer, error = %e, "worker cannot connect; retrying");
                            not_before = Instant::now() + retry_wait;
                            retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
                        }
                    },
                }
            }
            let idle = claiming.is_none() && running.is_empty() && settling.is_none() && done.is_empty();
            // More to start now, after the turn has let other tasks run.
            let more_to_start =
                started_here == START_BUDGET && running.len() < self.config.concurrency && !queued.is_empty();

            tokio::select! {
                biased;
                Some(ran) = running.next(), if !running.is_empty() => {
                    finished(&mut done, (&mut first_done, &mut last_done), &held, ran);
                    // Whatever else finished meanwhile, in the same turn.
                    while let Some(Some(mut ran)) = running.next().now_or_never() {
                        ran.ack = held.finished(ran.slot);
                        done.push(ran);
                    }
                }
                (jobs, settled, took) = async { settling.as_mut().expect("guarded").await }, if settling.is_some() => {
                    settling = None;
                    let before = held.len();
                    for ran in &jobs {
                        held.remove(ran.slot);
                    }
                    self.board.borrow_mut().held(before, held.len());
                    metrics.settled(jobs.len(), took, held.is_empty());
                    if let Some(settled) = settled {
                        self.settled(jobs, settled);
                    }
                }
                (c, result, took) = async { claiming.as_mut().expect("guarded").await }, if claiming.is_some() => {
                    claiming = None;
                    match result {
                        Ok((jobs, cancelled)) => {
                            retry_wait = FIRST_RETRY_WAIT;
                            conn = Some(c);
                            if !jobs.is_empty() {
                                metrics.claimed(jobs.len(), took, held.is_empty());
                                let before = held.len();
                                // The count of unfinished jobs the jobs of one packed entry share.
                                let mut left: Option<Rc<Cell<u16>>> = None;
                                let entries = jobs.iter().filter(|c| c.pack.is_none_or(|p| p.index == 0)).count();
                                per_entry = (jobs.len() / entries.max(1)).max(1);
                                let mut cancelled = cancelled.into_iter().peekable();
                                for (i, job) in jobs.into_iter().enumerate() {
                                    if let Some(place) = job.pack
                                        && place.index == 0
                                    {
                                        left = Some(Rc::new(Cell::new(place.of)));
                                    }
                                    let slot = held.insert(&job, left.as_ref());
                                    if cancelled.next_if_eq(&i).is_some() {
                                        held.token(slot).cancel();
                                    }
                                    queued.push_back((slot, job));
                                }
                                self.board.borrow_mut().held(before, held.len());
                            }
                        }
                        Err(e) if e.is_missing_group() => {
                            // The queue was reset (a new benchmark run): join its new consumer group.
                            conn = Some(c);
                            if let Err(e) = self.queue.ensure_group().await {
                                tracing::warn!(consumer = %self.config.consumer, error = %e, "cannot rejoin the consumer group");
                                not_before = Instant::now() + retry_wait;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(consumer = %self.config.consumer, error = %e, "claim failed; reconnecting");
                            crate::runtime::telemetry::redis_error("worker");
                            not_before = Instant::now() + retry_wait;
                            retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
                        }
                    }
                }
                _ = &mut settle_timer, if timer_armed => timer_armed = false,
                _ = tokio::task::yield_now(), if more_to_start => {}
                _ = renew.tick(), if !held.is_empty() && renewing.is_none() => renewing = Some(self.renew(&held)),
                _ = async { renewing.as_mut().expect("guarded").await }, if renewing.is_some() => renewing = None,
                // Nothing in hand: wait out a retry, a pause, or a stop (checked at the top).
                _ = async {
                    let until = paused.map_or(not_before, |p| p.max(not_before));
                    // Paused by an operator: look again when the watcher may have read a resume.
                    let until = if queue_paused { until.max(Instant::now() + super::board::POLL_EVERY) } else { until };
                    let until = until.max(Instant::now() + Duration::from_millis(1)).min(Instant::now() + self.config.block);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await
                }, if idle => {}
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

    /// One claim of up to `count` jobs on the worker's own connection, waiting up to `block`.
    fn claim(&self, mut conn: Conn, count: usize, block: Duration) -> Claiming {
        let (queue, consumer) = (self.queue.clone(), self.config.consumer.clone());
        let (plan, gate) = {
            let board = self.board.borrow();
            (ClaimPlan { service: self.config.service, limit: board.limit(), lanes: board.lanes() }, board.gate())
        };
        let lifecycle = self.lifecycle.clone();
        Box::pin(async move {
            // Its turn (see `ClaimGate`); stopping, it claims nothing.
            let Some(_turn) = gate.turn(|| lifecycle.stopping()).await else {
                return (conn, Ok((Vec::new(), Vec::new())), Duration::ZERO);
            };
            let began = Instant::now();
            let result = match queue.claim_planned(&mut conn, &consumer, count, block, &plan).await {
                Ok(jobs) => mark_active(&queue, &consumer, jobs).await,
                Err(e) => Err(e),
            };
            (conn, result, began.elapsed())
        })
    }

    /// Starts one claimed job with its handler and polls it once, in this task: a job that
    /// answers in that poll (or never starts) comes back finished; one that waits comes back
    /// as the future that finishes it, for the set of runs in progress.
    fn start(
        &self,
        slot: usize,
        claimed: Claimed,
        cancel: CancelToken,
        queue_name: &Arc<str>,
        cx: &mut std::task::Context<'_>,
    ) -> Started<impl Future<Output = Ran> + 'static> {
        let never_ran =
            |claimed, outcome| Started::Ran(Ran { slot, claimed, outcome, started_us: 0, finished_us: 0, ack: true });
        let id = claimed.job_id();
        let job = match &claimed.job {
            Ok(job) => job,
            Err(poison) => {
                let outcome = Outcome::Dead(poison.error.to_string());
                return never_ran(claimed, outcome);
            }
        };
        // Cancelled before it started (its hash said so at claim time, or this process read its
        // id): it does not run.
        if cancel.is_cancelled() || self.board.borrow().contains(&id) {
            return never_ran(claimed, Outcome::Cancelled);
        }
        let mut timeout = job.timeout_ms.map(Duration::from_millis);
        if let Some(deadline) = job.deadline_ms {
            let now_ms = clock::now_us() / 1000;
            if now_ms >= deadline {
                let late = Duration::from_millis(now_ms - deadline);
                let why = format!("its deadline passed {} before it could start", humantime::format_duration(late));
                return never_ran(claimed, Outcome::Dead(why));
            }
            let left = Duration::from_millis(deadline - now_ms);
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        let start = Start {
            id,
            attempt: job.attempt,
            max_attempts: job.max_attempts.unwrap_or(self.queue.options().max_attempts).max(1),
            queue: queue_name.clone(),
            enqueued_us: claimed.enqueued_us(),
            timeout,
            headers: job.headers.clone(),
            cancel: cancel.clone(),
        };
        let started_us = clock::now_us();
        let mut running = match self.registry.begin(&job.name, &job.payload, start) {
            Ok(running) => running,
            // Refused (no handler, a payload that does not decode): dead, never ran.
            Err(refused) => return Started::Ran(ran(slot, claimed, refused, &cancel, started_us)),
        };
        if let Some(attempt) = running.poll_once(cx) {
            return Started::Ran(ran(slot, claimed, attempt, &cancel, started_us));
        }
        Started::Running(async move {
            let attempt = running.finish().await;
            ran(slot, claimed, attempt, &cancel, started_us)
        })
    }

    /// Renews the lease of every job held, beside the loop: the loop goes on running, settling
    /// and claiming while the renewal waits for Redis (a claim in flight holds the pool's turn,
    /// so a loop stalled here would stall every worker of the pool).
    fn renew(&self, held: &Held) -> LocalBoxFuture<'static, ()> {
        let entries = held.entries();
        let (queue, consumer) = (self.queue.clone(), self.config.consumer.clone());
        Box::pin(async move {
            let entries: Vec<(u16, Priority, &str)> = entries.iter().map(|(p, l, id)| (*p, *l, &**id)).collect();
            if let Err(e) = queue.renew_held(&consumer, &entries).await {
                tracing::warn!(consumer = %consumer, error = %e, "lease renewal failed");
            }
        })
    }

    /// Settles finished jobs, retrying while Redis is unreachable (a job is only done once Redis
    /// says so); gives up past the lease, when the jobs will have been reclaimed anyway.
    fn settle(&self, jobs: Vec<Ran>) -> Settling {
        let (queue, consumer, lifecycle) = (self.queue.clone(), self.config.consumer.clone(), self.lifecycle.clone());
        Box::pin(async move {
            let batch: Vec<(&Claimed, &Outcome, bool)> = jobs.iter().map(|r| (&r.claimed, &r.outcome, r.ack)).collect();
            let mut wait = FIRST_RETRY_WAIT;
            let began = Instant::now();
            loop {
                match queue.settle_acking(&batch).await {
                    Ok(s) => return (jobs, Some(s), began.elapsed()),
                    Err(e) => {
                        crate::runtime::telemetry::redis_error("worker");
                        if wait > queue.options().lease || (lifecycle.stopping() && wait >= MAX_RETRY_WAIT) {
                            tracing::error!(consumer = %consumer, error = %e, jobs = batch.len(), "giving up settling a batch; its jobs will be reclaimed");
                            return (jobs, None, began.elapsed());
                        }
                        tracing::warn!(consumer = %consumer, error = %e, "settle failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_RETRY_WAIT);
                    }
                }
            }
        })
    }

    /// A settle came back: record it and tell the observer.
    fn settled(&mut self, jobs: Vec<Ran>, settled: Settled) {
        let settled_us = clock::now_us();
        let max_attempts = self.queue.options().max_attempts;
        let records: Vec<SettledJob<'_>> = jobs
            .iter()
            .map(|ran| {
                let job = ran.claimed.job.as_ref().ok();
                let last = job.is_none_or(|j| j.attempt + 1 >= j.max_attempts.unwrap_or(max_attempts).max(1));
                let settlement = match &ran.outcome {
                    Outcome::Cancelled => Settlement::Cancelled,
                    _ if ran.started_us == 0 => Settlement::Refused,
                    Outcome::Completed | Outcome::Returned(_) => Settlement::Completed,
                    Outcome::Dead(_) => Settlement::Dead,
                    Outcome::Failed(_) | Outcome::RetryAfter(..) if last => Settlement::Dead,
                    Outcome::Failed(_) | Outcome::RetryAfter(..) => Settlement::Retried,
                };
                SettledJob {
                    name: job.map_or("", |j| j.name.as_str()),
                    headers: job.and_then(|j| j.headers.as_deref()),
                    seq: job.and_then(|j| j.seq),
                    attempt: job.map_or(0, |j| j.attempt),
                    enqueued_us: ran.claimed.enqueued_us(),
                    started_us: ran.started_us,
                    finished_us: ran.finished_us,
                    settlement,
                }
            })
            .collect();
        record(&mut self.tally, &records, settled, settled_us);
        if let Some(o) = &mut self.observer {
            o.settled(&SettledBatch { jobs: &records, settled, settled_us });
        }
    }
}

/// What [`WorkLoop::start`] made of a claimed job (matched at once, never stored: boxing a
/// variant would cost an allocation per job).
#[allow(clippy::large_enum_variant)]
enum Started<F> {
    /// Finished already: answered in its first poll, or never ran.
    Ran(Ran),
    /// Waiting: this future finishes it.
    Running(F),
}

/// Adds a finished run to `done`, noting when the first of `done` and the latest finished (the
/// job read the clock then; one that never ran did not) and whether its entry can be
/// acknowledged.
fn finished(done: &mut Vec<Ran>, (first_us, last_us): (&mut u64, &mut u64), held: &Held, mut ran: Ran) {
    let now = if ran.finished_us > 0 { ran.finished_us } else { clock::now_us() };
    if done.is_empty() {
        *first_us = now;
    }
    *last_us = now;
    ran.ack = held.finished(ran.slot);
    done.push(ran);
}

/// A run that ended with `attempt` (begun at `started_us`), as the worker settles it.
fn ran(slot: usize, claimed: Claimed, attempt: Attempt, cancel: &CancelToken, started_us: u64) -> Ran {
    let outcome = match attempt {
        Attempt::Done(Ok(None)) => Outcome::Completed,
        Attempt::Done(Ok(Some(result))) => Outcome::Returned(result),
        // Asked to stop by a cancellation, it failed: cancelled, not retried.
        Attempt::TimedOut(reason) => Outcome::Failed(reason),
        Attempt::Done(Err(_)) if cancel.is_cancelled() => Outcome::Cancelled,
        Attempt::Done(Err(JobError::Retry { reason })) => Outcome::Failed(reason),
        Attempt::Done(Err(JobError::RetryAfter { delay, reason })) => Outcome::RetryAfter(delay, reason),
        Attempt::Done(Err(JobError::Fail { reason })) => Outcome::Dead(reason),
        Attempt::Refused(reason) => {
            return Ran { slot, claimed, outcome: Outcome::Dead(reason), started_us: 0, finished_us: 0, ack: true };
        }
    };
    Ran { slot, claimed, outcome, started_us, finished_us: clock::now_us(), ack: true }
}

/// Marks the tracked jobs of a claim active (one round trip, only when the claim has any) and
/// answers which of them (their indexes, in order) were cancelled meanwhile.
async fn mark_active(queue: &Queue, consumer: &str, jobs: Vec<Claimed>) -> crate::Result<(Vec<Claimed>, Vec<usize>)> {
    let tracked: Vec<(usize, JobId)> = jobs
        .iter()
        .enumerate()
        .filter(|(_, c)| c.job.as_ref().is_ok_and(|j| j.keep_ms.is_some()))
        .map(|(i, c)| (i, c.job_id()))
        .collect();
    let mut cancelled = Vec::new();
    if !tracked.is_empty() {
        let ask: Vec<(u16, &JobId, u16)> = tracked
            .iter()
            .map(|(i, id)| (jobs[*i].partition, id, jobs[*i].job.as_ref().map_or(0, |j| j.attempt)))
            .collect();
        for ((i, _), was) in tracked.iter().zip(queue.mark_active(consumer, &ask).await?) {
            if was {
                cancelled.push(*i);
            }
        }
    }
    Ok((jobs, cancelled))
}

/// The worker's own figures: every job, latency from its enqueue time.
fn record(tally: &mut Tally, jobs: &[SettledJob<'_>], settled: Settled, settled_us: u64) {
    let s = &mut tally.stats;
    s.completed += settled.completed;
    s.retried += settled.retried;
    s.dead += settled.dead;
    s.duplicates += settled.duplicates;
    for job in jobs {
        if job.started_us == 0 {
            continue;
        }
        s.started += 1;
        s.enqueue_to_start.record_us(job.started_us.saturating_sub(job.enqueued_us));
        s.start_to_complete.record_us(job.finished_us.saturating_sub(job.started_us));
        if job.settlement == Settlement::Completed {
            s.end_to_end.record_us(settled_us.saturating_sub(job.enqueued_us));
        }
    }
    tally.jobs += jobs.len() as u64;
}
