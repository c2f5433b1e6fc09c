//! Targets: what a run must achieve to pass. Each is a metric name (see
//! [`crate::bench::report::metric`]), optionally narrowed to one matrix cell with `@axis=value`, and a
//! comparison whose threshold is written in the metric's own unit:
//!
//! ```toml
//! [targets]
//! "enqueue_to_start.p95" = "< 50ms"        # latencies take durations
//! throughput = "> 500"                     # jobs per second
//! "throughput@workers=1" = "> 100"         # only the cell where workers = 1
//! lost = "= 0"                             # counts
//! duplicate_rate = "< 1%"                  # ratios take a percentage or a fraction
//! rss_bytes = "< 100MB"                    # bytes: B, KB, MB, GB (1000) or KiB, MiB, GiB (1024)
//! ```
//!
//! A target that fails makes the run exit with code 1.

use crate::bench::report::metric::{self, Unit};
use serde::Serialize;

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    /// `<`: the value must be below the threshold.
    #[serde(rename = "<")]
    Less,
    /// `<=`: the value must not exceed the threshold.
    #[serde(rename = "<=")]
    AtMost,
    /// `>`: the value must be above the threshold.
    #[serde(rename = ">")]
    Greater,
    /// `>=`: the value must reach at least the threshold.
    #[serde(rename = ">=")]
    AtLeast,
    /// `=` (or `==`): the value must equal the threshold, within rounding error.
    #[serde(rename = "=")]
    Equal,
}

/// One parsed target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// The key as written (`"throughput@workers=1"`).
    pub key: String,
    /// The metric name (`throughput`).
    pub metric: String,
    /// Only the matrix cell whose `axis` has this value (as written in the matrix).
    pub cell: Option<(String, String)>,
    /// How the metric's value is compared with `threshold`.
    pub op: Op,
    /// In the metric's base unit (microseconds for latency, bytes, a fraction for ratios).
    pub threshold: f64,
    /// The comparison as written (`"< 50ms"`).
    pub text: String,
    /// The metric's unit, which `threshold` is written in.
    pub unit: Unit,
}

impl Op {
    /// Whether `value` meets `threshold` under this comparison.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Less => value < threshold,
            Op::AtMost => value <= threshold,
            Op::Greater => value > threshold,
            Op::AtLeast => value >= threshold,
            Op::Equal => (value - threshold).abs() <= f64::EPSILON * threshold.abs().max(1.0),
        }
    }
}

impl Target {
    /// Parses `key = "text"`; the error says what was expected (the caller names file and field).
    pub fn parse(key: &str, text: &str) -> Result<Self, String> {
        let (metric_name, cell) = match key.split_once('@') {
            Some((m, sel)) => {
                let (axis, value) = sel
                    .split_once('=')
                    .ok_or_else(|| format!("expected `metric@axis=value` to select a matrix cell, got {key:?}"))?;
                (m.trim(), Some((axis.trim().to_owned(), value.trim().to_owned())))
            }
            None => (key.trim(), None),
        };
        let def = metric::lookup(metric_name)
            .ok_or_else(|| format!("unknown metric {metric_name:?}; expected one of: {}", metric::examples()))?;
        let t = text.trim();
        let (op, rest) = if let Some(r) = t.strip_prefix("<=") {
            (Op::AtMost, r)
        } else if let Some(r) = t.strip_prefix(">=") {
            (Op::AtLeast, r)
        } else if let Some(r) = t.strip_prefix("==") {
            (Op::Equal, r)
        } else if let Some(r) = t.strip_prefix('<') {
            (Op::Less, r)
        } else if let Some(r) = t.strip_prefix('>') {
            (Op::Greater, r)
        } else if let Some(r) = t.strip_prefix('=') {
            (Op::Equal, r)
        } else {
            return Err(format!(
                "expected a comparison (<, <=, >, >=, =) then {}, got {text:?}",
                expectation(def.unit)
            ));
        };
        let threshold = parse_value(rest.trim(), def.unit).ok_or_else(|| {
            format!("expected {} after {:?}, got {:?}", expectation(def.unit), op_text(op), rest.trim())
        })?;
        // Thresholds are never negative; only a slope can go below zero.
        if op == Op::Less && threshold <= 0.0 && def.unit != Unit::BytesPerHour {
            return Err(format!(
                "{metric_name} is never below 0, so {t:?} can never be met; expected a threshold above 0"
            ));
        }
        Ok(Target {
            key: key.to_owned(),
            metric: metric_name.to_owned(),
            cell,
            op,
            threshold,
            text: t.to_owned(),
            unit: def.unit,
        })
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Less => "<",
        Op::AtMost => "<=",
        Op::Greater => ">",
        Op::AtLeast => ">=",
        Op::Equal => "=",
    }
}

