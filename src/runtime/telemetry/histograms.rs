//! The job-stage histograms as Prometheus bucket counts.
//!
//! Workers hand the collector HDR histograms covering thousands of jobs at a time. The
//! recorder's own histograms keep every sample until its next upkeep (one `record` per job),
//! which at 250k jobs/s costs a core's worth of pushes and megabytes of buffered samples; here
//! an HDR histogram is folded into fixed bucket counts in one pass over its recorded values
//! (a few hundred at most), and the exposition is rendered from those counts.

use super::catalog::{BUCKETS, JOB_HISTOGRAMS};
use crate::runtime::latency::Latency;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Bucket counts of one histogram series (one family and queue).
#[derive(Debug, Clone)]
struct Series {
    /// Count of values in each bucket (not cumulative); the last one is `+Inf`.
    buckets: Vec<u64>,
    sum_seconds: f64,
    count: u64,
}

impl Series {
    fn new() -> Self {
        Self { buckets: vec![0; BUCKETS.len() + 1], sum_seconds: 0.0, count: 0 }
    }

    fn add(&mut self, latency: &Latency) {
        let h = latency.histogram();
        for v in h.iter_recorded() {
            let seconds = h.median_equivalent(v.value_iterated_to()) as f64 / 1e6;
            let n = v.count_at_value();
            self.buckets[BUCKETS.partition_point(|le| *le < seconds)] += n;
            self.sum_seconds += seconds * n as f64;
            self.count += n;
        }
    }
}

/// Every job-stage series of this process: (family index in [`JOB_HISTOGRAMS`], queue).
#[derive(Debug, Default)]
pub struct JobHistograms {
    series: Mutex<BTreeMap<(usize, String), Series>>,
}

impl JobHistograms {
    /// Creates the series of `queue` (all zero), so dashboards show 0 rather than nothing.
    pub fn register(&self, queue: &str) {
        let mut series = self.series.lock().expect("histogram lock");
        for family in 0..JOB_HISTOGRAMS.len() {
            series.entry((family, queue.to_owned())).or_insert_with(Series::new);
        }
    }

    /// Adds an HDR histogram (µs) to the series of family `family` and `queue`.
    pub fn add(&self, family: usize, queue: &str, latency: &Latency) {
        if latency.is_empty() {
            return;
        }
        let mut series = self.series.lock().expect("histogram lock");
        series.entry((family, queue.to_owned())).or_insert_with(Series::new).add(latency);
    }

    /// Appends the Prometheus text exposition of every series to `out`.
    pub fn render(&self, out: &mut String) {
        let series = self.series.lock().expect("histogram lock");
        for (family, (name, help)) in JOB_HISTOGRAMS.iter().enumerate() {
            let mut rows = series.range((family, String::new())..).take_while(|((f, _), _)| *f == family).peekable();
            if rows.peek().is_none() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            for ((_, queue), s) in rows {
                let queue = escape_label(queue);
                let mut cumulative = 0;
                for (i, n) in s.buckets.iter().enumerate() {
                    cumulative += n;
                    match BUCKETS.get(i) {
                        Some(le) => {
                            let _ = writeln!(out, "{name}_bucket{{queue=\"{queue}\",le=\"{le}\"}} {cumulative}");
                        }
                        None => {
                            let _ = writeln!(out, "{name}_bucket{{queue=\"{queue}\",le=\"+Inf\"}} {cumulative}");
                        }
                    }
                }
                let _ = writeln!(out, "{name}_sum{{queue=\"{queue}\"}} {}", s.sum_seconds);
                let _ = writeln!(out, "{name}_count{{queue=\"{queue}\"}} {}", s.count);
            }
            out.push('\n');
        }
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_hdr_values_into_cumulative_buckets() {
        let mut l = Latency::default();
        for _ in 0..90 {
            l.record_us(120); // 0.00012 s: bucket le=0.00015
        }
        for _ in 0..10 {
            l.record_us(2_000_000); // 2 s: bucket le=2.5
        }
        let h = JobHistograms::default();
        h.add(2, "q\"1", &l);
        let mut out = String::new();
        h.render(&mut out);
        assert!(out.contains("# TYPE conveyor_job_end_to_end_seconds histogram"), "{out}");
        assert!(out.contains("conveyor_job_end_to_end_seconds_bucket{queue=\"q\\\"1\",le=\"0.0001\"} 0\n"), "{out}");
        assert!(out.contains("conveyor_job_end_to_end_seconds_bucket{queue=\"q\\\"1\",le=\"0.00015\"} 90\n"), "{out}");
        assert!(out.contains("conveyor_job_end_to_end_seconds_bucket{queue=\"q\\\"1\",le=\"1.5\"} 90\n"), "{out}");
        assert!(out.contains("conveyor_job_end_to_end_seconds_bucket{queue=\"q\\\"1\",le=\"2.5\"} 100\n"), "{out}");
        assert!(out.contains("conveyor_job_end_to_end_seconds_bucket{queue=\"q\\\"1\",le=\"+Inf\"} 100\n"), "{out}");
        assert!(out.contains("conveyor_job_end_to_end_seconds_count{queue=\"q\\\"1\"} 100\n"), "{out}");
        assert!(!out.contains("enqueue_to_start"), "families without series are left out: {out}");
    }
}
