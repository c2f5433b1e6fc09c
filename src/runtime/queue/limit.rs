//! A queue-wide rate limit: at most `rate` jobs per second handed to workers, across every
//! worker process, with bursts of up to `burst` jobs. An operator writes it to the queue's
//! `limit` hash; workers read it with the pause flag they already poll ([`Queue::settings`]),
//! so a queue without a limit costs nothing more per claim. A limited claim takes its tokens in
//! the same script that reads the jobs (GCRA on Redis' own clock, see the `claim` script), so
//! only jobs actually handed out use tokens and no clock skew between hosts matters. On a
//! partitioned queue each partition has a bucket of its own with an even share of the limit.

use super::Queue;
use crate::runtime::error::{Error, Result};
use std::collections::HashMap;

/// Highest rate accepted (jobs per second).
pub const MAX_RATE: f64 = 10_000_000.0;

/// A rate limit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Limit {
    /// Jobs per second, above zero.
    pub per_second: f64,
    /// Jobs that may be handed out at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Limit {
    /// A limit of `per_second` with `burst` (default: a tenth of a second's worth, at least 1);
    /// an error naming what is wrong for a rate that is not a positive number or a zero burst.
    pub fn new(per_second: f64, burst: Option<u32>) -> Result<Self> {
        if !per_second.is_finite() || per_second <= 0.0 || per_second > MAX_RATE {
            return Err(Error::InvalidArgument {
                what: "rate",
                message: format!("expected a rate above 0 and at most {MAX_RATE} jobs per second, got {per_second}"),
            });
        }
        let burst = match burst {
            Some(0) => {
                return Err(Error::InvalidArgument {
                    what: "burst",
                    message: "expected a burst of at least 1 job, got 0".into(),
                });
            }
            Some(b) => b,
            None => (per_second / 10.0).ceil().max(1.0) as u32,
        };
        Ok(Self { per_second, burst })
    }

    /// Parses `200/s`, `90/m`, `1000/h` (a number of jobs per second, minute or hour).
    pub fn parse_rate(text: &str) -> std::result::Result<f64, String> {
        let expected = "expected jobs per second, minute or hour such as 200/s, 90/m or 1000/h";
        let (n, unit) = text.trim().split_once('/').ok_or_else(|| format!("{expected}, got {text:?}"))?;
        let per = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("{expected}, got {text:?}")),
        };
        let n: f64 = n.trim().parse().map_err(|_| format!("{expected}, got {text:?}"))?;
        if !n.is_finite() || n <= 0.0 {
            return Err(format!("expected a rate above 0, got {text:?}"));
        }
        Ok(n / per)
    }

    /// Microseconds between two jobs and the burst, for partition buckets that each hold
    /// `1/partitions` of the limit.
    pub(super) fn bucket_of(&self, partitions: usize) -> (u64, u32) {
        let n = partitions.max(1);
        let interval = (1e6 * n as f64 / self.per_second).round().max(1.0) as u64;
        (interval, self.burst.div_ceil(n as u32).max(1))
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/s burst {}", self.per_second, self.burst)
    }
}

/// What the workers of a queue poll: whether it is paused, its rate limit, and whether any job
/// was ever given a priority other than normal (then claims read every priority's stream).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Settings {
    /// The queue is paused.
    pub paused: bool,
    /// Its rate limit, if any.
    pub limit: Option<Limit>,
    /// Its high or low streams are in use.
    pub lanes: bool,
}

/// The field of the queue's meta hash that says high or low jobs were enqueued.
pub(super) const LANES_FIELD: &str = "lanes";

impl Queue {
    /// Sets the queue's rate limit: every worker process follows it from its next poll on.
    pub async fn set_limit(&self, limit: Limit) -> Result<()> {
        let key = self.keys.limit();
        self.redis
            .with_conn(async |c| {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("rate")
                    .arg(limit.per_second)
                    .arg("burst")
                    .arg(limit.burst)
                    .query_async::<()>(c)
                    .await
            })
            .await
    }

    /// Removes the queue's rate limit. Answers whether there was one.
    pub async fn clear_limit(&self) -> Result<bool> {
        let key = self.keys.limit();
        let n: u64 = self.redis.with_conn(async |c| redis::cmd("DEL").arg(&key).query_async(c).await).await?;
        Ok(n > 0)
    }

    /// The queue's rate limit, if it has one.
    pub async fn limit(&self) -> Result<Option<Limit>> {
        let key = self.keys.limit();
        let fields: HashMap<String, String> =
            self.redis.with_conn(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await).await?;
        Ok(limit_of(&fields))
    }

    /// Whether the queue is paused, its rate limit, and whether it uses priorities: one round
    /// trip (the keys of partition 0).
    pub async fn settings(&self) -> Result<Settings> {
        let (paused, limit, meta) = (self.keys.paused(), self.keys.limit(), self.keys.meta());
        let (paused, limit, lanes): (bool, HashMap<String, String>, Option<String>) = self
            .redis
            .with_conn(async |c| {
                redis::pipe()
                    .cmd("EXISTS")
                    .arg(&paused)
                    .cmd("HGETALL")
                    .arg(&limit)
                    .cmd("HGET")
                    .arg(&meta)
                    .arg(LANES_FIELD)
                    .query_async(c)
                    .await
            })
            .await?;
        let lanes = lanes.is_some();
        if lanes {
            self.lanes_seen();
        }
        Ok(Settings { paused, limit: limit_of(&limit), lanes })
    }
}

/// The limit a `limit` hash holds (none when it is absent or not one conveyor wrote).
fn limit_of(fields: &HashMap<String, String>) -> Option<Limit> {
    let rate = fields.get("rate")?.parse::<f64>().ok()?;
    let burst = fields.get("burst").and_then(|b| b.parse::<u32>().ok());
    Limit::new(rate, burst).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_per_second_minute_and_hour() {
        assert_eq!(Limit::parse_rate("200/s").unwrap(), 200.0);
        assert_eq!(Limit::parse_rate("90/m").unwrap(), 1.5);
        assert_eq!(Limit::parse_rate("3600/h").unwrap(), 1.0);
        for bad in ["200", "-5/s", "0/s", "fast/s", "10/d", "NaN/s", "inf/s"] {
            assert!(Limit::parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_limit_needs_a_positive_rate_and_burst_and_defaults_the_burst() {
        assert_eq!(Limit::new(200.0, None).unwrap().burst, 20);
        assert_eq!(Limit::new(0.5, None).unwrap().burst, 1);
        assert!(Limit::new(0.0, None).is_err());
        assert!(Limit::new(-1.0, None).is_err());
        assert!(Limit::new(10.0, Some(0)).is_err());
        let l = Limit::new(200.0, Some(50)).unwrap();
        assert_eq!(l.bucket_of(1), (5_000, 50));
        assert_eq!(l.bucket_of(4), (20_000, 13), "each of 4 partitions: a quarter of the rate");
    }
}
