//! The drivers (docs/drivers.md) through the real binary: a short `conveyor compare --drivers`
//! over every queue (conveyor in process, the conveyor driver, BullMQ, Celery, RQ, Dramatiq)
//! must report exact delivery (every produced job finished once: lost 0, duplicates 0) and
//! some throughput for each, so a broken driver fails the build; and a driver name or scenario
//! a driver cannot run is refused with exit code 2 before anything runs. Needs node, npm and
//! python3 with venv (`.ci/run` installs them); the first run installs each driver's packages.

use crate::support::{self, conveyor, scenario_file};
use std::process::Output;

const ALL: &str = "native,conveyor,bullmq,celery,rq,dramatiq";

/// A few hundred jobs per queue at a rate the slowest (RQ forks a process per job) keeps up with.
const SHORT: &str = r#"
[producer]
rate = 100
jobs = 300
batch = 50

[workers]
count = 2
concurrency = 4

[[jobs]]
kind = "noop"
payload_bytes = 100

[probes]
redis_memory_jobs = 100

[phases]
drain_timeout = "180s"
"#;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn tools_or_fail() {
    for (tool, install) in [("node", "nodejs"), ("npm", "npm"), ("python3", "python3 python3-venv")] {
        let found = std::process::Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
        assert!(found.status.success(), "the driver tests need {tool}: apt-get install -y {install}");
    }
}

#[test]
fn every_driver_delivers_every_job_exactly_once() {
    tools_or_fail();
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = scenario_file(dir.path(), "drivers.toml", "drivers", SHORT);
    let results = dir.path().join("results");
    // A server of its own: Redis bytes per job is the growth of `used_memory` while the probe's
    // jobs wait, which other tests on a shared server would move.
    let server = support::own_server(&[]);
    let out = conveyor()
        .args(["compare", "--quiet", "--drivers", ALL, "--redis-url", &server.url(), "--results"])
        .arg(&results)
        .arg(&file)
        .output()
        .unwrap();
    let all = text(&out);
    println!("{all}");
    assert_eq!(out.status.code(), Some(0), "the comparison failed:\n{all}");
    let run_dir = std::fs::read_dir(&results).unwrap().next().expect("a results directory").unwrap().path();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("result.json")).unwrap()).unwrap();
    let schema_text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/result.schema.json")).unwrap();
    let schema = jsonschema::validator_for(&serde_json::from_str(&schema_text).unwrap()).unwrap();
    let errors: Vec<String> = schema.iter_errors(&json).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "result.json breaks its schema: {errors:#?}");
    let cells = json["cells"].as_array().unwrap();
    let names: Vec<&str> = cells.iter().map(|c| c["params"]["driver"].as_str().unwrap()).collect();
    assert_eq!(names, ALL.split(',').collect::<Vec<_>>(), "one cell per driver, in order");
    for c in cells {
        let (label, m) = (c["label"].as_str().unwrap(), &c["metrics"]);
        let value = |name: &str| m[name]["value"].as_f64().unwrap_or_else(|| panic!("{label}: no {name}"));
        assert_eq!(value("produced"), 300.0, "{label}: every job handed over");
        assert_eq!(value("finished"), 300.0, "{label}: every job ran");
        assert_eq!(value("lost"), 0.0, "{label}: no job lost");
        assert_eq!(value("duplicates"), 0.0, "{label}: no job ran twice");
        assert!(value("throughput") > 0.0, "{label}: some throughput");
        assert!(value("end_to_end.p99") > 0.0, "{label}: latency measured");
        let run = &c["runs"][0];
        if label != "driver=native" {
            let library = run["driver"]["library"].as_str().unwrap();
            assert!(!library.is_empty(), "{label}: the driver names its library");
            assert!(value("cpu_per_job") > 0.0, "{label}: the driver's processes used CPU");
            assert!(value("redis_bytes_per_job") > 0.0, "{label}: waiting jobs take Redis memory");
        }
    }
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.contains("bullmq / conveyor"), "the report has the ratios against conveyor:\n{report}");
}

#[test]
fn a_driver_conveyor_does_not_have_is_refused_with_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = scenario_file(dir.path(), "s.toml", "bad-driver", SHORT);
    let results = dir.path().join("results");
    let url = support::shared_server().url();
    let run = support::cli_run(&["--driver", "sidekiq"], &results, &file);
    let all = text(&run);
    assert_eq!(run.status.code(), Some(2), "{all}");
    assert!(all.contains("--driver") && all.contains("expected one of native, conveyor"), "{all}");
    for list in ["conveyor,sidekiq", "bullmq,bullmq", ""] {
        let out = conveyor()
            .args(["compare", "--drivers", list, "--redis-url", &url, "--results"])
            .arg(&results)
            .arg(&file)
            .output()
            .unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "--drivers {list:?}: {all}");
        assert!(all.contains("--drivers"), "--drivers {list:?}: the error names the flag: {all}");
    }
    let one_path = conveyor().args(["compare"]).arg(&file).output().unwrap();
    assert_eq!(one_path.status.code(), Some(2), "compare with one path and no --drivers: {}", text(&one_path));
    assert!(!results.exists(), "nothing was written");
}

#[test]
fn a_scenario_a_driver_cannot_run_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = scenario_file(dir.path(), "s.toml", "driver-backlog", &format!("{SHORT}\n[backlog]\njobs = 10\n"));
    let out = conveyor()
        .args(["compare", "--drivers", "native,celery", "--redis-url", &support::shared_server().url()])
        .arg(&file)
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains(&file.display().to_string()) && all.contains("field \"backlog.jobs\""), "{all}");
}

#[test]
fn a_driver_that_dies_mid_run_ends_the_run_with_its_name_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("drivers/bullmq");
    std::fs::create_dir_all(&fake).unwrap();
    // Answers the hello, then exits at the first batch.
    let hello = r#"{"type":"hello","driver":"bullmq","library":"fake 0","settings":{}}"#;
    std::fs::write(fake.join("start"), format!("read line\necho '{hello}'\nread line\nexit 3\n")).unwrap();
    let (file, _) = scenario_file(dir.path(), "s.toml", "driver-dies", SHORT);
    let results = dir.path().join("results");
    let out = conveyor()
        .env("CONVEYOR_DRIVERS_DIR", dir.path().join("drivers"))
        .args(["run", "--quiet", "--driver", "bullmq", "--redis-url", &support::shared_server().url(), "--results"])
        .arg(&results)
        .arg(&file)
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("error: driver bullmq: exited before acknowledging a batch"), "{all}");
    assert!(!results.exists(), "nothing was written");
}
