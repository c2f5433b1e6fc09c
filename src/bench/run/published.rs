//! What worker processes elsewhere published for a run: the coordinator merges it at the end,
//! and the sampler reads it once a second for progress and throughput over time (`conveyor
//! produce` has no worker of its own: without these it would know nothing of completions).

use crate::bench::run::RunBook;
use crate::bench::stats::Published;
use crate::runtime::error::Result;
use crate::runtime::queue::Queue;

/// Every worker process's latest publication for `run`, by instance name, but this process's
/// own (`instance`). An undecodable entry is left out with a warning.
pub async fn read(queue: &Queue, run: u32, instance: &str) -> Result<Vec<(String, Published)>> {
    let mut out = Vec::new();
    for (name, bytes) in queue.published_stats(run).await? {
        if name == instance {
            continue;
        }
        match Published::decode(&bytes) {
            Ok(p) => out.push((name, p)),
            Err(e) => tracing::warn!(instance = %name, error = %e, "ignoring undecodable worker statistics"),
        }
    }
    Ok(out)
}
