//! The cron scheduler: an actor that sleeps until the next firing of any of its entries,
//! enqueues that firing (once, whatever other schedulers do: see the module above), and sleeps
//! again. Its only state is, per entry, the last firing it enqueued or gave up; Redis holds the
//! rest, so a scheduler can stop and start, and any number can run.

use super::{Missed, Periodic};
use crate::runtime::client::Client;
use crate::runtime::error::Result;
use crate::runtime::queue::{CronEntry, Enqueued};
use actix::prelude::*;
use std::time::Duration;

/// The longest a scheduler sleeps between looks at the clock (a wall clock set forward is
/// noticed within this).
const LONGEST_SLEEP: Duration = Duration::from_secs(30);
/// How long after a failed firing (Redis unreachable) the scheduler tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Builds a cron scheduler for one queue: add entries ([`Cron::entry`]), then [`Cron::start`].
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Report { team: String }
/// # impl conveyor::JobType for Report { const NAME: &'static str = "report.weekly"; }
/// # async fn example(client: conveyor::Client) -> conveyor::Result<()> {
/// use conveyor::cron::{Cron, Missed, Periodic};
///
/// let cron = Cron::new(client)
///     .entry(Periodic::new("weekly-report", "0 0 9 * * Mon", &Report { team: "ops".into() })?.missed(Missed::Latest))
///     .start()
///     .await?;
/// // ... until the process stops:
/// cron.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Cron {
    client: Client,
    entries: Vec<Periodic>,
}

impl Cron {
    /// A scheduler enqueueing through `client`, with no entries yet.
    pub fn new(client: Client) -> Self {
        Self { client, entries: Vec::new() }
    }

    /// Also runs `entry` (a second entry of the same name replaces the first).
    pub fn entry(mut self, entry: Periodic) -> Self {
        self.entries.retain(|e| e.name() != entry.name());
        self.entries.push(entry);
        self
    }

    /// Records the entries in Redis, reads where each left off, enqueues the firings due (and
    /// those a downtime missed, per each entry's policy), and starts the actor.
    pub async fn start(self) -> Result<CronHandle> {
        let queue = self.client.queue().clone();
        let now = crate::runtime::clock::now_us() / 1000;
        let mut entries = Vec::with_capacity(self.entries.len());
        for p in self.entries {
            queue
                .register_cron(&CronEntry {
                    name: p.name().to_owned(),
                    schedule: p.expression().to_owned(),
                    job_type: p.job_type().to_owned(),
                    missed: policy_name(p.missed_policy()),
                    registered_ms: now,
                    last_fired_ms: None,
                })
                .await?;
            // Never fired anywhere: nothing before now was missed.
            let cursor = queue.cron_last_fired(p.name()).await?.unwrap_or(now);
            entries.push(Entry { periodic: p, cursor });
        }
        // The first look happens here, so what a downtime missed is enqueued (per each entry's
        // policy) by the time `start` returns.
        for e in &mut entries {
            fire_entry(&self.client, e).await?;
        }
        let addr = CronScheduler { client: self.client, entries, firing: false, halted: Vec::new() }.start();
        Ok(CronHandle { addr })
    }
}

/// A running cron scheduler; [`CronHandle::shutdown`] stops it after the firing in progress.
#[derive(Debug, Clone)]
pub struct CronHandle {
    addr: Addr<CronScheduler>,
}

impl CronHandle {
    /// Stops the scheduler (a firing being enqueued completes first).
    pub async fn shutdown(self) {
        let _ = self.addr.send(Halt).await;
    }
}

fn policy_name(m: Missed) -> String {
    match m {
        Missed::Skip => "skip".into(),
        Missed::Latest => "latest".into(),
        Missed::CatchUp(n) => format!("catch-up:{n}"),
    }
}

#[derive(Debug)]
struct Entry {
    periodic: Periodic,
    /// The last firing this scheduler enqueued or gave up (ms since the epoch).
    cursor: u64,
}

