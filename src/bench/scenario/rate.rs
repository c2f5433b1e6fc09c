//! Rate plans: how fast producers send. A scenario says `rate = "max"` (closed loop), a number
//! of jobs per second, a share of the measured capacity (`"50% capacity"`), a linear ramp or a
//! list of steps:
//!
//! ```toml
//! rate = "max"
//! rate = 2000
//! rate = "50% capacity"
//! rate = { ramp = { from = 100, to = 5000, over = "10s" } }
//! rate = { steps = [{ rate = 500, for = "3s" }, { rate = "80% capacity", for = "3s" }] }
//! ```
//!
//! A plan is resolved (capacity shares turned into jobs per second) into a [`Schedule`] that a
//! producer follows: the cumulative number of jobs due after `t` is the integral of the rate,
//! and job `k` is due at the time that integral reaches `k` (its *intended* time, from which
//! latency is measured). After the last step or the end of a ramp the last rate holds.

use serde::{Deserialize, Deserializer};
use std::sync::Arc;
use std::time::Duration;

/// A rate as a scenario gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateValue {
    /// Jobs per second.
    PerSecond(f64),
    /// A share (1.0 = 100%) of the capacity a closed-loop probe measures at the start of the run.
    Capacity(f64),
}

/// How fast producers send, as a scenario gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum RatePlan {
    /// Closed loop: the next batch goes as soon as Redis acknowledged the last.
    Max,
    /// Open loop at one rate.
    Constant(RateValue),
    /// Open loop, the rate moving linearly from `from` to `to` over `over`, then holding `to`.
    Ramp {
        /// The rate when the producers start (the warm-up is part of the ramp).
        from: RateValue,
        /// The rate reached at the end of the ramp, and held after it.
        to: RateValue,
        /// How long the ramp takes.
        over: Duration,
    },
    /// Open loop, each rate held for its duration; the last one holds after its duration.
    Steps(Vec<(RateValue, Duration)>),
}

/// The send plan a producer follows, every rate in jobs per second.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Closed loop.
    Max,
    /// Open loop: jobs are due on a plan and stamped with their intended time.
    Open(OpenSchedule),
}

/// Piecewise-linear rate over time; cheap to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSchedule {
    segments: Arc<[Segment]>,
}

/// One piece of an open schedule: the rate moves linearly from `from` to `to` over `length_s`
/// seconds (the last piece lasts forever at `to`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    /// Seconds from the start of the plan.
    start_s: f64,
    length_s: f64,
    from: f64,
    to: f64,
    /// Jobs due before this segment starts.
    jobs_before: f64,
}

impl RateValue {
    /// Jobs per second, given the measured capacity (needed for [`RateValue::Capacity`]).
    pub fn per_second(self, capacity: Option<f64>) -> Result<f64, String> {
        match (self, capacity) {
            (RateValue::PerSecond(r), _) => Ok(r),
            (RateValue::Capacity(share), Some(c)) => Ok(share * c),
            (RateValue::Capacity(_), None) => {
                Err("a rate given as a share of capacity needs the capacity probe".into())
            }
        }
    }

    fn check(self) -> Result<(), String> {
        match self {
            RateValue::PerSecond(r) if !(r.is_finite() && r > 0.0) => {
                Err(format!("expected a positive number of jobs per second, got {r}"))
            }
            RateValue::Capacity(s) if !(s.is_finite() && s > 0.0) => {
                Err(format!("expected a positive share of capacity, got {}%", s * 100.0))
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for RateValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateValue::PerSecond(r) => write!(f, "{r}/s"),
            RateValue::Capacity(s) => write!(f, "{}% capacity", s * 100.0),
        }
    }
}

impl RatePlan {
    /// Checks every rate; the message says what was expected.
    pub fn check(&self) -> Result<(), String> {
        match self {
            RatePlan::Max => Ok(()),
            RatePlan::Constant(r) => r.check(),
            RatePlan::Ramp { from, to, over } => {
                from.check()?;
                to.check()?;
                if over.is_zero() { Err("expected a ramp `over` above zero".into()) } else { Ok(()) }
            }
            RatePlan::Steps(steps) => {
                if steps.is_empty() {
                    return Err("expected at least one step".into());
                }
                for (i, (r, d)) in steps.iter().enumerate() {
                    r.check().map_err(|e| format!("step {i}: {e}"))?;
                    if d.is_zero() {
                        return Err(format!("step {i}: expected `for` above zero"));
                    }
                }
                Ok(())
            }
        }
    }

    /// True when a rate depends on the measured capacity.
    pub fn needs_capacity(&self) -> bool {
        let cap = |r: &RateValue| matches!(r, RateValue::Capacity(_));
        match self {
            RatePlan::Max => false,
            RatePlan::Constant(r) => cap(r),
            RatePlan::Ramp { from, to, .. } => cap(from) || cap(to),
            RatePlan::Steps(s) => s.iter().any(|(r, _)| cap(r)),
        }
    }

