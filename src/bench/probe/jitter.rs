//! How late this machine wakes a sleeping thread: the floor under every latency measured on it.
//!
//! A probe thread sleeps until deadlines 1 ms apart (the spacing of jobs at 1,000 jobs/s) and
//! records how late each wake-up came, in an HDR histogram. Nothing of conveyor or Redis is on
//! that path, so its tail is the machine's own: on a virtual machine a CPU can be taken away
//! for milliseconds at a time (here: about 2.3 ms every 512 ms on one of the two vCPUs, while
//! the kernel's DAMON thread samples memory), and no job queue on that machine can start a job
//! sooner than its threads are allowed to run. `conveyor bench` runs a probe beside each
//! open-loop latency measurement and prints both, so a tail can be read against the floor
//! measured in the same window.

use crate::bench::stats::Latency;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Time between the probe's deadlines.
const TICK: Duration = Duration::from_millis(1);

/// A running probe; [`Probe::finish`] stops it and returns how late its wake-ups were.
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Latency>,
}

impl Probe {
    /// Starts the probe thread.
    pub fn start() -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("conveyor-jitter".into()).spawn(move || {
            crate::runtime::process::precise_wakeups();
            let mut late = Latency::default();
            let mut deadline = Instant::now() + TICK;
            while !flag.load(Ordering::Relaxed) {
                if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let now = Instant::now();
                late.record_us(now.duration_since(deadline).as_micros() as u64);
                // One record per wake-up: deadlines missed while away are skipped, not replayed.
                deadline += TICK;
                while deadline <= now {
                    deadline += TICK;
                }
            }
            late
        })?;
        Ok(Self { stop, thread })
    }

    /// Stops the probe; the lateness of every wake-up (µs).
    pub fn finish(self) -> Latency {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_records_one_lateness_per_wake_up() {
        let began = Instant::now();
        let probe = Probe::start().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let late = probe.finish();
        let elapsed_ms = began.elapsed().as_millis() as u64;
        // Fewer than one a millisecond when the machine stalls, never more: missed deadlines
        // are not replayed as a burst of wake-ups.
        assert!(late.len() <= elapsed_ms + 1, "{} wake-ups in {elapsed_ms} ms", late.len());
        assert!(late.histogram().max() <= elapsed_ms * 1000, "no wake-up is later than the whole run");
    }
}
