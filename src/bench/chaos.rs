//! Carries out a scenario's `[chaos]` section during `conveyor run`: it starts the extra worker
//! processes, kills one with SIGKILL and kills and restarts the private redis-server at the
//! planned times, and measures how long recovery took. Each fault runs on a thread of its own
//! with its own (synchronous) Redis connection, so the run's event loop is never blocked. The
//! run itself reports lost and duplicate jobs as always; this adds the recovery times.

use crate::bench::scenario::chaos::Chaos;
use crate::runtime::connection::Endpoint;
use crate::runtime::error::{Error, Result};
use crate::runtime::queue::{GROUP, QueueKeys};
use crate::testkit::redis_server::RedisServer;
use serde::Serialize;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often recovery is polled.
const POLL: Duration = Duration::from_millis(10);
/// Longest a recovery is waited for before it is reported as not seen.
const RECOVERY_LIMIT: Duration = Duration::from_secs(120);
/// Longest a worker process gets to stop after SIGTERM at the end of the run.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// What the faults did and how long recovery took (seconds; `None` when not planned or not
/// seen before the run ended).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChaosReport {
    /// Worker processes started beside the run (`chaos.worker_processes`).
    pub worker_processes: u32,
    /// When one of them got SIGKILL, seconds after the faults were armed (as the run started).
    pub worker_killed_at_seconds: Option<f64>,
    /// Jobs the killed worker process held (claimed, not settled) when it died.
    pub jobs_held_by_killed_worker: Option<u64>,
    /// From the kill until none of those jobs was held by the dead process any more (the lease
    /// expired and the scheduler gave them to live workers).
    pub reclaimed_after_seconds: Option<f64>,
    /// When the private redis-server got SIGKILL (it was started again at once), seconds after
    /// the faults were armed.
    pub redis_restarted_at_seconds: Option<f64>,
    /// From SIGKILL to the restarted server answering (append-only file loaded).
    pub redis_down_seconds: Option<f64>,
    /// From the server answering again to the first job finishing after it: the time to resume.
    pub resumed_after_seconds: Option<f64>,
    /// What went wrong while injecting or measuring.
    pub problems: Vec<String>,
}

impl ChaosReport {
    /// One line for the printed summary.
    pub fn summary(&self) -> String {
        let s = |v: Option<f64>| v.map_or_else(|| "not seen".to_owned(), |v| format!("{v:.2}s"));
        let mut parts = Vec::new();
        if let Some(at) = self.worker_killed_at_seconds {
            parts.push(format!(
                "worker process killed at {at:.1}s holding {} jobs, reclaimed after {}",
                self.jobs_held_by_killed_worker.unwrap_or(0),
                s(self.reclaimed_after_seconds)
            ));
        }
        if let Some(at) = self.redis_restarted_at_seconds {
            parts.push(format!(
                "redis restarted at {at:.1}s: down {}, work resumed {} after",
                s(self.redis_down_seconds),
                s(self.resumed_after_seconds)
            ));
        }
        parts.extend(self.problems.iter().map(|p| format!("problem: {p}")));
        parts.join("; ")
    }
}

/// The faults of one run, under way.
pub struct Driver {
    started: Instant,
    stop: Arc<AtomicBool>,
    workers: Arc<Mutex<Vec<Child>>>,
    threads: Vec<JoinHandle<()>>,
    report: Arc<Mutex<ChaosReport>>,
    server: Arc<Mutex<Option<RedisServer>>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chaos::Driver({} threads)", self.threads.len())
    }
}

