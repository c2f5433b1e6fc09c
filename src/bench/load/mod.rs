//! The benchmark's load and its bookkeeping, as actix actors beside the runtime's workers:
//!
//! - [`Producer`] enqueues jobs in pipelined batches, open loop (planned rate) or closed loop,
//!   each stamped with its intended time, its run and whether it belongs to the warm-up.
//! - [`StatsReporter`] is the benchmark's observer of a worker: it turns settled jobs into the
//!   run's statistics and reports them to the collector in batches.
//! - [`Collector`] merges what producers and reporters send into the run's statistics (and, in a
//!   worker-only process, publishes them for the producing process).

mod collector;
mod producer;
mod reporter;

pub use collector::{Collector, Counts, ProducerReport, Publisher, Snapshot, TakeCounts, TakeSnapshot, WorkerReport};
pub use producer::{End, MixEntry, Producer, ProducerPlan, Sink, producer_end};
pub use reporter::{BenchStamp, StatsReporter};
