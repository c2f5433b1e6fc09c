//! How late this machine wakes a sleeping thread: the floor under every latency measured on it.
//!
//! A probe thread sleeps until deadlines 1 ms apart (the spacing of jobs at 1,000 jobs/s) and
//! records how late each wake-up came, in an HDR histogram. Nothing of conveyor or Redis is on
//! that path, so its tail is the machine's own: on a virtual machine a CPU can be taken away
//! for milliseconds at a time (here: about 2.3 ms every 512 ms on one of the two vCPUs, while
//! the kernel's DAMON thread samples memory), and no job queue on that machine can start a job
//! sooner than its threads are allowed to run. `conveyor bench` runs a probe beside each
//! open-loop latency measurement and prints both, so a tail can be read against the floor
//! measured in the same window. It also reads how much CPU time the host took from this
//! machine's vCPUs meanwhile (steal time in `/proc/stat`, where the hypervisor reports it): a
//! vCPU taken away stops whatever runs on it, the producer, a worker or Redis.

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
    steal_at_start: Option<u64>,
}

/// What a [`Probe`] saw over its window.
#[derive(Debug)]
pub struct Floor {
    /// How late each of the probe's wake-ups came (µs).
    pub wake_late: Latency,
    /// CPU time the host took from this machine's vCPUs, summed over them; `None` where the
    /// kernel does not say (no `/proc/stat`).
    pub steal: Option<Duration>,
}

/// Linux reports `/proc/stat` times in USER_HZ ticks, 100 per second on every architecture.
const USER_HZ: u64 = 100;

/// Steal time of all CPUs so far, in ticks: the eighth number of `/proc/stat`'s `cpu` line.
fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    steal_of(stat.lines().next()?)
}

fn steal_of(cpu_line: &str) -> Option<u64> {
    let mut fields = cpu_line.split_whitespace();
    (fields.next()? == "cpu").then_some(())?;
    fields.nth(7)?.parse().ok()
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
        Ok(Self { stop, thread, steal_at_start: steal_ticks() })
    }

    /// Stops the probe: how late its wake-ups came, and the steal time of its window.
    pub fn finish(self) -> Floor {
        self.stop.store(true, Ordering::Relaxed);
        let wake_late = self.thread.join().unwrap_or_default();
        let steal = self
            .steal_at_start
            .zip(steal_ticks())
            .map(|(from, to)| Duration::from_millis(to.saturating_sub(from) * 1000 / USER_HZ));
        Floor { wake_late, steal }
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
        let late = probe.finish().wake_late;
        let elapsed_ms = began.elapsed().as_millis() as u64;
        // Fewer than one a millisecond when the machine stalls, never more: missed deadlines
        // are not replayed as a burst of wake-ups.
        assert!(late.len() <= elapsed_ms + 1, "{} wake-ups in {elapsed_ms} ms", late.len());
        assert!(late.histogram().max() <= elapsed_ms * 1000, "no wake-up is later than the whole run");
    }

    #[test]
    fn steal_is_the_eighth_time_of_the_cpu_line() {
        assert_eq!(steal_of("cpu  3653049 115973 470975 1289778 8106 0 87452 28184 0 0"), Some(28184));
        assert_eq!(steal_of("cpu0 1794800 56046 230827 686123 2211 0 42487 14130 0 0"), None);
        assert_eq!(steal_of("cpu  1 2 3"), None);
        // This machine's kernel has /proc/stat (every Linux does).
        assert!(steal_ticks().is_some());
    }
}
