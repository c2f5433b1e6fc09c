//! The backlog: jobs enqueued before any worker starts, so a run begins with a queue already
//! `N` deep. Backlog jobs take sequence numbers `0..N` (producers continue above them) and are
//! audited like any other job; unless the scenario says `measured = true` they are marked as
//! warm-up, so they are processed but left out of throughput and latency.

use crate::bench::load::{BenchStamp, Collector, ProducerReport};
use crate::bench::scenario::Scenario;
use crate::bench::stats::ProducerStats;
use crate::runtime::clock;
use crate::runtime::error::Result;
use crate::runtime::queue::{Envelope, Queue};
use actix::Addr;
use rand::Rng;
use std::time::Instant;

/// Jobs per pipelined call.
const BATCH: u64 = 1_000;

/// Enqueues the scenario's backlog and tells the collector it was produced. Returns how long it
/// took.
pub async fn fill(queue: &Queue, scenario: &Scenario, run: u32, collector: &Addr<Collector>) -> Result<f64> {
    let jobs = scenario.backlog.jobs;
    let began = Instant::now();
    if jobs == 0 {
        return Ok(0.0);
    }
    let total_weight: u32 = scenario.jobs.iter().map(|j| j.weight).sum();
    let mut rng = rand::rng();
    let mut stats = ProducerStats::default();
    let mix: Vec<(String, Vec<u8>)> = scenario.jobs.iter().map(|j| j.job()).collect();
    let stamp = BenchStamp { run, warmup: !scenario.backlog.measured };
    let mut seq = 0;
    while seq < jobs {
        let n = (jobs - seq).min(BATCH);
        let now = clock::now_us();
        let batch: Vec<Envelope> = (seq..seq + n)
            .map(|s| {
                let mut pick = rng.random_range(0..total_weight.max(1));
                let i = scenario
                    .jobs
                    .iter()
                    .position(|j| {
                        let hit = pick < j.weight;
                        pick = pick.saturating_sub(j.weight);
                        hit
                    })
                    .unwrap_or(0);
                stamp.job(&mix[i].0, mix[i].1.clone(), s, now)
            })
            .collect();
        let call = Instant::now();
        queue.enqueue_batch(&batch).await?;
        stats.enqueue_call.record_us(call.elapsed().as_micros() as u64);
        seq += n;
    }
    stats.produced = jobs;
    if !scenario.backlog.measured {
        stats.produced_warmup = jobs;
    }
    collector.do_send(ProducerReport { stats });
    Ok(began.elapsed().as_secs_f64())
}

/// Marks the moment workers are let loose on a measured backlog as the start of measurement.
pub fn release(collector: &Addr<Collector>, scenario: &Scenario) {
    if scenario.backlog.jobs > 0 && scenario.backlog.measured {
        let stats = ProducerStats { measure_start_us: clock::now_us(), ..Default::default() };
        collector.do_send(ProducerReport { stats });
    }
}
