//! The runtime as an application uses it: its own job types and handlers, a client that answers
//! job ids, per-job options, typed handler errors, and what happens to jobs no handler can run.

use crate::support;
use conveyor::queue::{Depth, Envelope, JobsIn, QueueOptions};
use conveyor::{Client, Enqueue, Enqueued, JobContext, JobError, JobId, JobType, Queue, Registry, WorkerPool};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// A job of the application's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Resize {
    path: String,
    width: u32,
}

impl JobType for Resize {
    const NAME: &'static str = "image.resize";
}

/// A job type whose defaults allow two attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flaky {
    /// What the handler answers on each attempt: "ok", "retry", "later", "fail", "panic", "hang".
    plan: Vec<String>,
}

impl JobType for Flaky {
    const NAME: &'static str = "test.flaky";

    fn defaults() -> Enqueue {
        Enqueue::new().max_attempts(2)
    }
}

/// What a handler saw of one run.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    id: JobId,
    attempt: u16,
    max_attempts: u16,
    queue: String,
    payload: String,
    deadline: bool,
    headers: Option<Vec<u8>>,
}

fn registry(seen: UnboundedSender<Seen>) -> Registry {
    let seen2 = seen.clone();
    Registry::new()
        .handle::<Resize, _, _, _>(move |job: Resize, ctx: JobContext| {
            let seen = seen.clone();
            async move {
                let _ = seen.send(observe(&ctx, format!("{}@{}", job.path, job.width)));
                Ok(())
            }
        })
        .handle::<Flaky, _, _, _>(move |job: Flaky, ctx: JobContext| {
            let seen = seen2.clone();
            async move {
                let _ = seen.send(observe(&ctx, job.plan.join(",")));
                match job.plan.get(usize::from(ctx.attempt)).map(String::as_str).unwrap_or("ok") {
                    "retry" => Err(JobError::retry("try again")),
                    "later" => Err(JobError::retry_after(Duration::from_millis(300), "rate limited")),
                    "fail" => Err(JobError::fail("the input is wrong")),
                    "panic" => panic!("handler bug"),
                    "hang" => {
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
        })
}

fn observe(ctx: &JobContext, payload: String) -> Seen {
    Seen {
        name: ctx.name.to_string(),
        id: ctx.id.clone(),
        attempt: ctx.attempt,
        max_attempts: ctx.max_attempts,
        queue: ctx.queue.to_string(),
        payload,
        deadline: ctx.deadline.is_some(),
        headers: ctx.headers.as_deref().map(<[u8]>::to_vec),
    }
}

/// A queue with fast retries, a worker pool on it, and what its handlers see.
async fn start(test: &str, options: QueueOptions) -> (Queue, Client, WorkerPool, UnboundedReceiver<Seen>) {
    let options = QueueOptions {
        backoff: conveyor::queue::Backoff { base: Duration::from_millis(20), max: Duration::from_millis(40) },
        ..options
    };
    let queue = support::queue(test, options).await;
    let (tx, rx) = unbounded_channel();
    let pool = support::pool(&queue, registry(tx)).await;
    (queue.clone(), Client::new(queue), pool, rx)
}

/// The next thing a handler saw; a generous bound only stops a hung test.
/// `XADD` to the queue's ready stream of an entry id and fields, as a producer in another
/// language writes them.
async fn raw_xadd(queue: &Queue, args: &[&str]) {
    let ready = queue.keys().ready();
    let _: String =
        queue.redis().with_conn(async |c| redis::cmd("XADD").arg(&ready).arg(args).query_async(c).await).await.unwrap();
}

async fn next(rx: &mut UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a handler ran").expect("handlers live")
}

#[actix_rt::test]
async fn a_handler_gets_its_typed_payload_and_the_job_its_enqueue_answered() {
    let (queue, client, pool, mut rx) = start("rt-typed", QueueOptions::default()).await;
    let id = client.enqueue(&Resize { path: "a.png".into(), width: 64 }).await.unwrap();
    let seen = next(&mut rx).await;
    assert_eq!(seen.name, "image.resize");
    assert_eq!(seen.payload, "a.png@64");
    assert_eq!(seen.id, id, "the context's id is the one enqueue answered");
    assert_eq!((seen.attempt, seen.max_attempts), (0, 3), "first attempt of the queue's three");
    assert_eq!(seen.queue, queue.name());
    assert!(!seen.deadline, "no timeout, no deadline");

    let batch: Vec<Resize> = (0..50).map(|i| Resize { path: format!("{i}.png"), width: i }).collect();
    let ids = client.enqueue_batch(&batch).await.unwrap();
    assert_eq!(ids.len(), 50);
    let mut by_id = std::collections::HashMap::new();
    for _ in 0..50 {
        let s = next(&mut rx).await;
        by_id.insert(s.id.clone(), s.payload);
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(by_id.get(id), Some(&format!("{i}.png@{i}")), "job {i} ran under the id its batch answered");
    }
    let d = support::depth_until(&queue, |d| d.waiting + d.in_flight == 0).await;
    assert_eq!(d, Depth::default());
    pool.shutdown().await;
}

#[actix_rt::test]
async fn headers_given_at_enqueue_reach_the_handler_unchanged_and_a_job_without_has_none() {
    let (_queue, client, pool, mut rx) = start("rt-headers", QueueOptions::default()).await;
    let trace = b"traceparent: 00-4bf9-00f0-01\x00\xff".to_vec();
    let with = client
        .enqueue_with(&Resize { path: "h.png".into(), width: 1 }, Enqueue::new().headers(trace.clone()))
        .await
        .unwrap();
    let seen = next(&mut rx).await;
    assert_eq!((seen.id, seen.headers), (with.id().clone(), Some(trace)));
    client.enqueue(&Resize { path: "plain.png".into(), width: 2 }).await.unwrap();
    assert_eq!(next(&mut rx).await.headers, None);
    pool.shutdown().await;
}

#[actix_rt::test]
async fn typed_errors_retry_retry_later_or_kill_and_a_panic_is_a_failed_attempt() {
    let (queue, client, pool, mut rx) = start("rt-errors", QueueOptions::default()).await;
    let plan = |p: &[&str]| Flaky { plan: p.iter().map(|s| s.to_string()).collect() };

    // Retry once, then succeed: two runs, same id, attempts 0 and 1 of the type's two.
    let id = client.enqueue(&plan(&["retry", "ok"])).await.unwrap();
    let (a, b) = (next(&mut rx).await, next(&mut rx).await);
    assert_eq!((a.attempt, b.attempt, a.max_attempts), (0, 1, 2));
    assert_eq!((&a.id, &b.id), (&id, &id), "a retry keeps the job's id");

    // Fail now: one run, straight to the dead letters with the handler's reason.
    let failed = client.enqueue(&plan(&["fail", "ok"])).await.unwrap();
    assert_eq!(next(&mut rx).await.id, failed);
    // A panic is a failed attempt; the second attempt panics too: dead after two.
    let panicked = client.enqueue(&plan(&["panic", "panic"])).await.unwrap();
    for attempt in 0..2 {
        assert_eq!(next(&mut rx).await.attempt, attempt);
    }
    // Retry after a delay the handler names, then succeed.
    let later = client.enqueue(&plan(&["later", "ok"])).await.unwrap();
    let first = next(&mut rx).await;
    let began = Instant::now();
    let second = next(&mut rx).await;
    assert_eq!((first.id.clone(), second.id.clone(), second.attempt), (later.clone(), later, 1));
    println!("retry_after(300ms): the next attempt began after {:?}", began.elapsed());

    let d = support::depth_until(&queue, |d| d.dead == 2 && d.unfinished() == 0).await;
    assert_eq!(d, Depth { dead: 2, ..Depth::default() });
    let dead = queue.dead_letters(10).await.unwrap();
    let reason_of = |id: &JobId| {
        let d =
            dead.iter().find(|d| d.job.as_ref().unwrap().id.as_deref() == Some(id.as_str())).expect("its dead letter");
        d.reason.clone()
    };
    assert_eq!(reason_of(&failed), "the input is wrong");
    let why = reason_of(&panicked);
    assert!(why.contains("failed 2 times") && why.contains("handler panicked: handler bug"), "{why}");
    pool.shutdown().await;
}

#[actix_rt::test]
async fn per_job_options_override_the_defaults_and_a_timeout_drops_the_run() {
    let (queue, client, pool, mut rx) = start("rt-options", QueueOptions::default()).await;
    let hang = Flaky { plan: vec!["hang".into(), "hang".into(), "hang".into()] };
    let options = Enqueue::new().max_attempts(1).timeout(Duration::from_millis(50));
    let id = client.enqueue_with(&hang, options).await.unwrap().into_id();
    let seen = next(&mut rx).await;
    assert_eq!((seen.max_attempts, seen.deadline), (1, true), "the job's own attempts, a deadline from its timeout");
    let d = support::depth_until(&queue, |d| d.dead == 1).await;
    assert_eq!(d, Depth { dead: 1, ..Depth::default() });
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].job.as_ref().unwrap().id.as_deref(), Some(id.as_str()));
    assert!(dead[0].reason.contains("timed out after 50ms"), "{}", dead[0].reason);

    // A delayed job: not before its time, and then under the id its enqueue answered.
    let at = Instant::now();
    let delayed = client
        .enqueue_with(&Resize { path: "late.png".into(), width: 1 }, Enqueue::new().delay(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(queue.depth().await.unwrap().delayed, 1);
    let seen = next(&mut rx).await;
    assert!(at.elapsed() >= Duration::from_millis(300), "ran {:?} after a 300 ms delay", at.elapsed());
    assert_eq!(&seen.id, delayed.id());

    // An idempotency key: the second enqueue adds nothing and answers the first job's id.
    let unique = Enqueue::new().unique_for("resize:u.png", Duration::from_secs(60));
    let first = client.enqueue_with(&Resize { path: "u.png".into(), width: 2 }, unique.clone()).await.unwrap();
    let again = client.enqueue_with(&Resize { path: "u.png".into(), width: 3 }, unique).await.unwrap();
    assert!(matches!(first, Enqueued::Added(_)));
    assert_eq!(again, Enqueued::Duplicate(first.id().clone()));
    assert_eq!(next(&mut rx).await.payload, "u.png@2");
    pool.shutdown().await;
}

#[actix_rt::test]
async fn jobs_no_handler_can_run_go_to_the_dead_letters_with_the_reason_and_the_queue_flows_on() {
    let (queue, client, pool, mut rx) = start("rt-refused", QueueOptions::default()).await;
    let unknown = client.enqueue_raw("video.encode", b"{}".to_vec(), Enqueue::new()).await.unwrap().into_id();
    let bad = client.enqueue_raw(Resize::NAME, br#"{"path": 7}"#.to_vec(), Enqueue::new()).await.unwrap().into_id();
    let incomplete = queue.enqueue(&Envelope::new("image.resize", b"{}".to_vec())).await.unwrap();
    // A job from a newer conveyor: version 3.
    raw_xadd(&queue, &["*", "v", "3", "n", "x", "d", ""]).await;
    let fine = client.enqueue(&Resize { path: "after.png".into(), width: 9 }).await.unwrap();
    let mut ran = vec![next(&mut rx).await];
    ran.extend(std::iter::from_fn(|| rx.try_recv().ok()));
    let d = support::depth_until(&queue, |d| d.dead == 4 && d.waiting + d.in_flight == 0).await;
    ran.extend(std::iter::from_fn(|| rx.try_recv().ok()));
    assert_eq!(ran.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![fine], "only the good job ran");
    assert_eq!(d, Depth { dead: 4, ..Depth::default() }, "the others are dead letters, nothing is stuck");

    let dead = queue.dead_letters(10).await.unwrap();
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    assert!(has("no handler for job type \"video.encode\""), "{reasons:?}");
    assert!(has("payload does not decode as job type \"image.resize\""), "{reasons:?}");
    assert!(has("payload does not decode") && reasons.len() == 4, "{reasons:?}");
    assert!(has("envelope version 3 is newer than this worker reads (2)"), "{reasons:?}");
    let ids: Vec<Option<&str>> = dead.iter().map(|d| d.job.as_ref().ok().and_then(|j| j.id.as_deref())).collect();
    for id in [&unknown, &bad, &incomplete] {
        assert!(ids.contains(&Some(id.as_str())), "{id} is among the dead letters by its id: {ids:?}");
    }
    pool.shutdown().await;
}

#[actix_rt::test]
async fn a_dead_letter_written_without_an_enqueue_time_shows_its_entry_time_not_its_death() {
    let (queue, _client, pool, _rx) = start("rt-dead-time", QueueOptions::default()).await;
    // As a producer in another language may write it: no `t`, an entry id of 2001.
    raw_xadd(&queue, &["1000000000000-1", "n", "video.encode", "d", "{}"]).await;
    support::depth_until(&queue, |d| d.dead == 1).await;
    let page = queue.jobs(JobsIn::Dead, 10, None).await.unwrap();
    let times: Vec<(String, u64)> = page.jobs.iter().map(|j| (j.id.to_string(), j.enqueued_ms)).collect();
    assert_eq!(times, [("1000000000000-1".to_owned(), 1_000_000_000_000)], "enqueued when its entry was added");
    pool.shutdown().await;
}

#[actix_rt::test]
async fn delayed_and_keyed_jobs_stay_in_the_partition_of_their_key() {
    let options = QueueOptions { partitions: 4, ..QueueOptions::default() };
    let queue = support::queue("rt-partitions", options).await;
    let client = Client::new(queue.clone());
    let later = Enqueue::new().delay(Duration::from_secs(3600));
    for i in 0..20 {
        let key = format!("customer-{i}");
        client.enqueue_with(&Resize { path: key.clone(), width: i }, later.clone().key(key.clone())).await.unwrap();
    }
    let per_partition: Vec<u64> = futures::future::join_all(queue.partition_keys().iter().map(|k| {
        let (redis, delayed) = (queue.redis().clone(), k.delayed());
        async move {
            redis.with_conn(async |c| redis::cmd("ZCARD").arg(&delayed).query_async::<u64>(c).await).await.unwrap()
        }
    }))
    .await;
    assert_eq!(per_partition.iter().sum::<u64>(), 20, "{per_partition:?}");
    assert!(
        per_partition.iter().filter(|&&n| n > 0).count() >= 3,
        "delayed jobs spread over the partitions: {per_partition:?}"
    );
    for i in 0..20u32 {
        let key = format!("customer-{i}");
        let p = conveyor::queue::partition::of_key(&key, 4);
        let delayed = queue.partition_keys()[usize::from(p)].delayed();
        let members: Vec<Vec<u8>> = queue
            .redis()
            .with_conn(async |c| redis::cmd("ZRANGE").arg(&delayed).arg(0).arg(-1).query_async(c).await)
            .await
            .unwrap();
        let found = members
            .iter()
            .any(|m| Envelope::unpack(m).is_ok_and(|e| e.payload.windows(key.len()).any(|w| w == key.as_bytes())));
        assert!(found, "{key}'s delayed job is in partition {p}, its key's");
    }
}

/// A job that takes a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Slow {
    ms: u64,
}

impl JobType for Slow {
    const NAME: &'static str = "test.slow";
}

/// A job running for three leases stays with its worker, which renews its lease meanwhile (while
/// its loop goes on claiming and running other jobs): the pool's scheduler, reclaiming expired
/// leases all along, never hands it to another run. The lease (1.5 s) is long enough that a
/// busy machine cannot stall a worker between two renewals for a whole lease.
#[actix_rt::test]
async fn a_job_longer_than_its_lease_runs_once_while_the_worker_renews_it() {
    let lease = Duration::from_millis(1500);
    let queue = support::queue("rt-renew", QueueOptions { lease, ..QueueOptions::default() }).await;
    let (tx, mut rx) = unbounded_channel::<(u64, u16)>();
    let registry = Registry::new().handle::<Slow, _, _, _>(move |job: Slow, ctx: JobContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((job.ms, ctx.attempt));
            tokio::time::sleep(Duration::from_millis(job.ms)).await;
            Ok(())
        }
    });
    let pool = support::pool(&queue, registry).await;
    let client = Client::new(queue.clone());
    client.enqueue(&Slow { ms: 3 * lease.as_millis() as u64 }).await.unwrap();
    // Quick jobs beside it, on the same workers, while it runs.
    for _ in 0..20 {
        client.enqueue(&Slow { ms: 1 }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = support::depth_until(&queue, |d| d.waiting + d.in_flight + d.delayed == 0).await;
    assert_eq!(d, Depth::default(), "everything finished, nothing retried or dead");
    let runs: Vec<(u64, u16)> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(runs.len(), 21, "each job ran once: {runs:?}");
    assert!(runs.iter().all(|(_, attempt)| *attempt == 0), "no job failed an attempt: {runs:?}");
    pool.shutdown().await;
}
