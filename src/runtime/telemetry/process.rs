//! The `process_*` metrics, rendered at each scrape from what [`crate::runtime::process`] reads of this
//! process: the names, types and HELP texts of Prometheus' client libraries. Rendered here, not
//! through the recorder, because `process_cpu_seconds_total` is a counter of fractional
//! seconds and the recorder's counters hold whole numbers: a worker that used 7.11 CPU-seconds
//! would export 7, and `rate()` over it would jump between 0 and a second per step.

use crate::runtime::process::ProcessFigures;
use std::fmt::Write;

/// Appends every `process_*` family, as of now, to `out`.
pub fn render(out: &mut String) {
    let f = ProcessFigures::read();
    family(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", {
        Some(crate::runtime::process::process_cpu_seconds())
    });
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", {
        Some(crate::runtime::process::process_rss_bytes() as f64)
    });
    let n = |v: Option<u64>| v.map(|v| v as f64);
    family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", n(f.virtual_memory_bytes));
    family(
        out,
        "process_virtual_memory_max_bytes",
        "gauge",
        "Maximum amount of virtual memory available in bytes.",
        n(f.virtual_memory_max_bytes),
    );
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.", n(f.open_fds));
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.", n(f.max_fds));
    family(out, "process_threads", "gauge", "Number of OS threads in the process.", n(f.threads));
    family(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        f.start_time_seconds,
    );
}

/// One family of a single unlabelled sample; nothing when the value is unknown.
fn family(out: &mut String, name: &str, kind: &str, help: &str, value: Option<f64>) {
    let Some(value) = value else { return };
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_a_fractional_counter_that_grows() {
        let value = |text: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with("process_cpu_seconds_total ")).expect("a sample");
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let mut first = String::new();
        render(&mut first);
        assert!(first.contains("# TYPE process_cpu_seconds_total counter\n"), "{first}");
        let start = std::time::Instant::now();
        let mut x = 1u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
        }
        let mut second = String::new();
        render(&mut second);
        let (a, b) = (value(&first), value(&second));
        assert!(b > a, "CPU seconds did not grow: {a} then {b}");
        assert!(a.fract() != 0.0 || b.fract() != 0.0, "whole seconds: {a}, {b}");
        for family in ["process_resident_memory_bytes", "process_open_fds", "process_threads"] {
            assert!(second.contains(&format!("# TYPE {family} gauge\n{family} ")), "{family} missing: {second}");
        }
    }
}
