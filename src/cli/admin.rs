//! The operator's commands, each a thin layer over [`Admin`]: `queues`, `jobs`, `job`,
//! `dead retry|rm`, `purge`, `pause`, `resume`, `enqueue`, `cancel`, `workers`. Every one takes
//! `--json`, the Redis flags of the other commands and `--prefix`; a queue or job that does not
//! exist, or input that does not parse, is an error (exit 2) and changes nothing. Removing or
//! retrying asks first unless `--yes`.

use super::{RedisArgs, configured_redis};
use crate::runtime::admin::{Admin, QueueOverview};
use crate::runtime::error::{Error, Result};
use crate::runtime::queue::{JobId, JobsIn, Pick};
use actix::System;
use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Flags every operator command takes.
#[derive(Args, Debug, Clone)]
pub(super) struct Common {
    #[command(flatten)]
    redis: RedisArgs,
    /// The key prefix of the queues (the queue option `prefix`).
    #[arg(long, default_value = "conveyor")]
    prefix: String,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// What to do with dead letters.
#[derive(Subcommand, Debug, Clone)]
pub(super) enum DeadAction {
    /// Move dead letters back to the queue as first attempts (their ids kept).
    Retry(DeadArgs),
    /// Remove dead letters.
    Rm(DeadArgs),
}

/// Which dead letters of which queue.
#[derive(Args, Debug, Clone)]
pub(super) struct DeadArgs {
    /// The queue.
    queue: String,
    /// Job ids (as `conveyor jobs <queue> --state dead` prints them).
    ids: Vec<String>,
    /// Every dead letter of the queue.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    /// Do not ask.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    common: Common,
}

/// An operator's command.
#[derive(Subcommand, Debug, Clone)]
pub(super) enum AdminCommand {
    /// Every queue: jobs by state, oldest waiting, rates, paused, live workers.
    Queues {
        #[command(flatten)]
        common: Common,
    },
    /// A page of a queue's jobs in one state.
    Jobs {
        /// The queue.
        queue: String,
        /// waiting, active, delayed, retrying or dead.
        #[arg(long, default_value = "waiting")]
        state: JobsIn,
        /// Jobs per page.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Where the page starts (the `next` a page printed).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// One job's record: where it is, its payload, and a tracked job's status.
    Job {
        /// The job's id.
        id: String,
        /// Its queue (default: look in every queue).
        #[arg(long)]
        queue: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Retry or remove dead letters.
    #[command(subcommand)]
    Dead(DeadAction),
    /// Remove every job of a queue in one state (waiting, delayed, retrying or dead).
    Purge {
        /// The queue.
        queue: String,
        /// The state to empty.
        #[arg(long)]
        state: JobsIn,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Pause a queue: workers in every process stop claiming and finish what they hold.
    Pause {
        /// The queue.
        queue: String,
        #[command(flatten)]
        common: Common,
    },
    /// Resume a paused queue.
    Resume {
        /// The queue.
        queue: String,
        #[command(flatten)]
        common: Common,
    },
    /// Enqueue one job by hand.
    Enqueue {
        /// The queue (created if need be).
        queue: String,
        /// The job type's name.
        job_type: String,
        /// The payload, JSON.
        #[arg(long)]
        json: String,
        /// Not before this long from now ("10s", "5m").
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
        /// An id of its own (the job is tracked; the id is taken once).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        redis: RedisArgs,
        /// The key prefix of the queue.
        #[arg(long, default_value = "conveyor")]
        prefix: String,
    },
    /// Ask for a job to be cancelled.
    Cancel {
        /// The job's id.
        id: String,
        /// Its queue.
        #[arg(long)]
        queue: String,
        #[command(flatten)]
        common: Common,
    },
    /// The live worker processes (of one queue, or every queue).
    Workers {
        /// The queue (default: every queue).
        #[arg(long)]
        queue: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs an operator's command.
pub(super) fn run(command: AdminCommand) -> Result<ExitCode> {
    let (redis_args, prefix) = match &command {
        AdminCommand::Enqueue { redis, prefix, .. } => (redis.clone(), prefix.clone()),
        AdminCommand::Dead(DeadAction::Retry(a) | DeadAction::Rm(a)) => {
            (a.common.redis.clone(), a.common.prefix.clone())
        }
        AdminCommand::Queues { common }
        | AdminCommand::Jobs { common, .. }
        | AdminCommand::Job { common, .. }
        | AdminCommand::Purge { common, .. }
        | AdminCommand::Pause { common, .. }
        | AdminCommand::Resume { common, .. }
        | AdminCommand::Cancel { common, .. }
        | AdminCommand::Workers { common, .. } => (common.redis.clone(), common.prefix.clone()),
    };
    let endpoint = configured_redis(&redis_args)?.ok_or_else(|| {
        Error::Usage(
            "this command works on a Redis of yours: give --redis-url, CONVEYOR_REDIS_URL or redis_url in conveyor.toml"
                .into(),
        )
    })?;
    System::new().block_on(async move {
        let admin = Admin::new(endpoint.connect().await?, prefix);
        act(&admin, command).await
    })
}

async fn act(admin: &Admin, command: AdminCommand) -> Result<ExitCode> {
    match command {
        AdminCommand::Queues { common } => {
            let queues = admin.queues().await?;
            if common.json {
                print_json(&queues);
            } else {
                print!("{}", queues_table(&queues));
            }
        }
        AdminCommand::Jobs { queue, state, limit, cursor, common } => {
            let page = admin.jobs(&queue, state, limit, cursor.as_deref()).await?;
            if common.json {
                print_json(&page);
            } else {
                println!("{:<28} {:<20} {:>7} {:<24} detail", "id", "name", "attempt", "enqueued");
                for j in &page.jobs {
                    let detail = match (&j.reason, &j.worker, j.due_ms) {
                        (Some(r), _, _) => r.clone(),
                        (_, Some((w, idle)), _) => format!("worker {w} (idle {idle} ms)"),
                        (_, _, Some(due)) => format!("due {}", time_of(due)),
                        _ => String::new(),
                    };
                    println!("{:<28} {:<20} {:>7} {:<24} {detail}", j.id, j.name, j.attempt, time_of(j.enqueued_ms));
                }
                match &page.next {
                    Some(next) => println!("next page: --cursor {next}"),
                    None => println!("({} job(s), end of the list)", page.jobs.len()),
                }
            }
        }
        AdminCommand::Job { id, queue, common } => {
            let record = admin.job(queue.as_deref(), &id).await?;
            if common.json {
                let found = record
                    .found
                    .as_ref()
                    .map(|f| serde_json::json!({ "summary": f, "payload": payload_text(&f.payload) }));
                print_json(&serde_json::json!({ "queue": record.queue, "found": found, "status": record.status }));
            } else {
                println!("job {id} in queue {}", record.queue);
                if let Some(f) = &record.found {
                    println!("  where      {:?}", f.state);
                    println!("  type       {}", f.name);
                    println!("  attempt    {}", f.attempt);
                    println!("  enqueued   {}", time_of(f.enqueued_ms));
                    if let Some(due) = f.due_ms {
                        println!("  due        {}", time_of(due));
                    }
                    if let Some((w, idle)) = &f.worker {
                        println!("  worker     {w} (idle {idle} ms)");
                    }
                    if let Some(r) = &f.reason {
                        println!("  reason     {r}");
                    }
                    println!("  payload    {}", payload_text(&f.payload));
                }
                if let Some(s) = &record.status {
                    println!("  status     {}", serde_json::to_string(&s.state).expect("serializes"));
                    if let Some(e) = &s.last_error {
                        println!("  last error {e}");
                    }
                }
            }
        }
        AdminCommand::Dead(action) => {
            let (retry, a) = match action {
                DeadAction::Retry(a) => (true, a),
                DeadAction::Rm(a) => (false, a),
            };
            let pick = pick_of(&a)?;
            // Every id must be a dead letter of the queue before anything moves.
            if let Pick::Ids(ids) = &pick {
                let queue = admin.queue(&a.queue).await?;
                for id in ids {
                    match queue.find(id.as_str()).await? {
                        Some(f) if f.state == JobsIn::Dead => {}
                        _ => {
                            return Err(Error::NotFound {
                                what: "dead letter",
                                name: id.to_string(),
                                hint: format!(" in queue {:?}: nothing was changed", a.queue),
                            });
                        }
                    }
                }
            } else {
                admin.queue(&a.queue).await?;
            }
            let what = match &pick {
                Pick::All => "every dead letter".to_owned(),
                Pick::Ids(ids) => format!("{} dead letter(s)", ids.len()),
            };
            let verb = if retry { "retry" } else { "remove" };
            confirm(a.yes, &format!("{verb} {what} of queue {}?", a.queue))?;
            let done = if retry {
                admin.retry_dead(&a.queue, &pick).await?
            } else {
                admin.delete_dead(&a.queue, &pick).await?
            };
            if a.common.json {
                print_json(&done);
            } else {
                println!(
                    "{} {} dead letter(s) of queue {}",
                    if retry { "retried" } else { "removed" },
                    done.done,
                    a.queue
                );
                if done.undecodable > 0 {
                    println!("{} dead letter(s) are not jobs (their fields do not decode)", done.undecodable);
                }
            }
        }
        AdminCommand::Purge { queue, state, yes, common } => {
            admin.queue(&queue).await?;
            if state == JobsIn::Active {
                return Err(Error::Usage(
                    "purge --state active: a worker holds those jobs; cancel them instead".into(),
                ));
            }
            confirm(yes, &format!("remove every {state:?} job of queue {queue}?").to_lowercase())?;
            let n = admin.purge(&queue, state).await?;
            if common.json {
                print_json(&serde_json::json!({ "removed": n }));
            } else {
                println!("removed {n} job(s) from queue {queue}");
            }
        }
        AdminCommand::Pause { queue, common } => {
            admin.pause(&queue).await?;
            say(common.json, &format!("queue {queue} paused: workers claim nothing and finish what they hold"));
        }
        AdminCommand::Resume { queue, common } => {
            admin.resume(&queue).await?;
            say(common.json, &format!("queue {queue} resumed"));
        }
        AdminCommand::Enqueue { queue, job_type, json, delay, id, .. } => {
            let done = admin.enqueue(&queue, &job_type, &json, delay, id.as_deref()).await?;
            match done {
                crate::runtime::queue::Enqueued::Added(id) => println!("enqueued {id}"),
                crate::runtime::queue::Enqueued::Duplicate(id) => {
                    println!("not enqueued: job {id} is there already");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        AdminCommand::Cancel { id, queue, common } => {
            let done = admin.cancel(&queue, &id).await?;
            if common.json {
                print_json(&done);
            } else {
                use crate::runtime::queue::Cancelled;
                println!(
                    "{}",
                    match done {
                        Cancelled::Cancelled => format!("job {id} cancelled: it will not start"),
                        Cancelled::Requested => format!("job {id} is running: its cancellation token trips"),
                        Cancelled::AlreadyFinished(state) =>
                            format!("job {id} had already finished ({state}): nothing changed"),
                        Cancelled::Sent => format!("job {id} is not tracked: every worker is told not to run it"),
                    }
                );
            }
        }
        AdminCommand::Workers { queue, common } => {
            let workers = admin.workers(queue.as_deref()).await?;
            if common.json {
                print_json(&workers);
            } else {
                println!(
                    "{:<32} {:<16} {:>8} {:>7} {:>11} {:>5}  started",
                    "instance", "queue", "pid", "workers", "concurrency", "busy"
                );
                for w in &workers {
                    println!(
                        "{:<32} {:<16} {:>8} {:>7} {:>11} {:>5}  {}",
                        w.instance,
                        w.queue,
                        w.pid,
                        w.workers,
                        w.concurrency,
                        w.busy,
                        time_of(w.started_ms)
                    );
                }
                println!("({} live worker process(es))", workers.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pick_of(a: &DeadArgs) -> Result<Pick> {
    match (a.all, a.ids.is_empty()) {
        (true, _) => Ok(Pick::All),
        (false, true) => Err(Error::Usage("dead: give job ids, or --all".into())),
        (false, false) => {
            let ids =
                a.ids.iter().map(|id| JobId::parse(id).map_err(|e| Error::Usage(format!("dead: job id {id:?}: {e}"))));
            Ok(Pick::Ids(ids.collect::<Result<_>>()?))
        }
    }
}

/// Asks `question` on a terminal; without one, only `--yes` goes on.
fn confirm(yes: bool, question: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{question} pass --yes to confirm (no terminal to ask on): nothing was changed"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Usage("not confirmed: nothing was changed".into()))
    }
}

fn say(json: bool, text: &str) {
    if json {
        print_json(&serde_json::json!({ "ok": text }));
    } else {
        println!("{text}");
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("serializes"));
}

/// A payload as text: pretty JSON when it is JSON, else hex.
pub fn payload_text(payload: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => serde_json::to_string(&v).expect("serializes"),
        Err(_) => payload.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// A time (ms since the epoch) as RFC 3339, UTC.
fn time_of(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn queues_table(queues: &[QueueOverview]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:>9} {:>7} {:>7} {:>8} {:>7} {:>10} {:>8} {:>8} {:>6} {:>7}",
        "queue",
        "waiting",
        "active",
        "delayed",
        "retrying",
        "dead",
        "oldest (s)",
        "done/s",
        "failed/s",
        "paused",
        "workers"
    );
    for q in queues {
        let d = &q.depth;
        let _ = writeln!(
            s,
            "{:<20} {:>9} {:>7} {:>7} {:>8} {:>7} {:>10.1} {:>8.1} {:>8.1} {:>6} {:>7}",
            q.name,
            d.waiting,
            d.in_flight,
            d.delayed,
            d.retrying,
            d.dead,
            q.oldest_waiting_seconds,
            q.rates.completed_per_second,
            q.rates.failed_per_second,
            if q.paused { "yes" } else { "no" },
            q.live_workers
        );
    }
    if queues.is_empty() {
        let _ = writeln!(s, "(no queue)");
    }
    s
}
