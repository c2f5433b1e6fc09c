//! A producer enqueues jobs in pipelined batches following its plan.
//!
//! Open loop (a planned rate): job `k` is due at `start + k / rate`, and is stamped with that
//! *intended* time, so if the producer (or Redis) stalls, the stall lands in the measured
//! latency instead of silently lowering the load; how far behind its plan the producer was
//! is recorded as schedule lag. Closed loop ("max"): the next batch goes as soon as Redis
//! acknowledged the last, and each job is stamped with its real send time.

use super::collector::ProducerReport;
use super::reporter::BenchStamp;
use crate::bench::driver::DriverLink;
use crate::bench::scenario::Schedule;
use crate::bench::stats::ProducerStats;
use crate::runtime::clock;
use crate::runtime::queue::{Envelope, NewJob, Queue};
use crate::runtime::worker::lifecycle::{Join, Lifecycle, Stop};
use actix::prelude::*;
use rand::Rng;
use std::time::{Duration, Instant};

/// Report to the collector at least this often.
const REPORT_EVERY: Duration = Duration::from_millis(250);
/// Wait after a failed enqueue call before sending the same batch again.
const RETRY_WAIT: Duration = Duration::from_millis(100);

/// When a producer stops producing measured jobs.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// After this many measured jobs (warm-up jobs not counted); 0 sends only the warm-up.
    Jobs(u64),
    /// When this long has passed since the warm-up ended (by the jobs' intended times).
    After(Duration),
}

/// Everything one producer needs to know about its share of the load.
#[derive(Debug, Clone)]
pub struct ProducerPlan {
    /// This producer's index among `producers` (see [`ProducerPlan::seq`]).
    pub index: u64,
    /// Producers sharing the load.
    pub producers: u64,
    /// The producers' first sequence number (those below were sent before this run's load).
    pub first_seq: u64,
    /// This producer's share of the send plan.
    pub rate: Schedule,
    /// Most jobs per pipelined enqueue call.
    pub batch: usize,
    /// How long, from the producer's start, the jobs it sends count as warm-up (processed and
    /// audited, not measured).
    pub warmup: Duration,
    /// When the producer stops sending measured jobs.
    pub end: End,
    /// Benchmark run number stamped on every job.
    pub run: u32,
    /// Job types with their payload and cumulative weight.
    pub mix: Vec<MixEntry>,
}

impl ProducerPlan {
    /// The sequence number of this producer's job `j`. Producers take turns at blocks of
    /// `batch` numbers, so the numbers of all of them together stay dense (the audit bitmap is
    /// as long as the highest) and the jobs of one batch are consecutive (a settle sets their
    /// audit bits in one field per 63 of them).
    pub fn seq(&self, j: u64) -> u64 {
        let block = self.batch.max(1) as u64;
        self.first_seq + (j / block * self.producers + self.index) * block + j % block
    }
}

/// One job type of a producer's mix.
#[derive(Debug, Clone)]
pub struct MixEntry {
    /// The job type's name.
    pub name: String,
    /// The payload every job of this entry carries.
    pub payload: Vec<u8>,
    /// The sum of the weights of this entry and every entry before it.
    pub cumulative_weight: u32,
    /// Tracked jobs: how long their status is kept (ms); `None`: untracked.
    pub keep_ms: Option<u64>,
}

/// Where a producer's jobs go.
#[derive(Clone)]
pub enum Sink {
    /// Into conveyor's queue (a native run).
    Queue(Queue),
    /// To a driver, which enqueues them into its own queue; the name labels the metrics.
    Driver(DriverLink, String),
}

impl Sink {
    fn label(&self) -> &str {
        match self {
            Sink::Queue(q) => q.keys().queue(),
            Sink::Driver(_, name) => name,
        }
    }

    /// Sends one batch; `warm[i]` says whether job `i` is warm-up.
    async fn send(&self, batch: &[Envelope], warm: &[bool]) -> crate::runtime::error::Result<()> {
        match self {
            // Tracked jobs go through the enqueue script (their status hash); others are XADDs.
            Sink::Queue(queue) if batch.iter().any(|j| j.keep_ms.is_some()) => {
                let jobs = batch.iter().map(|e| NewJob { envelope: e.clone(), ..NewJob::default() }).collect();
                queue.enqueue_jobs(jobs).await.map(drop)
            }
            Sink::Queue(queue) => queue.enqueue_batch(batch).await.map(drop),
            Sink::Driver(link, _) => link.enqueue(batch, warm).await,
        }
    }
}

