//! What Redis holds of periodic (cron) entries: each entry as its schedulers last described it
//! (`{q}:cron`), and the latest firing handled of each — enqueued, or skipped as missed — (`{q}:cron:fired`, raised with
//! `ZADD GT` so a late writer never moves it back). The firings themselves are ordinary jobs
//! enqueued under an idempotency key (see `runtime::cron`).

use super::Queue;
use crate::runtime::error::Result;

/// A periodic entry as Redis knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CronEntry {
    /// Its name.
    pub name: String,
    /// Its cron expression.
    pub schedule: String,
    /// The type of the job it enqueues.
    pub job_type: String,
    /// Its policy for missed firings (`skip`, `latest`, `catch-up:<n>`).
    pub missed: String,
    /// When a scheduler last started running it (ms since the epoch).
    pub registered_ms: u64,
    /// Its latest firing handled (ms since the epoch): enqueued, or skipped as missed.
    #[serde(default)]
    pub last_fired_ms: Option<u64>,
}

impl Queue {
    /// Records `entry` (its schedule and job) for operators; `last_fired_ms` is not written.
    pub async fn register_cron(&self, entry: &CronEntry) -> Result<()> {
        let key = self.keys.cron();
        let json = serde_json::to_string(&CronEntry { last_fired_ms: None, ..entry.clone() })
            .expect("a cron entry always serializes");
        self.redis
            .with_conn(async |c| redis::cmd("HSET").arg(&key).arg(&entry.name).arg(&json).query_async::<()>(c).await)
            .await
    }

    /// The latest firing of entry `name` any scheduler handled (ms since the epoch).
    pub async fn cron_last_fired(&self, name: &str) -> Result<Option<u64>> {
        let key = self.keys.cron_fired();
        let score: Option<f64> =
            self.redis.with_conn(async |c| redis::cmd("ZSCORE").arg(&key).arg(name).query_async(c).await).await?;
        Ok(score.map(|s| s as u64))
    }

    /// Raises entry `name`'s latest firing to `at_ms` (never lowers it).
    pub async fn cron_fired(&self, name: &str, at_ms: u64) -> Result<()> {
        let key = self.keys.cron_fired();
        self.redis
            .with_conn(async |c| redis::cmd("ZADD").arg(&key).arg("GT").arg(at_ms).arg(name).query_async::<()>(c).await)
            .await
    }

    /// Every periodic entry recorded on this queue, by name, with its latest firing.
    pub async fn cron_entries(&self) -> Result<Vec<CronEntry>> {
        let (entries_key, fired_key) = (self.keys.cron(), self.keys.cron_fired());
        type Described = Vec<(String, String)>;
        type Fired = Vec<(String, f64)>;
        let (entries, fired): (Described, Fired) = self
            .redis
            .with_conn(async |c| {
                redis::pipe()
                    .cmd("HGETALL")
                    .arg(&entries_key)
                    .cmd("ZRANGE")
                    .arg(&fired_key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(c)
                    .await
            })
            .await?;
        let mut out: Vec<CronEntry> = entries
            .into_iter()
            .filter_map(|(name, json)| {
                let mut e: CronEntry = serde_json::from_str(&json).ok()?;
                e.name = name;
                Some(e)
            })
            .collect();
        for e in &mut out {
            e.last_fired_ms = fired.iter().find(|(n, _)| *n == e.name).map(|(_, s)| *s as u64);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Forgets entry `name` (its description and latest firing); false when there was none.
    pub async fn remove_cron(&self, name: &str) -> Result<bool> {
        let (entries_key, fired_key) = (self.keys.cron(), self.keys.cron_fired());
        let (removed, _): (u64, u64) = self
            .redis
            .with_conn(async |c| {
                redis::pipe()
                    .cmd("HDEL")
                    .arg(&entries_key)
                    .arg(name)
                    .cmd("ZREM")
                    .arg(&fired_key)
                    .arg(name)
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(removed > 0)
    }
}
