//! Every metric conveyor exports: its name, HELP text and unit, in one place. Names follow
//! Prometheus conventions (prefix `conveyor_`, base units, `_seconds`, `_total`); labels are
//! bounded: `queue`, `role`, `scenario`, `phase`, `outcome`, `state`, `operation`, `priority` (high, normal, low), `entry` (a
//! periodic entry's name: the application's few), never a job id.

use metrics::Unit;

/// Histogram bucket boundaries in seconds: five a decade (1, 1.5, 2.5, 4, 6) from 100 µs to
/// ten minutes, so `histogram_quantile` lands within a bucket of the HDR percentiles a run
/// reports, from a noop job to a long soak stall.
pub const BUCKETS: &[f64] = &[
    0.0001, 0.00015, 0.00025, 0.0004, 0.0006, //
    0.001, 0.0015, 0.0025, 0.004, 0.006, //
    0.01, 0.015, 0.025, 0.04, 0.06, //
    0.1, 0.15, 0.25, 0.4, 0.6, //
    1.0, 1.5, 2.5, 4.0, 6.0, //
    10.0, 15.0, 25.0, 40.0, 60.0, //
    100.0, 150.0, 250.0, 400.0, 600.0,
];

// Counters.
pub const JOBS_ENQUEUED: &str = "conveyor_jobs_enqueued_total";
pub const JOBS_STARTED: &str = "conveyor_jobs_started_total";
pub const JOBS_COMPLETED: &str = "conveyor_jobs_completed_total";
pub const JOBS_RETRIED: &str = "conveyor_jobs_retried_total";
pub const JOBS_DEAD: &str = "conveyor_jobs_dead_total";
pub const JOBS_DUPLICATED: &str = "conveyor_jobs_duplicated_total";
pub const JOBS_RECLAIMED: &str = "conveyor_jobs_reclaimed_total";
pub const JOBS_PROMOTED: &str = "conveyor_jobs_promoted_total";
pub const REDIS_ERRORS: &str = "conveyor_redis_errors_total";
pub const CRON_FIRINGS: &str = "conveyor_cron_firings_total";
pub const CRON_MISSED: &str = "conveyor_cron_missed_total";
pub const RATE_LIMITED_WAITS: &str = "conveyor_rate_limited_waits_total";

// Histograms. The three job stages are kept as bucket counts by `histograms.rs` (they arrive
// as HDR histograms of many jobs); Redis operations go through the recorder, one sample a call.
pub const ENQUEUE_TO_START: &str = "conveyor_job_enqueue_to_start_seconds";
pub const START_TO_COMPLETE: &str = "conveyor_job_start_to_complete_seconds";
pub const END_TO_END: &str = "conveyor_job_end_to_end_seconds";
pub const REDIS_OPERATION: &str = "conveyor_redis_operation_duration_seconds";

// Gauges.
pub const QUEUE_DEPTH: &str = "conveyor_queue_depth";
pub const WAITING_BY_PRIORITY: &str = "conveyor_queue_waiting_by_priority";
pub const OLDEST_WAITING_AGE: &str = "conveyor_queue_oldest_waiting_age_seconds";
pub const JOBS_IN_FLIGHT: &str = "conveyor_jobs_in_flight";
pub const WORKERS: &str = "conveyor_workers";
pub const SCHEDULE_LAG: &str = "conveyor_producer_schedule_lag_seconds";
pub const QUEUE_PAUSED: &str = "conveyor_queue_paused";
pub const WORKER_PROCESSES: &str = "conveyor_worker_processes";
pub const CRON_LAST_FIRED: &str = "conveyor_cron_last_fired_timestamp_seconds";
pub const BUILD_INFO: &str = "conveyor_build_info";
pub const SCENARIO_INFO: &str = "conveyor_scenario_info";

/// The job-stage histograms: name and HELP text.
pub const JOB_HISTOGRAMS: [(&str, &str); 3] = [
    (
        ENQUEUE_TO_START,
        "Time a measured job waited: from its intended enqueue time (open loop: when the plan said \
         it should be sent) to the start of its handler.",
    ),
    (START_TO_COMPLETE, "Time a measured job's handler ran."),
    (
        END_TO_END,
        "Time from a measured job's intended enqueue time to its completion being settled in Redis \
         (successful jobs only).",
    ),
];

