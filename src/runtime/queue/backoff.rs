//! How long a failed job waits before its next attempt: exponential in the attempt number,
//! capped, with "full jitter" in the upper half so retries of jobs that failed together spread
//! out instead of stampeding back at the same instant.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
/// Exponential backoff with jitter: the delay before each retry of a failed job.
pub struct Backoff {
    /// Delay before the second attempt (before jitter).
    pub base: Duration,
    /// No delay exceeds this.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_millis(100), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (0 for the first attempt):
    /// `min(max, base * 2^attempt)`, then a uniform draw from its upper half.
    pub fn delay(&self, attempt: u16, rng: &mut impl Rng) -> Duration {
        let exp = 1u32.checked_shl(u32::from(attempt.min(30))).unwrap_or(u32::MAX);
        let full = self.base.saturating_mul(exp).min(self.max);
        let half = full / 2;
        let jitter_us = rng.random_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_exponentially_within_bounds_and_caps() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for attempt in 0..10u16 {
            let full = (Duration::from_millis(100) * 2u32.pow(u32::from(attempt))).min(b.max);
            for _ in 0..100 {
                let d = b.delay(attempt, &mut rng);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} not in [{:?}, {full:?}]", full / 2);
            }
        }
        assert!(b.delay(u16::MAX, &mut rng) <= b.max);
    }
}
