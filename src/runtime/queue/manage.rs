//! Operating a queue: what it is and that it exists, pausing it, pages of its jobs by state, one
//! job's record, dead letters retried or removed, a state purged, live worker processes, and
//! the rate of completions. What an operator does through [`Admin`](crate::runtime::admin::Admin),
//! the command line and the console.

use super::envelope::{DecodeError, Envelope, Fields, JobId};
use super::inspect::GroupInfo;
use super::keys::{QueueKeys, queues_key};
use super::priority::Priority;
use super::{GROUP, Queue, QueueOptions, scripts};
use crate::runtime::connection::Redis;
use crate::runtime::error::{Error, Result};
use redis::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Most entries a lookup of one job by id reads in each place it may be (dead letters, delayed
/// and retrying jobs), so a lookup in a huge queue stays bounded.
pub const SEARCH_LIMIT: usize = 100_000;

/// A state jobs can be listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobsIn {
    /// In the stream, not yet handed to a worker.
    Waiting,
    /// Held by a worker.
    Active,
    /// Waiting for their due time.
    Delayed,
    /// Failed, waiting for the next attempt.
    Retrying,
    /// In the dead letters.
    Dead,
}

impl std::str::FromStr for JobsIn {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "waiting" => JobsIn::Waiting,
            "active" => JobsIn::Active,
            "delayed" => JobsIn::Delayed,
            "retrying" => JobsIn::Retrying,
            "dead" => JobsIn::Dead,
            _ => return Err(format!("expected waiting, active, delayed, retrying or dead, got {s:?}")),
        })
    }
}

/// One job in a page of jobs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobSummary {
    /// Its id.
    pub id: JobId,
    /// Where it was found.
    pub state: JobsIn,
    /// Its job type (empty for an entry that is not a job).
    pub name: String,
    /// Its priority.
    pub priority: Priority,
    /// Its attempt (0 for the first).
    pub attempt: u16,
    /// When it was enqueued (ms since the epoch); 0 when nothing says (a job a producer wrote
    /// without `t` and an id of its own, in the delayed set or the dead letters).
    pub enqueued_ms: u64,
    /// Delayed and retrying jobs: when they are due (ms since the epoch).
    pub due_ms: Option<u64>,
    /// Active jobs: the worker that holds it, and for how long it has not renewed its lease (ms).
    pub worker: Option<(String, u64)>,
    /// Dead letters: why it died.
    pub reason: Option<String>,
    /// Its payload, as stored.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// Its headers, as stored.
    #[serde(skip)]
    pub headers: Option<Vec<u8>>,
}

/// A page of jobs and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page {
    /// The jobs, oldest first (within each partition).
    pub jobs: Vec<JobSummary>,
    /// Pass it back for the next page; `None` at the end.
    pub next: Option<String>,
}

/// Which dead letters an operation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// These jobs (by id).
    Ids(Vec<JobId>),
    /// Every dead letter.
    All,
}

/// What an operation on dead letters did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeadDone {
    /// Dead letters retried (back in the stream, attempt 0) or removed.
    pub done: u64,
    /// Ids asked for that are not among the dead letters.
    pub not_found: Vec<JobId>,
    /// Dead letters that are not jobs (their fields do not decode): a retry leaves them where
    /// they are, a removal removes them.
    pub undecodable: u64,
}

/// A worker process's heartbeat record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerRecord {
    /// Its instance name (`<host>-<pid>`).
    pub instance: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queue it serves.
    pub queue: String,
    /// Its worker actors.
    pub workers: u32,
    /// Jobs each runs at the same time.
    pub concurrency: usize,
    /// Jobs it holds now (claimed, not settled).
    pub busy: usize,
    /// When it started (ms since the epoch).
    pub started_ms: u64,
    /// When it last said it was alive (ms since the epoch).
    pub seen_ms: u64,
    /// conveyor's version.
    pub version: String,
}

/// How long a heartbeat holds: a process that stops renewing it (killed) is gone after this.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(10);

/// Completions and failures over the last minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Rates {
    /// Jobs completed per second, over the last 60 seconds.
    pub completed_per_second: f64,
    /// Failed attempts (retried or dead) per second, over the last 60 seconds.
    pub failed_per_second: f64,
}

