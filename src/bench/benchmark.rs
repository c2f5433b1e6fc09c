//! `conveyor bench`: the performance benchmark, every figure measured in one run against one
//! Redis so the figures can be read against each other rather than as absolutes that drift
//! with the machine:
//!
//! 1. the Redis ceiling (plain pipelined clients, no runtime: [`crate::bench::probe::ceiling`]);
//! 2. enqueue only: one producer actor, closed loop, no workers;
//! 3. end to end: noop jobs drained by 10 workers in this process, closed loop;
//! 4. the ratio of 3 to the concurrent ceiling; then 3 again with the producers' batches
//!    packed into entries of [`PACK`] jobs, against the pipelined-`XADD` ceiling (one job per
//!    entry), with what each job cost Redis (`INFO cpu`, `INFO commandstats`) in both;
//! 5. open-loop latency at 1,000 jobs/s, at half the capacity measured in 3, and packed at half
//!    the packed capacity, each beside a
//!    probe of how late the machine wakes a sleeping thread in the same window
//!    ([`crate::bench::probe::jitter`]) and of the CPU time the host took meanwhile, and (one job
//!    per entry) after a plain Redis client at the same rate
//!    ([`crate::bench::probe::latency_floor`]): what any tail measured on it is read against;
//! 6. memory: this process's RSS with 20 idle workers, and Redis bytes per queued job;
//! 7. scaling: sleep-1ms jobs drained by one, then two `conveyor worker` processes (Redis is
//!    not the bottleneck there, so the second process should nearly double throughput).
//!
//! With `--min-ratio`, it exits 1 when end-to-end (either run) falls below that fraction of the ceiling
//! measured in the same run: a regression guard that no machine's speed can trip.

use crate::bench::load::{Collector, MixEntry, Producer, ProducerPlan, TakeCounts, producer_end};

use crate::bench::jobs::JobKind;
use crate::bench::probe::ceiling::{self, Ceiling};
use crate::bench::probe::redis_cpu::{RedisCost, RedisCpu};
use crate::bench::probe::{jitter, latency_floor};
use crate::bench::report::{Percentiles, RunResult};
use crate::bench::run::{self, RunOptions, memory};
use crate::bench::scenario::{Rate, Scenario};
use crate::runtime::clock;
use crate::runtime::connection::Redis;
use crate::runtime::error::{Error, Result};
use crate::runtime::handler::JobType;
use crate::runtime::queue::{Queue, QueueOptions};
use crate::runtime::worker::{Join, WorkerPool};

use actix::prelude::*;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// How big the benchmark is.
#[derive(Debug, Clone, Copy)]
pub struct BenchSize {
    /// Jobs per throughput measurement (ceiling loops, enqueue only, end to end).
    pub jobs: u64,
    /// Shortest open-loop latency measurement...
    pub latency_window: Duration,
    /// ...made longer at low rates until it holds this many jobs, so a p99.9 rests on at least
    /// `latency_jobs / 1000` samples above it rather than on the few slowest jobs of a short
    /// window.
    pub latency_jobs: u64,
    /// Jobs queued for the Redis memory measurement.
    pub memory_jobs: u64,
    /// Sleep-1ms jobs per scaling measurement.
    pub scaling_jobs: u64,
}

impl BenchSize {
    /// The size `conveyor bench` runs by default: half a million jobs per throughput figure, and
    /// the scaling measurement.
    pub const FULL: Self = Self {
        jobs: 500_000,
        latency_window: Duration::from_secs(10),
        latency_jobs: 30_000,
        memory_jobs: 100_000,
        scaling_jobs: 60_000,
    };
    /// `conveyor bench --quick`: fewer jobs, short latency windows, no scaling measurement.
    pub const QUICK: Self = Self {
        jobs: 100_000,
        latency_window: Duration::from_secs(3),
        latency_jobs: 0,
        memory_jobs: 20_000,
        scaling_jobs: 0,
    };
}

