//! Priorities and rate limits: a flood of high-priority jobs does not starve low ones under
//! weighted service and does under strict; every way a job comes back (delay, retry, reclaim,
//! dead-letter retry) keeps its priority; listings and purges see every priority; a queue-wide
//! rate limit holds across several worker processes; bad limits change nothing.

use crate::support;
use conveyor::queue::{ClaimPlan, JobsIn, Limit, Outcome, Pick, Priority, QueueOptions, Service};
use conveyor::{Client, Enqueue, JobContext, JobError, JobType, Registry, WorkerPool};
use serde::{Deserialize, Serialize};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Graded {
    priority: Priority,
}

impl JobType for Graded {
    const NAME: &'static str = "test.graded";
}

/// Records the priority of every job it starts, in order.
fn recording(started: Arc<Mutex<Vec<Priority>>>) -> Registry {
    Registry::new().handle(move |job: Graded, _: JobContext| {
        let started = started.clone();
        async move {
            started.lock().unwrap().push(job.priority);
            tokio::time::sleep(Duration::from_micros(200)).await;
            Ok::<(), JobError>(())
        }
    })
}

/// Enqueues `low` low jobs first, then a flood of `high` high ones, and runs them with one
/// worker of `service` until every low job started (or every job did); the order they started.
async fn flood(service: Service, high: usize, low: usize) -> Vec<Priority> {
    let queue = support::queue("lanes-flood", QueueOptions::default()).await;
    let client = Client::new(queue.clone());
    let jobs = (0..low)
        .map(|_| (Graded { priority: Priority::Low }, Enqueue::new().priority(Priority::Low)))
        .chain((0..high).map(|_| (Graded { priority: Priority::High }, Enqueue::new().priority(Priority::High))));
    client.enqueue_batch_with(jobs).await.unwrap();
    let started = Arc::new(Mutex::new(Vec::new()));
    let pool = WorkerPool::builder(queue.clone(), recording(started.clone()))
        .concurrency(4)
        .batch(16)
        .block(Duration::from_millis(20))
        .service(service)
        .start()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = started.lock().unwrap().clone();
        let lows = seen.iter().filter(|p| **p == Priority::Low).count();
        if lows == low || seen.len() == high + low || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool.shutdown().await;
    started.lock().unwrap().clone()
}

#[actix_rt::test]
async fn weighted_service_serves_low_jobs_under_a_flood_of_high_ones_and_strict_makes_them_wait() {
    let (high, low) = (2_000, 20);
    let weighted = flood(Service::weighted(), high, low).await;
    let highs_before_last_low = weighted.iter().filter(|p| **p == Priority::High).count();
    println!("weighted 6/3/1: every low job started after {highs_before_last_low} of {high} high ones");
    assert_eq!(weighted.iter().filter(|p| **p == Priority::Low).count(), low, "every low job ran");
    assert!(
        highs_before_last_low < high / 2,
        "weighted service starved the low jobs: {highs_before_last_low} high jobs started before the last low one"
    );

    let strict = flood(Service::Strict, 300, 5).await;
    let first_low =
        strict.iter().position(|p| *p == Priority::Low).expect("the low jobs ran once the high ones were done");
    assert_eq!(first_low, 300, "strict: no low job starts while a high one waits: {strict:?}");
}

