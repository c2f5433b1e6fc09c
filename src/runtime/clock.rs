//! Time as conveyor measures it: wall-clock microseconds since the Unix epoch, so timestamps
//! written by one process (the producer) can be compared with those of another (a worker) on
//! the same host. Behaviour that depends on time (due dates, backoff) takes a [`Clock`] so
//! tests can move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in µs since the Unix epoch.
    fn now_us(&self) -> u64;

    /// Now, in ms since the Unix epoch.
    fn now_ms(&self) -> u64 {
        self.now_us() / 1_000
    }
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        now_us()
    }
}

/// A clock that only moves when told to; for tests of due dates and backoff.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_us: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `now_us` until it is advanced.
    pub fn at(now_us: u64) -> Self {
        Self { now_us: Arc::new(AtomicU64::new(now_us)) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now_us.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.now_us.load(Ordering::SeqCst)
    }
}

/// Shared handle to whichever clock a component uses.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Wall-clock microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// A time (ms since the epoch) as RFC 3339, UTC, as the admin command line and the console show
/// it; 0 — a time nobody recorded, such as the enqueue time of a job a producer wrote without
/// one — is `unknown`.
pub fn rfc3339_ms(ms: u64) -> String {
    if ms == 0 {
        return "unknown".into();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
