//! Malformed input through the real binary: every fixture in `tests/fixtures/bad/` (scenarios)
//! and `tests/fixtures/bad/config/` (settings files) is rejected by `conveyor validate` and
//! `conveyor run` with exit code 2 and one error line that names the file, the field and what
//! was expected; a rejected run writes no result. Missing files get the same treatment.

use crate::support::{self, conveyor};
use std::path::{Path, PathBuf};
use std::process::Output;

/// (fixture, field the error names ("" for files that are not TOML at all), words of the
/// expectation the error must contain)
const SCENARIOS: &[(&str, &str, &str)] = &[
    ("attempts-overflow.toml", "queue.max_attempts", "expected u16"),
    ("backoff-base-above-max.toml", "queue.backoff_base", "no more than queue.backoff_max"),
    ("bad-duration.toml", "producer.duration", "duration such as"),
    ("bad-queue-name.toml", "queue.name", "letters, digits"),
    ("binary-garbage.toml", "", "not UTF-8 text"),
    ("both-jobs-and-duration.toml", "producer", "not both"),
    ("chaos-at-zero.toml", "chaos.restart_redis_at", "time after the start"),
    ("chaos-kill-without-worker-process.toml", "chaos.worker_processes", "at least 1 worker process"),
    ("chaos-with-repeats.toml", "chaos", "a single run"),
    ("driver-with-fail-kind.toml", "jobs[0]", "expected kind noop, sleep or cpu"),
    ("duplicate-key.toml", "", "duplicate key"),
    ("duration-as-number.toml", "producer.duration", "duration such as"),
    ("empty-file.toml", "producer", "expected `jobs`"),
    ("empty-job-mix.toml", "jobs", "at least one [[jobs]]"),
    ("empty-matrix-axis.toml", "matrix.workers", "at least one value"),
    ("fail-without-probability.toml", "jobs[0].probability", "probability from 0 to 1"),
    ("huge-claim-batch.toml", "workers.batch", "1 to 10000"),
    ("huge-duration.toml", "producer.duration", "duration such as"),
    ("huge-number.toml", "producer.jobs", "expected u64"),
    ("huge-payload.toml", "jobs[0].payload_bytes", "at most"),
    ("impossible-target.toml", "targets.\"end_to_end.p99\"", "can never be met"),
    ("infinite-rate.toml", "producer.rate", "positive number"),
    ("lease-too-short.toml", "queue.lease", "at least 10ms"),
    ("matrix-wrong-type.toml", "matrix.workers", "expected a sequence"),
    ("nan-rate.toml", "producer.rate", "positive number"),
    ("negative-duration.toml", "queue.lease", "duration such as"),
    ("negative-jobs.toml", "producer.jobs", "expected u64"),
    ("negative-rate.toml", "producer.rate", "positive number"),
    ("no-end.toml", "producer", "expected `jobs`"),
    ("not-toml.toml", "", "expected a TOML scenario"),
    ("probability-out-of-range.toml", "jobs[0].probability", "from 0 to 1"),
    ("sleep-without-duration.toml", "jobs[0].duration", "expected a duration"),
    ("target-without-comparison.toml", "targets.\"throughput\"", "expected a comparison"),
    ("too-many-jobs.toml", "producer.jobs", "fewer than 2^32"),
    ("unknown-driver.toml", "driver", "expected one of native, conveyor, bullmq"),
    ("unknown-field-in-section.toml", "workers.threads", "unknown field `threads`"),
    ("unknown-job-kind.toml", "jobs[0].kind", "unknown variant `teleport`, expected one of"),
    ("unknown-mode.toml", "mode", "unknown variant `fast`"),
    ("unknown-section.toml", "worker", "unknown field `worker`"),
    ("unknown-target-metric.toml", "targets.\"speed\"", "unknown metric"),
    ("unknown-top-level-field.toml", "descripton", "unknown field `descripton`, expected one of"),
    ("unterminated-string.toml", "", "expected a TOML scenario"),
    ("word-rate.toml", "producer.rate", "jobs per second or \"max\""),
    ("wrong-type-ceiling.toml", "ceiling", "expected a boolean"),
    ("wrong-type-jobs.toml", "producer.jobs", "expected u64"),
    ("wrong-type-section.toml", "producer", "invalid type: integer"),
    ("wrong-type-worker-count.toml", "workers.count", "expected u32"),
    ("zero-batch.toml", "producer.batch", "1 to 10000"),
    ("zero-concurrency.toml", "workers.concurrency", "at least 1"),
    ("zero-duration.toml", "producer.duration", "above zero"),
    ("zero-event-pause.toml", "events[0].pause_workers", "above zero"),
    ("zero-in-matrix.toml", "matrix.workers", "at least 1"),
    ("zero-jobs.toml", "producer.jobs", "at least 1"),
    ("zero-partitions.toml", "queue.partitions", "from 1 to 256"),
    ("zero-producers.toml", "producer.count", "at least 1"),
    ("zero-rate.toml", "producer.rate", "positive number"),
    ("zero-repeats.toml", "repeats", "1 to 100"),
    ("zero-weight.toml", "jobs[0].weight", "at least 1"),
];

