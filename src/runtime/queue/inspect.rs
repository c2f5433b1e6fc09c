//! What is in a queue: how many jobs wait, run, wait for their time or died, how long the
//! oldest has waited, and the dead letters themselves.

use super::claim::{decode, entry_parts};
use super::envelope::{DecodeError, Envelope, field};
use super::keys::QueueKeys;
use super::priority::Priority;
use super::{GROUP, Queue};
use crate::runtime::error::Result;
use redis::Value;
use std::time::Duration;

/// How many jobs are in each state.
///
/// `waiting` and `in_flight` count stream entries: on a queue that packs several jobs into one
/// entry ([`QueueOptions::pack`](super::QueueOptions::pack)), each counts as one, whatever the
/// number of jobs it carries (Redis keeps no per-job count of a stream, and reading every entry
/// to count would cost what packing saves).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    /// In the stream and not yet handed to a worker (entries; see above).
    pub waiting: u64,
    /// Handed to a worker and not yet settled (entries; see above).
    pub in_flight: u64,
    /// Waiting for their due time (delayed jobs).
    pub delayed: u64,
    /// Failed, waiting for their next attempt.
    pub retrying: u64,
    /// In the dead letters (`waiting` counts jobs of every priority; see
    /// [`Queue::depth_by_priority`]).
    pub dead: u64,
}

/// A count for each priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ByPriority {
    /// High-priority jobs.
    pub high: u64,
    /// Normal jobs.
    pub normal: u64,
    /// Low-priority jobs.
    pub low: u64,
}

impl ByPriority {
    /// The count of `priority`.
    pub fn of(&self, priority: Priority) -> u64 {
        match priority {
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }

    fn plus(self, o: ByPriority) -> ByPriority {
        ByPriority { high: self.high + o.high, normal: self.normal + o.normal, low: self.low + o.low }
    }
}

impl Depth {
    /// Jobs not finished yet: waiting, in flight, delayed or retrying.
    pub fn unfinished(&self) -> u64 {
        self.waiting + self.in_flight + self.delayed + self.retrying
    }
}

/// One entry of the dead letters.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its entry id in the dead-letter stream.
    pub entry_id: String,
    /// The job as it last ran, or why its fields are not a job.
    pub job: Result<Envelope, DecodeError>,
    /// Why it died.
    pub reason: String,
}

impl Queue {
    /// How many jobs are in each state, summed over partitions (one round trip each).
    pub async fn depth(&self) -> Result<Depth> {
        Ok(self.depth_by_priority().await?.0)
    }

    /// [`Queue::depth`], and the waiting jobs by priority (they add up to its `waiting`).
    pub async fn depth_by_priority(&self) -> Result<(Depth, ByPriority)> {
        let each = futures::future::try_join_all(self.partitions.iter().map(|k| self.depth_in(k))).await?;
        Ok(each.into_iter().fold((Depth::default(), ByPriority::default()), |(a, pa), (b, pb)| {
            let depth = Depth {
                waiting: a.waiting + b.waiting,
                in_flight: a.in_flight + b.in_flight,
                delayed: a.delayed + b.delayed,
                retrying: a.retrying + b.retrying,
                dead: a.dead + b.dead,
            };
            (depth, pa.plus(pb))
        }))
    }

    async fn depth_in(&self, keys: &QueueKeys) -> Result<(Depth, ByPriority)> {
        let (streams, delayed, retrying, dead) = (keys.ready_all(), keys.delayed(), keys.retrying(), keys.dead());
        let mut pipe = redis::pipe();
        for ready in &streams {
            pipe.cmd("XLEN").arg(ready).cmd("XINFO").arg("GROUPS").arg(ready);
        }
        pipe.cmd("ZCARD").arg(&delayed).cmd("ZCARD").arg(&retrying).cmd("XLEN").arg(&dead);
        // A stream that does not exist (a priority never used) fails its XINFO: no group, so
        // nothing held and nothing waiting but its length (zero).
        pipe.ignore_errors();
        let replies: Vec<redis::RedisResult<Value>> = self.redis.with_conn(async |c| pipe.query_async(c).await).await?;
        let mut replies = replies.into_iter();
        let mut next = || replies.next().and_then(|r| r.ok()).unwrap_or(Value::Nil);
        let count = |v: Value| redis::from_redis_value::<u64>(v).unwrap_or(0);
        let (high, high_groups, len, groups) = (count(next()), next(), count(next()), next());
        let (low, low_groups) = (count(next()), next());
        let (delayed_n, retrying_n, dead_n) = (count(next()), count(next()), count(next()));
        // XINFO GROUPS errors only when the stream is missing: then nothing is waiting.
        // Settled entries stay in the stream until the next trim, so the stream's length
        // overstates what waits; the group's lag (Redis 7: entries added but not yet read) is
        // exact. Redis 6.2 has no lag: the length less what is pending is the bound left.
        let level = |len: u64, groups: &Value| {
            let group = GroupInfo::of(groups).unwrap_or_default();
            // The lag counts entries deleted after the group's last delivery (a purge) until
            // the next trim; what the stream holds bounds it.
            let left = len.saturating_sub(group.pending);
            (group.lag.map_or(left, |lag| lag.min(left)), group.pending)
        };
        let ((hi, hi_held), (normal, held), (lo, lo_held)) =
            (level(high, &high_groups), level(len, &groups), level(low, &low_groups));
        let depth = Depth {
            waiting: hi + normal + lo,
            in_flight: hi_held + held + lo_held,
            delayed: delayed_n,
            retrying: retrying_n,
            dead: dead_n,
        };
        Ok((depth, ByPriority { high: hi, normal, low: lo }))
    }

