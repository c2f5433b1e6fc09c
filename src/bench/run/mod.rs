//! The coordinator: runs one scenario. It resets the queue, starts the collector, scheduler,
//! workers and producers, walks the phases (warm-up, which producers mark on the jobs they
//! send; measure; drain until the audit says every produced job finished), and on Ctrl-C or
//! SIGTERM stops intake, lets workers settle what they hold, and still builds the result.

mod backlog;
mod book;
mod drivers;
pub mod memory;
mod patience;
mod progress;
mod published;
mod queue_ops;
mod sampler;
mod suite;

pub use book::RunBook;
pub use drivers::run_drivers;
pub use progress::Progress;
pub use suite::{SuiteOptions, run_suite};

use crate::bench::load::producer_end;
use crate::bench::load::{
    Collector, MixEntry, Producer, ProducerPlan, Snapshot, StatsReporter, TakeCounts, TakeSnapshot,
};
use crate::bench::probe::ceiling;
use crate::bench::probe::system::{RedisInfo, SystemInfo};
use crate::bench::report::{
    BytesPerJob, Counts, Latencies, Memory, PauseRecord, Percentiles, PhaseTimes, Resources, RunResult, SCHEMA_VERSION,
    Sample, Setup, Throughput,
};
use crate::bench::scenario::{Mode, Scenario};
use crate::bench::stats::{Latency, WorkerStats};
use crate::runtime::clock;
use crate::runtime::connection::Redis;
use crate::runtime::error::Result;
use crate::runtime::handler::Registry;
use crate::runtime::queue::{Audit, Depth, Queue};
use crate::runtime::worker::{Halt, Join, Pause, Scheduler, Stop, Worker, WorkerPool};
use actix::prelude::*;
use patience::patiently;
use sampler::Sampler;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the drain phase asks the audit whether every job finished.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// How long a run waits for worker processes elsewhere to publish their final statistics.
const REMOTE_STATS_WAIT: Duration = Duration::from_secs(3);
/// How often the run takes a sample (and shows progress).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Entries each ceiling loop moves.
const CEILING_ENTRIES: u64 = 200_000;

/// How this process takes part in the run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Start the scenario's workers here (false for `conveyor produce`: workers run elsewhere).
    pub local_workers: bool,
    /// Names this process among worker processes (consumer names start with it).
    pub instance: String,
    /// Print a progress line every second.
    pub progress: bool,
    /// conveyor started the Redis it runs against.
    pub private_server: bool,
    /// Measure the Redis ceiling first, whatever the scenario says.
    pub ceiling: bool,
    /// The handlers local workers run jobs with: the benchmark's kinds, and the application's
    /// own job types when it embeds the command line.
    pub registry: Arc<Registry>,
}

pub use crate::runtime::shutdown::{Interrupt, shutdown_signal};

