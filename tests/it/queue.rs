//! The queue against a real Redis: every job state change (enqueue, claim, settle, retry,
//! delay, reclaim, renew, dead letters) is checked by reading back what Redis holds afterwards.
//! Time-dependent behaviour runs on a manual clock, except lease expiry: Redis measures idle
//! time itself, so those tests sleep for a short lease.

use crate::support::{self, job};
use conveyor::bench::run::RunBook;
use conveyor::queue::{Backoff, Claimed, Depth, Envelope, GROUP, Outcome, Queue, QueueOptions, Settled};
use std::time::Duration;

/// Lease for the tests that wait for Redis to see an entry idle: long enough that claiming and
/// reclaiming at once never crosses it, short enough to keep the module fast.
const SHORT_LEASE: Duration = Duration::from_millis(300);

/// How long a test claim waits for the first entry.
const CLAIM_BLOCK: Duration = Duration::from_millis(50);

async fn claim(queue: &Queue, consumer: &str, count: usize) -> Vec<Claimed> {
    let mut conn = queue.redis().blocking_connection().await.expect("dedicated connection");
    queue.claim(&mut conn, consumer, count, CLAIM_BLOCK).await.expect("claim")
}

fn with_outcome(claimed: Vec<Claimed>, outcome: Outcome) -> Vec<(Claimed, Outcome)> {
    claimed.into_iter().map(|c| (c, outcome.clone())).collect()
}

fn seqs(claimed: &[Claimed]) -> Vec<u64> {
    claimed.iter().map(|c| u64::from(c.job.as_ref().expect("a decodable job").seq.expect("audited"))).collect()
}

/// The job a claim holds, without the id conveyor gave it (delayed, retried, reclaimed jobs).
fn without_id(c: &Claimed) -> Envelope {
    Envelope { id: None, ..c.job.clone().expect("a decodable job") }
}

async fn xlen(queue: &Queue, key: &str) -> u64 {
    queue.redis().with_conn(async |c| redis::cmd("XLEN").arg(key).query_async(c).await).await.expect("XLEN")
}

/// Entries of the ready stream still pending (claimed and not acknowledged), from XPENDING.
async fn pending(queue: &Queue) -> u64 {
    let ready = queue.keys().ready();
    let summary: redis::Value = queue
        .redis()
        .with_conn(async |c| redis::cmd("XPENDING").arg(&ready).arg(GROUP).query_async(c).await)
        .await
        .expect("XPENDING");
    match summary {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            other => panic!("unexpected XPENDING summary head {other:?}"),
        },
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

async fn exists(queue: &Queue, keys: &[String]) -> u64 {
    queue.redis().with_conn(async |c| redis::cmd("EXISTS").arg(keys).query_async(c).await).await.expect("EXISTS")
}

fn every_key(queue: &Queue) -> Vec<String> {
    let k = queue.keys();
    vec![k.ready(), k.delayed(), k.dead(), k.audit_done(), k.run(), k.stats(1)]
}

/// The trim removes settled entries only from the head of the stream: never an entry a worker
/// holds, never one no worker has been handed; and the waiting count stays exact while settled
/// entries wait for it.
#[tokio::test]
async fn the_trim_removes_settled_entries_and_never_held_or_waiting_ones() {
    let queue = support::queue("trim", QueueOptions::default()).await;
    let ready = queue.keys().ready();
    assert_eq!(queue.trim().await.unwrap(), 0, "an empty stream: nothing to trim");
    queue.enqueue_batch(&(0..30).map(job).collect::<Vec<_>>()).await.unwrap();
    let mut first = claim(&queue, "w1", 10).await; // 0..10, held
    let second = claim(&queue, "w2", 10).await; // 10..20, settled below; 20..30 wait
    assert_eq!(seqs(&second), (10..20).collect::<Vec<_>>());
    queue.settle(&with_outcome(second, Outcome::Completed)).await.unwrap();
    assert_eq!(queue.trim().await.unwrap(), 0, "entries 0..10 are held: nothing behind them goes");
    assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 10, in_flight: 10, ..Depth::default() });

    let rest = first.split_off(5);
    queue.settle(&with_outcome(first, Outcome::Completed)).await.unwrap();
    assert_eq!(queue.trim().await.unwrap(), 5, "0..5 settled; 5..10 still held");
    queue.settle(&with_outcome(rest, Outcome::Completed)).await.unwrap();
    assert_eq!(queue.trim().await.unwrap(), 15, "5..20 settled; 20..30 were never handed out");
    assert_eq!(xlen(&queue, &ready).await, 10);
    assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 10, ..Depth::default() });

    let last = claim(&queue, "w1", 100).await;
    assert_eq!(seqs(&last), (20..30).collect::<Vec<_>>(), "the waiting jobs survived every trim");
    assert_eq!(queue.trim().await.unwrap(), 0);
    queue.settle(&with_outcome(last, Outcome::Completed)).await.unwrap();
    assert_eq!(queue.trim().await.unwrap(), 10);
    assert_eq!(xlen(&queue, &ready).await, 0);
    assert_eq!(queue.audited_done().await.unwrap(), 30);
}

