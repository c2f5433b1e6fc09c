//! Operating queues from the command line and the `Admin` API: what is in a queue, one job,
//! dead letters retried and removed, a state purged, pause and resume, enqueue and cancel by
//! hand, live worker processes; bad input changes nothing; under load, nothing not asked for is
//! lost (an audited batch says so).

use crate::support;
use conveyor::queue::{Depth, JobsIn, Pick, QueueOptions};
use conveyor::{Admin, Client, JobContext, JobError, JobType, Registry, WorkerPool};
use serde::{Deserialize, Serialize};
use std::process::Output;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Work {
    n: u32,
}

impl JobType for Work {
    const NAME: &'static str = "test.work";
}

/// A job type no worker of these tests handles: its jobs die.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Orphan {
    n: u32,
}

impl JobType for Orphan {
    const NAME: &'static str = "test.orphan";
}

fn registry(started: tokio::sync::mpsc::UnboundedSender<Instant>) -> Registry {
    Registry::new().handle(move |_: Work, _: JobContext| {
        let started = started.clone();
        async move {
            let _ = started.send(Instant::now());
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<(), JobError>(())
        }
    })
}

/// `conveyor <args> --redis-url <shared>`.
fn cli(args: &[&str]) -> Output {
    support::conveyor().args(args).args(["--redis-url", &support::shared_server().url()]).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[actix_rt::test]
async fn the_command_line_enqueues_lists_shows_and_refuses_what_does_not_exist() {
    let queue = support::unique_name("admin-cli");
    let out = cli(&["enqueue", &queue, "test.work", "--json", r#"{"n": 7}"#]);
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().strip_prefix("enqueued ").expect("the id").to_owned();
    let delayed = cli(&["enqueue", &queue, "test.work", "--json", r#"{"n": 8}"#, "--delay", "1h", "--id", "order-42"]);
    assert!(delayed.status.success(), "{}", text(&delayed));
    let again = cli(&["enqueue", &queue, "test.work", "--json", r#"{"n": 9}"#, "--id", "order-42"]);
    assert_eq!(again.status.code(), Some(1), "an id taken once: {}", text(&again));

    let out = cli(&["queues", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mine = all.as_array().unwrap().iter().find(|q| q["name"] == queue.as_str()).expect("the queue is listed");
    assert_eq!((mine["depth"]["waiting"].as_u64(), mine["depth"]["delayed"].as_u64()), (Some(1), Some(1)), "{mine}");
    assert_eq!(mine["paused"], false);

    let page: serde_json::Value = serde_json::from_slice(&cli(&["jobs", &queue, "--json"]).stdout).unwrap();
    assert_eq!(page["jobs"][0]["id"], id.as_str());
    assert_eq!(page["jobs"][0]["name"], "test.work");
    let page: serde_json::Value =
        serde_json::from_slice(&cli(&["jobs", &queue, "--state", "delayed", "--json"]).stdout).unwrap();
    assert_eq!(page["jobs"][0]["id"], "order-42");
    let human = cli(&["job", &id, "--queue", &queue]);
    assert!(human.status.success() && text(&human).contains(r#"payload    {"n":7}"#), "{}", text(&human));
    let tracked = cli(&["job", "order-42"]);
    assert!(
        text(&tracked).contains("status") && text(&tracked).contains("delayed"),
        "found in whichever queue: {}",
        text(&tracked)
    );

    // Bad input: exit 2, a message naming what was wrong, nothing changed.
    for (args, says) in [
        (vec!["enqueue", queue.as_str(), "test.work", "--json", "{not json"], "--json: expected a JSON payload"),
        (vec!["jobs", "no-such-queue-at-all"], "no queue \"no-such-queue-at-all\""),
        (vec!["job", "no-such-job", "--queue", queue.as_str()], "no job \"no-such-job\""),
        (vec!["pause", "no-such-queue-at-all"], "no queue"),
        (vec!["jobs", queue.as_str(), "--state", "sleeping"], "expected waiting, active, delayed, retrying or dead"),
        (vec!["dead", "retry", queue.as_str(), &id, "--yes"], "no dead letter"),
        (vec!["purge", queue.as_str(), "--state", "waiting"], "pass --yes"),
    ] {
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    let out = cli(&["queues", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mine = all.as_array().unwrap().iter().find(|q| q["name"] == queue.as_str()).unwrap();
    assert_eq!(
        (mine["depth"]["waiting"].as_u64(), mine["depth"]["delayed"].as_u64()),
        (Some(1), Some(1)),
        "unchanged: {mine}"
    );

    let purged = cli(&["purge", &queue, "--state", "delayed", "--yes"]);
    assert!(text(&purged).contains("removed 1 job(s)"), "{}", text(&purged));
}

#[actix_rt::test]
async fn dead_letters_are_retried_and_removed_under_load_and_nothing_else_is_touched() {
    let queue = support::queue("admin-dead", QueueOptions::default()).await;
    let client = Client::new(queue.clone());
    let admin = Admin::new(support::redis().await, "conveyor");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let pool = WorkerPool::builder(queue.clone(), registry(tx))
        .workers(2)
        .concurrency(8)
        .block(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    // Ten dead letters (no handler for their type).
    let orphans = client.enqueue_batch(&(0..10).map(|n| Orphan { n }).collect::<Vec<_>>()).await.unwrap();
    support::depth_until(&queue, |d| d.dead == 10).await;

    // Under load: an audited batch of 3,000 jobs runs while dead letters are retried and removed.
    let load = client.audited_batch("admin-load");
    let jobs: Vec<Work> = (0..3_000).map(|n| Work { n }).collect();
    let mut sent = 0;
    for chunk in jobs.chunks(300) {
        load.enqueue(chunk).await.unwrap();
        sent += chunk.len();
        if sent == 900 {
            let done = admin.retry_dead(queue.name(), &Pick::Ids(orphans[..3].to_vec())).await.unwrap();
            assert_eq!(done.done, 3, "{done:?}");
        }
        if sent == 1_800 {
            let out = cli(&["dead", "rm", queue.name(), orphans[5].as_str(), "--yes", "--json"]);
            assert!(out.status.success(), "{}", text(&out));
        }
    }
    // The three retried die again (no handler); one of the ten was removed.
    let d = support::depth_until(&queue, |d| d.unfinished() == 0 && d.dead == 9).await;
    assert_eq!(d, Depth { dead: 9, ..Depth::default() });
    let report = load.report(10).await.unwrap();
    assert_eq!((report.enqueued, report.finished), (3_000, 3_000), "no job of the load was lost: {report:?}");
    let page = admin.jobs(queue.name(), JobsIn::Dead, 100, None).await.unwrap();
    let ids: Vec<_> = page.jobs.iter().map(|j| j.id.clone()).collect();
    assert!(!ids.contains(&orphans[5]) && ids.contains(&orphans[0]), "{ids:?}");
    assert!(page.jobs.iter().all(|j| j.reason.as_deref().is_some_and(|r| r.contains("no handler"))));

    let out = cli(&["dead", "rm", queue.name(), "--all", "--yes"]);
    assert!(text(&out).contains("removed 9 dead letter(s)"), "{}", text(&out));
    pool.shutdown().await;
}

#[actix_rt::test]
async fn a_paused_queue_starts_nothing_new_in_any_process_and_a_resume_loses_nothing() {
    let queue = support::queue("admin-pause", QueueOptions::default()).await;
    let client = Client::new(queue.clone());
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let pool = WorkerPool::builder(queue.clone(), registry(tx)).workers(2).concurrency(4).start().await.unwrap();
    client.enqueue_batch(&(0..50).map(|n| Work { n }).collect::<Vec<_>>()).await.unwrap();
    support::depth_until(&queue, |d| d.unfinished() == 0).await;
    while started.try_recv().is_ok() {}

    let out = cli(&["pause", queue.name()]);
    assert!(out.status.success(), "{}", text(&out));
    let paused_at = Instant::now();
    // Producers keep enqueueing; the workers start nothing from some point on.
    let mut last_start = None;
    for round in 0..20 {
        client.enqueue_batch(&(0..10).map(|n| Work { n: round * 10 + n }).collect::<Vec<_>>()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
        while let Ok(at) = started.try_recv() {
            last_start = Some(at);
        }
    }
    let stopped_after = last_start.map_or(Duration::ZERO, |at| at.saturating_duration_since(paused_at));
    println!(
        "after `conveyor pause`, the last job started {stopped_after:?} later (poll every 20 ms, claims block up to 100 ms)"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(started.try_recv().is_err(), "nothing starts while paused");
    let d = queue.depth().await.unwrap();
    assert!(d.waiting > 0, "the jobs enqueued while paused wait: {d:?}");
    let overview = Admin::new(support::redis().await, "conveyor").overview(queue.name()).await.unwrap();
    assert!(overview.paused);
    assert_eq!(overview.live_workers, 1, "this process's pool has its heartbeat");

    assert!(cli(&["resume", queue.name()]).status.success());
    let d = support::depth_until(&queue, |d| d.unfinished() == 0).await;
    assert_eq!(d, Depth::default(), "everything enqueued while paused ran after the resume");
    pool.shutdown().await;
}

#[actix_rt::test]
async fn a_killed_worker_process_leaves_conveyor_workers_within_its_heartbeat() {
    let queue = support::unique_name("admin-workers");
    let url = support::shared_server().url();
    let mut cmd = support::conveyor();
    cmd.args(["worker", "--queue", &queue, "--metrics-addr", "off", "--redis-url", &url])
        .stdout(std::process::Stdio::null());
    let worker = support::start_worker(cmd);
    let listed = |out: &Output| -> Vec<serde_json::Value> {
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v.as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let w = listed(&cli(&["workers", "--queue", &queue, "--json"]));
        if !w.is_empty() || Instant::now() > deadline {
            break w;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(seen.len(), 1, "the worker process is listed");
    assert_eq!(seen[0]["pid"].as_u64(), Some(u64::from(worker.child.id())));
    assert_eq!(seen[0]["queue"], queue.as_str());
    let killed = Instant::now();
    worker.kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !listed(&cli(&["workers", "--queue", &queue, "--json"])).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(listed(&cli(&["workers", "--queue", &queue, "--json"])).is_empty(), "gone after its heartbeat expired");
    println!(
        "a SIGKILLed worker process left `conveyor workers` {:?} after the kill (heartbeat: 10 s)",
        killed.elapsed()
    );
}
