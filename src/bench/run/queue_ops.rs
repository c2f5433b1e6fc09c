//! The `queue-ops` mode: each queue operation timed alone, one call at a time, by one client,
//! with nothing else running, so a figure is the cost of the operation and its round trip:
//!
//! - `enqueue`: one job added (`XADD`);
//! - `claim`: one job claimed (`XREADGROUP COUNT 1` on a stream that holds the others);
//! - `ack`: one completed job settled (`XACK` + the audit bit, one `MULTI`; the entry leaves the
//!   stream with the next trim, untimed here);
//! - `fail`: one failed job settled (acknowledged and scheduled for a retry with backoff);
//! - `status`: the queue's depth by state (`XLEN`, `XINFO GROUPS`, `ZCARD`, `XLEN`, pipelined).
//!
//! Afterwards the retried jobs are promoted, claimed and completed (untimed), so the audit can
//! still check that every job finished.

use crate::bench::load::{BenchStamp, Collector, ProducerReport};
use crate::bench::scenario::Scenario;
use crate::bench::stats::{Latency, ProducerStats};
use crate::runtime::clock;
use crate::runtime::error::{Error, Result};
use crate::runtime::queue::{Outcome, Queue};
use actix::Addr;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest a claim of a job known to be waiting may block.
const CLAIM_BLOCK: Duration = Duration::from_millis(100);
/// Longest the clean-up waits for retried jobs to come due.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Times every operation `scenario.queue_ops.samples` times; returns a histogram per operation.
pub async fn measure(
    queue: &Queue,
    scenario: &Scenario,
    run: u32,
    collector: &Addr<Collector>,
) -> Result<BTreeMap<String, Latency>> {
    let n = scenario.queue_ops.samples;
    let (name, payload) = scenario.jobs[0].job();
    let stamp = BenchStamp { run, warmup: false };
    let mut ops: BTreeMap<String, Latency> = BTreeMap::new();
    let mut time = |op: &str, began: Instant| {
        ops.entry(op.to_owned()).or_default().record_us(began.elapsed().as_micros() as u64);
    };

    for seq in 0..n {
        let now = clock::now_us();
        let job = stamp.job(&name, payload.clone(), seq, now);
        let began = Instant::now();
        queue.enqueue(&job).await?;
        time("enqueue", began);
    }
    collector.do_send(ProducerReport { stats: ProducerStats { produced: n, ..Default::default() } });

    let mut conn = queue.redis().blocking_connection().await?;
    let mut claimed = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let began = Instant::now();
        let mut got = queue.claim(&mut conn, "queue-ops", 1, CLAIM_BLOCK).await?;
        time("claim", began);
        claimed.push(got.pop().ok_or_else(|| Error::InvalidArgument {
            what: "queue-ops",
            message: "a claim found no job although one was waiting".into(),
        })?);
    }

    for (i, c) in claimed.into_iter().enumerate() {
        let (op, outcome) =
            if i % 2 == 0 { ("ack", Outcome::Completed) } else { ("fail", Outcome::Failed("queue-ops".into())) };
        let began = Instant::now();
        queue.settle(&[(c, outcome)]).await?;
        time(op, began);
    }

    for _ in 0..n {
        let began = Instant::now();
        queue.depth().await?;
        time("status", began);
    }

    // Promote, claim and complete the jobs `fail` sent to a retry, until all `n` finished.
    let deadline = Instant::now() + CLEANUP_TIMEOUT;
    while !queue.finished_at_least(n).await? && Instant::now() < deadline {
        queue.promote_due(1_000).await?;
        let batch = queue.claim(&mut conn, "queue-ops", 1_000, Duration::from_millis(20)).await?;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let settled: Vec<_> = batch.into_iter().map(|c| (c, Outcome::Completed)).collect();
        queue.settle(&settled).await?;
    }
    Ok(ops)
}