#[tokio::test]
async fn a_small_batch_reaches_a_waiting_worker_whole_and_a_large_one_in_pieces() {
    // Redis serves a blocked reader after each command: a plain pipeline of XADDs would wake
    // the first waiting worker with its first entry alone. A small batch goes in one
    // transaction, so the waiting worker claims all of it in one read.
    let queue = support::queue("wake-once", QueueOptions::default()).await;
    for (size, whole) in [(50u64, true), (300, false)] {
        let waiting = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut conn = queue.redis().blocking_connection().await.expect("dedicated connection");
                let name = format!("waiting-{}", queue.name());
                let () = redis::cmd("CLIENT").arg("SETNAME").arg(&name).query_async(&mut conn).await.expect("SETNAME");
                queue.claim(&mut conn, "waiting", 1_000, Duration::from_secs(10)).await.expect("claim")
            })
        };
        // Until its read is blocked in Redis.
        let blocked = format!("name=waiting-{} ", queue.name());
        let waits = async || {
            let clients: String = queue
                .redis()
                .with_conn(async |c| redis::cmd("CLIENT").arg("LIST").query_async(c).await)
                .await
                .expect("CLIENT LIST");
            clients.lines().any(|l| l.contains(&blocked) && l.contains("cmd=xreadgroup") && l.contains("flags=b"))
        };
        while !waits().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let first = if whole { 0 } else { 50 };
        queue.enqueue_batch(&(first..first + size).map(job).collect::<Vec<_>>()).await.unwrap();
        let claimed = waiting.await.unwrap();
        if whole {
            assert_eq!(seqs(&claimed), (0..50).collect::<Vec<_>>(), "the whole batch in the first read");
        } else {
            // Past WAKE_ONCE_UP_TO entries the batch is a plain pipeline.
            assert!(claimed.len() < 300, "a large batch is not one transaction: {} claimed at once", claimed.len());
        }
        let rest = claim(&queue, "waiting", 1_000).await;
        queue.settle(&with_outcome(claimed.into_iter().chain(rest).collect(), Outcome::Completed)).await.unwrap();
    }
    assert_eq!(queue.audited_done().await.unwrap(), 350);
}

