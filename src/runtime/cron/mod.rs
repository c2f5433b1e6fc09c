//! Periodic jobs: a [`Periodic`] entry names a job and a cron schedule; a [`Cron`] scheduler
//! (an actor, any number of them in any number of processes) enqueues one job per firing.
//!
//! **Exactly once per firing.** A firing at time `t` (ms) of entry `name` is enqueued under the
//! idempotency key `cron:<name>:<t>` (the `enqueue_unique` script checks and adds in one step),
//! so when three schedulers all reach `t`, one job is added and the other two get its id back.
//! The key lives for the entry's grace period plus ten minutes: longer than any scheduler tries
//! a firing on time. Each firing handled (enqueued, or skipped as missed) also raises the entry's
//! latest firing in Redis (`ZADD GT`), which is where a scheduler that starts, or that wakes
//! from a stall, picks up: a skipped firing is never taken up again.
//!
//! **Missed firings** ([`Missed`]): a firing is *on time* when a scheduler reaches it within the
//! entry's grace period (default one minute) and is enqueued then. A firing no scheduler reached
//! within its grace period (every scheduler was down, or stalled) is *missed*, and the entry's
//! policy decides: [`Missed::Skip`] (the default) enqueues none of them, [`Missed::Latest`]
//! enqueues the most recent one, [`Missed::CatchUp`] the most recent `n` in order. An entry seen
//! for the first time has missed nothing. Missed firings are counted
//! (`conveyor_cron_missed_total`).
//!
//! Schedules are cron expressions in UTC with a seconds field — `sec min hour day-of-month month
//! day-of-week [year]`, e.g. `"0 */5 * * * *"` (every five minutes on the minute) — or the
//! classic five fields (`"*/5 * * * *"`), which fire at second 0.

mod scheduler;

pub use scheduler::{Cron, CronHandle};

use crate::runtime::client::Enqueue;
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::JobType;
use std::str::FromStr;
use std::time::Duration;

/// What a scheduler does with firings no scheduler enqueued within their grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// Enqueue none of them (count them): the next firing is the next on time.
    #[default]
    Skip,
    /// Enqueue the most recent missed firing once.
    Latest,
    /// Enqueue the most recent `n` missed firings, oldest first.
    CatchUp(u32),
}

impl FromStr for Missed {
    type Err = String;

    /// `skip`, `latest` or `catch-up:<n>`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "skip" => Ok(Missed::Skip),
            "latest" => Ok(Missed::Latest),
            _ => s
                .strip_prefix("catch-up:")
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .map(Missed::CatchUp)
                .ok_or_else(|| format!("expected skip, latest or catch-up:<n> (n ≥ 1), got {s:?}")),
        }
    }
}

/// The most missed firings counted after a downtime (a per-second schedule down for a year
/// would otherwise be counted one by one).
const MISSED_COUNT_LIMIT: u64 = 10_000;

/// One periodic job: its name, schedule and the job it enqueues.
#[derive(Debug, Clone)]
pub struct Periodic {
    name: String,
    expression: String,
    schedule: cron::Schedule,
    job_type: String,
    payload: Vec<u8>,
    options: Enqueue,
    missed: Missed,
    grace: Duration,
}

impl Periodic {
    /// Entry `name` enqueues `job` (with its type's default options) at every firing of
    /// `expression`. An expression that does not parse is [`Error::InvalidArgument`].
    pub fn new<J: JobType>(name: impl Into<String>, expression: &str, job: &J) -> Result<Self> {
        Ok(Self::raw(name, expression, J::NAME, crate::runtime::client::encode(job)?)?.options(J::defaults()))
    }

    /// Entry `name` enqueues a job of type `job_type` with an already encoded payload (the
    /// command line's `conveyor cron`).
    pub fn raw(name: impl Into<String>, expression: &str, job_type: &str, payload: Vec<u8>) -> Result<Self> {
        let name = name.into();
        if name.is_empty() || name.len() > 200 || name.contains(char::is_whitespace) {
            return Err(Error::InvalidArgument {
                what: "cron entry name",
                message: format!("expected 1 to 200 bytes without spaces, got {name:?}"),
            });
        }
        if job_type.is_empty() || job_type.len() > crate::runtime::queue::envelope::MAX_NAME_BYTES {
            return Err(Error::InvalidArgument {
                what: "job type",
                message: format!("expected a name of 1 to 256 bytes, got {} bytes", job_type.len()),
            });
        }
        Ok(Self {
            name,
            expression: expression.trim().to_owned(),
            schedule: parse(expression)?,
            job_type: job_type.to_owned(),
            payload,
            options: Enqueue::new(),
            missed: Missed::default(),
            grace: Duration::from_secs(60),
        })
    }