/// An actor that enqueues its [`ProducerPlan`] from the moment it starts, reports what it
/// measured to the collector, and finishes when the plan is done or it is told to [`Stop`];
/// [`Join`] waits for that.
pub struct Producer {
    sink: Sink,
    plan: ProducerPlan,
    collector: Recipient<ProducerReport>,
    lifecycle: Lifecycle,
}

impl Producer {
    /// A producer of `plan` on `queue`, reporting to `collector`; it sends once started.
    pub fn new(queue: Queue, plan: ProducerPlan, collector: Recipient<ProducerReport>) -> Self {
        Self::to(Sink::Queue(queue), plan, collector)
    }

    /// A producer of `plan` into `sink`, reporting to `collector`; it sends once started.
    pub fn to(sink: Sink, plan: ProducerPlan, collector: Recipient<ProducerReport>) -> Self {
        Self { sink, plan, collector, lifecycle: Lifecycle::new() }
    }
}

impl Actor for Producer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let work = produce(self.sink.clone(), self.plan.clone(), self.collector.clone(), self.lifecycle.clone());
        ctx.spawn(work.into_actor(self));
    }
}

impl Handler<Stop> for Producer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) -> Self::Result {
        self.lifecycle.request_stop();
        Box::pin(self.lifecycle.finished())
    }
}

impl Handler<Join> for Producer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Join, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.lifecycle.finished())
    }
}

async fn produce(sink: Sink, plan: ProducerPlan, collector: Recipient<ProducerReport>, lifecycle: Lifecycle) {
    let start_us = clock::now_us();
    let warmup_end_us = start_us + plan.warmup.as_micros() as u64;
    let measure_end_us = match plan.end {
        End::After(d) => Some(warmup_end_us + d.as_micros() as u64),
        End::Jobs(_) => None,
    };
    let total_weight = plan.mix.last().map_or(1, |m| m.cumulative_weight);
    let mut rng = rand::rng();
    let mut stats = ProducerStats::default();
    let mut last_report = Instant::now();
    // k: jobs sent so far by this producer; measured: of those, outside warm-up.
    let (mut k, mut measured) = (0u64, 0u64);
    let mut batch: Vec<Envelope> = Vec::with_capacity(plan.batch);
    // Of each job in `batch`: whether it was sent during warm-up.
    let mut warm: Vec<bool> = Vec::with_capacity(plan.batch);
    // Shared by every job (cloning one is a count).
    let stamps: [std::sync::Arc<[u8]>; 2] =
        [false, true].map(|warmup| BenchStamp { run: plan.run, warmup }.encode().into());
    let enqueue_call = crate::runtime::telemetry::redis_operation(sink.label(), "enqueue");
    let mut timer = crate::runtime::timer::LoopTimer::new();

    'plan: while !lifecycle.stopping() {
        let now = clock::now_us();
        // How many jobs are due now, and when job k was meant to go.
        let (due, intended_of): (u64, Box<dyn Fn(u64) -> u64>) = match &plan.rate {
            Schedule::Max => (plan.batch as u64, Box::new(move |_| now)),
            Schedule::Open(open) => {
                let planned = open.jobs_due(now - start_us) + 1;
                let open = open.clone();
                let intended = move |j: u64| start_us + open.offset_us(j);
                if planned <= k {
                    // Not due yet: sleep until job k's time, precisely (the tokio timer would
                    // send up to 1 ms late, and the latency would rightly include it), spending
                    // at most a tenth of the time between jobs awake ahead of it.
                    let wait = intended(k).saturating_sub(now);
                    let gap = intended(k).saturating_sub(intended(k.saturating_sub(1)));
                    timer.sleep_precisely(Duration::from_micros(wait), Duration::from_micros(gap / 10)).await;
                    continue;
                }
                ((planned - k).min(plan.batch as u64), Box::new(intended))
            }
        };
        // The envelopes of the last batch are written over in place (a job keeps the name and
        // payload buffers of the one before it in its place): no allocation per job.
        let mut filled = 0usize;
        warm.clear();
        let mut batch_measured = 0u64;
        for j in k..k + due {
            let intended_us = intended_of(j);
            let warmup = intended_us < warmup_end_us;
            if !warmup {
                let over = match (plan.end, measure_end_us) {
                    (End::Jobs(n), _) => measured + batch_measured >= n,
                    (_, Some(end)) => intended_us >= end,
                    _ => false,
                };
                if over {
                    if filled == 0 {
                        break 'plan;
                    }
                    break;
                }
                batch_measured += 1;
            }
            let pick = rng.random_range(0..total_weight);
            let entry = plan.mix.iter().find(|m| pick < m.cumulative_weight).unwrap_or(&plan.mix[0]);
            if filled == batch.len() {
                batch.push(Envelope::default());
            }
            let job = &mut batch[filled];
            filled += 1;
            job.name.clone_from(&entry.name);
            job.payload.clone_from(&entry.payload);
            // The intended time is the job's enqueue time: latency counts from when it was due.
            job.enqueued_us = Some(intended_us);
            // Below 2^32 (validation bounds a scenario's jobs); beyond, a job is unaudited.
            job.seq = u32::try_from(plan.seq(j)).ok();
            job.headers = Some(stamps[usize::from(warmup)].clone());
            job.keep_ms = entry.keep_ms;
            warm.push(warmup);
        }
        // Past `filled`: envelopes kept for a larger batch later.
        let jobs = &batch[..filled];
        // Send; on failure send the same jobs again (same sequence numbers): a batch Redis
        // half-applied then shows up as duplicates in the audit, never as lost jobs.
        loop {
            let call = Instant::now();
            match sink.send(jobs, &warm).await {
                Ok(_) => {
                    enqueue_call.record(call.elapsed());
                    stats.enqueue_call.record_us(call.elapsed().as_micros() as u64);
                    break;
                }
                Err(e) => {
                    stats.enqueue_errors += 1;
                    crate::runtime::telemetry::redis_error("producer");
                    tracing::warn!(error = %e, jobs = jobs.len(), "enqueue failed; sending the batch again");
                    if lifecycle.stopping() {
                        break 'plan;
                    }
                    tokio::time::sleep(RETRY_WAIT).await;
                }
            }
        }
        let sent = jobs.len() as u64;
        let intended = |i: usize| jobs[i].enqueued_us.unwrap_or(now);
        if let Some(first) = warm.iter().position(|w| !w)
            && stats.measure_start_us == 0
        {
            stats.measure_start_us = intended(first);
        }
        if let Schedule::Open(_) = plan.rate {
            stats.schedule_lag.record_us(now.saturating_sub(intended(0)));
        }
        let warm = warm.iter().filter(|w| **w).count() as u64;
        stats.produced += sent;
        stats.produced_warmup += warm;
        measured += sent - warm;
        k += sent;
        if last_report.elapsed() >= REPORT_EVERY {
            collector.do_send(ProducerReport { stats: std::mem::take(&mut stats) });
            last_report = Instant::now();
        }
    }
    collector.do_send(ProducerReport { stats });
    lifecycle.finish();
}

