//! `report.md`: what a person reads after a run. The verdict first (PASS/FAIL with the reason),
//! the targets, the side-by-side table of every cell, then the context a figure needs to be
//! judged (machine, Redis and its settings, conveyor version, build).

use super::suite::SuiteResult;
use super::table;
use std::fmt::Write as _;

/// The whole `report.md` of a suite.
pub fn render(suite: &SuiteResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", suite.scenario);
    if !suite.description.is_empty() {
        let _ = writeln!(s, "{}\n", suite.description);
    }
    let verdict = if suite.passed { "PASS" } else { "FAIL" };
    let failed = suite.targets.iter().filter(|t| !t.passed).count();
    let _ = writeln!(
        s,
        "**{verdict}**: {} job(s) lost; {} of {} target check(s) met{}.\n",
        suite.lost,
        suite.targets.len() - failed,
        suite.targets.len(),
        if suite.interrupted { "; INTERRUPTED before the end" } else { "" }
    );
    let _ = writeln!(
        s,
        "Started {} UTC, finished {}. Mode `{}`; {} measured run(s) per cell{}{}.\n",
        suite.started_at,
        suite.finished_at,
        serde_json::to_value(suite.mode).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        suite.repeats,
        if suite.warmup_run { " after one unmeasured warm-up run" } else { "" },
        if suite.axes.is_empty() { String::new() } else { format!("; matrix over {}", suite.axes.join(", ")) }
    );
    if let Some(c) = &suite.capacity {
        let _ = writeln!(s, "Capacity probe: {:.0} jobs/s (closed loop, {} jobs).\n", c.jobs_per_second, c.jobs);
    }
    if !suite.targets.is_empty() {
        let _ = writeln!(s, "## Targets\n");
        let header: Vec<String> = ["target", "cell", "expected", "measured", "result"].map(String::from).to_vec();
        let rows: Vec<Vec<String>> = suite
            .targets
            .iter()
            .map(|t| {
                vec![
                    format!("`{}`", t.metric),
                    t.cell.clone(),
                    format!("`{}`", t.expected),
                    t.shown.clone(),
                    if t.passed { "PASS".into() } else { "**FAIL**".into() },
                ]
            })
            .collect();
        let _ = writeln!(s, "{}", table::markdown(&header, &rows));
    }
    let _ = writeln!(s, "## Results\n");
    if suite.repeats > 1 {
        let _ = writeln!(
            s,
            "Latency percentiles come from the histograms of every run merged; counts are summed; other \
             figures are medians. Brackets give the lowest and highest single run.\n"
        );
    }
    let (header, rows) = table::rows(suite);
    let _ = writeln!(s, "{}", table::markdown(&header, &rows));
    if super::drivers::is_comparison(suite) {
        let _ = writeln!(s, "## Queues\n");
        let (header, rows) = super::drivers::setups(suite);
        let _ = writeln!(s, "{}", table::markdown(&header, &rows));
        if let Some((header, rows)) = super::drivers::ratios(suite) {
            let _ = writeln!(s, "Against the `conveyor` driver (the same harness; above 1 is more):\n");
            let _ = writeln!(s, "{}", table::markdown(&header, &rows));
        }
        let _ = writeln!(
            s,
            "Driver runs: latency counts from conveyor's intended send time to the end of the handler \
             as the queue's worker recorded it; CPU is the driver's processes and their children; Redis \
             bytes per job is the growth of `used_memory` while the memory probe's jobs wait. See \
             docs/drivers.md.\n"
        );
    }
    let open_loop = suite.cells.iter().flat_map(|c| &c.runs).any(|r| r.setup.rate.is_some());
    let _ = writeln!(
        s,
        "{}\n",
        if open_loop {
            "Open loop: latency counts from each job's intended send time, so producer or Redis stalls \
             show up (schedule lag says how far behind plan the producers were)."
        } else {
            "Closed loop (\"max\"): producers send as fast as Redis acknowledges; good for peak \
             throughput, not for latency under a given load."
        }
    );
    let pauses: Vec<String> = suite
        .cells
        .iter()
        .flat_map(|c| &c.runs)
        .flat_map(|r| &r.pauses)
        .map(|p| format!("{:.1}s at {:.1}s", p.seconds, p.at_seconds))
        .collect();
    if let Some(p) = pauses.first() {
        let _ = writeln!(s, "Injected stall: every worker paused {p} (after the producers started), in every run.\n");
    }
    let notes = suite.notes();
    if !notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &notes {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Context\n");
    let (sys, r) = (&suite.system, &suite.redis);
    let _ = writeln!(
        s,
        "- machine: {} × {}, {:.1} GB memory, {}",
        sys.cores,
        sys.cpu_model,
        sys.memory_bytes as f64 / 1e9,
        sys.os
    );
    let _ = writeln!(
        s,
        "- Redis {} at {}{} (appendonly {}, appendfsync {}, save \"{}\", maxmemory-policy {}){}",
        r.version,
        r.url,
        if r.private_server { ", private server started by conveyor" } else { "" },
        r.appendonly,
        r.appendfsync,
        r.save,
        r.maxmemory_policy,
        if r.same_host { "; shares this host's cores" } else { "" }
    );
    let _ = writeln!(
        s,
        "- conveyor {} (git {}), {} build{}",
        sys.conveyor_version,
        sys.git_revision,
        if sys.release_build { "release" } else { "debug" },
        if sys.release_build { "" } else { ": figures not comparable" }
    );
    s
}