/// Completions and failed attempts settled in one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SecondCount {
    /// The second (since the epoch).
    pub at_s: u64,
    /// Jobs completed in it.
    pub completed: u64,
    /// Failed attempts (retried or dead) in it.
    pub failed: u64,
}

impl Queue {
    /// Records that this queue exists, with its partitions, for operators to find it.
    pub(super) async fn record_meta(&self) -> Result<()> {
        let (meta, queues) = (self.keys.meta(), queues_key(&self.options.prefix));
        let n = self.partition_count();
        let name = self.name().to_owned();
        // Two commands, not one pipeline: the set of queues has a hash tag of its own, so on a
        // cluster it may live on another master.
        self.redis
            .with_conn(async |c| {
                redis::cmd("HSETNX").arg(&meta).arg("partitions").arg(n).query_async::<()>(c).await?;
                redis::cmd("SADD").arg(&queues).arg(&name).query_async::<()>(c).await
            })
            .await
    }

    /// The queue `name` under `prefix` as it was created (its partitions), or `None` when there
    /// is no such queue.
    pub async fn open(redis: &Redis, prefix: &str, name: &str) -> Result<Option<Queue>> {
        let keys = QueueKeys::new(prefix, name);
        let meta = keys.meta();
        let partitions: Option<u16> =
            redis.with_conn(async |c| redis::cmd("HGET").arg(&meta).arg("partitions").query_async(c).await).await?;
        let Some(partitions) = partitions else {
            // Made before queues recorded their meta: a stream is enough.
            let ready = keys.ready();
            let exists: bool = redis.with_conn(async |c| redis::cmd("EXISTS").arg(&ready).query_async(c).await).await?;
            return Ok(exists.then(|| {
                let options = QueueOptions { prefix: prefix.to_owned(), ..QueueOptions::default() };
                Queue::new(redis.clone(), name, options, crate::runtime::clock::system())
            }));
        };
        let options = QueueOptions { prefix: prefix.to_owned(), partitions, ..QueueOptions::default() };
        Ok(Some(Queue::new(redis.clone(), name, options, crate::runtime::clock::system())))
    }

    /// Every queue under `prefix` that a worker or a client created, by name.
    pub async fn list(redis: &Redis, prefix: &str) -> Result<Vec<String>> {
        let key = queues_key(prefix);
        let mut names: Vec<String> =
            redis.with_conn(async |c| redis::cmd("SMEMBERS").arg(&key).query_async(c).await).await?;
        names.sort();
        Ok(names)
    }

    /// Pauses the queue: the workers of every process claim nothing from the next poll of their
    /// watcher on (tens of milliseconds) and finish what they hold; producers go on enqueueing.
    pub async fn pause(&self) -> Result<()> {
        let key = self.keys.paused();
        let now = self.clock.now_ms();
        self.redis.with_conn(async |c| redis::cmd("SET").arg(&key).arg(now).query_async::<()>(c).await).await
    }

    /// Resumes a paused queue.
    pub async fn resume(&self) -> Result<()> {
        let key = self.keys.paused();
        self.redis.with_conn(async |c| redis::cmd("DEL").arg(&key).query_async::<()>(c).await).await
    }

    /// Whether the queue is paused.
    pub async fn is_paused(&self) -> Result<bool> {
        let key = self.keys.paused();
        self.redis.with_conn(async |c| redis::cmd("EXISTS").arg(&key).query_async(c).await).await
    }

