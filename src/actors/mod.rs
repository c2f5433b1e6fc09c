//! The four actix actors of a run. They live on one actix `System` (one event-loop thread),
//! talk in typed messages, and batch their telemetry: no actor sends a message per job.
//!
//! - [`Producer`] enqueues jobs in pipelined batches, open loop (planned rate) or closed loop.
//! - [`Worker`] claims batches, runs handlers, settles each batch in one round trip, renews
//!   leases of jobs still running, and reports batched statistics.
//! - [`Scheduler`] promotes due delayed jobs, reclaims expired leases and samples queue depth.
//! - [`Collector`] merges what the others report into the run's statistics.

mod cancel;
mod collector;
mod lifecycle;
mod observer;
mod pool;
mod producer;
mod reporter;
mod scheduler;
mod worker;

pub use cancel::{CancelBoard, SharedBoard};
pub use collector::{Collector, Counts, ProducerReport, Publisher, Snapshot, TakeCounts, TakeSnapshot, WorkerReport};
pub use lifecycle::{Join, Stop};
pub use observer::{Observer, ObserverFactory, SettledBatch, SettledJob, Settlement};
pub use pool::{PoolBuilder, WorkerPool, instance_name};
pub use producer::{End, MixEntry, Producer, ProducerPlan, producer_end};
pub use reporter::{BenchStamp, StatsReporter};
pub use scheduler::{DepthSample, Halt, Scheduler, TRIM_EVERY};
pub use worker::{Pause, REPORT_EVERY, Worker, WorkerConfig};
