//! The result of a run: what is printed at the end and written as JSON. Percentiles come from
//! the merged HDR histograms; counts come from the audit bitmap in Redis, so a job that was
//! never finished cannot be missed.

pub mod charts;
pub mod compare;
pub mod console;
pub mod drivers;
pub mod files;
pub mod html;
pub mod markdown;
pub mod metric;
pub mod suite;
pub mod table;
pub mod timeline;

pub use suite::{CellResult, MetricSummary, SuiteResult, TargetOutcome};
pub use timeline::{Sample, Trends};

use crate::bench::probe::ceiling::Ceiling;
use crate::bench::probe::system::{RedisInfo, SystemInfo};
use crate::bench::scenario::Mode;
use crate::bench::stats::Latency;
use crate::runtime::queue::Depth;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Version of the JSON layout (`result.json` and `schema/result.schema.json`); bumped on any
/// incompatible change.
pub const SCHEMA_VERSION: u32 = 3;

/// Everything one benchmark run measured and counted: printed by [`RunResult::summary`], and
/// one of a cell's `runs` in `result.json` ([`SuiteResult`]; layout in
/// `schema/result.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The JSON layout this result follows ([`SCHEMA_VERSION`]), so a reader can refuse one it does
    /// not know.
    pub schema_version: u32,
    /// Name of the scenario that ran (its file name without `.toml` unless the file names it).
    pub scenario: String,
    /// The scenario's one-line description of what it shows.
    pub description: String,
    /// The queue the run used (the scenario's `queue.name`, else `bench-<scenario>`).
    pub queue: String,
    /// Run number on the queue (stamped on every job).
    pub run: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// When the run ended, RFC 3339, UTC.
    pub finished_at: String,
    /// Ctrl-C or SIGTERM cut the run short.
    pub interrupted: bool,
    /// How the run was set up: producers, rate, workers and batch sizes.
    pub setup: Setup,
    /// How fast jobs were completed over the measured window, and enqueued over the produce
    /// phase (jobs/s).
    pub throughput: Throughput,
    /// What happened to the jobs, from the producers' and workers' counts and the audit bitmap.
    pub counts: Counts,
    /// Microseconds.
    pub latency_us: Latencies,
    /// Jobs still in Redis when the run ended (0 after a full drain).
    pub remaining: Depth,
    /// Most jobs seen waiting in the ready stream in any of the scheduler's depth samples: how far
    /// the workers fell behind.
    pub max_waiting: u64,
    /// The Redis ceiling measured in the same run (plain clients, no runtime); `None` when the
    /// scenario did not ask for it.
    pub ceiling: Option<Ceiling>,
    /// CPU time and memory of this process over the run.
    pub resources: Resources,
    /// The machine and build the run ran on, so figures are only compared like with like.
    pub system: SystemInfo,
    /// The Redis server the run used: version, persistence and eviction settings.
    pub redis: RedisInfo,
    /// What the run exercised.
    pub mode: Mode,
    /// Jobs per second the closed-loop capacity probe measured, when a rate was a share of it.
    pub capacity: Option<f64>,
    /// How long each phase of the run took.
    pub phases: PhaseTimes,
    /// RSS of this process and Redis bytes per queued job.
    pub memory: Memory,
    /// Each queue operation timed alone (mode "queue-ops"), microseconds.
    pub ops_us: BTreeMap<String, Percentiles>,
    /// Worker pauses injected during the run.
    pub pauses: Vec<PauseRecord>,
    /// One sample a second.
    pub timeline: Vec<Sample>,
    /// Memory slopes and throughput steadiness over the produce phase (runs of 5 s or more).
    pub trends: Option<Trends>,
    /// The driver that ran another queue (absent for conveyor's own, native, run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverRun>,
    /// The merged histograms behind `latency_us` and `ops_us`, by stage or `ops.<op>`.
    #[serde(skip)]
    pub histograms: BTreeMap<String, Latency>,
}

