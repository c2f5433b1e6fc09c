//! Scenario files: what a benchmark run does, as typed TOML. Unknown fields are errors, and
//! every error names the file, the field and what was expected, so a typo never silently
//! becomes a default.
//!
//! ```toml
//! # Quick sanity run: 4 workers drain 10,000 noop jobs.
//! description = "about 10 s: 4 workers, 10k noop jobs, closed loop"
//! repeats = 1         # measured runs (one unmeasured warm-up run precedes them when > 1)
//! [producer]
//! jobs = 10000        # measured jobs (or `duration = "10s"`)
//! rate = "max"        # closed loop; see `rate` for open-loop plans
//! [workers]
//! count = 4
//! [[jobs]]
//! kind = "noop"       # noop | sleep | cpu | fail | panic
//! [backlog]
//! jobs = 0            # enqueued before workers start
//! [[events]]
//! at = "2s"           # after the measured phase starts
//! pause_workers = "1s"
//! [matrix]            # one sub-run per value (see `matrix`)
//! workers = [1, 5]
//! [targets]           # what the run must achieve (see `target`)
//! "end_to_end.p99" = "< 50ms"
//! ```

pub mod chaos;
pub mod matrix;
pub mod rate;
pub mod target;

pub use matrix::{AxisValue, Cell, Matrix};
/// The send plan a producer follows (`Rate::Max` is the closed loop); same as [`Schedule`].
pub use rate::Schedule as Rate;
pub use rate::{RatePlan, RateValue, Schedule};
pub use target::{Op, Target};

use crate::bench::jobs::JobKind;
use crate::runtime::error::{Error, Result};
use crate::runtime::queue::{Backoff, QueueOptions};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A parsed and validated scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file name without `.toml`.
    #[serde(default)]
    pub name: String,
    /// One line on what the scenario shows (printed by `conveyor list`).
    #[serde(default)]
    pub description: String,
    /// The queue the run uses and how it treats jobs (`[queue]`).
    #[serde(default)]
    pub queue: QueueSection,
    /// How many producers send load, at what rate, for how long (`[producer]`).
    #[serde(default)]
    pub producer: ProducerSection,
    /// How many workers a process runs for the scenario, and how they claim (`[workers]`).
    #[serde(default)]
    pub workers: WorkerSection,
    /// The job mix; one noop job kind when absent.
    #[serde(default = "default_jobs")]
    pub jobs: Vec<JobSpec>,
    /// Warm-up, idle and drain times (`[phases]`).
    #[serde(default)]
    pub phases: Phases,
    /// Measure the Redis ceiling (plain pipelined XADD, the whole command mix on one connection and
    /// concurrently) before the run, for comparison.
    #[serde(default)]
    pub ceiling: bool,
    /// What the run does: the full runtime (default), each queue operation alone, or Redis alone.
    #[serde(default)]
    pub mode: Mode,
    /// Measured runs per matrix cell; with more than one, an unmeasured warm-up run goes first.
    #[serde(default = "one")]
    pub repeats: u32,
    /// Jobs enqueued before the workers start.
    #[serde(default)]
    pub backlog: Backlog,
    /// Things that happen during the measured phase (stall injection).
    #[serde(default)]
    pub events: Vec<Event>,
    /// Axes to vary, one sub-run per combination (`[matrix]`; empty = a single run).
    #[serde(default)]
    pub matrix: Matrix,
    /// Metric name (optionally `@axis=value`) → comparison, e.g. `"end_to_end.p99" = "< 50ms"`.
    #[serde(default, rename = "targets")]
    pub target_texts: BTreeMap<String, String>,
    /// Parsed from `target_texts` by validation.
    #[serde(skip)]
    pub targets: Vec<Target>,
    /// Sizes of the probes run before the measured run: capacity and Redis memory (`[probes]`).
    #[serde(default)]
    pub probes: Probes,
    /// Faults `conveyor run` injects into the run (see [`chaos`]).
    #[serde(default)]
    pub chaos: chaos::Chaos,
    /// Settings of `mode = "queue-ops"` (`[queue_ops]`).
    #[serde(default)]
    pub queue_ops: QueueOpsSection,
    /// Run the scenario against another queue through this driver (`bullmq`, `celery`, `rq`,
    /// `dramatiq`, `conveyor`; `native` or absent: conveyor's own path). See docs/drivers.md.
    #[serde(default)]
    pub driver: Option<String>,
    /// Jobs per second a closed-loop probe measured, for rates in "% capacity" (set by the
    /// suite before a run; never read from the file).
    #[serde(skip)]
    pub capacity: Option<f64>,
}