#[tokio::test]
async fn completed_jobs_leave_the_stream_and_settling_twice_counts_duplicates() {
    let queue = support::queue("settle-completed", QueueOptions::default()).await;
    queue.enqueue(&job(0)).await.unwrap();
    queue.enqueue_batch(&(1..10).map(job).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 10, ..Depth::default() });

    let claimed = claim(&queue, "w1", 100).await;
    assert_eq!(seqs(&claimed), (0..10).collect::<Vec<_>>(), "claimed in enqueue order");
    assert_eq!(claimed[3].job.as_ref().unwrap(), &job(3), "the job survives the round trip unchanged");
    assert_eq!(queue.depth().await.unwrap(), Depth { in_flight: 10, ..Depth::default() });

    let batch = with_outcome(claimed, Outcome::Completed);
    let settled = queue.settle(&batch).await.unwrap();
    assert_eq!(settled, Settled { completed: 10, retried: 0, dead: 0, cancelled: 0, duplicates: 0 });
    assert_eq!(pending(&queue).await, 0, "completed entries are acknowledged");
    assert_eq!(queue.depth().await.unwrap(), Depth::default(), "settled entries count in no state before the trim");
    assert_eq!(xlen(&queue, &queue.keys().ready()).await, 10, "settling only acknowledges");
    assert_eq!(queue.trim().await.unwrap(), 10);
    assert_eq!(xlen(&queue, &queue.keys().ready()).await, 0, "the trim removed the settled entries");
    assert_eq!(queue.depth().await.unwrap(), Depth::default());
    assert_eq!(queue.audited_done().await.unwrap(), 10);
    assert_eq!(queue.missing(10, 100).await.unwrap(), Vec::<u64>::new());
    assert_eq!(queue.missing(12, 100).await.unwrap(), vec![10, 11], "jobs never produced are reported missing");

    let again = queue.settle(&batch).await.unwrap();
    assert_eq!(again.duplicates, 10, "every job of the batch had finished before");
    assert_eq!(queue.audited_done().await.unwrap(), 10, "a duplicate is not counted as a new job");
    assert_eq!(queue.depth().await.unwrap(), Depth::default());
    assert!(claim(&queue, "w1", 100).await.is_empty(), "nothing is left to claim");
}

#[tokio::test]
async fn failed_job_retries_with_backoff_then_dies_after_its_last_attempt() {
    let base = Duration::from_millis(1_000);
    let options = QueueOptions {
        max_attempts: 3,
        backoff: Backoff { base, max: Duration::from_secs(60) },
        ..QueueOptions::default()
    };
    let (clock, shared) = support::manual_clock();
    let queue = support::queue_with_clock("retry", options, shared).await;
    let first_id = queue.enqueue(&job(7)).await.unwrap();

    for attempt in 0..2u16 {
        let claimed = claim(&queue, "w1", 10).await;
        assert_eq!(claimed.len(), 1, "attempt {attempt}");
        let held = claimed[0].job.clone().unwrap();
        let id = claimed[0].job_id();
        assert_eq!(held.attempt, attempt);
        assert_eq!(held.seq, Some(7));
        assert_eq!(id, first_id, "attempt {attempt}: the job keeps the id of its first entry");

        let now_ms = clock_now_ms(&clock);
        let settled = queue.settle(&with_outcome(claimed, Outcome::Failed("boom".into()))).await.unwrap();
        assert_eq!(settled, Settled { retried: 1, ..Settled::default() }, "attempt {attempt}");
        assert_eq!(queue.depth().await.unwrap(), Depth { retrying: 1, ..Depth::default() }, "attempt {attempt}");
        assert_eq!(queue.audited_done().await.unwrap(), 0, "a retried job is not finished");

        // The retry is the same job with its attempt incremented and its id kept, due after
        // the backoff.
        let next = Envelope { attempt: attempt + 1, id: Some(id.to_string()), ..held };
        let retrying = queue.keys().retrying();
        let due: Option<f64> = queue
            .redis()
            .with_conn(async |c| redis::cmd("ZSCORE").arg(&retrying).arg(next.pack()).query_async(c).await)
            .await
            .unwrap();
        let due = due.expect("the next attempt is in the retrying set") as u64;
        let full = (base * 2u32.pow(u32::from(attempt))).as_millis() as u64;
        assert!(
            (now_ms + full / 2..=now_ms + full).contains(&due),
            "attempt {attempt}: due {due} not within [{}, {}]",
            now_ms + full / 2,
            now_ms + full
        );

        assert_eq!(queue.promote_due(100).await.unwrap(), 0, "attempt {attempt}: not due yet");
        assert!(claim(&queue, "w1", 10).await.is_empty(), "attempt {attempt}: the retry must wait");
        clock.advance(Duration::from_millis(due - now_ms));
        assert_eq!(queue.promote_due(100).await.unwrap(), 1, "attempt {attempt}: due now");
    }

    let claimed = claim(&queue, "w1", 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.as_ref().unwrap().attempt, 2);
    let settled = queue.settle(&with_outcome(claimed, Outcome::Failed("disk on fire".into()))).await.unwrap();
    assert_eq!(settled, Settled { dead: 1, ..Settled::default() });
    assert_eq!(queue.depth().await.unwrap(), Depth { dead: 1, ..Depth::default() });
    queue.trim().await.unwrap();
    assert_eq!(xlen(&queue, &queue.keys().ready()).await, 0);

    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let reason = &dead[0].reason;
    let last_run = Envelope { attempt: 2, id: Some(first_id.to_string()), ..job(7) };
    assert_eq!(dead[0].job.clone().unwrap(), last_run, "the dead letter holds the job as last run");
    assert!(reason.contains("disk on fire"), "reason names the last error: {reason}");
    assert!(reason.contains('3'), "reason says how many attempts failed: {reason}");
    assert_eq!(queue.audited_done().await.unwrap(), 1, "a dead job is finished");
    assert_eq!(queue.missing(8, 10).await.unwrap(), (0..7).collect::<Vec<_>>(), "bit 7 is the one set");
}