    /// A page of up to `limit` jobs in `state`, from `cursor` (`None` for the first page).
    pub async fn jobs(&self, state: JobsIn, limit: usize, cursor: Option<&str>) -> Result<Page> {
        let limit = limit.clamp(1, 10_000);
        // Where jobs in `state` are: each partition's streams of every priority (highest
        // first) for jobs in a stream, each partition's set or dead letters otherwise.
        let places: Vec<(usize, Priority)> = match state {
            JobsIn::Waiting | JobsIn::Active => {
                (0..self.partition_count()).flat_map(|p| Priority::ALL.map(|l| (p, l))).collect()
            }
            _ => (0..self.partition_count()).map(|p| (p, Priority::Normal)).collect(),
        };
        let (mut p, mut from) = match cursor {
            None => (0, None),
            Some(c) => {
                let (p, from) = c
                    .split_once(':')
                    .and_then(|(p, f)| p.parse::<usize>().ok().map(|p| (p, f.to_owned())))
                    .filter(|(p, _)| *p < places.len())
                    .ok_or_else(|| Error::InvalidArgument {
                        what: "cursor",
                        message: format!("expected a cursor a page of jobs gave, got {c:?}"),
                    })?;
                (p, Some(from))
            }
        };
        let mut jobs = Vec::new();
        while p < places.len() {
            let (part, level) = places[p];
            let keys = &self.partitions[part];
            let (mut got, last) =
                self.jobs_in(keys, part as u16, level, state, limit - jobs.len(), from.as_deref()).await?;
            let full = jobs.len() + got.len() >= limit;
            jobs.append(&mut got);
            if full {
                return Ok(Page { jobs, next: last.map(|l| format!("{p}:{l}")) });
            }
            p += 1;
            from = None;
        }
        Ok(Page { jobs, next: None })
    }

    /// Up to `limit` jobs in `state` of one partition, after `from`; and the position of the
    /// last one.
    async fn jobs_in(
        &self,
        keys: &QueueKeys,
        p: u16,
        level: Priority,
        state: JobsIn,
        limit: usize,
        from: Option<&str>,
    ) -> Result<(Vec<JobSummary>, Option<String>)> {
        match state {
            JobsIn::Waiting | JobsIn::Dead => {
                let stream = if state == JobsIn::Dead { keys.dead() } else { keys.ready_at(level) };
                let start = match (from, state) {
                    (Some(id), _) => format!("({id}"),
                    (None, JobsIn::Waiting) => match self.group_of(&stream).await?.last_delivered {
                        Some(id) => format!("({id}"),
                        None => "-".into(),
                    },
                    (None, _) => "-".into(),
                };
                let entries = self.range(&stream, &start, limit).await?;
                let last = entries.last().map(|(id, _)| id.clone());
                let jobs = entries
                    .into_iter()
                    .flat_map(|(entry, fields)| summaries(state, &entry, p, level, fields))
                    .collect();
                Ok((jobs, last))
            }
            JobsIn::Active => {
                let ready = keys.ready_at(level);
                let start = from.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
                let pending = self.pending_between(&ready, &start, "+", limit).await?;
                let mut jobs = Vec::new();
                for (entry, consumer, idle, _) in &pending {
                    if let Some((_, fields)) = self.range(&ready, entry, 1).await?.pop() {
                        for mut job in summaries(JobsIn::Active, entry, p, level, fields) {
                            job.worker = Some((consumer.clone(), *idle));
                            jobs.push(job);
                        }
                    }
                }
                Ok((jobs, pending.last().map(|e| e.0.clone())))
            }
            JobsIn::Delayed | JobsIn::Retrying => {
                let set = if state == JobsIn::Delayed { keys.delayed() } else { keys.retrying() };
                let offset: usize = from.and_then(|f| f.parse().ok()).unwrap_or(0);
                let members: Vec<(Vec<u8>, f64)> = self
                    .redis
                    .with_conn(async |c| {
                        redis::cmd("ZRANGE")
                            .arg(&set)
                            .arg(offset)
                            .arg(offset + limit - 1)
                            .arg("WITHSCORES")
                            .query_async(c)
                            .await
                    })
                    .await?;
                let n = members.len();
                let jobs = members
                    .into_iter()
                    .map(|(member, due)| {
                        let fields = super::envelope::unpack_fields(&member).unwrap_or_default();
                        let mut job = summary(state, "", p, Priority::Normal, fields);
                        job.due_ms = Some(due as u64);
                        job
                    })
                    .collect();
                Ok((jobs, (n > 0).then(|| (offset + n).to_string())))
            }
        }
    }

    async fn group_of(&self, ready: &str) -> Result<GroupInfo> {
        let groups: Value = self
            .redis
            .with_conn(async |c| match redis::cmd("XINFO").arg("GROUPS").arg(ready).query_async(c).await {
                Ok(v) => Ok(v),
                // No stream yet: no group either.
                Err(e) if e.code() == Some("ERR") => Ok(Value::Nil),
                Err(e) => Err(e),
            })
            .await?;
        Ok(GroupInfo::of(&groups).unwrap_or_default())
    }

