//! The operator's commands, each a thin layer over [`Admin`]: `queues`, `jobs`, `job`,
//! `dead retry|rm`, `purge`, `pause`, `resume`, `limit`, `enqueue`, `cancel`, `cron run|ls|rm`, `workers`,
//! `exporter`, `console`. Every one takes
//! `--json`, the Redis flags of the other commands and `--prefix`; a queue or job that does not
//! exist, or input that does not parse, is an error (exit 2) and changes nothing. Removing or
//! retrying asks first unless `--yes`.

use super::{RedisArgs, configured_redis};
use crate::console::{Console, ConsoleOptions};
use crate::runtime::admin::{Admin, QueueOverview};
use crate::runtime::clock::rfc3339_ms;
use crate::runtime::cron::{Cron, Periodic};
use crate::runtime::error::{Error, Result};
use crate::runtime::queue::{JobId, JobsIn, Limit, Pick, Priority};
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

/// Periodic jobs: run a scheduler, list or forget entries.
#[derive(Subcommand, Debug, Clone)]
pub(super) enum CronAction {
    /// Run a cron scheduler for one entry until SIGINT or SIGTERM (run it in as many processes
    /// as you like: each firing is enqueued once).
    Run {
        /// The queue (created if need be).
        queue: String,
        /// The entry's name.
        name: String,
        /// When it fires: "sec min hour day month weekday [year]" (UTC), or the classic five
        /// fields.
        schedule: String,
        /// The job type of the jobs it enqueues.
        job_type: String,
        /// Their payload, JSON.
        #[arg(long)]
        json: String,
        /// Missed firings (no scheduler ran within the grace period): skip, latest or
        /// catch-up:<n>.
        #[arg(long, default_value = "skip")]
        missed: crate::runtime::cron::Missed,
        /// How late a firing may still be enqueued as on time ("60s").
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        grace: Duration,
        #[command(flatten)]
        redis: RedisArgs,
        /// The key prefix of the queue.
        #[arg(long, default_value = "conveyor")]
        prefix: String,
    },
    /// The periodic entries of a queue: schedule, job type, policy, latest and next firing.
    Ls {
        /// The queue.
        queue: String,
        #[command(flatten)]
        common: Common,
    },
    /// Forget a periodic entry (stop its schedulers first, or they record it again).
    Rm {
        /// The queue.
        queue: String,
        /// The entry's name.
        name: String,
        #[command(flatten)]
        common: Common,
    },
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
    /// Set a queue's rate limit across every worker process ("200/s", "90/m", "1000/h"), or
    /// clear it.
    Limit {
        /// The queue.
        queue: String,
        /// Jobs per second, minute or hour: 200/s, 90/m, 1000/h.
        #[arg(required_unless_present = "clear", conflicts_with = "clear", allow_hyphen_values = true)]
        rate: Option<String>,
        /// Jobs that may start at once after a quiet spell (default: a tenth of a second's
        /// worth, at least 1).
        #[arg(long, conflicts_with = "clear")]
        burst: Option<u32>,
        /// Remove the queue's limit.
        #[arg(long)]
        clear: bool,
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
        /// high, normal or low.
        #[arg(long, default_value = "normal")]
        priority: Priority,
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
    /// Periodic jobs: run a scheduler, list or forget entries.
    #[command(subcommand)]
    Cron(CronAction),
    /// Serve every queue's state (depth by state, oldest waiting, paused, live workers, cron
    /// firings) on /metrics for Prometheus, read from Redis, until SIGINT or SIGTERM.
    Exporter {
        /// How often Redis is read.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
        every: Duration,
        /// Only this queue (repeat for several; default: every queue).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Where /metrics listens (HOST:PORT; default 127.0.0.1:9465, beside a worker's 9464).
        #[command(flatten)]
        metrics: crate::cli::metrics_flag::MetricsArgs,
        #[command(flatten)]
        redis: RedisArgs,
        /// The key prefix of the queues.
        #[arg(long, default_value = "conveyor")]
        prefix: String,
    },
    /// Serve the web console (queues, jobs, dead letters, pause, workers, live view) until
    /// SIGINT or SIGTERM.
    Console {
        /// Where it listens (HOST:PORT). Anything but a loopback address needs --token.
        #[arg(long, default_value = crate::console::DEFAULT_ADDR)]
        addr: std::net::SocketAddr,
        /// The access token every request must carry (Authorization: Bearer, or the login
        /// form's cookie); also CONVEYOR_CONSOLE_TOKEN.
        #[arg(long, env = "CONVEYOR_CONSOLE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The path it is served under ("/ops"; default the root).
        #[arg(long, default_value = "")]
        base_path: String,
        #[command(flatten)]
        redis: RedisArgs,
        /// The key prefix of the queues.
        #[arg(long, default_value = "conveyor")]
        prefix: String,
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
        AdminCommand::Enqueue { redis, prefix, .. }
        | AdminCommand::Cron(CronAction::Run { redis, prefix, .. })
        | AdminCommand::Exporter { redis, prefix, .. }
        | AdminCommand::Console { redis, prefix, .. } => (redis.clone(), prefix.clone()),
        AdminCommand::Cron(CronAction::Ls { common, .. } | CronAction::Rm { common, .. }) => {
            (common.redis.clone(), common.prefix.clone())
        }
        AdminCommand::Dead(DeadAction::Retry(a) | DeadAction::Rm(a)) => {
            (a.common.redis.clone(), a.common.prefix.clone())
        }
        AdminCommand::Queues { common }
        | AdminCommand::Jobs { common, .. }
        | AdminCommand::Job { common, .. }
        | AdminCommand::Purge { common, .. }
        | AdminCommand::Pause { common, .. }
        | AdminCommand::Limit { common, .. }
        | AdminCommand::Resume { common, .. }
        | AdminCommand::Cancel { common, .. }
        | AdminCommand::Workers { common, .. } => (common.redis.clone(), common.prefix.clone()),
    };
    // Input that does not parse is refused before anything connects.
    let periodic = match &command {
        AdminCommand::Cron(CronAction::Run { name, schedule, job_type, json, missed, grace, .. }) => {
            let value: serde_json::Value = serde_json::from_str(json).map_err(|e| Error::InvalidArgument {
                what: "--json",
                message: format!("expected a JSON payload: {e}"),
            })?;
            let payload = serde_json::to_vec(&value).expect("a JSON value serializes");
            Some(Periodic::raw(name, schedule, job_type, payload)?.missed(*missed).grace(*grace))
        }
        _ => None,
    };
    if let AdminCommand::Console { addr, token, .. } = &command {
        crate::console::check_exposure(*addr, token.as_deref().is_some_and(|t| !t.is_empty()))?;
    }
    if let AdminCommand::Limit { rate: Some(rate), burst, .. } = &command {
        limit_of(rate, *burst)?;
    }
    let endpoint = configured_redis(&redis_args)?.ok_or_else(|| {
        Error::Usage(
            "this command works on a Redis of yours: give --redis-url, CONVEYOR_REDIS_URL or redis_url in conveyor.toml"
                .into(),
        )
    })?;
    System::new().block_on(async move {
        let admin = Admin::new(endpoint.connect().await?, prefix);
        match (periodic, &command) {
            (Some(periodic), AdminCommand::Cron(CronAction::Run { queue, .. })) => {
                run_cron(&admin, queue, periodic).await
            }
            (_, AdminCommand::Exporter { every, queues, metrics, .. }) => {
                run_exporter(admin, queues.clone(), *every, metrics).await
            }
            (_, AdminCommand::Console { addr, token, base_path, .. }) => {
                let options = ConsoleOptions { token: token.clone(), base_path: base_path.clone() };
                Console::new(admin, options).serve(*addr).await?;
                Ok(ExitCode::SUCCESS)
            }
            _ => act(&admin, command).await,
        }
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
                        (_, _, Some(due)) => format!("due {}", rfc3339_ms(due)),
                        _ => String::new(),
                    };
                    println!("{:<28} {:<20} {:>7} {:<24} {detail}", j.id, j.name, j.attempt, rfc3339_ms(j.enqueued_ms));
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
                    println!("  enqueued   {}", rfc3339_ms(f.enqueued_ms));
                    if let Some(due) = f.due_ms {
                        println!("  due        {}", rfc3339_ms(due));
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
        AdminCommand::Limit { queue, rate: Some(rate), burst, common, .. } => {
            let limit = limit_of(&rate, burst)?;
            admin.set_limit(&queue, limit).await?;
            say(
                common.json,
                &format!("queue {queue} limited to {limit}: every worker process follows it within a poll"),
            );
        }
        AdminCommand::Limit { queue, rate: None, common, .. } => {
            let had = admin.clear_limit(&queue).await?;
            let what = if had { "has no rate limit any more" } else { "had no rate limit" };
            say(common.json, &format!("queue {queue} {what}"));
        }
        AdminCommand::Resume { queue, common } => {
            admin.resume(&queue).await?;
            say(common.json, &format!("queue {queue} resumed"));
        }
        AdminCommand::Enqueue { queue, job_type, json, delay, id, priority, .. } => {
            let done = admin.enqueue(&queue, &job_type, &json, delay, id.as_deref(), priority).await?;
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
        AdminCommand::Cron(CronAction::Run { .. }) | AdminCommand::Exporter { .. } | AdminCommand::Console { .. } => {
            unreachable!("run_cron, run_exporter and Console::serve run them")
        }
        AdminCommand::Cron(CronAction::Ls { queue, common }) => {
            let entries = admin.crons(&queue).await?;
            if common.json {
                print_json(&entries);
            } else {
                println!(
                    "{:<24} {:<20} {:<20} {:<12} {:<24} next",
                    "entry", "schedule", "job type", "missed", "last fired"
                );
                let now = crate::runtime::clock::now_us() / 1000;
                for e in &entries {
                    let next = crate::runtime::cron::parse(&e.schedule)
                        .ok()
                        .and_then(|s| s.after(&chrono::DateTime::from_timestamp_millis(now as i64)?).next())
                        .map_or_else(|| "never".into(), |t| rfc3339_ms(t.timestamp_millis() as u64));
                    println!(
                        "{:<24} {:<20} {:<20} {:<12} {:<24} {next}",
                        e.name,
                        e.schedule,
                        e.job_type,
                        e.missed,
                        e.last_fired_ms.map_or_else(|| "never".into(), rfc3339_ms)
                    );
                }
                println!("({} periodic entr{})", entries.len(), if entries.len() == 1 { "y" } else { "ies" });
            }
        }
        AdminCommand::Cron(CronAction::Rm { queue, name, common }) => {
            admin.remove_cron(&queue, &name).await?;
            say(common.json, &format!("cron entry {name} of queue {queue} forgotten"));
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
                        rfc3339_ms(w.started_ms)
                    );
                }
                println!("({} live worker process(es))", workers.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one entry's scheduler until the process is asked to stop.
async fn run_cron(admin: &Admin, queue: &str, periodic: Periodic) -> Result<ExitCode> {
    let (name, expression) = (periodic.name().to_owned(), periodic.expression().to_owned());
    let client = crate::runtime::client::Client::new(admin.queue_or_new(queue).await?);
    let next = periodic.next_after(crate::runtime::clock::now_us() / 1000);
    let cron = Cron::new(client).entry(periodic).start().await?;
    println!(
        "cron entry {name} ({expression}) on queue {queue}: next firing {}; SIGINT or SIGTERM stops it",
        next.map_or_else(|| "never".into(), rfc3339_ms)
    );
    crate::runtime::shutdown::shutdown_signal().await;
    cron.shutdown().await;
    println!("cron entry {name} stopped");
    Ok(ExitCode::SUCCESS)
}

/// Serves every queue's state on /metrics until the process is asked to stop.
async fn run_exporter(
    admin: Admin,
    queues: Vec<String>,
    every: Duration,
    metrics: &crate::cli::metrics_flag::MetricsArgs,
) -> Result<ExitCode> {
    use crate::cli::metrics_flag::MetricsArgs;
    use crate::runtime::telemetry::{self, Identity, MetricsAddr, Role};
    let addr = match metrics.metrics_addr {
        Some(MetricsAddr::Off) => {
            return Err(Error::Usage("exporter: --metrics-addr off leaves nothing to do: give HOST:PORT".into()));
        }
        Some(at) => at,
        None => MetricsAddr::At(EXPORTER_ADDR.parse().expect("a valid address")),
    };
    let identity = Identity { role: Role::Exporter, scenario: "none".into(), queue: "*".into() };
    MetricsArgs { metrics_addr: Some(addr) }.install(identity)?;
    telemetry::set_phase(telemetry::Phase::Serve);
    let watch = actix::Actor::start(telemetry::QueueWatch::new(admin, queues, every.max(Duration::from_millis(100))));
    println!("exporting every queue's state every {}; SIGINT or SIGTERM stops it", humantime::format_duration(every));
    crate::runtime::shutdown::shutdown_signal().await;
    drop(watch);
    Ok(ExitCode::SUCCESS)
}

/// Where `conveyor exporter` serves /metrics unless told otherwise.
const EXPORTER_ADDR: &str = "127.0.0.1:9465";

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

/// The limit `conveyor limit` was given: an error naming the flag for a rate or burst that is
/// not positive or does not parse.
fn limit_of(rate: &str, burst: Option<u32>) -> Result<Limit> {
    let per_second = Limit::parse_rate(rate).map_err(|message| Error::InvalidArgument { what: "rate", message })?;
    Limit::new(per_second, burst).map_err(|e| match e {
        Error::InvalidArgument { what: "burst", message } => Error::InvalidArgument { what: "--burst", message },
        other => other,
    })
}

fn queues_table(queues: &[QueueOverview]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:>9} {:>14} {:>7} {:>7} {:>8} {:>7} {:>10} {:>8} {:>8} {:>6} {:>7}  {:<5}",
        "queue",
        "waiting",
        "high/norm/low",
        "active",
        "delayed",
        "retrying",
        "dead",
        "oldest (s)",
        "done/s",
        "failed/s",
        "paused",
        "workers",
        "limit"
    );
    for q in queues {
        let d = &q.depth;
        let _ = writeln!(
            s,
            "{:<20} {:>9} {:>14} {:>7} {:>7} {:>8} {:>7} {:>10.1} {:>8.1} {:>8.1} {:>6} {:>7}  {}",
            q.name,
            d.waiting,
            format!("{}/{}/{}", q.waiting_by_priority.high, q.waiting_by_priority.normal, q.waiting_by_priority.low),
            d.in_flight,
            d.delayed,
            d.retrying,
            d.dead,
            q.oldest_waiting_seconds,
            q.rates.completed_per_second,
            q.rates.failed_per_second,
            if q.paused { "yes" } else { "no" },
            q.live_workers,
            q.limit.map_or_else(|| "-".to_owned(), |l| l.to_string())
        );
    }
    if queues.is_empty() {
        let _ = writeln!(s, "(no queue)");
    }
    s
}
