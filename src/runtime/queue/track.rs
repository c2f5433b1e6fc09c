//! Tracked jobs: what a job enqueued with tracking leaves behind to be asked about. Each has a
//! status hash (`{q}:job:<id>`) written in the same round trips as the job's own moves — its
//! enqueue, its settle, a reclaim — and once when a worker starts it; when it finishes, the hash
//! expires after the job's retention, so finished jobs never fill Redis. Their events
//! (completed, failed, dead, cancelled) go to a capped stream an application can follow: one
//! entry per settle holds the events of all its tracked jobs.
//! Untracked jobs write none of this.
//!
//! Cancellation works for every job by id: its id goes to the queue's cancelled set; the
//! scheduler of every worker process reads new entries every few milliseconds and the workers
//! there settle a cancelled job as cancelled instead of starting it, or trip the cancellation
//! token of the run in progress. A tracked job waiting or delayed is marked cancelled at once,
//! and a worker that claims it learns so from its hash before it starts it.

use super::envelope::{Envelope, JobId};
use super::keys::QueueKeys;
use super::settle::Tracked;
use super::{Queue, partition, scripts};
use crate::runtime::error::{Error, Result};
use redis::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a tracked job's status is kept after it finished, unless the job says otherwise.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(24 * 3600);
/// How long a tracked job's status lives past its due time while it is unfinished (a job lost
/// with its queue — a purge, a reset — does not leave its hash forever).
pub const PENDING_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The events stream keeps about this many events (`XADD MAXLEN ~`): a subscriber further
/// behind than that misses the oldest.
pub const EVENTS_KEPT: u64 = 100_000;
/// How long an id stays in the cancelled set.
pub const CANCEL_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where a tracked job is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// In the stream, not yet handed to a worker.
    Waiting,
    /// Waiting for its due time.
    Delayed {
        /// When it becomes due (ms since the epoch).
        until_ms: u64,
    },
    /// A worker runs it.
    Active {
        /// The worker's consumer name.
        worker: String,
        /// A cancellation was asked for while it ran.
        cancel_requested: bool,
    },
    /// Its last attempt failed; it runs again.
    Retrying {
        /// When the next attempt is due (ms since the epoch).
        next_ms: u64,
        /// What the last attempt said.
        last_error: String,
    },
    /// Done.
    Completed {
        /// What the handler returned (JSON from `Json(..)`), when it returned something.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<String>,
    },
    /// In the dead letters.
    Dead {
        /// Why.
        reason: String,
    },
    /// Cancelled before it finished.
    Cancelled,
}

/// A tracked job's status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobInfo {
    /// Its id.
    pub id: JobId,
    /// Its job type.
    pub name: String,
    /// Where it is.
    #[serde(flatten)]
    pub state: JobState,
    /// The attempt it is at (0 for the first).
    pub attempt: u16,
    /// When it was enqueued (ms since the epoch).
    pub enqueued_ms: u64,
    /// When it last started (ms since the epoch), if it did.
    pub started_ms: Option<u64>,
    /// When it finished (ms since the epoch), if it did.
    pub finished_ms: Option<u64>,
    /// The error of its latest failed attempt, if one failed.
    pub last_error: Option<String>,
}

/// The answer to "where is job X".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Tracked, and here is its status.
    Found(JobInfo),
    /// No status under this id: never a tracked job of this queue, or one whose retention has
    /// passed.
    NotFound,
    /// An id conveyor made (a UUID v7, which tells when) for a job enqueued longer ago than the
    /// default retention: its status has expired.
    Expired {
        /// When the id was made (ms since the epoch).
        enqueued_ms: u64,
    },
}

/// What asking to cancel a job did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cancelled {
    /// It was waiting or delayed: it will not start.
    Cancelled,
    /// It is running: its cancellation token trips (a handler that ignores it finishes).
    Requested,
    /// It had already finished (`completed`, `dead` or `cancelled`): nothing changed.
    AlreadyFinished(String),
    /// Untracked: every worker is told not to start it, or to trip its token if it runs; whether
    /// it existed is not known.
    Sent,
}

/// A tracked job's event, from the queue's events stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// Where it is in the stream (pass the last one back to read on).
    pub cursor: String,
    /// The job's id.
    pub id: JobId,
    /// Its job type.
    pub name: String,
    /// `completed`, `failed` (it will retry), `dead` or `cancelled`.
    pub kind: String,
    /// The attempt that ended.
    pub attempt: u16,
    /// The error or reason, for `failed` and `dead`.
    pub error: Option<String>,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// The first statuses of an enqueue's tracked jobs that have ids of their own making: waiting,