    /// Up to `count` entries of `stream` from `start` (`-`, an id, or `(id` for after it).
    async fn range(&self, stream: &str, start: &str, count: usize) -> Result<Vec<(String, Fields)>> {
        let end = if start.starts_with('(') || start == "-" { "+".to_owned() } else { start.to_owned() };
        let reply: Value = self
            .redis
            .with_conn(async |c| {
                redis::cmd("XRANGE").arg(stream).arg(start).arg(&end).arg("COUNT").arg(count).query_async(c).await
            })
            .await?;
        let Value::Array(entries) = reply else { return Ok(Vec::new()) };
        Ok(entries.into_iter().filter_map(super::claim::entry_parts).collect())
    }

    /// Entries of `stream` held by a worker, from `start` to `end` (XPENDING's extended form:
    /// id, consumer, idle ms, deliveries), at most `count`; a stream no worker has read yet (no
    /// group) holds none.
    async fn pending_between(
        &self,
        stream: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<(String, String, u64, u64)>> {
        self.redis
            .with_conn(async |c| {
                redis::cmd("XPENDING").arg(stream).arg(GROUP).arg(start).arg(end).arg(count).query_async(c).await
            })
            .await
            .or_else(|e| if e.is_missing_group() { Ok(Vec::new()) } else { Err(e) })
    }

    /// One job's record, wherever it is: a tracked job's status, then the stream (an id that is
    /// an entry id), the waiting jobs whose id is a field of theirs (a retried dead letter), the
    /// dead letters, the delayed and retrying jobs (each searched up to [`SEARCH_LIMIT`]
    /// entries). `None` when it is nowhere.
    pub async fn find(&self, id: &str) -> Result<Option<JobSummary>> {
        let id = JobId::parse(id).map_err(|message| Error::InvalidArgument { what: "job id", message })?;
        // An entry id (`<ms>-<seq>`, `@<partition>` and `/<priority>` after it): its entry in
        // the stream of its priority.
        if let Some((entry, p, level)) = id.entry_place()
            && usize::from(p) < self.partition_count()
        {
            let (p, keys) = (usize::from(p), &self.partitions[usize::from(p)]);
            let stream = keys.ready_at(level);
            if let Some((entry, fields)) = self.range(&stream, entry, 1).await?.pop() {
                let held = self.pending_between(&stream, &entry, &entry, 1).await?;
                let acked = held.is_empty()
                    && self.group_of(&stream).await?.last_delivered.is_some_and(|ld| stream_id_le(&entry, &ld));
                if !acked {
                    let state = if held.is_empty() { JobsIn::Waiting } else { JobsIn::Active };
                    let jobs = summaries(state, &entry, p as u16, level, fields);
                    // A packed job: the one its id names among the entry's.
                    if let Some(mut job) = jobs.into_iter().find(|j| j.id == id || id.packed_index().is_none()) {
                        job.worker = held.first().map(|h| (h.1.clone(), h.2));
                        return Ok(Some(job));
                    }
                }
            }
        }
        for (p, keys) in self.partitions.iter().enumerate() {
            // A waiting job whose entry is not its id (a retried dead letter keeps its id), in
            // each priority's stream.
            for level in Priority::ALL {
                let stream = keys.ready_at(level);
                let mut from = match self.group_of(&stream).await?.last_delivered {
                    Some(id) => format!("({id}"),
                    None => "-".into(),
                };
                let mut read = 0;
                while read < SEARCH_LIMIT {
                    let page = self.range(&stream, &from, 1000).await?;
                    let Some(last) = page.last().map(|e| e.0.clone()) else { break };
                    read += page.len();
                    for (entry, fields) in page {
                        if fields.iter().any(|(k, v)| k == b"id" && v == id.as_str().as_bytes()) {
                            return Ok(Some(summary(JobsIn::Waiting, &entry, p as u16, level, fields)));
                        }
                    }
                    from = format!("({last}");
                }
            }
            let mut from = "-".to_owned();
            let mut read = 0;
            while read < SEARCH_LIMIT {
                let page = self.range(&keys.dead(), &from, 1000).await?;
                let Some(last) = page.last().map(|e| e.0.clone()) else { break };
                read += page.len();
                for (entry, fields) in page {
                    if fields.iter().any(|(k, v)| k == b"id" && v == id.as_str().as_bytes()) {
                        return Ok(Some(summary(JobsIn::Dead, &entry, p as u16, Priority::Normal, fields)));
                    }
                }
                from = format!("({last}");
            }
            for (state, set) in [(JobsIn::Delayed, keys.delayed()), (JobsIn::Retrying, keys.retrying())] {
                let mut offset = 0;
                while offset < SEARCH_LIMIT {
                    let members: Vec<(Vec<u8>, f64)> = self
                        .redis
                        .with_conn(async |c| {
                            redis::cmd("ZRANGE")
                                .arg(&set)
                                .arg(offset)
                                .arg(offset + 999)
                                .arg("WITHSCORES")
                                .query_async(c)
                                .await
                        })
                        .await?;
                    if members.is_empty() {
                        break;
                    }
                    offset += members.len();
                    for (member, due) in members {
                        let fields = super::envelope::unpack_fields(&member).unwrap_or_default();
                        if fields.iter().any(|(k, v)| k == b"id" && v == id.as_str().as_bytes()) {
                            let mut job = summary(state, "", p as u16, Priority::Normal, fields);
                            job.due_ms = Some(due as u64);
                            return Ok(Some(job));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Moves the dead letters `pick` names back to the stream as first attempts (their ids
    /// kept); each one moved and its dead letter removed in one atomic round trip per chunk, so
    /// a retry under load moves each job exactly once and touches nothing else.
    pub async fn retry_dead(&self, pick: &Pick) -> Result<DeadDone> {
        self.each_dead(pick, true).await
    }

    /// Removes the dead letters `pick` names.
    pub async fn delete_dead(&self, pick: &Pick) -> Result<DeadDone> {
        self.each_dead(pick, false).await
    }

    async fn each_dead(&self, pick: &Pick, retry: bool) -> Result<DeadDone> {
        let mut done = DeadDone::default();
        let mut wanted: Option<BTreeMap<String, bool>> = match pick {
            Pick::All => None,
            Pick::Ids(ids) => Some(ids.iter().map(|id| (id.as_str().to_owned(), false)).collect()),
        };
        for keys in self.partitions.iter() {
            let dead = keys.dead();
            let mut from = "-".to_owned();
            loop {
                let page = self.range(&dead, &from, 500).await?;
                let Some(last) = page.last().map(|e| e.0.clone()) else { break };
                from = format!("({last}");
                let mut pipe = redis::pipe();
                pipe.atomic();
                let mut any = false;
                for (entry, mut fields) in page {
                    let id =
                        fields.iter().find(|(k, _)| k == b"id").map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                    if let Some(wanted) = &mut wanted {
                        match id.as_ref().and_then(|id| wanted.get_mut(id)) {
                            Some(seen) => *seen = true,
                            None => continue,
                        }
                    }
                    fields.retain(|(k, _)| k != b"e");
                    let job: std::result::Result<Envelope, DecodeError> = Envelope::from_fields(&mut fields);
                    match (retry, job) {
                        (true, Ok(job)) => {
                            let again = Envelope { attempt: 0, reclaims: 0, ..job };
                            pipe.cmd("XADD").arg(keys.ready_at(again.priority)).arg("*");
                            again.write_to_pipe(&mut pipe);
                            pipe.ignore();
                            if let (Some(_), Some(id)) = (again.keep_ms, &again.id) {
                                let key = keys.job(id);
                                pipe.cmd("HSET").arg(&key).arg("state").arg("waiting").arg("attempt").arg(0).ignore();
                                pipe.cmd("HDEL").arg(&key).arg("reason").arg("finished_at").ignore();
                                pipe.cmd("PEXPIRE")
                                    .arg(&key)
                                    .arg(super::track::PENDING_TTL.as_millis() as u64)
                                    .ignore();
                            }
                            done.done += 1;
                        }
                        (true, Err(_)) => {
                            done.undecodable += 1;
                            continue;
                        }
                        (false, job) => {
                            done.done += 1;
                            if job.is_err() {
                                done.undecodable += 1;
                            }
                        }
                    }
                    pipe.cmd("XDEL").arg(&dead).arg(&entry).ignore();
                    any = true;
                }
                if any {
                    self.redis.with_conn(async |c| pipe.query_async::<()>(c).await).await?;
                }
            }
        }
        if let Some(wanted) = wanted {
            done.not_found =
                wanted.into_iter().filter(|(_, seen)| !seen).map(|(id, _)| JobId::from_string(id)).collect();
        }
        Ok(done)
    }

    /// Removes every job in `state` (not `active`: a worker holds those), each partition in one
    /// atomic script; answers how many went.
    pub async fn purge(&self, state: JobsIn) -> Result<u64> {
        let mut removed = 0;
        for keys in self.partitions.iter() {
            let n: u64 = match state {
                JobsIn::Active => {
                    return Err(Error::InvalidArgument {
                        what: "state",
                        message: "active jobs are held by workers: they cannot be purged (cancel them instead)".into(),
                    });
                }
                JobsIn::Waiting => {
                    self.redis
                        .with_conn(async |c| {
                            scripts::PURGE_WAITING.key(&keys.ready_all()).arg(GROUP).invoke_async(c).await
                        })
                        .await?
                }
                JobsIn::Delayed | JobsIn::Retrying | JobsIn::Dead => {
                    let key = match state {
                        JobsIn::Delayed => keys.delayed(),
                        JobsIn::Retrying => keys.retrying(),
                        _ => keys.dead(),
                    };
                    self.redis.with_conn(async |c| scripts::PURGE_KEY.key(&key).invoke_async(c).await).await?
                }
            };
            removed += n;
        }
        Ok(removed)
    }

    /// Writes (and renews) a worker process's heartbeat.
    pub async fn heartbeat(&self, record: &WorkerRecord) -> Result<()> {
        let (key, set) = (self.keys.worker(&record.instance), self.keys.workers());
        let json = serde_json::to_string(record).expect("a record serializes");
        let ttl = HEARTBEAT_TTL.as_millis() as u64;
        let until = record.seen_ms + ttl;
        self.redis
            .with_conn(async |c| {
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(&json)
                    .arg("PX")
                    .arg(ttl)
                    .ignore()
                    .cmd("ZADD")
                    .arg(&set)
                    .arg(until)
                    .arg(&record.instance)
                    .ignore()
                    .query_async::<()>(c)
                    .await
            })
            .await
    }

    /// Removes a worker process's heartbeat (it stopped).
    pub async fn forget_worker(&self, instance: &str) -> Result<()> {
        let (key, set) = (self.keys.worker(instance), self.keys.workers());
        self.redis
            .with_conn(async |c| {
                redis::pipe()
                    .cmd("DEL")
                    .arg(&key)
                    .ignore()
                    .cmd("ZREM")
                    .arg(&set)
                    .arg(instance)
                    .ignore()
                    .query_async::<()>(c)
                    .await
            })
            .await
    }

    /// The worker processes whose heartbeat holds, by instance name.
    pub async fn live_workers(&self) -> Result<Vec<WorkerRecord>> {
        let set = self.keys.workers();
        let now = self.clock.now_ms();
        let names: Vec<String> = self
            .redis
            .with_conn(async |c| {
                let _: () = redis::cmd("ZREMRANGEBYSCORE").arg(&set).arg("-inf").arg(now).query_async(c).await?;
                redis::cmd("ZRANGE").arg(&set).arg(0).arg(-1).query_async(c).await
            })
            .await?;
        let mut out = Vec::new();
        for name in names {
            let key = self.keys.worker(&name);
            let json: Option<String> =
                self.redis.with_conn(async |c| redis::cmd("GET").arg(&key).query_async(c).await).await?;
            if let Some(record) = json.and_then(|j| serde_json::from_str(&j).ok()) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Completions and failures per second over the last minute, from what settles counted.
    pub async fn rates(&self) -> Result<Rates> {
        let seconds = self.throughput().await?;
        let (completed, failed) = seconds.iter().fold((0, 0), |(c, f), s| (c + s.completed, f + s.failed));
        Ok(Rates { completed_per_second: completed as f64 / 60.0, failed_per_second: failed as f64 / 60.0 })
    }

    /// What settled in each of the last 60 seconds (the current one last), summed over
    /// partitions: the series behind [`rates`](Self::rates), for a live view.
    pub async fn throughput(&self) -> Result<Vec<SecondCount>> {
        let now_s = self.clock.now_ms() / 1000;
        let mut seconds: Vec<SecondCount> =
            (0..60).map(|i| SecondCount { at_s: now_s - 59 + i, ..SecondCount::default() }).collect();
        for keys in self.partitions.iter() {
            for minute in [now_s / 60, now_s / 60 - 1] {
                let key = keys.rate(minute);
                let counts: BTreeMap<String, u64> =
                    self.redis.with_conn(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await).await?;
                for (field, n) in counts {
                    let (kind, second) = field.split_at(1);
                    let Ok(second) = second.parse::<u64>() else { continue };
                    let at = minute * 60 + second;
                    if at + 60 > now_s && at <= now_s {
                        let slot = &mut seconds[(at + 59 - now_s) as usize];
                        match kind {
                            "c" => slot.completed += n,
                            _ => slot.failed += n,
                        }
                    }
                }
            }
        }
        Ok(seconds)
    }
}

/// `a <= b` for stream ids.
fn stream_id_le(a: &str, b: &str) -> bool {
    let parse = |s: &str| s.split_once('-').and_then(|(m, q)| Some((m.parse::<u64>().ok()?, q.parse::<u64>().ok()?)));
    matches!((parse(a), parse(b)), (Some(a), Some(b)) if a <= b)
}

/// The page's lines for an entry's fields: one, or one per job of an entry that packs several.
fn summaries(state: JobsIn, entry: &str, p: u16, level: Priority, fields: Fields) -> Vec<JobSummary> {
    let packed: Option<Vec<Fields>> = {
        let slices = fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
        super::envelope::packed_value(slices)
            .and_then(|x| super::envelope::packed_jobs(x).ok())
            .map(|jobs| jobs.iter().map(|job| job.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()).collect())
    };
    let Some(jobs) = packed else { return vec![summary(state, entry, p, level, fields)] };
    jobs.into_iter()
        .enumerate()
        .map(|(i, job)| {
            let mut line = summary(state, entry, p, level, job);
            line.id = JobId::of_packed(entry, i as u16, p, level);
            line.priority = level;
            line
        })
        .collect()
}

/// A page's line for an entry's fields (`entry` empty for a delayed member: its id is a field).
fn summary(state: JobsIn, entry: &str, p: u16, level: Priority, mut fields: Fields) -> JobSummary {
    let reason = fields.iter().find(|(k, _)| k == b"e").map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    fields.retain(|(k, _)| k != b"e");
    // A dead letter's entry was added when the job died: its time says nothing of the enqueue.
    let entry_ms = if state == JobsIn::Dead { None } else { JobId::entry_ms(entry) };
    match Envelope::from_fields(&mut fields) {
        Ok(job) => {
            let id = job.id.clone().map_or_else(|| JobId::of_entry_at(entry, p, level), JobId::from_string);
            // Its `t`, else its first entry's time when its id names one, else its entry's.
            let first_ms = job.id.as_deref().and_then(JobId::entry_ms);
            let enqueued_ms = job.enqueued_us.map(|t| t / 1000).or(first_ms).or(entry_ms).unwrap_or(0);
            JobSummary {
                id,
                state,
                priority: job.priority,
                name: job.name,
                attempt: job.attempt,
                enqueued_ms,
                due_ms: None,
                worker: None,
                reason,
                payload: job.payload,
                headers: job.headers.map(|h| h.to_vec()),
            }
        }
        Err(e) => JobSummary {
            id: JobId::of_entry_at(entry, p, level),
            state,
            priority: level,
            name: String::new(),
            attempt: 0,
            enqueued_ms: entry_ms.unwrap_or(0),
            due_ms: None,
            worker: None,
            reason: reason.or_else(|| Some(format!("not a job: {e}"))),
            payload: fields.iter().find(|(k, _)| k == b"d").map(|(_, v)| v.clone()).unwrap_or_default(),
            headers: None,
        },
    }
}
