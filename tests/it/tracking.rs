//! Knowing and steering a job: a tracked job's status in every state, its result, cancelling it
//! before and while it runs, its deadline, its retention, its events, and what untracked jobs
//! leave behind (nothing).

use crate::support;
use conveyor::queue::{Cancelled, JobState, QueueOptions, Status};
use conveyor::{Client, Enqueue, JobContext, JobError, JobType, Queue, Registry, WorkerPool};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime};

/// What the test job does when it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Act {
    /// Return this (kept as the result).
    Answer(String),
    /// Fail on the first attempt, then answer.
    FailOnce,
    /// Fail for good.
    Fail,
    /// Run until cancelled (then say so).
    UntilCancelled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Task {
    act: Act,
}

impl JobType for Task {
    const NAME: &'static str = "test.task";
}

fn registry() -> Registry {
    Registry::new().handle(|task: Task, ctx: JobContext| async move {
        match task.act {
            Act::Answer(a) => Ok(conveyor::Json(a)),
            Act::FailOnce if ctx.attempt == 0 => Err(JobError::retry("first attempt fails")),
            Act::FailOnce => Ok(conveyor::Json("second time lucky".to_owned())),
            Act::Fail => Err(JobError::fail("no way")),
            Act::UntilCancelled => {
                ctx.cancel.cancelled().await;
                Err(JobError::retry("stopped: cancelled"))
            }
        }
    })
}

fn task(act: Act) -> Task {
    Task { act }
}

async fn queue(test: &str) -> Queue {
    let options = QueueOptions {
        backoff: conveyor::queue::Backoff { base: Duration::from_millis(300), max: Duration::from_millis(300) },
        ..QueueOptions::default()
    };
    support::queue(test, options).await
}

async fn pool(queue: &Queue) -> WorkerPool {
    WorkerPool::builder(queue.clone(), registry())
        .concurrency(8)
        .block(Duration::from_millis(20))
        .start()
        .await
        .expect("start the pool")
}

