//! The claim gate of a pool: how many of its workers may wait in Redis for new jobs at once.
//!
//! Redis hands new entries to blocked readers after every command, first come first served. With
//! every idle worker of a process blocked in `XREADGROUP`, a producer's pipelined batch wakes one
//! worker per `XADD`, each with an entry or two, and every such claim costs a round trip and a
//! settle of its own. Behind the gate, [`CLAIMERS`] workers claim at a time while the others wait
//! their turn here (first come, first served): when a claim comes back with jobs, the next worker
//! claims at once and finds the rest of the batch in one read. A worker waiting for its turn
//! still runs and settles the jobs it holds; a stop ends the wait.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Workers of one pool that claim at the same time, on a queue of one partition (a partitioned
/// queue's pool has one claimer per worker: see [`WorkerPool`](super::WorkerPool)).
pub(crate) const CLAIMERS: usize = 1;
/// How often a worker waiting for its turn looks whether it was asked to stop.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// Turns to claim, shared by the workers of a pool (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct ClaimGate(Arc<Semaphore>);

/// A worker's turn to claim: the next worker's begins when it is dropped.
#[derive(Debug)]
pub(crate) struct Turn(#[allow(dead_code)] OwnedSemaphorePermit);

impl Default for ClaimGate {
    fn default() -> Self {
        Self::new(CLAIMERS)
    }
}

impl ClaimGate {
    /// A gate letting `claimers` workers claim at a time (at least one).
    pub(crate) fn new(claimers: usize) -> Self {
        Self(Arc::new(Semaphore::new(claimers.max(1))))
    }

    /// Waits for a turn to claim; `None` once `stop()` is true (looked at every 20 ms). A free
    /// turn is taken at once, with no timer.
    pub(crate) async fn turn(&self, stop: impl Fn() -> bool) -> Option<Turn> {
        if let Ok(permit) = self.0.clone().try_acquire_owned() {
            return Some(Turn(permit));
        }
        loop {
            if stop() {
                return None;
            }
            tokio::select! {
                permit = self.0.clone().acquire_owned() => return permit.ok().map(Turn),
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn one_worker_claims_at_a_time_and_the_next_turn_begins_when_it_is_done() {
        let gate = ClaimGate::new(1);
        let first = gate.turn(|| false).await.expect("a free gate gives a turn");
        let waiting = gate.turn(|| false);
        tokio::pin!(waiting);
        // The second waits while the first holds its turn...
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut waiting).await.is_err());
        drop(first);
        // ...and has it as soon as the first is done.
        assert!(tokio::time::timeout(Duration::from_secs(5), &mut waiting).await.expect("turn").is_some());
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_for_a_turn() {
        let gate = ClaimGate::new(1);
        let _held = gate.turn(|| false).await;
        let stop = Cell::new(false);
        let waiting = gate.turn(|| stop.get());
        tokio::pin!(waiting);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut waiting).await.is_err());
        stop.set(true);
        assert!(tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("the wait ends").is_none());
    }
}
