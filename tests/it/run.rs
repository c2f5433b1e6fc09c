//! Whole runs: the coordinator and all four actors against a real Redis, through the same
//! entry points the CLI uses, and the CLI binary itself (including worker processes that are
//! killed mid-run).

use crate::support::{self, conveyor, never};
use conveyor::bench::report::RunResult;
use conveyor::bench::run::{self, Interrupt};
use conveyor::bench::scenario::Scenario;
use std::path::Path;
use std::time::Duration;

fn scenario(text: &str) -> Scenario {
    support::scenario("run", text)
}

async fn run(s: &Scenario, interrupt: Interrupt) -> RunResult {
    let redis = support::redis().await;
    run::run_scenario(s, &redis, &support::run_options(), interrupt).await.unwrap_or_else(|e| panic!("run failed: {e}"))
}

fn assert_exact_delivery(r: &RunResult) {
    let c = &r.counts;
    assert_eq!(c.lost, 0, "lost jobs: {c:?}");
    assert_eq!(c.duplicates, 0, "duplicates: {c:?}");
    assert_eq!(c.finished, c.produced, "{c:?}");
    assert_eq!(r.remaining.unfinished(), 0, "{:?}", r.remaining);
}

#[actix_rt::test]
async fn quick_scenario_delivers_every_job_exactly_once() {
    let mut s = Scenario::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quick.toml"))).unwrap();
    s.queue.name = Some(support::unique_name("quick"));
    let r = run(&s, never()).await;
    assert_exact_delivery(&r);
    // 2 s of warm-up and 8 s measured at 5,000 jobs/s: an open loop sends its whole plan.
    assert_eq!(r.setup.rate, Some(5000.0));
    assert_eq!(r.setup.warmup_seconds, 2.0);
    assert_eq!(r.counts.produced, 50_000, "{:?}", r.counts);
    assert_eq!(r.counts.produced_warmup, 10_000, "{:?}", r.counts);
    assert_eq!(r.counts.completed, 50_000);
    assert_eq!(r.throughput.measured_jobs, 40_000);
    assert!(r.throughput.jobs_per_second > 0.0);
    // A sample a second: the measured window holds several, and from them come the trends. (A
    // stalled machine can delay samples by seconds; the trends then need the samples taken.)
    assert!(!r.timeline.is_empty(), "a run is sampled");
    let measured = r.timeline.iter().filter(|s| s.phase == "produce" && s.t_seconds > 2.0).count();
    if measured >= 7 {
        assert!(r.trends.as_ref().is_some_and(|t| t.throughput_cv.is_some()), "{measured} samples: {:?}", r.trends);
    }
    for p in [&r.latency_us.enqueue_to_start, &r.latency_us.start_to_complete, &r.latency_us.end_to_end] {
        assert_eq!(p.count, 40_000);
        assert!(p.min <= p.p50 && p.p50 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max, "{p:?}");
    }
    // End to end includes waiting, so it can never be below it.
    assert!(r.latency_us.end_to_end.p50 >= r.latency_us.enqueue_to_start.p50);
    assert!(r.passed());
    assert_eq!(r.redis.version.split('.').next().and_then(|m| m.parse::<u32>().ok()).map(|m| m >= 7), Some(true));
}

#[actix_rt::test]
async fn warmup_jobs_are_processed_and_audited_but_not_measured() {
    let s =
        scenario("[producer]\nduration = \"600ms\"\nrate = 2000\n[phases]\nwarmup = \"400ms\"\n[workers]\ncount = 2\n");
    let r = run(&s, never()).await;
    assert_exact_delivery(&r);
    assert!(r.counts.produced_warmup > 0, "{:?}", r.counts);
    assert_eq!(r.throughput.measured_jobs, r.counts.produced - r.counts.produced_warmup);
    assert_eq!(r.latency_us.end_to_end.count, r.throughput.measured_jobs);
    assert!(r.latency_us.schedule_lag.count > 0, "open loop records schedule lag");
}

#[actix_rt::test]
async fn failing_jobs_retry_then_die_and_nothing_is_lost() {
    let s = scenario(
        "[producer]\njobs = 2000\n[queue]\nmax_attempts = 2\nbackoff_base = \"10ms\"\nbackoff_max = \"20ms\"\n\
         [[jobs]]\nkind = \"fail\"\nprobability = 0.5\n[[jobs]]\nkind = \"panic\"\nweight = 1\n",
    );
    let r = run(&s, never()).await;
    assert_exact_delivery(&r);
    assert!(r.counts.retried > 0 && r.counts.dead > 0, "{:?}", r.counts);
    assert_eq!(r.remaining.dead, r.counts.dead);
    // Every panic job dies after its two attempts; the workers survive them all.
    assert!(r.counts.dead >= 900, "{:?}", r.counts);
}

