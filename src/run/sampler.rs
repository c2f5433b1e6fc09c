//! Takes one [`Sample`] a second while a run goes: throughput since the last sample, queue
//! depth, this process's RSS and Redis' used memory. Reading them costs two round trips, small
//! next to a second of load.

use super::memory::used_memory;
use crate::actors::{Collector, TakeSnapshot};
use crate::connection::Redis;
use crate::queue::Queue;
use crate::report::Sample;
use crate::system;
use actix::Addr;
use std::time::Instant;

/// Most samples kept (a day at one a second); later ones are dropped.
const MAX_SAMPLES: usize = 86_400;

#[derive(Debug)]
pub struct Sampler {
    /// When the producers started: sample times count from here.
    origin: Instant,
    /// Completions and time of the previous sample.
    last: Option<(u64, Instant)>,
    pub samples: Vec<Sample>,
}

impl Sampler {
    pub fn new(origin: Instant) -> Self {
        Self { origin, last: Some((0, origin)), samples: Vec::new() }
    }

    /// Takes a sample now (errors leave the depth or memory at 0: a sample is never worth failing a run).
    pub async fn sample(
        &mut self,
        phase: &'static str,
        collector: &Addr<Collector>,
        queue: &Queue,
        redis: &Redis,
    ) -> Sample {
        let now = Instant::now();
        let snapshot = collector.send(TakeSnapshot).await.unwrap_or_default();
        let depth = queue.depth().await.unwrap_or_default();
        let completed = snapshot.workers.counts.completed;
        let jobs_per_second = match self.last {
            Some((c, at)) if now > at => completed.saturating_sub(c) as f64 / (now - at).as_secs_f64(),
            _ => 0.0,
        };
        self.last = Some((completed, now));
        let t_seconds =
            if now >= self.origin { (now - self.origin).as_secs_f64() } else { -(self.origin - now).as_secs_f64() };
        let sample = Sample {
            t_seconds,
            phase,
            produced: snapshot.producers.produced,
            completed,
            jobs_per_second,
            waiting: depth.waiting,
            in_flight: depth.in_flight,
            delayed: depth.delayed,
            dead: depth.dead,
            rss_bytes: system::process_rss_bytes(),
            redis_used_memory_bytes: used_memory(redis).await,
            end_to_end_p99_us: snapshot.workers.end_to_end.histogram().value_at_quantile(0.99),
        };
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(sample);
        }
        sample
    }

    /// Highest RSS seen so far.
    pub fn rss_max(&self) -> u64 {
        self.samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0)
    }
}
