//! Sub-millisecond sleeps without spinning. The tokio timer wheel has a 1 ms tick, so a 10 ms
//! sleep measures 10–11 ms and an open-loop producer would send up to 1 ms late. Two ways, for
//! two kinds of sleeper:
//!
//! - [`sleep`]: many sleepers at once (sleep jobs, thousands of them with high concurrency) share
//!   one timer thread that waits on the OS clock directly and wakes each at its deadline.
//! - [`LoopTimer`]: a lone sleeper whose wake-up is on a latency path (an open-loop producer's
//!   next send) keeps a `timerfd` of its own (a kernel high-resolution timer, no timer slack) in
//!   the event loop's own epoll and arms it again for each sleep, so the event loop wakes at the
//!   deadline itself instead of being woken by a thread that woke at the deadline: one wake-up
//!   per job instead of two. A descriptor per sleeper makes it wrong for many sleepers: 2,000
//!   concurrent 20 ms sleep jobs, each with a timerfd of its own, ran at 32,000 jobs/s against
//!   62,000 on the timer thread.
//!
//! Even a timerfd wakes a sleeping thread late by the machine's wake-up delay: 68 µs at the
//! median for an open-loop producer at 1,000 jobs/s on a 2-vCPU virtual machine, where waking a
//! halted vCPU costs the host an interrupt. [`LoopTimer::sleep_precisely`] fires early by what
//! wake-ups have lately cost and yields to the event loop for the rest, so the producer sends
//! on time (its schedule lag's median fell from 68 µs to 1 µs there) at the price of being
//! awake a little ahead of each send.

use std::time::{Duration, Instant};

/// Sleeps for `d` on the shared timer thread, waking within tens of microseconds of the deadline.
pub async fn sleep(d: Duration) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if PRECISE_TIMER.send(Sleeper { deadline: Instant::now() + d, wake: tx }).is_err() {
        tokio::time::sleep(d).await;
        return;
    }
    let _ = rx.await;
}

/// A timer for one sleeper at a time, on the event loop it is made on (see the module notes);
/// it falls back to [`sleep`] off Linux or when no timerfd can be made.
pub struct LoopTimer {
    #[cfg(target_os = "linux")]
    fd: Option<timerfd::TimerFd>,
    /// How late this loop's wake-ups have come, µs: a running estimate of their 90th
    /// percentile, which [`LoopTimer::sleep_precisely`] arms its timer that much early by.
    late_p90_us: f64,
}

impl LoopTimer {
    /// Must be made within the tokio runtime whose event loop it is to wake.
    pub fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            fd: timerfd::TimerFd::new()
                .inspect_err(|e| tracing::debug!(error = %e, "timerfd unavailable; sleeping on the timer thread"))
                .ok(),
            late_p90_us: 0.0,
        }
    }

    /// Sleeps for `d` and returns within microseconds of the deadline rather than within the
    /// machine's wake-up delay (tens of µs when idle on a virtual machine): the timer fires
    /// early, by how late wake-ups have lately come but by at most `max_lead`, and the rest is
    /// spent yielding to the event loop, which polls its I/O and runs its other tasks
    /// meanwhile. That rest costs CPU, up to `max_lead` per sleep: the caller bounds it.
    pub async fn sleep_precisely(&mut self, d: Duration, max_lead: Duration) {
        let deadline = Instant::now() + d;
        let lead = Duration::from_micros(self.late_p90_us as u64).min(max_lead);
        if let Some(early) = d.checked_sub(lead).filter(|e| !e.is_zero()) {
            let armed = Instant::now() + early;
            self.sleep(early).await;
            self.learn(Instant::now().saturating_duration_since(armed));
        }
        while Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }

    /// Folds one wake-up's lateness into the running 90th percentile (a step up 9 times the
    /// size of a step down settles where 9 in 10 wake-ups are below it).
    fn learn(&mut self, late: Duration) {
        const STEP_US: f64 = 1.0;
        const MOST_US: f64 = 1_000.0;
        let late = late.as_secs_f64() * 1e6;
        self.late_p90_us = if late > self.late_p90_us {
            (self.late_p90_us + 9.0 * STEP_US).min(MOST_US)
        } else {
            (self.late_p90_us - STEP_US).max(0.0)
        };
    }

    /// Sleeps for `d`, waking at the deadline (within the machine's wake-up delay).
    pub async fn sleep(&mut self, d: Duration) {
        if d.is_zero() {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            match fd.sleep(d).await {
                Ok(()) => return,
                Err(e) => tracing::debug!(error = %e, "timerfd failed; sleeping on the timer thread"),
            }
        }
        sleep(d).await;
    }
}