    /// What to do with missed firings (default [`Missed::Skip`]).
    pub fn missed(mut self, policy: Missed) -> Self {
        self.missed = policy;
        self
    }

    /// How late a firing may still be enqueued as on time (default one minute).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace.max(Duration::from_millis(1));
        self
    }

    /// Options of every job it enqueues (attempts, timeout, tracking...); its idempotency key is
    /// always the firing's.
    pub fn options(mut self, options: Enqueue) -> Self {
        self.options = options;
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its schedule as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The type of the job it enqueues.
    pub fn job_type(&self) -> &str {
        &self.job_type
    }

    /// Its policy for missed firings.
    pub fn missed_policy(&self) -> Missed {
        self.missed
    }

    /// The first firing strictly after `after_ms` (ms since the epoch), if the schedule has one.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after = chrono::DateTime::from_timestamp_millis(after_ms as i64)?;
        self.schedule.after(&after).next().map(|t| t.timestamp_millis() as u64)
    }

    /// The idempotency key of the firing at `at_ms`.
    pub(crate) fn firing_key(&self, at_ms: u64) -> String {
        format!("cron:{}:{at_ms}", self.name)
    }

    /// How long a firing's idempotency key holds.
    pub(crate) fn key_ttl(&self) -> Duration {
        self.grace + Duration::from_secs(600)
    }

    /// The job of the firing at `at_ms`: the entry's options, the firing's idempotency key.
    pub(crate) fn job(&self, at_ms: u64) -> (String, Vec<u8>, Enqueue) {
        let options = self.options.clone().unique_for(self.firing_key(at_ms), self.key_ttl());
        (self.job_type.clone(), self.payload.clone(), options)
    }

    /// Which firings after `after_ms` (the last one already enqueued or given up) and up to
    /// `now_ms` to enqueue, and how many were missed.
    pub(crate) fn plan(&self, after_ms: u64, now_ms: u64) -> Plan {
        let Some(from) = chrono::DateTime::from_timestamp_millis(after_ms as i64) else {
            return Plan::default();
        };
        let late_ms = now_ms.saturating_sub(self.grace.as_millis() as u64);
        let mut fire = Vec::new();
        // Missed: strictly after `after_ms`, before the grace period began; newest first.
        let mut missed = Vec::new();
        let mut missed_count = 0;
        let mut latest_missed = None;
        if late_ms > after_ms {
            let late = chrono::DateTime::from_timestamp_millis(late_ms as i64).unwrap_or(from);
            // `after(t).next_back()` walks back from `t` (exclusive).
            let keep = match self.missed {
                Missed::Skip => 0,
                Missed::Latest => 1,
                Missed::CatchUp(n) => n as usize,
            };
            for t in self.schedule.after(&late).rev() {
                let t = t.timestamp_millis() as u64;
                if t <= after_ms || missed_count == MISSED_COUNT_LIMIT {
                    break;
                }
                missed_count += 1;
                latest_missed.get_or_insert(t);
                if missed.len() < keep {
                    missed.push(t);
                }
            }
            missed.reverse();
        }
        // A firing exactly at `late_ms` (the walk back excludes it) is still on time.
        let on_time_from = late_ms.max(after_ms);
        let on_time_start = chrono::DateTime::from_timestamp_millis(on_time_from as i64 - 1).unwrap_or(from);
        for t in self.schedule.after(&on_time_start) {
            let t = t.timestamp_millis() as u64;
            if t > now_ms {
                break;
            }
            if t > after_ms {
                fire.push(t);
            }
        }
        let skipped = missed_count - missed.len() as u64;
        missed.extend(fire);
        Plan { fire: missed, missed: missed_count, skipped, latest_missed }
    }
}

/// What one look at an entry's schedule decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Firings to enqueue, oldest first (missed ones the policy keeps, then those on time).
    pub fire: Vec<u64>,
    /// Firings no scheduler reached within the grace period (at most [`MISSED_COUNT_LIMIT`]).
    pub missed: u64,
    /// Missed firings the policy does not enqueue.
    pub skipped: u64,
    /// The most recent missed firing: handled once the plan is carried out, enqueued or not.
    pub latest_missed: Option<u64>,
}

