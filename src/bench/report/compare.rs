//! `conveyor compare <baseline> <current>`: the change of every headline metric between two
//! results of the same scenario, cell by cell, and which ones regressed.
//!
//! A metric regressed when it moved the wrong way by more than the tolerance *plus the noise the
//! two results themselves show*: each result's spread over its repeats (half its lowest-to-
//! highest range, relative to its value) widens the band, so a change a single noisy run could
//! make is not called a regression, while a change beyond every repeat is. Latency also gets an
//! absolute floor (`--min-latency-change`, default 100 µs): microsecond jitter on a sub-millisecond
//! percentile is not a regression. Lost and duplicated jobs regress on any increase.

use super::metric::{self, Better, Unit};
use crate::runtime::error::{Error, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The metrics compared, when both results have them: these, then each queue operation's
/// headline latencies, then [`COMPARED_AFTER_OPS`] (see [`metric::around_op_headlines`]).
const COMPARED_BEFORE_OPS: &[&str] = &[
    "throughput",
    "enqueue_rate",
    "end_to_end.p50",
    "end_to_end.p95",
    "end_to_end.p99",
    "enqueue_to_start.p50",
    "enqueue_to_start.p99",
    "start_to_complete.p50",
    "start_to_complete.p99",
    "enqueue_call.p99",
];
const COMPARED_AFTER_OPS: &[&str] = &["redis_bytes_per_job", "lost", "duplicates"];

/// How strict a comparison is.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Relative change allowed beyond the noise (0.1 = 10%).
    pub relative: f64,
    /// Latency changes smaller than this (µs) never count.
    pub min_latency_change_us: f64,
}

/// One metric of one cell in both results.
#[derive(Debug, Clone)]
pub struct Delta {
    /// Label of the matrix cell (`workers=10`, `all` without a matrix).
    pub cell: String,
    /// The metric's name (`end_to_end.p99`).
    pub metric: String,
    /// The metric's unit, for formatting and for the rules (latency floor, counts).
    pub unit: Unit,
    /// The cell's aggregate value in the baseline result.
    pub baseline: f64,
    /// The cell's aggregate value in the current result.
    pub current: f64,
    /// (current − baseline) / |baseline|; ±infinity when the baseline is 0 and the current is
    /// not (reported as `new`).
    pub change: f64,
    /// The relative change allowed: tolerance + both results' spread.
    pub allowed: f64,
    /// The metric moved the wrong way by more than `allowed` (a count: by any increase).
    pub regressed: bool,
    /// The metric moved the right way by more than `allowed` (a count: by any decrease).
    pub improved: bool,
}

/// The outcome of `conveyor compare`: every compared metric of every cell both results have.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The scenario both results are of.
    pub scenario: String,
    /// One entry per metric of each cell found in both results, in cell and metric order.
    pub deltas: Vec<Delta>,
    /// Cells present in only one of the results.
    pub unmatched: Vec<String>,
}

/// Reads `result.json` from a results directory or the file itself.
pub fn load(path: &Path) -> Result<Value> {
    let file: PathBuf = if path.is_dir() { path.join("result.json") } else { path.to_path_buf() };
    let bytes = std::fs::read(&file)
        .map_err(|e| Error::Input { file: file.clone(), message: format!("cannot read the result: {e}") })?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Input { file: file.clone(), message: format!("expected a conveyor result.json: {e}") })?;
    let version = v.get("schema_version").and_then(Value::as_u64);
    // Version 2 has the same `metrics` tables (it differs only in the timeline and trends).
    if !version.is_some_and(|n| (2..=u64::from(super::SCHEMA_VERSION)).contains(&n)) || v.get("cells").is_none() {
        return Err(Error::Input {
            file,
            message: format!(
                "expected a conveyor result.json with schema_version 2 to {} (a results directory or its result.json), got schema_version {version:?}",
                super::SCHEMA_VERSION
            ),
        });
    }
    Ok(v)
}

/// Compares two results of the same scenario.
pub fn compare(baseline: &Value, current: &Value, tol: Tolerance) -> Result<Comparison> {
    let name = |v: &Value| v["scenario"].as_str().unwrap_or_default().to_owned();
    if name(baseline) != name(current) {
        return Err(Error::Usage(format!(
            "compare: the results are of different scenarios ({:?} and {:?})",
            name(baseline),
            name(current)
        )));
    }
    let cells = |v: &Value| v["cells"].as_array().cloned().unwrap_or_default();
    let (base_cells, cur_cells) = (cells(baseline), cells(current));
    let mut deltas = Vec::new();
    let mut unmatched = Vec::new();
    let compared = metric::around_op_headlines(COMPARED_BEFORE_OPS, COMPARED_AFTER_OPS);
    for b in &base_cells {
        let label = b["label"].as_str().unwrap_or_default();
        let Some(c) = cur_cells.iter().find(|c| c["label"].as_str() == Some(label)) else {
            unmatched.push(label.to_owned());
            continue;
        };
        for name in compared.iter().map(String::as_str) {
            let (Some(bm), Some(cm)) = (summary(b, name), summary(c, name)) else { continue };
            let Some(def) = metric::lookup(name) else { continue };
            deltas.push(delta(label, name, def.unit, def.better, bm, cm, tol));
        }
    }
    for c in &cur_cells {
        let label = c["label"].as_str().unwrap_or_default();
        if !base_cells.iter().any(|b| b["label"].as_str() == Some(label)) {
            unmatched.push(label.to_owned());
        }
    }
    Ok(Comparison { scenario: name(current), deltas, unmatched })
}