/// The end of a producer's plan from a scenario's `jobs` or `duration` (validation makes sure
/// one of them is set).
pub fn producer_end(jobs: Option<u64>, duration: Option<Duration>) -> End {
    match (jobs, duration) {
        (Some(n), _) => End::Jobs(n),
        (None, Some(d)) => End::After(d),
        (None, None) => End::Jobs(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(index: u64, producers: u64, batch: usize, first_seq: u64) -> ProducerPlan {
        ProducerPlan {
            index,
            producers,
            first_seq,
            rate: Schedule::Max,
            batch,
            warmup: Duration::ZERO,
            end: End::Jobs(0),
            run: 1,
            mix: Vec::new(),
        }
    }

    #[test]
    fn producers_take_turns_at_blocks_of_a_batch_of_sequence_numbers() {
        let plans: Vec<ProducerPlan> = (0..3).map(|i| plan(i, 3, 4, 100)).collect();
        assert_eq!((0..6).map(|j| plans[1].seq(j)).collect::<Vec<_>>(), [104, 105, 106, 107, 116, 117]);
        // Together, 8 jobs each: every number from 100 on, once.
        let mut all: Vec<u64> = plans.iter().flat_map(|p| (0..8).map(|j| p.seq(j))).collect();
        all.sort_unstable();
        assert_eq!(all, (100..124).collect::<Vec<_>>());
        // One producer numbers its jobs 0, 1, 2, ... whatever its batch.
        assert_eq!((0..5).map(|j| plan(0, 1, 2, 0).seq(j)).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    }
}
