//! The result of a whole scenario: every matrix cell with its repeated runs, each cell's
//! metrics aggregated over its runs, and the targets' outcomes. This is what `result.json`
//! holds (schema in `schema/result.schema.json`).
//!
//! Aggregation over repeats: latency percentiles come from the histograms of every run merged
//! (never averaged); counts (lost, dead, ...) are summed, so `lost = 0` holds for every run;
//! every other figure is the median. Each metric also keeps the lowest and highest value of a
//! single run: the spread `conveyor compare` weighs a change against.

use super::RunResult;
use super::metric::{self, STAGES, STATS, Unit};
use crate::bench::probe::system::{RedisInfo, SystemInfo};
use crate::bench::scenario::{Mode, Op, Target};
use crate::bench::stats::Latency;
use serde::Serialize;
use std::collections::BTreeMap;

/// The result of running a whole scenario (every matrix cell, every repeat), as written to
/// `result.json`; the report files and `conveyor compare` read it.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    /// The JSON layout this result follows ([`super::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Name of the scenario that ran.
    pub scenario: String,
    /// The scenario's one-line description of what it shows.
    pub description: String,
    /// What the runs exercised (whole runtime, queue operations alone, or Redis alone).
    pub mode: Mode,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// When the suite ended (after its last run), RFC 3339, UTC.
    pub finished_at: String,
    /// Ctrl-C or SIGTERM cut the suite short.
    pub interrupted: bool,
    /// Measured runs per cell.
    pub repeats: u32,
    /// An unmeasured run went first (when repeats > 1).
    pub warmup_run: bool,
    /// Matrix axes, slowest-varying first (empty without a matrix).
    pub axes: Vec<String>,
    /// The closed-loop probe behind rates given as a share of capacity.
    pub capacity: Option<CapacityProbe>,
    /// One entry per matrix cell (a single `all` cell without a matrix), in matrix order.
    pub cells: Vec<CellResult>,
    /// How every target fared in every cell it applies to; filled by [`SuiteResult::judge`].
    pub targets: Vec<TargetOutcome>,
    /// Jobs lost over every run (any loss fails the suite).
    pub lost: u64,
    /// No job lost and every target met.
    pub passed: bool,
    /// The machine and build the suite ran on.
    pub system: SystemInfo,
    /// The Redis server the suite ran against.
    pub redis: RedisInfo,
}

/// The closed-loop run that measured capacity, so rates written as "N% capacity" can be turned
/// into jobs per second.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CapacityProbe {
    /// Completed jobs per second the probe measured: the 100% of "N% capacity".
    pub jobs_per_second: f64,
    /// Measured jobs the probe completed.
    pub jobs: u64,
}

/// One matrix cell: its runs and their aggregate.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// `workers=10` (`all` without a matrix).
    pub label: String,
    /// Axis → value, as written in the matrix.
    pub params: BTreeMap<String, String>,
    /// Metric name → aggregate over the runs.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// Latency histograms merged over the runs, by stage or `ops.<op>`.
    #[serde(skip)]
    pub histograms: BTreeMap<String, Latency>,
    /// Every measured run of the cell, in the order they ran (the warm-up run is not kept).
    pub runs: Vec<RunResult>,
}

/// One metric of one cell.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct MetricSummary {
    /// Merged-histogram percentile, sum (counts) or median over the runs.
    pub value: f64,
    /// Lowest and highest value of a single run.
    pub min: f64,
    /// Highest value of a single run (see `min`).
    pub max: f64,
    /// The unit of `value`, `min` and `max`, for formatting and comparison.
    pub unit: Unit,
}

/// How one target fared in one cell.
#[derive(Debug, Clone, Serialize)]
pub struct TargetOutcome {
    /// The target's key as written.
    pub target: String,
    /// The metric the target is about (`throughput`).
    pub metric: String,
    /// Label of the cell this outcome is for.
    pub cell: String,
    /// How `value` is compared with `threshold`.
    pub op: Op,
    /// The comparison as written.
    pub expected: String,
    /// The threshold in the metric's base unit (µs for latency, bytes, a fraction for ratios).
    pub threshold: f64,
    /// None when the run has no such figure (which fails the target).
    pub value: Option<f64>,
    /// The value formatted in its unit.
    pub shown: String,
    /// The target was met; a target with no value fails.
    pub passed: bool,
}

