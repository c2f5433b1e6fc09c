//! The statistics a run is made of: HDR histograms of latency in microseconds (3 significant
//! digits) and counters. Each worker keeps its own [`WorkerStats`] and hands over a batch now
//! and then; the collector merges them with `add`, so percentiles always come from the merged
//! histogram, never from averaging percentiles. A worker process in another OS process encodes
//! its merged stats with the time it took them ([`WorkerStats::encode`], [`Published`]) and
//! publishes them through Redis.

use serde::{Deserialize, Serialize};

pub use crate::runtime::latency::Latency;

/// What workers measured and counted.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    /// From the intended enqueue time to the start of the handler (waiting).
    pub enqueue_to_start: Latency,
    /// From the start to the end of the handler (running).
    pub start_to_complete: Latency,
    /// From the intended enqueue time to the job being settled in Redis.
    pub end_to_end: Latency,
    /// What the workers counted, measured and warm-up jobs alike unless a field says otherwise.
    pub counts: WorkerCounts,
    /// When jobs completed, measured and warm-up alike: what a window's throughput counts (a
    /// backlog left by the warm-up is drained inside the measured window too).
    pub completions: Timeline,
}

/// Completions counted per 10 ms, from the first one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// The first bucket's index (µs since the epoch / [`Timeline::BUCKET_US`]).
    base: u64,
    counts: Vec<u32>,
}

impl Timeline {
    /// Width of one bucket.
    pub const BUCKET_US: u64 = 10_000;

    /// Counts one completion at `at_us` (µs since the epoch).
    pub fn record(&mut self, at_us: u64) {
        self.record_n(at_us / Self::BUCKET_US, 1);
    }

