//! The collector merges what producers and workers report (in batches) into the run's
//! statistics, and keeps the deepest queue the scheduler's depth samples showed. Everything it
//! holds has a fixed size, however long the run (a soak must not see it grow). In a worker-only process
//! it also publishes its merged statistics to Redis, stamped with the time it took them, four
//! times a second while it works and for a while after: the process that owns the run merges
//! the histograms of every worker process at the end, and its progress and throughput over time
//! come from these publications while the run goes (a rate from two of them is exact however
//! late the reader looks, and they come several times per one-second sample).

use crate::bench::run::RunBook;
use crate::bench::stats::{ProducerStats, WorkerStats};
use crate::runtime::queue::Queue;
pub use crate::runtime::worker::DepthSample;
use actix::prelude::*;
use metrics::Gauge;
use std::time::{Duration, Instant};

/// How often a worker-only process publishes its statistics: several times per progress sample
/// (one a second), so each sample sees a fresh publication of every live process.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// A process that has nothing new publishes anyway (a heartbeat: its rate is 0, not unknown)
/// until it has been idle this long.
const HEARTBEAT_FOR: Duration = Duration::from_secs(10);

/// A worker's statistics since its last report, for jobs of run `run`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct WorkerReport {
    /// The run the jobs were stamped with; the collector drops reports of an older run and starts
    /// afresh on a newer one.
    pub run: u32,
    /// What the worker measured and counted since its last report (merged with `add`).
    pub stats: WorkerStats,
}

/// A producer's statistics since its last report.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ProducerReport {
    /// What the producer measured and counted since its last report (merged with `add`).
    pub stats: ProducerStats,
}

/// Everything merged so far, for the coordinator (and progress display).
#[derive(Message, Debug)]
#[rtype(result = "Snapshot")]
pub struct TakeSnapshot;

/// The run's merged statistics at one moment, answered to [`TakeSnapshot`].
#[derive(Debug, Clone, Default, MessageResponse)]
pub struct Snapshot {
    /// The run the worker statistics belong to (0 before any job was seen).
    pub run: u32,
    /// Every local worker's statistics merged (worker processes elsewhere publish their own).
    pub workers: WorkerStats,
    /// Every producer's statistics merged.
    pub producers: ProducerStats,
    /// Most jobs seen waiting in any depth sample.
    pub max_waiting: u64,
}

/// The few figures a progress sample needs, without copying any histogram.
#[derive(Message, Debug)]
#[rtype(result = "Counts")]
pub struct TakeCounts;

/// The running totals a progress line shows, answered to [`TakeCounts`].
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct Counts {
    /// Jobs acknowledged by Redis so far.
    pub produced: u64,
    /// Jobs completed so far by the workers that report here.
    pub completed: u64,
    /// End-to-end p99 so far (µs); None before the first measured job.
    pub end_to_end_p99_us: Option<u64>,
}

/// Where a worker-only process publishes its statistics.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The queue whose run statistics hash the process writes to.
    pub queue: Queue,
    /// Names this process in the run's stats hash.
    pub instance: String,
}

/// Merges producer and worker reports into the run's statistics (see the module doc); one per
/// process, with a [`Publisher`] when the process only runs workers.
#[derive(Debug, Default)]
pub struct Collector {
    /// Run whose statistics are being merged; reports of an older run are dropped, a newer run
    /// starts afresh (a long-lived worker process serves run after run).
    run: u32,
    workers: WorkerStats,
    producers: ProducerStats,
    max_waiting: u64,
    /// Set in worker-only processes.
    publisher: Option<Publisher>,
    /// When a report last changed the statistics (None before the first).
    changed_at: Option<Instant>,
    /// The schedule-lag gauge fed from producer reports (see [`Collector::exporting`]).
    schedule_lag: Option<Gauge>,
}

impl Collector {
    /// A collector that also publishes what it merged through `publisher`, when given one
    /// (worker-only processes); `None` in the process that owns the run.
    pub fn new(publisher: Option<Publisher>) -> Self {
        Self { publisher, ..Default::default() }
    }

    /// Also exports what reports say as the metrics of `queue` (every report, whatever its run).
    pub fn exporting(mut self, queue: &str) -> Self {
        self.schedule_lag = Some(crate::runtime::telemetry::schedule_lag(queue));
        self
    }

    fn publish(&mut self, ctx: &mut Context<Self>) {
        let Some(p) = self.publisher.clone() else { return };
        let live = self.changed_at.is_some_and(|at| at.elapsed() <= HEARTBEAT_FOR);
        if !live || self.run == 0 {
            return;
        }
        let (run, bytes) = (self.run, self.workers.encode(crate::runtime::clock::now_us()));
        ctx.spawn(
            async move {
                if let Err(e) = p.queue.publish_stats(run, &p.instance, &bytes).await {
                    tracing::warn!(error = %e, "publishing worker statistics failed; retrying at the next tick");
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for Collector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.publisher.is_some() {
            ctx.run_interval(PUBLISH_EVERY, |act, ctx| {
                act.publish(ctx);
                // A worker process may serve for days: keep its RSS to what it holds.
                crate::runtime::process::release_free_memory_in_background();
            });
        }
    }
}

impl Handler<WorkerReport> for Collector {
    type Result = ();

    fn handle(&mut self, report: WorkerReport, _: &mut Context<Self>) {
        // The workers export their own metrics; a report is the benchmark's view of them.
        if report.run < self.run {
            return;
        }
        if report.run > self.run {
            self.run = report.run;
            self.workers = WorkerStats::default();
        }
        self.workers.add(&report.stats);
        self.changed_at = Some(Instant::now());
    }
}

impl Handler<ProducerReport> for Collector {
    type Result = ();

    fn handle(&mut self, report: ProducerReport, _: &mut Context<Self>) {
        if let Some(gauge) = &self.schedule_lag {
            // The worst schedule lag of the report.
            let lag = report.stats.schedule_lag.histogram();
            gauge.set(if lag.is_empty() { 0.0 } else { lag.max() as f64 / 1e6 });
        }
        self.producers.add(&report.stats);
    }
}

impl Handler<DepthSample> for Collector {
    type Result = ();

    fn handle(&mut self, sample: DepthSample, _: &mut Context<Self>) {
        self.max_waiting = self.max_waiting.max(sample.depth.waiting);
    }
}

impl Handler<TakeSnapshot> for Collector {
    type Result = Snapshot;

    fn handle(&mut self, _: TakeSnapshot, _: &mut Context<Self>) -> Snapshot {
        Snapshot {
            run: self.run,
            workers: self.workers.clone(),
            producers: self.producers.clone(),
            max_waiting: self.max_waiting,
        }
    }
}

impl Handler<TakeCounts> for Collector {
    type Result = Counts;

    fn handle(&mut self, _: TakeCounts, _: &mut Context<Self>) -> Counts {
        Counts {
            produced: self.producers.produced,
            completed: self.workers.counts.completed,
            end_to_end_p99_us: self.workers.end_to_end.p99_us(),
        }
    }
}
