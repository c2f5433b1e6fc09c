//! Claiming: a worker takes a batch of entries in one `XREADGROUP`, and each entry of the reply
//! is decoded straight into the [`Envelope`] of its job — or of each job it packs (an entry of
//! version 2), each a [`Claimed`] of its own that names its place in the entry.

use super::envelope::{DecodeError, Envelope, Fields, JobId};
use super::priority::Priority;
use super::{GROUP, Queue};
use crate::runtime::connection::Conn;
use crate::runtime::connection::resp::Reader;
use crate::runtime::error::Result;
use redis::Value;
use std::sync::Arc;
use std::time::Duration;

/// A job handed to a worker by [`Queue::claim`].
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Stream entry id: what acknowledging and renewing refer to (shared by the jobs of an entry
    /// that packs several).
    pub entry_id: Arc<str>,
    /// The decoded job, or why it could not be decoded (a poison entry).
    pub job: Result<Envelope, Poison>,
    /// The partition whose stream the entry is in (0 when the queue is not partitioned).
    pub partition: u16,
    /// The priority whose stream the entry is in (what acknowledging it names).
    pub priority: Priority,
    /// Where the job is in an entry that packs several: `None` for an entry of one job.
    pub pack: Option<PackPlace>,
}

/// A job's place in an entry that packs several jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackPlace {
    /// Its index, from 0.
    pub index: u16,
    /// How many jobs the entry packs.
    pub of: u16,
}

/// An entry that is not a job this worker can read, with its fields as stored (they go to the
/// dead letters unchanged).
#[derive(Debug, Clone)]
pub struct Poison {
    /// Why it could not be read.
    pub error: DecodeError,
    /// Its fields, name and value.
    pub fields: Fields,
}

impl Claimed {
    /// The job's id: the one it carries (retried, reclaimed, delayed), else its entry's.
    pub fn job_id(&self) -> JobId {
        let explicit = self.job.as_ref().ok().and_then(|j| j.id.as_deref());
        JobId::of_claimed(explicit, &self.entry_id, self.pack.map(|p| p.index), self.partition, self.priority)
    }

    /// When the job was enqueued (µs since the epoch): its `t` field; else the millisecond
    /// time of its first entry, when its id names one (a retried or reclaimed job's); else the
    /// time of the entry it was claimed from (a job a producer wrote without `t`: a delayed
    /// one's from when it became due).
    pub fn enqueued_us(&self) -> u64 {
        if let Ok(Envelope { enqueued_us: Some(t), .. }) = &self.job {
            return *t;
        }
        let first = self.job.as_ref().ok().and_then(|j| j.id.as_deref()).and_then(JobId::entry_ms);
        first.or_else(|| JobId::entry_ms(&self.entry_id)).map_or(0, |ms| ms * 1000)
    }
}