/// Every figure of one `conveyor bench` run, printed by [`BenchResult::summary`] (or as JSON
/// with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// What plain Redis clients reach on this machine and Redis, the yardstick for the rest.
    pub ceiling: Ceiling,
    /// Jobs/s one producer actor enqueues with no workers running.
    pub enqueue_only_per_second: f64,
    /// Noop jobs/s end to end, 10 workers, closed loop.
    pub end_to_end_per_second: f64,
    /// `end_to_end_per_second / ceiling.concurrent_per_second`.
    pub ratio_to_ceiling: f64,
    /// Jobs per CPU-second of this process in the end-to-end run.
    pub jobs_per_cpu_second: f64,
    /// What each job of the end-to-end run cost Redis.
    pub end_to_end_redis: RedisCost,
    /// End to end again, with several jobs per stream entry.
    pub packed: Packed,
    /// Jobs lost in the end-to-end run, per the audit (anything above 0 is a bug).
    pub end_to_end_lost: u64,
    /// Jobs completed more than once in the end-to-end run.
    pub end_to_end_duplicates: u64,
    /// Open-loop enqueue→start latency (µs) at fixed rates.
    pub latency: Vec<LatencyAt>,
    /// This process's RSS after 20 workers sat idle on an empty queue for a second, in bytes.
    pub rss_idle_20_workers_bytes: u64,
    /// Redis `used_memory` per queued noop job with a `payload_bytes` payload, in bytes.
    pub redis_bytes_per_queued_job: f64,
    /// Payload size of every noop benchmark job, in bytes.
    pub payload_bytes: usize,
    /// End to end with an application-like job type: a serde struct from 100 bytes of JSON.
    pub serde_job: SerdeJob,
    /// End to end with tracked jobs (a status hash and events per job).
    pub tracked: TrackedJobs,
    /// Jobs/s with 1 and with 2 worker processes (sleep-1ms jobs); `None` when skipped.
    pub scaling: Option<Scaling>,
}

/// End to end with the producers' batches packed, [`PACK`] jobs per stream entry.
#[derive(Debug, Clone, Serialize)]
pub struct Packed {
    /// Most jobs per entry (the queue's `pack`).
    pub pack: u16,
    /// Producers (closed loop, batches of 500).
    pub producers: u32,
    /// Noop jobs/s end to end, 10 workers in this process.
    pub end_to_end_per_second: f64,
    /// `end_to_end_per_second / ceiling.xadd_per_second`: against the pipelined single-entry
    /// `XADD` ceiling measured in the same run.
    pub ratio_to_xadd: f64,
    /// Jobs per CPU-second of this process.
    pub jobs_per_cpu_second: f64,
    /// What each job cost Redis, and the jobs per entry measured.
    pub redis: RedisCost,
    /// Jobs lost, per the audit.
    pub lost: u64,
    /// Jobs completed more than once.
    pub duplicates: u64,
}

/// Jobs per entry in the packed end-to-end run.
pub const PACK: u16 = 100;

/// The figures of tracked jobs.
#[derive(Debug, Clone, Serialize)]
pub struct TrackedJobs {
    /// Noop jobs/s end to end, tracked, 10 workers, closed loop.
    pub end_to_end_per_second: f64,
    /// Jobs lost (the audit).
    pub lost: u64,
    /// Redis `used_memory` per finished tracked job while its status is retained (the hash and
    /// its events); it goes when the retention passes.
    pub redis_bytes_per_finished_job: f64,
}

/// The end-to-end figures of an application-like job type (`bench.json`), beside noop's.
#[derive(Debug, Clone, Serialize)]
pub struct SerdeJob {
    /// Jobs/s end to end, 10 workers, closed loop.
    pub end_to_end_per_second: f64,
    /// Of the noop jobs' end-to-end jobs/s in the same run.
    pub ratio_to_noop: f64,
    /// Jobs lost (the audit).
    pub lost: u64,
    /// Bytes of the JSON payload.
    pub payload_bytes: usize,
    /// Redis `used_memory` per queued job of this type.
    pub redis_bytes_per_queued_job: f64,
}

/// Throughput of sleep-1ms jobs drained by one and then two `conveyor worker` processes (4
/// workers × concurrency 4 each): whether a second process adds capacity.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    /// Jobs/s drained by one worker process.
    pub one_process_per_second: f64,
    /// Jobs/s drained by two worker processes.
    pub two_processes_per_second: f64,
    /// `two / one`.
    pub factor: f64,
    /// Jobs lost over both runs, per the audit.
    pub lost: u64,
}

