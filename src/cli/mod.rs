//! The command line. Each subcommand parses its flags, resolves settings, starts a private
//! redis-server when no Redis URL is configured, and hands over to the library.
//!
//! Exit codes: 0 success (every target met, no job lost); 1 the run finished but failed a check
//! (a target missed, a job lost) or `compare` found a regression; 2 an error (bad input, Redis
//! unreachable), in which case nothing is written.

mod admin;
pub mod metrics_flag;
pub mod settings;
use crate::bench::load::{Collector, Publisher, StatsReporter, TakeSnapshot};
use crate::bench::run::RunBook;

use crate::bench::run::{self, RunOptions};
use crate::bench::scenario::{self, Scenario};
use crate::cli::settings::Settings;
use crate::runtime::clock;
use crate::runtime::connection::{Endpoint, TlsFiles};
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::Registry;
use crate::runtime::queue::{Queue, QueueKeys, QueueOptions};
use crate::runtime::telemetry;
use crate::runtime::worker::{WorkerPool, instance_name};
use crate::testkit::redis_server::{RedisServer, ServerOptions};
use actix::prelude::*;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "conveyor",
    version,
    about = "Actor-based job queue on Redis Streams, with built-in benchmark scenarios"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario with every role in this process; print a summary and write JSON.
    Run(RunArgs),
    /// Run a scenario's producers here; workers run elsewhere (`conveyor worker`).
    Produce(RunArgs),
    /// Run workers (and a scheduler) for a queue until SIGINT or SIGTERM.
    Worker(WorkerArgs),
    /// Compare two results of a scenario (`compare BASELINE CURRENT`; exit 1 when a metric
    /// regressed beyond tolerance), or queues: `compare --drivers conveyor,bullmq SCENARIO` runs
    /// the scenario through each driver on one Redis and reports them side by side.
    Compare(CompareArgs),
    /// Serve the driver protocol for conveyor itself on stdin and stdout (what `--driver
    /// conveyor` starts; see docs/drivers.md).
    Driver,
    /// Check scenario files and report every error.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the scenarios in a directory with their descriptions.
    List {
        #[arg(default_value = "scenarios")]
        dir: PathBuf,
    },
    /// The performance benchmark: ceiling, enqueue only, end to end, ratio, latency, memory.
    Bench {
        #[command(flatten)]
        redis: RedisArgs,
        /// A shorter run (CI's regression guard).
        #[arg(long)]
        quick: bool,
        /// Exit 1 when end to end is below this fraction of the ceiling measured in the same run
        /// (one job per entry against the concurrent ceiling of its command mix; packed against
        /// pipelined XADD).
        #[arg(long)]
        min_ratio: Option<f64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure what Redis does with conveyor's command mix and no runtime.
    Ceiling {
        #[command(flatten)]
        redis: RedisArgs,
        /// Entries each loop moves.
        #[arg(long, default_value_t = 200_000)]
        entries: u64,
        /// Entries per pipelined call.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

#[derive(Args, Debug, Clone)]
struct RedisArgs {
    /// Redis URL (also CONVEYOR_REDIS_URL or `redis_url` in the config file). Without one,
    /// the benchmark commands start a private redis-server and stop it at exit; the admin
    /// commands need one.
    #[arg(long)]
    redis_url: Option<String>,
    /// Settings file (TOML); `./conveyor.toml` is read when present.
    #[arg(long)]
    config: Option<PathBuf>,
    /// PEM file of the CA that signed Redis' TLS certificate, for `rediss://` (also
    /// CONVEYOR_TLS_CA_FILE or `tls_ca_file`).
    #[arg(long)]
    tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for a Redis that checks clients (also CONVEYOR_TLS_CERT_FILE).
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (also CONVEYOR_TLS_KEY_FILE).
    #[arg(long)]
    tls_key_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    #[command(flatten)]
    redis: RedisArgs,
    /// Directory for result files (default `results`).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Also measure the Redis ceiling before the run.
    #[arg(long)]
    ceiling: bool,
    /// Print the result as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
    /// Measured runs per matrix cell (one unmeasured warm-up run goes first when above 1);
    /// overrides the scenario's `repeats`.
    #[arg(long)]
    repeats: Option<u32>,
    /// How long producers send (e.g. "1h", "30s"); overrides the scenario's `jobs`/`duration`.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Write a CPU flame graph of the run (flamegraph.svg in the results directory).
    #[arg(long)]
    profile: bool,
    /// Run even if Redis may evict keys (`maxmemory-policy` other than `noeviction`), which can
    /// lose jobs silently.
    #[arg(long)]
    allow_eviction: bool,
    /// Run the scenario against another queue through this driver (bullmq, celery, rq,
    /// dramatiq, conveyor, native); overrides the scenario's `driver`.
    #[arg(long)]
    driver: Option<String>,
    #[command(flatten)]
    metrics: crate::cli::metrics_flag::MetricsArgs,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// BASELINE and CURRENT results directories (or their result.json); with --drivers, one
    /// scenario file instead.
    #[arg(required = true, value_name = "BASELINE CURRENT | SCENARIO")]
    paths: Vec<PathBuf>,
    /// Queues to run the scenario through, comma-separated: native (conveyor in process),
    /// conveyor, bullmq, celery, rq, dramatiq.
    #[arg(long, value_delimiter = ',')]
    drivers: Option<Vec<String>>,
    /// Relative change allowed beyond the repeats' own spread ("10%" or "0.1").
    #[arg(long, default_value = "10%", value_parser = crate::bench::report::compare::parse_tolerance)]
    tolerance: f64,
    /// Latency changes smaller than this never count as regressions.
    #[arg(long, default_value = "100us", value_parser = humantime::parse_duration)]
    min_latency_change: Duration,
    #[command(flatten)]
    redis: RedisArgs,
    /// With --drivers: directory for result files (default `results`).
    #[arg(long)]
    results: Option<PathBuf>,
    /// With --drivers: measured runs per queue; overrides the scenario's `repeats`.
    #[arg(long)]
    repeats: Option<u32>,
    /// With --drivers: how long producers send; overrides the scenario's `jobs`/`duration`.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// With --drivers: print the result as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// With --drivers: no progress lines.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct WorkerArgs {
    /// Take the queue and worker settings from this scenario file.
    scenario: Option<PathBuf>,
    /// Queue name (default: the scenario's queue).
    #[arg(long)]
    queue: Option<String>,
    #[command(flatten)]
    redis: RedisArgs,
    /// Worker actors in this process.
    #[arg(long)]
    count: Option<u32>,
    /// Jobs each worker runs at the same time.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Most jobs per claim.
    #[arg(long)]
    batch: Option<u32>,
    /// How claims are shared among priorities: strict (high first, always), weighted (6/3/1:
    /// low jobs are served under a flood of high ones) or weighted:H,N,L.
    #[arg(long, default_value = "weighted")]
    service: crate::runtime::queue::Service,
    /// Partitions of the queue (default: the scenario's `queue.partitions`, else 1); must match
    /// the producer's, or some partitions go unserved.
    #[arg(long)]
    partitions: Option<u16>,
    /// Run even if Redis may evict keys (`maxmemory-policy` other than `noeviction`), which can
    /// lose jobs silently.
    #[arg(long)]
    allow_eviction: bool,
    #[command(flatten)]
    metrics: crate::cli::metrics_flag::MetricsArgs,
}

/// Parses `args` (the program name first) as the binary would, without running anything: an
/// error names the flag or argument the line gets wrong. Tests check every command line the
/// documentation prints with it.
pub fn parse_command_line<I, T>(args: I) -> std::result::Result<(), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map(drop)
}

/// Entry point of the `conveyor` binary: [`main_with`] and the benchmark's job types only.
pub fn main() -> ExitCode {
    main_with(Registry::new())
}

/// The whole command line with the application's own handlers registered beside the
/// benchmark's kinds, for an application's own binary:
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Resize { path: String }
/// # impl conveyor::JobType for Resize { const NAME: &'static str = "image.resize"; }
/// # async fn resize(_: Resize, _: conveyor::JobContext) -> Result<(), conveyor::JobError> { Ok(()) }
/// fn main() -> std::process::ExitCode {
///     conveyor::cli::main_with(conveyor::Registry::new().handle::<Resize, _, _, _>(resize))
/// }
/// ```
///
/// `myapp worker --queue images` then runs the application's jobs, and `myapp run
/// scenario.toml` load-tests its handlers with scenarios whose `[[jobs]]` name them
/// (`type = "image.resize"`, `payload = { path = "a.png" }`), with the same audit and reports.
pub fn main_with(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let registry = Arc::new(crate::bench::jobs::registry().merge(registry));
    match dispatch(cli.command, registry) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "conveyor=info,warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn dispatch(command: Command, registry: Arc<Registry>) -> Result<ExitCode> {
    match command {
        Command::Admin(command) => admin::run(command),
        Command::Run(args) => run_command(args, true, registry),
        Command::Produce(args) => run_command(args, false, registry),
        Command::Worker(args) => worker_command(args, registry),
        Command::Compare(args) => match args.drivers.clone() {
            Some(drivers) => compare_drivers_command(args, drivers),
            None => match &args.paths[..] {
                [baseline, current] => compare_command(baseline, current, args.tolerance, args.min_latency_change),
                _ => Err(Error::Usage(
                    "compare: expected BASELINE CURRENT (two results), or --drivers LIST SCENARIO".into(),
                )),
            },
        },
        Command::Driver => {
            System::new().block_on(crate::bench::driver::conveyor::serve())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { files } => Ok(validate(&files)),
        Command::List { dir } => list(&dir),
        Command::Bench { redis, quick, min_ratio, json } => bench_command(&redis, quick, min_ratio, json),
        Command::Ceiling { redis, entries, batch } => {
            let (endpoint, _server) = resolve_redis(&redis)?;
            System::new().block_on(async move {
                let redis = endpoint.connect().await?;
                let c = crate::bench::probe::ceiling::measure(&redis, "conveyor", entries, batch, 0).await?;
                println!("{}", serde_json::to_string_pretty(&c).expect("serializes"));
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// The Redis to use and, when none is configured, the private server that serves it.
fn resolve_redis(args: &RedisArgs) -> Result<(Endpoint, Option<RedisServer>)> {
    resolve_redis_with(args, private_server())
}

/// The Redis that flags, environment and settings name, if they name one.
fn configured_redis(args: &RedisArgs) -> Result<Option<Endpoint>> {
    let settings = Settings::load(args.config.as_deref())?;
    if let Some(url) = &args.redis_url {
        crate::cli::settings::check_redis_url(url).map_err(|e| Error::Usage(format!("--redis-url: {e}")))?;
    }
    let url = args.redis_url.clone().or(settings.redis_url);
    let tls = TlsFiles {
        ca: args.tls_ca_file.clone().or(settings.tls_ca_file),
        cert: args.tls_cert_file.clone().or(settings.tls_cert_file),
        key: args.tls_key_file.clone().or(settings.tls_key_file),
    };
    Ok(url.map(|url| Endpoint { url, tls }))
}

/// A private server started here, on the main thread, dies with this process even when it is
/// killed with SIGKILL, instead of running on as an orphan.
fn private_server() -> ServerOptions {
    ServerOptions { die_with_thread: true, ..ServerOptions::default() }
}

/// [`resolve_redis`], starting a private server (if one is needed) with `server_options`.
fn resolve_redis_with(args: &RedisArgs, server_options: ServerOptions) -> Result<(Endpoint, Option<RedisServer>)> {
    match configured_redis(args)? {
        Some(endpoint) => Ok((endpoint, None)),
        None => {
            let server = RedisServer::start(server_options)?;
            tracing::info!(url = %server.url(), "started a private redis-server (no Redis URL configured)");
            Ok((Endpoint::plain(server.url()), Some(server)))
        }
    }
}

fn run_command(args: RunArgs, local_workers: bool, registry: Arc<Registry>) -> Result<ExitCode> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(d) = &args.driver {
        if !local_workers {
            return Err(Error::Usage("--driver: a driver runs with `conveyor run`, not `produce`".into()));
        }
        scenario.driver = Some(d.clone());
        scenario.check_driver(&args.scenario, "--driver")?;
    }
    if local_workers {
        scenario.check_job_types(&args.scenario, &registry)?;
    }
    apply_overrides(&mut scenario, args.duration, args.repeats)?;
    let settings = Settings::load(args.redis.config.as_deref())?;
    let results_dir = args.results.clone().unwrap_or_else(|| settings.results_dir());
    let chaos_plan = scenario.chaos.clone();
    if !chaos_plan.is_empty() && !local_workers {
        return Err(Error::Usage("a scenario with [chaos] runs with `conveyor run`, not `produce`".into()));
    }
    // A restart must not lose what Redis acknowledged: the private server fsyncs every write.
    // The chaos driver restarts it from a thread of its own, which Linux would take for its
    // parent: that server does not die with the process.
    let server_options = match chaos_plan.restart_redis_at {
        Some(_) => ServerOptions {
            args: ["--appendonly", "yes", "--appendfsync", "always"].map(String::from).to_vec(),
            die_with_thread: false,
        },
        None => private_server(),
    };
    let (endpoint, mut server) = resolve_redis_with(&args.redis, server_options)?;
    let options = RunOptions {
        local_workers,
        instance: instance_name(),
        progress: !args.quiet && !args.json,
        private_server: server.is_some(),
        ceiling: args.ceiling,
        registry,
    };
    let allow_eviction = args.allow_eviction;
    let role = if local_workers { telemetry::Role::Run } else { telemetry::Role::Producer };
    let identity = telemetry::Identity { role, scenario: scenario.name.clone(), queue: scenario.queue_name() };
    args.metrics.install(identity)?;
    let chaos = match chaos_plan.is_empty() {
        true => None,
        false => {
            let keys = QueueKeys::new(&scenario.queue.prefix, &scenario.queue_name());
            Some(crate::bench::chaos::start(&chaos_plan, &args.scenario, &endpoint, keys, server.take())?)
        }
    };
    let result = System::new().block_on(async move {
        let redis = endpoint.connect().await?;
        crate::runtime::eviction::check(&redis, allow_eviction).await?;
        let profiler = if args.profile { Some(crate::bench::probe::profile::Profiler::start()?) } else { None };
        let suite_options = run::SuiteOptions { announce: options.progress, run: options, repeats: args.repeats };
        let suite = run::run_suite(&scenario, &redis, &suite_options, run::shutdown_signal()).await?;
        Ok::<_, Error>((suite, profiler))
    })?;
    let (result, profiler) = result;
    let chaos_report = chaos.map(|driver| {
        let (report, private) = driver.finish();
        server = private;
        report
    });
    drop(server);
    let path = crate::bench::report::files::write(&result, &results_dir)?;
    if let Some(report) = &chaos_report {
        std::fs::write(path.join("chaos.json"), serde_json::to_string_pretty(report).expect("serializes"))?;
        eprintln!("  chaos       {}", report.summary());
    }
    if let Some(p) = profiler {
        let written = p.write_flamegraph(&path.join("flamegraph.svg"))?;
        if let Some(warning) = written.warning() {
            eprintln!("warning: {warning}");
        }
    }
    Ok(verdict(&result, &path, args.json))
}

/// `--duration` and `--repeats`, checked and applied to `scenario`.
fn apply_overrides(scenario: &mut Scenario, duration: Option<Duration>, repeats: Option<u32>) -> Result<()> {
    if let Some(d) = duration {
        if d.is_zero() {
            return Err(Error::Usage("--duration: expected a duration above zero".into()));
        }
        scenario.set_duration(d);
    }
    if repeats.is_some_and(|n| !(1..=100).contains(&n)) {
        return Err(Error::Usage("--repeats: expected 1 to 100 runs".into()));
    }
    Ok(())
}

/// Prints a suite's result (`--json`: the JSON, else the summary and where the files are) and
/// returns its exit code: 0 when it passed, 1 naming what failed.
fn verdict(result: &crate::bench::report::suite::SuiteResult, path: &Path, json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::to_string_pretty(result).expect("serializes"));
    } else {
        print!("{}", crate::bench::report::console::summary(result));
        println!("  result      {}", path.display());
    }
    if result.passed {
        return ExitCode::SUCCESS;
    }
    for c in result.cells.iter().filter(|c| c.runs.iter().any(|r| r.counts.lost > 0)) {
        let lost: u64 = c.runs.iter().map(|r| r.counts.lost).sum();
        eprintln!("FAIL: {lost} job(s) lost in {}", c.label);
    }
    for t in result.failed_targets() {
        eprintln!("FAIL: target {} {} not met in {}: measured {}", t.metric, t.expected, t.cell, t.shown);
    }
    ExitCode::from(1)
}

fn compare_drivers_command(args: CompareArgs, drivers: Vec<String>) -> Result<ExitCode> {
    let [path] = &args.paths[..] else {
        return Err(Error::Usage("compare --drivers: expected one scenario file after the driver list".into()));
    };
    if drivers.is_empty() || drivers.iter().any(String::is_empty) {
        return Err(Error::Usage("--drivers: expected a comma-separated list of drivers".into()));
    }
    for (i, d) in drivers.iter().enumerate() {
        if !crate::bench::driver::known(d) {
            let known = crate::bench::driver::DRIVERS.join(", ");
            return Err(Error::Usage(format!("--drivers: expected drivers among {known}, got {d:?}")));
        }
        if drivers[..i].contains(d) {
            return Err(Error::Usage(format!("--drivers: {d:?} is named twice")));
        }
    }
    let mut scenario = Scenario::load(path)?;
    for d in &drivers {
        let mut s = scenario.clone();
        s.driver = Some(d.clone());
        s.check_driver(path, "--drivers")?;
    }
    apply_overrides(&mut scenario, args.duration, args.repeats)?;
    let settings = Settings::load(args.redis.config.as_deref())?;
    let results_dir = args.results.clone().unwrap_or_else(|| settings.results_dir());
    let (endpoint, server) = resolve_redis(&args.redis)?;
    let progress = !args.quiet && !args.json;
    let options = RunOptions {
        local_workers: true,
        instance: instance_name(),
        progress,
        private_server: server.is_some(),
        ceiling: false,
        registry: Arc::new(crate::bench::jobs::registry()),
    };
    let result = System::new().block_on(async move {
        let redis = endpoint.connect().await?;
        crate::runtime::eviction::check(&redis, false).await?;
        let suite_options = run::SuiteOptions { announce: progress, run: options, repeats: args.repeats };
        run::run_drivers(&scenario, &redis, &drivers, &suite_options, run::shutdown_signal()).await
    })?;
    drop(server);
    let path = crate::bench::report::files::write(&result, &results_dir)?;
    Ok(verdict(&result, &path, args.json))
}

fn compare_command(baseline: &Path, current: &Path, tolerance: f64, min_latency_change: Duration) -> Result<ExitCode> {
    use crate::bench::report::compare;
    let tol = compare::Tolerance { relative: tolerance, min_latency_change_us: min_latency_change.as_micros() as f64 };
    let c = compare::compare(&compare::load(baseline)?, &compare::load(current)?, tol)?;
    print!("{}", c.render());
    let regressed: Vec<String> =
        c.regressions().map(|d| format!("{} ({}) {:+.1}%", d.metric, d.cell, d.change * 100.0)).collect();
    if regressed.is_empty() {
        println!("no regression beyond tolerance");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("REGRESSED: {}", regressed.join(", "));
        Ok(ExitCode::from(1))
    }
}

fn worker_command(args: WorkerArgs, registry: Arc<Registry>) -> Result<ExitCode> {
    let scenario = args.scenario.as_deref().map(Scenario::load).transpose()?;
    let queue_name = args
        .queue
        .clone()
        .or_else(|| scenario.as_ref().map(Scenario::queue_name))
        .ok_or_else(|| Error::Usage("worker: give a scenario file or --queue NAME".into()))?;
    let mut options = scenario.as_ref().map_or_else(QueueOptions::default, Scenario::queue_options);
    if let Some(p) = args.partitions {
        if !(1..=crate::runtime::queue::partition::MAX_PARTITIONS).contains(&p) {
            let most = crate::runtime::queue::partition::MAX_PARTITIONS;
            return Err(Error::Usage(format!(
                "worker: --partitions: expected a whole number from 1 to {most}, got {p}"
            )));
        }
        options.partitions = p;
    }
    let section = scenario.as_ref().map(|s| s.workers.clone()).unwrap_or_default();
    let count = args.count.unwrap_or(section.count).max(1);
    let (endpoint, _server) = resolve_redis(&args.redis)?;
    let scenario_name = scenario.as_ref().map_or_else(|| "none".to_owned(), |s| s.name.clone());
    let identity =
        telemetry::Identity { role: telemetry::Role::Worker, scenario: scenario_name, queue: queue_name.clone() };
    args.metrics.install(identity)?;
    System::new().block_on(async move {
        let redis = endpoint.connect().await?;
        crate::runtime::eviction::check(&redis, args.allow_eviction).await?;
        let queue = Queue::new(redis, &queue_name, options, clock::system());
        let instance = instance_name();
        let publisher = Publisher { queue: queue.clone(), instance: instance.clone() };
        let collector = Collector::new(Some(publisher)).exporting(&queue_name).start();
        let reports_to = collector.clone().recipient();
        let pool = WorkerPool::builder(queue.clone(), registry)
            .workers(count)
            .concurrency(args.concurrency.unwrap_or(section.concurrency) as usize)
            .batch(args.batch.unwrap_or(section.batch) as usize)
            .block(section.block)
            .service(args.service)
            .consumer_prefix(instance.clone())
            .sampling_depth_to(collector.clone().recipient())
            .observed_by(Arc::new(move || Box::new(StatsReporter::new(reports_to.clone()))))
            .start()
            .await?;
        tracing::info!(queue = %queue_name, workers = count, instance = %instance, "workers running; SIGINT or SIGTERM stops them");
        telemetry::set_phase(telemetry::Phase::Serve);
        run::shutdown_signal().await;
        tracing::info!("stopping: finishing the jobs in hand");
        telemetry::set_phase(telemetry::Phase::Stopping);
        pool.shutdown().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let snapshot = collector.send(TakeSnapshot).await?;
        if snapshot.run > 0 {
            queue.publish_stats(snapshot.run, &instance, &snapshot.workers.encode(clock::now_us())).await?;
        }
        tracing::info!(completed = snapshot.workers.counts.completed, "workers stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for f in files {
        match Scenario::load(f) {
            Ok(s) => println!("ok    {} ({})", f.display(), s.name),
            Err(e) => {
                failed += 1;
                println!("error {e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} file(s) invalid", files.len());
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn list(dir: &Path) -> Result<ExitCode> {
    for f in scenario::files_in(dir)? {
        match Scenario::load(&f) {
            Ok(s) => println!("{:<14} {}", s.name, s.description),
            Err(e) => println!("{:<14} INVALID: {e}", f.file_stem().unwrap_or_default().to_string_lossy()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_command(args: &RedisArgs, quick: bool, min_ratio: Option<f64>, json: bool) -> Result<ExitCode> {
    let (endpoint, _server) = resolve_redis(args)?;
    let size = if quick { crate::bench::benchmark::BenchSize::QUICK } else { crate::bench::benchmark::BenchSize::FULL };
    let result = System::new().block_on(async move {
        let redis = endpoint.connect().await?;
        crate::bench::benchmark::run(&redis, size, |step| eprintln!("bench: {step}")).await
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result).expect("serializes"));
    } else {
        print!("{}", result.summary());
    }
    let Some(min) = min_ratio else { return Ok(ExitCode::SUCCESS) };
    let mut failed = false;
    for (what, ratio, of) in [
        ("end to end", result.ratio_to_ceiling, "the concurrent ceiling"),
        ("end to end, packed", result.packed.ratio_to_xadd, "pipelined XADD"),
    ] {
        if ratio < min {
            eprintln!(
                "FAIL: {what} is {:.0}% of {of} measured in this run, below the guard of {:.0}%",
                100.0 * ratio,
                100.0 * min
            );
            failed = true;
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