/// What a driver run adds to a result: which queue ran, how, and what its processes cost.
/// In a driver run, `resources` is the CPU of the driver's processes (the driver and every
/// worker process it started), not conveyor's.
#[derive(Debug, Clone, Serialize)]
pub struct DriverRun {
    /// The driver's name (`bullmq`).
    pub name: String,
    /// The queue library and its version, as the driver reported it.
    pub library: String,
    /// The worker settings the driver chose, as it reported them.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// The driver's process and the worker processes it named.
    pub pids: Vec<u32>,
    /// Records the driver sent (duplicates included).
    pub records: u64,
    /// Records of sequence numbers conveyor never sent (counted as duplicates).
    pub unexpected: u64,
}

/// How long each phase took.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct PhaseTimes {
    /// Workers running with nothing to do before producers started.
    pub idle_seconds: f64,
    /// Filling the backlog (before the workers started).
    pub backlog_seconds: f64,
    /// From the producers' start until every producer finished its plan.
    pub produce_seconds: f64,
    /// From the end of producing until every job finished: how long the system takes to recover
    /// from a backlog built up under overload.
    pub drain_seconds: f64,
}

/// Memory of this process and of Redis.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Memory {
    /// RSS when the run started (before its actors).
    pub rss_start_bytes: u64,
    /// RSS at the end of the idle phase (workers started, nothing to do).
    pub rss_idle_bytes: Option<u64>,
    /// Highest RSS sampled while the run went on.
    pub rss_max_bytes: u64,
    /// Redis bytes per queued job, per payload size of the job mix (`INFO memory`).
    pub redis_bytes_per_job: Vec<BytesPerJob>,
}

/// Redis memory taken per queued job for one payload size, measured on a scratch queue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BytesPerJob {
    /// Payload size of the jobs measured, in bytes (one of the sizes in the job mix).
    pub payload_bytes: usize,
    /// Jobs queued for the measurement.
    pub jobs: u64,
    /// Growth of Redis `used_memory` divided by `jobs`, in bytes (envelope, stream entry and
    /// payload together).
    pub bytes_per_job: f64,
}

/// A pause of every local worker (stall injection).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PauseRecord {
    /// Seconds after the producers started.
    pub at_seconds: f64,
    /// How long the workers were paused, in seconds.
    pub seconds: f64,
}

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Producer actors sending load.
    pub producers: u32,
    /// Jobs per second, or null for closed loop ("max").
    pub rate: Option<f64>,
    /// Worker actors in this process.
    pub local_workers: u32,
    /// Worker processes besides this one that published statistics.
    pub remote_worker_processes: u32,
    /// Jobs each worker runs at the same time.
    pub concurrency: u32,
    /// Most jobs a worker claims per round trip.
    pub claim_batch: u32,
    /// Most jobs per pipelined enqueue call.
    pub enqueue_batch: u32,
    /// Seconds of warm-up before the measured phase (those jobs are processed but not measured).
    pub warmup_seconds: f64,
}

/// How fast the workers finished jobs, and how fast the producers enqueued them.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Measured jobs completed per second, from the start of the measured phase to the last
    /// completion.
    pub jobs_per_second: f64,
    /// Measured (not warm-up) jobs completed in the window: the numerator of `jobs_per_second`.
    pub measured_jobs: u64,
    /// Seconds from the start of the measured phase (when its first job was due, else its first
    /// start) to the last measured completion: the denominator of `jobs_per_second`.
    pub window_seconds: f64,
    /// `jobs_per_second` divided by the number of workers.
    pub jobs_per_second_per_worker: f64,
    /// Jobs Redis acknowledged from the producers per second of the produce phase.
    pub enqueue_per_second: f64,
}