fn clock_now_ms(clock: &conveyor::clock::ManualClock) -> u64 {
    use conveyor::clock::Clock;
    clock.now_ms()
}

#[tokio::test]
async fn delayed_job_does_not_run_before_its_due_time() {
    let (clock, shared) = support::manual_clock();
    let queue = support::queue_with_clock("delayed", QueueOptions::default(), shared).await;
    let due = clock_now_ms(&clock) + 5_000;
    let id = queue.schedule(&job(3), due).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), Depth { delayed: 1, ..Depth::default() });

    assert_eq!(queue.promote_due(100).await.unwrap(), 0);
    assert!(claim(&queue, "w1", 10).await.is_empty());
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(queue.promote_due(100).await.unwrap(), 0, "one millisecond early");
    assert!(claim(&queue, "w1", 10).await.is_empty());
    assert_eq!(queue.depth().await.unwrap(), Depth { delayed: 1, ..Depth::default() });

    clock.advance(Duration::from_millis(1));
    assert_eq!(queue.promote_due(100).await.unwrap(), 1);
    assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 1, ..Depth::default() });
    let claimed = claim(&queue, "w1", 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(without_id(&claimed[0]), job(3));
    assert_eq!(claimed[0].job_id(), id, "a delayed job keeps the id its enqueue answered");
    assert_eq!(queue.promote_due(100).await.unwrap(), 0, "a promoted job is promoted once");
}

#[tokio::test]
async fn promote_due_moves_due_jobs_in_due_order_and_respects_its_limit() {
    let (clock, shared) = support::manual_clock();
    let queue = support::queue_with_clock("promote-order", QueueOptions::default(), shared).await;
    let now = clock_now_ms(&clock);
    for (seq, offset) in [(0u64, 30u64), (1, 10), (2, 20), (3, 60_000)] {
        queue.schedule(&job(seq), now + offset).await.unwrap();
    }
    clock.advance(Duration::from_millis(30));
    assert_eq!(queue.promote_due(2).await.unwrap(), 2);
    assert_eq!(queue.promote_due(100).await.unwrap(), 1);
    assert_eq!(seqs(&claim(&queue, "w1", 10).await), vec![1, 2, 0]);
    assert_eq!(queue.depth().await.unwrap(), Depth { in_flight: 3, delayed: 1, ..Depth::default() });
}

