//! Telemetry: every latency and throughput figure of a run as a Prometheus metric, served on
//! `/metrics` by each process (`run`, `produce`, `worker`), default `127.0.0.1:9464`.
//!
//! How the data gets there without touching the per-job hot path:
//! - **Counters and job-stage histograms** come from each worker, which keeps its own counts
//!   and HDR histograms and exports them every 250 ms: counters grow by the counts, and the
//!   histograms are folded into bucket counts (`histograms.rs`), one pass over their recorded
//!   values. Enqueued jobs are counted by the queue, once per enqueue call.
//! - **Redis operations** are timed once per call (a call moves a batch) into the recorder's
//!   histograms; **worker gauges** (in flight, busy, idle) change once per batch.
//! - **Queue depth** and the **oldest waiting job's age** come from the scheduler's sampling
//!   (once a second); **schedule lag** from producer reports. `conveyor exporter` ([`QueueWatch`])
//!   reports every queue's depth, paused, live workers and cron firings from Redis, including
//!   queues no running process serves.
//! - **`process_*`** (RSS, CPU to the nanosecond, threads, open files) are read from `/proc` at
//!   each scrape (`process.rs`).
//! - **`conveyor_build_info`** and **`conveyor_scenario_info{scenario,queue,role,phase}`** say
//!   what runs and which phase it is in.
//!
//! Without [`install`] (library use, tests in one process) every handle is a no-op and the
//! histogram folding is skipped.

mod catalog;
mod handles;
mod histograms;
mod process;
mod server;
mod watch;

pub use catalog::{BUCKETS, describe};
pub use handles::{
    JobMetrics, JobTally, SchedulerMetrics, WorkerMetrics, cron_fired, cron_missed, jobs_enqueued, queue_paused,
    rate_limited, redis_error, redis_operation, schedule_lag, worker_processes,
};

pub use watch::QueueWatch;

use histograms::JobHistograms;
use metrics_exporter_prometheus::PrometheusBuilder;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Where `/metrics` listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";
/// How often the recorder drains its histogram samples when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What `--metrics-addr` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAddr {
    /// `none` or `off`: no recorder is installed and nothing listens.
    Off,
    /// Serve `/metrics` on this address (port 0 picks a free one).
    At(SocketAddr),
}

impl MetricsAddr {
    /// Parses `HOST:PORT`, or `none` / `off` to export nothing.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "none" | "off" => Ok(Self::Off),
            t => t.parse::<SocketAddr>().map(Self::At).map_err(|_| {
                format!("--metrics-addr: expected HOST:PORT (an IP address and a port, like {DEFAULT_ADDR}) or none/off, got {t:?}")
            }),
        }
    }
}

/// The role a process plays, for `conveyor_scenario_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `conveyor run`: every role in one process.
    Run,
    /// `conveyor produce`: producers (and the scheduler) here, workers in other processes.
    Producer,
    /// `conveyor worker`: workers (and the scheduler) serving a queue.
    Worker,
    /// `conveyor exporter`: every queue's state as Redis holds it, no jobs run.
    Exporter,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Run => "run",
            Role::Producer => "producer",
            Role::Worker => "worker",
            Role::Exporter => "exporter",
        }
    }
}

/// Where a process is in its work, for `conveyor_scenario_info{phase}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Producing jobs that are processed but not measured.
    Warmup,
    /// Producing measured jobs.
    Measure,
    /// Producers done; waiting for every job to finish.
    Drain,
    /// The run ended.
    Done,
    /// A worker process serving its queue.
    Serve,
    /// Finishing the jobs in hand before exit.
    Stopping,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Warmup => "warmup",
            Phase::Measure => "measure",
            Phase::Drain => "drain",
            Phase::Done => "done",
            Phase::Serve => "serve",
            Phase::Stopping => "stopping",
        }
    }
}

/// What a process is, for the info metrics.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Which parts of the system run in this process; also decides which error counters start
    /// at 0.
    pub role: Role,
    /// Scenario name (`none` for a worker started with `--queue` only).
    pub scenario: String,
    /// The queue this process works on; its job-stage histograms are registered under it.
    pub queue: String,
}

/// Set once by [`install`]: the job-stage histograms and the current phase.
struct Installed {
    histograms: Arc<JobHistograms>,
    identity: Identity,
    phase: Mutex<Option<Phase>>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// The job-stage histograms, when metrics are exported.
fn job_histograms() -> Option<&'static JobHistograms> {
    INSTALLED.get().map(|i| &*i.histograms)
}

