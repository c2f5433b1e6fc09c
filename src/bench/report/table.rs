//! The side-by-side table of a suite: one row per metric, one column per matrix cell, each
//! value with its spread over the repeats (`12.3ms [11.9–13.0]`). Rendered as Markdown for
//! `report.md` and as aligned text for the terminal.

use super::metric;
use super::suite::SuiteResult;

/// Rows in the order people read them (every metric is in result.json): these, then each queue
/// operation's headline latencies, then [`ORDER_AFTER_OPS`] (see
/// [`metric::around_op_headlines`]).
const ORDER_BEFORE_OPS: &[&str] = &[
    "throughput",
    "throughput_per_worker",
    "enqueue_rate",
    "ceiling_share",
    "end_to_end.p50",
    "end_to_end.p95",
    "end_to_end.p99",
    "end_to_end.p999",
    "end_to_end.max",
    "enqueue_to_start.p50",
    "enqueue_to_start.p95",
    "enqueue_to_start.p99",
    "enqueue_to_start.max",
    "start_to_complete.p50",
    "start_to_complete.p95",
    "start_to_complete.p99",
    "enqueue_call.p50",
    "enqueue_call.p99",
    "schedule_lag.p50",
    "schedule_lag.p99",
    "schedule_lag.max",
];
const ORDER_AFTER_OPS: &[&str] = &[
    "produced",
    "finished",
    "lost",
    "duplicates",
    "duplicate_rate",
    "dead",
    "retried",
    "completion_rate",
    "max_waiting",
    "drain_seconds",
    "rss_baseline_bytes",
    "rss_idle_bytes",
    "rss_bytes",
    "redis_bytes_per_job",
    "redis_used_memory_bytes",
    "rss_slope_bytes_per_hour",
    "rss_growth",
    "redis_memory_slope_bytes_per_hour",
    "throughput_cv",
    "jobs_per_cpu_second",
    "cpu_per_job",
    "ceiling.xadd_per_second",
    "ceiling.cycle_per_second",
    "ceiling.concurrent_per_second",
];

/// Header (first column "metric", then one per cell) and rows of formatted values.
pub fn rows(suite: &SuiteResult) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["metric".to_owned()];
    header.extend(suite.cells.iter().map(|c| c.label.clone()));
    let names = metric::around_op_headlines(ORDER_BEFORE_OPS, ORDER_AFTER_OPS);
    let spread = suite.repeats > 1;
    let rows = names
        .iter()
        .filter(|n| suite.cells.iter().any(|c| c.metrics.contains_key(n.as_str())))
        .map(|n| {
            let mut row = vec![n.clone()];
            for c in &suite.cells {
                row.push(match c.metrics.get(n.as_str()) {
                    None => "–".to_owned(),
                    Some(m) if spread && m.min != m.max && m.unit != metric::Unit::Count => format!(
                        "{} [{}–{}]",
                        metric::format(m.value, m.unit),
                        metric::format(m.min, m.unit),
                        metric::format(m.max, m.unit)
                    ),
                    Some(m) => metric::format(m.value, m.unit),
                });
            }
            row
        })
        .collect();
    (header, rows)
}

/// A Markdown table.
pub fn markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n", header.join(" | "));
    s.push_str(&format!(
        "|{}\n",
        header.iter().enumerate().map(|(i, _)| if i == 0 { "---|" } else { "---:|" }).collect::<String>()
    ));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

/// Columns padded to line up in a terminal.
pub fn plain(header: &[String], rows: &[Vec<String>], indent: &str) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            std::iter::once(&header[i]).chain(rows.iter().map(|r| &r[i])).map(|c| c.chars().count()).max().unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut l = indent.to_owned();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i == 0 {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            } else {
                l.push_str("  ");
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut s = line(header);
    for r in rows {
        s.push_str(&line(r));
    }
    s
}