#[tokio::test]
async fn expired_lease_is_reclaimed_and_the_job_finishes_exactly_once() {
    let options = QueueOptions { lease: SHORT_LEASE, ..QueueOptions::default() };
    let queue = support::queue("reclaim", options).await;
    let id = queue.enqueue(&job(0)).await.unwrap();
    let held = claim(&queue, "dead-worker", 10).await;
    assert_eq!(held.len(), 1);

    // Seen through a handle with an hour's lease, so a stalled test thread cannot let the lease
    // run out before this look.
    let long_lease = QueueOptions { lease: Duration::from_secs(3600), ..QueueOptions::default() };
    let same_queue = Queue::new(queue.redis().clone(), queue.keys().queue(), long_lease, conveyor::clock::system());
    let early = same_queue.reclaim("0-0", 100).await.unwrap();
    assert_eq!((early.moved, early.dead), (0, 0), "a lease still running is not reclaimed");
    assert_eq!(queue.depth().await.unwrap(), Depth { in_flight: 1, ..Depth::default() });
    assert!(claim(&queue, "live-worker", 10).await.is_empty());

    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let late = queue.reclaim("0-0", 100).await.unwrap();
    assert_eq!((late.moved, late.dead, late.gone), (1, 0, 0), "an expired lease is reclaimed");
    assert_eq!(late.cursor, "0-0", "the scan wrapped around");
    assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 1, ..Depth::default() });
    assert_eq!(pending(&queue).await, 0, "the old entry's pending record is gone");

    let again = claim(&queue, "live-worker", 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.clone().unwrap(), Envelope { id: Some(id.to_string()), reclaims: 1, ..job(0) });
    assert_eq!(again[0].job_id(), id, "the job keeps its id");
    assert_ne!(again[0].entry_id, held[0].entry_id, "the job came back as a new entry");
    let settled = queue.settle(&with_outcome(again, Outcome::Completed)).await.unwrap();
    assert_eq!(settled, Settled { completed: 1, ..Settled::default() });
    assert_eq!(queue.audited_done().await.unwrap(), 1);
    assert_eq!(queue.depth().await.unwrap(), Depth::default());
    queue.trim().await.unwrap();
    assert_eq!(xlen(&queue, &queue.keys().ready()).await, 0);
}

/// The reclaim script reads the job's audit sequence number from its `s` field and sets its
/// bit, so a job killed by reclaim is not reported missing.
#[tokio::test]
async fn job_reclaimed_more_than_max_reclaims_times_goes_to_the_dead_letters() {
    let options = QueueOptions { lease: SHORT_LEASE, max_reclaims: 1, ..QueueOptions::default() };
    let queue = support::queue("reclaim-dead", options).await;
    let id = queue.enqueue(&job(5)).await.unwrap();

    assert_eq!(claim(&queue, "crashing-worker", 10).await.len(), 1);
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let first = queue.reclaim("0-0", 100).await.unwrap();
    assert_eq!((first.moved, first.dead), (1, 0), "the first reclaim is within max_reclaims");

    assert_eq!(claim(&queue, "crashing-worker", 10).await.len(), 1);
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let second = queue.reclaim("0-0", 100).await.unwrap();
    assert_eq!((second.moved, second.dead), (0, 1), "the second reclaim is one too many");

    assert_eq!(queue.depth().await.unwrap(), Depth { dead: 1, ..Depth::default() });
    queue.trim().await.unwrap();
    assert_eq!(xlen(&queue, &queue.keys().ready()).await, 0);
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.clone().unwrap(), Envelope { id: Some(id.to_string()), reclaims: 2, ..job(5) });
    assert!(dead[0].reason.contains("lease expired 2 times"), "reason: {}", dead[0].reason);
    assert_eq!(queue.missing(6, 10).await.unwrap(), (0..5).collect::<Vec<_>>(), "the dead job's audit bit is set");
}

