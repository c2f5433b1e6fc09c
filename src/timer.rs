//! Sub-millisecond sleeps without spinning and without another thread. The tokio timer wheel
//! has a 1 ms tick, so a 10 ms sleep measures 10–11 ms and an open-loop producer would send up
//! to 1 ms late. On Linux each sleep arms a `timerfd` (a kernel high-resolution timer, no timer
//! slack) and waits for it to turn readable in the event loop's own `epoll`: the event loop
//! wakes straight at the deadline. (Before, a timer thread slept to the deadline and then had
//! to wake the event loop: two wake-ups on every open-loop job's path instead of one.)
//! Elsewhere, sleeps fall back to the tokio timer.

use std::time::Duration;

/// Sleeps for `d`, waking at the deadline (within the machine's wake-up delay).
pub async fn sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    #[cfg(target_os = "linux")]
    match timerfd::Deadline::arm(d) {
        Ok(deadline) => {
            if deadline.wait().await.is_ok() {
                return;
            }
        }
        Err(e) => tracing::debug!(error = %e, "timerfd unavailable; sleeping on the tokio timer"),
    }
    tokio::time::sleep(d).await;
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod timerfd {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    /// A one-shot `timerfd`, registered with the running tokio reactor.
    pub struct Deadline(AsyncFd<Fd>);

    struct Fd(OwnedFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }

    impl Deadline {
        /// A timer that fires once, `d` (> 0) from now. Must be called within a tokio runtime.
        pub fn arm(d: Duration) -> io::Result<Self> {
            // SAFETY: timerfd_create takes flags only and returns a new descriptor or -1.
            let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a descriptor we just opened and own alone.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            let value = libc::timespec {
                tv_sec: d.as_secs().try_into().unwrap_or(libc::time_t::MAX),
                tv_nsec: d.subsec_nanos().into(),
            };
            let spec = libc::itimerspec { it_interval: zero, it_value: value };
            // SAFETY: `fd` is a timerfd; `spec` lives across the call; the old value is not asked for.
            if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `Fd` owns the descriptor and closes it only when dropped, after the
            // `AsyncFd` that holds it has deregistered it.
            Ok(Self(unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) }?))
        }

        /// Waits until the timer has fired.
        pub async fn wait(&self) -> io::Result<()> {
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
                ready.clear_ready();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn a_sleep_never_ends_before_its_deadline() {
        for us in [1, 50, 300, 1_500] {
            let began = Instant::now();
            sleep(Duration::from_micros(us)).await;
            assert!(began.elapsed() >= Duration::from_micros(us), "a {us} µs sleep woke after {:?}", began.elapsed());
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn on_linux_a_sleep_is_a_timerfd_that_fires_once() {
        let deadline = timerfd::Deadline::arm(Duration::from_micros(200)).expect("timerfd");
        deadline.wait().await.expect("the timer fired");
    }

    #[tokio::test]
    async fn a_zero_sleep_returns_at_once() {
        sleep(Duration::ZERO).await;
    }
}