/// The actor (see the module docs).
struct CronScheduler {
    client: Client,
    entries: Vec<Entry>,
    /// A firing round is in progress; the next starts when it ends.
    firing: bool,
    /// Shutdowns waiting for the firing round in progress to end.
    halted: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl CronScheduler {
    /// How long until the earliest next firing of any entry.
    fn until_next(&self) -> Duration {
        let now = crate::runtime::clock::now_us() / 1000;
        let next = self.entries.iter().filter_map(|e| e.periodic.next_after(e.cursor)).min();
        match next {
            Some(at) => Duration::from_millis(at.saturating_sub(now)).min(LONGEST_SLEEP),
            None => LONGEST_SLEEP,
        }
    }

    fn sleep(&mut self, ctx: &mut Context<Self>, d: Duration) {
        ctx.run_later(d, |act, ctx| act.fire_due(ctx));
    }

    /// Enqueues every due firing of every entry, then sleeps until the next.
    fn fire_due(&mut self, ctx: &mut Context<Self>) {
        self.firing = true;
        let client = self.client.clone();
        // The entries travel into the future and come back with their cursors moved.
        let mut entries = std::mem::take(&mut self.entries);
        let work = async move {
            let mut failed = false;
            for e in &mut entries {
                if let Err(err) = fire_entry(&client, e).await {
                    crate::runtime::telemetry::redis_error("cron");
                    tracing::warn!(entry = e.periodic.name(), error = %err, "enqueueing a cron firing failed; retrying");
                    failed = true;
                }
            }
            (entries, failed)
        };
        ctx.spawn(work.into_actor(self).map(|(entries, failed), act, ctx| {
            act.entries = entries;
            act.firing = false;
            if !act.halted.is_empty() {
                for tx in act.halted.drain(..) {
                    let _ = tx.send(());
                }
                ctx.stop();
                return;
            }
            let wait = if failed { RETRY_AFTER } else { act.until_next() };
            act.sleep(ctx, wait);
        }));
    }
}

/// Enqueues the due firings of one entry and moves its cursor past them.
async fn fire_entry(client: &Client, e: &mut Entry) -> Result<()> {
    let queue = client.queue();
    let now = crate::runtime::clock::now_us() / 1000;
    let mut plan = e.periodic.plan(e.cursor, now);
    if plan.missed > 0 {
        // This scheduler was away: another may have fired since; start from what Redis says.
        if let Some(last) = queue.cron_last_fired(e.periodic.name()).await? {
            e.cursor = e.cursor.max(last);
            plan = e.periodic.plan(e.cursor, now);
        }
    }
    if plan.missed > 0 {
        tracing::warn!(
            entry = e.periodic.name(),
            missed = plan.missed,
            enqueued = plan.missed - plan.skipped,
            "cron firings were missed (no scheduler ran within their grace period)"
        );
        crate::runtime::telemetry::cron_missed(queue.name(), e.periodic.name(), plan.missed);
    }
    if plan.skipped > 0
        && plan.skipped == plan.missed
        && let Some(latest) = plan.latest_missed
    {
        // Skipped firings are given up for good: no later start (with another policy) takes
        // them up again.
        queue.cron_fired(e.periodic.name(), latest).await?;
        e.cursor = e.cursor.max(latest);
    }
    for at in plan.fire {
        let (job_type, payload, options) = e.periodic.job(at);
        let outcome = client.enqueue_raw(&job_type, payload, options).await?;
        if let Enqueued::Added(id) = &outcome {
            tracing::debug!(entry = e.periodic.name(), at, id = id.as_str(), "cron firing enqueued");
            crate::runtime::telemetry::cron_fired(queue.name(), e.periodic.name());
        }
        queue.cron_fired(e.periodic.name(), at).await?;
        e.cursor = at;
    }
    Ok(())
}

impl Actor for CronScheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let wait = self.until_next();
        self.sleep(ctx, wait);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Halt;

impl Handler<Halt> for CronScheduler {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Halt, ctx: &mut Context<Self>) -> Self::Result {
        if !self.firing {
            ctx.stop();
            return Box::pin(async {});
        }
        // A firing round is in progress: it stops the actor when it ends, so nothing is
        // enqueued after shutdown returns.
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.halted.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