/// The lease is long enough (1.5 s) that a busy machine cannot stall the test between a renewal
/// and the reclaim right after it for longer than a lease.
#[tokio::test]
async fn renewed_lease_is_not_reclaimed() {
    let lease = Duration::from_millis(1500);
    let options = QueueOptions { lease, ..QueueOptions::default() };
    let queue = support::queue("renew", options).await;
    queue.enqueue(&job(0)).await.unwrap();
    let held = claim(&queue, "slow-worker", 10).await;

    // Two leases pass while the worker renews every third of one.
    for tick in 0..6 {
        tokio::time::sleep(lease / 3).await;
        queue.renew("slow-worker", &held).await.unwrap();
        let r = queue.reclaim("0-0", 100).await.unwrap();
        assert_eq!((r.moved, r.dead), (0, 0), "tick {tick}: a renewed lease was reclaimed");
    }
    assert_eq!(queue.depth().await.unwrap(), Depth { in_flight: 1, ..Depth::default() });

    let settled = queue.settle(&with_outcome(held, Outcome::Completed)).await.unwrap();
    assert_eq!(settled, Settled { completed: 1, ..Settled::default() });
    assert_eq!(queue.audited_done().await.unwrap(), 1);
    assert_eq!(queue.depth().await.unwrap(), Depth::default());
}

#[tokio::test]
async fn poison_entry_goes_to_the_dead_letters_and_spares_its_batch() {
    let queue = support::queue("poison", QueueOptions::default()).await;
    let ready = queue.keys().ready();
    let garbage: &[u8] = b"\xc1\xff\x00not msgpack";
    queue.enqueue(&job(0)).await.unwrap();
    queue
        .redis()
        .with_conn(async |c| redis::cmd("XADD").arg(&ready).arg("*").arg("j").arg(garbage).query_async::<()>(c).await)
        .await
        .unwrap();
    queue
        .redis()
        .with_conn(async |c| redis::cmd("XADD").arg(&ready).arg("*").arg("x").arg("no job").query_async::<()>(c).await)
        .await
        .unwrap();
    queue.enqueue(&job(1)).await.unwrap();

    let claimed = claim(&queue, "w1", 10).await;
    assert_eq!(claimed.len(), 4);
    assert!(claimed[0].job.is_ok() && claimed[3].job.is_ok());
    assert!(claimed[1].job.is_err(), "garbage does not decode");
    let poison = claimed[1].job.as_ref().unwrap_err();
    assert_eq!(poison.fields, [(b"j".to_vec(), garbage.to_vec())], "the fields are kept for the dead letter");
    assert!(claimed[2].job.is_err(), "an entry without a job's fields is poison too");

    // The worker reports an undecodable entry as failed; settle kills it whatever it is told.
    let batch: Vec<(Claimed, Outcome)> = claimed
        .into_iter()
        .map(|c| {
            let outcome = match &c.job {
                Ok(_) => Outcome::Completed,
                Err(p) => Outcome::Failed(p.error.to_string()),
            };
            (c, outcome)
        })
        .collect();
    let settled = queue.settle(&batch).await.unwrap();
    assert_eq!(settled, Settled { completed: 2, dead: 2, ..Settled::default() });
    queue.trim().await.unwrap();
    assert_eq!(xlen(&queue, &ready).await, 0, "the poison entries left the stream");
    assert_eq!(queue.depth().await.unwrap(), Depth { dead: 2, ..Depth::default() });
    assert_eq!(queue.audited_done().await.unwrap(), 2, "both good jobs finished");

    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(dead[0].job.is_err(), "a dead poison entry is still no job");
    for d in &dead {
        assert!(d.reason.contains("entry has no \"n\" field"), "the reason says what is missing: {}", d.reason);
    }
}

#[tokio::test]
async fn depth_counts_each_state() {
    let options = QueueOptions { max_attempts: 1, ..QueueOptions::default() };
    let (clock, shared) = support::manual_clock();
    let queue = support::queue_with_clock("depth", options, shared).await;
    assert_eq!(queue.depth().await.unwrap(), Depth::default());

    queue.enqueue_batch(&(0..6).map(job).collect::<Vec<_>>()).await.unwrap();
    let mut claimed = claim(&queue, "w1", 3).await;
    assert_eq!(claimed.len(), 3);
    let failed = claimed.pop().unwrap();
    queue.settle(&[(failed, Outcome::Failed("no retry".into()))]).await.unwrap();
    let later = clock_now_ms(&clock) + 60_000;
    queue.schedule(&job(6), later).await.unwrap();
    queue.schedule(&job(7), later).await.unwrap();

    assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 3, in_flight: 2, delayed: 2, retrying: 0, dead: 1 });
}

