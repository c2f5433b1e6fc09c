//! What an operator does with the queues of one Redis: see them, page through their jobs, look
//! at one job, retry or remove dead letters, purge a state, pause and resume, enqueue and
//! cancel by hand, list the live worker processes and the periodic entries. The command line (`conveyor queues`,
//! `jobs`, `job`, `dead`, `purge`, `pause`, `resume`, `enqueue`, `cancel`, `workers`) and the
//! web console are built on this, so they do the same thing.

use crate::runtime::client::{Client, Enqueue};
use crate::runtime::connection::Redis;
use crate::runtime::error::{Error, Result};
use crate::runtime::queue::{
    ByPriority, Cancelled, CronEntry, DeadDone, Depth, Enqueued, JobInfo, JobSummary, JobsIn, Limit, Page, Pick,
    Priority, Queue, Rates, SecondCount, Status, WorkerRecord,
};
use std::time::Duration;

/// The queues of one Redis under one key prefix.
#[derive(Debug, Clone)]
pub struct Admin {
    redis: Redis,
    prefix: String,
}

/// One queue at a glance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueueOverview {
    /// Its name.
    pub name: String,
    /// Its partitions.
    pub partitions: u16,
    /// Jobs in each state (`in_flight`: held by a worker).
    pub depth: Depth,
    /// The waiting jobs by priority.
    pub waiting_by_priority: ByPriority,
    /// How long the oldest waiting job has waited (seconds).
    pub oldest_waiting_seconds: f64,
    /// Completions and failures per second over the last minute.
    pub rates: Rates,
    /// Paused: workers claim nothing.
    pub paused: bool,
    /// Worker processes whose heartbeat holds.
    pub live_workers: usize,
    /// Its rate limit, if it has one.
    pub limit: Option<Limit>,
}

/// Everything known of one job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobRecord {
    /// The queue it is in.
    pub queue: String,
    /// Where it was found and what it is (`None` when only its status is left: tracked and
    /// finished).
    pub found: Option<JobSummary>,
    /// Its status, when it is tracked.
    pub status: Option<JobInfo>,
}

impl Admin {
    /// The queues of `redis` under key prefix `prefix` (conveyor's default is `conveyor`).
    pub fn new(redis: Redis, prefix: impl Into<String>) -> Self {
        Self { redis, prefix: prefix.into() }
    }

    /// Queue `name`, or [`Error::NotFound`] when there is none.
    pub async fn queue(&self, name: &str) -> Result<Queue> {
        Queue::open(&self.redis, &self.prefix, name).await?.ok_or_else(|| Error::NotFound {
            what: "queue",
            name: name.to_owned(),
            hint: format!(" under prefix {:?} (`conveyor queues` lists them)", self.prefix),
        })
    }

    /// Every queue, at a glance.
    pub async fn queues(&self) -> Result<Vec<QueueOverview>> {
        let mut out = Vec::new();
        for name in Queue::list(&self.redis, &self.prefix).await? {
            if let Some(queue) = Queue::open(&self.redis, &self.prefix, &name).await? {
                out.push(overview_of(&queue).await?);
            }
        }
        Ok(out)
    }

    /// Queue `name` at a glance.
    pub async fn overview(&self, name: &str) -> Result<QueueOverview> {
        overview_of(&self.queue(name).await?).await
    }

    /// A page of queue `name`'s jobs in `state`.
    pub async fn jobs(&self, name: &str, state: JobsIn, limit: usize, cursor: Option<&str>) -> Result<Page> {
        self.queue(name).await?.jobs(state, limit, cursor).await
    }

    /// Job `id`: in queue `name`, or in whichever queue holds it.
    pub async fn job(&self, name: Option<&str>, id: &str) -> Result<JobRecord> {
        let names = match name {
            Some(n) => vec![self.queue(n).await?.name().to_owned()],
            None => Queue::list(&self.redis, &self.prefix).await?,
        };
        let mut expired = false;
        for name in names {
            let Some(queue) = Queue::open(&self.redis, &self.prefix, &name).await? else { continue };
            let status = match queue.status(id).await? {
                Status::Found(info) => Some(info),
                Status::Expired { .. } => {
                    expired = true;
                    None
                }
                Status::NotFound => None,
            };
            let found = queue.find(id).await?;
            if found.is_some() || status.is_some() {
                return Ok(JobRecord { queue: name, found, status });
            }
        }
        Err(Error::NotFound {
            what: "job",
            name: id.to_owned(),
            hint: if expired {
                " (its id says it was enqueued longer ago than the retention of a tracked job's status: it expired)"
                    .into()
            } else {
                String::new()
            },
        })
    }

    /// Retries the dead letters `pick` names in queue `name`.
    pub async fn retry_dead(&self, name: &str, pick: &Pick) -> Result<DeadDone> {
        self.queue(name).await?.retry_dead(pick).await
    }