    /// How long the oldest job not yet handed to a worker has waited (zero when none waits):
    /// the first entry after the group's last-delivered id, whose id is the time Redis added
    /// it (ms), against Redis's own clock (`TIME`), so client clock skew does not matter.
    /// With several partitions: the oldest over all of them.
    pub async fn oldest_waiting_age(&self) -> Result<Duration> {
        let each = futures::future::try_join_all(self.partitions.iter().map(|k| self.oldest_waiting_age_in(k))).await?;
        Ok(each.into_iter().max().unwrap_or_default())
    }

    async fn oldest_waiting_age_in(&self, keys: &QueueKeys) -> Result<Duration> {
        let mut oldest = self.oldest_waiting_age_of(&keys.ready()).await?;
        for level in [Priority::High, Priority::Low] {
            oldest = oldest.max(self.oldest_waiting_age_of(&keys.ready_at(level)).await?);
        }
        Ok(oldest)
    }

    async fn oldest_waiting_age_of(&self, ready: &str) -> Result<Duration> {
        let (groups, (secs, micros)): (Value, (u64, u64)) = self
            .redis
            .with_conn(async |c| {
                let groups = match redis::cmd("XINFO").arg("GROUPS").arg(ready).query_async(c).await {
                    Ok(v) => v,
                    // No such stream (a priority never used): nothing waits there.
                    Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => Value::Nil,
                    Err(e) => return Err(e),
                };
                Ok((groups, redis::cmd("TIME").query_async(c).await?))
            })
            .await?;
        let last_delivered = GroupInfo::of(&groups).and_then(|g| g.last_delivered);
        let start = format!("({}", last_delivered.unwrap_or_else(|| "0-0".into()));
        let first: Value = self
            .redis
            .with_conn(async |c| {
                redis::cmd("XRANGE").arg(ready).arg(&start).arg("+").arg("COUNT").arg(1).query_async(c).await
            })
            .await?;
        let added_ms = match &first {
            Value::Array(entries) => match entries.first() {
                Some(Value::Array(entry)) => entry.first().and_then(text),
                _ => None,
            },
            _ => None,
        }
        .and_then(|id| id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()));
        let now_ms = secs * 1000 + micros / 1000;
        Ok(added_ms.map_or(Duration::ZERO, |ms| Duration::from_millis(now_ms.saturating_sub(ms))))
    }

    /// Dead letters, oldest first within each partition (partition 0 first), at most `limit`.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        for keys in self.partitions.iter() {
            if out.len() >= limit {
                break;
            }
            out.extend(self.dead_letters_in(keys, limit - out.len()).await?);
        }
        Ok(out)
    }

    async fn dead_letters_in(&self, keys: &QueueKeys, limit: usize) -> Result<Vec<DeadLetter>> {
        let dead = keys.dead();
        let reply: Value = self
            .redis
            .with_conn(async |c| {
                redis::cmd("XRANGE").arg(&dead).arg("-").arg("+").arg("COUNT").arg(limit).query_async(c).await
            })
            .await?;
        let Value::Array(entries) = reply else { return Ok(Vec::new()) };
        Ok(entries
            .into_iter()
            .filter_map(entry_parts)
            .map(|(entry_id, mut fields)| {
                let reason = fields
                    .iter()
                    .position(|(k, _)| k == field::REASON.as_bytes())
                    .map(|i| String::from_utf8_lossy(&fields.remove(i).1).into_owned())
                    .unwrap_or_default();
                DeadLetter { entry_id, job: decode(fields).map_err(|p| p.error), reason }
            })
            .collect())
    }
}

/// What `XINFO GROUPS` says of conveyor's consumer group on one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GroupInfo {
    /// Entries handed to a worker and not yet acknowledged.
    pending: u64,
    /// The id of the last entry handed to a worker.
    pub(super) last_delivered: Option<String>,
    /// Entries added and not yet handed to a worker; Redis 7 and later, and only while Redis
    /// can count it (no entry deleted past the group's position).
    lag: Option<u64>,
}

impl GroupInfo {
    /// Conveyor's group in an `XINFO GROUPS` reply: each group is a flat `[name, value, ...]`
    /// list (RESP2) or a map (RESP3). `None` when the group is not there.
    pub(super) fn of(groups: &Value) -> Option<Self> {
        let Value::Array(groups) = groups else { return None };
        groups.iter().find_map(|g| {
            let fields: Vec<(Option<String>, &Value)> = match g {
                Value::Array(kv) => kv.chunks_exact(2).map(|p| (text(&p[0]), &p[1])).collect(),
                Value::Map(kv) => kv.iter().map(|(k, v)| (text(k), v)).collect(),
                _ => return None,
            };
            let get = |name: &str| fields.iter().find(|(k, _)| k.as_deref() == Some(name)).map(|(_, v)| *v);
            if get("name").and_then(text).as_deref() != Some(GROUP) {
                return None;
            }
            let int = |v: &Value| match v {
                Value::Int(n) => u64::try_from(*n).ok(),
                _ => None,
            };
            Some(Self {
                pending: get("pending").and_then(int).unwrap_or(0),
                last_delivered: get("last-delivered-id").and_then(text),
                lag: get("lag").and_then(int),
            })
        })
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