/// What a run exercises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Producers, workers, scheduler and collector: the whole runtime.
    #[default]
    Run,
    /// Each queue operation timed alone, one at a time (enqueue, claim, ack, fail, status).
    QueueOps,
    /// Redis alone with conveyor's command mix, no runtime.
    Ceiling,
}

/// Jobs enqueued before the workers start, so the run begins with a queue to drain (`[backlog]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backlog {
    /// Jobs enqueued (with the job mix) before the workers start.
    pub jobs: u64,
    /// Count the backlog's jobs in throughput and latency (their latency then runs from their
    /// enqueue, before the workers started); otherwise they are processed and audited only.
    pub measured: bool,
}

/// Something that happens during the measured phase.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When, counted from the start of the measured phase (after warm-up).
    #[serde(deserialize_with = "duration")]
    pub at: Duration,
    /// Every local worker stops claiming for this long (it finishes the batch it holds).
    #[serde(deserialize_with = "duration")]
    pub pause_workers: Duration,
}

/// Sizes of the probes a run may make before it is measured (`[probes]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probes {
    /// Jobs of the closed-loop run that measures capacity when a rate is "N% capacity".
    pub capacity_jobs: u64,
    /// Jobs enqueued into a scratch queue per payload size to measure Redis bytes per queued
    /// job (`INFO memory` before and after); 0 = not measured.
    pub redis_memory_jobs: u64,
}

impl Default for Probes {
    fn default() -> Self {
        Self { capacity_jobs: 20_000, redis_memory_jobs: 0 }
    }
}

/// Settings of the `queue-ops` mode, which times each queue operation alone (`[queue_ops]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueOpsSection {
    /// Times each operation is timed (mode = "queue-ops").
    pub samples: u64,
}

impl Default for QueueOpsSection {
    fn default() -> Self {
        Self { samples: 2_000 }
    }
}

/// The `[queue]` table: which queue a run uses and the [`QueueOptions`] it is opened with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// Queue name; defaults to `bench-<scenario name>`.
    pub name: Option<String>,
    /// Key prefix (all keys are `{prefix:queue}:...`).
    pub prefix: String,
    /// A job whose worker has not renewed its hold for this long is given to another worker
    /// (at least 10 ms).
    #[serde(deserialize_with = "duration")]
    pub lease: Duration,
    /// Attempts before a failing job goes to the dead letters (1 = no retry).
    pub max_attempts: u16,
    /// Times a job may be reclaimed from a stalled or dead worker before it is declared dead.
    pub max_reclaims: u32,
    /// Delay before the second attempt (before jitter); later retries back off exponentially.
    #[serde(deserialize_with = "duration")]
    pub backoff_base: Duration,
    /// Longest delay between retries.
    #[serde(deserialize_with = "duration")]
    pub backoff_max: Duration,
    /// Partitions of the queue, each under a hash tag of its own so they spread over a Redis
    /// Cluster's masters (1 = unpartitioned).
    pub partitions: u16,
    /// Most jobs a producer's batch packs into one stream entry (1 = one job per entry).
    pub pack: u16,
}

impl Default for QueueSection {
    fn default() -> Self {
        let d = QueueOptions::default();
        Self {
            name: None,
            prefix: d.prefix,
            lease: d.lease,
            max_attempts: d.max_attempts,
            max_reclaims: d.max_reclaims,
            backoff_base: d.backoff.base,
            backoff_max: d.backoff.max,
            partitions: d.partitions,
            pack: d.pack,
        }
    }
}

