//! Takes one [`Sample`] a second while a run goes: throughput since the last sample, queue
//! depth, this process's RSS and Redis' used memory. Completions, throughput and the end-to-end
//! p99 count this process's workers and every worker process that publishes its statistics for
//! the run ([`super::published`]); a figure nobody reported is unknown (None), never 0. Reading
//! them costs three round trips, and a histogram copy only when both kinds of workers report:
//! small next to a second of load.
//!
//! What the sampler keeps has a fixed size, so a day-long soak measures conveyor's memory, not
//! its own bookkeeping: at most [`MAX_SAMPLES`] samples, thinned to every 2nd, 4th, ... second
//! as the run grows longer (every sample is still shown as progress). After each sample it hands
//! the allocator's free pages back to the OS ([`crate::runtime::process::release_free_memory`]), so RSS follows
//! what the process holds, not the high-water mark of its bursts.

use super::memory::used_memory;
use super::published;
use crate::bench::load::{Collector, TakeCounts, TakeSnapshot};
use crate::bench::report::Sample;
use crate::bench::stats::Latency;
use crate::runtime::connection::Redis;
use crate::runtime::queue::Queue;

use actix::Addr;
use std::collections::HashMap;
use std::time::Instant;

/// Most samples kept: 17 minutes at one a second, a 1-hour soak at one every 4 seconds.
pub const MAX_SAMPLES: usize = 1_024;

#[derive(Debug)]
pub struct Sampler {
    /// When the producers started: sample times count from here.
    origin: Instant,
    /// This process runs workers (false for `conveyor produce`): its own figures are known.
    local_workers: bool,
    /// Completions of this process's workers and time of the previous sample.
    last: (u64, Instant),
    remote: Remote,
    timeline: Timeline,
    rss_max: u64,
}

/// Where worker processes elsewhere publish their statistics, and what each had published by
/// the previous sample: (completed, when it took them by its own clock, µs).
#[derive(Debug)]
pub struct Remote {
    pub queue: Queue,
    pub run: u32,
    /// This process's instance name (its own entry, if any, is not another process).
    pub instance: String,
    seen: HashMap<String, (u64, u64)>,
}

impl Remote {
    pub fn new(queue: Queue, run: u32, instance: String) -> Self {
        Self { queue, run, instance, seen: HashMap::new() }
    }
}

/// What the worker processes elsewhere had published by one sample.
#[derive(Debug, Default)]
struct RemoteFigures {
    /// Processes that published for the run.
    processes: usize,
    completed: u64,
    /// Their summed rate since the previous sample; None while one of them has no earlier
    /// publication to measure from (its first sample) or Redis could not be read.
    jobs_per_second: Option<f64>,
    end_to_end: Latency,
}

impl Sampler {
    pub fn new(origin: Instant, local_workers: bool, remote: Remote) -> Self {
        Self { origin, local_workers, last: (0, origin), remote, timeline: Timeline::default(), rss_max: 0 }
    }

    /// Takes a sample now (errors leave the depth or memory at 0, and make remote figures
    /// unknown: a sample is never worth failing a run).
    pub async fn sample(
        &mut self,
        phase: &'static str,
        collector: &Addr<Collector>,
        queue: &Queue,
        redis: &Redis,
    ) -> Sample {
        let now = Instant::now();
        let counts = collector.send(TakeCounts).await.unwrap_or_default();
        // The Redis reads at once: when Redis or the pool is slow for a moment, a sample waits
        // for it once, not once per read.
        let (depth, remote, redis_used_memory_bytes) =
            futures::join!(queue.depth(), self.remote_figures(), used_memory(redis));
        let depth = depth.unwrap_or_default();
        let (last_completed, last_at) = self.last;
        let local_rate = if now > last_at {
            counts.completed.saturating_sub(last_completed) as f64 / (now - last_at).as_secs_f64()
        } else {
            0.0
        };
        self.last = (counts.completed, now);
        let local = (Some(counts.completed), Some(local_rate), counts.end_to_end_p99_us);
        let (completed, jobs_per_second, end_to_end_p99_us) = match remote {
            // Redis unreadable this time: only a run that never had other processes knows.
            None if self.local_workers && self.remote.seen.is_empty() => local,
            None => (None, None, None),
            Some(r) if r.processes == 0 => {
                if self.local_workers {
                    local
                } else {
                    (None, None, None)
                }
            }
            Some(mut r) => {
                let (mut completed, mut rate) = (r.completed, r.jobs_per_second);
                if self.local_workers {
                    completed += counts.completed;
                    rate = rate.map(|r| r + local_rate);
                    if counts.end_to_end_p99_us.is_some()
                        && let Ok(snapshot) = collector.send(TakeSnapshot).await
                    {
                        r.end_to_end.add(&snapshot.workers.end_to_end);
                    }
                }
                (Some(completed), rate, r.end_to_end.p99_us())
            }
        };
        let t_seconds =
            if now >= self.origin { (now - self.origin).as_secs_f64() } else { -(self.origin - now).as_secs_f64() };
        let sample = Sample {
            t_seconds,
            phase,
            produced: counts.produced,
            completed,
            jobs_per_second,
            waiting: depth.waiting,
            in_flight: depth.in_flight,
            delayed: depth.delayed + depth.retrying,
            dead: depth.dead,
            rss_bytes: crate::runtime::process::process_rss_bytes(),
            redis_used_memory_bytes,
            end_to_end_p99_us,
        };
        self.rss_max = self.rss_max.max(sample.rss_bytes);
        self.timeline.push(sample);
        // After reading RSS, so each sample shows what the last second left resident.
        crate::runtime::process::release_free_memory_in_background();
        sample
    }

