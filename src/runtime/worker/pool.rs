//! The workers of one queue in this process, with the scheduler beside them: how an
//! application (and the benchmark, and `conveyor worker`) starts and stops them.
//!
//! ```no_run
//! # async fn example(queue: conveyor::Queue, registry: conveyor::Registry) -> conveyor::Result<()> {
//! use conveyor::WorkerPool;
//!
//! let pool = WorkerPool::builder(queue, registry).workers(4).concurrency(16).start().await?;
//! // ... until the application stops:
//! pool.shutdown().await; // stop claiming, finish and settle what is held
//! # Ok(()) }
//! ```

use super::board::SharedBoard;
use super::gate::CLAIMERS;
use super::lifecycle::Stop;
use super::observer::ObserverFactory;
use super::scheduler::{DepthSample, Halt, Scheduler};
use super::worker::{Worker, WorkerConfig};
use crate::runtime::error::Result;
use crate::runtime::handler::Registry;
use crate::runtime::queue::{Queue, Service, WorkerRecord};
use actix::prelude::*;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Workers of one queue and their scheduler, running on the current actix `System`.
#[derive(Debug)]
pub struct WorkerPool {
    workers: Vec<Addr<Worker>>,
    scheduler: Option<Addr<Scheduler>>,
    /// Tells the watcher and the heartbeat to end.
    stop_watching: Rc<Cell<bool>>,
    /// Its queue (to remove its heartbeat when it stops).
    queue: Queue,
    /// Its instance name.
    instance: String,
}

/// How to start a [`WorkerPool`].
pub struct PoolBuilder {
    queue: Queue,
    registry: Arc<Registry>,
    workers: u32,
    concurrency: usize,
    batch: usize,
    block: Duration,
    service: Service,
    consumer_prefix: String,
    scheduler: bool,
    observers: Option<ObserverFactory>,
    depth_to: Option<Recipient<DepthSample>>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("queue", &self.queue.name())
            .field("workers", &self.workers)
            .field("concurrency", &self.concurrency)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// This process's name among worker processes: `<host>-<pid>`, the start of its consumer names.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    format!("{}-{}", host.trim(), std::process::id())
}

impl WorkerPool {
    /// A pool of `queue` running jobs with `registry`'s handlers: by default 1 worker running 1
    /// job at a time, claiming up to 64 per round trip and waiting up to 100 ms for work, with a
    /// scheduler.
    pub fn builder(queue: Queue, registry: impl Into<Arc<Registry>>) -> PoolBuilder {
        PoolBuilder {
            queue,
            registry: registry.into(),
            workers: 1,
            concurrency: 1,
            batch: 64,
            block: Duration::from_millis(100),
            service: Service::default(),
            consumer_prefix: instance_name(),
            scheduler: true,
            observers: None,
            depth_to: None,
        }
    }

    /// The workers' addresses (to send them [`Pause`](super::Pause), say).
    pub fn workers(&self) -> &[Addr<Worker>] {
        &self.workers
    }

    /// Stops claiming, lets every worker finish and settle the jobs it holds, then stops the
    /// scheduler after its last trim.
    pub async fn shutdown(self) {
        futures::future::join_all(self.workers.iter().map(|w| w.send(Stop))).await;
        self.stop_watching.set(true);
        if let Err(e) = self.queue.forget_worker(&self.instance).await {
            tracing::debug!(error = %e, "removing this process's heartbeat failed; it expires by itself");
        }
        if let Some(s) = self.scheduler {
            let _ = s.send(Halt).await;
        }
    }
}

