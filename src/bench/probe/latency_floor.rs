//! The latency of conveyor's command mix with no runtime at a planned rate (the floor a queue
//! adds its own cost to): what a plain Redis client gets on this machine and this Redis,
//! measured next to conveyor's own open-loop latency so a tail can be read against it (as
//! throughput is read against [`super::ceiling`]).
//!
//! A sender and as many takers as conveyor has workers, each on a connection of its own (the
//! shape conveyor has), each doing the least a streams queue can do:
//! - the sender sends open loop as conveyor's benchmark producer does: every job due by now
//!   (up to a batch) in one pipelined round of `XADD`s, one round in flight, the same fields a
//!   benchmark job carries, each stamped with the time it was *due*; a round of up to
//!   [`WAKE_ONCE_UP_TO`] in one `MULTI`/`EXEC`, so that Redis serves a waiting taker the whole
//!   round in one reply rather than an entry to each taker per `XADD`; between rounds it sleeps
//!   precisely until the next job is due;
//! - a taker acknowledges what it took (trimming the acknowledged head as often as conveyor's
//!   scheduler does) and claims again with a blocking `XREADGROUP`, in one round trip, and
//!   records for each entry the time from when it was due to when the claim reached it. With
//!   one taker, a read waits for the one before it, and after a stall the backlog drains one
//!   claim per round trip; several drain it together, as conveyor's workers do.
//!
//! Its tail is the host's (a virtual CPU taken away for milliseconds stops the sender, a taker
//! or Redis) and Redis's own; a queue whose tail is near it adds little of its own. It is a
//! reference measured in its own window, not a bound: the two windows follow each other, so
//! they compare only when the host took alike from both (the bench prints the steal of each),
//! and a window can come out worse than conveyor's (in a CI run beside a busy loop, p99 24.8 ms
//! against conveyor's 5.3 ms at 63,367 jobs/s, with no steal in either).

use super::ceiling::{Acker, fresh_group, read_group, stream_entries};
use crate::bench::jobs::JobKind;
use crate::bench::load::BenchStamp;
use crate::bench::stats::Latency;
use crate::runtime::clock;
use crate::runtime::connection::Redis;
use crate::runtime::error::Result;
use crate::runtime::queue::{Envelope, QueueKeys, WAKE_ONCE_UP_TO};
use crate::runtime::timer::LoopTimer;
use redis::Value;
use std::time::Duration;

/// Most entries claimed per read: a conveyor worker's claim batch in `conveyor bench`.
const CLAIM: usize = 200;
/// How long one blocking read waits before it is sent again.
const BLOCK_MS: u64 = 100;

/// The plan of one measurement.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Jobs per second the sender plans.
    pub rate: f64,
    /// Sent before the measured window and not recorded (connections and Redis warm up).
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    /// Most entries per pipelined round of `XADD`s.
    pub batch: usize,
    /// Payload bytes of every entry.
    pub payload_bytes: usize,
    /// Takers claiming at the same time (at least 1).
    pub takers: usize,
}

