//! The Redis ceiling: what a plain client does with the same Redis commands and no runtime at
//! all, measured in the same run as conveyor so a figure reads as a fraction of what this
//! machine allows. Three loops, each one pipelined round trip after another:
//! - `xadd`: pipelined `XADD` batches (the enqueue side alone);
//! - `cycle`: enqueue a batch, claim it with `XREADGROUP COUNT`, then `XACK` it, one step after
//!   another on one connection, and every 20 ms cut the acknowledged head off the stream with
//!   `XTRIM MINID` (conveyor's whole command mix per job, its scheduler's trim included; no
//!   runtime);
//! - `concurrent`: the same mix with a producer loop and a consumer loop running at the same
//!   time on two connections, the shape conveyor itself has: the fair yardstick for its
//!   end-to-end throughput.

use crate::bench::jobs::JobKind;
use crate::bench::load::BenchStamp;
use crate::runtime::connection::Redis;
use crate::runtime::error::Result;
use crate::runtime::queue::{Envelope, GROUP, QueueKeys};
use crate::runtime::worker::TRIM_EVERY;
use redis::Value;
use serde::Serialize;
use std::time::Instant;

/// What plain Redis clients reached on this machine, in the same run as conveyor: the figures a
/// conveyor throughput is read against.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ceiling {
    /// Entries per second added by pipelined XADD alone.
    pub xadd_per_second: f64,
    /// Jobs per second through XADD → XREADGROUP → XACK (+ XTRIM) in sequence, no runtime.
    pub cycle_per_second: f64,
    /// Jobs per second with a producer loop and a consumer loop running concurrently.
    pub concurrent_per_second: f64,
    /// Entries each loop moved.
    pub entries: u64,
    /// Entries per pipelined call.
    pub batch: usize,
}

/// Runs the three loops on a scratch stream under `{prefix:ceiling}` and removes it after.
pub async fn measure(redis: &Redis, prefix: &str, entries: u64, batch: usize, payload_bytes: usize) -> Result<Ceiling> {
    let keys = QueueKeys::new(prefix, "ceiling");
    let stream = keys.ready();
    // The very fields a benchmark job carries, so Redis stores and sends the same bytes.
    let job = Envelope {
        enqueued_us: Some(crate::runtime::clock::now_us()),
        seq: Some(0),
        headers: Some(BenchStamp { run: 1, warmup: false }.encode().into()),
        ..Envelope::new(JobKind::Noop.name(), JobKind::Noop.payload(payload_bytes))
    };
    let mut conn = redis.blocking_connection().await?;
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut conn).await?;

    let xadd_batch = |n: u64| {
        let mut pipe = redis::pipe();
        for _ in 0..n {
            pipe.cmd("XADD").arg(&stream).arg("*");
            job.write_to_pipe(&mut pipe);
            pipe.ignore();
        }
        pipe
    };

    let start = Instant::now();
    let mut sent = 0;
    while sent < entries {
        let n = (entries - sent).min(batch as u64);
        xadd_batch(n).query_async::<()>(&mut conn).await?;
        sent += n;
    }
    let xadd_per_second = entries as f64 / start.elapsed().as_secs_f64();

    fresh_group(&stream).query_async::<()>(&mut conn).await?;
    let mut acker = Acker::new(&stream);
    let start = Instant::now();
    let mut done = 0;
    while done < entries {
        let n = (entries - done).min(batch as u64);
        xadd_batch(n).query_async::<()>(&mut conn).await?;
        let ids = entry_ids(read_group(&stream, "ceiling", n as usize, None).query_async(&mut conn).await?);
        acker.ack(&ids).query_async::<()>(&mut conn).await?;
        done += ids.len().max(1) as u64;
    }
    let cycle_per_second = entries as f64 / start.elapsed().as_secs_f64();

    fresh_group(&stream).query_async::<()>(&mut conn).await?;
    let mut consumer_conn = redis.blocking_connection().await?;
    let start = Instant::now();
    let producing = async {
        let mut sent = 0;
        while sent < entries {
            let n = (entries - sent).min(batch as u64);
            xadd_batch(n).query_async::<()>(&mut conn).await?;
            sent += n;
        }
        Ok::<_, redis::RedisError>(())
    };
    let consuming = async {
        let mut acker = Acker::new(&stream);
        let mut done = 0;
        while done < entries {
            let reply = read_group(&stream, "ceiling", batch, Some(100)).query_async(&mut consumer_conn).await?;
            let ids = entry_ids(reply);
            if ids.is_empty() {
                continue;
            }
            acker.ack(&ids).query_async::<()>(&mut consumer_conn).await?;
            done += ids.len() as u64;
        }
        Ok::<_, redis::RedisError>(())
    };
    let (produced, consumed) = futures::join!(producing, consuming);
    produced?;
    consumed?;
    let concurrent_per_second = entries as f64 / start.elapsed().as_secs_f64();
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut conn).await?;
    Ok(Ceiling { xadd_per_second, cycle_per_second, concurrent_per_second, entries, batch })
}