    /// What worker processes elsewhere published, with their rate since the previous sample;
    /// None when Redis could not be read.
    async fn remote_figures(&mut self) -> Option<RemoteFigures> {
        let r = &mut self.remote;
        let published = match published::read(&r.queue, r.run, &r.instance).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "reading published statistics failed; remote figures unknown this sample");
                return None;
            }
        };
        let mut figures =
            RemoteFigures { processes: published.len(), jobs_per_second: Some(0.0), ..Default::default() };
        for (name, p) in published {
            let completed = p.stats.counts.completed;
            figures.completed += completed;
            figures.end_to_end.add(&p.stats.end_to_end);
            let rate = match r.seen.get(&name) {
                // A newer publication: its own clock times the interval.
                Some(&(before, at)) if p.at_us > at => {
                    Some(completed.saturating_sub(before) as f64 / ((p.at_us - at) as f64 / 1e6))
                }
                // Nothing new for a whole sample: a live process publishes four times a second
                // (idle ones too, for a while), so this one has done nothing since.
                Some(_) if p.at_us > 0 => Some(0.0),
                _ => None,
            };
            figures.jobs_per_second = figures.jobs_per_second.zip(rate).map(|(a, b)| a + b);
            r.seen.insert(name, (completed, p.at_us));
        }
        Some(figures)
    }

    /// Highest RSS seen so far.
    pub fn rss_max(&self) -> u64 {
        self.rss_max
    }

    /// The samples kept, oldest first.
    pub fn into_samples(self) -> Vec<Sample> {
        self.timeline.samples
    }
}

/// Samples taken every `stride`-th time, at most [`MAX_SAMPLES`] of them: when full, every
/// other one is dropped and the stride doubles, so the kept ones stay evenly spaced.
#[derive(Debug)]
struct Timeline {
    samples: Vec<Sample>,
    stride: u64,
    /// Samples offered so far.
    offered: u64,
}

impl Default for Timeline {
    fn default() -> Self {
        Self { samples: Vec::with_capacity(MAX_SAMPLES), stride: 1, offered: 0 }
    }
}

impl Timeline {
    fn push(&mut self, sample: Sample) {
        if self.offered.is_multiple_of(self.stride) {
            self.samples.push(sample);
            if self.samples.len() == MAX_SAMPLES {
                let mut keep = false;
                self.samples.retain(|_| {
                    keep = !keep;
                    keep
                });
                self.stride *= 2;
            }
        }
        self.offered += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_timeline_is_thinned_evenly_and_never_outgrows_its_bound() {
        let mut timeline = Timeline::default();
        let capacity = timeline.samples.capacity();
        let offered = 10 * MAX_SAMPLES as u64 + 7;
        for i in 0..offered {
            timeline.push(Sample { t_seconds: i as f64, ..Default::default() });
            assert!(timeline.samples.len() < MAX_SAMPLES);
        }
        assert_eq!(timeline.samples.capacity(), capacity, "the buffer never reallocates");
        assert_eq!(timeline.stride, 16);
        let t: Vec<f64> = timeline.samples.iter().map(|s| s.t_seconds).collect();
        assert_eq!(t[0], 0.0, "the first sample is kept");
        assert!(t.windows(2).all(|w| w[1] - w[0] == 16.0), "evenly spaced at the stride");
        assert!(offered as f64 - 1.0 - t[t.len() - 1] < 16.0, "reaches the latest stride");
        assert!(timeline.samples.len() > MAX_SAMPLES / 2);
    }

    #[test]
    fn a_short_timeline_keeps_every_sample() {
        let mut timeline = Timeline::default();
        for i in 0..(MAX_SAMPLES - 1) {
            timeline.push(Sample { t_seconds: i as f64, ..Default::default() });
        }
        assert_eq!(timeline.samples.len(), MAX_SAMPLES - 1);
        assert_eq!(timeline.stride, 1);
    }
}
