//! Periodic jobs: three `conveyor cron run` processes with one entry enqueue each firing once,
//! with none skipped; missed firings after a downtime follow the entry's policy; `cron ls` and
//! `cron rm` show and forget entries; input that does not parse is refused before anything
//! reaches Redis.

use crate::support;
use conveyor::cron::{Cron, Missed, Periodic};
use conveyor::queue::QueueOptions;
use conveyor::{Admin, Client, JobType, Queue};
use serde::{Deserialize, Serialize};
use std::io::BufRead;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Report {
    year: u32,
}

impl JobType for Report {
    const NAME: &'static str = "test.report";
}

/// A yearly schedule whose firings all lie in the past: 2020-01-01 … 2025-01-01, midnight UTC.
const PAST_YEARS: &str = "0 0 0 1 1 * 2020-2025";

fn new_year_ms(year: i32) -> u64 {
    chrono::NaiveDate::from_ymd_opt(year, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis()
        as u64
}

fn cli(args: &[&str]) -> Output {
    support::conveyor().args(args).args(["--redis-url", &support::shared_server().url()]).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The due times (ms) of the firings of entry `entry` enqueued on `queue`, read from their
/// idempotency keys, sorted.
async fn firings(queue: &str, entry: &str) -> Vec<u64> {
    let redis = support::redis().await;
    let pattern = format!("{{conveyor:{queue}}}:unique:cron:{entry}:*");
    let keys: Vec<String> = redis
        .with_conn(async |c| {
            let mut keys = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(c)
                    .await?;
                keys.extend(batch);
                if next == 0 {
                    return Ok(keys);
                }
                cursor = next;
            }
        })
        .await
        .unwrap();
    let mut at: Vec<u64> = keys.iter().map(|k| k.rsplit(':').next().unwrap().parse().unwrap()).collect();
    at.sort_unstable();
    at
}

/// A `conveyor cron run` process, returned once it says its scheduler runs.
fn start_scheduler(queue: &str, entry: &str, schedule: &str) -> Child {
    let mut child = support::conveyor()
        .args(["cron", "run", queue, entry, schedule, "test.tick", "--json", r#"{"from": "cron"}"#])
        .args(["--redis-url", &support::shared_server().url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn conveyor cron run");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("SIGINT or SIGTERM stops it") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        panic!("conveyor cron run did not start: {:?}", child.wait());
    }
    child
}

#[actix_rt::test]
async fn three_scheduler_processes_enqueue_every_firing_exactly_once() {
    let queue = support::unique_name("cron-three");
    let mut schedulers: Vec<Child> = (0..3).map(|_| start_scheduler(&queue, "tick", "* * * * * *")).collect();
    // All three run together for a few firings (one a second).
    let together = Instant::now();
    let together_ms = conveyor::clock::now_us() / 1000;
    let enough = loop {
        let f = firings(&queue, "tick").await;
        if f.iter().filter(|&&t| t > together_ms).count() >= 4 || together.elapsed() > Duration::from_secs(60) {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for s in &mut schedulers {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(s.id().to_string()).status();
    }
    for mut s in schedulers {
        assert!(s.wait().unwrap().success(), "a scheduler stopped cleanly on SIGTERM");
    }
    assert!(enough.len() >= 4, "firings: {enough:?}");

    let fired = firings(&queue, "tick").await;
    let q = Queue::open(&support::redis().await, "conveyor", &queue).await.unwrap().expect("the queue exists");
    let waiting = q.depth().await.unwrap().waiting;
    assert_eq!(waiting, fired.len() as u64, "one job per firing: {fired:?}");
    for pair in fired.windows(2) {
        assert_eq!(pair[1] - pair[0], 1_000, "no firing skipped or doubled: {fired:?}");
    }
    assert_eq!(q.cron_last_fired("tick").await.unwrap(), fired.last().copied(), "the latest firing is recorded");

    let listed = cli(&["cron", "ls", &queue, "--json"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let entries: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(entries[0]["name"], "tick", "{entries}");
    assert_eq!(entries[0]["schedule"], "* * * * * *");
    assert_eq!(entries[0]["job_type"], "test.tick");
    assert_eq!(entries[0]["last_fired_ms"].as_u64(), fired.last().copied());
    let table = text(&cli(&["cron", "ls", &queue]));
    assert!(table.contains("tick") && table.contains("(1 periodic entry)"), "{table}");

    let removed = cli(&["cron", "rm", &queue, "tick"]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert_eq!(q.cron_entries().await.unwrap(), vec![], "forgotten");
    let again = cli(&["cron", "rm", &queue, "tick"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("no cron entry \"tick\""), "{}", text(&again));
}

#[actix_rt::test]
async fn missed_firings_after_a_downtime_follow_each_entrys_policy() {
    let queue = support::queue("cron-missed", QueueOptions::default()).await;
    let client = Client::new(queue.clone());
    // Each entry was last fired on 2021-01-01: 2022, 2023, 2024 and 2025 were missed.
    let cases = [
        ("skip", Missed::Skip, vec![]),
        ("latest", Missed::Latest, vec![2025]),
        ("catch-up", Missed::CatchUp(2), vec![2024, 2025]),
        ("all", Missed::CatchUp(100), vec![2022, 2023, 2024, 2025]),
    ];
    for (name, policy, _) in &cases {
        queue.cron_fired(name, new_year_ms(2021)).await.unwrap();
        let entry = Periodic::new(*name, PAST_YEARS, &Report { year: 0 }).unwrap().missed(*policy);
        Cron::new(client.clone()).entry(entry).start().await.unwrap().shutdown().await;
    }
    for (name, policy, years) in &cases {
        let expected: Vec<u64> = years.iter().map(|&y| new_year_ms(y)).collect();
        assert_eq!(firings(queue.name(), name).await, expected, "{policy:?}");
        let last = queue.cron_last_fired(name).await.unwrap();
        assert_eq!(last, Some(new_year_ms(2025)), "{policy:?}: enqueued or skipped, 2025 was handled");
    }
    assert_eq!(queue.depth().await.unwrap().waiting, 7, "1 + 2 + 4 jobs");

    // Starting again: nothing more was missed, nothing more is enqueued.
    for (name, _, _) in &cases {
        let entry = Periodic::new(*name, PAST_YEARS, &Report { year: 0 }).unwrap().missed(Missed::CatchUp(100));
        Cron::new(client.clone()).entry(entry).start().await.unwrap().shutdown().await;
    }
    assert_eq!(queue.depth().await.unwrap().waiting, 7, "a restart enqueues nothing it enqueued before");

    // An entry never fired anywhere has missed nothing, whatever its policy.
    let fresh = Periodic::new("fresh", PAST_YEARS, &Report { year: 0 }).unwrap().missed(Missed::CatchUp(100));
    Cron::new(client.clone()).entry(fresh).start().await.unwrap().shutdown().await;
    assert_eq!(firings(queue.name(), "fresh").await, Vec::<u64>::new());

    // The jobs are the entry's: its type and payload.
    let page = Admin::new(support::redis().await, "conveyor")
        .jobs(queue.name(), conveyor::queue::JobsIn::Waiting, 100, None)
        .await
        .unwrap();
    assert!(page.jobs.iter().all(|j| j.name == Report::NAME), "{:?}", page.jobs);
}

#[actix_rt::test]
async fn a_schedule_or_payload_that_does_not_parse_is_refused_and_nothing_is_written() {
    let queue = support::unique_name("cron-bad");
    for (args, says) in [
        (vec!["61 * * * * *", "test.tick", "--json", "{}"], "cron expression: \"61 * * * * *\""),
        (vec!["* *", "test.tick", "--json", "{}"], "expected 5 fields"),
        (vec!["* * * * * *", "test.tick", "--json", "{not json"], "--json: expected a JSON payload"),
        (
            vec!["* * * * * *", "test.tick", "--json", "{}", "--missed", "sometimes"],
            "expected skip, latest or catch-up",
        ),
    ] {
        let mut full = vec!["cron", "run", &queue, "entry"];
        full.extend(args);
        let out = cli(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{full:?} says {says:?}: {}", text(&out));
    }
    let listed = cli(&["cron", "ls", &queue]);
    assert_eq!(listed.status.code(), Some(2), "the queue was never created: {}", text(&listed));
    assert!(text(&listed).contains(&format!("no queue \"{queue}\"")), "{}", text(&listed));
    let redis = support::redis().await;
    let keys: Vec<String> = redis
        .with_conn(async |c| redis::cmd("KEYS").arg(format!("{{conveyor:{queue}}}*")).query_async(c).await)
        .await
        .unwrap();
    assert_eq!(keys, Vec::<String>::new(), "nothing written");
}
