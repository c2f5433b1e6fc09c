//! Shared test fixtures: a private redis-server per test binary (or per test, for fault tests
//! that kill it), a unique queue name per test, a ready-made [`Queue`], and the `conveyor`
//! binary as a process (its roles started, stopped and their results read back).

use conveyor::bench::run::{Interrupt, RunOptions};
use conveyor::bench::scenario::Scenario;
use conveyor::clock::{ManualClock, SharedClock};
use conveyor::connection::Redis;
use conveyor::queue::{Queue, QueueOptions};
use conveyor::testkit::redis_server::{RedisServer, ServerOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// The redis-server all tests of this binary share; it lives until the process exits.
pub fn shared_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        // A static is never dropped: the server is started by a thread that lives as long as
        // the test process, and dies with it (even on SIGKILL) instead of outliving `cargo test`.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(RedisServer::start(ServerOptions { die_with_thread: true, ..ServerOptions::default() }));
            loop {
                std::thread::park();
            }
        });
        match rx.recv().expect("the server thread answers") {
            Ok(s) => s,
            // Never skip: a missing redis-server is a failed run with instructions.
            Err(e) => panic!("tests need a real redis-server: {e}"),
        }
    })
}

/// A server of the test's own, for tests that kill or restart it.
pub fn own_server(args: &[&str]) -> RedisServer {
    RedisServer::start(ServerOptions { args: args.iter().map(|s| s.to_string()).collect(), ..ServerOptions::default() })
        .unwrap_or_else(|e| panic!("tests need a real redis-server: {e}"))
}