#[actix_rt::test]
async fn a_claim_takes_high_jobs_first_and_jobs_keep_their_priority_through_retries_reclaims_and_dead_letters() {
    let options = QueueOptions { lease: Duration::from_millis(50), max_attempts: 2, ..QueueOptions::default() };
    let (clock, shared) = support::manual_clock();
    let queue = support::queue_with_clock("lanes-life", options, shared).await;
    let client = Client::new(queue.clone());
    let normal = client.enqueue(&Graded { priority: Priority::Normal }).await.unwrap();
    let high = client
        .enqueue_with(&Graded { priority: Priority::High }, Enqueue::new().priority(Priority::High))
        .await
        .unwrap();
    let low =
        client.enqueue_with(&Graded { priority: Priority::Low }, Enqueue::new().priority(Priority::Low)).await.unwrap();
    assert!(high.id().as_str().ends_with("@0/high"), "a high job's id names its stream: {}", high.id());
    assert_eq!(queue.keys().ready_at(Priority::Normal), queue.keys().ready(), "normal jobs stay where they were");

    let (d, by) = queue.depth_by_priority().await.unwrap();
    assert_eq!((d.waiting, by.high, by.normal, by.low), (3, 1, 1, 1), "{d:?} {by:?}");
    let page = queue.jobs(JobsIn::Waiting, 10, None).await.unwrap();
    let listed: Vec<_> = page.jobs.iter().map(|j| (j.id.clone(), j.priority)).collect();
    assert_eq!(
        listed,
        [(high.id().clone(), Priority::High), (normal.clone(), Priority::Normal), (low.id().clone(), Priority::Low)]
    );
    let found = queue.find(high.id().as_str()).await.unwrap().expect("found by its id");
    assert_eq!((found.state, found.priority), (JobsIn::Waiting, Priority::High));

    // Strict, one at a time: high, then normal, then low.
    let plan = ClaimPlan { service: Service::Strict, limit: None, lanes: true };
    let mut conn = queue.redis().blocking_connection().await.unwrap();
    let block = Duration::from_millis(10);
    let mut order = Vec::new();
    for _ in 0..3 {
        let got = queue.claim_planned(&mut conn, "dies", 1, block, &plan).await.unwrap();
        assert_eq!(got.len(), 1);
        order.push((got[0].job_id(), got[0].priority));
    }
    assert_eq!(
        order,
        [(high.id().clone(), Priority::High), (normal.clone(), Priority::Normal), (low.id().clone(), Priority::Low)]
    );
    let active = queue.jobs(JobsIn::Active, 10, None).await.unwrap();
    assert_eq!(active.jobs.len(), 3, "held jobs of every priority are listed: {active:?}");

    // The worker died: every job is reclaimed into the stream it came from.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut moved = 0;
    while moved < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(60)).await;
        moved += queue.reclaim("0-0", 100).await.unwrap().moved;
    }
    assert_eq!(moved, 3, "every priority's stream is reclaimed");
    let by = queue.depth_by_priority().await.unwrap().1;
    assert_eq!((by.high, by.normal, by.low), (1, 1, 1), "{by:?}");

    // Weighted, one claim of three: each stream gives one, high first.
    let plan = ClaimPlan { service: Service::weighted(), limit: None, lanes: true };
    let got = queue.claim_planned(&mut conn, "w", 3, block, &plan).await.unwrap();
    let levels: Vec<Priority> = got.iter().map(|c| c.priority).collect();
    assert_eq!(levels, [Priority::High, Priority::Normal, Priority::Low]);
    assert_eq!(got[0].job_id(), *high.id(), "a reclaimed job keeps its id");

    // A failed high job retries into the high stream; its last failure makes it a dead letter,
    // and retrying the dead letter puts it back in the high stream too.
    let batch: Vec<_> = got
        .into_iter()
        .map(|c| {
            let outcome =
                if c.priority == Priority::High { Outcome::Failed("boom".into()) } else { Outcome::Completed };
            (c, outcome)
        })
        .collect();
    let settled = queue.settle(&batch).await.unwrap();
    assert_eq!((settled.retried, settled.completed), (1, 2));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(queue.promote_due(100).await.unwrap(), 1);
    assert_eq!(queue.depth_by_priority().await.unwrap().1.high, 1, "the retry is back in the high stream");
    let again = queue.claim_planned(&mut conn, "w", 3, block, &plan).await.unwrap();
    assert_eq!((again.len(), again[0].priority, again[0].job_id()), (1, Priority::High, high.id().clone()));
    let settled = queue.settle(&[(again[0].clone(), Outcome::Failed("boom again".into()))]).await.unwrap();
    assert_eq!(settled.dead, 1);
    let retried = queue.retry_dead(&Pick::All).await.unwrap();
    assert_eq!(retried.done, 1);
    assert_eq!(queue.depth_by_priority().await.unwrap().1.high, 1, "a retried dead letter goes back to its stream");

    // A delayed low job is promoted into the low stream; a purge of waiting jobs empties every stream.
    let delayed = client
        .enqueue_with(
            &Graded { priority: Priority::Low },
            Enqueue::new().priority(Priority::Low).delay(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(queue.promote_due(100).await.unwrap(), 1);
    let (d, by) = queue.depth_by_priority().await.unwrap();
    assert_eq!((by.high, by.low, d.delayed), (1, 1, 0), "{d:?} {by:?} ({})", delayed.id());
    assert_eq!(queue.purge(JobsIn::Waiting).await.unwrap(), 2);
    // What settled is trimmed from every stream; then nothing waits anywhere.
    queue.trim().await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), conveyor::queue::Depth::default());
}