/// What a threshold of `unit` looks like, for messages.
fn expectation(unit: Unit) -> &'static str {
    match unit {
        Unit::Micros => "a duration such as \"50ms\" or \"250us\"",
        Unit::PerSecond => "a number of jobs per second such as \"500\"",
        Unit::Count => "a whole number such as \"0\"",
        Unit::Ratio => "a percentage such as \"1%\" or a fraction such as \"0.01\"",
        Unit::Bytes => "a size such as \"5KB\" or \"100MB\"",
        Unit::Seconds => "a duration such as \"10s\"",
        Unit::BytesPerHour => "a size per hour such as \"10MB/h\"",
    }
}

/// A threshold in the unit's base (µs, bytes, fraction...).
fn parse_value(s: &str, unit: Unit) -> Option<f64> {
    match unit {
        Unit::Micros => duration_us(s),
        Unit::Seconds => duration_us(s).map(|us| us / 1e6),
        Unit::PerSecond => number(s.strip_suffix("/s").unwrap_or(s)),
        Unit::Count => number(s).filter(|n| n.fract() == 0.0),
        Unit::Ratio => match s.strip_suffix('%') {
            Some(p) => number(p).map(|p| p / 100.0),
            None => number(s),
        },
        Unit::Bytes => bytes(s),
        Unit::BytesPerHour => bytes(s.strip_suffix("/h")?),
    }
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0)
}

fn duration_us(s: &str) -> Option<f64> {
    let s = s.trim().replace('µ', "u");
    // humantime takes whole numbers only; accept "1.5s" by splitting the number from the unit.
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let factor = match unit.trim() {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    number(n).map(|n| n * factor)
}

fn bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let factor = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    number(n).map(|n| n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_in_the_metric_unit() {
        let t = Target::parse("enqueue_to_start.p95", "< 50ms").unwrap();
        assert_eq!((t.op, t.threshold, t.unit), (Op::Less, 50_000.0, Unit::Micros));
        assert_eq!(Target::parse("end_to_end.p99", "<= 1.5s").unwrap().threshold, 1_500_000.0);
        let t = Target::parse("throughput@workers=10", "> 500").unwrap();
        assert_eq!(t.cell, Some(("workers".into(), "10".into())));
        assert_eq!(t.threshold, 500.0);
        assert_eq!(Target::parse("duplicate_rate", "< 1%").unwrap().threshold, 0.01);
        assert_eq!(Target::parse("rss_bytes", "< 100MB").unwrap().threshold, 1e8);
        assert_eq!(Target::parse("lost", "= 0").unwrap().op, Op::Equal);
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        let e = Target::parse("end_to_end.p95", "< 50").unwrap_err();
        assert!(e.contains("duration"), "{e}");
        let e = Target::parse("end_to_end.p95", "50ms").unwrap_err();
        assert!(e.contains("comparison"), "{e}");
        let e = Target::parse("latency", "< 5ms").unwrap_err();
        assert!(e.contains("unknown metric"), "{e}");
        let e = Target::parse("lost", "< 0.5").unwrap_err();
        assert!(e.contains("whole number"), "{e}");
        assert!(Target::parse("throughput@workers", "> 1").is_err());
    }

    #[test]
    fn comparisons_hold() {
        assert!(Op::Less.holds(1.0, 2.0) && !Op::Less.holds(2.0, 2.0));
        assert!(Op::AtMost.holds(2.0, 2.0) && Op::Equal.holds(0.0, 0.0) && Op::Greater.holds(3.0, 2.0));
    }
}
