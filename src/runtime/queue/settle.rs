//! Settling: what a worker tells Redis when jobs it claimed are done, in one atomic round trip
//! per batch (`MULTI`: the `XACK` of every entry, a `ZADD` per retry, an `XADD` to the dead
//! letters per dead job, and one `BITFIELD` setting the audit bits of the finished jobs that
//! carry one; for tracked jobs, one script call writing their statuses and one `XADD` of all
//! their events), and
//! renewing the lease of jobs still running.

use super::audit::AuditBits;
use super::claim::Claimed;
use super::envelope::{Envelope, field};
use super::partition::group_by_partition;
use super::priority::Priority;
use super::{GROUP, Queue};
use crate::runtime::error::Result;
use redis::Value;
use std::time::Duration;

/// How a worker finished a claimed job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler succeeded.
    Completed,
    /// The handler succeeded with a result to keep (kept for tracked jobs only).
    Returned(Vec<u8>),
    /// The attempt failed: retry after the queue's backoff while attempts remain, else dead.
    Failed(String),
    /// The attempt failed: retry after this delay while attempts remain, else dead.
    RetryAfter(Duration, String),
    /// Dead now, whatever attempts remain (a handler's `fail`, no handler, a bad payload).
    Dead(String),
    /// Cancelled before or while it ran: acknowledged, not retried, not a dead letter.
    Cancelled,
}