/// The `[producer]` table: how the load is sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerSection {
    /// Concurrent producer actors.
    pub count: u32,
    /// Jobs per second for all producers together, "max" (closed loop), "N% capacity", a ramp
    /// or steps (see [`rate`]).
    pub rate: RatePlan,
    /// Most jobs per pipelined enqueue call.
    pub batch: u32,
    /// Measured jobs to produce (after warm-up). Either this or `duration`.
    pub jobs: Option<u64>,
    /// How long to produce measured jobs. Either this or `jobs`.
    #[serde(deserialize_with = "opt_duration")]
    pub duration: Option<Duration>,
}

impl Default for ProducerSection {
    fn default() -> Self {
        Self { count: 1, rate: RatePlan::Max, batch: 256, jobs: None, duration: None }
    }
}

/// The `[workers]` table: the workers a process runs for the scenario (`conveyor run`, and
/// each `conveyor worker` given the file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSection {
    /// Worker actors in this process (0: only workers in other processes).
    pub count: u32,
    /// Jobs one worker runs at the same time.
    pub concurrency: u32,
    /// Most jobs one worker claims per round trip.
    pub batch: u32,
    /// Longest a claim waits for work before looking again.
    #[serde(deserialize_with = "duration")]
    pub block: Duration,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self { count: 4, concurrency: 1, batch: 64, block: Duration::from_millis(100) }
    }
}

/// One entry of the job mix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// A built-in benchmark kind; or give `type` instead.
    #[serde(default)]
    pub kind: Option<KindName>,
    /// A job type the application registered (`conveyor::cli::main_with`): the scenario then
    /// load-tests the application's own handler with `payload`.
    #[serde(default, rename = "type")]
    pub job_type: Option<String>,
    /// For `type`: the payload, sent as JSON (default `null`).
    #[serde(default)]
    pub payload: Option<toml::Value>,
    /// For `sleep` and `cpu`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub duration: Option<Duration>,
    /// For `fail`: probability of failing, 0 to 1.
    pub probability: Option<f32>,
    /// Relative share of the mix.
    #[serde(default = "one")]
    pub weight: u32,
    /// Bytes of payload each job carries.
    #[serde(default)]
    pub payload_bytes: usize,
    /// Tracked jobs: each keeps a status (and its events) for the default retention.
    #[serde(default)]
    pub track: bool,
}

/// A built-in benchmark kind as named in a scenario (`kind = "..."`); see [`JobKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// `noop`: returns at once.
    Noop,
    /// `sleep`: waits `duration` without using CPU.
    Sleep,
    /// `cpu`: spins the CPU for `duration`.
    Cpu,
    /// `fail`: fails with `probability`, otherwise succeeds at once.
    Fail,
    /// `panic`: panics inside the handler.
    Panic,
}

/// The `[phases]` table: how long the parts of a run around the measured load last.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Phases {
    /// Producing before the measurement starts; these jobs are processed but not measured.
    #[serde(deserialize_with = "duration")]
    pub warmup: Duration,
    /// Longest wait, after producing stops, for every job to finish.
    #[serde(deserialize_with = "duration")]
    pub drain_timeout: Duration,
    /// Workers run idle this long before producers start (the idle RSS is sampled at its end).
    #[serde(deserialize_with = "duration")]
    pub idle: Duration,
}

impl Default for Phases {
    fn default() -> Self {
        Self { warmup: Duration::ZERO, drain_timeout: Duration::from_secs(60), idle: Duration::ZERO }
    }
}

fn default_jobs() -> Vec<JobSpec> {
    vec![JobSpec {
        kind: Some(KindName::Noop),
        job_type: None,
        payload: None,
        duration: None,
        probability: None,
        weight: 1,
        payload_bytes: 0,
        track: false,
    }]
}

fn one() -> u32 {
    1
}

