//! The benchmark's observer of a worker: it turns settled jobs into the run's statistics
//! ([`WorkerStats`]: latency from the *intended* enqueue time, warm-up jobs left out of the
//! measured figures) and reports them to the collector in batches, by count or by time. Which
//! run a job belongs to and whether it was sent during warm-up travel in the job's headers
//! ([`BenchStamp`]), so the runtime carries them without knowing what they are.

use super::collector::WorkerReport;
use crate::bench::stats::WorkerStats;
use crate::runtime::queue::Envelope;
use crate::runtime::worker::{Observer, SettledBatch, Settlement};
use actix::Recipient;
use std::time::{Duration, Instant};

/// Report after this many settled jobs...
const REPORT_EVERY_JOBS: u64 = 5_000;
/// ...or this long, whichever comes first.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// What the benchmark stamps on each job it sends, in the job's headers: the run it belongs
/// to, and whether it was sent during warm-up. Five bytes: warm-up (0 or 1), run (u32 LE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchStamp {
    /// Number of the benchmark run that produced the job, so worker processes keep each run's
    /// statistics apart.
    pub run: u32,
    /// Produced during warm-up: processed and audited, but left out of the measured figures.
    pub warmup: bool,
}

impl BenchStamp {
    /// The headers that carry the stamp.
    pub fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5);
        out.push(u8::from(self.warmup));
        out.extend_from_slice(&self.run.to_le_bytes());
        out
    }

    /// A benchmark job of type `name`: audited as `seq`, stamped with this stamp, enqueued (or
    /// meant to be) at `intended_us`.
    pub fn job(self, name: &str, payload: Vec<u8>, seq: u64, intended_us: u64) -> Envelope {
        Envelope {
            enqueued_us: Some(intended_us),
            // Below 2^32 (validation bounds a scenario's jobs); beyond, a job is unaudited.
            seq: u32::try_from(seq).ok(),
            headers: Some(self.encode().into()),
            ..Envelope::new(name, payload)
        }
    }

    /// The stamp in a job's headers, if they hold one.
    pub fn decode(headers: Option<&[u8]>) -> Option<Self> {
        match headers? {
            [w @ (0 | 1), r0, r1, r2, r3] => {
                Some(Self { warmup: *w == 1, run: u32::from_le_bytes([*r0, *r1, *r2, *r3]) })
            }
            _ => None,
        }
    }
}

/// Statistics not yet reported, for the newest run seen.
pub struct StatsReporter {
    to: Recipient<WorkerReport>,
    run: u32,
    stats: WorkerStats,
    jobs: u64,
    since: Instant,
    /// Calls of `tick` (see there).
    turns: u32,
}

impl StatsReporter {
    /// Reports to `to` (the collector).
    pub fn new(to: Recipient<WorkerReport>) -> Self {
        Self { to, run: 0, stats: WorkerStats::default(), jobs: 0, since: Instant::now(), turns: 0 }
    }

    fn flush(&mut self) {
        if !self.stats.is_empty() {
            self.to.do_send(WorkerReport { run: self.run, stats: std::mem::take(&mut self.stats) });
        }
        self.jobs = 0;
        self.since = Instant::now();
    }
}

impl Observer for StatsReporter {
    fn settled(&mut self, batch: &SettledBatch<'_>) {
        let s = &mut self.stats;
        let c = &mut s.counts;
        c.completed += batch.settled.completed;
        c.retried += batch.settled.retried;
        c.dead += batch.settled.dead;
        c.duplicates += batch.settled.duplicates;
        for job in batch.jobs {
            if job.settlement == Settlement::Refused && job.started_us == 0 && job.name.is_empty() {
                s.counts.poison += 1;
                continue;
            }
            let stamp = BenchStamp::decode(job.headers).unwrap_or(BenchStamp { run: 0, warmup: true });
            self.run = self.run.max(stamp.run);
            if job.started_us == 0 {
                continue;
            }
            s.counts.started += 1;
            if job.settlement == Settlement::Completed {
                s.completions.record(job.finished_us.max(batch.settled_us));
            }
            if stamp.warmup {
                continue;
            }
            s.enqueue_to_start.record_us(job.started_us.saturating_sub(job.enqueued_us));
            s.start_to_complete.record_us(job.finished_us.saturating_sub(job.started_us));
            let first = &mut s.counts.first_start_us;
            if *first == 0 || job.started_us < *first {
                *first = job.started_us;
            }
            if job.settlement == Settlement::Completed {
                s.end_to_end.record_us(batch.settled_us.saturating_sub(job.enqueued_us));
                s.counts.measured_completed += 1;
                let last = &mut s.counts.last_complete_us;
                *last = (*last).max(job.finished_us.max(batch.settled_us));
            }
        }
        self.jobs += batch.jobs.len() as u64;
    }

    fn tick(&mut self, stopping: bool) {
        // The clock is read every 8th turn of the worker's loop (a busy one turns every few µs).
        self.turns = self.turns.wrapping_add(1);
        let look = self.jobs > 0 && self.turns.is_multiple_of(8);
        if stopping || self.jobs >= REPORT_EVERY_JOBS || (look && self.since.elapsed() >= REPORT_EVERY) {
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_round_trips_and_other_headers_are_not_one() {
        for stamp in [BenchStamp { run: 7, warmup: false }, BenchStamp { run: u32::MAX, warmup: true }] {
            assert_eq!(BenchStamp::decode(Some(&stamp.encode())), Some(stamp));
        }
        assert_eq!(BenchStamp::decode(None), None);
        assert_eq!(BenchStamp::decode(Some(b"traceparent")), None);
    }
}