impl PoolBuilder {
    /// Worker actors (each claims and settles on its own).
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n;
        self
    }

    /// Jobs each worker runs at the same time.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Most jobs a worker claims per round trip.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Longest a claim waits for work.
    pub fn block(mut self, d: Duration) -> Self {
        self.block = d;
        self
    }

    /// How the workers share their claims among priorities (default: weighted 6/3/1).
    pub fn service(mut self, service: Service) -> Self {
        self.service = service;
        self
    }

    /// The start of every worker's consumer name (default: [`instance_name`]); unique per
    /// process across every process of the queue.
    pub fn consumer_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.consumer_prefix = prefix.into();
        self
    }

    /// Whether to run a scheduler here (default yes; any number may run, one per process is
    /// usual).
    pub fn scheduler(mut self, yes: bool) -> Self {
        self.scheduler = yes;
        self
    }

    /// Gives each worker an observer made by `factory`.
    pub fn observed_by(mut self, factory: ObserverFactory) -> Self {
        self.observers = Some(factory);
        self
    }

    /// Sends the scheduler's depth samples to `to` as well.
    pub fn sampling_depth_to(mut self, to: Recipient<DepthSample>) -> Self {
        self.depth_to = Some(to);
        self
    }

    /// Creates the queue's consumer groups if needed and starts the actors. Call inside an
    /// actix `System`.
    pub async fn start(self) -> Result<WorkerPool> {
        self.queue.ensure_group().await?;
        let scheduler = self.scheduler.then(|| {
            let s = Scheduler::new(self.queue.clone());
            match &self.depth_to {
                Some(to) => s.sampling_depth_to(to.clone()),
                None => s,
            }
            .start()
        });
        let board = SharedBoard::default();
        // One claimer at a time on one stream; a partitioned queue keeps a claimer per worker,
        // so that each waits on a partition of its own and none waits behind another's.
        let claimers = if self.queue.partition_keys().len() > 1 { self.workers as usize } else { CLAIMERS };
        board.borrow_mut().gate_claims(claimers);
        // The settings before the first claim: a limited queue is never claimed from without
        // its limit, nor a paused one at all.
        let settings = self.queue.settings().await?;
        board.borrow_mut().apply(self.queue.name(), settings);
        let stop_watching = Rc::new(Cell::new(false));
        actix::spawn(super::board::watch(self.queue.clone(), board.clone(), stop_watching.clone()));
        let record = WorkerRecord {
            instance: self.consumer_prefix.clone(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map_or_else(|_| "host".into(), |h| h.trim().to_owned()),
            pid: std::process::id(),
            queue: self.queue.name().to_owned(),
            workers: self.workers,
            concurrency: self.concurrency,
            busy: 0,
            started_ms: self.queue.clock().now_ms(),
            seen_ms: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        actix::spawn(heartbeat(self.queue.clone(), record, board.clone(), stop_watching.clone()));
        let workers = (0..self.workers)
            .map(|i| {
                let config = WorkerConfig {
                    consumer: format!("{}-w{i}", self.consumer_prefix),
                    concurrency: self.concurrency,
                    batch: self.batch,
                    block: self.block,
                    service: self.service,
                };
                let worker = Worker::new(self.queue.clone(), config, self.registry.clone(), board.clone());
                match &self.observers {
                    Some(make) => worker.observed_by(make()),
                    None => worker,
                }
                .start()
            })
            .collect();
        Ok(WorkerPool {
            workers,
            scheduler,
            stop_watching,
            queue: self.queue.clone(),
            instance: self.consumer_prefix.clone(),
        })
    }
}

/// How often a pool renews its heartbeat (it lasts [`HEARTBEAT_TTL`](crate::runtime::queue::manage::HEARTBEAT_TTL)).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// Renews this process's heartbeat record (with how many jobs its workers hold) until `stop`.
async fn heartbeat(queue: Queue, mut record: WorkerRecord, board: SharedBoard, stop: Rc<Cell<bool>>) {
    while !stop.get() {
        record.busy = board.borrow().busy();
        record.seen_ms = queue.clock().now_ms();
        if let Err(e) = queue.heartbeat(&record).await {
            tracing::debug!(error = %e, "writing the heartbeat failed; the next one retries");
        }
        tokio::time::sleep(HEARTBEAT_EVERY).await;
    }
}