#[tokio::test]
async fn reset_removes_every_key_of_its_queue_and_no_other() {
    // No retries, so a failed job leaves a dead letter at once.
    let options = QueueOptions { max_attempts: 1, ..QueueOptions::default() };
    let mine = support::queue("reset", options.clone()).await;
    let name = mine.keys().queue().to_owned();
    let redis = mine.redis().clone();
    let clock = conveyor::clock::system();
    // Neighbours whose keys look alike: a longer name, and the same name under another prefix.
    let longer = Queue::new(redis.clone(), &format!("{name}-x"), options.clone(), clock.clone());
    let other_prefix = QueueOptions { prefix: "conveyor-other".into(), ..options };
    let same_name = Queue::new(redis, &name, other_prefix, clock);

    for queue in [&mine, &longer, &same_name] {
        queue.ensure_group().await.unwrap();
        queue.enqueue_batch(&[job(0), job(1)]).await.unwrap();
        queue.schedule(&job(2), u64::MAX / 4).await.unwrap();
        let claimed = claim(queue, "w1", 2).await;
        let mut batch = with_outcome(claimed, Outcome::Completed);
        batch[1].1 = Outcome::Failed("x".into());
        queue.settle(&batch).await.unwrap();
        let run = queue.start_run().await.unwrap();
        assert_eq!(run, 1);
        queue.publish_stats(run, "instance-a", b"stats").await.unwrap();
        assert_eq!(exists(queue, &every_key(queue)).await, 6, "every kind of key is present before reset");
    }

    mine.reset().await.unwrap();

    assert_eq!(exists(&mine, &every_key(&mine)).await, 0, "reset leaves no key of the queue");
    let pattern = mine.keys().pattern();
    let leftover: Vec<String> =
        mine.redis().with_conn(async |c| redis::cmd("KEYS").arg(&pattern).query_async(c).await).await.unwrap();
    assert_eq!(leftover, Vec::<String>::new());
    for queue in [&longer, &same_name] {
        assert_eq!(exists(queue, &every_key(queue)).await, 6, "{:?} lost keys", queue.keys().ready());
        assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 0, in_flight: 0, delayed: 1, retrying: 0, dead: 1 });
        assert_eq!(queue.audited_done().await.unwrap(), 2, "one completed, one dead");
    }
}

/// Found while writing these tests: a positive block shorter than a millisecond is sent as
/// `BLOCK 0`, which Redis reads as "wait forever", so a worker configured with `block = "500us"`
/// (which scenario validation accepts) hangs on an empty queue.
#[tokio::test]
async fn claim_with_a_sub_millisecond_block_returns_on_an_empty_queue() {
    let queue = support::queue("claim-short-block", QueueOptions::default()).await;
    let mut conn = queue.redis().blocking_connection().await.unwrap();
    let claim = queue.claim(&mut conn, "w1", 10, Duration::from_micros(500));
    // Only bounds the hang the bug was: the claim returns within its 500 µs block.
    let claimed = tokio::time::timeout(Duration::from_secs(30), claim)
        .await
        .expect("a 500 µs claim on an empty queue must not block forever")
        .unwrap();
    assert!(claimed.is_empty());
}

/// With no Redis URL and no redis-server on PATH, `conveyor run` says how to install it and
/// exits 2. The binary runs with an empty PATH, so no other test's environment changes.
#[test]
fn starting_without_redis_server_on_path_names_the_install_command() {
    let empty = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .arg("run")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quick.toml"))
        .arg("--results")
        .arg(empty.path().join("results"))
        .env("PATH", empty.path())
        .env_remove("CONVEYOR_REDIS_URL")
        .current_dir(empty.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("redis-server") && stderr.contains("apt-get install"), "{stderr}");
    assert!(stderr.contains("--redis-url"), "the error names the flag to use instead: {stderr}");
}
