//! What the workers of one process share, kept up to date by the pool's watcher every
//! [`POLL_EVERY`]: whether the queue is paused (workers claim nothing then), the ids of jobs
//! asked to be cancelled (read from the queue's cancelled set) — and through them which runs in
//! progress must see their token trip — and how many jobs the workers hold (for the process's
//! heartbeat), and the queue's settings read with the pause in one round trip: its rate limit
//! and whether it uses priorities. Workers look here before they claim and before they start a
//! job: local reads, and no lookup at all while nobody cancelled anything. The board also holds
//! the pool's claim gate (`gate.rs`): the turns that let one worker at a time wait in Redis.

use super::gate::ClaimGate;
use crate::runtime::queue::{JobId, Limit, Queue, Settings};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often the watcher reads new cancellations.
pub const POLL_EVERY: Duration = Duration::from_millis(20);
/// How often the watcher trims the queue's cancelled set.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Shared by the workers and the watcher of a pool (one thread).
#[derive(Debug, Default)]
pub struct Board {
    /// Each cancelled id, with when it was read (forgotten after the queue forgets it).
    ids: HashMap<JobId, Instant>,
    /// Bumped when ids arrive: a worker that saw another generation checks its running jobs.
    generation: u64,
    /// The queue is paused (`conveyor pause`): claim nothing.
    paused: bool,
    /// Jobs the pool's workers hold (claimed, not settled yet).
    busy: usize,
    /// The queue's rate limit, as last read.
    limit: Option<Limit>,
    /// The queue uses priorities: claims read every priority's stream.
    lanes: bool,
    /// Turns to claim: how many of the pool's workers wait in Redis at once.
    gate: ClaimGate,
}

/// The board as the pool hands it around.
pub type SharedBoard = Rc<RefCell<Board>>;

impl Board {
    /// True when `id` was asked to be cancelled.
    pub fn contains(&self, id: &JobId) -> bool {
        !self.ids.is_empty() && self.ids.contains_key(id)
    }

    /// True when nothing was cancelled (the common case: workers skip every lookup).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The queue is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// The queue's rate limit, as last read.
    pub fn limit(&self) -> Option<Limit> {
        self.limit
    }

    /// The queue uses priorities.
    pub fn lanes(&self) -> bool {
        self.lanes
    }

    /// The pool's claim gate.
    pub(crate) fn gate(&self) -> ClaimGate {
        self.gate.clone()
    }

    /// Lets `claimers` of the pool's workers claim at a time (see [`ClaimGate`]).
    pub(crate) fn gate_claims(&mut self, claimers: usize) {
        self.gate = ClaimGate::new(claimers);
    }

    /// Jobs the pool's workers hold.
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// A worker now holds `now` jobs where it held `before`.
    pub(crate) fn held(&mut self, before: usize, now: usize) {
        self.busy = (self.busy + now).saturating_sub(before);
    }

    /// Changes whenever ids arrive.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn add(&mut self, ids: Vec<JobId>) {
        let now = Instant::now();
        let mut new = false;
        for id in ids {
            new |= self.ids.insert(id, now).is_none();
        }
        if new {
            self.generation += 1;
        }
    }

    /// Takes in the queue's settings as just read.
    pub(crate) fn apply(&mut self, queue: &str, Settings { paused, limit, lanes }: Settings) {
        if self.limit != limit {
            tracing::info!(queue, limit = ?limit, "the queue's rate limit changed");
        }
        self.limit = limit;
        self.lanes = lanes;
        if self.paused != paused {
            self.paused = paused;
            crate::runtime::telemetry::queue_paused(queue, paused);
            tracing::info!(queue, paused, "the queue was {}", if paused { "paused" } else { "resumed" });
        }
    }

    fn forget_older_than(&mut self, age: Duration) {
        self.ids.retain(|_, at| at.elapsed() < age);
    }
}

/// Reads new cancellations and the pause of `queue` into `board` until `stop` says so. Call inside an actix
/// `System` (it runs on the current thread).
pub async fn watch(queue: Queue, board: SharedBoard, stop: Rc<std::cell::Cell<bool>>) {
    // Only what is cancelled from now on concerns jobs this process will see start... and jobs
    // already queued: read the last week, as the queue keeps it.
    let kept = crate::runtime::queue::track::CANCEL_KEPT;
    let mut since = queue.clock().now_ms().saturating_sub(kept.as_millis() as u64);
    let mut last_trim = Instant::now();
    while !stop.get() {
        match queue.cancelled_since(since).await {
            Ok((ids, newest)) => {
                since = newest;
                board.borrow_mut().add(ids);
            }
            Err(e) => tracing::debug!(error = %e, "reading cancellations failed; next poll retries"),
        }
        match queue.settings().await {
            Ok(settings) => board.borrow_mut().apply(queue.name(), settings),
            Err(e) => tracing::debug!(error = %e, "reading the queue's settings failed; next poll retries"),
        }
        if last_trim.elapsed() >= TRIM_EVERY {
            last_trim = Instant::now();
            board.borrow_mut().forget_older_than(kept);
            if let Err(e) = queue.trim_cancelled().await {
                tracing::debug!(error = %e, "trimming cancellations failed");
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