/// (value, min, max) of a metric of a cell.
fn summary(cell: &Value, name: &str) -> Option<(f64, f64, f64)> {
    let m = cell.get("metrics")?.get(name)?;
    Some((m["value"].as_f64()?, m["min"].as_f64()?, m["max"].as_f64()?))
}

fn delta(
    cell: &str,
    name: &str,
    unit: Unit,
    better: Better,
    (b, b_min, b_max): (f64, f64, f64),
    (c, c_min, c_max): (f64, f64, f64),
    tol: Tolerance,
) -> Delta {
    let change = if b != 0.0 {
        (c - b) / b.abs()
    } else if c == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(c)
    };
    let spread = |v: f64, lo: f64, hi: f64| if v != 0.0 { (hi - lo) / (2.0 * v.abs()) } else { 0.0 };
    let allowed = tol.relative + spread(b, b_min, b_max) + spread(c, c_min, c_max);
    let worse = match better {
        Better::Higher => -change,
        Better::Lower => change,
    };
    let significant = match unit {
        Unit::Micros => (c - b).abs() >= tol.min_latency_change_us,
        _ => true,
    };
    let regressed = if unit == Unit::Count { c > b } else { significant && worse > allowed };
    let improved = if unit == Unit::Count { c < b } else { significant && -worse > allowed };
    Delta {
        cell: cell.to_owned(),
        metric: name.to_owned(),
        unit,
        baseline: b,
        current: c,
        change,
        allowed,
        regressed,
        improved,
    }
}

impl Comparison {
    /// The deltas that regressed; any one fails `conveyor compare`.
    pub fn regressions(&self) -> impl Iterator<Item = &Delta> {
        self.deltas.iter().filter(|d| d.regressed)
    }

    /// The table of deltas and the verdict.
    pub fn render(&self) -> String {
        let header: Vec<String> =
            ["cell", "metric", "baseline", "current", "change", "allowed", "verdict"].map(String::from).to_vec();
        let rows: Vec<Vec<String>> = self
            .deltas
            .iter()
            .map(|d| {
                vec![
                    d.cell.clone(),
                    d.metric.clone(),
                    metric::format(d.baseline, d.unit),
                    metric::format(d.current, d.unit),
                    if d.change.is_finite() { format!("{:+.1}%", d.change * 100.0) } else { "new".into() },
                    if d.unit == Unit::Count { "no increase".into() } else { format!("±{:.1}%", d.allowed * 100.0) },
                    if d.regressed {
                        "REGRESSED".into()
                    } else if d.improved {
                        "better".into()
                    } else {
                        "ok".into()
                    },
                ]
            })
            .collect();
        let mut s = format!("compare {}\n", self.scenario);
        s.push_str(&super::table::plain(&header, &rows, "  "));
        for u in &self.unmatched {
            let _ = writeln!(s, "  cell {u} is in only one of the results (not compared)");
        }
        s
    }
}

/// `"10%"` or `"0.1"` → 0.1.
pub fn parse_tolerance(s: &str) -> std::result::Result<f64, String> {
    let v = match s.trim().strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => s.trim().parse::<f64>(),
    };
    v.ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("expected a tolerance such as \"10%\" or \"0.1\", got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerance = Tolerance { relative: 0.1, min_latency_change_us: 100.0 };

    #[test]
    fn spread_widens_the_band() {
        let d = delta(
            "all",
            "throughput",
            Unit::PerSecond,
            Better::Higher,
            (1000.0, 1000.0, 1000.0),
            (850.0, 850.0, 850.0),
            TOL,
        );
        assert!(d.regressed);
        // The same drop within the baseline's own spread is noise.
        let d = delta(
            "all",
            "throughput",
            Unit::PerSecond,
            Better::Higher,
            (1000.0, 800.0, 1200.0),
            (850.0, 850.0, 850.0),
            TOL,
        );
        assert!(!d.regressed);
        let d = delta(
            "all",
            "end_to_end.p99",
            Unit::Micros,
            Better::Lower,
            (100.0, 100.0, 100.0),
            (180.0, 180.0, 180.0),
            TOL,
        );
        assert!(!d.regressed, "80 µs is under the latency floor");
        let d = delta("all", "lost", Unit::Count, Better::Lower, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), TOL);
        assert!(d.regressed);
        assert_eq!(parse_tolerance("10%"), Ok(0.1));
        assert!(parse_tolerance("ten").is_err());
    }
}
