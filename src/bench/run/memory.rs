//! Redis memory as a run sees it: `used_memory` from `INFO memory`, and Redis bytes per queued
//! job measured on a scratch queue (used memory before and after queueing a known number of
//! jobs of one payload size, then the queue is removed).

use crate::bench::jobs::JobKind;
use crate::bench::load::BenchStamp;
use crate::bench::report::BytesPerJob;
use crate::runtime::clock;
use crate::runtime::connection::Redis;
use crate::runtime::error::Result;
use crate::runtime::queue::{Envelope, Queue, QueueOptions};

/// Jobs per pipelined call while filling the scratch queue.
const BATCH: usize = 1_000;

/// Redis `used_memory` in bytes, summed over a cluster's masters (0 when INFO is refused).
pub async fn used_memory(redis: &Redis) -> u64 {
    redis.used_memory().await.unwrap_or(0)
}

/// Bytes per queued job for each payload size, measured with `jobs` noop jobs on a scratch
/// queue under `prefix`.
pub async fn bytes_per_job(redis: &Redis, prefix: &str, payloads: &[usize], jobs: u64) -> Result<Vec<BytesPerJob>> {
    let mut out = Vec::new();
    for &payload_bytes in payloads {
        let payload = JobKind::Noop.payload(payload_bytes);
        let bytes_per_job = bytes_per_queued_job(redis, prefix, JobKind::Noop.name(), &payload, jobs).await?;
        out.push(BytesPerJob { payload_bytes, jobs, bytes_per_job });
    }
    Ok(out)
}

/// Waits (up to a few seconds) until Redis has freed what `UNLINK` handed its background
/// thread: an earlier probe's queue still being freed would make this probe's growth look small.
async fn settle_lazy_frees(redis: &Redis) {
    for _ in 0..100 {
        let pending = redis.info("memory").await.ok().and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("lazyfree_pending_objects:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        if pending.is_none_or(|n| n == 0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Redis `used_memory` growth per job for `jobs` benchmark jobs of type `name` with `payload`
/// (stamped and audited as the benchmark sends them), queued on a scratch queue under `prefix`
/// that is removed after.
pub async fn bytes_per_queued_job(redis: &Redis, prefix: &str, name: &str, payload: &[u8], jobs: u64) -> Result<f64> {
    let options = QueueOptions { prefix: prefix.to_owned(), ..QueueOptions::default() };
    let queue = Queue::new(redis.clone(), "memory-probe", options, clock::system());
    queue.reset().await?;
    settle_lazy_frees(redis).await;
    queue.ensure_group().await?;
    let before = used_memory(redis).await;
    let now = clock::now_us();
    let stamp = BenchStamp { run: 1, warmup: false };
    let mut sent = 0;
    while sent < jobs {
        let n = (jobs - sent).min(BATCH as u64);
        let batch: Vec<Envelope> = (sent..sent + n).map(|seq| stamp.job(name, payload.to_vec(), seq, now)).collect();
        queue.enqueue_batch(&batch).await?;
        sent += n;
    }
    let after = used_memory(redis).await;
    queue.reset().await?;
    Ok(after.saturating_sub(before) as f64 / jobs as f64)
}
