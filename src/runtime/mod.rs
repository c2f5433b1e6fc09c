//! The job-queue runtime: what an application needs to run its own jobs on Redis. It never
//! imports the benchmark (a test checks).
//!
//! - [`handler`]: job types, handlers and their registry; [`client`]: enqueueing.
//! - [`worker`]: the workers, the scheduler and the pool that starts them; [`cron`]: periodic
//!   jobs.
//! - [`queue`]: every operation on a queue in Redis — keys, scripts, the wire format.
//! - [`connection`]: one server or a cluster behind one connection type.
//! - [`telemetry`]: Prometheus metrics; [`latency`], [`clock`], [`timer`], [`process`]: how
//!   time and this process are measured.

pub mod acl;
pub mod admin;
pub mod cancel;
pub mod client;
pub mod clock;
pub mod connection;
pub mod cron;
pub mod error;
pub mod eviction;
pub mod handler;
pub mod latency;
pub mod process;
pub mod queue;
pub mod shutdown;
pub mod telemetry;
pub mod timer;
pub mod worker;