/// or delayed until their due time, with their expiry while unfinished, in one call of the
/// `track_enqueue` script for the batch. Fields that would say what their absence says
/// (attempt 0, no due time) are left out: a smaller hash, less to write.
#[derive(Debug, Default)]
pub(super) struct TrackedEnqueue<'a> {
    keys: Vec<String>,
    /// Each job's name, due time and attempt, and its expiry.
    jobs: Vec<(&'a str, Option<u64>, u16, u64)>,
}

impl<'a> TrackedEnqueue<'a> {
    /// Records the first status of tracked job `job` (id `id`), due at `due_ms` (`None`: ready
    /// now).
    pub(super) fn record(&mut self, keys: &QueueKeys, id: &str, job: &'a Envelope, due_ms: Option<u64>, now_ms: u64) {
        self.keys.push(keys.job(id));
        let ttl = due_ms.unwrap_or(0).saturating_sub(now_ms) + PENDING_TTL.as_millis() as u64;
        self.jobs.push((&job.name, due_ms, job.attempt, ttl));
    }

    /// Adds the script call to `pipe` (nothing when no job was recorded); its reply is ignored.
    pub(super) fn write(self, pipe: &mut redis::Pipeline, now_ms: u64) {
        if self.keys.is_empty() {
            return;
        }
        pipe.cmd("EVAL").arg(scripts::TRACK_ENQUEUE_SOURCE).arg(self.keys.len()).arg(&self.keys).arg(now_ms);
        for (name, due, attempt, ttl) in self.jobs {
            pipe.arg(name);
            match due {
                Some(due) => pipe.arg(due),
                None => pipe.arg(""),
            };
            pipe.arg(attempt).arg(ttl);
        }
        pipe.ignore();
    }
}

/// The events of one settle's tracked jobs: gathered while the settle's `MULTI` is built, then
/// written as one entry of the events stream (one `XADD` per batch instead of one per job): its
/// field `x` holds them, a MessagePack array of `[id, kind, name, attempt, error or nil]`, and
/// `at` when they happened. Events written one at a time (a cancel, a reclaim) are entries of
/// their own fields (`id`, `kind`, `name`, `attempt`, `error`, `at`); a reader takes both.
#[derive(Debug, Default)]
struct EventBatch {
    /// The events so far, packed, without the array's header.
    packed: Vec<u8>,
    count: u32,
}

impl EventBatch {
    fn push(&mut self, id: &str, kind: &str, name: &str, attempt: u16, error: Option<&str>) {
        let out = &mut self.packed;
        let w = "writing to a Vec cannot fail";
        rmp::encode::write_array_len(out, 5).expect(w);
        rmp::encode::write_str(out, id).expect(w);
        rmp::encode::write_str(out, kind).expect(w);
        rmp::encode::write_str(out, name).expect(w);
        rmp::encode::write_uint(out, u64::from(attempt)).expect(w);
        match error {
            Some(e) => rmp::encode::write_str(out, e).expect(w),
            None => rmp::encode::write_nil(out).expect(w),
        }
        self.count += 1;
    }

    /// Adds the `XADD` of the batch's events to `pipe` (nothing when it has none). The stream
    /// is capped at about [`EVENTS_KEPT`] events: entries of this size.
    fn write(self, pipe: &mut redis::Pipeline, keys: &QueueKeys, now_ms: u64) {
        if self.count == 0 {
            return;
        }
        let mut x = Vec::with_capacity(5 + self.packed.len());
        rmp::encode::write_array_len(&mut x, self.count).expect("writing to a Vec cannot fail");
        x.extend_from_slice(&self.packed);
        let entries = (EVENTS_KEPT / u64::from(self.count)).max(1);
        pipe.cmd("XADD").arg(keys.events()).arg("MAXLEN").arg("~").arg(entries).arg("*");
        pipe.arg("at").arg(now_ms).arg("x").arg(x).ignore();
    }
}

/// One tracked job's arguments to `track_settle`: what it became, its attempt, its expiry, its
/// due time and its text.
type SettledStatus<'a> = (&'static str, u16, u64, u64, Cow<'a, [u8]>);

/// What a settle's tracked jobs become: their statuses (one call of the `track_settle` script
/// for the batch) and their events (one [`EventBatch`] entry), added at the end of the settle's
/// `MULTI`.
#[derive(Debug, Default)]
pub(super) struct TrackedSettle<'a> {
    keys: Vec<String>,
    /// Each job's code, attempt, expiry, due time and text (see the script).
    jobs: Vec<SettledStatus<'a>>,
    events: EventBatch,
}