/// Parses a cron expression: six or seven fields (seconds first), or the classic five (which
/// fire at second 0).
pub fn parse(expression: &str) -> Result<cron::Schedule> {
    let fields = expression.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expression}"),
        6 | 7 => expression.to_owned(),
        n => {
            return Err(Error::InvalidArgument {
                what: "cron expression",
                message: format!(
                    "{expression:?}: expected 5 fields (min hour day month weekday), or 6 or 7 with \
                     seconds first (sec min hour day month weekday [year]); got {n}"
                ),
            });
        }
    };
    cron::Schedule::from_str(&full).map_err(|e| {
        // The crate's message draws a caret under the field on a second line; keep its words.
        let reason = e.to_string().lines().last().map(str::trim).unwrap_or_default().to_owned();
        Error::InvalidArgument {
            what: "cron expression",
            message: if reason.is_empty() || reason == "^" {
                format!("{expression:?} does not parse (a field holds a value or range cron does not know)")
            } else {
                format!("{expression:?}: {reason}")
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    /// 2026-12-01 00:00:00 UTC.
    const T0: u64 = 1_796_083_200_000;

    fn every_minute() -> Periodic {
        Periodic::raw("tick", "0 * * * * *", "t", vec![]).unwrap()
    }

    #[test]
    fn five_six_and_seven_fields_parse_and_nonsense_names_what_is_wrong() {
        for e in ["*/5 * * * *", "0 */5 * * * *", "0 0 12 * * Mon 2027"] {
            parse(e).unwrap();
        }
        for (e, says) in [("61 * * * * *", "61"), ("* *", "got 2"), ("0 0 25 * * *", "25"), ("a b c d e f", "'a'")] {
            let err = parse(e).unwrap_err().to_string();
            assert!(err.starts_with("cron expression: "), "{err}");
            assert!(err.contains(says), "{e}: {err}");
        }
    }

    #[test]
    fn on_time_firings_are_the_ones_after_the_cursor_up_to_now() {
        let p = every_minute();
        assert_eq!(p.plan(T0, T0 + MIN - 1), Plan::default());
        assert_eq!(p.plan(T0, T0 + MIN).fire, vec![T0 + MIN]);
        // Two firings inside the grace period (a short stall): both on time.
        let p = p.grace(Duration::from_secs(150));
        assert_eq!(p.plan(T0, T0 + 2 * MIN + 5).fire, vec![T0 + MIN, T0 + 2 * MIN]);
        assert_eq!(p.next_after(T0), Some(T0 + MIN));
        assert_eq!(p.next_after(T0 + 1), Some(T0 + MIN));
    }

    #[test]
    fn missed_firings_follow_the_policy() {
        // Down for ten minutes (cursor at T0, now T0 + 10 min + 10 s, grace 60 s): firings at
        // 1..=9 min are missed, 10 min is on time.
        let now = T0 + 10 * MIN + 10_000;
        let skip = every_minute().plan(T0, now);
        assert_eq!((skip.fire, skip.missed, skip.skipped), (vec![T0 + 10 * MIN], 9, 9));
        assert_eq!(skip.latest_missed, Some(T0 + 9 * MIN));
        let latest = every_minute().missed(Missed::Latest).plan(T0, now);
        assert_eq!((latest.fire, latest.skipped), (vec![T0 + 9 * MIN, T0 + 10 * MIN], 8));
        let three = every_minute().missed(Missed::CatchUp(3)).plan(T0, now);
        assert_eq!(three.fire, vec![T0 + 7 * MIN, T0 + 8 * MIN, T0 + 9 * MIN, T0 + 10 * MIN]);
        let all = every_minute().missed(Missed::CatchUp(100)).plan(T0, now);
        assert_eq!((all.fire.len(), all.skipped), (10, 0));
    }

    #[test]
    fn a_firing_exactly_at_the_end_of_its_grace_is_on_time() {
        let p = every_minute();
        assert_eq!(p.plan(T0, T0 + 2 * MIN).fire, vec![T0 + MIN, T0 + 2 * MIN]);
        assert_eq!(p.plan(T0, T0 + 2 * MIN + 1).missed, 1);
    }

    #[test]
    fn a_long_downtime_is_counted_up_to_a_limit() {
        let p = Periodic::raw("s", "* * * * * *", "t", vec![]).unwrap();
        let plan = p.plan(T0, T0 + 86_400_000);
        assert_eq!(plan.missed, MISSED_COUNT_LIMIT);
        assert_eq!(plan.fire.len(), 61, "the last minute's firings are on time");
    }

    #[test]
    fn policies_parse_from_the_command_line() {
        assert_eq!("skip".parse(), Ok(Missed::Skip));
        assert_eq!("latest".parse(), Ok(Missed::Latest));
        assert_eq!("catch-up:5".parse(), Ok(Missed::CatchUp(5)));
        assert!("catch-up:0".parse::<Missed>().is_err());
        assert!("all".parse::<Missed>().is_err());
    }
}