/// Runs `scenario` against `redis` and returns its result. Call inside an actix `System`.
pub async fn run_scenario(
    scenario: &Scenario,
    redis: &Redis,
    options: &RunOptions,
    mut interrupt: Interrupt,
) -> Result<RunResult> {
    let started_at = rfc3339_now();
    let system_info = SystemInfo::gather();
    let redis_info = RedisInfo::gather(redis, options.private_server).await;
    let mut extra = Extra { rss_start: crate::runtime::process::process_rss_bytes(), ..Extra::default() };
    let ceiling = if scenario.ceiling || options.ceiling || scenario.mode == Mode::Ceiling {
        let payload = scenario.jobs.iter().map(|j| j.payload_bytes).max().unwrap_or(0);
        Some(ceiling::measure(redis, &scenario.queue.prefix, CEILING_ENTRIES, 500, payload).await?)
    } else {
        None
    };

    let queue = Queue::new(redis.clone(), &scenario.queue_name(), scenario.queue_options(), clock::system());
    queue.reset().await?;
    queue.ensure_group().await?;
    let run = queue.start_run().await?;
    let cpu_at_start = crate::runtime::process::process_cpu_seconds();

    let collector = Collector::new(None).exporting(queue.keys().queue()).start();
    if scenario.mode != Mode::Run {
        // Queue operations alone, or Redis alone (the ceiling above was the whole run).
        if scenario.mode == Mode::QueueOps {
            extra.ops = queue_ops::measure(&queue, scenario, run, &collector).await?;
            queue.trim().await?; // no scheduler ran: the settled entries go now
        }
        let snapshot = collector.send(TakeSnapshot).await?;
        let finished = queue.audited_done().await?;
        let remaining = queue.depth().await?;
        let cpu_seconds = crate::runtime::process::process_cpu_seconds() - cpu_at_start;
        return Ok(build_result(BuildInput {
            scenario,
            queue: queue.keys().queue(),
            run,
            started_at,
            interrupted: false,
            snapshot: &snapshot,
            workers: &WorkerStats::default(),
            local_workers: 0,
            remote_processes: 0,
            finished,
            overlap: 0,
            remaining,
            ceiling,
            cpu_seconds,
            system: system_info,
            redis: redis_info,
            extra,
        }));
    }
    let scheduler = Scheduler::new(queue.clone()).sampling_depth_to(collector.clone().recipient()).start();
    extra.phases.backlog_seconds = backlog::fill(&queue, scenario, run, &collector).await?;
    let local_workers = if options.local_workers { scenario.workers.count } else { 0 };
    let reports_to = collector.clone().recipient();
    let pool = WorkerPool::builder(queue.clone(), options.registry.clone())
        .workers(local_workers)
        .concurrency(scenario.workers.concurrency as usize)
        .batch(scenario.workers.batch as usize)
        .block(scenario.workers.block)
        .consumer_prefix(options.instance.clone())
        .scheduler(false)
        .observed_by(Arc::new(move || Box::new(StatsReporter::new(reports_to.clone()))))
        .start()
        .await?;
    let display = Progress::new(options.progress);
    let mut interrupted = false;
    if !scenario.phases.idle.is_zero() {
        display.note(&format!("idle    {:?} with {local_workers} worker(s) waiting", scenario.phases.idle));
        tokio::select! {
            _ = tokio::time::sleep(scenario.phases.idle) => {}
            _ = &mut interrupt => interrupted = true,
        }
        extra.rss_idle = Some(crate::runtime::process::process_rss_bytes());
        extra.phases.idle_seconds = scenario.phases.idle.as_secs_f64();
    }
    backlog::release(&collector, scenario);
    let producers: Vec<Addr<Producer>> =
        if interrupted { Vec::new() } else { producer_plans(scenario, run, scenario.backlog.jobs)? }
            .into_iter()
            .map(|plan| Producer::new(queue.clone(), plan, collector.clone().recipient()).start())
            .collect();

    crate::runtime::telemetry::start_run(scenario.phases.warmup);
    let begun = Instant::now();
    extra.pauses = schedule_pauses(scenario, pool.workers());
    let remote = sampler::Remote::new(queue.clone(), run, options.instance.clone());
    let mut sampler = Sampler::new(begun, local_workers > 0, remote);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    // A late tick is not made up with a burst of samples a few ms apart: each sample's rate
    // would then rest on an interval shorter than the workers' publications.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;

    // Measure (and warm-up): until every producer has sent its plan.
    let all_produced = futures::future::join_all(producers.iter().map(|p| p.send(Join)));
    tokio::pin!(all_produced);
    while !interrupted {
        tokio::select! {
            _ = &mut all_produced => break,
            _ = &mut interrupt => { interrupted = true; break; }
            _ = tick.tick() => display.show(&sampler.sample("produce", &collector, &queue, redis).await),
        }
    }
    if interrupted {
        futures::future::join_all(producers.iter().map(|p| p.send(Stop))).await;
    }
    extra.phases.produce_seconds = begun.elapsed().as_secs_f64();

    // Drain: until the audit has every produced job finished and nothing is left in Redis. After
    // a fault, copies of finished jobs can remain (a batch sent again after its reply was lost, a
    // delivery whose reply was lost): they run again once their lease expires and are counted
    // as duplicates instead of being left behind.
    crate::runtime::telemetry::set_phase(crate::runtime::telemetry::Phase::Drain);
    let drain_began = Instant::now();
    let drain_deadline = tokio::time::Instant::now() + scenario.phases.drain_timeout;
    if !interrupted {
        loop {
            let produced = collector.send(TakeCounts).await?.produced;
            match queue.finished_at_least(produced).await {
                Ok(true) => match queue.depth().await {
                    Ok(d) if d.unfinished() == 0 => break,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "reading the queue depth failed; retrying"),
                },
                Ok(false) => {}
                // Redis away for a moment: the workers retry, and so does the drain.
                Err(e) => tracing::warn!(error = %e, "reading the audit failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_POLL) => {}
                _ = tokio::time::sleep_until(drain_deadline) => {
                    tracing::warn!(timeout = ?scenario.phases.drain_timeout, "drain timed out with jobs unfinished");
                    break;
                }
                _ = &mut interrupt => { interrupted = true; break; }
                _ = tick.tick() => display.show(&sampler.sample("drain", &collector, &queue, redis).await),
            }
        }
    }
    extra.phases.drain_seconds = drain_began.elapsed().as_secs_f64();
    display.finish();

    // Stop: workers settle what they hold.
    crate::runtime::telemetry::set_phase(crate::runtime::telemetry::Phase::Done);
    pool.shutdown().await;
    let _ = scheduler.send(Halt).await;
    let cpu_seconds = crate::runtime::process::process_cpu_seconds() - cpu_at_start;
    let snapshot = collector.send(TakeSnapshot).await?;
    let Audit { finished, overlap } = patiently("reading the audit", async || queue.audit().await).await?;
    let (remote, remote_processes) = patiently("reading published statistics", async || {
        remote_stats(&queue, run, &options.instance, &snapshot, finished).await
    })
    .await?;
    let remaining = patiently("reading the queue depth", async || queue.depth().await).await?;
    let mut merged = snapshot.workers.clone();
    merged.add(&remote);
    extra.rss_max = sampler.rss_max().max(crate::runtime::process::process_rss_bytes());
    extra.timeline = sampler.into_samples();
    if scenario.probes.redis_memory_jobs > 0 && !interrupted {
        // After the run, so the jobs it builds weigh on neither the run nor its RSS figures.
        let payloads: BTreeSet<usize> = scenario.jobs.iter().map(|j| j.payload_bytes).collect();
        let payloads: Vec<usize> = payloads.into_iter().collect();
        extra.redis_bytes_per_job =
            memory::bytes_per_job(redis, &scenario.queue.prefix, &payloads, scenario.probes.redis_memory_jobs).await?;
    }

    Ok(build_result(BuildInput {
        scenario,
        queue: queue.keys().queue(),
        run,
        started_at,
        interrupted,
        snapshot: &snapshot,
        workers: &merged,
        local_workers,
        remote_processes,
        finished,
        overlap,
        remaining,
        ceiling,
        cpu_seconds,
        system: system_info,
        redis: redis_info,
        extra,
    }))
}

