//! The exporter's watch: every queue under one prefix as Redis holds it — jobs by state (and
//! waiting jobs by priority), the
//! oldest waiting job's age, paused, live worker processes, each periodic entry's latest
//! firing — read through [`Admin`] every few seconds and set as gauges. Worker processes export
//! the same depth for the queue they serve, but only while they run; this actor (in
//! `conveyor exporter`) still reports a queue none of them serves, which is what the alert on
//! "waiting jobs and no live worker" needs.

use super::catalog::{CRON_LAST_FIRED, OLDEST_WAITING_AGE, QUEUE_DEPTH, WAITING_BY_PRIORITY};
use crate::runtime::admin::Admin;
use actix::prelude::*;
use metrics::gauge;
use std::time::Duration;

/// Watches every queue of one Redis under one prefix (an actor; see the module docs).
pub struct QueueWatch {
    admin: Admin,
    /// The queues watched; empty: every queue.
    only: Vec<String>,
    every: Duration,
    /// A look still running from an earlier tick is not started again.
    looking: bool,
}

impl QueueWatch {
    /// Watches `admin`'s queues named in `only` (every queue when empty), looking every `every`.
    pub fn new(admin: Admin, only: Vec<String>, every: Duration) -> Self {
        Self { admin, only, every, looking: false }
    }

    fn look(&mut self, ctx: &mut Context<Self>) {
        if self.looking {
            return;
        }
        self.looking = true;
        let (admin, only) = (self.admin.clone(), self.only.clone());
        let work = async move {
            let queues = if only.is_empty() {
                admin.queues().await?
            } else {
                let mut queues = Vec::with_capacity(only.len());
                for name in &only {
                    match admin.overview(name).await {
                        Ok(q) => queues.push(q),
                        // Not created yet: nothing to report.
                        Err(crate::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                queues
            };
            for q in &queues {
                let name = || q.name.clone();
                let d = &q.depth;
                for (state, n) in [
                    ("waiting", d.waiting),
                    ("in_flight", d.in_flight),
                    ("delayed", d.delayed),
                    ("retrying", d.retrying),
                    ("dead", d.dead),
                ] {
                    gauge!(QUEUE_DEPTH, "queue" => name(), "state" => state).set(n as f64);
                }
                for level in crate::runtime::queue::Priority::ALL {
                    gauge!(WAITING_BY_PRIORITY, "queue" => name(), "priority" => level.name())
                        .set(q.waiting_by_priority.of(level) as f64);
                }
                gauge!(OLDEST_WAITING_AGE, "queue" => name()).set(q.oldest_waiting_seconds);
                super::queue_paused(&q.name, q.paused);
                super::worker_processes(&q.name, q.live_workers);
                for entry in admin.crons(&q.name).await? {
                    if let Some(at) = entry.last_fired_ms {
                        gauge!(CRON_LAST_FIRED, "queue" => name(), "entry" => entry.name).set(at as f64 / 1000.0);
                    }
                }
            }
            Ok::<_, crate::Error>(queues.len())
        };
        ctx.spawn(work.into_actor(self).map(|result, act, _| {
            act.looking = false;
            match result {
                Ok(n) => tracing::debug!(queues = n, "watched every queue"),
                Err(e) => {
                    super::redis_error("exporter");
                    tracing::warn!(error = %e, "reading the queues failed; the next look retries");
                }
            }
        }));
    }
}

impl Actor for QueueWatch {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.look(ctx);
        ctx.run_interval(self.every, |act, ctx| act.look(ctx));
    }
}