/// Largest payload a scenario may ask for (Redis' own limit is 512 MB per value).
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| input(path, format!("cannot read the file: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            input(path, format!("not UTF-8 text (byte {}): expected a TOML file", e.utf8_error().valid_up_to()))
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates scenario text; `path` names it in errors and gives the default name.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let de = toml::de::Deserializer::parse(text).map_err(|e| toml_error(path, text, &e, None))?;
        let mut scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            toml_error(path, text, e.inner(), Some(field))
        })?;
        if scenario.name.is_empty() {
            scenario.name =
                path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "scenario".into());
        }
        scenario.validate(path)?;
        Ok(scenario)
    }

    /// Checks repeats, events, matrix, probes and targets, and parses the targets.
    fn validate_suite(&mut self, path: &Path) -> Result<()> {
        let bad = |field: &str, message: String| Err(invalid(path, field, message));
        self.chaos.check().map_err(|(field, message)| invalid(path, field, message))?;
        if !self.chaos.is_empty() && (self.repeats > 1 || !self.matrix.is_empty()) {
            return bad("chaos", "expected a single run: no repeats and no matrix with [chaos]".into());
        }
        if !(1..=100).contains(&self.repeats) {
            return bad("repeats", format!("expected 1 to 100 runs, got {}", self.repeats));
        }
        for (i, e) in self.events.iter().enumerate() {
            if e.pause_workers.is_zero() {
                return bad(&format!("events[{i}].pause_workers"), "expected a duration above zero".into());
            }
        }
        let m = &self.matrix;
        for (axis, zero) in [
            ("matrix.workers", m.workers.contains(&0)),
            ("matrix.producers", m.producers.contains(&0)),
            ("matrix.concurrency", m.concurrency.contains(&0)),
        ] {
            if zero {
                return bad(axis, "expected values of at least 1".into());
            }
        }
        for (i, r) in m.rate.iter().enumerate() {
            if let Err(e) = RatePlan::Constant(*r).check() {
                return bad(&format!("matrix.rate[{i}]"), e);
            }
        }
        if let Some(p) = m.payload_bytes.iter().find(|p| **p > MAX_PAYLOAD) {
            return bad("matrix.payload_bytes", format!("expected at most {MAX_PAYLOAD} bytes, got {p}"));
        }
        if m.cells().len() > 100 {
            return bad("matrix", format!("expected at most 100 combinations, got {}", m.cells().len()));
        }
        if self.needs_capacity() && self.probes.capacity_jobs == 0 {
            return bad(
                "probes.capacity_jobs",
                "a rate in \"% capacity\" needs a capacity probe of at least 1 job".into(),
            );
        }
        if self.queue_ops.samples == 0 || self.queue_ops.samples > 1_000_000 {
            return bad("queue_ops.samples", format!("expected 1 to 1000000, got {}", self.queue_ops.samples));
        }
        let mut targets = Vec::new();
        for (key, text) in &self.target_texts {
            let field = format!("targets.\"{key}\"");
            let t = Target::parse(key, text).map_err(|e| invalid(path, &field, e))?;
            if let Some((axis, value)) = &t.cell {
                let cells = self.matrix.cells();
                if !self.matrix.axis_names().contains(&axis.as_str()) {
                    return bad(
                        &field,
                        format!("no matrix axis {axis:?}; the matrix has {:?}", self.matrix.axis_names()),
                    );
                }
                if !cells.iter().any(|c| c.value_of(axis).as_deref() == Some(value)) {
                    return bad(&field, format!("matrix axis {axis:?} has no value {value:?}"));
                }
            }
            targets.push(t);
        }
        self.targets = targets;
        Ok(())
    }

    /// True when a rate (in the file or the matrix) is a share of measured capacity.
    pub fn needs_capacity(&self) -> bool {
        self.producer.rate.needs_capacity() || self.matrix.rate.iter().any(|r| matches!(r, RateValue::Capacity(_)))
    }

    /// Replaces how long producers send (the soak's `--duration`).
    pub fn set_duration(&mut self, d: Duration) {
        self.producer.duration = Some(d);
        self.producer.jobs = None;
    }

    /// The jobs all producers send together (0 when only a backlog is drained); `producer_plans`
    /// splits them between producers.
    pub fn producer_jobs(&self) -> Option<u64> {
        match (self.producer.jobs, self.producer.duration) {
            (None, None) => Some(0),
            (j, _) => j,
        }
    }

    fn validate(&mut self, path: &Path) -> Result<()> {
        self.validate_suite(path)?;
        self.check_driver(path, "driver")?;
        let bad = |field: &str, message: String| Err(invalid(path, field, message));
        if !valid_name(&self.name) {
            return bad("name", format!("expected letters, digits, '-', '_' or '.', got {:?}", self.name));
        }
        if let Some(q) = &self.queue.name
            && !valid_name(q)
        {
            return bad("queue.name", format!("expected letters, digits, '-', '_' or '.', got {q:?}"));
        }
        if !(1..=crate::runtime::queue::partition::MAX_PARTITIONS).contains(&self.queue.partitions) {
            return bad(
                "queue.partitions",
                format!(
                    "expected a whole number from 1 to {}, got {}",
                    crate::runtime::queue::partition::MAX_PARTITIONS,
                    self.queue.partitions
                ),
            );
        }
        if !(1..=crate::runtime::queue::envelope::MAX_PACK).contains(&usize::from(self.queue.pack)) {
            return bad(
                "queue.pack",
                format!(
                    "expected a whole number of jobs per stream entry from 1 to {}, got {}",
                    crate::runtime::queue::envelope::MAX_PACK,
                    self.queue.pack
                ),
            );
        }
        if !valid_name(&self.queue.prefix) {
            return bad(
                "queue.prefix",
                format!("expected letters, digits, '-', '_' or '.', got {:?}", self.queue.prefix),
            );
        }
        if self.queue.lease < Duration::from_millis(10) {
            return bad("queue.lease", format!("expected at least 10ms, got {:?}", self.queue.lease));
        }
        if self.queue.max_attempts == 0 {
            return bad("queue.max_attempts", "expected at least 1 (1 means no retry), got 0".into());
        }
        if self.queue.backoff_base > self.queue.backoff_max {
            return bad("queue.backoff_base", "expected no more than queue.backoff_max".into());
        }
        if self.producer.count == 0 {
            return bad("producer.count", "expected at least 1 producer, got 0".into());
        }
        if let Err(e) = self.producer.rate.check() {
            return bad("producer.rate", e);
        }
        if !(1..=10_000).contains(&self.producer.batch) {
            return bad(
                "producer.batch",
                format!("expected 1 to 10000 jobs per enqueue call, got {}", self.producer.batch),
            );
        }
        match (self.producer.jobs, self.producer.duration) {
            (None, None) if self.backlog.jobs > 0 || !self.matrix.backlog.is_empty() || self.mode != Mode::Run => {}
            (None, None) => {
                return bad("producer", "expected `jobs` (a count) or `duration` (e.g. \"10s\") to end the run".into());
            }
            (Some(_), Some(_)) => return bad("producer", "expected either `jobs` or `duration`, not both".into()),
            (Some(0), _) => return bad("producer.jobs", "expected at least 1 job, got 0".into()),
            (Some(n), _) if n >= 1 << 32 => {
                return bad("producer.jobs", format!("expected fewer than 2^32 jobs, got {n}"));
            }
            (_, Some(d)) if d.is_zero() => return bad("producer.duration", "expected a duration above zero".into()),
            _ => {}
        }
        if self.workers.concurrency == 0 {
            return bad("workers.concurrency", "expected at least 1 job at a time, got 0".into());
        }
        if !(1..=10_000).contains(&self.workers.batch) {
            return bad("workers.batch", format!("expected 1 to 10000 jobs per claim, got {}", self.workers.batch));
        }
        if self.workers.block.is_zero() {
            return bad("workers.block", "expected a duration above zero (0 would block forever)".into());
        }
        if self.jobs.is_empty() {
            return bad("jobs", "expected at least one [[jobs]] entry".into());
        }
        for (i, spec) in self.jobs.iter().enumerate() {
            let field = |f: &str| format!("jobs[{i}].{f}");
            if spec.weight == 0 {
                return bad(&field("weight"), "expected a weight of at least 1".into());
            }
            if spec.payload_bytes > MAX_PAYLOAD {
                return bad(
                    &field("payload_bytes"),
                    format!("expected at most {MAX_PAYLOAD} bytes, got {}", spec.payload_bytes),
                );
            }
            let kind = match (spec.kind, &spec.job_type) {
                (Some(kind), None) => kind,
                (None, Some(name)) => {
                    if name.is_empty() || name.len() > crate::runtime::queue::envelope::MAX_NAME_BYTES {
                        return bad(&field("type"), "expected a job type name of 1 to 256 bytes".into());
                    }
                    for (set, what) in [
                        (spec.duration.is_some(), "duration"),
                        (spec.probability.is_some(), "probability"),
                        (spec.payload_bytes > 0, "payload_bytes"),
                    ] {
                        if set {
                            return bad(
                                &field(what),
                                format!("only built-in kinds take `{what}`; a `type` job takes `payload`"),
                            );
                        }
                    }
                    continue;
                }
                (Some(_), Some(_)) => {
                    return bad(
                        &field("type"),
                        "expected either `kind` (a built-in kind) or `type` (a registered job type), not both".into(),
                    );
                }
                (None, None) => {
                    return bad(
                        &field("kind"),
                        "expected `kind` (noop, sleep, cpu, fail or panic) or `type` (a registered job type)".into(),
                    );
                }
            };
            if spec.payload.is_some() {
                return bad(
                    &field("payload"),
                    "only `type` jobs take a payload; built-in kinds take `payload_bytes`".into(),
                );
            }
            match kind {
                KindName::Sleep | KindName::Cpu if spec.duration.is_none() => {
                    return bad(
                        &field("duration"),
                        format!("expected a duration for a {kind:?} job, e.g. \"10ms\"").to_lowercase(),
                    );
                }
                KindName::Fail => match spec.probability {
                    Some(p) if (0.0..=1.0).contains(&p) => {}
                    Some(p) => return bad(&field("probability"), format!("expected a number from 0 to 1, got {p}")),
                    None => {
                        return bad(&field("probability"), "expected a probability from 0 to 1 for a fail job".into());
                    }
                },
                _ => {}
            }
            if spec.probability.is_some() && kind != KindName::Fail {
                return bad(&field("probability"), "only fail jobs take a probability".into());
            }
            if spec.duration.is_some() && !matches!(kind, KindName::Sleep | KindName::Cpu) {
                return bad(&field("duration"), "only sleep and cpu jobs take a duration".into());
            }
        }
        Ok(())
    }

    /// The queue this scenario runs on.
    pub fn queue_name(&self) -> String {
        self.queue.name.clone().unwrap_or_else(|| format!("bench-{}", self.name))
    }

    /// The [`QueueOptions`] this scenario's queue is opened with (auditing always on, so lost and
    /// duplicate jobs are found).
    pub fn queue_options(&self) -> QueueOptions {
        QueueOptions {
            prefix: self.queue.prefix.clone(),
            lease: self.queue.lease,
            max_attempts: self.queue.max_attempts,
            max_reclaims: self.queue.max_reclaims,
            backoff: Backoff { base: self.queue.backoff_base, max: self.queue.backoff_max },
            audit: true,
            partitions: self.queue.partitions,
            pack: self.queue.pack,
        }
    }
}