/// A queue name no other test uses.
pub fn unique_name(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

pub async fn redis() -> Redis {
    Redis::connect(&shared_server().url()).await.expect("connect to the shared test redis-server")
}

/// Waits until `queue`'s depth satisfies `done`, and answers it; a generous bound (60 s) only
/// stops a hung test, whose assertion on the depth then fails.
pub async fn depth_until(queue: &Queue, done: impl Fn(&conveyor::queue::Depth) -> bool) -> conveyor::queue::Depth {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let d = queue.depth().await.unwrap();
        if done(&d) || std::time::Instant::now() > deadline {
            return d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A worker pool of two workers (four jobs at a time each) on `queue`, claiming with a short
/// block so a test's stop is quick.
pub async fn pool(queue: &Queue, registry: conveyor::Registry) -> conveyor::WorkerPool {
    conveyor::WorkerPool::builder(queue.clone(), registry)
        .workers(2)
        .concurrency(4)
        .block(std::time::Duration::from_millis(20))
        .start()
        .await
        .expect("start the pool")
}

/// A fresh queue on the shared server, with its consumer group created.
pub async fn queue(test: &str, options: QueueOptions) -> Queue {
    queue_with_clock(test, options, conveyor::clock::system()).await
}

pub async fn queue_with_clock(test: &str, options: QueueOptions, clock: SharedClock) -> Queue {
    let q = Queue::new(redis().await, &unique_name(test), options, clock);
    q.ensure_group().await.expect("create consumer group");
    q
}

/// A manual clock set to now.
pub fn manual_clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::at(conveyor::clock::now_us());
    (c.clone(), Arc::new(c))
}

/// A scenario from `text` (sections and fields), with a unique name starting with `test` so
/// its queue is the test's own.
pub fn scenario(test: &str, text: &str) -> Scenario {
    let name = unique_name(test);
    let text = format!("name = \"{name}\"\ndescription = \"test\"\n{text}");
    Scenario::parse(&text, std::path::Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Options for a run with every role in the test process and no progress output.
pub fn run_options() -> RunOptions {
    RunOptions {
        local_workers: true,
        instance: unique_name("inst"),
        progress: false,
        private_server: false,
        ceiling: false,
        registry: std::sync::Arc::new(conveyor::bench::jobs::registry()),
    }
}

/// An interrupt that never comes.
pub fn never() -> Interrupt {
    Box::pin(std::future::pending())
}

/// A small benchmark noop job (run 1) with sequence number `seq` (its enqueue time derived
/// from it, 8-byte payload).
pub fn job(seq: u64) -> conveyor::queue::Envelope {
    conveyor::bench::load::BenchStamp { run: 1, warmup: false }.job("bench.noop", vec![seq as u8; 8], seq, 1_000 + seq)
}

/// The `conveyor` binary under test.
pub fn conveyor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_conveyor"))
}

/// Writes the scenario file `dir/<file>`: described as `test`, a queue of its own (named after
/// `test`), then `text`, which may go on with more `[queue]` fields. Returns its path and the
/// queue name.
pub fn scenario_file(dir: &Path, file: &str, test: &str, text: &str) -> (PathBuf, String) {
    let path = dir.join(file);
    let queue = unique_name(test);
    let text = format!("# {test} test\ndescription = \"{test}\"\n[queue]\nname = \"{queue}\"\n{text}");
    std::fs::write(&path, text).unwrap();
    (path, queue)
}

/// `conveyor run --quiet` of `scenario` on the shared server, `extra` options after `--quiet`,
/// results below `results`; waits for it to end.
pub fn cli_run(extra: &[&str], results: &Path, scenario: &Path) -> Output {
    conveyor()
        .args(["run", "--quiet"])
        .args(extra)
        .args(["--redis-url", &shared_server().url(), "--results"])
        .arg(results)
        .arg(scenario)
        .output()
        .unwrap()
}

/// A `conveyor worker` process of `scenario` on `url`, `extra` options before the URL, its stdout
/// discarded; the caller sets its log level and stderr, then spawns it.
pub fn worker(url: &str, scenario: &Path, extra: &[&str]) -> Command {
    let mut cmd = conveyor();
    cmd.arg("worker").args(extra).args(["--redis-url", url]).arg(scenario).stdout(Stdio::null());
    cmd
}

/// A `conveyor worker` process started by [`start_worker`]: its log is collected as it runs.
pub struct WorkerProcess {
    pub child: Child,
    log: Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// How long a worker process may take to start its workers: it only bounds a hang (a debug
/// binary on two busy cores starts in well under a second).
const WORKER_START_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Spawns `cmd` (from [`worker`]) at log level info and returns once its log says its workers
/// run, so a test never races a process that has not started yet (a SIGTERM before the process
/// handles it kills it; a run may end before a slow process claims anything).
pub fn start_worker(mut cmd: Command) -> WorkerProcess {
    let mut child =
        cmd.env("RUST_LOG", "conveyor=info,warn").stderr(Stdio::piped()).spawn().expect("spawn conveyor worker");
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("workers running") {
                let _ = ready_tx.send(());
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let mut worker = WorkerProcess { child, log, reader: Some(reader) };
    if ready_rx.recv_timeout(WORKER_START_LIMIT).is_err() {
        let _ = worker.child.kill();
        let status = worker.child.wait();
        panic!("conveyor worker did not start its workers ({status:?}):\n{}", worker.log());
    }
    worker
}

impl WorkerProcess {
    /// What the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops the process with SIGTERM; its exit status and whole log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.wait()
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.wait();
    }

    fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait for conveyor worker");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.log())
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `conveyor produce --quiet --json` process of `scenario` on `url`, `extra` options before the
/// URL, results below `results`, stdout and stderr piped (read them with [`json_output`]).
pub fn producer(url: &str, results: &Path, scenario: &Path, extra: &[&str]) -> Command {
    let mut cmd = conveyor();
    cmd.args(["produce", "--quiet", "--json"])
        .args(extra)
        .args(["--redis-url", url, "--results"])
        .arg(results)
        .arg(scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The JSON a `--json` run printed, after asserting that it exited 0 (stdout and stderr shown
/// when it did not).
pub fn json_output(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap()
}

/// The first entry of `results`: the directory of the one run written there.
pub fn result_dir(results: &Path) -> PathBuf {
    std::fs::read_dir(results).unwrap().next().unwrap().unwrap().path()
}

/// A JSON file, parsed.
pub fn read_json(file: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}
