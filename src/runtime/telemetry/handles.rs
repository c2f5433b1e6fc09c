//! Metric handles for each actor, registered once with their labels so that recording is a
//! plain atomic update: [`JobMetrics`] for the collector (per report), [`WorkerMetrics`] for a
//! worker's loop (per batch), [`SchedulerMetrics`] for the scheduler (per tick).

use super::catalog::*;
use super::job_histograms;
use crate::runtime::latency::Latency;
use crate::runtime::queue::{Depth, Reclaimed};
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use std::time::Duration;

/// Counts a failed Redis call made by `role` (`worker`, `producer`, `scheduler`).
pub fn redis_error(role: &'static str) {
    counter!(REDIS_ERRORS, "role" => role).increment(1);
}

/// Counts `jobs` jobs Redis accepted onto `queue` (every enqueue path calls this once per call).
pub fn jobs_enqueued(queue: &str, jobs: u64) {
    counter!(JOBS_ENQUEUED, "queue" => queue.to_owned()).increment(jobs);
}

/// The histogram of one Redis operation on `queue` (`enqueue`, `claim`, `settle`, ...).
pub fn redis_operation(queue: &str, operation: &'static str) -> Histogram {
    histogram!(REDIS_OPERATION, "queue" => queue.to_owned(), "operation" => operation)
}

/// What a worker counted and measured of the jobs it settled since it last exported them.
#[derive(Debug, Clone, Default)]
pub struct JobTally {
    /// From the job's enqueue time to its handler's start.
    pub enqueue_to_start: Latency,
    /// The handler's run.
    pub start_to_complete: Latency,
    /// From the job's enqueue time to Redis acknowledging its settle (completed jobs).
    pub end_to_end: Latency,
    /// Jobs whose handler started.
    pub started: u64,
    /// Jobs settled as completed.
    pub completed: u64,
    /// Jobs scheduled for another attempt.
    pub retried: u64,
    /// Jobs moved to the dead letters.
    pub dead: u64,
    /// Jobs that had finished before (their audit bit was set).
    pub duplicates: u64,
}

impl JobTally {
    /// Nothing counted yet.
    pub fn is_empty(&self) -> bool {
        self.started + self.completed + self.retried + self.dead + self.duplicates == 0
    }
}

/// What a worker exports of the jobs it ran, once per batch of settled jobs.
#[derive(Debug, Clone)]
pub struct JobMetrics {
    queue: String,
    started: Counter,
    succeeded: Counter,
    failed: Counter,
    retried: Counter,
    dead: Counter,
    duplicated: Counter,
}

impl JobMetrics {
    /// The handles of `queue`'s job metrics.
    pub fn new(queue: &str) -> Self {
        let q = || queue.to_owned();
        if let Some(h) = job_histograms() {
            h.register(queue);
        }
        Self {
            queue: q(),
            started: counter!(JOBS_STARTED, "queue" => q()),
            succeeded: counter!(JOBS_COMPLETED, "queue" => q(), "outcome" => "success"),
            failed: counter!(JOBS_COMPLETED, "queue" => q(), "outcome" => "failure"),
            retried: counter!(JOBS_RETRIED, "queue" => q()),
            dead: counter!(JOBS_DEAD, "queue" => q()),
            duplicated: counter!(JOBS_DUPLICATED, "queue" => q()),
        }
    }

    /// Exports a worker's tally: its counts, and its HDR histograms as bucket counts.
    pub fn export(&self, t: &JobTally) {
        self.started.increment(t.started);
        self.succeeded.increment(t.completed);
        self.failed.increment(t.retried + t.dead);
        self.retried.increment(t.retried);
        self.dead.increment(t.dead);
        self.duplicated.increment(t.duplicates);
        if let Some(h) = job_histograms() {
            h.add(0, &self.queue, &t.enqueue_to_start);
            h.add(1, &self.queue, &t.start_to_complete);
            h.add(2, &self.queue, &t.end_to_end);
        }
    }
}

/// Counts one wait of a worker of `queue` for its rate limit.
pub fn rate_limited(queue: &str) {
    counter!(RATE_LIMITED_WAITS, "queue" => queue.to_owned()).increment(1);
}

/// Says whether `queue` is paused.
pub fn queue_paused(queue: &str, paused: bool) {
    gauge!(QUEUE_PAUSED, "queue" => queue.to_owned()).set(if paused { 1.0 } else { 0.0 });
}

/// Counts one firing of periodic entry `entry` this process enqueued on `queue`.
pub fn cron_fired(queue: &str, entry: &str) {
    counter!(CRON_FIRINGS, "queue" => queue.to_owned(), "entry" => entry.to_owned()).increment(1);
}

/// Counts `n` firings of periodic entry `entry` no scheduler reached in time.
pub fn cron_missed(queue: &str, entry: &str, n: u64) {
    counter!(CRON_MISSED, "queue" => queue.to_owned(), "entry" => entry.to_owned()).increment(n);
}

/// How many worker processes of `queue` are alive.
pub fn worker_processes(queue: &str, n: usize) {
    gauge!(WORKER_PROCESSES, "queue" => queue.to_owned()).set(n as f64);
}