/// Sends every local worker its pauses at their time; returns what was planned.
fn schedule_pauses(scenario: &Scenario, workers: &[Addr<Worker>]) -> Vec<PauseRecord> {
    let mut planned = Vec::new();
    for event in &scenario.events {
        let at = scenario.phases.warmup + event.at;
        let (length, workers) = (event.pause_workers, workers.to_vec());
        actix::spawn(async move {
            tokio::time::sleep(at).await;
            for w in &workers {
                w.do_send(Pause(length));
            }
        });
        planned.push(PauseRecord { at_seconds: at.as_secs_f64(), seconds: length.as_secs_f64() });
    }
    planned
}

/// Figures beyond the actors' statistics, gathered along the run.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub(crate) rss_start: u64,
    pub(crate) rss_idle: Option<u64>,
    pub(crate) rss_max: u64,
    pub(crate) redis_bytes_per_job: Vec<BytesPerJob>,
    pub(crate) ops: BTreeMap<String, Latency>,
    pub(crate) pauses: Vec<PauseRecord>,
    pub(crate) phases: PhaseTimes,
    pub(crate) timeline: Vec<Sample>,
}

/// Splits the scenario's load between its producers; their sequence numbers start at
/// `first_seq` (the jobs below it were sent before, as backlog or memory probe).
pub(crate) fn producer_plans(scenario: &Scenario, run: u32, first_seq: u64) -> Result<Vec<ProducerPlan>> {
    let n = u64::from(scenario.producer.count);
    let schedule = scenario.producer.rate.schedule(scenario.capacity).map_err(crate::Error::Usage)?;
    let mut cumulative = 0;
    let mix: Vec<MixEntry> = scenario
        .jobs
        .iter()
        .map(|spec| {
            cumulative += spec.weight;
            let (name, payload) = spec.job();
            let keep_ms = spec.track.then(|| crate::runtime::queue::track::DEFAULT_KEEP.as_millis() as u64);
            MixEntry { name, payload, cumulative_weight: cumulative, keep_ms }
        })
        .collect();
    Ok((0..n)
        .map(|index| ProducerPlan {
            index,
            producers: n,
            first_seq,
            rate: schedule.share(n),
            batch: scenario.producer.batch as usize,
            warmup: scenario.phases.warmup,
            end: producer_end(
                scenario.producer_jobs().map(|j| j / n + u64::from(index < j % n)),
                scenario.producer.duration,
            ),
            run,
            mix: mix.clone(),
        })
        .collect())
}