/// Open-loop latency at one send rate, beside how late the machine itself woke a sleeping thread
/// in the same window.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyAt {
    /// The planned send rate, in jobs/s: 1,000, or half the end-to-end capacity measured before
    /// (of one job per entry, or packed).
    pub rate: f64,
    /// Most jobs per stream entry (the queue's `pack`).
    pub pack: u16,
    /// From the intended enqueue time to the handler's start (µs).
    pub enqueue_to_start_us: Percentiles,
    /// From the intended enqueue time to Redis acknowledging the settle (µs).
    pub end_to_end_us: Percentiles,
    /// How far behind plan the producer sent its batches (µs).
    pub schedule_lag_us: Percentiles,
    /// How late a probe thread sleeping 1 ms at a time woke during the same window (µs).
    pub machine_wake_delay_us: Percentiles,
    /// CPU time the host took from this machine's vCPUs during the same window (steal, summed
    /// over the vCPUs), in ms; `None` where the kernel does not report it.
    pub host_steal_ms: Option<u64>,
    /// A plain Redis client with no runtime at the same rate, in the window just before
    /// ([`crate::bench::probe::latency_floor`]): the command mix on this machine in those
    /// minutes with nothing of conveyor. Measured for one job per entry only.
    pub plain_client: Option<PlainClient>,
    /// Jobs lost in this run, per the audit.
    pub lost: u64,
}

/// A latency's p50, p99, p99.9 and max in ms, as the summary prints them.
fn in_ms(p: &Percentiles) -> String {
    let ms = |us: u64| us as f64 / 1e3;
    format!("p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms", ms(p.p50), ms(p.p99), ms(p.p999), ms(p.max))
}

/// What a plain Redis client with no runtime got at a [`LatencyAt`]'s rate.
#[derive(Debug, Clone, Serialize)]
pub struct PlainClient {
    /// From each job's due time to its claim (µs).
    pub due_to_claim_us: Percentiles,
    /// CPU time the host took from this machine's vCPUs during its window (ms), as
    /// [`LatencyAt::host_steal_ms`]: the two windows are comparable only when these are alike.
    pub host_steal_ms: Option<u64>,
}

/// Payload of every benchmark job (the memory target is stated for 100 bytes).
const PAYLOAD: usize = 100;