/// Deletes the stream and creates it again with an empty consumer group, in one round trip.
pub(super) fn fresh_group(stream: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("DEL").arg(stream).ignore();
    pipe.cmd("XGROUP").arg("CREATE").arg(stream).arg(GROUP).arg("0").arg("MKSTREAM").ignore();
    pipe
}

/// Claims up to `count` new entries as consumer `consumer`, waiting up to `block_ms` when given.
pub(super) fn read_group(stream: &str, consumer: &str, count: usize, block_ms: Option<u64>) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP").arg(GROUP).arg(consumer).arg("COUNT").arg(count);
    if let Some(ms) = block_ms {
        cmd.arg("BLOCK").arg(ms);
    }
    cmd.arg("STREAMS").arg(stream).arg(">");
    cmd
}

/// Acknowledges entries as conveyor's settle does, and trims the acknowledged head of the
/// stream as often as conveyor's scheduler does. One consumer acknowledging in order holds
/// nothing older than what it acknowledges, so its last id is where the stream may start.
pub(super) struct Acker<'a> {
    stream: &'a str,
    trimmed: Instant,
}

impl<'a> Acker<'a> {
    pub(super) fn new(stream: &'a str) -> Self {
        Self { stream, trimmed: Instant::now() }
    }

    /// The acknowledgement (and trim, when due) of `ids` in one transaction.
    fn ack(&mut self, ids: &[Vec<u8>]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.ack_into(&mut pipe, ids);
        pipe
    }

    /// Adds the acknowledgement (and trim, when due) of `ids` to `pipe`, replies ignored.
    pub(super) fn ack_into(&mut self, pipe: &mut redis::Pipeline, ids: &[impl redis::ToRedisArgs]) {
        if ids.is_empty() {
            return;
        }
        pipe.cmd("XACK").arg(self.stream).arg(GROUP).arg(ids).ignore();
        if let Some(last) = ids.last()
            && self.trimmed.elapsed() >= TRIM_EVERY
        {
            pipe.cmd("XTRIM").arg(self.stream).arg("MINID").arg(last).ignore();
            self.trimmed = Instant::now();
        }
    }
}

fn entry_ids(reply: Value) -> Vec<Vec<u8>> {
    stream_entries(reply).into_iter().map(|(id, _)| id).collect()
}

/// Each entry of an `XREADGROUP` reply as its id and its field-value list (moved out of the
/// reply, not copied); anything not shaped like an entry is skipped.
pub(super) fn stream_entries(reply: Value) -> Vec<(Vec<u8>, Vec<Value>)> {
    let mut out = Vec::new();
    let Value::Array(streams) = reply else { return out };
    for s in streams {
        let Value::Array(mut parts) = s else { continue };
        let Some(Value::Array(entries)) = parts.pop() else { continue };
        for e in entries {
            let Value::Array(pair) = e else { continue };
            let mut pair = pair.into_iter();
            if let (Some(Value::BulkString(id)), fields) = (pair.next(), pair.next()) {
                let fields = match fields {
                    Some(Value::Array(f)) => f,
                    _ => Vec::new(),
                };
                out.push((id, fields));
            }
        }
    }
    out
}