    fn record_n(&mut self, bucket: u64, n: u32) {
        if n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.base = bucket;
        }
        if bucket < self.base {
            let grow = (self.base - bucket) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.base = bucket;
        }
        let i = (bucket - self.base) as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
    }

    /// Adds another timeline's counts.
    pub fn add(&mut self, o: &Timeline) {
        for (i, n) in o.counts.iter().enumerate() {
            self.record_n(o.base + i as u64, *n);
        }
    }

    /// Completions from `from_us` to `to_us` (µs since the epoch); the buckets at either end
    /// counted for the part of them inside.
    pub fn between(&self, from_us: u64, to_us: u64) -> f64 {
        let w = Self::BUCKET_US;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let start = (self.base + i as u64) * w;
                let inside = (start + w).min(to_us).saturating_sub(start.max(from_us));
                f64::from(*n) * inside as f64 / w as f64
            })
            .sum()
    }

    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Counters that travel with [`WorkerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounts {
    /// Jobs whose handler started (measured and warm-up).
    pub started: u64,
    /// Jobs settled as completed (measured and warm-up).
    pub completed: u64,
    /// Of `completed`, jobs produced during the measured phase.
    pub measured_completed: u64,
    /// Failed attempts scheduled for another try (a job retried twice counts twice).
    pub retried: u64,
    /// Jobs moved to the dead letters (out of attempts, refused, or undecodable: `poison` is a part
    /// of this).
    pub dead: u64,
    /// Jobs completed although the audit says they had finished before.
    pub duplicates: u64,
    /// Entries that could not be decoded (moved to the dead letters).
    pub poison: u64,
    /// Earliest start of a measured job (µs since the epoch; 0 = none yet).
    pub first_start_us: u64,
    /// Latest completion of a measured job (µs since the epoch).
    pub last_complete_us: u64,
}

impl WorkerCounts {
    /// Distinct jobs these counts finished (completed or dead; a duplicate completes twice).
    pub fn distinct_finished(&self) -> u64 {
        (self.completed + self.dead).saturating_sub(self.duplicates)
    }

    /// Adds another worker's counts: sums, the earliest first start and the latest completion.
    pub fn add(&mut self, o: &WorkerCounts) {
        self.started += o.started;
        self.completed += o.completed;
        self.measured_completed += o.measured_completed;
        self.retried += o.retried;
        self.dead += o.dead;
        self.duplicates += o.duplicates;
        self.poison += o.poison;
        self.first_start_us = match (self.first_start_us, o.first_start_us) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.last_complete_us = self.last_complete_us.max(o.last_complete_us);
    }
}

#[derive(Serialize, Deserialize)]
struct Encoded {
    counts: WorkerCounts,
    #[serde(with = "serde_bytes")]
    enqueue_to_start: Vec<u8>,
    #[serde(with = "serde_bytes")]
    start_to_complete: Vec<u8>,
    #[serde(with = "serde_bytes")]
    end_to_end: Vec<u8>,
    /// Missing in what an older conveyor published.
    #[serde(default)]
    at_us: u64,
    /// Missing in what an older conveyor published.
    #[serde(default)]
    completions: Timeline,
}

/// A worker process's statistics as it published them through Redis.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The process's merged worker statistics.
    pub stats: WorkerStats,
    /// When the process took them (µs since the epoch by its own clock; 0 when it did not say).
    /// Two publications of one process give its rate, however late a reader sees them.
    pub at_us: u64,
}

impl Published {
    /// Reads what [`WorkerStats::encode`] wrote; the error says what could not be decoded.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let e: Encoded = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
        let stats = WorkerStats {
            enqueue_to_start: Latency::decode(&e.enqueue_to_start)?,
            start_to_complete: Latency::decode(&e.start_to_complete)?,
            end_to_end: Latency::decode(&e.end_to_end)?,
            counts: e.counts,
            completions: e.completions,
        };
        Ok(Self { stats, at_us: e.at_us })
    }
}

impl WorkerStats {
    /// Merges another worker's statistics: histograms are added, never averaged.
    pub fn add(&mut self, o: &WorkerStats) {
        self.enqueue_to_start.add(&o.enqueue_to_start);
        self.start_to_complete.add(&o.start_to_complete);
        self.end_to_end.add(&o.end_to_end);
        self.counts.add(&o.counts);
        self.completions.add(&o.completions);
    }

    /// Nothing counted yet (the histograms are then empty too), so there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.counts == WorkerCounts::default()
    }

    /// The statistics as published, stamped with the time `at_us` they were taken.
    pub fn encode(&self, at_us: u64) -> Vec<u8> {
        rmp_serde::to_vec(&Encoded {
            counts: self.counts,
            enqueue_to_start: self.enqueue_to_start.encode(),
            start_to_complete: self.start_to_complete.encode(),
            end_to_end: self.end_to_end.encode(),
            at_us,
            completions: self.completions.clone(),
        })
        .expect("stats always serialize")
    }
}

/// What producers measured and counted.
#[derive(Debug, Clone, Default)]
pub struct ProducerStats {
    /// Duration of each enqueue call (one pipelined batch).
    pub enqueue_call: Latency,
    /// How far behind its plan the producer was when it sent each batch.
    pub schedule_lag: Latency,
    /// Jobs acknowledged by Redis, warm-up included.
    pub produced: u64,
    /// Of `produced`, jobs sent during warm-up.
    pub produced_warmup: u64,
    /// Enqueue calls that failed (their jobs are not counted as produced).
    pub enqueue_errors: u64,
    /// When the measured phase's first job was due (µs since the epoch; 0 = none).
    pub measure_start_us: u64,
}

impl ProducerStats {
    /// Merges another producer's statistics: histograms added, counts summed, the earliest
    /// measured start kept.
    pub fn add(&mut self, o: &ProducerStats) {
        self.enqueue_call.add(&o.enqueue_call);
        self.schedule_lag.add(&o.schedule_lag);
        self.produced += o.produced;
        self.produced_warmup += o.produced_warmup;
        self.enqueue_errors += o.enqueue_errors;
        self.measure_start_us = match (self.measure_start_us, o.measure_start_us) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_percentiles_come_from_the_merged_histogram() {
        let (mut a, mut b) = (WorkerStats::default(), WorkerStats::default());
        for us in 1..=900 {
            a.end_to_end.record_us(us);
        }
        for _ in 0..100 {
            b.end_to_end.record_us(1_000_000);
        }
        a.counts.completed = 900;
        b.counts.completed = 100;
        let published = Published::decode(&b.encode(1_234)).unwrap();
        assert_eq!(published.at_us, 1_234);
        a.add(&published.stats);
        assert_eq!(a.counts.completed, 1000);
        let h = a.end_to_end.histogram();
        assert_eq!(h.len(), 1000);
        assert!(h.value_at_quantile(0.5) < 600);
        assert!(h.value_at_quantile(0.95) > 990_000);
    }

    #[test]
    fn a_timeline_counts_the_completions_of_a_window_wherever_they_were_recorded() {
        let (mut a, mut b) = (Timeline::default(), Timeline::default());
        for ms in 0..100u64 {
            a.record(1_000_000_000 + ms * 1000); // one per ms for 100 ms
        }
        b.record(999_990_000); // 10 ms before a's first
        b.record(1_000_050_500);
        let published = Published::decode(&WorkerStats { completions: b, ..WorkerStats::default() }.encode(1)).unwrap();
        a.add(&published.stats.completions);
        assert_eq!(a.between(0, u64::MAX), 102.0);
        assert_eq!(a.between(1_000_000_000, 1_000_100_000), 101.0);
        assert_eq!(a.between(1_000_000_000, 1_000_005_000), 5.0, "half of the first bucket's ten");
    }
}