impl CellResult {
    /// Aggregates the runs of one cell.
    pub fn new(label: String, params: BTreeMap<String, String>, runs: Vec<RunResult>) -> Self {
        let mut histograms: BTreeMap<String, Latency> = BTreeMap::new();
        for r in &runs {
            for (name, h) in &r.histograms {
                histograms.entry(name.clone()).or_default().add(h);
            }
        }
        let per_run: Vec<BTreeMap<String, f64>> = runs.iter().map(run_metrics).collect();
        let mut names: Vec<&String> = per_run.iter().flat_map(|m| m.keys()).collect();
        names.sort();
        names.dedup();
        let mut metrics = BTreeMap::new();
        for name in names {
            let Some(def) = metric::lookup(name) else { continue };
            let values: Vec<f64> = per_run.iter().filter_map(|m| m.get(name).copied()).collect();
            let value = match def.unit {
                Unit::Micros => merged_stat(&histograms, name).unwrap_or_else(|| median(&values)),
                Unit::Count => values.iter().sum(),
                _ => median(&values),
            };
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            metrics.insert(name.clone(), MetricSummary { value, min, max, unit: def.unit });
        }
        Self { label, params, metrics, histograms, runs }
    }

    /// The aggregate value of metric `name` in this cell; `None` when no run of the cell has it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).map(|m| m.value)
    }
}

impl SuiteResult {
    /// Evaluates `targets` on every cell they apply to, and sets `passed`.
    pub fn judge(&mut self, targets: &[Target]) {
        self.targets.clear();
        for t in targets {
            for cell in &self.cells {
                if let Some((axis, value)) = &t.cell
                    && cell.params.get(axis) != Some(value)
                {
                    continue;
                }
                let value = cell.metric(&t.metric);
                self.targets.push(TargetOutcome {
                    target: t.key.clone(),
                    metric: t.metric.clone(),
                    cell: cell.label.clone(),
                    op: t.op,
                    expected: t.text.clone(),
                    threshold: t.threshold,
                    value,
                    shown: value.map_or_else(|| "no value".to_owned(), |v| metric::format(v, t.unit)),
                    passed: value.is_some_and(|v| t.op.holds(v, t.threshold)),
                });
            }
        }
        self.lost = self.cells.iter().flat_map(|c| &c.runs).map(|r| r.counts.lost).sum();
        self.passed = self.lost == 0 && self.targets.iter().all(|t| t.passed);
    }

    /// What a reader must know beside the figures, one line each: runs whose finished jobs the
    /// workers' statistics do not all account for (see [`super::Counts::unreported_note`]).
    pub fn notes(&self) -> Vec<String> {
        let many = self.cells.len() > 1 || self.cells.iter().any(|c| c.runs.len() > 1);
        self.cells
            .iter()
            .flat_map(|c| c.runs.iter().enumerate().map(move |(i, r)| (c, i, r)))
            .filter_map(|(c, i, r)| {
                let note = r.counts.unreported_note()?;
                Some(if many { format!("{} run {}: {note}", c.label, i + 1) } else { note })
            })
            .collect()
    }

    /// The targets that failed.
    pub fn failed_targets(&self) -> impl Iterator<Item = &TargetOutcome> {
        self.targets.iter().filter(|t| !t.passed)
    }
}

/// A latency statistic (`end_to_end.p99`, `ops.claim.p50`) from a merged histogram.
fn merged_stat(histograms: &BTreeMap<String, Latency>, name: &str) -> Option<f64> {
    let (hist, stat) = name.rsplit_once('.')?;
    let h = histograms.get(hist)?.histogram();
    if h.is_empty() {
        return None;
    }
    Some(match stat {
        "min" => h.min() as f64,
        "mean" => h.mean(),
        "max" => h.max() as f64,
        p => h.value_at_quantile(quantile(p)?) as f64,
    })
}