    /// The highest planned rate in jobs per second (None for closed loop).
    pub fn peak(&self, capacity: Option<f64>) -> Option<f64> {
        self.schedule(capacity).ok().and_then(|s| match s {
            Schedule::Max => None,
            Schedule::Open(o) => Some(o.segments.iter().map(|s| s.from.max(s.to)).fold(0.0, f64::max)),
        })
    }

    /// Resolves capacity shares into a schedule.
    pub fn schedule(&self, capacity: Option<f64>) -> Result<Schedule, String> {
        let pieces: Vec<(f64, f64, f64)> = match self {
            RatePlan::Max => return Ok(Schedule::Max),
            RatePlan::Constant(r) => {
                let r = r.per_second(capacity)?;
                vec![(r, r, f64::INFINITY)]
            }
            RatePlan::Ramp { from, to, over } => {
                let (a, b) = (from.per_second(capacity)?, to.per_second(capacity)?);
                vec![(a, b, over.as_secs_f64()), (b, b, f64::INFINITY)]
            }
            RatePlan::Steps(steps) => {
                let mut v = Vec::with_capacity(steps.len());
                for (r, d) in steps {
                    let r = r.per_second(capacity)?;
                    v.push((r, r, d.as_secs_f64()));
                }
                if let Some(last) = v.last_mut() {
                    last.2 = f64::INFINITY;
                }
                v
            }
        };
        let mut segments = Vec::with_capacity(pieces.len());
        let (mut start_s, mut jobs_before) = (0.0, 0.0);
        for (from, to, length_s) in pieces {
            segments.push(Segment { start_s, length_s, from, to, jobs_before });
            if length_s.is_finite() {
                start_s += length_s;
                jobs_before += (from + to) / 2.0 * length_s;
            }
        }
        Ok(Schedule::Open(OpenSchedule { segments: segments.into() }))
    }
}

impl Schedule {
    /// This producer's share when `n` producers split the plan.
    pub fn share(&self, n: u64) -> Schedule {
        match self {
            Schedule::Max => Schedule::Max,
            Schedule::Open(o) => {
                let f = 1.0 / n.max(1) as f64;
                let segments = o
                    .segments
                    .iter()
                    .map(|s| Segment { from: s.from * f, to: s.to * f, jobs_before: s.jobs_before * f, ..*s })
                    .collect();
                Schedule::Open(OpenSchedule { segments })
            }
        }
    }
}

impl OpenSchedule {
    /// Jobs due (as a real number) `elapsed_us` after the start: the integral of the rate.
    fn jobs_at(&self, elapsed_us: u64) -> f64 {
        let t = elapsed_us as f64 / 1e6;
        let s = self.segment_at_time(t);
        let x = (t - s.start_s).max(0.0);
        s.jobs_before + s.from * x + s.slope() * x * x / 2.0
    }

    /// Whole jobs due `elapsed_us` after the start (job 0 is due at 0, so one more is due).
    pub fn jobs_due(&self, elapsed_us: u64) -> u64 {
        // The epsilon absorbs floating-point error, so job k is due at its own `offset_us(k)`.
        (self.jobs_at(elapsed_us) + 1e-6).floor() as u64
    }

    /// When job `k` is due, in microseconds after the start.
    pub fn offset_us(&self, k: u64) -> u64 {
        let k = k as f64;
        let s = self.segments.iter().rev().find(|s| s.jobs_before <= k).unwrap_or(&self.segments[0]);
        let need = k - s.jobs_before;
        let a = s.slope();
        // Solve from·x + a·x²/2 = need for the smallest x ≥ 0.
        let x = if a.abs() < 1e-12 {
            need / s.from
        } else {
            let disc = (s.from * s.from + 2.0 * a * need).max(0.0);
            (disc.sqrt() - s.from) / a
        };
        ((s.start_s + x.max(0.0)) * 1e6).ceil() as u64
    }