impl Queue {
    /// Claims up to `count` jobs for `consumer`, waiting up to `block` for the first one.
    /// Runs on a dedicated connection: a blocking read holds up its connection.
    ///
    /// With several partitions, every claim starts at the next partition in turn and takes the
    /// first partition that has jobs (one non-blocking read each); only when every partition is
    /// empty does it block, on the partition it started at. So partitions are served fairly and
    /// a busy partition never waits behind an empty one. (A read cannot span partitions: on a
    /// cluster their streams are on different nodes.) A partition that fails (its master is
    /// down) is passed over for a while; the claim fails only when every partition it tried did.
    pub async fn claim(&self, conn: &mut Conn, consumer: &str, count: usize, block: Duration) -> Result<Vec<Claimed>> {
        let n = self.partition_count();
        if n == 1 {
            return self.claim_in(0, conn, consumer, count, Some(block)).await;
        }
        let start = self.claim_from.next(n);
        let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        let usable: Vec<usize> = order.iter().copied().filter(|&p| self.health.usable(p)).collect();
        let mut last_error = None;
        let mut empty = None;
        for p in if usable.is_empty() { order } else { usable } {
            match self.claim_in(p as u16, conn, consumer, count, None).await {
                Ok(claimed) if !claimed.is_empty() => {
                    self.health.answered(p);
                    return Ok(claimed);
                }
                Ok(_) => {
                    self.health.answered(p);
                    empty.get_or_insert(p);
                }
                Err(e) => {
                    self.health.failed(p);
                    last_error = Some(e);
                }
            }
        }
        match (empty, last_error) {
            // Every partition that answered is empty: wait on the first of them.
            (Some(p), _) => self.claim_in(p as u16, conn, consumer, count, Some(block)).await,
            (None, Some(e)) => Err(e),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// One XREADGROUP on partition `p`, blocking up to `block` when given.
    async fn claim_in(
        &self,
        p: u16,
        conn: &mut Conn,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Claimed>> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg(GROUP).arg(consumer).arg("COUNT").arg(count);
        if let Some(block) = block {
            read.arg("BLOCK").arg(block.as_micros().div_ceil(1000).max(1) as u64); // BLOCK 0 would wait forever
        }
        read.arg("STREAMS").arg(self.partition(p)?.ready()).arg(">");
        if let Conn::Raw(raw) = conn {
            // Straight from the reply's bytes into jobs: no `redis::Value` tree.
            return Ok(raw.query_frame(&read, |frame| parse_read_frame(frame, p)).await?);
        }
        let reply: Value = read.query_async(conn).await?;
        Ok(parse_read_reply(reply, p))
    }
}

/// XREADGROUP's reply as Redis sent it (RESP2): `*1 [*2 [$stream, *N [*2 [$id, *2k [$field,
/// $value, ...]]]]]`, or a nil array on timeout. Only the values a job keeps are copied.
fn parse_read_frame(frame: &[u8], partition: u16) -> redis::RedisResult<Vec<Claimed>> {
    let mut r = Reader::new(frame);
    let Some(streams) = r.array()? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut fields: Vec<(&[u8], &[u8])> = Vec::with_capacity(8);
    for _ in 0..streams {
        r.array()?; // [stream, entries]
        r.bulk()?;
        let entries = r.array()?.unwrap_or(0);
        out.reserve(entries);
        for _ in 0..entries {
            r.array()?; // [id, fields]
            let id = r.bulk()?.unwrap_or_default();
            let entry_id: Arc<str> = Arc::from(String::from_utf8_lossy(id));
            fields.clear();
            for _ in 0..r.array()?.unwrap_or(0) / 2 {
                let (k, v) = (r.bulk()?.unwrap_or_default(), r.bulk()?.unwrap_or_default());
                fields.push((k, v));
            }
            push_entry(entry_id, &fields, partition, Priority::Normal, &mut out);
        }
    }
    Ok(out)
}

/// The job of one entry, or each job it packs, as claimed jobs (copying the values they keep).
pub(super) fn push_entry(
    entry_id: Arc<str>,
    fields: &[(&[u8], &[u8])],
    partition: u16,
    priority: Priority,
    out: &mut Vec<Claimed>,
) {
    let owned = |fields: &[(&[u8], &[u8])]| fields.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let Some(packed) = super::envelope::packed_value(fields.iter().copied()) else {
        let job = Envelope::from_slices(fields).map_err(|error| Poison { error, fields: owned(fields) });
        out.push(Claimed { entry_id, job, partition, priority, pack: None });
        return;
    };
    let jobs = match super::envelope::packed_jobs(packed) {
        Ok(jobs) => jobs,
        // Not a list of jobs: the entry as a whole is poison.
        Err(error) => {
            out.push(Claimed {
                entry_id,
                job: Err(Poison { error, fields: owned(fields) }),
                partition,
                priority,
                pack: None,
            });
            return;
        }
    };
    let of = jobs.len() as u16;
    out.reserve(jobs.len());
    for (index, job_fields) in jobs.iter().enumerate() {
        // Each job of the entry is decoded on its own: one that does not decode is poison alone.
        let job = Envelope::from_slices(job_fields)
            .map(|mut job| {
                job.priority = priority;
                job
            })
            .map_err(|error| Poison { error, fields: owned(job_fields) });
        let pack = Some(PackPlace { index: index as u16, of });
        out.push(Claimed { entry_id: entry_id.clone(), job, partition, priority, pack });
    }
}

/// XREADGROUP's reply: `[[stream, [[id, [field, value, ...]], ...]]]` (RESP2; a map of streams
/// in RESP3), or nil on timeout.
pub(super) fn parse_read_reply(reply: Value, partition: u16) -> Vec<Claimed> {
    parse_named_reply(reply, partition, |_| Priority::Normal)
}

/// [`parse_read_reply`] of a read of several streams: `priority_of` tells each stream's level
/// by its name.
pub(super) fn parse_named_reply(reply: Value, partition: u16, priority_of: impl Fn(&[u8]) -> Priority) -> Vec<Claimed> {
    let streams: Vec<(Priority, Value)> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut parts) if parts.len() == 2 => {
                    let entries = parts.pop()?;
                    let priority = match parts.pop()? {
                        Value::BulkString(name) => priority_of(&name),
                        Value::SimpleString(name) => priority_of(name.as_bytes()),
                        _ => Priority::Normal,
                    };
                    Some((priority, entries))
                }
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .map(|(name, entries)| {
                let priority = match name {
                    Value::BulkString(name) => priority_of(&name),
                    _ => Priority::Normal,
                };
                (priority, entries)
            })
            .collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (priority, entries) in streams {
        entries_into(entries, partition, priority, &mut out);
    }
    out
}

/// The entries of one stream (`[[id, [field, value, ...]], ...]`) as claimed jobs of `priority`.
pub(super) fn entries_into(entries: Value, partition: u16, priority: Priority, out: &mut Vec<Claimed>) {
    let Value::Array(entries) = entries else { return };
    out.reserve(entries.len());
    for entry in entries {
        if let Some((entry_id, fields)) = entry_parts(entry) {
            let packed = super::envelope::packed_value(fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
            if packed.is_some() {
                let borrowed: Vec<(&[u8], &[u8])> = fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
                push_entry(Arc::from(entry_id), &borrowed, partition, priority, out);
            } else {
                out.push(Claimed {
                    entry_id: Arc::from(entry_id),
                    job: decode(fields),
                    partition,
                    priority,
                    pack: None,
                });
            }
        }
    }
}

/// `[id, [field, value, ...]]` → the id and the field/value pairs, moved out of the reply.
pub(super) fn entry_parts(entry: Value) -> Option<(String, Fields)> {
    let Value::Array(mut pair) = entry else { return None };
    if pair.len() != 2 {
        return None;
    }
    let fields = match pair.pop() {
        Some(Value::Array(f)) => f,
        _ => Vec::new(),
    };
    let entry_id = match pair.pop() {
        Some(Value::BulkString(id)) => String::from_utf8(id).ok()?,
        Some(Value::SimpleString(id)) => id,
        _ => return None,
    };
    let mut pairs = Vec::with_capacity(fields.len() / 2);
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let (Value::BulkString(k), Value::BulkString(v)) = (k, v) {
            pairs.push((k, v));
        }
    }
    Some((entry_id, pairs))
}

/// The job in an entry's fields, or the poison entry they are.
pub(super) fn decode(mut fields: Fields) -> Result<Envelope, Poison> {
    Envelope::from_fields(&mut fields).map_err(|error| Poison { error, fields })
}