/// What a tracked job's status becomes when it settles.
#[derive(Debug)]
pub(super) enum Tracked<'a> {
    Completed { result: Option<&'a [u8]> },
    Retrying { due: u64, error: &'a str },
    Dead { reason: String },
    Cancelled,
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
    /// Jobs settled as cancelled.
    pub cancelled: u64,
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
            cancelled: self.cancelled + o.cancelled,
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
        let acking: Vec<(&Claimed, &Outcome, bool)> = batch.iter().map(|(c, o)| (*c, *o, true)).collect();
        self.settle_acking(&acking).await
    }

    /// [`Queue::settle_refs`], acknowledging the entry of only the jobs marked `true`: a job of
    /// an entry that packs several is settled on its own (its retry, its dead letter, its audit
    /// bit), and its entry acknowledged with the last of its jobs to finish — until then, a
    /// reclaim hands the whole entry to another worker.
    pub async fn settle_acking(&self, batch: &[(&Claimed, &Outcome, bool)]) -> Result<Settled> {
        let groups = group_by_partition(batch, |(c, _, _)| c.partition);
        let settled = futures::future::try_join_all(groups.iter().map(|(p, jobs)| self.settle_in(*p, jobs))).await?;
        Ok(settled.into_iter().fold(Settled::default(), Settled::plus))
    }

    async fn settle_in(&self, p: u16, batch: &[&(&Claimed, &Outcome, bool)]) -> Result<Settled> {
        if batch.is_empty() {
            return Ok(Settled::default());
        }
        let keys = self.partition(p)?;
        let (ready, retrying, dead) = (keys.ready(), keys.retrying(), keys.dead());
        let now_ms = self.clock.now_ms();
        let mut rng = rand::rng();
        let mut settled = Settled::default();
        // One BITFIELD per audit bitmap the batch touches (the queue's, audited batches'), and
        // which sequence numbers each sets, in order.
        let mut audits: Vec<(Option<&str>, Vec<u32>)> = Vec::new();
        let mut pipe = redis::pipe();
        pipe.atomic();
        // What the batch's tracked jobs become: one script call and one events entry.
        let mut tracked_jobs = super::track::TrackedSettle::default();
        // One XACK per stream the batch's jobs came from (just the normal one for a queue that
        // does not use priorities).
        for level in Priority::ALL {
            let ids: Vec<&str> =
                batch.iter().filter(|(c, _, ack)| *ack && c.priority == level).map(|(c, _, _)| &*c.entry_id).collect();
            if !ids.is_empty() {
                let stream = if level == Priority::Normal { ready.clone() } else { keys.ready_at(level) };
                pipe.cmd("XACK").arg(stream).arg(GROUP).arg(&ids).ignore();
            }
        }
        for (claimed, outcome, _) in batch {
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
            let (finished, tracked) = match outcome {
                Outcome::Completed | Outcome::Returned(_) => {
                    settled.completed += 1;
                    let result = match outcome {
                        Outcome::Returned(r) => Some(r.as_slice()),
                        _ => None,
                    };
                    (true, Tracked::Completed { result })
                }
                Outcome::Failed(reason) | Outcome::RetryAfter(_, reason) if job.attempt + 1 < max_attempts => {
                    let wait = match outcome {
                        Outcome::RetryAfter(d, _) => *d,
                        _ => self.options.backoff.delay(job.attempt, &mut rng),
                    };
                    let due = now_ms + wait.as_millis() as u64;
                    let next = Envelope { attempt: job.attempt + 1, id: Some(claimed.job_id().into()), ..job.clone() };
                    pipe.cmd("ZADD").arg(&retrying).arg(due).arg(next.pack()).ignore();
                    settled.retried += 1;
                    (false, Tracked::Retrying { due, error: reason })
                }
                Outcome::Failed(reason) | Outcome::RetryAfter(_, reason) => {
                    let runs = job.attempt + 1;
                    let why = format!("failed {runs} time{}; last error: {reason}", if runs == 1 { "" } else { "s" });
                    self.dead_letter(&mut pipe, &dead, claimed, job, &why);
                    settled.dead += 1;
                    (true, Tracked::Dead { reason: why })
                }
                Outcome::Dead(reason) => {
                    self.dead_letter(&mut pipe, &dead, claimed, job, reason);
                    settled.dead += 1;
                    (true, Tracked::Dead { reason: reason.clone() })
                }
                Outcome::Cancelled => {
                    settled.cancelled += 1;
                    (true, Tracked::Cancelled)
                }
            };
            if let Some(keep_ms) = job.keep_ms {
                let id = claimed.job_id();
                tracked_jobs.record(keys, &id, job, &tracked, now_ms, keep_ms);
            }
            if let (true, Some(seq), true) = (finished, job.seq, self.options.audit) {
                let batch = job.batch.as_deref();
                match audits.iter_mut().find(|(b, _)| *b == batch) {
                    Some((_, seqs)) => seqs.push(seq),
                    None => audits.push((batch, vec![seq])),
                }
            }
        }
        tracked_jobs.write(&mut pipe, keys, now_ms);
        let audits: Vec<(Option<&str>, AuditBits)> =
            audits.into_iter().map(|(batch, seqs)| (batch, AuditBits::of(seqs))).collect();
        for (batch, bits) in &audits {
            pipe.add_command(bits.command(&keys.audit_of(*batch)));
        }
        // Completions and failed attempts of this second, for the rates operators see.
        let (done, failed) = (settled.completed, settled.retried + settled.dead);
        if done + failed > 0 {
            let now_s = now_ms / 1000;
            let key = keys.rate(now_s / 60);
            let second = now_s % 60;
            if done > 0 {
                pipe.cmd("HINCRBY").arg(&key).arg(format!("c{second}")).arg(done).ignore();
            }
            if failed > 0 {
                pipe.cmd("HINCRBY").arg(&key).arg(format!("f{second}")).arg(failed).ignore();
            }
            pipe.cmd("EXPIRE").arg(&key).arg(180).ignore();
        }
        let reply: Value = self.redis.with_conn(async |c| pipe.query_async(c).await).await?;
        // The BITFIELD replies, in order: each field's value before it was set.
        let replies = match reply {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        let mut twice: Vec<(&str, Vec<u32>)> = Vec::new();
        for ((batch, bits), old) in audits.iter().zip(replies) {
            let Value::Array(old) = old else { continue };
            let again = bits.already_set(&old);
            settled.duplicates += again.len() as u64;
            if let (Some(name), false) = (batch, again.is_empty()) {
                twice.push((name, again));
            }
        }
        if !twice.is_empty() {
            // An audited batch names which of its jobs ran twice: one more round trip, only then.
            let mut mark = redis::pipe();
            for (name, seqs) in twice {
                mark.add_command(AuditBits::of(seqs).command(&keys.audit_twice(name))).ignore();
            }
            self.redis.with_conn(async |c| mark.query_async::<()>(c).await).await?;
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
        let held: Vec<(u16, Priority, &str)> = held.iter().map(|c| (c.partition, c.priority, &*c.entry_id)).collect();
        self.renew_held(consumer, &held).await
    }

    /// Resets the idle time of the entries `consumer` holds, given as `(partition, entry id)`
    /// (of normal jobs).
    pub async fn renew_entries(&self, consumer: &str, held: &[(u16, &str)]) -> Result<()> {
        let held: Vec<(u16, Priority, &str)> = held.iter().map(|(p, id)| (*p, Priority::Normal, *id)).collect();
        self.renew_held(consumer, &held).await
    }

    /// Resets the idle time of the entries `consumer` holds, given as `(partition, priority,
    /// entry id)`: one `XCLAIM` per stream they are in.
    pub async fn renew_held(&self, consumer: &str, held: &[(u16, Priority, &str)]) -> Result<()> {
        for (p, entries) in group_by_partition(held, |(p, _, _)| *p) {
            for level in Priority::ALL {
                let ids: Vec<&str> = entries.iter().filter(|(_, l, _)| *l == level).map(|(_, _, id)| *id).collect();
                self.renew_in(p, level, consumer, &ids).await?;
            }
        }
        Ok(())
    }

    async fn renew_in(&self, p: u16, level: Priority, consumer: &str, entry_ids: &[&str]) -> Result<()> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let ready = self.partition(p)?.ready_at(level);
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
