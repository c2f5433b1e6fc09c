//! A benchmark's bookkeeping on its queue: the run counter, and the statistics each worker
//! process publishes for a run so the producing process can merge them. Kept in the queue's own
//! keys (`run`, `stats:<run>`, see `keys.rs`), written through the queue's connection.

use crate::runtime::error::Result;
use crate::runtime::queue::Queue;

/// The run bookkeeping a benchmark keeps on a queue.
#[allow(async_fn_in_trait)]
pub trait RunBook {
    /// Starts a new benchmark run on this queue and returns its number.
    async fn start_run(&self) -> Result<u32>;
    /// Stores `instance`'s encoded statistics for `run` (worker processes publish theirs).
    async fn publish_stats(&self, run: u32, instance: &str, stats: &[u8]) -> Result<()>;
    /// Every worker process's published statistics for `run`, by instance name.
    async fn published_stats(&self, run: u32) -> Result<Vec<(String, Vec<u8>)>>;
}

impl RunBook for Queue {
    async fn start_run(&self) -> Result<u32> {
        let key = self.keys().run();
        self.redis().with_conn(async |c| redis::cmd("INCR").arg(&key).query_async(c).await).await
    }

    async fn publish_stats(&self, run: u32, instance: &str, stats: &[u8]) -> Result<()> {
        let key = self.keys().stats(run);
        self.redis()
            .with_conn(async |c| {
                redis::pipe()
                    .cmd("HSET")
                    .arg(&key)
                    .arg(instance)
                    .arg(stats)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(7 * 24 * 3600)
                    .ignore()
                    .query_async::<()>(c)
                    .await
            })
            .await
    }

    async fn published_stats(&self, run: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let key = self.keys().stats(run);
        self.redis().with_conn(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await).await
    }
}