    fn segment_at_time(&self, t: f64) -> &Segment {
        self.segments.iter().rev().find(|s| s.start_s <= t).unwrap_or(&self.segments[0])
    }
}

impl Segment {
    /// Change of rate per second.
    fn slope(&self) -> f64 {
        if self.length_s.is_finite() && self.length_s > 0.0 { (self.to - self.from) / self.length_s } else { 0.0 }
    }
}

/// Parses `"max"`, a number, `"N% capacity"`, `{ ramp = {...} }` or `{ steps = [...] }`.
impl<'de> Deserialize<'de> for RatePlan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ramp {
            from: RateValue,
            to: RateValue,
            #[serde(deserialize_with = "super::duration")]
            over: Duration,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Step {
            rate: RateValue,
            #[serde(rename = "for", deserialize_with = "super::duration")]
            length: Duration,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        enum Table {
            #[serde(rename = "ramp")]
            Ramp(Ramp),
            #[serde(rename = "steps")]
            Steps(Vec<Step>),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Value(RateValue),
            Table(Table),
        }
        const EXPECTED: &str = "expected \"max\", a number of jobs per second, \"N% capacity\", \
             { ramp = { from, to, over } } or { steps = [{ rate, for }, ...] }";
        let any = serde_value(d)?;
        if any.as_str() == Some("max") {
            return Ok(RatePlan::Max);
        }
        // Give the precise message of the shape the user evidently meant.
        let parsed: Result<Any, _> = match &any {
            toml::Value::Table(_) => Table::deserialize(any.clone())
                .map(Any::Table)
                .map_err(|e| format!("{}; {EXPECTED}", e.to_string().trim())),
            _ => RateValue::deserialize(any.clone()).map(Any::Value).map_err(|e| e.to_string()),
        };
        match parsed.map_err(serde::de::Error::custom)? {
            Any::Value(v) => Ok(RatePlan::Constant(v)),
            Any::Table(Table::Ramp(r)) => Ok(RatePlan::Ramp { from: r.from, to: r.to, over: r.over }),
            Any::Table(Table::Steps(s)) => Ok(RatePlan::Steps(s.into_iter().map(|s| (s.rate, s.length)).collect())),
        }
    }
}

/// Takes the value whole (so the shape can be inspected before it is typed).
fn serde_value<'de, D: Deserializer<'de>>(d: D) -> Result<toml::Value, D::Error> {
    toml::Value::deserialize(d)
}

impl<'de> Deserialize<'de> for RateValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RateValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of jobs per second or \"N% capacity\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RateValue, E> {
                parse_capacity(s).map(RateValue::Capacity).ok_or_else(|| {
                    E::custom(format!(
                        "expected a number of jobs per second or \"max\" (or \"N% capacity\", e.g. \"50% capacity\"), got {s:?}"
                    ))
                })
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<RateValue, E> {
                Ok(RateValue::PerSecond(n as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<RateValue, E> {
                Ok(RateValue::PerSecond(n as f64))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<RateValue, E> {
                Ok(RateValue::PerSecond(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// `"50% capacity"` → 0.5.
fn parse_capacity(s: &str) -> Option<f64> {
    let pct = s.trim().strip_suffix("capacity")?.trim_end().strip_suffix('%')?;
    pct.trim().parse::<f64>().ok().map(|p| p / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(plan: RatePlan) -> OpenSchedule {
        match plan.schedule(Some(1000.0)).unwrap() {
            Schedule::Open(o) => o,
            Schedule::Max => panic!("closed"),
        }
    }

    #[test]
    fn constant_rate_spaces_jobs_evenly() {
        let s = open(RatePlan::Constant(RateValue::PerSecond(100.0)));
        assert_eq!(s.offset_us(0), 0);
        assert_eq!(s.offset_us(1), 10_000);
        assert_eq!(s.offset_us(250), 2_500_000);
        assert_eq!(s.jobs_due(2_500_000), 250);
    }

    #[test]
    fn ramp_and_steps_integrate_the_rate() {
        // 0 → 200/s over 1 s: 100 jobs in the first second, then 200/s.
        let s = open(RatePlan::Ramp {
            from: RateValue::PerSecond(0.0001),
            to: RateValue::PerSecond(200.0),
            over: Duration::from_secs(1),
        });
        assert_eq!(s.jobs_due(1_000_000), 100);
        assert!((s.offset_us(100) as i64 - 1_000_000).abs() < 50);
        assert!((s.offset_us(300) as i64 - 2_000_000).abs() < 50);
        // Half the ramp's jobs are due at 1/√2 of the way (rate grows linearly).
        assert!((s.offset_us(50) as i64 - 707_107).abs() < 100);
        let s = open(RatePlan::Steps(vec![
            (RateValue::PerSecond(100.0), Duration::from_secs(1)),
            (RateValue::Capacity(0.5), Duration::from_secs(1)),
        ]));
        assert_eq!(s.offset_us(100), 1_000_000);
        assert_eq!(s.offset_us(101), 1_002_000);
        assert_eq!(s.jobs_due(3_000_000), 100 + 1000);
        for k in 0..2000 {
            assert!(s.jobs_due(s.offset_us(k)) >= k, "job {k} not due at its own time");
        }
    }

    #[test]
    fn shares_split_the_rate() {
        let s = RatePlan::Constant(RateValue::PerSecond(1000.0)).schedule(None).unwrap().share(4);
        let Schedule::Open(o) = s else { panic!() };
        assert_eq!(o.offset_us(1), 4_000);
    }

    #[test]
    fn capacity_shares_parse() {
        assert_eq!(parse_capacity("50% capacity"), Some(0.5));
        assert_eq!(parse_capacity(" 200 %capacity"), Some(2.0));
        assert_eq!(parse_capacity("50%"), None);
        assert!(RatePlan::Constant(RateValue::Capacity(0.5)).schedule(None).is_err());
    }
}
