//! conveyor: an actor-based job-queue runtime over Redis Streams, with built-in benchmark scenarios.
//!
//! # Map of the architecture
//!
//! ```text
//!   scenario.toml ──► scenario ──► run::Coordinator ─────────────── result (JSON + summary)
//!                                     │ starts, walks phases, stops        ▲
//!        ┌────────────────┬───────────┴─────┬──────────────────┐         │
//!        ▼                ▼                 ▼                  ▼         │
//!   actors::Producer  actors::Worker ×N  actors::Scheduler  actors::Collector
//!   (open/closed loop  (claim batch, run,  (promote due,     (merges batched
//!    pipelined XADD)    settle in one trip) reclaim, depth)   HDR histograms)
//!        │                ▲     │             │                  ▲
//!        ▼                │     ▼             ▼                  │ WorkerReport (batched)
//!   ┌──────────────────── queue::Queue (one Redis Stream per queue) ─────────────────┐
//!   │ keys.rs: every key · scripts.rs: every Lua script · job.rs: the wire format     │
//!   └──────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! - [`queue`] owns everything that touches Redis for a queue: keys, scripts, the job codec,
//!   backoff, and the exact-delivery audit bitmap.
//! - [`actors`] holds the four actix actors; they talk in typed messages and batch telemetry.
//! - [`run`] is the coordinator: it starts the actors for a scenario, walks warm-up → measure →
//!   drain, handles Ctrl-C, and builds the [`report::RunResult`].
//! - [`redis_server`] starts a private `redis-server` when no URL is configured (and in tests).
//! - [`connection`] talks to one Redis or to a Redis Cluster (`redis+cluster://`) behind one
//!   connection type; [`redis_cluster`] starts a private loopback cluster (tests, measurements).
//! - [`cli`] is the command line; `main.rs` only calls [`cli::main`].

pub mod acl;
pub mod actors;
pub mod bench;
pub mod bench_jobs;
pub mod ceiling;
pub mod chaos;
pub mod cli;
pub mod client;
pub mod clock;
pub mod connection;
pub mod error;
pub mod eviction;
pub mod handler;
pub mod jitter;
pub mod latency;
pub mod profile;
pub mod queue;
pub mod redis_cluster;
pub mod redis_server;
pub mod report;
pub mod run;
pub mod scenario;
pub mod settings;
pub mod stats;
pub mod process;
pub mod system;
pub mod telemetry;
pub mod timer;

pub use actors::{WorkerConfig, WorkerPool};
pub use client::{Client, Enqueue};
pub use error::{Error, Result};
pub use handler::{JobContext, JobError, JobOutput, JobType, Json, Registry};
pub use queue::{Enqueued, JobId, Queue, QueueOptions};