/// Starts the worker processes and arms the faults. The endpoint's URL (which may hold a
/// password) and TLS files reach the worker processes through their environment only. A Redis
/// restart needs the private `server`.
pub fn start(
    plan: &Chaos,
    scenario_file: &Path,
    endpoint: &Endpoint,
    keys: QueueKeys,
    server: Option<RedisServer>,
) -> Result<Driver> {
    let url = endpoint.url.as_str();
    if crate::runtime::connection::cluster_seed_urls(url).is_some() {
        return Err(Error::Usage(
            "[chaos] needs a single Redis server (it watches one server's pending list): not a redis+cluster:// URL"
                .into(),
        ));
    }
    if plan.restart_redis_at.is_some() && server.is_none() {
        return Err(Error::Usage(
            "chaos.restart_redis_at needs the private redis-server: run without a Redis URL".into(),
        ));
    }
    // Before any process starts, so a bad URL or TLS file leaves nothing behind.
    let client = endpoint.client()?;
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for _ in 0..plan.worker_processes {
        let mut command = Command::new(&exe);
        command.args(["worker", "--metrics-addr", "off"]).arg(scenario_file).env("CONVEYOR_REDIS_URL", url);
        let tls = &endpoint.tls;
        for (var, file) in [
            ("CONVEYOR_TLS_CA_FILE", &tls.ca),
            ("CONVEYOR_TLS_CERT_FILE", &tls.cert),
            ("CONVEYOR_TLS_KEY_FILE", &tls.key),
        ] {
            if let Some(file) = file {
                command.env(var, file);
            }
        }
        let child = command
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        workers.push(child);
    }
    let mut driver = Driver {
        started: Instant::now(),
        stop: Arc::new(AtomicBool::new(false)),
        workers: Arc::new(Mutex::new(workers)),
        threads: Vec::new(),
        report: Arc::new(Mutex::new(ChaosReport { worker_processes: plan.worker_processes, ..Default::default() })),
        server: Arc::new(Mutex::new(server)),
    };
    if let Some(at) = plan.kill_worker_at {
        let f = Fault::of(&driver, &client, keys.clone(), at);
        let workers = driver.workers.clone();
        driver.threads.push(std::thread::spawn(move || f.kill_worker(&workers)));
    }
    if let Some(at) = plan.restart_redis_at {
        let f = Fault::of(&driver, &client, keys, at);
        let server = driver.server.clone();
        driver.threads.push(std::thread::spawn(move || f.restart_redis(&server)));
    }
    Ok(driver)
}

impl Driver {
    /// Ends the faults (the run is over): stops the remaining worker processes, waits for the
    /// fault threads, and hands back the report and the private server.
    pub fn finish(mut self) -> (ChaosReport, Option<RedisServer>) {
        self.wind_down();
        let report = self.report.lock().expect("report lock").clone();
        let server = self.server.lock().expect("server lock").take();
        tracing::debug!(elapsed = ?self.started.elapsed(), "chaos finished");
        (report, server)
    }

    fn wind_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for mut child in self.workers.lock().expect("workers lock").drain(..) {
            stop_gently(&mut child);
        }
    }
}

/// A run that failed still leaves no worker process behind.
impl Drop for Driver {
    fn drop(&mut self) {
        self.wind_down();
    }
}

