//! The cancellation token a running job carries: tripped by a timeout, a cancellation, or a
//! shutdown whose grace ran out, and read by the handler.
//!
//! Every job gets one, so it is made to be cheap: one allocation, and cloning or dropping it is
//! one atomic count (tokio-util's `CancellationToken` locks a mutex on each, for its tree of
//! child tokens, which a job's token never needs). Its methods are named as that type's are.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Tripped once, seen by every clone; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    tripped: AtomicBool,
    wake: Notify,
}

impl CancelToken {
    /// A token that has not tripped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trips the token: every clone sees it, and every [`CancelToken::cancelled`] returns.
    pub fn cancel(&self) {
        if !self.0.tripped.swap(true, Ordering::AcqRel) {
            self.0.wake.notify_waiters();
        }
    }

    /// Whether the token has tripped.
    pub fn is_cancelled(&self) -> bool {
        self.0.tripped.load(Ordering::Acquire)
    }

    /// Returns once the token has tripped (at once if it has).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.wake.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a trip between the two is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Makes the token as new again when no clone of it is left (its job is over and nothing
    /// kept it), so the worker can hand it to its next job without an allocation; `false` (and
    /// nothing changed) when a clone lives on.
    pub(crate) fn reuse(&mut self) -> bool {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => {
                *inner.tripped.get_mut() = false;
                true
            }
            None => false,
        }
    }

    /// Runs `work` until it finishes (`Some` of its output) or the token trips (`None`).
    pub async fn run_until_cancelled<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            _ = self.cancelled() => None,
            out = work => Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    #[test]
    fn a_trip_reaches_every_clone_and_wakes_every_waiter() {
        block_on(async {
            let token = CancelToken::new();
            let waiters: Vec<_> = (0..3).map(|_| token.clone()).collect();
            let tripper = token.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                tripper.cancel();
            });
            for w in &waiters {
                assert!(!w.is_cancelled() || token.is_cancelled());
            }
            futures::future::join_all(waiters.iter().map(|w| w.cancelled())).await;
            assert!(waiters.iter().all(CancelToken::is_cancelled));
            token.cancelled().await; // already tripped: at once
            token.cancel(); // twice is harmless
        });
    }

    #[test]
    fn a_token_is_reused_only_when_no_clone_of_it_lives_on() {
        let mut token = CancelToken::new();
        token.cancel();
        let kept = token.clone();
        assert!(!token.reuse(), "a clone lives on");
        assert!(token.is_cancelled());
        drop(kept);
        assert!(token.reuse());
        assert!(!token.is_cancelled(), "as new");
    }

    #[test]
    fn run_until_cancelled_gives_the_output_or_none() {
        block_on(async {
            let token = CancelToken::new();
            assert_eq!(token.run_until_cancelled(async { 7 }).await, Some(7));
            token.cancel();
            assert_eq!(token.run_until_cancelled(std::future::pending::<u8>()).await, None);
        });
    }
}
