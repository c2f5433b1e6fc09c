//! Sub-millisecond sleeps without spinning. The tokio timer wheel has a 1 ms tick, so a 10 ms
//! sleep measures 10–11 ms and an open-loop producer sends up to 1 ms late. Sleeps here go to
//! one timer thread that waits on the OS clock directly (futex timeouts, tens of µs of slack)
//! and wakes each sleeper at its deadline.

use std::time::{Duration, Instant};

/// Sleeps for `d`, waking within tens of microseconds of the deadline.
pub async fn sleep(d: Duration) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if PRECISE_TIMER.send(Sleeper { deadline: Instant::now() + d, wake: tx }).is_err() {
        tokio::time::sleep(d).await;
        return;
    }
    let _ = rx.await;
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
            crate::system::precise_wakeups();
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
