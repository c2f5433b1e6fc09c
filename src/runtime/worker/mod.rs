//! The workers of a queue and what runs beside them, as actix actors on one `System` (one
//! event-loop thread); they talk in typed messages and batch their telemetry.
//!
//! - [`Worker`] claims batches, runs each job with its handler, settles finished jobs in
//!   micro-batches, renews the leases of jobs still running, and tells an [`Observer`].
//! - [`Scheduler`] promotes due delayed jobs, reclaims expired leases, trims the stream and
//!   samples queue depth.
//! - [`WorkerPool`] starts and stops the workers of a queue (and a scheduler) together, and
//!   keeps their [`Board`] up to date; on a queue of one partition its workers claim one at a
//!   time (the claim gate, `gate.rs`), so a producer's batch is claimed whole, not in crumbs.

mod board;
mod gate;
pub(crate) mod lifecycle;
mod observer;
mod pool;
mod scheduler;
#[allow(clippy::module_inception)]
mod worker;

pub use board::{Board, SharedBoard};
pub use lifecycle::{Join, Stop};
pub use observer::{Observer, ObserverFactory, SettledBatch, SettledJob, Settlement};
pub use pool::{PoolBuilder, WorkerPool, instance_name};
pub use scheduler::{DepthSample, Halt, Scheduler, TRIM_EVERY};
pub use worker::{Pause, REPORT_EVERY, SETTLE_IDLE, SETTLE_WITHIN, Worker, WorkerConfig};