/// Runs the whole benchmark. Call inside an actix `System`.
pub async fn run(redis: &Redis, size: BenchSize, progress: impl Fn(&str)) -> Result<BenchResult> {
    progress("ceiling: plain pipelined clients, no runtime");
    let ceiling = ceiling::measure(redis, "conveyor-bench", size.jobs, 500, PAYLOAD).await?;

    progress("enqueue only: one producer, no workers");
    let enqueue_only_per_second = enqueue_only(redis, size.jobs).await?;

    progress("end to end: 10 workers, noop jobs, closed loop");
    let cpu_before = RedisCpu::read(redis).await?;
    let e2e = run_text(
        redis,
        &format!(
            "name = \"bench-e2e\"\n[producer]\njobs = {}\nbatch = 500\n[workers]\ncount = 10\nbatch = 200\n\
             [[jobs]]\nkind = \"noop\"\npayload_bytes = {PAYLOAD}\n[phases]\nwarmup = \"1s\"\n",
            size.jobs
        ),
    )
    .await?;
    let end_to_end_redis = cpu_before.cost_until(&RedisCpu::read(redis).await?, e2e.counts.completed);
    let end_to_end_per_second = e2e.throughput.jobs_per_second;
    if end_to_end_per_second.is_nan() || end_to_end_per_second <= 0.0 {
        return Err(Error::Io(std::io::Error::other(format!(
            "the end-to-end run finished no job ({} produced, {} lost): nothing to size the latency runs by",
            e2e.counts.produced, e2e.counts.lost
        ))));
    }

    progress(&format!("end to end: 10 workers, noop jobs packed {PACK} per stream entry, closed loop"));
    let producers = 2;
    let cpu_before = RedisCpu::read(redis).await?;
    let packed_run = run_text(
        redis,
        &format!(
            "name = \"bench-packed\"\n[queue]\npack = {PACK}\n[producer]\ncount = {producers}\njobs = {}\nbatch = 500\n\
             [workers]\ncount = 10\nbatch = 200\n[[jobs]]\nkind = \"noop\"\npayload_bytes = {PAYLOAD}\n\
             [phases]\nwarmup = \"1s\"\n",
            size.jobs
        ),
    )
    .await?;
    let packed = Packed {
        pack: PACK,
        producers,
        end_to_end_per_second: packed_run.throughput.jobs_per_second,
        ratio_to_xadd: packed_run.throughput.jobs_per_second / ceiling.xadd_per_second,
        jobs_per_cpu_second: packed_run.resources.jobs_per_cpu_second,
        redis: cpu_before.cost_until(&RedisCpu::read(redis).await?, packed_run.counts.completed),
        lost: packed_run.counts.lost,
        duplicates: packed_run.counts.duplicates,
    };

    progress("end to end: 10 workers, a serde job type (100 bytes of JSON), closed loop");
    let json = crate::bench::jobs::Json::of_size(PAYLOAD);
    let json_toml = format!("{{ id = {}, to = {:?}, subject = {:?} }}", json.id, json.to, json.subject);
    let typed = run_text(
        redis,
        &format!(
            "name = \"bench-serde\"\n[producer]\njobs = {}\nbatch = 500\n[workers]\ncount = 10\nbatch = 200\n\
             [[jobs]]\ntype = \"bench.json\"\npayload = {json_toml}\n[phases]\nwarmup = \"1s\"\n",
            size.jobs
        ),
    )
    .await?;
    let serde_job = SerdeJob {
        end_to_end_per_second: typed.throughput.jobs_per_second,
        ratio_to_noop: typed.throughput.jobs_per_second / end_to_end_per_second,
        lost: typed.counts.lost,
        payload_bytes: json.encode().map_or(0, |p| p.len()),
        redis_bytes_per_queued_job: 0.0,
    };

    progress("end to end: 10 workers, tracked noop jobs (status and events kept), closed loop");
    let before = memory::used_memory(redis).await;
    let tracked_jobs = size.jobs / 5;
    let tracked_run = run_text(
        redis,
        &format!(
            "name = \"bench-tracked\"\n[producer]\njobs = {tracked_jobs}\nbatch = 500\n[workers]\ncount = 10\nbatch = 200\n\
             [[jobs]]\nkind = \"noop\"\npayload_bytes = {PAYLOAD}\ntrack = true\n[phases]\nwarmup = \"1s\"\n"
        ),
    )
    .await?;
    let retained = memory::used_memory(redis).await.saturating_sub(before);
    let tracked = TrackedJobs {
        end_to_end_per_second: tracked_run.throughput.jobs_per_second,
        lost: tracked_run.counts.lost,
        redis_bytes_per_finished_job: retained as f64 / tracked_run.counts.produced.max(1) as f64,
    };
    // The statuses expire after their retention; the run's keys go now.
    Queue::new(redis.clone(), "bench-bench-tracked", QueueOptions::default(), clock::system()).reset().await?;

    let mut latency = Vec::new();
    let half_packed = (packed.end_to_end_per_second / 2.0).round();
    for (rate, pack) in [(1_000.0, 1), ((end_to_end_per_second / 2.0).round(), 1), (half_packed, PACK)] {
        let window = size.latency_window.max(Duration::from_secs_f64(size.latency_jobs as f64 / rate));
        let packing = if pack > 1 { format!(", {pack} jobs per entry") } else { String::new() };
        let plain_client = if pack == 1 {
            progress(&format!(
                "latency floor: a plain Redis client at {rate} jobs/s for {:.0} s",
                window.as_secs_f64()
            ));
            let plan = latency_floor::Plan {
                rate,
                warmup: Duration::from_secs(1),
                window,
                batch: 500,
                payload_bytes: PAYLOAD,
                // As many as the run's workers.
                takers: 10,
            };
            let probe = jitter::Probe::start()?;
            let late = latency_floor::measure(redis, BENCH_PREFIX, plan).await;
            let steal_ms = probe.finish().steal.map(|d| d.as_millis() as u64);
            Some(PlainClient { due_to_claim_us: Percentiles::from(&late?), host_steal_ms: steal_ms })
        } else {
            None
        };
        progress(&format!("open-loop latency at {rate} jobs/s{packing} for {:.0} s", window.as_secs_f64()));
        let probe = jitter::Probe::start()?;
        let r = run_text(
            redis,
            &format!(
                "name = \"bench-latency\"\n[queue]\npack = {pack}\n[producer]\nrate = {rate}\nduration = \"{}ms\"\nbatch = 500\n\
                 [workers]\ncount = 10\nbatch = 200\n[[jobs]]\nkind = \"noop\"\npayload_bytes = {PAYLOAD}\n\
                 [phases]\nwarmup = \"1s\"\n",
                window.as_millis()
            ),
        )
        .await;
        let floor = probe.finish();
        let machine_wake_delay_us = Percentiles::from(&floor.wake_late);
        let r = r?;
        latency.push(LatencyAt {
            rate,
            pack,
            enqueue_to_start_us: r.latency_us.enqueue_to_start,
            end_to_end_us: r.latency_us.end_to_end,
            schedule_lag_us: r.latency_us.schedule_lag,
            machine_wake_delay_us,
            host_steal_ms: floor.steal.map(|d| d.as_millis() as u64),
            plain_client,
            lost: r.counts.lost,
        });
    }

    progress("memory: RSS with 20 idle workers; Redis bytes per queued job");
    let rss_idle_20_workers_bytes = idle_rss(redis).await?;
    let (noop_payload, json_payload) = (JobKind::Noop.payload(PAYLOAD), json.encode().unwrap_or_default());
    let redis_bytes_per_queued_job =
        memory::bytes_per_queued_job(redis, BENCH_PREFIX, JobKind::Noop.name(), &noop_payload, size.memory_jobs)
            .await?;
    let serde_job = SerdeJob {
        redis_bytes_per_queued_job: memory::bytes_per_queued_job(
            redis,
            BENCH_PREFIX,
            crate::bench::jobs::Json::NAME,
            &json_payload,
            size.memory_jobs,
        )
        .await?,
        ..serde_job
    };

    let scaling = if size.scaling_jobs > 0 {
        progress("scaling: sleep-1ms jobs with 1, then 2 worker processes");
        let one = with_worker_processes(redis, 1, size.scaling_jobs).await?;
        let two = with_worker_processes(redis, 2, size.scaling_jobs).await?;
        Some(Scaling {
            one_process_per_second: one.throughput.jobs_per_second,
            two_processes_per_second: two.throughput.jobs_per_second,
            factor: if one.throughput.jobs_per_second > 0.0 {
                two.throughput.jobs_per_second / one.throughput.jobs_per_second
            } else {
                0.0
            },
            lost: one.counts.lost + two.counts.lost,
        })
    } else {
        None
    };

    Ok(BenchResult {
        ratio_to_ceiling: end_to_end_per_second / ceiling.concurrent_per_second,
        ceiling,
        enqueue_only_per_second,
        end_to_end_per_second,
        jobs_per_cpu_second: e2e.resources.jobs_per_cpu_second,
        end_to_end_redis,
        packed,
        end_to_end_lost: e2e.counts.lost,
        end_to_end_duplicates: e2e.counts.duplicates,
        latency,
        rss_idle_20_workers_bytes,
        redis_bytes_per_queued_job,
        payload_bytes: PAYLOAD,
        serde_job,
        tracked,
        scaling,
    })
}