/// Tells the recorder the HELP text and unit of every metric it renders.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(JOBS_ENQUEUED, Unit::Count, "Jobs acknowledged by Redis on enqueue (warm-up included).");
    describe_counter!(JOBS_STARTED, Unit::Count, "Jobs whose handler started (every attempt, warm-up included).");
    describe_counter!(
        JOBS_COMPLETED,
        Unit::Count,
        "Jobs whose handler finished and whose outcome was settled in Redis, by outcome: success \
         (acknowledged and deleted) or failure (retried later or moved to the dead letters)."
    );
    describe_counter!(JOBS_RETRIED, Unit::Count, "Failed jobs scheduled for another attempt with backoff.");
    describe_counter!(
        JOBS_DEAD,
        Unit::Count,
        "Jobs moved to the dead letters: last attempt failed, undecodable, or reclaimed too often."
    );
    describe_counter!(
        JOBS_DUPLICATED,
        Unit::Count,
        "Jobs settled although the audit says they had finished before (at-least-once redelivery)."
    );
    describe_counter!(
        JOBS_RECLAIMED,
        Unit::Count,
        "Jobs taken back from a worker that stopped renewing its lease and handed out again."
    );
    describe_counter!(JOBS_PROMOTED, Unit::Count, "Delayed or retrying jobs moved to the ready stream when due.");
    describe_counter!(REDIS_ERRORS, Unit::Count, "Redis calls that failed, by the role that made them.");
    describe_counter!(
        CRON_FIRINGS,
        Unit::Count,
        "Periodic jobs this process's cron scheduler enqueued, by entry (a firing another scheduler \
         enqueued first is not counted here)."
    );
    describe_counter!(
        CRON_MISSED,
        Unit::Count,
        "Firings of a periodic entry no scheduler reached within its grace period, by entry (whether \
         its missed-firing policy enqueued them or not)."
    );
    describe_counter!(
        RATE_LIMITED_WAITS,
        Unit::Count,
        "Times a worker of this process waited for the queue's rate limit before it could claim."
    );
    describe_histogram!(
        REDIS_OPERATION,
        Unit::Seconds,
        "Duration of one Redis round trip by operation: enqueue (one pipelined batch), claim \
         (XREADGROUP that returned jobs; includes waiting for the first), settle (one batch), renew, \
         promote, reclaim, depth."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Jobs in the queue by state: waiting (not yet claimed), in_flight (claimed, not settled), \
         delayed (waiting for a due time), dead (dead letters). Sampled every second."
    );
    describe_gauge!(
        WAITING_BY_PRIORITY,
        Unit::Count,
        "Jobs waiting to be claimed by priority (high, normal, low), as conveyor exporter reads them."
    );
    describe_gauge!(
        OLDEST_WAITING_AGE,
        Unit::Seconds,
        "Age of the oldest job waiting to be claimed (0 when none waits). Sampled every second."
    );
    describe_gauge!(JOBS_IN_FLIGHT, Unit::Count, "Jobs held by this process's workers right now.");
    describe_gauge!(QUEUE_PAUSED, "1 while the queue is paused (its workers claim nothing), else 0.");
    describe_gauge!(
        WORKER_PROCESSES,
        Unit::Count,
        "Worker processes whose heartbeat holds, as this process's scheduler (or conveyor exporter) \
         last counted them."
    );
    describe_gauge!(
        CRON_LAST_FIRED,
        Unit::Seconds,
        "When a periodic entry's latest firing was due (Unix time), as conveyor exporter reads it."
    );
    describe_gauge!(
        WORKERS,
        Unit::Count,
        "Worker actors in this process by state: busy (holding a batch) or idle (waiting for work)."
    );
    describe_gauge!(
        SCHEDULE_LAG,
        Unit::Seconds,
        "How far behind its open-loop plan the producer was when it sent its latest batches \
         (largest in the last report; 0 for a closed loop)."
    );
    describe_gauge!(BUILD_INFO, "Always 1; labels say which conveyor this is.");
    describe_gauge!(
        SCENARIO_INFO,
        "1 for the scenario, queue, role and phase this process is in now, 0 for phases it left."
    );
}