/// SIGTERM, then SIGKILL if the process has not ended within [`STOP_LIMIT`].
fn stop_gently(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + STOP_LIMIT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One planned fault: when, where, and where its findings go.
struct Fault {
    at: Duration,
    started: Instant,
    stop: Arc<AtomicBool>,
    /// Polls Redis through this client (TLS files included), reconnecting while it restarts.
    client: redis::Client,
    keys: QueueKeys,
    report: Arc<Mutex<ChaosReport>>,
}

impl Fault {
    fn of(driver: &Driver, client: &redis::Client, keys: QueueKeys, at: Duration) -> Self {
        Self {
            at,
            started: driver.started,
            stop: driver.stop.clone(),
            client: client.clone(),
            keys,
            report: driver.report.clone(),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps until the fault's time; false when the run ended first.
    fn wait_for_time(&self) -> bool {
        while self.started.elapsed() < self.at {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(POLL.min(self.at - self.started.elapsed()));
        }
        true
    }

    fn problem(&self, p: String) {
        tracing::warn!(problem = %p, "chaos");
        self.report.lock().expect("report lock").problems.push(p);
    }

    /// Polls `done` until it holds, the run ends, or [`RECOVERY_LIMIT`]; the time it took.
    fn time_until(&self, mut done: impl FnMut(&mut Option<redis::Connection>) -> bool) -> Option<f64> {
        let since = Instant::now();
        let mut conn = None;
        while since.elapsed() < RECOVERY_LIMIT {
            if done(&mut conn) {
                return Some(since.elapsed().as_secs_f64());
            }
            if self.stopping() {
                return None;
            }
            std::thread::sleep(POLL);
        }
        None
    }

    /// Runs `f` on a connection, reconnecting after errors (Redis may be restarting).
    fn query<T>(
        &self,
        conn: &mut Option<redis::Connection>,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        if conn.is_none() {
            *conn = self.client.get_connection_with_timeout(Duration::from_secs(1)).ok();
        }
        let result = f(conn.as_mut()?);
        if result.is_err() {
            *conn = None;
        }
        result.ok()
    }

    fn kill_worker(self, workers: &Mutex<Vec<Child>>) {
        if !self.wait_for_time() {
            return;
        }
        let Some(mut victim) = workers.lock().expect("workers lock").pop() else { return };
        let prefix = format!("{}-{}-w", hostname(), victim.id());
        let mut conn = None;
        let held = self.query(&mut conn, |c| pending_of(c, &self.keys, &prefix));
        if let Err(e) = victim.kill() {
            self.problem(format!("could not kill the worker process: {e}"));
            return;
        }
        let _ = victim.wait();
        let killed_at = self.started.elapsed().as_secs_f64();
        tracing::info!(at = killed_at, held = ?held, "chaos: killed a worker process (SIGKILL)");
        let reclaimed =
            self.time_until(|conn| self.query(conn, |c| pending_of(c, &self.keys, &prefix)).is_some_and(|n| n == 0));
        let mut r = self.report.lock().expect("report lock");
        r.worker_killed_at_seconds = Some(killed_at);
        r.jobs_held_by_killed_worker = held;
        r.reclaimed_after_seconds = reclaimed;
    }

    fn restart_redis(self, server: &Mutex<Option<RedisServer>>) {
        if !self.wait_for_time() {
            return;
        }
        let killed = Instant::now();
        let restarted = {
            let mut guard = server.lock().expect("server lock");
            let Some(server) = guard.as_mut() else { return };
            server.restart()
        };
        if let Err(e) = restarted {
            self.problem(format!("the private redis-server did not come back: {e}"));
            return;
        }
        let down = killed.elapsed().as_secs_f64();
        let restarted_at = self.started.elapsed().as_secs_f64() - down;
        tracing::info!(at = restarted_at, down, "chaos: killed and restarted the private redis-server");
        let audit = self.keys.audit_done();
        let mut conn = None;
        let before: Option<u64> = self.query(&mut conn, |c| redis::cmd("BITCOUNT").arg(&audit).query(c));
        let resumed = match before {
            Some(before) => self.time_until(|conn| {
                self.query(conn, |c| redis::cmd("BITCOUNT").arg(&audit).query::<u64>(c)).is_some_and(|n| n > before)
            }),
            None => {
                self.problem("could not read the audit after the restart".into());
                None
            }
        };
        let mut r = self.report.lock().expect("report lock");
        r.redis_restarted_at_seconds = Some(restarted_at);
        r.redis_down_seconds = Some(down);
        r.resumed_after_seconds = resumed;
    }
}

/// Jobs held (pending) by consumers whose name starts with `prefix`.
fn pending_of(conn: &mut redis::Connection, keys: &QueueKeys, prefix: &str) -> redis::RedisResult<u64> {
    // XPENDING's summary: [count, smallest id, greatest id, [[consumer, count], ...]].
    let summary: redis::Value = redis::cmd("XPENDING").arg(keys.ready()).arg(GROUP).query(conn)?;
    let redis::Value::Array(parts) = summary else { return Ok(0) };
    let Some(redis::Value::Array(consumers)) = parts.get(3) else { return Ok(0) };
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(n) => n.to_string(),
        _ => String::new(),
    };
    Ok(consumers
        .iter()
        .filter_map(|c| match c {
            redis::Value::Array(pair) if pair.len() == 2 && text(&pair[0]).starts_with(prefix) => {
                text(&pair[1]).parse::<u64>().ok()
            }
            _ => None,
        })
        .sum())
}

/// The host name as worker processes put it in their consumer names.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into()).trim().to_owned()
}
