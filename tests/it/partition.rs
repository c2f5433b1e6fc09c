//! A partitioned queue on one real Redis: batches spread round-robin over the partitions'
//! streams, claims serve every partition, settle/retry/reclaim stay in the job's partition,
//! the queue-wide figures (depth, audit, missing) add the partitions up, and reset clears all.

use crate::support::{self, job};
use conveyor::queue::{Depth, Enqueued, Outcome, Queue, QueueOptions, Settled};
use std::collections::BTreeMap;
use std::time::Duration;

async fn xlen(queue: &Queue, key: &str) -> u64 {
    queue.redis().with_conn(async |c| redis::cmd("XLEN").arg(key).query_async(c).await).await.expect("XLEN")
}

async fn partitioned(test: &str, partitions: u16, lease: Duration) -> Queue {
    let options = QueueOptions { partitions, lease, max_attempts: 2, ..QueueOptions::default() };
    support::queue(test, options).await
}

#[tokio::test]
async fn batches_spread_over_partitions_and_claims_serve_them_all() {
    let queue = partitioned("partition-spread", 3, Duration::from_secs(30)).await;
    assert_eq!(queue.partition_keys().len(), 3);
    assert_eq!(queue.partition_keys()[0].ready(), queue.keys().ready(), "partition 0 is the plain queue");
    for b in 0..6u64 {
        queue.enqueue_batch(&(b * 10..b * 10 + 10).map(job).collect::<Vec<_>>()).await.unwrap();
    }
    for keys in queue.partition_keys() {
        assert_eq!(xlen(&queue, &keys.ready()).await, 20, "{} got its share", keys.ready());
    }
    assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 60, ..Depth::default() });

    // Claims of 5 rotate over the partitions: every partition is served before any is emptied.
    let mut conn = queue.redis().blocking_connection().await.unwrap();
    let mut by_partition: BTreeMap<u16, usize> = BTreeMap::new();
    let mut held = Vec::new();
    for _ in 0..6 {
        let claimed = queue.claim(&mut conn, "w", 5, Duration::from_millis(20)).await.unwrap();
        assert_eq!(claimed.len(), 5);
        *by_partition.entry(claimed[0].partition).or_default() += 1;
        held.extend(claimed);
    }
    assert_eq!(by_partition, BTreeMap::from([(0, 2), (1, 2), (2, 2)]), "fair turns");
    while held.len() < 60 {
        let claimed = queue.claim(&mut conn, "w", 50, Duration::from_millis(20)).await.unwrap();
        assert!(!claimed.is_empty(), "jobs left unclaimed");
        held.extend(claimed);
    }
    assert!(queue.claim(&mut conn, "w", 50, Duration::from_millis(20)).await.unwrap().is_empty());
    queue.renew("w", &held).await.unwrap();

    // One batch spanning every partition: each job settles where it lives.
    let batch: Vec<_> = held
        .into_iter()
        .map(|c| {
            let fail = c.job.as_ref().unwrap().seq.unwrap() % 10 == 0;
            (c, if fail { Outcome::Failed("boom".into()) } else { Outcome::Completed })
        })
        .collect();
    let settled = queue.settle(&batch).await.unwrap();
    assert_eq!(settled, Settled { completed: 54, retried: 6, dead: 0, cancelled: 0, duplicates: 0 });
    assert_eq!(queue.depth().await.unwrap(), Depth { retrying: 6, ..Depth::default() });
    assert_eq!(queue.audited_done().await.unwrap(), 54);
    let missing = queue.missing(60, 100).await.unwrap();
    assert_eq!(missing, (0..6).map(|b| b * 10).collect::<Vec<_>>(), "the bitmaps are read together");

    // The retries come back in their own partitions, then finish.
    let mut promoted = 0;
    for _ in 0..100 {
        promoted += queue.promote_due(100).await.unwrap();
        if promoted == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(promoted, 6);
    let mut retried = Vec::new();
    while retried.len() < 6 {
        retried.extend(queue.claim(&mut conn, "w", 50, Duration::from_millis(20)).await.unwrap());
    }
    for c in &retried {
        let seq = c.job.as_ref().unwrap().seq.unwrap();
        assert_eq!(c.partition, ((seq / 10) % 3) as u16, "job {seq} stayed in the partition of its batch");
    }
    let done: Vec<_> = retried.into_iter().map(|c| (c, Outcome::Completed)).collect();
    assert_eq!(queue.settle(&done).await.unwrap().completed, 6);
    assert_eq!(queue.audited_done().await.unwrap(), 60);
    assert!(queue.missing(60, 100).await.unwrap().is_empty());
    assert_eq!(queue.depth().await.unwrap(), Depth::default());

    queue.reset().await.unwrap();
    for keys in queue.partition_keys() {
        for key in [keys.ready(), keys.delayed(), keys.audit_done()] {
            let n: u64 =
                queue.redis().with_conn(async |c| redis::cmd("EXISTS").arg(&key).query_async(c).await).await.unwrap();
            assert_eq!(n, 0, "{key} survived the reset");
        }
    }
}