/// `conveyor <args> --redis-url <shared>`.
fn cli(args: &[&str]) -> Output {
    support::conveyor().args(args).args(["--redis-url", &support::shared_server().url()]).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn overview(queue: &str) -> serde_json::Value {
    let out = cli(&["queues", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    all.as_array().and_then(|a| a.iter().find(|q| q["name"] == queue).cloned()).unwrap_or_default()
}

#[test]
fn the_command_line_enqueues_by_priority_sets_and_clears_limits_and_refuses_bad_ones() {
    let queue = support::unique_name("lanes-cli");
    let out = cli(&["enqueue", &queue, "test.graded", "--json", r#"{"priority":"high"}"#, "--priority", "high"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().strip_prefix("enqueued ").expect("the id").to_owned();
    let out = cli(&["enqueue", &queue, "test.graded", "--json", r#"{"priority":"normal"}"#]);
    assert!(out.status.success(), "{}", text(&out));
    let q = overview(&queue);
    assert_eq!(q["waiting_by_priority"], serde_json::json!({"high": 1, "normal": 1, "low": 0}), "{q}");
    assert!(q["limit"].is_null(), "{q}");
    let job = cli(&["job", &id, "--queue", &queue, "--json"]);
    let record: serde_json::Value = serde_json::from_slice(&job.stdout).unwrap_or_default();
    assert_eq!(record["found"]["summary"]["priority"], "high", "{}", text(&job));

    for (args, says) in [
        (vec!["limit", queue.as_str(), "0/s"], "rate: expected a rate above 0"),
        (vec!["limit", queue.as_str(), "-5/s"], "rate: expected a rate above 0"),
        (vec!["limit", queue.as_str(), "fast"], "rate: expected jobs per second, minute or hour"),
        (vec!["limit", queue.as_str(), "200/s", "--burst", "0"], "--burst: expected a burst of at least 1"),
        (vec!["limit", "no-such-queue-at-all", "200/s"], "no queue"),
        (
            vec!["enqueue", queue.as_str(), "test.graded", "--json", "{}", "--priority", "urgent"],
            "expected high, normal or low",
        ),
    ] {
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    let q = overview(&queue);
    assert!(q["limit"].is_null() && q["depth"]["waiting"] == 2, "nothing changed: {q}");

    let out = cli(&["limit", &queue, "200/s", "--burst", "50"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(overview(&queue)["limit"], serde_json::json!({"per_second": 200.0, "burst": 50}));
    let table = text(&cli(&["queues"]));
    assert!(table.contains("200/s burst 50") && table.contains("1/1/0"), "{table}");
    let out = cli(&["limit", &queue, "--clear"]);
    assert!(out.status.success() && text(&out).contains("has no rate limit any more"), "{}", text(&out));
    assert!(overview(&queue)["limit"].is_null());
}

#[actix_rt::test]
async fn a_rate_limit_holds_across_worker_processes() {
    let (rate, burst, window) = (100.0, 20u32, Duration::from_secs(10));
    let queue = support::queue("lanes-limit", QueueOptions::default()).await;
    let total = 3_000usize;
    Client::new(queue.clone()).enqueue_batch(&vec![conveyor::bench::jobs::Noop; total]).await.unwrap();
    queue.set_limit(Limit::new(rate, Some(burst)).unwrap()).await.unwrap();
    let url = support::shared_server().url();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let mut cmd = support::conveyor();
            cmd.args(["worker", "--queue", queue.name(), "--metrics-addr", "off", "--concurrency", "8"])
                .args(["--redis-url", &url])
                .stdout(std::process::Stdio::null());
            support::start_worker(cmd)
        })
        .collect();
    // Jobs handed out so far (the limit counts claims): all of them less what still waits.
    let claimed = async || total as u64 - queue.depth().await.unwrap().waiting;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, c0) = (Instant::now(), claimed().await);
    tokio::time::sleep(window).await;
    let c1 = claimed().await;
    let took = before.elapsed().as_secs_f64();
    for w in workers {
        w.terminate();
    }
    let n = (c1 - c0) as f64;
    let bound = rate * took + f64::from(burst);
    println!(
        "rate limit {rate}/s burst {burst}, 3 worker processes: {n} jobs claimed in {took:.2} s = {:.1} jobs/s ({:.1}% of the limit; at most {bound:.0} allowed)",
        n / took,
        100.0 * n / (rate * took)
    );
    assert!(n <= bound * 1.05, "{n} jobs claimed in {took:.2} s: more than the limit allows ({bound:.0})");
    assert!(n >= 0.5 * rate * took, "{n} jobs claimed in {took:.2} s: the limit let far fewer through than it allows");
}

#[actix_rt::test]
async fn a_partitioned_queue_serves_every_priority_of_every_partition() {
    let queue = support::queue("lanes-parts", QueueOptions { partitions: 3, ..QueueOptions::default() }).await;
    let client = Client::new(queue.clone());
    for level in Priority::ALL {
        // One call per job: each goes to the next partition in turn.
        for _ in 0..6 {
            client.enqueue_with(&Graded { priority: level }, Enqueue::new().priority(level)).await.unwrap();
        }
    }
    let (d, by) = queue.depth_by_priority().await.unwrap();
    assert_eq!((d.waiting, by.high, by.normal, by.low), (18, 6, 6, 6), "{by:?}");
    let started = Arc::new(Mutex::new(Vec::new()));
    let pool = WorkerPool::builder(queue.clone(), recording(started.clone()))
        .concurrency(4)
        .block(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.lock().unwrap().len() < 18 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue.depth().await.unwrap().unfinished() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool.shutdown().await;
    let seen = started.lock().unwrap().clone();
    for level in Priority::ALL {
        assert_eq!(seen.iter().filter(|p| **p == level).count(), 6, "{level}: {seen:?}");
    }
    assert_eq!(queue.depth().await.unwrap(), conveyor::queue::Depth::default(), "every job settled");
}