/// Sends `plan` through a scratch stream under `{prefix:latency-floor}`, removed after, and
/// returns the delay from each measured entry's due time to its claim.
pub async fn measure(redis: &Redis, prefix: &str, plan: Plan) -> Result<Latency> {
    let keys = QueueKeys::new(prefix, "latency-floor");
    let stream = keys.ready();
    let mut send_conn = redis.blocking_connection().await?;
    let mut take_conns = Vec::new();
    for _ in 0..plan.takers.max(1) {
        take_conns.push(redis.blocking_connection().await?);
    }
    fresh_group(&stream).query_async::<()>(&mut send_conn).await?;

    let gap_us = 1e6 / plan.rate.max(1e-3);
    let total = ((plan.warmup + plan.window).as_secs_f64() * plan.rate).ceil() as u64;
    let start_us = clock::now_us() + 1_000;
    let due_at = move |j: u64| start_us + (j as f64 * gap_us) as u64;
    let measured_from_us = start_us + plan.warmup.as_micros() as u64;

    let sending = async {
        let mut job = Envelope {
            seq: Some(0),
            headers: Some(BenchStamp { run: 1, warmup: false }.encode().into()),
            ..Envelope::new(JobKind::Noop.name(), JobKind::Noop.payload(plan.payload_bytes))
        };
        let mut timer = LoopTimer::new();
        let mut k = 0u64;
        while k < total {
            let now = clock::now_us();
            if due_at(k) > now {
                let lead = Duration::from_micros((gap_us / 10.0) as u64);
                timer.sleep_precisely(Duration::from_micros(due_at(k) - now), lead).await;
                continue;
            }
            // Every job due by now, as conveyor's producer sends them.
            let due = (((now - start_us) as f64 / gap_us) as u64 + 1).min(total);
            let n = (due - k).min(plan.batch as u64);
            let mut pipe = redis::pipe();
            if (2..=WAKE_ONCE_UP_TO as u64).contains(&n) {
                pipe.atomic();
            }
            for j in k..k + n {
                job.enqueued_us = Some(due_at(j));
                pipe.cmd("XADD").arg(&stream).arg("*");
                job.write_to_pipe(&mut pipe);
                pipe.ignore();
            }
            pipe.query_async::<()>(&mut send_conn).await?;
            k += n;
        }
        Ok::<_, redis::RedisError>(())
    };
    // Entries taken by all takers together; each stops once all are.
    let taken = std::cell::Cell::new(0u64);
    let takers = take_conns.iter_mut().enumerate().map(|(i, conn)| {
        let (stream, taken) = (&stream, &taken);
        async move {
            let consumer = format!("taker-{i}");
            let mut acker = Acker::new(stream);
            let mut late = Latency::default();
            let mut ids = Vec::new();
            while taken.get() < total {
                let mut pipe = redis::pipe();
                acker.ack_into(&mut pipe, &ids);
                pipe.add_command(read_group(stream, &consumer, CLAIM, Some(BLOCK_MS)));
                let (reply,): (Value,) = pipe.query_async(conn).await?;
                let now = clock::now_us();
                ids.clear();
                for (id, due) in entries(reply) {
                    if due >= measured_from_us {
                        late.record_us(now.saturating_sub(due));
                    }
                    ids.push(id);
                }
                taken.set(taken.get() + ids.len() as u64);
            }
            Ok::<_, redis::RedisError>(late)
        }
    });
    let taking = async {
        let mut all = Latency::default();
        for late in futures::future::try_join_all(takers).await? {
            all.add(&late);
        }
        Ok(all)
    };
    // A failed loop ends the other (the taker would otherwise wait for entries never sent).
    let ((), late) = futures::try_join!(sending, taking)?;
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut send_conn).await?;
    Ok(late)
}

/// Each entry of an `XREADGROUP` reply: its id and the due time its job carries (0 when the
/// entry is not a job or carries none).
fn entries(reply: Value) -> Vec<(Vec<u8>, u64)> {
    stream_entries(reply)
        .into_iter()
        .map(|(id, fields)| {
            let pairs: Vec<(&[u8], &[u8])> = fields
                .chunks_exact(2)
                .filter_map(|kv| match kv {
                    [Value::BulkString(k), Value::BulkString(v)] => Some((k.as_slice(), v.as_slice())),
                    _ => None,
                })
                .collect();
            let due = Envelope::from_slices(&pairs).ok().and_then(|job| job.enqueued_us).unwrap_or(0);
            (id, due)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_the_id_and_the_due_time_of_each_entry() {
        let bulk = |b: &[u8]| Value::BulkString(b.to_vec());
        let entry = |id: &str, job: &Envelope| {
            let fields = job.fields().into_iter().flat_map(|(k, v)| [bulk(k.as_bytes()), bulk(v.as_bytes())]);
            Value::Array(vec![bulk(id.as_bytes()), Value::Array(fields.collect())])
        };
        let due = Envelope { enqueued_us: Some(1_500), seq: Some(7), ..Envelope::new("noop", vec![0; 100]) };
        let undated = Envelope::new("noop", vec![0; 100]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"stream"),
            Value::Array(vec![entry("1-0", &due), entry("1-1", &undated)]),
        ])]);
        assert_eq!(entries(reply), vec![(b"1-0".to_vec(), 1_500), (b"1-1".to_vec(), 0)]);
        assert!(entries(Value::Nil).is_empty());
    }
}
