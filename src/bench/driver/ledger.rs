//! The exact-delivery audit of a driver run, kept by conveyor itself: every job it handed the
//! driver (by sequence number, with its intended time and whether it counts), and every record
//! the driver's workers sent back. A job with no record after the drain is lost; a second
//! record of a job is a duplicate. Latency comes from conveyor's own intended time, so a driver
//! cannot change what is measured, only report when its workers ran.

use super::protocol::Record;
use crate::bench::stats::WorkerStats;

/// What conveyor knows of one sequence number.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// When the job was meant to be sent (µs since the epoch); 0 = never sent.
    intended_us: u64,
    /// Sent during warm-up (or as a memory-probe job): audited, not measured.
    warmup: bool,
    /// Records received for it.
    runs: u32,
}

/// Sent jobs and the records that came back.
#[derive(Debug, Default)]
pub struct Ledger {
    slots: Vec<Slot>,
    /// Latency and counts of the records, as the native run's workers would report them.
    pub stats: WorkerStats,
    /// Distinct jobs with at least one record.
    pub finished: u64,
    /// Records whose sequence number conveyor never sent (counted as duplicates too: delivery
    /// was not exact).
    pub unexpected: u64,
    /// Records received, duplicates included.
    pub records: u64,
}

impl Ledger {
    /// Notes that job `seq` goes to the driver, meant for `intended_us`.
    pub fn sent(&mut self, seq: u64, intended_us: u64, warmup: bool) {
        let i = seq as usize;
        if i >= self.slots.len() {
            self.slots.resize(i + 1 + i / 2, Slot::default());
        }
        let slot = &mut self.slots[i];
        slot.intended_us = intended_us.max(1);
        slot.warmup = warmup;
    }

    /// Takes in one record of a run job.
    pub fn record(&mut self, r: &Record) {
        self.records += 1;
        let c = &mut self.stats.counts;
        c.started += 1;
        c.completed += 1;
        let Some(slot) = self.slots.get_mut(r.seq as usize).filter(|s| s.intended_us > 0) else {
            self.unexpected += 1;
            c.duplicates += 1;
            return;
        };
        slot.runs += 1;
        if slot.runs > 1 {
            c.duplicates += 1;
            return;
        }
        self.finished += 1;
        if slot.warmup {
            return;
        }
        let (started_us, finished_us) = (r.started_ns / 1_000, r.finished_ns / 1_000);
        let s = &mut self.stats;
        s.enqueue_to_start.record_us(started_us.saturating_sub(slot.intended_us));
        s.start_to_complete.record_us(finished_us.saturating_sub(started_us));
        s.end_to_end.record_us(finished_us.saturating_sub(slot.intended_us));
        s.counts.measured_completed += 1;
        let first = &mut s.counts.first_start_us;
        if *first == 0 || started_us < *first {
            *first = started_us;
        }
        s.counts.last_complete_us = s.counts.last_complete_us.max(finished_us);
    }

    /// Whether every job with a sequence number below `below` that was sent has a record.
    pub fn all_finished_below(&self, below: u64) -> bool {
        self.slots.iter().take(below as usize).all(|s| s.intended_us == 0 || s.runs > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, started_ns: u64, finished_ns: u64) -> Record {
        Record { seq, enqueued_ns: 0, started_ns, finished_ns, pid: 1 }
    }

    #[test]
    fn a_second_record_is_a_duplicate_and_a_missing_one_is_not_finished() {
        let mut l = Ledger::default();
        l.sent(0, 1_000, true);
        l.sent(1, 2_000, false);
        l.sent(2, 3_000, false);
        l.record(&record(0, 1_500_000, 1_600_000));
        l.record(&record(1, 2_500_000, 2_600_000));
        l.record(&record(1, 2_700_000, 2_800_000));
        l.record(&record(9, 1, 2));
        assert_eq!(l.finished, 2, "jobs 0 and 1 ran, job 2 did not");
        assert_eq!(l.stats.counts.duplicates, 2, "job 1 twice, and job 9 was never sent");
        assert_eq!(l.unexpected, 1);
        assert_eq!(l.stats.counts.measured_completed, 1, "job 0 is warm-up, job 1 measured once");
        assert_eq!(l.stats.end_to_end.histogram().max(), 600, "from the intended time, in µs");
        assert!(l.all_finished_below(2));
        assert!(!l.all_finished_below(3));
    }
}