impl<'a> TrackedSettle<'a> {
    /// Records what tracked job `job` (id `id`) becomes: its status and expiry (kept for
    /// `keep_ms` once finished), its event.
    pub(super) fn record(
        &mut self,
        keys: &QueueKeys,
        id: &JobId,
        job: &Envelope,
        tracked: &Tracked<'a>,
        now_ms: u64,
        keep_ms: u64,
    ) {
        let attempt = job.attempt;
        let (became, next, ttl, due, text): (&str, u16, u64, u64, Cow<'a, [u8]>) = match tracked {
            Tracked::Completed { result: None } => ("c", attempt, keep_ms, 0, Cow::Borrowed(b"")),
            Tracked::Completed { result: Some(r) } => ("r", attempt, keep_ms, 0, Cow::Borrowed(*r)),
            Tracked::Retrying { due, error } => {
                let ttl = due.saturating_sub(now_ms) + PENDING_TTL.as_millis() as u64;
                ("f", attempt + 1, ttl, *due, Cow::Borrowed(error.as_bytes()))
            }
            // The reason is made for this settle: a copy.
            Tracked::Dead { reason } => ("d", attempt, keep_ms, 0, Cow::Owned(reason.as_bytes().to_vec())),
            Tracked::Cancelled => ("x", attempt, keep_ms, 0, Cow::Borrowed(b"")),
        };
        self.keys.push(keys.job(id.as_str()));
        self.jobs.push((became, next, ttl, due, text));
        let (kind, error) = match tracked {
            Tracked::Completed { .. } => ("completed", None),
            Tracked::Retrying { error, .. } => ("failed", Some(*error)),
            Tracked::Dead { reason } => ("dead", Some(reason.as_str())),
            Tracked::Cancelled => ("cancelled", None),
        };
        self.events.push(id.as_str(), kind, &job.name, attempt, error);
    }

    /// Adds the batch's statuses and events to the settle's `pipe` (nothing when it has none).
    pub(super) fn write(self, pipe: &mut redis::Pipeline, keys: &QueueKeys, now_ms: u64) {
        if self.keys.is_empty() {
            return;
        }
        pipe.cmd("EVAL").arg(scripts::TRACK_SETTLE_SOURCE).arg(self.keys.len()).arg(&self.keys).arg(now_ms);
        for (became, attempt, ttl, due, text) in &self.jobs {
            pipe.arg(*became).arg(*attempt).arg(*ttl).arg(*due).arg(text.as_ref());
        }
        pipe.ignore();
        self.events.write(pipe, keys, now_ms);
    }
}

/// An id the user typed: 1 to 256 bytes, no control characters.
fn check_id(id: &str) -> Result<JobId> {
    if id.chars().any(char::is_control) {
        return Err(Error::InvalidArgument { what: "job id", message: "expected no control characters".into() });
    }
    JobId::parse(id).map_err(|message| Error::InvalidArgument { what: "job id", message })
}