/// Drains `jobs` sleep-1ms jobs with `processes` `conveyor worker` processes (4 workers ×
/// concurrency 4 each) while this process produces and audits.
async fn with_worker_processes(redis: &Redis, processes: usize, jobs: u64) -> Result<RunResult> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("scaling.toml");
    let text = format!(
        "# scaling\ndescription = \"scaling\"\nname = \"bench-scaling\"\n[queue]\nprefix = \"conveyor-bench\"\n\
         [producer]\njobs = {jobs}\nbatch = 500\n[workers]\ncount = 4\nconcurrency = 4\nbatch = 16\n\
         [[jobs]]\nkind = \"sleep\"\nduration = \"1ms\"\npayload_bytes = {PAYLOAD}\n[phases]\ndrain_timeout = \"120s\"\n"
    );
    std::fs::write(&file, &text)?;
    let scenario = Scenario::parse(&text, &file)?;
    // Worker processes join the queue's consumer group before the producer starts; a run
    // resets the queue, so the group is created again by the run and workers re-join it.
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for _ in 0..processes {
        children.push(
            std::process::Command::new(&exe)
                .args(["worker", "--metrics-addr", "off"])
                .arg(&file)
                // In the environment, not on the command line, where `ps` would show a password.
                .env("CONVEYOR_REDIS_URL", redis.url())
                .env("RUST_LOG", "warn")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()?,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let options = RunOptions {
        local_workers: false,
        instance: format!("bench-{}", std::process::id()),
        progress: false,
        private_server: false,
        ceiling: false,
        registry: std::sync::Arc::new(crate::bench::jobs::registry()),
    };
    let result = run::run_scenario(&scenario, redis, &options, Box::pin(std::future::pending())).await;
    for child in &mut children {
        // SIGTERM: workers settle what they hold and publish their statistics.
        let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    }
    for child in &mut children {
        let _ = child.wait();
    }
    result
}

async fn run_text(redis: &Redis, text: &str) -> Result<RunResult> {
    let scenario = Scenario::parse(text, Path::new("bench"))?;
    let options = RunOptions {
        local_workers: true,
        instance: format!("bench-{}", std::process::id()),
        progress: false,
        private_server: false,
        ceiling: false,
        registry: std::sync::Arc::new(crate::bench::jobs::registry()),
    };
    run::run_scenario(&scenario, redis, &options, Box::pin(std::future::pending())).await
}

/// The key prefix of every queue the benchmark makes.
const BENCH_PREFIX: &str = "conveyor-bench";

fn bench_queue(redis: &Redis, name: &str) -> Queue {
    let options = QueueOptions { prefix: BENCH_PREFIX.into(), ..QueueOptions::default() };
    Queue::new(redis.clone(), name, options, clock::system())
}

/// One producer actor sending `jobs` noop jobs as fast as Redis takes them, nobody consuming.
async fn enqueue_only(redis: &Redis, jobs: u64) -> Result<f64> {
    let queue = bench_queue(redis, "enqueue-only");
    queue.reset().await?;
    let collector = Collector::new(None).start();
    let plan = ProducerPlan {
        index: 0,
        producers: 1,
        first_seq: 0,
        rate: Rate::Max,
        batch: 500,
        warmup: Duration::ZERO,
        end: producer_end(Some(jobs), None),
        run: 1,
        mix: vec![MixEntry {
            name: JobKind::Noop.name().into(),
            payload: JobKind::Noop.payload(PAYLOAD),
            cumulative_weight: 1,
            keep_ms: None,
        }],
    };
    let started = Instant::now();
    let producer = Producer::new(queue.clone(), plan, collector.clone().recipient()).start();
    producer.send(Join).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let produced = collector.send(TakeCounts).await?.produced;
    queue.reset().await?;
    Ok(produced as f64 / elapsed)
}

/// This process's RSS after 20 workers have sat idle (blocked on an empty queue) for a second.
async fn idle_rss(redis: &Redis) -> Result<u64> {
    let queue = bench_queue(redis, "idle");
    queue.reset().await?;
    queue.ensure_group().await?;
    let pool = WorkerPool::builder(queue.clone(), crate::bench::jobs::registry())
        .workers(20)
        .consumer_prefix("idle")
        .scheduler(false)
        .start()
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = crate::runtime::process::process_rss_bytes();
    pool.shutdown().await;
    queue.reset().await?;
    Ok(rss)
}

impl BenchResult {
    /// The table printed at the end of `conveyor bench`.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let c = &self.ceiling;
        let _ = writeln!(
            s,
            "conveyor bench ({} cores, Redis on the same machine)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let _ = writeln!(s, "  ceiling: pipelined XADD              {:>10.0} jobs/s", c.xadd_per_second);
        let _ = writeln!(s, "  ceiling: XADD→XREADGROUP→XACK+XTRIM  {:>10.0} jobs/s in sequence", c.cycle_per_second);
        let _ = writeln!(s, "  ceiling: same mix, concurrent loops  {:>10.0} jobs/s", c.concurrent_per_second);
        let _ = writeln!(s, "  conveyor enqueue only (1 producer)   {:>10.0} jobs/s", self.enqueue_only_per_second);
        let _ = writeln!(
            s,
            "  conveyor end to end (10 workers)     {:>10.0} jobs/s  = {:.0}% of the concurrent ceiling; lost {}, duplicates {}",
            self.end_to_end_per_second,
            100.0 * self.ratio_to_ceiling,
            self.end_to_end_lost,
            self.end_to_end_duplicates
        );
        let _ = writeln!(s, "  jobs per CPU-second (conveyor only)  {:>10.0}", self.jobs_per_cpu_second);
        let r = &self.end_to_end_redis;
        let _ = writeln!(
            s,
            "  Redis CPU per job                    {:>10.2} µs (in commands {:.2} µs); {:.1} jobs per stream entry",
            r.process_us_per_job, r.commands_us_per_job, r.jobs_per_entry
        );
        let p = &self.packed;
        let _ = writeln!(
            s,
            "  end to end, {:>3} jobs per entry       {:>10.0} jobs/s  = {:.0}% of pipelined XADD ({} producers); lost {}, duplicates {}",
            p.pack,
            p.end_to_end_per_second,
            100.0 * p.ratio_to_xadd,
            p.producers,
            p.lost,
            p.duplicates
        );
        let _ = writeln!(
            s,
            "    jobs per CPU-second {:.0}; Redis CPU per job {:.2} µs (in commands {:.2} µs); {:.1} jobs per stream entry",
            p.jobs_per_cpu_second, p.redis.process_us_per_job, p.redis.commands_us_per_job, p.redis.jobs_per_entry
        );
        let j = &self.serde_job;
        let _ = writeln!(
            s,
            "  end to end, a serde job type         {:>10.0} jobs/s  = {:.0}% of noop ({}-byte JSON payload decoded per job); lost {}",
            j.end_to_end_per_second,
            100.0 * j.ratio_to_noop,
            j.payload_bytes,
            j.lost
        );
        for l in &self.latency {
            let p = &l.enqueue_to_start_us;
            let _ = writeln!(
                s,
                "  open loop {:>7.0}/s{} enqueue→start    {} (lost {})",
                l.rate,
                if l.pack > 1 { format!(" ({} per entry)", l.pack) } else { String::new() },
                in_ms(p),
                l.lost
            );
            let _ = writeln!(
                s,
                "    same window, a sleeping thread woke late by {} (the machine's floor){}",
                in_ms(&l.machine_wake_delay_us),
                l.host_steal_ms.map_or(String::new(), |ms| format!("; the host took {ms} ms of vCPU time (steal)"))
            );
            if let Some(c) = &l.plain_client {
                let _ = writeln!(
                    s,
                    "    window before, a plain Redis client: {} (no runtime, same commands; conveyor's p99 = {:.2}x){}",
                    in_ms(&c.due_to_claim_us),
                    p.p99 as f64 / c.due_to_claim_us.p99.max(1) as f64,
                    c.host_steal_ms.map_or(String::new(), |ms| format!("; steal {ms} ms"))
                );
            }
        }
        if let Some(sc) = &self.scaling {
            let _ = writeln!(
                s,
                "  scaling, sleep-1ms jobs              {:>10.0} jobs/s with 1 worker process, {:.0} with 2 = {:.2}x (lost {})",
                sc.one_process_per_second, sc.two_processes_per_second, sc.factor, sc.lost
            );
        }
        let _ = writeln!(
            s,
            "  RSS with 20 idle workers             {:>10.1} MB",
            self.rss_idle_20_workers_bytes as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "  Redis bytes per queued job           {:>10.0} B ({}-byte payload)",
            self.redis_bytes_per_queued_job, self.payload_bytes
        );
        let _ = writeln!(
            s,
            "  tracked jobs end to end (10 workers) {:>10.0} jobs/s; Redis keeps {:.0} B per finished job until its retention passes; lost {}",
            self.tracked.end_to_end_per_second, self.tracked.redis_bytes_per_finished_job, self.tracked.lost
        );
        let _ = writeln!(
            s,
            "  Redis bytes per queued serde job     {:>10.0} B ({}-byte JSON payload)",
            self.serde_job.redis_bytes_per_queued_job, self.serde_job.payload_bytes
        );
        s
    }
}