/// Polls `id`'s status until `want` holds; a generous bound only stops a hung test.
async fn status_until(client: &Client, id: &str, want: impl Fn(&JobState) -> bool) -> JobState {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Status::Found(info) = client.status(id).await.unwrap()
            && (want(&info.state) || Instant::now() > deadline)
        {
            return info.state;
        }
        assert!(Instant::now() < deadline, "{id} never reached the state wanted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn a_tracked_job_answers_where_it_is_in_every_state() {
    let queue = queue("track-states").await;
    let client = Client::new(queue.clone());
    let track = Enqueue::new().track();

    // Waiting and delayed, before any worker runs.
    let waiting = client.enqueue_with(&task(Act::Answer("42".into())), track.clone()).await.unwrap().into_id();
    let later = track.clone().delay(Duration::from_secs(3600));
    let delayed = client.enqueue_with(&task(Act::Answer("x".into())), later).await.unwrap().into_id();
    match client.status(waiting.as_str()).await.unwrap() {
        Status::Found(info) => {
            assert_eq!(info.state, JobState::Waiting);
            assert_eq!((info.name.as_str(), info.attempt), ("test.task", 0));
        }
        other => panic!("{other:?}"),
    }
    match client.status(delayed.as_str()).await.unwrap() {
        Status::Found(info) => {
            assert!(matches!(info.state, JobState::Delayed { until_ms } if until_ms > 0), "{info:?}")
        }
        other => panic!("{other:?}"),
    }

    // Active, retrying, completed with its result, dead.
    let running = client.enqueue_with(&task(Act::UntilCancelled), track.clone()).await.unwrap().into_id();
    let flaky = client.enqueue_with(&task(Act::FailOnce), track.clone()).await.unwrap().into_id();
    let doomed = client.enqueue_with(&task(Act::Fail), track.clone()).await.unwrap().into_id();
    let pool = pool(&queue).await;
    let state = status_until(&client, waiting.as_str(), |s| matches!(s, JobState::Completed { .. })).await;
    assert_eq!(state, JobState::Completed { result: Some("\"42\"".into()) }, "the handler's Json result is kept");
    let state = status_until(&client, running.as_str(), |s| matches!(s, JobState::Active { .. })).await;
    assert!(
        matches!(&state, JobState::Active { worker, cancel_requested: false } if worker.ends_with("-w0")),
        "{state:?}"
    );
    let state =
        status_until(&client, flaky.as_str(), |s| matches!(s, JobState::Retrying { .. } | JobState::Completed { .. }))
            .await;
    assert!(
        matches!(&state, JobState::Retrying { last_error, .. } if last_error == "first attempt fails"),
        "a failed attempt shows with its error before the retry runs: {state:?}"
    );
    let state = status_until(&client, flaky.as_str(), |s| matches!(s, JobState::Completed { .. })).await;
    assert_eq!(state, JobState::Completed { result: Some("\"second time lucky\"".into()) });
    let state = status_until(&client, doomed.as_str(), |s| matches!(s, JobState::Dead { .. })).await;
    assert_eq!(state, JobState::Dead { reason: "no way".into() });

    // Cancelled: a delayed job does not start; a running one sees its token trip.
    assert_eq!(client.cancel(delayed.as_str()).await.unwrap(), Cancelled::Cancelled);
    assert_eq!(status_until(&client, delayed.as_str(), |_| true).await, JobState::Cancelled);
    assert_eq!(client.cancel(running.as_str()).await.unwrap(), Cancelled::Requested);
    assert_eq!(status_until(&client, running.as_str(), |s| *s == JobState::Cancelled).await, JobState::Cancelled);
    assert_eq!(
        client.cancel(waiting.as_str()).await.unwrap(),
        Cancelled::AlreadyFinished("completed".into()),
        "cancelling a finished job says so"
    );
    pool.shutdown().await;
}

#[actix_rt::test]
async fn a_cancelled_waiting_job_never_runs_tracked_or_not() {
    let queue = queue("track-cancel-waiting").await;
    let client = Client::new(queue.clone());
    let tracked = client.enqueue_with(&task(Act::Fail), Enqueue::new().track()).await.unwrap().into_id();
    let untracked = client.enqueue(&task(Act::Fail)).await.unwrap();
    assert_eq!(client.cancel(tracked.as_str()).await.unwrap(), Cancelled::Cancelled);
    assert_eq!(
        client.cancel(untracked.as_str()).await.unwrap(),
        Cancelled::Sent,
        "an untracked job: told to every worker"
    );
    // Give the workers' watcher its first read before they claim.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pool = pool(&queue).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.depth().await.unwrap().waiting + queue.depth().await.unwrap().in_flight > 0 && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let depth = queue.depth().await.unwrap();
    assert_eq!(
        (depth.waiting, depth.in_flight, depth.dead),
        (0, 0, 0),
        "both settled as cancelled, not run (they would die): {depth:?}"
    );
    pool.shutdown().await;
}

#[actix_rt::test]
async fn bad_ids_get_clear_answers_and_untracked_jobs_leave_no_status() {
    let queue = queue("track-bad-ids").await;
    let client = Client::new(queue.clone());
    assert_eq!(client.status("no-such-job").await.unwrap(), Status::NotFound);
    let two_days_ago = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        conveyor::clock::now_us() / 1_000_000 - 2 * 86_400,
        0,
    ));
    assert!(matches!(client.status(&two_days_ago.to_string()).await.unwrap(), Status::Expired { .. }));
    for bad in ["", "a\nb", &"x".repeat(300)] {
        let e = client.status(bad).await.unwrap_err().to_string();
        assert!(e.starts_with("job id: expected"), "{bad:?}: {e}");
        assert!(client.cancel(bad).await.is_err(), "{bad:?}");
    }

    // Untracked jobs, run to the end: no status hash, no event.
    let pool = pool(&queue).await;
    let ids = client.enqueue_batch(&vec![task(Act::Answer("a".into())); 20]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.depth().await.unwrap() != conveyor::queue::Depth::default() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.shutdown().await;
    assert_eq!(client.status(ids[0].as_str()).await.unwrap(), Status::NotFound);
    let keys: Vec<String> = queue
        .redis()
        .with_conn(async |c| redis::cmd("KEYS").arg(format!("{{conveyor:{}}}:*", queue.name())).query_async(c).await)
        .await
        .unwrap();
    assert!(
        keys.iter().all(|k| !k.contains(":job:") && !k.ends_with(":events")),
        "untracked jobs write nothing extra: {keys:?}"
    );
}