impl JobSpec {
    /// The built-in kind of this entry, `None` for a `type` job.
    pub fn kind(&self) -> Option<JobKind> {
        let us = self.duration.unwrap_or_default().as_micros() as u64;
        Some(match self.kind? {
            KindName::Noop => JobKind::Noop,
            KindName::Sleep => JobKind::Sleep { us },
            KindName::Cpu => JobKind::Cpu { us },
            KindName::Fail => JobKind::Fail { probability: self.probability.unwrap_or(0.0) },
            KindName::Panic => JobKind::Panic,
        })
    }

    /// The job type name and the payload every job of this entry carries.
    pub fn job(&self) -> (String, Vec<u8>) {
        match (self.kind(), &self.job_type) {
            (Some(kind), _) => (kind.name().to_owned(), kind.payload(self.payload_bytes)),
            (None, name) => {
                let json = match &self.payload {
                    Some(v) => serde_json::to_vec(v).expect("a TOML value is JSON"),
                    None => b"null".to_vec(),
                };
                (name.clone().unwrap_or_default(), json)
            }
        }
    }
}

impl Scenario {
    /// The scenario's `driver` is one conveyor has, and the scenario uses only what drivers
    /// run: the whole path (mode `run`), the `noop`, `sleep` and `cpu` kinds, no backlog,
    /// events, chaos, matrix, partitions or tracked jobs. `field` names the driver in errors
    /// (`driver`, or `--driver` when the command line set it).
    pub fn check_driver(&self, path: &Path, field: &str) -> Result<()> {
        let Some(name) = self.driver.as_deref() else { return Ok(()) };
        let bad = |f: &str, message: String| Err(invalid(path, f, message));
        if !crate::bench::driver::known(name) {
            let known = crate::bench::driver::DRIVERS.join(", ");
            return bad(field, format!("expected one of {known}, got {name:?}"));
        }
        if name == "native" {
            return Ok(());
        }
        let why = |what: &str| format!("a run through driver {name:?} supports no {what} (docs/drivers.md)");
        if self.mode != Mode::Run {
            return bad("mode", format!("a run through driver {name:?} needs mode \"run\""));
        }
        if self.backlog.jobs > 0 {
            return bad("backlog.jobs", why("backlog"));
        }
        if !self.events.is_empty() {
            return bad("events", why("events"));
        }
        if !self.chaos.is_empty() {
            return bad("chaos", why("[chaos]"));
        }
        if !self.matrix.is_empty() {
            return bad("matrix", why("[matrix]"));
        }
        if self.queue.partitions > 1 {
            return bad("queue.partitions", why("partitions"));
        }
        for (i, j) in self.jobs.iter().enumerate() {
            if j.track {
                return bad(&format!("jobs[{i}].track"), why("tracked jobs"));
            }
            if !matches!(j.kind(), Some(JobKind::Noop | JobKind::Sleep { .. } | JobKind::Cpu { .. })) {
                return bad(&format!("jobs[{i}]"), format!("expected kind noop, sleep or cpu with driver {name:?}"));
            }
        }
        Ok(())
    }

