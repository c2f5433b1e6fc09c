//! Claiming from every priority's stream at once, and under a rate limit: still one round trip
//! per claim. A queue whose jobs are all normal and that has no limit is claimed exactly as
//! before (one `XREADGROUP` of its one stream, see `claim.rs`); otherwise a claim is the `claim`
//! script, which reads each level's share and then fills the rest highest first, and takes the
//! rate limit's tokens for what it hands out. When every stream is empty (and no limit holds
//! claims to a count), the claim blocks on all three streams in one `XREADGROUP`.

use super::claim::{entries_into, parse_named_reply};
use super::keys::QueueKeys;
use super::limit::Limit;
use super::priority::{Priority, Service};
use super::{Claimed, GROUP, Queue, scripts};
use crate::runtime::connection::Conn;
use crate::runtime::error::Result;
use redis::Value;
use std::time::Duration;

/// How long a claim under a rate limit waits before it looks again when every stream was empty
/// (a blocking read would hand out jobs without tokens).
pub const LIMITED_POLL: Duration = Duration::from_millis(20);

/// What a worker knows of its queue when it claims.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClaimPlan {
    /// How it shares a claim among priorities.
    pub service: Service,
    /// The queue's rate limit, as last read.
    pub limit: Option<Limit>,
    /// High or low jobs were ever enqueued: read every priority's stream.
    pub lanes: bool,
}

/// What the claim script answered for one partition.
struct Taken {
    jobs: Vec<Claimed>,
    /// The limit held jobs back: how long until a token is free.
    held_back: Option<Duration>,
}

impl Queue {
    /// Claims up to `count` jobs for `consumer` as `plan` says, waiting up to `block` for the
    /// first one (or, held back by the rate limit, until a token is free, at most `block`).
    /// Without priorities in use and without a limit it is [`Queue::claim`].
    pub async fn claim_planned(
        &self,
        conn: &mut Conn,
        consumer: &str,
        count: usize,
        block: Duration,
        plan: &ClaimPlan,
    ) -> Result<Vec<Claimed>> {
        if !plan.lanes && plan.limit.is_none() && !self.lanes_known() {
            return self.claim(conn, consumer, count, block).await;
        }
        let n = self.partition_count();
        let start = self.claim_from.next(n);
        let mut held_back: Option<Duration> = None;
        let mut last_error = None;
        let mut answered = false;
        for p in (0..n).map(|i| (start + i) % n).filter(|&p| n == 1 || self.health.usable(p)) {
            match self.claim_script(p as u16, conn, consumer, count, plan).await {
                Ok(taken) => {
                    self.health.answered(p);
                    answered = true;
                    if !taken.jobs.is_empty() {
                        return Ok(taken.jobs);
                    }
                    if let Some(wait) = taken.held_back {
                        held_back = Some(held_back.map_or(wait, |w| w.min(wait)));
                    }
                }
                Err(e) => {
                    self.health.failed(p);
                    last_error = Some(e);
                }
            }
        }
        if !answered {
            return match last_error {
                Some(e) => Err(e),
                None => Ok(Vec::new()),
            };
        }
        if let Some(wait) = held_back {
            crate::runtime::telemetry::rate_limited(self.name());
            tokio::time::sleep(wait.min(block)).await;
            return Ok(Vec::new());
        }
        if plan.limit.is_some() {
            tokio::time::sleep(LIMITED_POLL.min(block)).await;
            return Ok(Vec::new());
        }
        self.block_on_lanes(start as u16, conn, consumer, count, block).await
    }

    /// One run of the claim script on partition `p`.
    async fn claim_script(
        &self,
        p: u16,
        conn: &mut Conn,
        consumer: &str,
        count: usize,
        plan: &ClaimPlan,
    ) -> Result<Taken> {
        let keys = self.partition(p)?;
        let shares = plan.service.shares(count, &mut rand::rng());
        let (interval, burst) = plan.limit.map_or((0, 0), |l| l.bucket_of(self.partition_count()));
        let [high, normal, low] = keys.ready_all();
        let mut call = scripts::CLAIM.prepare_invoke();
        call.key(high).key(normal).key(low).key(keys.bucket());
        call.arg(GROUP).arg(consumer).arg(count).arg(shares[0]).arg(shares[1]).arg(shares[2]);
        call.arg(interval).arg(burst);
        let reply: Value = call.invoke_async(conn).await?;
        Ok(parse_claim_reply(reply, p))
    }

    /// Every stream of partition `p` was empty: wait up to `block` for a job on any of them.
    async fn block_on_lanes(
        &self,
        p: u16,
        conn: &mut Conn,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Claimed>> {
        let keys: &QueueKeys = self.partition(p)?;
        let streams = keys.ready_all();
        // One read names one COUNT for every stream: a third each, so a wake-up hands out about
        // `count` (at least one per stream; extra jobs wait in the worker for a free slot).
        let each = count.div_ceil(3).max(1);
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg(GROUP).arg(consumer).arg("COUNT").arg(each);
        read.arg("BLOCK").arg(block.as_micros().div_ceil(1000).max(1) as u64);
        read.arg("STREAMS").arg(&streams).arg(">").arg(">").arg(">");
        let reply: Value = read.query_async(conn).await?;
        Ok(parse_named_reply(reply, p, |name| {
            Priority::ALL.into_iter().find(|l| streams[l.index()].as_bytes() == name).unwrap_or(Priority::Normal)
        }))
    }
}

/// The claim script's reply: `{wait µs, high entries, normal entries, low entries}`.
fn parse_claim_reply(reply: Value, p: u16) -> Taken {
    let Value::Array(mut parts) = reply else { return Taken { jobs: Vec::new(), held_back: None } };
    let mut jobs = Vec::new();
    let levels: Vec<Value> = parts.drain(1.min(parts.len())..).collect();
    for (level, entries) in Priority::ALL.into_iter().zip(levels) {
        entries_into(entries, p, level, &mut jobs);
    }
    let wait = match parts.pop() {
        Some(Value::Int(us)) if us > 0 => Some(Duration::from_micros(us as u64)),
        _ => None,
    };
    Taken { jobs, held_back: wait }
}
