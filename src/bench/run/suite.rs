//! A whole scenario: the capacity probe (when a rate is a share of capacity), one unmeasured
//! warm-up run (when runs repeat), then every matrix cell `repeats` times, each run through
//! [`run_scenario`](super::run_scenario) on a freshly reset queue (or, with a `driver`,
//! through [`run_driven`](crate::bench::driver::run::run_driven) on a fresh queue of its own). Ctrl-C ends the run in hand
//! (which still reports) and skips the rest.

use super::{Interrupt, RunOptions, run_scenario};
use crate::bench::probe::system::{RedisInfo, SystemInfo};
use crate::bench::report::SCHEMA_VERSION;
use crate::bench::report::suite::{CapacityProbe, CellResult, SuiteResult};
use crate::bench::scenario::{Backlog, KindName, Matrix, Mode, RatePlan, Scenario};
use crate::runtime::connection::Redis;
use crate::runtime::error::Result;
use futures::FutureExt;
use std::collections::BTreeMap;
use std::time::Duration;

/// How a suite runs, beyond what one run needs.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// How each run of the suite (and its capacity probe) takes part, passed to every run.
    pub run: RunOptions,
    /// Overrides the scenario's `repeats`.
    pub repeats: Option<u32>,
    /// Print a line as each run starts.
    pub announce: bool,
}

/// Runs every cell of `scenario` and judges its targets. Call inside an actix `System`.
pub async fn run_suite(
    scenario: &Scenario,
    redis: &Redis,
    options: &SuiteOptions,
    interrupt: Interrupt,
) -> Result<SuiteResult> {
    let started_at = super::rfc3339_now();
    let system = SystemInfo::gather();
    let redis_info = RedisInfo::gather(redis, options.run.private_server).await;
    let interrupt = interrupt.shared();
    let stopper = || -> Interrupt { Box::pin(interrupt.clone()) };
    let stopped = || interrupt.peek().is_some();
    let say = |line: String| {
        if options.announce {
            eprintln!("{line}");
        }
    };

    let capacity = if scenario.needs_capacity() {
        let probe = capacity_probe(scenario);
        say(format!("── capacity probe: {} jobs, closed loop", probe.producer.jobs.unwrap_or(0)));
        let r = run_one(&probe, redis, &options.run, stopper()).await?;
        say(format!("   capacity {:.0} jobs/s", r.throughput.jobs_per_second));
        Some(CapacityProbe { jobs_per_second: r.throughput.jobs_per_second, jobs: r.throughput.measured_jobs })
    } else {
        None
    };

    let repeats = options.repeats.unwrap_or(scenario.repeats).max(1);
    let cells = scenario.matrix.cells();
    let warmup_run = repeats > 1 && scenario.mode == Mode::Run && !stopped();
    if warmup_run {
        let mut s = cells[0].apply(scenario);
        s.capacity = capacity.map(|c| c.jobs_per_second);
        say(format!("── warm-up run ({}), not measured", cells[0].label()));
        run_one(&s, redis, &options.run, stopper()).await?;
    }

    let mut results = Vec::new();
    let mut interrupted = false;
    for cell in &cells {
        if stopped() {
            interrupted = true;
            break;
        }
        let mut s = cell.apply(scenario);
        s.capacity = capacity.map(|c| c.jobs_per_second);
        let mut runs = Vec::new();
        for i in 0..repeats {
            if stopped() {
                interrupted = true;
                break;
            }
            let label = if cell.values.is_empty() { String::new() } else { format!(" {}", cell.label()) };
            say(format!("── {}{label}, run {} of {repeats}", scenario.name, i + 1));
            let r = run_one(&s, redis, &options.run, stopper()).await?;
            interrupted |= r.interrupted;
            runs.push(r);
        }
        let params: BTreeMap<String, String> =
            cell.values.iter().map(|v| (v.axis().to_owned(), v.value_text())).collect();
        if !runs.is_empty() {
            results.push(CellResult::new(cell.label(), params, runs));
        }
    }

    let mut suite = SuiteResult {
        schema_version: SCHEMA_VERSION,
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        mode: scenario.mode,
        started_at,
        finished_at: super::rfc3339_now(),
        interrupted,
        repeats,
        warmup_run,
        axes: scenario.matrix.axis_names().iter().map(|a| a.to_string()).collect(),
        capacity,
        cells: results,
        targets: Vec::new(),
        lost: 0,
        passed: false,
        system,
        redis: redis_info,
    };
    suite.judge(&scenario.targets);
    Ok(suite)
}

/// One run: conveyor's own path, or the queue behind the scenario's driver.
async fn run_one(
    s: &Scenario,
    redis: &Redis,
    options: &RunOptions,
    interrupt: Interrupt,
) -> Result<crate::bench::report::RunResult> {
    match s.driver.as_deref() {
        None | Some("native") => run_scenario(s, redis, options, interrupt).await,
        Some(name) => crate::bench::driver::run::run_driven(s, redis, name, options.private_server, interrupt).await,
    }
}

/// The closed-loop run that measures capacity: the scenario's workers and job mix, no matrix,
/// backlog, events or warm-up.
fn capacity_probe(scenario: &Scenario) -> Scenario {
    let mut s = scenario.clone();
    s.producer.rate = RatePlan::Max;
    s.producer.jobs = Some(scenario.probes.capacity_jobs);
    s.producer.duration = None;
    s.backlog = Backlog::default();
    s.events.clear();
    s.matrix = Matrix::default();
    s.phases.warmup = Duration::ZERO;
    s.phases.idle = Duration::ZERO;
    s.probes.redis_memory_jobs = 0;
    s.ceiling = false;
    // The capacity of the path, not of retries: jobs that fail or panic on purpose run as noop
    // here (their backoff would otherwise stretch the window and understate capacity).
    for j in &mut s.jobs {
        if matches!(j.kind, Some(KindName::Fail | KindName::Panic)) {
            j.kind = Some(KindName::Noop);
            j.probability = None;
        }
    }
    s
}