/// Settings files given with `--config`: (fixture, field, words).
const CONFIGS: &[(&str, &str, &str)] = &[
    ("binary-garbage.toml", "", "not UTF-8 text"),
    ("redis-url-wrong-scheme.toml", "redis_url", "expected redis://"),
    ("redis-url-wrong-type.toml", "redis_url", "expected a string"),
    ("results-dir-wrong-type.toml", "results_dir", "expected a string"),
    ("unknown-field.toml", "redis_urll", "unknown field"),
    ("unterminated-string.toml", "", "expected a TOML settings file"),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Lines of `out` (stdout and stderr) that report an error.
fn error_lines(out: &Output) -> Vec<String> {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.lines().filter(|l| l.starts_with("error")).map(str::to_owned).collect()
}

/// Exit code 2 and exactly one error line naming the file, the field and the expectation.
fn assert_one_clear_error(what: &str, out: &Output, file: &Path, field: &str, words: &str) {
    let lines = error_lines(out);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{what}: exit {:?}\n{all}", out.status);
    assert_eq!(lines.len(), 1, "{what}: expected one error line:\n{all}");
    let line = &lines[0];
    assert!(line.contains(&file.display().to_string()), "{what}: error does not name the file: {line}");
    if !field.is_empty() {
        assert!(line.contains(&format!("field \"{field}\"")), "{what}: error does not name field {field}: {line}");
    }
    assert!(line.contains(words), "{what}: error lacks {words:?}: {line}");
}

#[test]
fn every_fixture_is_checked_and_there_are_at_least_thirty() {
    let listed: Vec<&str> = SCENARIOS.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(files_in(&fixtures()), listed, "fixtures and the table differ");
    let listed: Vec<&str> = CONFIGS.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(files_in(&fixtures().join("config")), listed, "config fixtures and the table differ");
    assert!(SCENARIOS.len() + CONFIGS.len() >= 30);
}

#[test]
fn validate_rejects_every_malformed_scenario_with_one_clear_error() {
    for (name, field, words) in SCENARIOS {
        let file = fixtures().join(name);
        let out = conveyor().arg("validate").arg(&file).output().unwrap();
        assert_one_clear_error(&format!("validate {name}"), &out, &file, field, words);
    }
}

#[test]
fn run_rejects_every_malformed_scenario_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let url = support::shared_server().url();
    for (name, field, words) in SCENARIOS {
        let file = fixtures().join(name);
        let out = conveyor()
            .args(["run", "--quiet", "--redis-url", &url, "--results"])
            .arg(&results)
            .arg(&file)
            .output()
            .unwrap();
        assert_one_clear_error(&format!("run {name}"), &out, &file, field, words);
        assert!(!results.exists(), "run {name} wrote a result");
    }
}

#[test]
fn every_role_rejects_a_malformed_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quick.toml");
    for (name, field, words) in CONFIGS {
        let file = fixtures().join("config").join(name);
        for role in ["run", "produce", "worker"] {
            let mut cmd = conveyor();
            cmd.arg(role).arg(&scenario).arg("--config").arg(&file);
            if role != "worker" {
                cmd.arg("--quiet").arg("--results").arg(&results);
            }
            let out = cmd.output().unwrap();
            assert_one_clear_error(&format!("{role} --config {name}"), &out, &file, field, words);
        }
    }
    assert!(!results.exists(), "a rejected run wrote a result");
}

#[test]
fn missing_files_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-scenario.toml");
    let results = dir.path().join("results");
    let out = conveyor().arg("validate").arg(&missing).output().unwrap();
    assert_one_clear_error("validate missing", &out, &missing, "", "cannot read the file");
    for role in ["run", "produce", "worker"] {
        let mut cmd = conveyor();
        cmd.arg(role).arg(&missing);
        if role != "worker" {
            cmd.arg("--results").arg(&results);
        }
        let out = cmd.output().unwrap();
        assert_one_clear_error(&format!("{role} missing"), &out, &missing, "", "cannot read the file");
    }
    let missing_config = dir.path().join("no-such-config.toml");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quick.toml");
    let out = conveyor().arg("run").arg(&scenario).arg("--config").arg(&missing_config).output().unwrap();
    assert_one_clear_error("run --config missing", &out, &missing_config, "", "config file not found");
    assert!(!results.exists());
}

#[test]
fn a_bad_redis_url_on_the_command_line_is_one_clear_error_without_its_password() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quick.toml");
    for url in ["http://app:hunter2@127.0.0.1:6379", "redis://app:hunter2@127.0.0.1:notaport"] {
        let out = conveyor().args(["run", "--quiet", "--redis-url", url]).arg(&scenario).output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert_eq!(error_lines(&out).len(), 1, "{all}");
        assert!(all.contains("expected redis://"), "{all}");
        assert!(!all.contains("hunter2"), "the password leaked: {all}");
    }
}