/// The gauge of how far behind its plan a paced producer of `queue` sends (seconds).
pub fn schedule_lag(queue: &str) -> Gauge {
    gauge!(SCHEDULE_LAG, "queue" => queue.to_owned())
}

/// A worker's gauges and Redis timings; changed once per batch.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    in_flight: Gauge,
    busy: Gauge,
    idle: Gauge,
    claim: Histogram,
    settle: Histogram,
}

impl WorkerMetrics {
    /// Registers one more (idle) worker of `queue` in this process.
    pub fn new(queue: &str) -> Self {
        let m = Self {
            in_flight: gauge!(JOBS_IN_FLIGHT, "queue" => queue.to_owned()),
            busy: gauge!(WORKERS, "queue" => queue.to_owned(), "state" => "busy"),
            idle: gauge!(WORKERS, "queue" => queue.to_owned(), "state" => "idle"),
            claim: redis_operation(queue, "claim"),
            settle: redis_operation(queue, "settle"),
        };
        m.idle.increment(1.0);
        // Exported from the start (at 0), so a dashboard shows a queue's waits before the first.
        counter!(RATE_LIMITED_WAITS, "queue" => queue.to_owned()).increment(0);
        m
    }

    /// The worker claimed `jobs` jobs (more than none) in a call that took `took`; it held
    /// none before when `was_idle`.
    pub fn claimed(&self, jobs: usize, took: Duration, was_idle: bool) {
        self.claim.record(took);
        self.in_flight.increment(jobs as f64);
        if was_idle {
            self.idle.decrement(1.0);
            self.busy.increment(1.0);
        }
    }

    /// The worker settled (or gave up) `jobs` jobs; settling took `took`; it holds none now
    /// when `now_idle`.
    pub fn settled(&self, jobs: usize, took: Duration, now_idle: bool) {
        self.settle.record(took);
        self.in_flight.decrement(jobs as f64);
        if now_idle {
            self.busy.decrement(1.0);
            self.idle.increment(1.0);
        }
    }

    /// The worker's loop ended.
    pub fn stopped(&self) {
        self.idle.decrement(1.0);
    }
}

/// The scheduler's view of a queue: depth by state, oldest waiting job, and its duties.
#[derive(Debug, Clone)]
pub struct SchedulerMetrics {
    waiting: Gauge,
    in_flight: Gauge,
    delayed: Gauge,
    retrying: Gauge,
    dead_letters: Gauge,
    oldest_waiting_age: Gauge,
    promoted: Counter,
    reclaimed: Counter,
    dead: Counter,
    promote: Histogram,
    reclaim: Histogram,
    trim: Histogram,
    depth: Histogram,
}

impl SchedulerMetrics {
    /// The handles of `queue`'s scheduler metrics.
    pub fn new(queue: &str) -> Self {
        let q = || queue.to_owned();
        Self {
            waiting: gauge!(QUEUE_DEPTH, "queue" => q(), "state" => "waiting"),
            in_flight: gauge!(QUEUE_DEPTH, "queue" => q(), "state" => "in_flight"),
            delayed: gauge!(QUEUE_DEPTH, "queue" => q(), "state" => "delayed"),
            retrying: gauge!(QUEUE_DEPTH, "queue" => q(), "state" => "retrying"),
            dead_letters: gauge!(QUEUE_DEPTH, "queue" => q(), "state" => "dead"),
            oldest_waiting_age: gauge!(OLDEST_WAITING_AGE, "queue" => q()),
            promoted: counter!(JOBS_PROMOTED, "queue" => q()),
            reclaimed: counter!(JOBS_RECLAIMED, "queue" => q()),
            dead: counter!(JOBS_DEAD, "queue" => q()),
            promote: redis_operation(queue, "promote"),
            reclaim: redis_operation(queue, "reclaim"),
            trim: redis_operation(queue, "trim"),
            depth: redis_operation(queue, "depth"),
        }
    }

    /// A promote call moved `jobs` jobs in `took`.
    pub fn promoted(&self, jobs: u64, took: Duration) {
        self.promote.record(took);
        self.promoted.increment(jobs);
    }

    /// A reclaim call did `r` in `took`.
    pub fn reclaimed(&self, r: &Reclaimed, took: Duration) {
        self.reclaim.record(took);
        self.reclaimed.increment(r.moved);
        self.dead.increment(r.dead);
    }

    /// A trim call took `took`.
    pub fn trimmed(&self, took: Duration) {
        self.trim.record(took);
    }

    /// A depth sample (and the oldest waiting job's age, when it could be read).
    pub fn sampled(&self, depth: &Depth, oldest_waiting_age: Option<Duration>, took: Duration) {
        self.depth.record(took);
        self.waiting.set(depth.waiting as f64);
        self.in_flight.set(depth.in_flight as f64);
        self.delayed.set(depth.delayed as f64);
        self.retrying.set(depth.retrying as f64);
        self.dead_letters.set(depth.dead as f64);
        if let Some(age) = oldest_waiting_age {
            self.oldest_waiting_age.set(age.as_secs_f64());
        }
    }
}