impl Default for LoopTimer {
    fn default() -> Self {
        Self::new()
    }
}

/// A sleeping job waiting for its deadline.
struct Sleeper {
    deadline: Instant,
    wake: tokio::sync::oneshot::Sender<()>,
}

impl PartialEq for Sleeper {
    fn eq(&self, o: &Self) -> bool {
        self.deadline == o.deadline
    }
}
impl Eq for Sleeper {}
impl PartialOrd for Sleeper {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Sleeper {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Earliest deadline first in a max-heap.
        o.deadline.cmp(&self.deadline)
    }
}

/// The timer thread's inbox; the thread lives as long as the process.
static PRECISE_TIMER: std::sync::LazyLock<std::sync::mpsc::Sender<Sleeper>> = std::sync::LazyLock::new(|| {
    let (tx, rx) = std::sync::mpsc::channel::<Sleeper>();
    std::thread::Builder::new()
        .name("conveyor-timer".into())
        .spawn(move || {
            crate::runtime::process::precise_wakeups();
            let mut heap = std::collections::BinaryHeap::<Sleeper>::new();
            loop {
                let next = heap.peek().map(|s| s.deadline.saturating_duration_since(Instant::now()));
                let received = match next {
                    Some(wait) => rx.recv_timeout(wait),
                    None => rx.recv().map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(s) => heap.push(s),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
                let now = Instant::now();
                while heap.peek().is_some_and(|s| s.deadline <= now) {
                    let _ = heap.pop().expect("peeked").wake.send(());
                }
            }
        })
        .expect("spawn the timer thread");
    tx
});

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod timerfd {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    /// A `timerfd` registered with the running tokio reactor, armed once per sleep.
    pub struct TimerFd(AsyncFd<Fd>);

    struct Fd(OwnedFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }

    impl TimerFd {
        /// A disarmed timer. Must be called within a tokio runtime.
        pub fn new() -> io::Result<Self> {
            // SAFETY: timerfd_create takes flags only and returns a new descriptor or -1.
            let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a descriptor we just opened and own alone.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: `Fd` owns the descriptor and closes it only when dropped, after the
            // `AsyncFd` that holds it has deregistered it.
            Ok(Self(unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) }?))
        }

        /// Fires once, `d` (> 0) from now, and waits for it. Arming resets the expiry count, so
        /// an expiry left unread by an earlier, abandoned sleep does not end this one early.
        pub async fn sleep(&self, d: Duration) -> io::Result<()> {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            let value = libc::timespec {
                tv_sec: d.as_secs().try_into().unwrap_or(libc::time_t::MAX),
                tv_nsec: d.subsec_nanos().into(),
            };
            let spec = libc::itimerspec { it_interval: zero, it_value: value };
            // SAFETY: our own timerfd; `spec` lives across the call; the old value is not asked
            // for.
            if unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
                return Err(io::Error::last_os_error());
            }
            loop {
                let mut ready = self.0.readable().await?;
                let mut expirations = [0u8; 8];
                // SAFETY: reads at most 8 bytes into a buffer of 8 from our own descriptor.
                let n = unsafe { libc::read(self.0.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len()) };
                if n == 8 {
                    return Ok(());
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock {
                    return Err(e);
                }
                // Readiness left from an earlier expiry, or not fired yet: wait for the next.
                ready.clear_ready();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn neither_sleep_ends_before_its_deadline() {
        let mut timer = LoopTimer::new();
        for us in [1, 50, 300, 1_500] {
            let began = Instant::now();
            sleep(Duration::from_micros(us)).await;
            assert!(began.elapsed() >= Duration::from_micros(us), "a {us} µs sleep woke after {:?}", began.elapsed());
            let began = Instant::now();
            timer.sleep(Duration::from_micros(us)).await;
            assert!(began.elapsed() >= Duration::from_micros(us), "a {us} µs sleep woke after {:?}", began.elapsed());
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn on_linux_a_loop_timer_is_one_timerfd_armed_for_each_sleep() {
        let timer = timerfd::TimerFd::new().expect("timerfd");
        timer.sleep(Duration::from_micros(200)).await.expect("the timer fired");
        // An abandoned sleep leaves its expiry unread; the next sleep still waits its own time.
        // (Abandoned before it fires: tried again if a busy machine held the thread past it.)
        while timer.sleep(Duration::from_millis(2)).now_or_never().is_some() {}
        std::thread::sleep(Duration::from_millis(5)); // it fires now, and nobody reads it
        let began = Instant::now();
        timer.sleep(Duration::from_micros(500)).await.expect("the timer fired again");
        assert!(began.elapsed() >= Duration::from_micros(500), "ended early: {:?}", began.elapsed());
        assert!(LoopTimer::new().fd.is_some(), "the loop timer got a timerfd");
    }

    #[tokio::test]
    async fn a_precise_sleep_never_ends_before_its_deadline_however_early_it_wakes() {
        let mut timer = LoopTimer::new();
        // Taught that wake-ups come 300 µs late, it fires that early and yields the rest.
        for _ in 0..100 {
            timer.learn(Duration::from_micros(300));
        }
        assert!(timer.late_p90_us >= 290.0, "learned {} µs", timer.late_p90_us);
        for (us, lead) in [(1, 0), (50, 500), (400, 300), (2_000, 300), (2_000, 10)] {
            let began = Instant::now();
            timer.sleep_precisely(Duration::from_micros(us), Duration::from_micros(lead)).await;
            assert!(began.elapsed() >= Duration::from_micros(us), "a {us} µs sleep woke after {:?}", began.elapsed());
        }
    }

    #[tokio::test]
    async fn other_tasks_run_while_a_precise_sleep_waits_out_its_lead() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
                let counting = ticks.clone();
                let ticker = tokio::task::spawn_local(async move {
                    loop {
                        counting.set(counting.get() + 1);
                        tokio::task::yield_now().await;
                    }
                });
                let mut timer = LoopTimer::new();
                timer.late_p90_us = 5_000.0; // the whole sleep is lead: all of it yields
                timer.sleep_precisely(Duration::from_millis(2), Duration::from_millis(5)).await;
                ticker.abort();
                assert!(ticks.get() > 1, "the other task ran {} times during the sleep", ticks.get());
            })
            .await;
    }

    #[test]
    fn the_lead_settles_at_the_90th_percentile_of_how_late_wake_ups_came() {
        let mut timer = LoopTimer {
            #[cfg(target_os = "linux")]
            fd: None,
            late_p90_us: 0.0,
        };
        // Wake-ups 0..100 µs late, evenly, in a scrambled order (a fixed stride mod 101).
        for round in 0..200u64 {
            for i in 0..101u64 {
                timer.learn(Duration::from_micros((i * 37 + round) % 101));
            }
        }
        assert!((80.0..=100.0).contains(&timer.late_p90_us), "settled at {} µs", timer.late_p90_us);
        // It never grows past its bound, whatever a stall reports.
        for _ in 0..1_000 {
            timer.learn(Duration::from_secs(1));
        }
        assert!(timer.late_p90_us <= 1_000.0);
    }

    #[tokio::test]
    async fn a_zero_sleep_returns_at_once() {
        sleep(Duration::ZERO).await;
        LoopTimer::new().sleep(Duration::ZERO).await;
    }
}
