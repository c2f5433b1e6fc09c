//! How the coordinator ends an actor that runs a loop (producer, worker): [`Stop`] asks the
//! loop to finish its current batch and resolves once it has; [`Join`] waits for the loop to
//! end on its own (a producer whose plan is done).

use actix::Message;
use std::cell::Cell;
use std::rc::Rc;
use tokio::sync::watch;

/// Ask an actor to stop taking new work, finish what it holds, and answer when it is done.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Stop;

/// Answer once the actor's loop has ended by itself.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Join;

/// Shared between an actor and the loop it spawned (same thread, so `Rc`).
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    /// Set by [`Stop`]; the loop checks it between batches.
    stopping: Rc<Cell<bool>>,
    /// Set by the loop as it ends.
    done: Rc<watch::Sender<bool>>,
    /// Set by a pause (stall injection): the loop takes no new work before this instant.
    paused_until: Rc<Cell<Option<std::time::Instant>>>,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            stopping: Rc::new(Cell::new(false)),
            done: Rc::new(watch::channel(false).0),
            paused_until: Rc::new(Cell::new(None)),
        }
    }

    /// Takes no new work for `d` (a longer pause already in force is kept).
    pub fn pause_for(&self, d: std::time::Duration) {
        let until = std::time::Instant::now() + d;
        self.paused_until.set(Some(self.paused_until.get().map_or(until, |u| u.max(until))));
    }

    /// When the pause in force ends; `None` when none is (or a stop was requested).
    pub fn paused_until(&self) -> Option<std::time::Instant> {
        let until = self.paused_until.get()?;
        if std::time::Instant::now() >= until || self.stopping() {
            self.paused_until.set(None);
            return None;
        }
        Some(until)
    }

    pub fn request_stop(&self) {
        self.stopping.set(true);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.get()
    }

    pub fn finish(&self) {
        self.done.send_replace(true);
    }

    /// Resolves when the loop has finished.
    pub fn finished(&self) -> impl Future<Output = ()> + 'static {
        let mut rx = self.done.subscribe();
        async move {
            let _ = rx.wait_for(|done| *done).await;
        }
    }
}