/// Statistics published by worker processes other than this one, waiting briefly until they
/// account for every finished job.
async fn remote_stats(
    queue: &Queue,
    run: u32,
    instance: &str,
    local: &Snapshot,
    finished: u64,
) -> Result<(WorkerStats, u32)> {
    let deadline = Instant::now() + REMOTE_STATS_WAIT;
    loop {
        let mut merged = WorkerStats::default();
        let mut processes = 0;
        for (_, p) in published::read(queue, run, instance).await? {
            merged.add(&p.stats);
            processes += 1;
        }
        let accounted = local.workers.counts.distinct_finished() + merged.counts.distinct_finished();
        if accounted >= finished || Instant::now() >= deadline {
            return Ok((merged, processes));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything a [`RunResult`] is built from (a driver run fills it too).
pub(crate) struct BuildInput<'a> {
    pub(crate) scenario: &'a Scenario,
    /// The queue's name.
    pub(crate) queue: &'a str,
    pub(crate) run: u32,
    pub(crate) started_at: String,
    pub(crate) interrupted: bool,
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) workers: &'a WorkerStats,
    pub(crate) local_workers: u32,
    pub(crate) remote_processes: u32,
    pub(crate) finished: u64,
    /// Jobs finished in two partitions (see [`Queue::audit`]): duplicates too.
    pub(crate) overlap: u64,
    pub(crate) remaining: Depth,
    pub(crate) ceiling: Option<ceiling::Ceiling>,
    pub(crate) cpu_seconds: f64,
    pub(crate) system: SystemInfo,
    pub(crate) redis: RedisInfo,
    pub(crate) extra: Extra,
}

pub(crate) fn build_result(i: BuildInput<'_>) -> RunResult {
    let p = &i.snapshot.producers;
    let w = &i.workers.counts;
    let measure_start = if p.measure_start_us > 0 { p.measure_start_us } else { w.first_start_us };
    let window_us = w.last_complete_us.saturating_sub(measure_start);
    let window_seconds = window_us as f64 / 1e6;
    // Every completion inside the window counts, warm-up jobs too: a backlog the warm-up left
    // is drained inside the window, and leaving it out would count the window's work short.
    let in_window = match &i.workers.completions {
        t if t.is_empty() => w.measured_completed as f64,
        t => t.between(measure_start, w.last_complete_us).max(w.measured_completed as f64),
    };
    let jobs_per_second = if window_seconds > 0.0 { in_window / window_seconds } else { 0.0 };
    let in_redis = i.remaining.unfinished();
    let not_finished = p.produced.saturating_sub(i.finished);
    let unfinished = not_finished.min(in_redis);
    let worker_count = (i.local_workers + i.remote_processes).max(1);
    let x = i.extra;
    let mut histograms: BTreeMap<String, Latency> = BTreeMap::from([
        ("enqueue_to_start".to_owned(), i.workers.enqueue_to_start.clone()),
        ("start_to_complete".to_owned(), i.workers.start_to_complete.clone()),
        ("end_to_end".to_owned(), i.workers.end_to_end.clone()),
        ("enqueue_call".to_owned(), p.enqueue_call.clone()),
        ("schedule_lag".to_owned(), p.schedule_lag.clone()),
    ]);
    histograms.extend(x.ops.iter().map(|(op, h)| (format!("ops.{op}"), h.clone())));
    let trends = crate::bench::report::timeline::trends(&x.timeline, i.scenario.phases.warmup.as_secs_f64());
    RunResult {
        schema_version: SCHEMA_VERSION,
        scenario: i.scenario.name.clone(),
        description: i.scenario.description.clone(),
        queue: i.queue.to_owned(),
        run: i.run,
        started_at: i.started_at,
        finished_at: rfc3339_now(),
        interrupted: i.interrupted,
        setup: Setup {
            producers: i.scenario.producer.count,
            rate: i.scenario.producer.rate.peak(i.scenario.capacity),
            local_workers: i.local_workers,
            remote_worker_processes: i.remote_processes,
            concurrency: i.scenario.workers.concurrency,
            claim_batch: i.scenario.workers.batch,
            enqueue_batch: i.scenario.producer.batch,
            warmup_seconds: i.scenario.phases.warmup.as_secs_f64(),
        },
        throughput: Throughput {
            jobs_per_second,
            measured_jobs: w.measured_completed,
            window_seconds,
            jobs_per_second_per_worker: jobs_per_second / f64::from(worker_count),
            enqueue_per_second: if x.phases.produce_seconds > 0.0 {
                p.produced.saturating_sub(i.scenario.backlog.jobs) as f64 / x.phases.produce_seconds
            } else {
                0.0
            },
        },
        counts: Counts {
            produced: p.produced,
            produced_warmup: p.produced_warmup,
            finished: i.finished,
            completed: w.completed,
            retried: w.retried,
            dead: w.dead,
            lost: not_finished - unfinished,
            unfinished,
            unreported: i.finished.saturating_sub(w.distinct_finished()),
            duplicates: w.duplicates + i.overlap,
            poison: w.poison,
            enqueue_errors: p.enqueue_errors,
        },
        latency_us: Latencies {
            enqueue_to_start: Percentiles::from(&i.workers.enqueue_to_start),
            start_to_complete: Percentiles::from(&i.workers.start_to_complete),
            end_to_end: Percentiles::from(&i.workers.end_to_end),
            enqueue_call: Percentiles::from(&p.enqueue_call),
            schedule_lag: Percentiles::from(&p.schedule_lag),
        },
        remaining: i.remaining,
        max_waiting: i.snapshot.max_waiting,
        ceiling: i.ceiling,
        resources: Resources {
            cpu_seconds: i.cpu_seconds,
            // The whole run's work over the whole run's CPU (warm-up included in both).
            jobs_per_cpu_second: if i.cpu_seconds > 0.0 { w.completed as f64 / i.cpu_seconds } else { 0.0 },
            rss_bytes: crate::runtime::process::process_rss_bytes(),
        },
        system: i.system,
        redis: i.redis,
        mode: i.scenario.mode,
        capacity: i.scenario.capacity,
        phases: x.phases,
        memory: Memory {
            rss_start_bytes: x.rss_start,
            rss_idle_bytes: x.rss_idle,
            rss_max_bytes: x.rss_max.max(crate::runtime::process::process_rss_bytes()),
            redis_bytes_per_job: x.redis_bytes_per_job,
        },
        ops_us: x.ops.iter().map(|(op, h)| (op.clone(), Percentiles::from(h))).collect(),
        pauses: x.pauses,
        timeline: x.timeline,
        trends,
        driver: None,
        histograms,
    }
}

pub(crate) fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}