#[tokio::test]
async fn expired_leases_are_reclaimed_in_every_partition_with_one_cursor() {
    let queue = partitioned("partition-reclaim", 2, Duration::from_millis(200)).await;
    queue.enqueue_batch(&[job(0), job(1)]).await.unwrap();
    queue.enqueue_batch(&[job(2)]).await.unwrap();
    let mut conn = queue.redis().blocking_connection().await.unwrap();
    let mut held = Vec::new();
    while held.len() < 3 {
        held.extend(queue.claim(&mut conn, "dies", 10, Duration::from_millis(20)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = queue.reclaim("0-0", 100).await.unwrap();
    assert_eq!((r.moved, r.dead), (3, 0));
    assert_eq!(r.cursor.split(',').count(), 2, "one cursor per partition: {}", r.cursor);
    let again = queue.reclaim(&r.cursor, 100).await.unwrap();
    assert_eq!(again.moved, 0);
    assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 3, ..Depth::default() });
}

#[tokio::test]
async fn a_key_keeps_its_jobs_in_one_partition_in_order() {
    let queue = partitioned("partition-keyed", 4, Duration::from_secs(30)).await;
    for seq in 0..20 {
        queue.enqueue_keyed(&job(seq), "customer-42").await.unwrap();
    }
    let mut conn = queue.redis().blocking_connection().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 20 {
        got.extend(queue.claim(&mut conn, "w", 100, Duration::from_millis(20)).await.unwrap());
    }
    let partition = got[0].partition;
    assert!(got.iter().all(|c| c.partition == partition));
    let seqs: Vec<u64> = got.iter().map(|c| u64::from(c.job.as_ref().unwrap().seq.unwrap())).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>(), "in enqueue order");

    // Idempotency keys pick their partition the same way, so a repeat is always seen.
    let first = queue.enqueue_unique(&job(100), "event-7", Duration::from_secs(60)).await.unwrap();
    for _ in 0..3 {
        let again = queue.enqueue_unique(&job(101), "event-7", Duration::from_secs(60)).await.unwrap();
        assert_eq!(again, Enqueued::Duplicate(first.id().clone()));
    }
}

#[test]
fn a_worker_refuses_a_partition_count_out_of_range() {
    for bad in ["0", "257"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_conveyor"))
            .args(["worker", "--queue", "q", "--partitions", bad, "--redis-url", "redis://127.0.0.1:1"])
            .args(["--metrics-addr", "off"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--partitions") && stderr.contains("from 1 to 256"), "{stderr}");
    }
}

/// A batch sent again to another partition after its first partition failed mid-reply leaves
/// the same jobs in two partitions: both copies run, and the audit counts each job finished once
/// and the second copy as a duplicate (summing the partitions' bitmaps counted it twice).
#[tokio::test]
async fn a_job_finished_in_two_partitions_counts_once_and_as_a_duplicate() {
    let queue = partitioned("partition-overlap", 3, Duration::from_secs(30)).await;
    let jobs: Vec<_> = (0..4).map(job).collect();
    queue.enqueue_batch_to(0, &jobs).await.unwrap();
    queue.enqueue_batch_to(2, &jobs[..2]).await.unwrap();
    let mut conn = queue.redis().blocking_connection().await.unwrap();
    let mut held = Vec::new();
    while held.len() < 6 {
        let claimed = queue.claim(&mut conn, "w", 10, Duration::from_millis(20)).await.unwrap();
        assert!(!claimed.is_empty(), "jobs left unclaimed");
        held.extend(claimed);
    }
    let batch: Vec<_> = held.into_iter().map(|c| (c, Outcome::Completed)).collect();
    let settled = queue.settle(&batch).await.unwrap();
    assert_eq!(settled.completed, 6, "each partition settles its own copy");
    assert_eq!(queue.audited_done().await.unwrap(), 4, "distinct jobs finished");
    assert_eq!(queue.audit().await.unwrap().overlap, 2, "the copies that ran in a second partition");
    assert!(queue.missing(4, 10).await.unwrap().is_empty());
}
