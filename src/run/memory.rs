//! Redis memory as a run sees it: `used_memory` from `INFO memory`, and Redis bytes per queued
//! job measured on a scratch queue (used memory before and after queueing a known number of
//! jobs of one payload size, then the queue is removed).

use crate::actors::BenchStamp;
use crate::bench_jobs::JobKind;
use crate::clock;
use crate::connection::Redis;
use crate::error::Result;
use crate::queue::{Envelope, Queue, QueueOptions};
use crate::report::BytesPerJob;

/// Jobs per pipelined call while filling the scratch queue.
const BATCH: usize = 1_000;

/// Redis `used_memory` in bytes, summed over a cluster's masters (0 when INFO is refused).
pub async fn used_memory(redis: &Redis) -> u64 {
    redis.used_memory().await.unwrap_or(0)
}

/// Bytes per queued job for each payload size, measured with `jobs` jobs on a scratch queue
/// under `prefix`.
pub async fn bytes_per_job(redis: &Redis, prefix: &str, payloads: &[usize], jobs: u64) -> Result<Vec<BytesPerJob>> {
    let options = QueueOptions { prefix: prefix.to_owned(), ..QueueOptions::default() };
    let queue = Queue::new(redis.clone(), "memory-probe", options, clock::system());
    let mut out = Vec::new();
    for &payload_bytes in payloads {
        queue.reset().await?;
        queue.ensure_group().await?;
        let before = used_memory(redis).await;
        let now = clock::now_us();
        let mut sent = 0;
        while sent < jobs {
            let n = (jobs - sent).min(BATCH as u64);
            let stamp = BenchStamp { run: 1, warmup: false };
            let batch: Vec<Envelope> = (sent..sent + n)
                .map(|seq| stamp.job(JobKind::Noop.name(), JobKind::Noop.payload(payload_bytes), seq, now))
                .collect();
            queue.enqueue_batch(&batch).await?;
            sent += n;
        }
        let after = used_memory(redis).await;
        queue.reset().await?;
        out.push(BytesPerJob { payload_bytes, jobs, bytes_per_job: after.saturating_sub(before) as f64 / jobs as f64 });
    }
    Ok(out)
}
