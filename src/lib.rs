//! conveyor: a job-queue runtime over Redis Streams for an application's own jobs, with a
//! benchmark suite that measures it — and any queue — honestly.
//!
//! ```
//! use conveyor::{Client, JobContext, JobError, JobType, Queue, QueueOptions, Registry, WorkerPool};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail {
//!     to: String,
//! }
//!
//! impl JobType for SendEmail {
//!     const NAME: &'static str = "email.send";
//! }
//!
//! async fn send_email(job: SendEmail, ctx: JobContext) -> Result<(), JobError> {
//!     println!("job {} (attempt {}): mail to {}", ctx.id, ctx.attempt, job.to);
//!     Ok(())
//! }
//!
//! # fn main() -> conveyor::Result<()> {
//! # let server = conveyor::testkit::redis_server::RedisServer::start(Default::default())?;
//! # let url = server.url();
//! actix_rt::System::new().block_on(async {
//!     let redis = conveyor::connection::Redis::connect(&url).await?; // e.g. "redis://127.0.0.1:6379"
//!     let queue = Queue::new(redis, "emails", QueueOptions::default(), conveyor::clock::system());
//!     let pool = WorkerPool::builder(queue.clone(), Registry::new().handle(send_email)).start().await?;
//!
//!     let client = Client::new(queue.clone());
//!     let id = client.enqueue(&SendEmail { to: "a@example.com".into() }).await?;
//!     println!("enqueued {id}");
//! #   while queue.depth().await? != conveyor::queue::Depth::default() {
//! #       tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! #   }
//!     pool.shutdown().await; // stop claiming, finish and settle what is held
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Map of the architecture
//!
//! Two houses with one door: the [`runtime`] is what an application uses; the [`bench`](mod@bench) uses the
//! runtime the way an application would, and the runtime never imports it. The [`cli`] is the
//! door over both; [`testkit`] starts private Redis deployments.
//!
//! ```text
//!  application ─► Client ──XADD──► queue (Redis Streams) ◄──claim / settle── Worker ×N ─► handlers
//!                                     ▲                                        │ Observer
//!                                     └── promote · reclaim · trim ── Scheduler │
//!  bench:  scenario.toml ─► run (coordinator) ─► Producer (load) ───────────────┘
//!                                 └─► Collector ◄── StatsReporter ─► report (JSON, Markdown, HTML)
//!          other queues: Producer ─► driver (stdin/stdout JSON) ─► BullMQ, Celery, RQ, Dramatiq
//!                        ledger (audit, latency) ◄── records ◄── their workers
//! ```
//!
//! - [`runtime::handler`]: job types, handlers, the registry; [`runtime::client`]: enqueueing,
//!   status, cancellation, events; [`runtime::worker`]: workers, scheduler, pool;
//!   [`runtime::queue`]: every Redis operation of a queue (keys, scripts, the wire format of
//!   `docs/wire-format.md`); [`runtime::connection`]: one server or a cluster.
//! - [`bench::scenario`], [`bench::run`], [`bench::report`], [`bench::load`], [`bench::probe`],
//!   [`bench::chaos`], [`bench::benchmark`] (`conveyor bench`), [`bench::driver`] (other queues
//!   under the same harness, `docs/drivers.md`).
//! - [`console`]: the web console (actix-web, server-rendered), on [`Admin`] alone.
//! - [`cli`]: the command line; `main.rs` only calls [`cli::main`], and an application's own binary
//!   calls [`cli::main_with`] with its handlers.
//!
//! Features: `cli` (the default) brings the command line with `bench` and `console`; without
//! default features the crate is the runtime and the test kit, for an application that only
//! enqueues and runs jobs.

#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "console")]
pub mod console;
pub mod runtime;
pub mod testkit;

pub use runtime::admin::Admin;
pub use runtime::cancel::CancelToken;
pub use runtime::client::{AuditedBatch, Client, Enqueue, Events};
pub use runtime::error::{Error, Result};
pub use runtime::handler::{JobContext, JobError, JobOutput, JobType, Json, Registry};
pub use runtime::queue::{Enqueued, JobId, Queue, QueueOptions};
pub use runtime::shutdown::shutdown_signal;
pub use runtime::worker::{WorkerConfig, WorkerPool};
pub use runtime::{clock, connection, cron, queue};