#[actix_rt::test]
async fn interrupting_a_run_loses_nothing_and_still_reports() {
    let s = scenario(
        "[producer]\nduration = \"30s\"\nrate = 2000\n[workers]\ncount = 2\n[[jobs]]\nkind = \"sleep\"\nduration = \"2ms\"\n",
    );
    let interrupt: Interrupt = Box::pin(tokio::time::sleep(Duration::from_millis(1500)));
    let started = std::time::Instant::now();
    let r = run(&s, interrupt).await;
    // Only bounds a hang: the run would otherwise produce for 30 s and drain.
    assert!(started.elapsed() < Duration::from_secs(25), "the interrupt did not stop the run");
    assert!(r.interrupted);
    assert_eq!(r.counts.lost, 0, "{:?}", r.counts);
    assert_eq!(r.counts.duplicates, 0);
    assert!(r.counts.produced > 0);
    // Whatever did not finish is still in Redis, not gone.
    assert_eq!(r.counts.finished + r.counts.unfinished, r.counts.produced, "{:?}", r.counts);
    assert_eq!(r.remaining.in_flight, 0, "stopped workers must not hold jobs");
}

#[test]
fn cli_run_prints_percentiles_and_writes_the_same_numbers_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let (scenario, _) = support::scenario_file(dir.path(), "cli.toml", "cli", "[producer]\njobs = 3000\n");
    let out = support::cli_run(&[], &dir.path().join("results"), &scenario);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    for needle in ["p50", "p99.9", "enqueue→start", "end-to-end", "lost 0, duplicates 0"] {
        assert!(stdout.contains(needle), "summary lacks {needle:?}:\n{stdout}");
    }
    // results/<UTC timestamp>-<scenario>/result.json
    let result_dir = support::result_dir(&dir.path().join("results"));
    assert!(result_dir.file_name().unwrap().to_string_lossy().ends_with("Z-cli"), "{}", result_dir.display());
    let json = support::read_json(&result_dir.join("result.json"));
    let run = &json["cells"][0]["runs"][0];
    assert_eq!(run["counts"]["produced"], 3000);
    assert_eq!(run["counts"]["lost"], 0);
    let p99 = run["latency_us"]["end_to_end"]["p99"].as_u64().unwrap();
    let shown = format!("{:.3}ms", p99 as f64 / 1000.0);
    let line = stdout.lines().find(|l| l.contains("end-to-end")).unwrap();
    assert!(line.contains(&shown), "summary line {line:?} does not show the JSON's p99 {shown}");
}

#[test]
fn cli_rejects_bad_input_with_exit_code_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.toml");
    std::fs::write(&scenario, "[producer]\njobs = \"lots\"\n").unwrap();
    let out = conveyor().arg("run").arg(&scenario).arg("--results").arg(dir.path().join("results")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml") && stderr.contains("producer.jobs"), "{stderr}");
    assert!(!dir.path().join("results").exists(), "a failed run wrote results");
    let out = conveyor()
        .arg("validate")
        .arg(&scenario)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quick.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok    ") && stdout.contains("error "), "{stdout}");
}

