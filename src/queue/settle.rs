//! Settling: what a worker tells Redis when jobs it claimed are done, in one atomic round trip
//! per batch (`MULTI`: the `XACK` of every entry, a `ZADD` per retry, an `XADD` to the dead
//! letters per dead job, and one `BITFIELD` setting the audit bits of the finished jobs that
//! carry one), and renewing the lease of jobs still running.

use super::claim::Claimed;
use super::envelope::{Envelope, field};
use super::partition::group_by_partition;
use super::{GROUP, Queue};
use crate::error::Result;
use redis::Value;
use std::time::Duration;

/// How a worker finished a claimed job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler succeeded.
    Completed,
    /// The attempt failed: retry after the queue's backoff while attempts remain, else dead.
    Failed(String),
    /// The attempt failed: retry after this delay while attempts remain, else dead.
    RetryAfter(Duration, String),
    /// Dead now, whatever attempts remain (a handler's `fail`, no handler, a bad payload).
    Dead(String),
}

/// What one [`Queue::settle`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Jobs acknowledged as done.
    pub completed: u64,
    /// Jobs scheduled for another attempt.
    pub retried: u64,
    /// Jobs moved to the dead letters.
    pub dead: u64,
    /// Jobs whose audit bit was already set: they had finished before (a duplicate delivery).
    pub duplicates: u64,
}

impl Settled {
    /// Both added up.
    pub fn plus(self, o: Settled) -> Settled {
        Settled {
            completed: self.completed + o.completed,
            retried: self.retried + o.retried,
            dead: self.dead + o.dead,
            duplicates: self.duplicates + o.duplicates,
        }
    }
}

impl Queue {
    /// Settles a batch of claimed jobs in one atomic round trip: completed jobs are
    /// acknowledged (the next [`Queue::trim`] removes their entries); failed jobs are scheduled
    /// for a retry with backoff, or moved to the dead letters after their last attempt (the
    /// job's own `max_attempts`, else the queue's); undecodable entries go to the dead letters
    /// with the reason.
    ///
    /// A batch that spans partitions (a claim reads one, so this is rare) is settled in one
    /// round trip per partition, at the same time; each is atomic on its own.
    pub async fn settle(&self, batch: &[(Claimed, Outcome)]) -> Result<Settled> {
        let refs: Vec<(&Claimed, &Outcome)> = batch.iter().map(|(c, o)| (c, o)).collect();
        self.settle_refs(&refs).await
    }

    /// [`Queue::settle`] of jobs held elsewhere.
    pub async fn settle_refs(&self, batch: &[(&Claimed, &Outcome)]) -> Result<Settled> {
        let groups = group_by_partition(batch, |(c, _)| c.partition);
        let settled = futures::future::try_join_all(groups.iter().map(|(p, jobs)| self.settle_in(*p, jobs))).await?;
        Ok(settled.into_iter().fold(Settled::default(), Settled::plus))
    }