/// What became of the run's jobs: produced, finished, retried, dead, and what the audit found
/// missing or doubled. `lost` above zero fails the run.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Jobs Redis acknowledged from the producers (warm-up included).
    pub produced: u64,
    /// Of `produced`, jobs sent during warm-up (processed and audited, not measured).
    pub produced_warmup: u64,
    /// Distinct jobs that completed or died, per the audit bitmap.
    pub finished: u64,
    /// Completions reported by workers (a duplicate counts twice).
    pub completed: u64,
    /// Failed attempts scheduled for another try (a job retried twice counts twice).
    pub retried: u64,
    /// Jobs moved to the dead letters: out of attempts, refused by their handler, or undecodable
    /// (`poison` is a part of this count).
    pub dead: u64,
    /// Produced, never finished, and no longer anywhere in Redis.
    pub lost: u64,
    /// Produced, not finished, still queued, running or delayed when the run ended.
    pub unfinished: u64,
    /// Finished per the audit but in no worker's statistics: jobs a worker process settled and
    /// never published (it was killed, or stopped without reaching Redis). `completed`, `dead`
    /// and the latency percentiles leave them out; `finished` counts them.
    pub unreported: u64,
    /// Completions of a job that had already finished.
    pub duplicates: u64,
    /// Undecodable entries moved to the dead letters.
    pub poison: u64,
    /// Enqueue calls that failed; their jobs are not counted in `produced`.
    pub enqueue_errors: u64,
}

impl Counts {
    /// Why `finished` exceeds what the workers reported, when it does: one line, for the summary
    /// and the reports.
    pub fn unreported_note(&self) -> Option<String> {
        (self.unreported > 0).then(|| {
            format!(
                "{} of the {} finished job(s) are in the audit but not in the workers' statistics (completed {}, \
                 dead {}): a worker process settled them and stopped before publishing its statistics (killed?), \
                 or a settle was sent again after its reply was lost; the latency percentiles leave them out",
                self.unreported, self.finished, self.completed, self.dead
            )
        })
    }
}

/// Latency percentiles of the measured jobs, in microseconds, per stage of a job's life.
#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    /// From the job's intended enqueue time to its handler's start: time spent waiting.
    pub enqueue_to_start: Percentiles,
    /// From the handler's start to its end: time spent running.
    pub start_to_complete: Percentiles,
    /// From the job's intended enqueue time to Redis acknowledging its settle (completed jobs
    /// only): what a caller of the queue sees.
    pub end_to_end: Percentiles,
    /// One pipelined enqueue call.
    pub enqueue_call: Percentiles,
    /// How far behind plan the producer sent (open loop only).
    pub schedule_lag: Percentiles,
}

/// A summary of one HDR histogram, taken from the histogram itself (never averaged across
/// histograms). Values are in the histogram's unit (microseconds for latency); all zero when
/// nothing was recorded.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Smallest value recorded.
    pub min: u64,
    /// Arithmetic mean of the values.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value recorded.
    pub max: u64,
}

impl From<&Latency> for Percentiles {
    fn from(l: &Latency) -> Self {
        let h = l.histogram();
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// What the run cost this process: CPU time and resident memory.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    /// CPU seconds this process used during the run (user + system).
    pub cpu_seconds: f64,
    /// Measured jobs per CPU-second of this process (Redis' CPU not included).
    pub jobs_per_cpu_second: f64,
    /// Resident set size of this process when the result was built, in bytes.
    pub rss_bytes: u64,
}

impl RunResult {
    /// Lost jobs fail a run.
    pub fn passed(&self) -> bool {
        self.counts.lost == 0
    }

