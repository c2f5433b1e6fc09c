//! Reads the coordinator cannot do without, retried while Redis is briefly away (restarted,
//! paused, or our connections killed): a fault the actors recover from must not fail the run
//! in its last second. The queue's pool reconnects between attempts.

use crate::runtime::error::Result;
use std::time::Duration;

/// Longest the coordinator keeps retrying one read before the run fails with its error.
pub(super) const PATIENCE: Duration = Duration::from_secs(30);
const FIRST_WAIT: Duration = Duration::from_millis(20);
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Runs `read` until it succeeds or [`PATIENCE`] has passed, waiting longer after each failure.
pub(super) async fn patiently<T>(what: &str, mut read: impl AsyncFnMut() -> Result<T>) -> Result<T> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut wait = FIRST_WAIT;
    loop {
        match read().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() + wait < deadline => {
                tracing::warn!(error = %e, "{what} failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_WAIT);
            }
            Err(e) => return Err(e),
        }
    }
}
