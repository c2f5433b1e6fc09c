//! What a run shows while it goes: on a terminal, a live line (indicatif spinner) with the
//! phase, elapsed time, jobs/s and end-to-end p99 so far; otherwise one plain line a second on
//! stderr, so logs of CI runs stay readable; nothing with `--quiet`. A figure no worker has
//! reported yet reads "unknown", never 0.

use crate::bench::report::Sample;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// How progress is shown.
#[derive(Debug)]
pub enum Progress {
    /// Nothing is shown (`--quiet`, or `--json` on stdout).
    Off,
    /// One line per sample on stderr.
    Lines,
    /// A spinner line redrawn in place.
    Live(ProgressBar),
}

impl Progress {
    /// Live on a terminal, plain lines otherwise; `Off` when not `enabled`.
    pub fn new(enabled: bool) -> Self {
        if !enabled {
            return Progress::Off;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress::Live(bar)
    }

    /// Shows one sample.
    pub fn show(&self, s: &Sample) {
        let line = line(s);
        match self {
            Progress::Off => {}
            Progress::Lines => eprintln!("{line}"),
            Progress::Live(bar) => bar.set_message(line),
        }
    }

    /// Prints a line above the live display (or as a plain line).
    pub fn note(&self, line: &str) {
        match self {
            Progress::Off => {}
            Progress::Lines => eprintln!("{line}"),
            Progress::Live(bar) => bar.println(line),
        }
    }

    /// Removes the live line.
    pub fn finish(&self) {
        if let Progress::Live(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// The progress line of one sample.
pub fn line(s: &Sample) -> String {
    let unknown = || "unknown".to_owned();
    format!(
        "{:<7} {:>7.1}s  {:>9} jobs/s  produced {:>9}  completed {:>9}  waiting {:>8}  in flight {:>5}  e2e p99 {}",
        s.phase,
        s.t_seconds,
        s.jobs_per_second.map_or_else(unknown, |r| format!("{r:.0}")),
        s.produced,
        s.completed.map_or_else(unknown, |c| c.to_string()),
        s.waiting,
        s.in_flight,
        s.end_to_end_p99_us.map_or_else(unknown, |us| format!("{:.3}ms", us as f64 / 1000.0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_nobody_reported_read_unknown_not_zero() {
        let s = Sample { phase: "produce", t_seconds: 2.0, produced: 4000, ..Default::default() };
        let l = line(&s);
        assert!(
            l.contains("unknown jobs/s") && l.contains("completed   unknown") && l.ends_with("e2e p99 unknown"),
            "{l}"
        );
        let s = Sample { completed: Some(3900), jobs_per_second: Some(1934.4), end_to_end_p99_us: Some(1234), ..s };
        let l = line(&s);
        assert!(
            l.contains("1934 jobs/s") && l.contains("completed      3900") && l.ends_with("e2e p99 1.234ms"),
            "{l}"
        );
    }
}
