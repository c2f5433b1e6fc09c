//! The coordinator of a driver run: the same phases as conveyor's own run
//! ([`crate::bench::run::run_scenario`]) with another queue behind a driver. It starts the
//! driver, measures Redis bytes per waiting job (the memory probe: jobs enqueued before any
//! worker runs, which then serve as the workers' warm-up), starts the workers, paces the
//! scenario's producers into the driver, drains until every job has a record, stops the driver,
//! and builds the same [`RunResult`] from conveyor's own ledger.

use super::Driver;
use super::protocol::{Reply, Request, WorkersHint};
use crate::bench::load::{Collector, Producer, Sink, TakeCounts, TakeSnapshot};
use crate::bench::probe::processes;
use crate::bench::probe::system::{RedisInfo, SystemInfo};
use crate::bench::report::{BytesPerJob, DriverRun, RunResult};
use crate::bench::run::{BuildInput, Extra, Interrupt, build_result, producer_plans, rfc3339_now};
use crate::bench::scenario::Scenario;
use crate::runtime::clock;
use crate::runtime::connection::Redis;
use crate::runtime::error::{Error, Result};
use crate::runtime::queue::{Depth, Envelope};
use actix::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Jobs of the memory probe when the scenario's `probes.redis_memory_jobs` is 0.
const DEFAULT_PROBE_JOBS: u64 = 1_000;
/// Jobs per enqueue request of the memory probe.
const PROBE_BATCH: usize = 500;
/// How long a driver may take to answer its hello: the first use installs its packages.
const HELLO_TIMEOUT: Duration = Duration::from_secs(900);
/// How long its workers may take to start, and to run the memory probe's jobs beyond the
/// scenario's drain timeout.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a driver may take to stop its workers and send its last records.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the drain looks at the ledger.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Runs `scenario` with the queue behind driver `name` on `redis` (the driver's processes
/// connect to the same URL). Call inside an actix `System`.
pub async fn run_driven(
    scenario: &Scenario,
    redis: &Redis,
    name: &str,
    private_server: bool,
    mut interrupt: Interrupt,
) -> Result<RunResult> {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let started_at = rfc3339_now();
    let system = SystemInfo::gather();
    let redis_info = RedisInfo::gather(redis, private_server).await;
    let run = RUNS.fetch_add(1, Ordering::Relaxed) + 1;
    let queue = format!("{}-{name}-{}-{run}", scenario.queue_name(), std::process::id());

    let mut driver = Driver::spawn(name)?;
    let hint = WorkersHint {
        count: scenario.workers.count,
        concurrency: scenario.workers.concurrency,
        batch: scenario.workers.batch,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    driver
        .send(&Request::Hello {
            protocol: super::protocol::PROTOCOL_VERSION,
            redis_url: redis.url().to_owned(),
            queue: queue.clone(),
            cores,
            workers: hint,
        })
        .await?;
    let (library, settings) = driver
        .expect("hello", HELLO_TIMEOUT, |r| match r {
            Reply::Hello { library, settings, .. } => Some((library, settings)),
            _ => None,
        })
        .await?;
    tracing::info!(driver = name, %library, "driver ready");

    // The memory probe: jobs wait in the queue while no worker runs.
    let plans = producer_plans(scenario, run, 0)?;
    let probe_jobs = match scenario.probes.redis_memory_jobs {
        0 => DEFAULT_PROBE_JOBS,
        n => n,
    };
    let entry = plans.first().and_then(|p| p.mix.first()).cloned().ok_or_else(|| Error::Usage("no job mix".into()))?;
    let before = redis.used_memory().await.unwrap_or(0);
    let mut sent = 0;
    while sent < probe_jobs {
        let n = (probe_jobs - sent).min(PROBE_BATCH as u64);
        let now = clock::now_us();
        let batch: Vec<Envelope> = (sent..sent + n)
            .map(|seq| Envelope {
                seq: u32::try_from(seq).ok(),
                enqueued_us: Some(now),
                ..Envelope::new(&entry.name, entry.payload.clone())
            })
            .collect();
        driver.link.enqueue(&batch, &vec![true; batch.len()]).await?;
        sent += n;
    }
    let after = redis.used_memory().await.unwrap_or(0);
    let bytes_per_job = BytesPerJob {
        payload_bytes: entry.payload.len(),
        jobs: probe_jobs,
        bytes_per_job: after.saturating_sub(before) as f64 / probe_jobs as f64,
    };

    driver.send(&Request::Start).await?;
    let worker_pids = driver
        .expect("started", START_TIMEOUT, |r| match r {
            Reply::Started { pids } => Some(pids),
            _ => None,
        })
        .await?;
    let mut pids = vec![driver.pid];
    pids.extend(worker_pids.iter().filter(|p| **p != driver.pid));
    wait_for_probe(&mut driver, probe_jobs, scenario.phases.drain_timeout + START_TIMEOUT).await?;

    // Measure (and warm-up), as a native run does, into the driver.
    let collector = Collector::new(None).start();
    let cpu_at_start = processes::tree_cpu_seconds(&pids);
    let rss_start = processes::tree_rss_bytes(&pids);
    let producers: Vec<Addr<Producer>> = producer_plans(scenario, run, probe_jobs)?
        .into_iter()
        .map(|plan| {
            Producer::to(Sink::Driver(driver.link.clone(), name.to_owned()), plan, collector.clone().recipient())
                .start()
        })
        .collect();
    let begun = Instant::now();
    let mut rss_max = 0u64;
    let mut interrupted = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let all_produced = futures::future::join_all(producers.iter().map(|p| p.send(crate::runtime::worker::Join)));
    tokio::pin!(all_produced);
    loop {
        tokio::select! {
            _ = &mut all_produced => break,
            _ = &mut interrupt => { interrupted = true; break; }
            _ = tick.tick() => rss_max = rss_max.max(processes::tree_rss_bytes(&pids)),
            e = driver.failure() => {
                futures::future::join_all(producers.iter().map(|p| p.send(crate::runtime::worker::Stop))).await;
                return Err(e);
            }
        }
    }
    if interrupted {
        futures::future::join_all(producers.iter().map(|p| p.send(crate::runtime::worker::Stop))).await;
    }
    let produce_seconds = begun.elapsed().as_secs_f64();

    // Drain: until every job handed to the driver has a record.
    let drain_began = Instant::now();
    let deadline = tokio::time::Instant::now() + scenario.phases.drain_timeout;
    while !interrupted {
        let produced = collector.send(TakeCounts).await?.produced + probe_jobs;
        if driver.link.ledger.lock().expect("not poisoned").finished >= produced {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(DRAIN_POLL) => {}
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(driver = name, timeout = ?scenario.phases.drain_timeout, "drain timed out with jobs unfinished");
                break;
            }
            _ = &mut interrupt => interrupted = true,
            _ = tick.tick() => rss_max = rss_max.max(processes::tree_rss_bytes(&pids)),
            e = driver.failure() => return Err(e),
        }
    }
    let drain_seconds = drain_began.elapsed().as_secs_f64();
    rss_max = rss_max.max(processes::tree_rss_bytes(&pids));
    let cpu_seconds = processes::tree_cpu_seconds(&pids) - cpu_at_start;

    driver.send(&Request::Stop).await?;
    let (records_sent, remaining) = driver
        .expect("stopped", STOP_TIMEOUT, |r| match r {
            Reply::Stopped { records_sent, remaining } => Some((records_sent, remaining)),
            _ => None,
        })
        .await?;
    let link = driver.link.clone();
    driver.wait(Duration::from_secs(10)).await;

    let snapshot = collector.send(TakeSnapshot).await?;
    let ledger = link.ledger.lock().expect("not poisoned");
    // The memory probe's jobs ran (wait_for_probe saw them all) but belong to no phase.
    let mut workers = ledger.stats.clone();
    workers.counts.completed = workers.counts.completed.saturating_sub(probe_jobs);
    workers.counts.started = workers.counts.started.saturating_sub(probe_jobs);
    if records_sent != ledger.records {
        tracing::warn!(
            driver = name,
            records_sent,
            read = ledger.records,
            "the driver counted other records than conveyor read"
        );
    }
    let mut extra = Extra { rss_start, rss_max, redis_bytes_per_job: vec![bytes_per_job], ..Extra::default() };
    extra.phases.produce_seconds = produce_seconds;
    extra.phases.drain_seconds = drain_seconds;
    let mut result = build_result(BuildInput {
        scenario,
        queue: &queue,
        run,
        started_at,
        interrupted,
        snapshot: &snapshot,
        workers: &workers,
        local_workers: 0,
        remote_processes: worker_pids.len().max(1) as u32,
        finished: ledger.finished.saturating_sub(probe_jobs),
        overlap: 0,
        // What the queue still holds counts as unfinished (never as lost); it is all the
        // driver can say of where each job is.
        remaining: Depth { waiting: remaining.unwrap_or(0), ..Depth::default() },
        ceiling: None,
        cpu_seconds,
        system,
        redis: redis_info,
        extra,
    });
    result.resources.rss_bytes = rss_max;
    result.driver = Some(DriverRun {
        name: name.to_owned(),
        library,
        settings,
        pids,
        records: ledger.records,
        unexpected: ledger.unexpected,
    });
    Ok(result)
}

/// Waits until the workers have run every memory-probe job: they are then up and warm.
async fn wait_for_probe(driver: &mut Driver, jobs: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let done = {
            let ledger = driver.link.ledger.lock().expect("not poisoned");
            if ledger.finished >= jobs && ledger.all_finished_below(jobs) {
                return Ok(());
            }
            ledger.finished
        };
        if Instant::now() >= deadline {
            let message = format!("its workers ran {done} of the {jobs} first jobs within {timeout:?}");
            return Err(Error::Driver { name: driver.name.clone(), message });
        }
        tokio::select! {
            _ = tokio::time::sleep(DRAIN_POLL) => {}
            e = driver.failure() => return Err(e),
        }
    }
}