    async fn settle_in(&self, p: u16, batch: &[&(&Claimed, &Outcome)]) -> Result<Settled> {
        if batch.is_empty() {
            return Ok(Settled::default());
        }
        let keys = self.partition(p)?;
        let (ready, delayed, dead) = (keys.ready(), keys.delayed(), keys.dead());
        let now_ms = self.clock.now_ms();
        let mut rng = rand::rng();
        let mut settled = Settled::default();
        let mut audit_bits = redis::cmd("BITFIELD");
        audit_bits.arg(keys.audit_done());
        let mut audited = 0usize;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let ids: Vec<&str> = batch.iter().map(|(c, _)| c.entry_id.as_str()).collect();
        pipe.cmd("XACK").arg(&ready).arg(GROUP).arg(&ids).ignore();
        for (claimed, outcome) in batch {
            let job = match &claimed.job {
                Ok(job) => job,
                Err(poison) => {
                    pipe.cmd("XADD").arg(&dead).arg("*");
                    for (k, v) in &poison.fields {
                        pipe.arg(k).arg(v);
                    }
                    pipe.arg(field::REASON).arg(poison.error.to_string()).ignore();
                    settled.dead += 1;
                    continue;
                }
            };
            let max_attempts = job.max_attempts.unwrap_or(self.options.max_attempts).max(1);
            let finished = match outcome {
                Outcome::Completed => {
                    settled.completed += 1;
                    true
                }
                Outcome::Failed(_) | Outcome::RetryAfter(..) if job.attempt + 1 < max_attempts => {
                    let wait = match outcome {
                        Outcome::RetryAfter(d, _) => *d,
                        _ => self.options.backoff.delay(job.attempt, &mut rng),
                    };
                    let next = Envelope { attempt: job.attempt + 1, id: Some(claimed.job_id().into()), ..job.clone() };
                    pipe.cmd("ZADD").arg(&delayed).arg(now_ms + wait.as_millis() as u64).arg(next.pack()).ignore();
                    settled.retried += 1;
                    false
                }
                Outcome::Failed(reason) | Outcome::RetryAfter(_, reason) => {
                    let why = format!("failed {} times; last error: {reason}", job.attempt + 1);
                    self.dead_letter(&mut pipe, &dead, claimed, job, &why);
                    settled.dead += 1;
                    true
                }
                Outcome::Dead(reason) => {
                    self.dead_letter(&mut pipe, &dead, claimed, job, reason);
                    settled.dead += 1;
                    true
                }
            };
            if let (true, Some(seq), true) = (finished, job.seq, self.options.audit) {
                audit_bits.arg("SET").arg("u1").arg(seq).arg(1);
                audited += 1;
            }
        }
        if audited > 0 {
            pipe.add_command(audit_bits);
        }
        let reply: Value = self.redis.with_conn(async |c| pipe.query_async(c).await).await?;
        if audited > 0 {
            settled.duplicates = count_set_bits(reply);
        }
        Ok(settled)
    }

    /// Adds the `XADD` of `job`'s dead letter (its id kept) to `pipe`.
    fn dead_letter(&self, pipe: &mut redis::Pipeline, dead: &str, claimed: &Claimed, job: &Envelope, reason: &str) {
        let stored = Envelope { id: Some(claimed.job_id().into()), ..job.clone() };
        pipe.cmd("XADD").arg(dead).arg("*");
        stored.write_to_pipe(pipe);
        pipe.arg(field::REASON).arg(reason).ignore();
    }

    /// Resets the idle time of jobs `consumer` still runs, so they are not reclaimed.
    pub async fn renew(&self, consumer: &str, held: &[Claimed]) -> Result<()> {
        for (p, claimed) in group_by_partition(held, |c| c.partition) {
            let ids: Vec<&str> = claimed.iter().map(|c| c.entry_id.as_str()).collect();
            self.renew_in(p, consumer, &ids).await?;
        }
        Ok(())
    }

    /// Resets the idle time of the entries `consumer` holds, given as `(partition, entry id)`.
    pub async fn renew_entries(&self, consumer: &str, held: &[(u16, &str)]) -> Result<()> {
        for (p, entries) in group_by_partition(held, |(p, _)| *p) {
            let ids: Vec<&str> = entries.iter().map(|(_, id)| *id).collect();
            self.renew_in(p, consumer, &ids).await?;
        }
        Ok(())
    }

    async fn renew_in(&self, p: u16, consumer: &str, entry_ids: &[&str]) -> Result<()> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let ready = self.partition(p)?.ready();
        self.redis
            .with_conn(async |c| {
                redis::cmd("XCLAIM")
                    .arg(&ready)
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(0)
                    .arg(entry_ids)
                    .arg("JUSTID")
                    .query_async::<()>(c)
                    .await
            })
            .await
    }
}

/// The EXEC reply's last element is BITFIELD's list of previous bit values.
fn count_set_bits(reply: Value) -> u64 {
    let last = match reply {
        Value::Array(mut items) => items.pop(),
        other => Some(other),
    };
    match last {
        Some(Value::Array(bits)) => bits.iter().filter(|b| matches!(b, Value::Int(1))).count() as u64,
        _ => 0,
    }
}