/// Why metrics could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Nothing could listen on the metrics address (in use, or not an address of this host).
    #[error(
        "metrics address {addr}: {source} (choose another with --metrics-addr HOST:PORT, or turn metrics off with --metrics-addr off)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The Prometheus recorder, or a thread serving it, could not be set up (for one, a
    /// recorder was already installed in this process).
    #[error("metrics: {0}")]
    Recorder(String),
}

/// Installs the Prometheus recorder for this process and serves `/metrics` on `addr` from a
/// thread of its own. Call once, before the actix `System` starts. Returns the bound address
/// (useful with port 0).
pub fn install(addr: SocketAddr, identity: Identity) -> Result<SocketAddr, InstallError> {
    let listener = TcpListener::bind(addr).map_err(|source| InstallError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| InstallError::Bind { addr, source })?;
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| InstallError::Recorder(e.to_string()))?
        .install_recorder()
        .map_err(|e| InstallError::Recorder(e.to_string()))?;
    let identity_role = identity.role;
    let histograms = Arc::new(JobHistograms::default());
    histograms.register(&identity.queue);
    let installed = Installed { histograms: histograms.clone(), identity, phase: Mutex::new(None) };
    if INSTALLED.set(installed).is_err() {
        return Err(InstallError::Recorder("already installed in this process".into()));
    }
    describe();
    build_info();
    // Error counters exist from the start (at 0), so rates and alerts see them before any error.
    let roles: &[&str] = match identity_role {
        Role::Run => &["producer", "worker", "scheduler"],
        Role::Producer => &["producer", "scheduler"],
        Role::Worker => &["worker", "scheduler"],
        Role::Exporter => &["exporter"],
    };
    for role in roles {
        metrics::counter!(catalog::REDIS_ERRORS, "role" => *role).increment(0);
    }

    let upkeep = recorder.clone();
    std::thread::Builder::new()
        .name("conveyor-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| InstallError::Recorder(e.to_string()))?;
    server::spawn(listener, server::Exposition { recorder, histograms })
        .map_err(|e| InstallError::Recorder(e.to_string()))?;
    Ok(bound)
}

fn build_info() {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    metrics::gauge!(
        catalog::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "revision" => option_env!("CONVEYOR_GIT_REVISION").unwrap_or("unknown"),
        "profile" => profile,
    )
    .set(1.0);
}

/// Marks the phase this process is in: its `conveyor_scenario_info` series goes to 1, the
/// series of the phase it left to 0.
pub fn set_phase(phase: Phase) {
    transition(None, phase);
}

/// Moves to `to`, if the process is in phase `from` (any phase when `from` is `None`).
fn transition(from: Option<Phase>, to: Phase) {
    let Some(installed) = INSTALLED.get() else { return };
    let mut current = installed.phase.lock().expect("phase lock");
    if from.is_some() && *current != from {
        return;
    }
    let id = &installed.identity;
    let gauge = |p: Phase| {
        metrics::gauge!(
            catalog::SCENARIO_INFO,
            "scenario" => id.scenario.clone(),
            "queue" => id.queue.clone(),
            "role" => id.role.as_str(),
            "phase" => p.as_str(),
        )
    };
    if let Some(old) = current.replace(to)
        && old != to
    {
        gauge(old).set(0.0);
    }
    gauge(to).set(1.0);
}

/// Marks the start of a run: warm-up now (if there is one), measure once it has passed.
/// Call inside the actix `System`.
pub fn start_run(warmup: Duration) {
    if warmup.is_zero() {
        set_phase(Phase::Measure);
        return;
    }
    set_phase(Phase::Warmup);
    actix::spawn(async move {
        tokio::time::sleep(warmup).await;
        transition(Some(Phase::Warmup), Phase::Measure);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metrics_addresses() {
        assert_eq!(MetricsAddr::parse("off").unwrap(), MetricsAddr::Off);
        assert_eq!(MetricsAddr::parse("none").unwrap(), MetricsAddr::Off);
        assert_eq!(MetricsAddr::parse("0.0.0.0:9464").unwrap(), MetricsAddr::At("0.0.0.0:9464".parse().unwrap()));
        let e = MetricsAddr::parse("localhost").unwrap_err();
        assert!(e.contains("--metrics-addr") && e.contains("HOST:PORT") && e.contains("localhost"), "{e}");
    }
}
