//! What a worker tells whoever watches it: every job of a batch it settled, once Redis has
//! acknowledged the batch. conveyor's own metrics do not need this (the worker exports them);
//! it is for measurements of an application's own — the benchmark's statistics are one
//! (the benchmark's `StatsReporter`).

use crate::runtime::queue::Settled;

/// How a job left the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Acknowledged as done.
    Completed,
    /// Scheduled for another attempt.
    Retried,
    /// Moved to the dead letters after running (its last attempt failed, or it failed for good).
    Dead,
    /// Cancelled (acknowledged, not retried).
    Cancelled,
    /// Moved to the dead letters without running: an entry that is not a job this worker reads,
    /// a job type it has no handler for, or a payload that does not decode.
    Refused,
}

/// One settled job, borrowed from the worker's batch.
#[derive(Debug, Clone, Copy)]
pub struct SettledJob<'a> {
    /// The job type (empty for an entry that did not decode).
    pub name: &'a str,
    /// The headers the producer attached.
    pub headers: Option<&'a [u8]>,
    /// The audit sequence number, when it has one.
    pub seq: Option<u32>,
    /// 0 for a first attempt.
    pub attempt: u16,
    /// When it was enqueued (µs since the epoch; the intended time for a paced producer).
    pub enqueued_us: u64,
    /// When its handler started (µs since the epoch); 0 when it never ran.
    pub started_us: u64,
    /// When its handler ended (µs since the epoch); 0 when it never ran.
    pub finished_us: u64,
    /// Where it went.
    pub settlement: Settlement,
}

/// One settled batch.
#[derive(Debug, Clone, Copy)]
pub struct SettledBatch<'a> {
    /// Every job of the batch, in claim order.
    pub jobs: &'a [SettledJob<'a>],
    /// What Redis said of the batch (duplicates among them).
    pub settled: Settled,
    /// When Redis acknowledged the settle (µs since the epoch).
    pub settled_us: u64,
}

/// Watches one worker. Called on the worker's own thread, between batches: keep it quick, and
/// batch anything it sends elsewhere.
pub trait Observer: 'static {
    /// A batch was settled.
    fn settled(&mut self, batch: &SettledBatch<'_>);

    /// Called after every claim (whether it found jobs or not), with `stopping` true once, as
    /// the worker ends: the place to flush what was buffered.
    fn tick(&mut self, stopping: bool) {
        let _ = stopping;
    }
}

/// Makes one observer per worker.
pub type ObserverFactory = std::sync::Arc<dyn Fn() -> Box<dyn Observer> + Send + Sync>;