    /// Removes the dead letters `pick` names in queue `name`.
    pub async fn delete_dead(&self, name: &str, pick: &Pick) -> Result<DeadDone> {
        self.queue(name).await?.delete_dead(pick).await
    }

    /// Removes every job of queue `name` in `state`; answers how many.
    pub async fn purge(&self, name: &str, state: JobsIn) -> Result<u64> {
        self.queue(name).await?.purge(state).await
    }

    /// What settled in queue `name` in each of the last 60 seconds (the current one last): the
    /// series a live throughput view draws.
    pub async fn throughput(&self, name: &str) -> Result<Vec<SecondCount>> {
        self.queue(name).await?.throughput().await
    }

    /// Pauses queue `name`.
    pub async fn pause(&self, name: &str) -> Result<()> {
        self.queue(name).await?.pause().await
    }

    /// Sets queue `name`'s rate limit (every worker process follows it from its next poll).
    pub async fn set_limit(&self, name: &str, limit: Limit) -> Result<()> {
        self.queue(name).await?.set_limit(limit).await
    }

    /// Removes queue `name`'s rate limit; answers whether it had one.
    pub async fn clear_limit(&self, name: &str) -> Result<bool> {
        self.queue(name).await?.clear_limit().await
    }

    /// Resumes queue `name`.
    pub async fn resume(&self, name: &str) -> Result<()> {
        self.queue(name).await?.resume().await
    }

    /// Enqueues a job of type `job_type` with a JSON payload on queue `name` (created if need
    /// be), due after `delay`, with id `id` (tracked) when given.
    pub async fn enqueue(
        &self,
        name: &str,
        job_type: &str,
        json: &str,
        delay: Option<Duration>,
        id: Option<&str>,
        priority: Priority,
    ) -> Result<Enqueued> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::InvalidArgument { what: "--json", message: format!("expected a JSON payload: {e}") })?;
        let queue = self.queue_or_new(name).await?;
        let mut options = Enqueue::new().priority(priority);
        if let Some(d) = delay {
            options = options.delay(d);
        }
        if let Some(id) = id {
            options = options.id(id);
        }
        let payload = serde_json::to_vec(&value).expect("a JSON value serializes");
        Client::new(queue).enqueue_raw(job_type, payload, options).await
    }

    /// Queue `name`, created (with default options) when there is none.
    pub async fn queue_or_new(&self, name: &str) -> Result<Queue> {
        Ok(match Queue::open(&self.redis, &self.prefix, name).await? {
            Some(q) => q,
            None => {
                let options = crate::runtime::queue::QueueOptions { prefix: self.prefix.clone(), ..Default::default() };
                let q = Queue::new(self.redis.clone(), name, options, crate::runtime::clock::system());
                q.ensure_group().await?;
                q
            }
        })
    }

    /// The periodic entries schedulers run on queue `name`, with their latest firing.
    pub async fn crons(&self, name: &str) -> Result<Vec<CronEntry>> {
        self.queue(name).await?.cron_entries().await
    }

    /// Forgets periodic entry `entry` of queue `name` (a scheduler still running it records it
    /// again when it restarts); [`Error::NotFound`] when there is none.
    pub async fn remove_cron(&self, name: &str, entry: &str) -> Result<()> {
        if self.queue(name).await?.remove_cron(entry).await? {
            Ok(())
        } else {
            Err(Error::NotFound { what: "cron entry", name: entry.to_owned(), hint: format!(" in queue {name:?}") })
        }
    }

    /// Asks for job `id` of queue `name` to be cancelled.
    pub async fn cancel(&self, name: &str, id: &str) -> Result<Cancelled> {
        self.queue(name).await?.cancel(id).await
    }

    /// The live worker processes of queue `name` (every queue when `None`).
    pub async fn workers(&self, name: Option<&str>) -> Result<Vec<WorkerRecord>> {
        let names = match name {
            Some(n) => vec![self.queue(n).await?.name().to_owned()],
            None => Queue::list(&self.redis, &self.prefix).await?,
        };
        let mut out = Vec::new();
        for name in names {
            if let Some(queue) = Queue::open(&self.redis, &self.prefix, &name).await? {
                out.extend(queue.live_workers().await?);
            }
        }
        Ok(out)
    }
}

async fn overview_of(queue: &Queue) -> Result<QueueOverview> {
    let (depth, waiting_by_priority) = queue.depth_by_priority().await?;
    Ok(QueueOverview {
        name: queue.name().to_owned(),
        partitions: queue.partition_keys().len() as u16,
        depth,
        waiting_by_priority,
        oldest_waiting_seconds: queue.oldest_waiting_age().await?.as_secs_f64(),
        rates: queue.rates().await?,
        paused: queue.is_paused().await?,
        live_workers: queue.live_workers().await?.len(),
        limit: queue.limit().await?,
    })
}