#[test]
fn cli_reports_unreachable_redis_quickly() {
    let started = std::time::Instant::now();
    let out = conveyor()
        .args(["run", "--quiet", "--redis-url", "redis://127.0.0.1:1"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quick.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Only bounds a hang: a refused connection fails at once, a silent one after 3 s.
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
}

/// Kills one of two worker processes with SIGKILL while a `conveyor produce` run is going;
/// the survivor and the reclaim take over its jobs and the run ends with nothing lost. The lease
/// (3 s) is longer than any stall a busy machine gives a live process, so only the victim's jobs
/// come back through the reclaim.
#[test]
fn a_worker_process_killed_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let text = "lease = \"3s\"\n[producer]\nrate = 1000\nduration = \"4s\"\n[workers]\ncount = 2\nbatch = 20\n\
                [[jobs]]\nkind = \"sleep\"\nduration = \"1ms\"\n[phases]\ndrain_timeout = \"60s\"\n";
    let (scenario, _) = support::scenario_file(dir.path(), "kill.toml", "kill", text);
    let url = support::shared_server().url();
    let victim = support::start_worker(support::worker(&url, &scenario, &["--metrics-addr", "off"]));
    let survivor = support::start_worker(support::worker(&url, &scenario, &["--metrics-addr", "off"]));
    let producer = support::producer(&url, &dir.path().join("results"), &scenario, &[]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    victim.kill(); // SIGKILL
    let out = producer.wait_with_output().unwrap();
    survivor.terminate();
    let json = support::json_output(&out);
    let run = &json["cells"][0]["runs"][0];
    let counts = &run["counts"];
    eprintln!("worker process killed: {counts}");
    assert_eq!(counts["lost"], 0, "{counts}");
    assert_eq!(counts["finished"], counts["produced"], "{counts}");
    assert!(counts["produced"].as_u64().unwrap() >= 4000, "an open loop sends its whole plan: {counts}");
    // Duplicates are possible only for jobs the victim finished but had not settled: at most
    // what its two workers held (a claim of 20 each).
    assert!(counts["duplicates"].as_u64().unwrap() <= 40, "{counts}");
    assert!(run["setup"]["remote_worker_processes"].as_u64().unwrap() >= 1);
    // What the victim settled after its last publication is finished but in nobody's
    // statistics: the difference between finished and completed is named, never silent.
    let n = |k: &str| counts[k].as_u64().unwrap();
    let reported = n("completed") + n("dead") - n("duplicates");
    assert_eq!(n("unreported"), n("finished").saturating_sub(reported), "{counts}");
    let md = std::fs::read_to_string(support::result_dir(&dir.path().join("results")).join("report.md")).unwrap();
    assert_eq!(md.contains("are in the audit but not in the workers' statistics"), n("unreported") > 0, "{md}");
}

/// Redis killed and restarted mid-run (append-only file, fsync on every write): producers and
/// workers reconnect by themselves, and every job Redis acknowledged still finishes.
#[actix_rt::test]
async fn a_redis_restart_mid_run_loses_no_acknowledged_job() {
    let server = support::own_server(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = server.url();
    let restarter = std::thread::spawn(move || {
        let mut server = server;
        std::thread::sleep(Duration::from_millis(1000));
        server.restart().expect("restart redis-server");
        server
    });
    let s = scenario(
        "[queue]\nlease = \"2s\"\n[producer]\nrate = 1000\nduration = \"3s\"\n[workers]\ncount = 2\n\
         [phases]\ndrain_timeout = \"30s\"\n",
    );
    let redis = conveyor::connection::Redis::connect(&url).await.unwrap();
    let r = run::run_scenario(&s, &redis, &support::run_options(), never())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"));
    let _server = restarter.join().unwrap();
    assert_eq!(r.counts.lost, 0, "{:?}", r.counts);
    assert_eq!(r.counts.finished, r.counts.produced, "{:?}", r.counts);
    assert!(r.counts.produced >= 2500, "producers did not carry on after the restart: {:?}", r.counts);
}

/// `conveyor produce` of `scenario` with its progress lines (stderr is no terminal: plain lines)
/// and summary, results below `results`; waits for it to end.
fn produce_with_progress(url: &str, results: &Path, scenario: &Path) -> std::process::Output {
    conveyor()
        .args(["produce", "--metrics-addr", "off", "--redis-url", url, "--results"])
        .arg(results)
        .arg(scenario)
        .output()
        .unwrap()
}

/// A `conveyor produce` progress line's figures: (t, jobs/s, completed, e2e p99 known).
fn progress_figures(line: &str) -> Option<(f64, Option<f64>, Option<u64>, bool)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if !matches!(words.first(), Some(&"produce" | &"drain")) || words.len() < 16 {
        return None;
    }
    let t = words[1].trim_end_matches('s').parse().ok()?;
    let at = |label: &str| words.iter().position(|w| *w == label).map(|i| words[i + 1]);
    let rate = words[2].parse().ok();
    let completed = at("completed").and_then(|c| c.parse().ok());
    Some((t, rate, completed, !line.ends_with("e2e p99 unknown")))
}

/// `conveyor produce` with its workers in two `conveyor worker` processes: the progress lines and
/// the throughput over time come from what those processes publish, not from the producer's
/// own (absent) workers, so they read the run's real throughput, and `result.json` has a real
/// mean and coefficient of variation.
#[test]
fn produce_with_two_worker_processes_shows_their_progress_and_a_real_throughput_trend() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[producer]\nrate = 500\nduration = \"7s\"\n[workers]\ncount = 2\n\
                [[jobs]]\nkind = \"sleep\"\nduration = \"1ms\"\n[phases]\nwarmup = \"2s\"\n";
    let (scenario, _) = support::scenario_file(dir.path(), "two.toml", "two-processes", text);
    let url = support::shared_server().url();
    let workers = [(); 2].map(|_| support::start_worker(support::worker(&url, &scenario, &["--metrics-addr", "off"])));
    let results = dir.path().join("results");
    let out = produce_with_progress(&url, &results, &scenario);
    for w in workers {
        w.terminate();
    }
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status);
    let lines: Vec<_> = stderr.lines().filter_map(progress_figures).collect();
    assert!(lines.len() >= 5, "too few progress lines:\n{stderr}");
    // Every figure is either measured or says it is unknown; once the workers have published,
    // the lines show their completions, rate and p99.
    let measured = lines
        .iter()
        .filter(|(_, rate, completed, p99)| rate.is_some_and(|r| r > 0.0) && completed.is_some_and(|c| c > 0) && *p99);
    assert!(measured.count() >= 3, "progress lines without the workers' figures:\n{stderr}");
    let last_completed = lines.iter().filter_map(|l| l.2).max().unwrap_or(0);
    assert!(last_completed > 1000, "completed {last_completed}:\n{stderr}");
    let trends = stdout.lines().find(|l| l.trim_start().starts_with("trends")).unwrap_or_default();
    assert!(trends.contains(" jobs/s ± ") && !trends.contains("throughput 0 jobs/s"), "{stdout}");

    let json = support::read_json(&support::result_dir(&results).join("result.json"));
    let run = &json["cells"][0]["runs"][0];
    assert_eq!(run["setup"]["remote_worker_processes"], 2, "{}", run["setup"]);
    assert_eq!(run["counts"]["lost"], 0, "{}", run["counts"]);
    let t = &run["trends"];
    let (mean, cv) = (t["throughput_mean"].as_f64(), t["throughput_cv"].as_f64());
    eprintln!("produce with two worker processes: throughput mean {mean:?} jobs/s, cv {cv:?}; {}", run["counts"]);
    // Rates from each process's own clock: the mean is near the planned 500 jobs/s (a loose
    // bound: a stall shifts completions between seconds but not out of the run).
    assert!(mean.is_some_and(|m| m > 100.0), "throughput_mean {mean:?}: {t}");
    assert!(cv.is_some_and(|cv| cv >= 0.0), "throughput_cv {cv:?}: {t}");
    for sample in run["timeline"].as_array().unwrap().iter().filter(|s| s["t_seconds"].as_f64() > Some(3.0)) {
        assert!(sample["completed"].as_u64().is_some_and(|c| c > 0), "a sample without the workers: {sample}");
    }
}