/// When a UUID v7 id was made (ms since the epoch); `None` for any other id.
fn uuid_v7_time(id: &str) -> Option<u64> {
    let uuid = uuid::Uuid::parse_str(id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<u64> {
    text(v).and_then(|s| s.parse().ok())
}

impl Queue {
    /// The partitions where tracked job `id` may be: its own key's partition first (where a job
    /// without a partition key lives), then the others.
    fn partitions_of(&self, id: &JobId) -> Vec<&QueueKeys> {
        let first = usize::from(partition::of_key(id.as_str(), self.partition_count()));
        let mut order = vec![&self.partitions[first]];
        order.extend(self.partitions.iter().enumerate().filter(|(p, _)| *p != first).map(|(_, k)| k));
        order
    }

    /// Where tracked job `id` is. A malformed id is an error; an unknown or expired one is an
    /// answer.
    pub async fn status(&self, id: &str) -> Result<Status> {
        let id = check_id(id)?;
        for keys in self.partitions_of(&id) {
            let key = keys.job(id.as_str());
            let fields: HashMap<String, Value> =
                self.redis.with_conn(async |c| redis::cmd("HGETALL").arg(&key).query_async(c).await).await?;
            if fields.is_empty() {
                continue;
            }
            return Ok(Status::Found(info(id, &fields, self.clock.now_ms())));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Ok(match uuid_v7_time(id.as_str()) {
            Some(made) if made + (DEFAULT_KEEP.as_millis() as u64) < now => Status::Expired { enqueued_ms: made },
            _ => Status::NotFound,
        })
    }

    /// Asks for job `id` to be cancelled (see the module docs for what that does).
    pub async fn cancel(&self, id: &str) -> Result<Cancelled> {
        let id = check_id(id)?;
        let now = self.clock.now_ms();
        // Tracked: its hash says where it is. Untracked: every partition's set hears of it (a
        // worker of any partition may hold a job of that id).
        for keys in self.partitions_of(&id) {
            let (outcome, state): (String, String) = self
                .redis
                .with_conn(async |c| {
                    scripts::CANCEL
                        .key(keys.job(id.as_str()))
                        .key(keys.cancelled())
                        .key(keys.events())
                        .arg(id.as_str())
                        .arg(now)
                        .arg(DEFAULT_KEEP.as_millis() as u64)
                        .arg(EVENTS_KEPT)
                        .invoke_async(c)
                        .await
                })
                .await?;
            match outcome.as_str() {
                "finished" => return Ok(Cancelled::AlreadyFinished(state)),
                "running" => return Ok(Cancelled::Requested),
                "cancelled" => return Ok(Cancelled::Cancelled),
                _ => {}
            }
        }
        Ok(Cancelled::Sent)
    }

    /// Ids asked to be cancelled at or after `since_ms` (ms since the epoch), with the newest
    /// time seen (pass it back next time: ids of that very millisecond are read again, so none
    /// is missed), over every partition.
    pub async fn cancelled_since(&self, since_ms: u64) -> Result<(Vec<JobId>, u64)> {
        let mut ids = Vec::new();
        let mut newest = since_ms;
        for keys in self.partitions.iter() {
            let key = keys.cancelled();
            let found: Vec<(String, f64)> = self
                .redis
                .with_conn(async |c| {
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(&key)
                        .arg(since_ms)
                        .arg("+inf")
                        .arg("WITHSCORES")
                        .query_async(c)
                        .await
                })
                .await?;
            for (id, at) in found {
                newest = newest.max(at as u64);
                ids.push(JobId::from_string(id));
            }
        }
        Ok((ids, newest))
    }

    /// Forgets cancellations older than [`CANCEL_KEPT`].
    pub async fn trim_cancelled(&self) -> Result<()> {
        let before = self.clock.now_ms().saturating_sub(CANCEL_KEPT.as_millis() as u64);
        for keys in self.partitions.iter() {
            let key = keys.cancelled();
            self.redis
                .with_conn(async |c| {
                    redis::cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(before).query_async::<()>(c).await
                })
                .await?;
        }
        Ok(())
    }

    /// Marks tracked jobs a worker just claimed as active under `worker`, unless they already
    /// finished; answers which of them were cancelled meanwhile (a worker does not start those).
    pub async fn mark_active(&self, worker: &str, jobs: &[(u16, &JobId, u16)]) -> Result<Vec<bool>> {
        let mut cancelled = vec![false; jobs.len()];
        let now = self.clock.now_ms();
        for (p, group) in partition::group_by_partition(&jobs.iter().enumerate().collect::<Vec<_>>(), |(_, j)| j.0) {
            let keys = self.partition(p)?;
            let mut call = scripts::MARK_ACTIVE.prepare_invoke();
            call.arg(worker).arg(now);
            for (_, (_, id, attempt)) in &group {
                call.key(keys.job(id.as_str()));
                call.arg(*attempt);
            }
            let answer: Vec<u8> = self.redis.with_conn(async |c| call.invoke_async(c).await).await?;
            for ((i, _), was) in group.iter().zip(answer) {
                cancelled[*i] = was == 1;
            }
        }
        Ok(cancelled)
    }

    /// Tracked jobs' events after `cursor` (`"0-0"` for the oldest kept, `"$"` for new ones only),
    /// waiting up to `block` when there are none yet; on a partitioned queue, each partition's
    /// stream in turn (`cursor` holds one position per partition, separated by commas). `count`
    /// counts entries of the stream: one settle's events share one entry (and its cursor), so a
    /// read may answer more events than `count`, never part of an entry.
    pub async fn events(
        &self,
        conn: &mut crate::runtime::connection::Conn,
        cursor: &str,
        count: usize,
        block: Duration,
    ) -> Result<(Vec<Event>, String)> {
        let mut cursors = partition::split_cursor(cursor, self.partition_count());
        let mut out = Vec::new();
        for (p, keys) in self.partitions.iter().enumerate() {
            let mut read = redis::cmd("XREAD");
            read.arg("COUNT").arg(count);
            // Block on the last partition only, and only when nothing came from the others.
            if p + 1 == self.partitions.len() && out.is_empty() && !block.is_zero() {
                read.arg("BLOCK").arg(block.as_millis().max(1) as u64);
            }
            read.arg("STREAMS").arg(keys.events()).arg(&cursors[p]);
            let reply: Value = read.query_async(conn).await?;
            let mut last = None;
            for (entry, fields) in xread_entries(reply) {
                let get = |name: &str| fields.get(name).map(|v| String::from_utf8_lossy(v).into_owned());
                let cursor = if self.partitions.len() == 1 { entry.clone() } else { format!("{p}:{entry}") };
                let at_ms = get("at").and_then(|a| a.parse().ok()).unwrap_or(0);
                match fields.get("x") {
                    // A settle's events, in one entry (see [`EventBatch`]); one that does not
                    // unpack is passed over.
                    Some(x) => {
                        let rows: Vec<EventRow> = rmp_serde::from_slice(x).unwrap_or_default();
                        out.extend(rows.into_iter().map(|(id, kind, name, attempt, error)| Event {
                            cursor: cursor.clone(),
                            id: JobId::from_string(id),
                            name,
                            kind,
                            attempt,
                            error,
                            at_ms,
                        }));
                    }
                    None => out.push(Event {
                        cursor,
                        id: JobId::from_string(get("id").unwrap_or_default()),
                        name: get("name").unwrap_or_default(),
                        kind: get("kind").unwrap_or_default(),
                        attempt: get("attempt").and_then(|a| a.parse().ok()).unwrap_or(0),
                        error: get("error"),
                        at_ms,
                    }),
                }
                last = Some(entry);
            }
            if let Some(last) = last {
                cursors[p] = last;
            } else if cursors[p] == "$" {
                // Pin "new ones only" to where the stream is now, so the next read misses none.
                cursors[p] = self.last_event_id(keys).await?;
            }
        }
        Ok((out, partition::join_cursor(cursors.iter().map(String::as_str))))
    }

    async fn last_event_id(&self, keys: &QueueKeys) -> Result<String> {
        let key = keys.events();
        let reply: Value = self
            .redis
            .with_conn(async |c| {
                redis::cmd("XREVRANGE").arg(&key).arg("+").arg("-").arg("COUNT").arg(1).query_async(c).await
            })
            .await?;
        Ok(xrange_entries(reply).into_iter().next().map_or_else(|| "0-0".to_owned(), |(id, _)| id))
    }
}

/// One event of a settle's entry: id, kind, job type, attempt, error.
type EventRow = (String, String, String, u16, Option<String>);

/// The entries of an `XREAD` reply (`[[stream, entries]]`, nil when none came).
fn xread_entries(reply: Value) -> Vec<(String, HashMap<String, Vec<u8>>)> {
    let Value::Array(streams) = reply else { return Vec::new() };
    streams
        .into_iter()
        .flat_map(|s| match s {
            Value::Array(mut parts) if parts.len() == 2 => parts.pop(),
            _ => None,
        })
        .flat_map(xrange_entries)
        .collect()
}

/// The entries of an `XRANGE` reply, with their fields by name.
fn xrange_entries(reply: Value) -> Vec<(String, HashMap<String, Vec<u8>>)> {
    let Value::Array(entries) = reply else { return Vec::new() };
    entries
        .into_iter()
        .filter_map(super::claim::entry_parts)
        .map(|(id, fields)| {
            let by_name = fields.into_iter().map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v)).collect();
            (id, by_name)
        })
        .collect()
}

/// A job's status from its hash.
fn info(id: JobId, f: &HashMap<String, Value>, now_ms: u64) -> JobInfo {
    let get = |name: &str| text(f.get(name));
    let num = |name: &str| number(f.get(name));
    let state = match get("state").as_deref() {
        Some("delayed") | Some("retrying") if num("due_at").is_some_and(|due| due <= now_ms) => JobState::Waiting,
        Some("delayed") => JobState::Delayed { until_ms: num("due_at").unwrap_or(0) },
        Some("retrying") => {
            JobState::Retrying { next_ms: num("due_at").unwrap_or(0), last_error: get("error").unwrap_or_default() }
        }
        Some("active") => JobState::Active {
            worker: get("worker").unwrap_or_default(),
            cancel_requested: f.contains_key("cancel_requested"),
        },
        Some("completed") => JobState::Completed { result: get("result") },
        Some("dead") => JobState::Dead { reason: get("reason").unwrap_or_default() },
        Some("cancelled") => JobState::Cancelled,
        _ => JobState::Waiting,
    };
    JobInfo {
        id,
        name: get("name").unwrap_or_default(),
        state,
        attempt: num("attempt").map_or(0, |a| a.min(u64::from(u16::MAX)) as u16),
        enqueued_ms: num("enqueued_at").unwrap_or(0),
        started_ms: num("started_at"),
        finished_ms: num("finished_at"),
        last_error: get("error"),
    }
}
