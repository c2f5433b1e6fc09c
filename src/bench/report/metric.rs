//! The catalogue of metrics a result reports: every name a target or a comparison may use,
//! with its unit and which direction is better. Names are flat, dotted paths
//! (`end_to_end.p99`, `ops.claim.p50`, `throughput`), so a scenario's `[targets]`, the
//! `metrics` table of `result.json` and `conveyor compare` all speak the same language.

/// Stages whose latency is measured per job, in microseconds.
pub const STAGES: &[&str] = &["enqueue_to_start", "start_to_complete", "end_to_end", "enqueue_call", "schedule_lag"];
/// Statistics of a latency histogram.
pub const STATS: &[&str] = &["min", "mean", "p50", "p90", "p95", "p99", "p999", "max"];
/// Queue operations timed alone by the `queue-ops` mode.
pub const OPS: &[&str] = &["enqueue", "claim", "ack", "fail", "status"];
/// Statistics of each queue operation that the suite table and `conveyor compare` show.
const OP_HEADLINE_STATS: &[&str] = &["p50", "p99"];

/// The metric names `before`, then each queue operation's headline latencies
/// (`ops.enqueue.p50`, `ops.enqueue.p99`, `ops.claim.p50`, … in the order of [`OPS`]), then
/// `after`: the metrics the suite table and `conveyor compare` go through, in order.
pub fn around_op_headlines(before: &[&str], after: &[&str]) -> Vec<String> {
    let ops = OPS.iter().flat_map(|op| OP_HEADLINE_STATS.iter().map(move |stat| format!("ops.{op}.{stat}")));
    before.iter().map(|s| s.to_string()).chain(ops).chain(after.iter().map(|s| s.to_string())).collect()
}

/// What a metric's number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Latency in microseconds (targets write durations: "50ms").
    Micros,
    /// Jobs (or operations) per second.
    PerSecond,
    /// A number of jobs.
    Count,
    /// A fraction, 0 to 1 (targets may write "1%").
    Ratio,
    /// A size in bytes (memory; targets may write "100MB" or "64KiB").
    Bytes,
    /// A duration in seconds (phase times such as `drain_seconds`).
    Seconds,
    /// Growth per hour (slopes of memory over a soak).
    BytesPerHour,
}

/// Which way is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// More is better (throughput).
    Higher,
    /// Less is better (latency, memory, lost jobs).
    Lower,
}

/// A metric's unit and good direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The unit the metric's values, and thresholds written for it, are in.
    pub unit: Unit,
    /// Which way a change is an improvement, for `conveyor compare`.
    pub better: Better,
}

const fn def(unit: Unit, better: Better) -> MetricDef {
    MetricDef { unit, better }
}

/// Scalar metrics (everything but the latency statistics).
const SCALARS: &[(&str, MetricDef)] = &[
    ("throughput", def(Unit::PerSecond, Better::Higher)),
    ("throughput_per_worker", def(Unit::PerSecond, Better::Higher)),
    ("enqueue_rate", def(Unit::PerSecond, Better::Higher)),
    ("jobs_per_cpu_second", def(Unit::PerSecond, Better::Higher)),
    ("cpu_per_job", def(Unit::Micros, Better::Lower)),
    ("produced", def(Unit::Count, Better::Higher)),
    ("finished", def(Unit::Count, Better::Higher)),
    ("lost", def(Unit::Count, Better::Lower)),
    ("duplicates", def(Unit::Count, Better::Lower)),
    ("dead", def(Unit::Count, Better::Lower)),
    ("retried", def(Unit::Count, Better::Lower)),
    ("unfinished", def(Unit::Count, Better::Lower)),
    ("unreported", def(Unit::Count, Better::Lower)),
    ("poison", def(Unit::Count, Better::Lower)),
    ("enqueue_errors", def(Unit::Count, Better::Lower)),
    ("max_waiting", def(Unit::Count, Better::Lower)),
    ("completion_rate", def(Unit::Ratio, Better::Higher)),
    ("duplicate_rate", def(Unit::Ratio, Better::Lower)),
    ("drain_seconds", def(Unit::Seconds, Better::Lower)),
    ("rss_bytes", def(Unit::Bytes, Better::Lower)),
    ("rss_idle_bytes", def(Unit::Bytes, Better::Lower)),
    ("rss_baseline_bytes", def(Unit::Bytes, Better::Lower)),
    ("redis_bytes_per_job", def(Unit::Bytes, Better::Lower)),
    ("redis_used_memory_bytes", def(Unit::Bytes, Better::Lower)),
    ("rss_slope_bytes_per_hour", def(Unit::BytesPerHour, Better::Lower)),
    ("rss_growth", def(Unit::Ratio, Better::Lower)),
    ("redis_memory_slope_bytes_per_hour", def(Unit::BytesPerHour, Better::Lower)),
    ("throughput_cv", def(Unit::Ratio, Better::Lower)),
    ("ceiling.xadd_per_second", def(Unit::PerSecond, Better::Higher)),
    ("ceiling.cycle_per_second", def(Unit::PerSecond, Better::Higher)),
    ("ceiling.concurrent_per_second", def(Unit::PerSecond, Better::Higher)),
    ("ceiling_share", def(Unit::Ratio, Better::Higher)),
];