/// `p999` → 0.999.
fn quantile(stat: &str) -> Option<f64> {
    match stat {
        "p50" => Some(0.50),
        "p90" => Some(0.90),
        "p95" => Some(0.95),
        "p99" => Some(0.99),
        "p999" => Some(0.999),
        _ => None,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Every metric one run has a value for.
pub fn run_metrics(r: &RunResult) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        m.insert(k.to_owned(), v);
    };
    let c = &r.counts;
    if r.mode == Mode::Run {
        put("throughput", r.throughput.jobs_per_second);
        put("throughput_per_worker", r.throughput.jobs_per_second_per_worker);
        put("jobs_per_cpu_second", r.resources.jobs_per_cpu_second);
        if r.resources.cpu_seconds > 0.0 && c.finished > 0 {
            put("cpu_per_job", r.resources.cpu_seconds * 1e6 / c.finished as f64);
        }
        put("drain_seconds", r.phases.drain_seconds);
        put("max_waiting", r.max_waiting as f64);
        if r.throughput.enqueue_per_second > 0.0 {
            put("enqueue_rate", r.throughput.enqueue_per_second);
        }
    }
    if r.mode != Mode::Ceiling {
        put("produced", c.produced as f64);
        put("finished", c.finished as f64);
        put("lost", c.lost as f64);
        put("duplicates", c.duplicates as f64);
        put("dead", c.dead as f64);
        put("retried", c.retried as f64);
        put("unfinished", c.unfinished as f64);
        put("unreported", c.unreported as f64);
        put("poison", c.poison as f64);
        put("enqueue_errors", c.enqueue_errors as f64);
        if c.produced > 0 {
            put("completion_rate", c.finished.saturating_sub(c.dead) as f64 / c.produced as f64);
            put("duplicate_rate", c.duplicates as f64 / c.finished.max(1) as f64);
        }
    }
    put("rss_bytes", r.memory.rss_max_bytes as f64);
    put("rss_baseline_bytes", r.memory.rss_start_bytes as f64);
    if let Some(idle) = r.memory.rss_idle_bytes {
        put("rss_idle_bytes", idle as f64);
    }
    if let Some(max) = r.memory.redis_bytes_per_job.iter().map(|b| b.bytes_per_job).reduce(f64::max) {
        put("redis_bytes_per_job", max);
    }
    if let Some(max) = r.timeline.iter().map(|s| s.redis_used_memory_bytes).max() {
        put("redis_used_memory_bytes", max as f64);
    }
    if let Some(t) = &r.trends {
        put("rss_growth", t.rss_growth);
        // Figures the run does not have (a slope from too short a window, throughput nobody
        // reported) are absent, so a target on them fails with "no value".
        for (name, value) in [
            ("rss_slope_bytes_per_hour", t.rss_slope_bytes_per_hour),
            ("redis_memory_slope_bytes_per_hour", t.redis_memory_slope_bytes_per_hour),
            ("throughput_cv", t.throughput_cv),
        ] {
            if let Some(v) = value {
                put(name, v);
            }
        }
    }
    if let Some(ceil) = &r.ceiling {
        put("ceiling.xadd_per_second", ceil.xadd_per_second);
        put("ceiling.cycle_per_second", ceil.cycle_per_second);
        put("ceiling.concurrent_per_second", ceil.concurrent_per_second);
        if r.mode == Mode::Run && ceil.concurrent_per_second > 0.0 {
            put("ceiling_share", r.throughput.jobs_per_second / ceil.concurrent_per_second);
        }
    }
    let l = &r.latency_us;
    let stages =
        [&l.enqueue_to_start, &l.start_to_complete, &l.end_to_end, &l.enqueue_call, &l.schedule_lag].into_iter();
    let named = STAGES.iter().map(|s| s.to_string()).zip(stages.copied());
    let ops = r.ops_us.iter().map(|(op, p)| (format!("ops.{op}"), *p));
    for (name, p) in named.chain(ops) {
        if p.count == 0 {
            continue;
        }
        for stat in STATS {
            let v = match *stat {
                "min" => p.min as f64,
                "mean" => p.mean,
                "p50" => p.p50 as f64,
                "p90" => p.p90 as f64,
                "p95" => p.p95 as f64,
                "p99" => p.p99 as f64,
                "p999" => p.p999 as f64,
                _ => p.max as f64,
            };
            put(&format!("{name}.{stat}"), v);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