    /// The human summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let c = &self.counts;
        let _ = writeln!(
            s,
            "scenario {} (run {} on queue {}){}",
            self.scenario,
            self.run,
            self.queue,
            if self.interrupted { " — INTERRUPTED" } else { "" }
        );
        let rate = self.setup.rate.map_or("max (closed loop)".to_owned(), |r| format!("{r:.0} jobs/s (open loop)"));
        let _ = writeln!(
            s,
            "  setup       {} producer(s) at {rate}; {} local worker(s) × concurrency {} (+{} worker process(es))",
            self.setup.producers, self.setup.local_workers, self.setup.concurrency, self.setup.remote_worker_processes
        );
        let t = &self.throughput;
        let _ = writeln!(
            s,
            "  throughput  {:.0} jobs/s ({} measured jobs in {:.2} s)",
            t.jobs_per_second, t.measured_jobs, t.window_seconds
        );
        if let Some(ceil) = &self.ceiling {
            let _ = writeln!(
                s,
                "  ceiling     pipelined XADD {:.0}/s; XADD→XREADGROUP→XACK+XTRIM {:.0}/s in sequence, {:.0}/s concurrently; conveyor = {:.0}% of concurrent, {:.0}% of pipelined XADD",
                ceil.xadd_per_second,
                ceil.cycle_per_second,
                ceil.concurrent_per_second,
                100.0 * t.jobs_per_second / ceil.concurrent_per_second,
                100.0 * t.jobs_per_second / ceil.xadd_per_second
            );
        }
        let _ = writeln!(
            s,
            "  jobs        produced {} (warm-up {}), finished {}, completed {}, retried {}, dead {}",
            c.produced, c.produced_warmup, c.finished, c.completed, c.retried, c.dead
        );
        let _ = writeln!(
            s,
            "  audit       lost {}, duplicates {}, unfinished {}, poison {}",
            c.lost, c.duplicates, c.unfinished, c.poison
        );
        if let Some(note) = c.unreported_note() {
            let _ = writeln!(s, "  unreported  {note}");
        }
        let _ = writeln!(
            s,
            "  latency     {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "p50", "p95", "p99", "p99.9", "max", "count"
        );
        let l = &self.latency_us;
        for (name, p) in [
            ("enqueue→start", &l.enqueue_to_start),
            ("start→done", &l.start_to_complete),
            ("end-to-end", &l.end_to_end),
            ("enqueue call", &l.enqueue_call),
            ("sched. lag", &l.schedule_lag),
        ] {
            if p.count == 0 {
                continue;
            }
            let _ = writeln!(
                s,
                "  {name:<13} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
                ms(p.p50),
                ms(p.p95),
                ms(p.p99),
                ms(p.p999),
                ms(p.max),
                p.count
            );
        }
        let ph = &self.phases;
        let _ = writeln!(
            s,
            "  phases      {}produce {:.2} s, drain {:.2} s (time to empty the queue after producing stopped){}",
            if ph.backlog_seconds > 0.0 {
                format!("backlog fill {:.2} s, ", ph.backlog_seconds)
            } else {
                String::new()
            },
            ph.produce_seconds,
            ph.drain_seconds,
            self.pauses
                .iter()
                .map(|p| format!("; workers paused {:.1} s at {:.1} s", p.seconds, p.at_seconds))
                .collect::<String>()
        );
        if let Some(t) = &self.trends {
            let _ = writeln!(s, "  trends      {}", t.summary());
        }
        if let Some(d) = &self.driver {
            let _ = writeln!(s, "  driver      {} ({}), processes {:?}", d.name, d.library, d.pids);
        }
        let _ = writeln!(
            s,
            "  resources   {:.2} CPU-s in {} ({:.0} jobs per CPU-second), RSS {:.1} MB",
            self.resources.cpu_seconds,
            if self.driver.is_some() { "the driver's processes" } else { "this process" },
            self.resources.jobs_per_cpu_second,
            self.resources.rss_bytes as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "  context     {} × {}, Redis {} (appendonly {}, eviction {}){}",
            self.system.cores,
            self.system.cpu_model,
            self.redis.version,
            self.redis.appendonly,
            self.redis.maxmemory_policy,
            if self.system.release_build { "" } else { ", DEBUG BUILD: not comparable" }
        );
        s
    }
}

/// Microseconds as milliseconds with enough digits for sub-millisecond figures.
fn ms(us: u64) -> String {
    format!("{:.3}ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_no_worker_reported_get_a_note_and_others_none() {
        let mut counts = Counts {
            produced: 75_000,
            produced_warmup: 0,
            finished: 75_000,
            completed: 74_761,
            retried: 0,
            dead: 0,
            lost: 0,
            unfinished: 0,
            unreported: 239,
            duplicates: 0,
            poison: 0,
            enqueue_errors: 0,
        };
        let note = counts.unreported_note().expect("239 unreported jobs get a note");
        assert!(note.starts_with("239 of the 75000 finished job(s)") && note.contains("completed 74761"), "{note}");
        counts.unreported = 0;
        assert_eq!(counts.unreported_note(), None);
    }
}