    /// Every `type` job of the mix names a job type `registry` has a handler for.
    pub fn check_job_types(&self, path: &Path, registry: &crate::runtime::handler::Registry) -> Result<()> {
        for (i, spec) in self.jobs.iter().enumerate() {
            if let Some(name) = &spec.job_type
                && !registry.handles(name)
            {
                return Err(invalid(
                    path,
                    &format!("jobs[{i}].type"),
                    format!(
                        "no handler is registered for job type {name:?} (registered: {})",
                        registry.names().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn input(path: &Path, message: String) -> Error {
    Error::Input { file: path.to_path_buf(), message }
}

fn invalid(path: &Path, field: &str, message: String) -> Error {
    Error::Invalid { file: path.to_path_buf(), field: field.to_owned(), message }
}

/// A TOML error as "line N: field "x": message".
fn toml_error(path: &Path, text: &str, e: &toml::de::Error, field: Option<String>) -> Error {
    let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
    let message = e.message().trim().to_owned();
    let field = field.filter(|f| !f.is_empty() && f != ".");
    match (field, line) {
        (Some(field), _) => invalid(path, &field, with_line(message, line)),
        (None, _) => input(path, with_line(format!("expected a TOML scenario: {message}"), line)),
    }
}

fn with_line(message: String, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{message} (line {l})"),
        None => message,
    }
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a duration such as \"250ms\" or \"2s\""))?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!("expected a duration such as \"250ms\" or \"2s\", got {s:?} ({e})"))
    })
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Every `*.toml` file in a directory, sorted.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| input(dir, format!("cannot list scenarios: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
