//! Scenario files: every shipped scenario loads, and malformed ones get one clear error that
//! names the file, the field and what was expected.

use conveyor::bench::scenario::{RatePlan, Scenario};
use std::path::Path;

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text, Path::new("scenarios/bad.toml")).map_err(|e| e.to_string())
}

#[test]
fn every_shipped_scenario_loads() {
    let files =
        conveyor::bench::scenario::files_in(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))).unwrap();
    assert!(!files.is_empty(), "no scenarios found");
    for f in files {
        let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.description.is_empty(), "{} has no description", f.display());
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with('#'), "{} must open with a comment saying what it shows", f.display());
    }
}

#[test]
fn quick_scenario_is_what_the_readme_promises() {
    let s = Scenario::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quick.toml"))).unwrap();
    assert_eq!(s.workers.count, 4);
    // About 10 s: a 2 s warm-up, then 8 s measured, open loop at 5,000 jobs/s.
    assert_eq!(s.producer.jobs, None);
    assert_eq!(s.producer.duration, Some(std::time::Duration::from_secs(8)));
    assert_eq!(s.phases.warmup, std::time::Duration::from_secs(2));
    assert_eq!(s.producer.rate.peak(None), Some(5000.0));
    assert_ne!(s.producer.rate, RatePlan::Max, "a closed loop drains 10,000 jobs in a blink");
}

#[test]
fn defaults_fill_what_a_minimal_file_leaves_out() {
    let s = parse("[producer]\njobs = 5\n").unwrap();
    assert_eq!(s.name, "bad");
    assert_eq!(s.queue_name(), "bench-bad");
    assert_eq!(s.producer.count, 1);
    assert_eq!(s.jobs.len(), 1);
}

/// (file text, field the error must name, words the error must contain)
const MALFORMED: &[(&str, &str, &str)] = &[
    ("[producer]\njobs = \"many\"\n", "producer.jobs", "expected u64"),
    ("[producer]\njobs = 10\nrate = \"fast\"\n", "producer.rate", "jobs per second or \"max\""),
    ("[producer]\njobs = 10\nrate = -5\n", "producer.rate", "positive"),
    ("[producer]\njobs = 10\nrate = 0\n", "producer.rate", "positive"),
    ("[producer]\njobs = 0\n", "producer.jobs", "at least 1"),
    ("[producer]\n", "producer", "`jobs`"),
    ("[producer]\njobs = 5\nduration = \"1s\"\n", "producer", "not both"),
    ("[producer]\nduration = \"soon\"\n", "producer.duration", "duration such as"),
    ("[producer]\njobs = 5\nbatch = 0\n", "producer.batch", "1 to 10000"),
    ("[producer]\njobs = 5\ncount = 0\n", "producer.count", "at least 1"),
    ("[producer]\njobs = 5\n[workers]\ncount = -1\n", "workers.count", "u32"),
    ("[producer]\njobs = 5\n[workers]\nconcurrency = 0\n", "workers.concurrency", "at least 1"),
    ("[producer]\njobs = 5\n[workers]\nthreads = 3\n", "workers.threads", "unknown field `threads`"),
    ("[producer]\njobs = 5\n[worker]\ncount = 3\n", "", "unknown field `worker`"),
    ("[producer]\njobs = 5\n[[jobs]]\nkind = \"teleport\"\n", "jobs[0].kind", "unknown variant `teleport`"),
    ("[producer]\njobs = 5\n[[jobs]]\nkind = \"sleep\"\n", "jobs[0].duration", "duration"),
    ("[producer]\njobs = 5\n[[jobs]]\nkind = \"fail\"\nprobability = 1.5\n", "jobs[0].probability", "0 to 1"),
    ("[producer]\njobs = 5\n[[jobs]]\nkind = \"noop\"\nweight = 0\n", "jobs[0].weight", "at least 1"),
    ("[producer]\njobs = 5\n[[jobs]]\nkind = \"noop\"\nprobability = 0.5\n", "jobs[0].probability", "only fail jobs"),
    ("[producer]\njobs = 5\njobs = []\n", "", "duplicate key"),
    ("[producer]\njobs = 5\n[queue]\nlease = \"1ms\"\n", "queue.lease", "at least 10ms"),
    ("[producer]\njobs = 5\n[queue]\nmax_attempts = 0\n", "queue.max_attempts", "at least 1"),
    ("[producer]\njobs = 5\n[queue]\nname = \"a b*\"\n", "queue.name", "letters, digits"),
    ("[producer]\njobs = 99999999999999999999\n", "producer.jobs", "expected u64"),
    ("[producer\njobs = 5\n", "", "line 1"),
];

#[test]
fn malformed_scenarios_get_errors_naming_file_field_and_expectation() {
    for (text, field, words) in MALFORMED {
        let err = parse(text).expect_err(&format!("accepted malformed scenario:\n{text}"));
        assert!(err.contains("scenarios/bad.toml"), "error does not name the file: {err}");
        if !field.is_empty() {
            assert!(err.contains(&format!("field \"{field}\"")), "error does not name field {field}: {err}");
        }
        assert!(err.contains(words), "error for\n{text}\nlacks {words:?}: {err}");
    }
}

#[test]
fn unreadable_files_are_errors_that_name_the_file() {
    let err = Scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/x.toml") && err.contains("cannot read"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("garbage.toml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let err = Scenario::load(&bin).unwrap_err().to_string();
    assert!(err.contains("garbage.toml") && err.contains("UTF-8"), "{err}");
}