/// The definition of `name`, or None when no such metric exists.
pub fn lookup(name: &str) -> Option<MetricDef> {
    if let Some((_, d)) = SCALARS.iter().find(|(n, _)| *n == name) {
        return Some(*d);
    }
    let latency = def(Unit::Micros, Better::Lower);
    match name.split('.').collect::<Vec<_>>()[..] {
        [stage, stat] if STAGES.contains(&stage) && STATS.contains(&stat) => Some(latency),
        ["ops", op, stat] if OPS.contains(&op) && STATS.contains(&stat) => Some(latency),
        _ => None,
    }
}

/// A short list of valid names, for error messages.
pub fn examples() -> &'static str {
    "throughput, throughput_per_worker, enqueue_rate, <stage>.<stat> (stages: enqueue_to_start, \
     start_to_complete, end_to_end, enqueue_call, schedule_lag; stats: min, mean, p50, p90, p95, p99, \
     p999, max), ops.<enqueue|claim|ack|fail|status>.<stat>, lost, duplicates, dead, retried, \
     unreported, completion_rate, duplicate_rate, drain_seconds, rss_bytes, rss_idle_bytes, redis_bytes_per_job, cpu_per_job, \
     rss_slope_bytes_per_hour, rss_growth, redis_memory_slope_bytes_per_hour, throughput_cv, max_waiting, ceiling_share"
}

/// Formats a value of `unit` for people: "12.3ms", "45,210/s", "3.2 MB", "0.5%".
pub fn format(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Micros => {
            if value >= 1_000_000.0 {
                format!("{:.3}s", value / 1e6)
            } else {
                format!("{:.3}ms", value / 1e3)
            }
        }
        Unit::PerSecond => format!("{value:.0}/s"),
        Unit::Count => format!("{value:.0}"),
        Unit::Ratio => format!("{:.3}%", value * 100.0),
        Unit::Bytes => bytes(value),
        Unit::Seconds => format!("{value:.2}s"),
        Unit::BytesPerHour => format!("{}/h", bytes(value)),
    }
}

fn bytes(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2} GB", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} MB", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.2} KB", v / 1e3)
    } else {
        format!("{v:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve() {
        assert_eq!(lookup("end_to_end.p99").unwrap().unit, Unit::Micros);
        assert_eq!(lookup("ops.claim.p50").unwrap().better, Better::Lower);
        assert_eq!(lookup("throughput").unwrap().better, Better::Higher);
        assert!(lookup("end_to_end.p98").is_none());
        assert!(lookup("ops.teleport.p50").is_none());
        assert_eq!(format(1500.0, Unit::Micros), "1.500ms");
    }

    #[test]
    fn op_headlines_sit_between_the_given_names_and_all_resolve() {
        let names = around_op_headlines(&["throughput"], &["lost"]);
        assert_eq!(names.len(), 2 + OPS.len() * OP_HEADLINE_STATS.len());
        assert_eq!(names[..4], ["throughput", "ops.enqueue.p50", "ops.enqueue.p99", "ops.claim.p50"]);
        assert_eq!(names[names.len() - 2..], ["ops.status.p99", "lost"]);
        assert!(names.iter().all(|n| lookup(n).is_some()), "{names:?}");
    }
}
