//! Faults a scenario injects into its own run: a worker process killed with SIGKILL and the
//! private redis-server killed and restarted. `conveyor run` carries them out (see
//! [`crate::bench::chaos`]) and reports how long recovery took, next to the run's lost and duplicate
//! counts.
//!
//! ```toml
//! [chaos]
//! worker_processes = 1        # `conveyor worker` processes started beside the run's own workers
//! kill_worker_at = "3s"       # SIGKILL one of them this long after the run starts
//! restart_redis_at = "6s"     # kill the private redis-server (AOF, fsync always) and start it again
//! ```

use super::duration;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The `[chaos]` table: faults `conveyor run` injects while the run goes, to show that jobs
/// survive a dead worker process and a Redis restart. Empty (the default) injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chaos {
    /// Worker processes started beside the run (each with the scenario's `[workers]`); they are
    /// what a kill hits, so the run's own workers and scheduler survive to take their jobs over.
    pub worker_processes: u32,
    /// When one worker process gets SIGKILL, from the start of the run.
    #[serde(deserialize_with = "opt_duration")]
    pub kill_worker_at: Option<Duration>,
    /// When the private redis-server is killed (SIGKILL) and started again on the same port and
    /// append-only file.
    #[serde(deserialize_with = "opt_duration")]
    pub restart_redis_at: Option<Duration>,
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl Chaos {
    /// True when no fault is planned (and no worker process is to be started).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// What is wrong, as (field, expectation).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.worker_processes > 16 {
            return Err(("chaos.worker_processes", format!("expected 0 to 16, got {}", self.worker_processes)));
        }
        if self.kill_worker_at.is_some() && self.worker_processes == 0 {
            return Err(("chaos.worker_processes", "expected at least 1 worker process to kill".into()));
        }
        for (field, at) in
            [("chaos.kill_worker_at", self.kill_worker_at), ("chaos.restart_redis_at", self.restart_redis_at)]
        {
            if at.is_some_and(|d| d.is_zero()) {
                return Err((field, "expected a time after the start, e.g. \"3s\"".into()));
            }
        }
        Ok(())
    }
}