/// With no worker anywhere, nothing is known of completions: progress says so instead of 0,
/// the trend has no throughput figures, and a target on them fails instead of passing on zeros.
#[test]
fn produce_without_any_worker_says_unknown_and_a_throughput_target_fails() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[producer]\nrate = 100\nduration = \"7s\"\n[phases]\ndrain_timeout = \"1s\"\n\
                [targets]\nthroughput_cv = \"< 10%\"\n";
    let (scenario, _) = support::scenario_file(dir.path(), "alone.toml", "no-workers", text);
    let url = support::shared_server().url();
    let results = dir.path().join("results");
    let out = produce_with_progress(&url, &results, &scenario);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "the target must fail\n{stdout}\n{stderr}");
    let lines: Vec<_> = stderr.lines().filter_map(progress_figures).collect();
    assert!(lines.len() >= 5, "too few progress lines:\n{stderr}");
    assert!(lines.iter().all(|(_, rate, completed, p99)| rate.is_none() && completed.is_none() && !p99), "{stderr}");
    assert!(stderr.contains("target throughput_cv < 10% not met") && stderr.contains("no value"), "{stderr}");
    assert!(stdout.contains("throughput unknown"), "{stdout}");
    let json = support::read_json(&support::result_dir(&results).join("result.json"));
    let t = &json["cells"][0]["runs"][0]["trends"];
    assert!(t["samples"].as_u64() >= Some(5), "{t}");
    assert!(t["throughput_cv"].is_null() && t["throughput_mean"].is_null(), "{t}");
}

#[actix_rt::test]
async fn the_latency_floor_claims_every_job_it_sends_and_measures_those_of_its_window() {
    use conveyor::bench::probe::latency_floor::{Plan, measure};
    let redis = support::redis().await;
    let prefix = support::unique_name("floor");
    // 2,000 jobs/s: 200 in the 0.1 s warm-up, then 1,000 measured; sent 500 at most per round.
    let plan = Plan {
        rate: 2_000.0,
        warmup: Duration::from_millis(100),
        window: Duration::from_millis(500),
        batch: 500,
        payload_bytes: 100,
        takers: 1,
    };
    let late = measure(&redis, &prefix, plan).await.unwrap();
    assert_eq!(late.len(), 1_000, "one delay per measured job, none for the warm-up");
    // Three takers together claim each job once.
    let late = measure(&redis, &prefix, Plan { takers: 3, ..plan }).await.unwrap();
    assert_eq!(late.len(), 1_000, "one delay per measured job with three takers");
    let h = late.histogram();
    assert!(h.min() <= h.value_at_quantile(0.5) && h.value_at_quantile(0.5) <= h.max());
    // The scratch stream is gone.
    let mut conn = redis.blocking_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("*{prefix}*")).query_async(&mut conn).await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