#[actix_rt::test]
async fn a_finished_status_expires_after_its_retention_and_a_missed_deadline_is_dead() {
    let queue = queue("track-retention").await;
    let client = Client::new(queue.clone());
    let short = Enqueue::new().track_for(Duration::from_millis(300));
    let id = client.enqueue_with(&task(Act::Answer("soon gone".into())), short).await.unwrap().into_id();
    let past = Enqueue::new().track().deadline(SystemTime::now() - Duration::from_secs(1));
    let late = client.enqueue_with(&task(Act::Answer("too late".into())), past).await.unwrap().into_id();
    let pool = pool(&queue).await;
    status_until(&client, id.as_str(), |s| matches!(s, JobState::Completed { .. })).await;
    let key = queue.keys().job(id.as_str());
    let ttl: i64 = queue.redis().with_conn(async |c| redis::cmd("PTTL").arg(&key).query_async(c).await).await.unwrap();
    assert!((1..=300).contains(&ttl), "the status expires after the retention: PTTL {ttl}");
    let state = status_until(&client, late.as_str(), |s| matches!(s, JobState::Dead { .. })).await;
    assert!(matches!(&state, JobState::Dead { reason } if reason.contains("deadline passed")), "{state:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(client.status(id.as_str()).await.unwrap(), Status::NotFound, "gone after its retention");
    pool.shutdown().await;
}

#[actix_rt::test]
async fn an_id_of_its_own_is_taken_once_while_its_status_is_kept() {
    let queue = queue("track-own-id").await;
    let client = Client::new(queue.clone());
    let first = client.enqueue_with(&task(Act::Answer("1".into())), Enqueue::new().id("order-42")).await.unwrap();
    let again = client.enqueue_with(&task(Act::Answer("2".into())), Enqueue::new().id("order-42")).await.unwrap();
    assert_eq!(first, conveyor::Enqueued::Added(conveyor::JobId::parse("order-42").unwrap()));
    assert_eq!(again, conveyor::Enqueued::Duplicate(conveyor::JobId::parse("order-42").unwrap()));
    let pool = pool(&queue).await;
    let state = status_until(&client, "order-42", |s| matches!(s, JobState::Completed { .. })).await;
    assert_eq!(state, JobState::Completed { result: Some("\"1\"".into()) });
    pool.shutdown().await;
}

#[actix_rt::test]
async fn a_subscriber_sees_every_event_of_ten_thousand_tracked_jobs() {
    let queue = queue("track-events").await;
    let client = Client::new(queue.clone());
    let mut events = client.events();
    // Start reading before anything happens (from now on).
    assert!(events.next(Duration::from_millis(1)).await.unwrap().is_empty());
    let pool = WorkerPool::builder(queue.clone(), registry()).workers(4).concurrency(16).start().await.unwrap();
    let jobs: Vec<(Task, Enqueue)> = (0..10_000)
        .map(|i| (task(if i % 10 == 0 { Act::Fail } else { Act::Answer(i.to_string()) }), Enqueue::new().track()))
        .collect();
    let mut ids = std::collections::HashSet::new();
    for chunk in jobs.chunks(500) {
        for e in client.enqueue_batch_with(chunk.to_vec()).await.unwrap() {
            ids.insert(e.into_id());
        }
    }
    let mut seen = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < ids.len() && Instant::now() < deadline {
        for e in events.next(Duration::from_millis(200)).await.unwrap() {
            seen.insert(e.id.clone(), e.kind.clone());
        }
    }
    pool.shutdown().await;
    assert_eq!(seen.len(), 10_000, "every job's final event arrived");
    assert!(seen.keys().all(|id| ids.contains(id)));
    let dead = seen.values().filter(|k| *k == "dead").count();
    assert_eq!((dead, seen.len() - dead), (1_000, 9_000), "one job in ten failed for good");
}

#[actix_rt::test]
async fn an_audited_batch_says_how_many_finished_which_never_did_and_which_ran_twice() {
    let queue = queue("track-audited").await;
    let client = Client::new(queue.clone());
    let import = client.audited_batch("import-7");
    let rows: Vec<Task> = (0..10).map(|i| task(Act::Answer(i.to_string()))).collect();
    let ids = import.enqueue(&rows).await.unwrap();
    assert_eq!(ids.len(), 10);
    let more = import.enqueue(&rows[..2]).await.unwrap();
    assert_eq!(more.len(), 2, "a second call numbers on: 10 and 11");

    // A worker of our own: settle all but jobs 3 and 11, and job 5 twice.
    let mut conn = queue.redis().blocking_connection().await.unwrap();
    let claimed = queue.claim(&mut conn, "w", 100, Duration::from_millis(50)).await.unwrap();
    assert_eq!(claimed.len(), 12);
    let seq = |c: &conveyor::queue::Claimed| c.job.as_ref().unwrap().seq.unwrap();
    let settle: Vec<_> = claimed
        .iter()
        .filter(|c| ![3, 11].contains(&seq(c)))
        .map(|c| (c.clone(), conveyor::queue::Outcome::Completed))
        .collect();
    queue.settle(&settle).await.unwrap();
    let again: Vec<_> = settle.iter().filter(|(c, _)| seq(c) == 5).cloned().collect();
    let twice = queue.settle(&again).await.unwrap();
    assert_eq!(twice.duplicates, 1);

    let report = import.report(100).await.unwrap();
    assert_eq!((report.enqueued, report.finished), (12, 10), "{report:?}");
    assert_eq!(report.unfinished, [3, 11], "which never finished, by number");
    assert_eq!(report.ran_twice, [5], "which ran twice, by number");
    assert_eq!(queue.audited_done().await.unwrap(), 0, "the queue's own audit is apart from the batch's");
    assert!(client.audited_batch("").report(10).await.is_err(), "an empty name is refused");
    import.forget().await.unwrap();
    assert_eq!(import.report(10).await.unwrap().enqueued, 0);
}

#[actix_rt::test]
async fn a_tracked_job_held_by_a_dead_worker_is_waiting_again_after_the_reclaim_then_dead_when_it_keeps_dying() {
    let lease = Duration::from_millis(300);
    let options = QueueOptions { lease, max_reclaims: 1, ..QueueOptions::default() };
    let queue = support::queue("track-reclaim", options).await;
    let client = Client::new(queue.clone());
    let id = client.enqueue_with(&task(Act::Answer("x".into())), Enqueue::new().track()).await.unwrap().into_id();
    for round in 0..2 {
        // A worker claims it, marks it active, and dies.
        let mut conn = queue.redis().blocking_connection().await.unwrap();
        let held = queue.claim(&mut conn, "doomed", 10, Duration::from_millis(50)).await.unwrap();
        assert_eq!(held.len(), 1, "round {round}");
        queue.mark_active("doomed", &[(held[0].partition, &held[0].job_id(), 0)]).await.unwrap();
        assert!(matches!(status_until(&client, id.as_str(), |_| true).await, JobState::Active { .. }));
        tokio::time::sleep(lease + Duration::from_millis(100)).await;
        queue.reclaim("0-0", 100).await.unwrap();
        let state = status_until(&client, id.as_str(), |_| true).await;
        if round == 0 {
            assert_eq!(state, JobState::Waiting, "given back to the queue");
        } else {
            assert!(
                matches!(&state, JobState::Dead { reason } if reason.contains("lease expired 2 times")),
                "{state:?}"
            );
        }
    }
}

#[actix_rt::test]
async fn every_kind_of_event_carries_its_job_attempt_and_error_whether_written_per_batch_or_alone() {
    let queue = queue("track-event-kinds").await;
    let client = Client::new(queue.clone());
    let track = Enqueue::new().track();
    let done = client.enqueue_with(&task(Act::Answer("a".into())), track.clone()).await.unwrap().into_id();
    let flaky = client.enqueue_with(&task(Act::FailOnce), track.clone()).await.unwrap().into_id();
    let doomed = client.enqueue_with(&task(Act::Fail), track.clone()).await.unwrap().into_id();
    let later = track.clone().delay(Duration::from_secs(3600));
    let dropped = client.enqueue_with(&task(Act::Answer("x".into())), later).await.unwrap().into_id();
    // Written by the cancel script, an entry of its own.
    assert_eq!(client.cancel(dropped.as_str()).await.unwrap(), Cancelled::Cancelled);
    let pool = pool(&queue).await;
    let mut events = client.events().from_oldest();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 5 && Instant::now() < deadline {
        seen.extend(events.next(Duration::from_millis(200)).await.unwrap());
    }
    pool.shutdown().await;
    let kinds: Vec<(String, &str, u16, Option<&str>)> =
        seen.iter().map(|e| (e.id.as_str().to_owned(), e.kind.as_str(), e.attempt, e.error.as_deref())).collect();
    assert_eq!(seen.len(), 5, "{kinds:?}");
    assert!(seen.iter().all(|e| e.name == "test.task" && e.at_ms > 0 && !e.cursor.is_empty()), "{seen:?}");
    for want in [
        (dropped.as_str().to_owned(), "cancelled", 0, None),
        (done.as_str().to_owned(), "completed", 0, None),
        (flaky.as_str().to_owned(), "failed", 0, Some("first attempt fails")),
        (flaky.as_str().to_owned(), "completed", 1, None),
        (doomed.as_str().to_owned(), "dead", 0, Some("no way")),
    ] {
        assert!(kinds.contains(&want), "{want:?} in {kinds:?}");
    }
    // Reading on from the last cursor: nothing new, nothing again.
    assert!(events.next(Duration::from_millis(1)).await.unwrap().is_empty());
}

#[actix_rt::test]
async fn a_waiting_status_holds_only_what_its_absence_would_not_say_and_expires_while_pending() {
    let queue = queue("track-hash-fields").await;
    let client = Client::new(queue.clone());
    let waiting = client.enqueue_with(&task(Act::Answer("a".into())), Enqueue::new().track()).await.unwrap().into_id();
    let later = Enqueue::new().track().delay(Duration::from_secs(60));
    let delayed = client.enqueue_with(&task(Act::Answer("b".into())), later).await.unwrap().into_id();
    let fields = |id: String| {
        let queue = queue.clone();
        async move {
            let key = queue.keys().job(&id);
            let mut names: Vec<String> =
                queue.redis().with_conn(async |c| redis::cmd("HKEYS").arg(&key).query_async(c).await).await.unwrap();
            names.sort();
            let ttl: i64 =
                queue.redis().with_conn(async |c| redis::cmd("PTTL").arg(&key).query_async(c).await).await.unwrap();
            (names, ttl)
        }
    };
    let week = 7 * 24 * 3600 * 1000;
    let (names, ttl) = fields(waiting.as_str().to_owned()).await;
    assert_eq!(names, ["enqueued_at", "name", "state"]);
    assert!(ttl > week - 60_000 && ttl <= week, "PTTL {ttl}");
    let (names, ttl) = fields(delayed.as_str().to_owned()).await;
    assert_eq!(names, ["due_at", "enqueued_at", "name", "state"]);
    assert!(ttl > week && ttl <= week + 60_000, "the delay is added: PTTL {ttl}");
}
