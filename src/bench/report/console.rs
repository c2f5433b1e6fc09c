//! What `conveyor run` prints at the end: one run's full summary when there is one cell and one
//! run, the side-by-side table otherwise, then the targets and the verdict.

use super::suite::SuiteResult;
use super::table;
use std::fmt::Write as _;

/// The text `conveyor run` prints when a suite ends (see the module doc).
pub fn summary(suite: &SuiteResult) -> String {
    let mut s = String::new();
    let single =
        suite.cells.len() == 1 && suite.cells[0].runs.len() == 1 && suite.mode == crate::bench::scenario::Mode::Run;
    if single {
        s.push_str(&suite.cells[0].runs[0].summary());
    } else {
        let _ = writeln!(
            s,
            "scenario {} — {} cell(s) × {} run(s){}{}",
            suite.scenario,
            suite.cells.len(),
            suite.repeats,
            if suite.warmup_run { " after a warm-up run" } else { "" },
            if suite.interrupted { " — INTERRUPTED" } else { "" }
        );
        let (header, rows) = table::rows(suite);
        s.push_str(&table::plain(&header, &rows, "  "));
        if super::drivers::is_comparison(suite) {
            let (header, rows) = super::drivers::setups(suite);
            s.push_str(&table::plain(&header, &rows, "  "));
            if let Some((header, rows)) = super::drivers::ratios(suite) {
                s.push_str(&table::plain(&header, &rows, "  "));
            }
        }
        let c = &suite.system;
        let _ = writeln!(
            s,
            "  context     {} × {}, Redis {}{}",
            c.cores,
            c.cpu_model,
            suite.redis.version,
            if c.release_build { "" } else { ", DEBUG BUILD: not comparable" }
        );
    }
    if !single {
        for n in suite.notes() {
            let _ = writeln!(s, "  note        {n}");
        }
    }
    if let Some(c) = &suite.capacity {
        let _ = writeln!(s, "  capacity    {:.0} jobs/s (closed-loop probe of {} jobs)", c.jobs_per_second, c.jobs);
    }
    for t in &suite.targets {
        let _ = writeln!(
            s,
            "  target      {} {:<28} {:<14} {}: {}",
            if t.passed { "PASS" } else { "FAIL" },
            t.metric,
            t.expected,
            t.cell,
            t.shown
        );
    }
    s
}
