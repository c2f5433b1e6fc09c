//! Faults injected into real processes the test controls: every client connection killed, Redis
//! paused for longer than a lease, Redis restarted (with the time to resume measured), a worker
//! process stopped with SIGTERM under load, Redis unreachable at start, and `conveyor run`
//! SIGKILLed (its private redis-server must die with it). Each run ends with the audit:
//! nothing lost, duplicates counted. Timings are printed (`cargo test faults --
//! --nocapture`), never asserted.

use crate::support::{self, conveyor};
use conveyor::bench::report::RunResult;
use conveyor::bench::run;
use conveyor::bench::scenario::Scenario;
use conveyor::connection::Redis;
use conveyor::queue::QueueKeys;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn scenario(text: &str) -> Scenario {
    support::scenario("fault", text)
}

async fn run_on(url: &str, s: &Scenario) -> RunResult {
    let redis = Redis::connect(url).await.unwrap();
    run::run_scenario(s, &redis, &support::run_options(), support::never())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"))
}

/// Nothing lost: every produced job finished and nothing is left in Redis.
fn assert_nothing_lost(r: &RunResult) {
    let c = &r.counts;
    assert_eq!(c.lost, 0, "lost jobs: {c:?}");
    assert_eq!(c.finished, c.produced, "{c:?}");
    assert_eq!(r.remaining.unfinished(), 0, "{:?}", r.remaining);
}

/// Every second run shows up as a duplicate: each settle a worker saw succeed is a completion
/// or a death, and the audit bitmap holds each distinct job once. (When a connection drops after
/// Redis applied a settle but before its reply arrived, the worker settles again: the audit then
/// counts a duplicate the worker's counts lack, so this holds only where no reply is lost.)
fn assert_duplicates_counted(r: &RunResult) {
    let c = &r.counts;
    assert_eq!(c.completed + c.dead, c.finished + c.duplicates, "duplicates hidden: {c:?}");
}

/// A synchronous connection for the test's own commands (it must not share the runtime's).
fn sync_conn(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection_with_timeout(Duration::from_secs(2)).unwrap()
}

#[actix_rt::test]
async fn killing_every_client_connection_mid_run_is_recovered_from() {
    let server = support::own_server(&[]);
    let url = server.url();
    let s = scenario(
        "[queue]\nlease = \"2s\"\n[producer]\nrate = 2000\nduration = \"3s\"\n[workers]\ncount = 3\n\
         [[jobs]]\nkind = \"sleep\"\nduration = \"1ms\"\n[phases]\ndrain_timeout = \"30s\"\n",
    );
    let killer_url = url.clone();
    let done = Arc::new(AtomicBool::new(false));
    let killer_done = done.clone();
    // Kill every normal client three times while producing, then keep killing every 300 ms
    // until the run ends, so the drain and the final reads meet dead connections too.
    let killer = std::thread::spawn(move || {
        let mut killed = 0u64;
        let mut rounds = 0;
        std::thread::sleep(Duration::from_millis(700));
        while !killer_done.load(Ordering::SeqCst) && rounds < 20 {
            let mut c = sync_conn(&killer_url);
            let n: u64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").query(&mut c).unwrap();
            killed += n;
            rounds += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
        (killed, rounds)
    });
    let started = Instant::now();
    let r = run_on(&url, &s).await;
    done.store(true, Ordering::SeqCst);
    let (killed, rounds) = killer.join().unwrap();
    eprintln!(
        "CLIENT KILL: {rounds} rounds killed {killed} connections; run took {:.1}s; produced {} duplicates {} \
         enqueue errors {}",
        started.elapsed().as_secs_f64(),
        r.counts.produced,
        r.counts.duplicates,
        r.counts.enqueue_errors
    );
    assert!(killed >= 3, "the test killed no connections");
    assert_nothing_lost(&r);
    assert!(r.counts.produced >= 5000, "producers did not carry on: {:?}", r.counts);
}

/// Redis stopped (SIGSTOP) for three leases, then resumed: replies arrive late, leases expire
/// while workers still hold their jobs, and those jobs run twice. Nothing is lost and every
/// second run is counted as a duplicate.
#[actix_rt::test]
async fn redis_paused_longer_than_a_lease_loses_nothing_and_counts_duplicates() {
    let server = support::own_server(&[]);
    let url = server.url();
    let pid = server.pid().expect("server running").to_string();
    let s = scenario(
        "[queue]\nlease = \"1s\"\n[producer]\nrate = 1000\nduration = \"3s\"\n[workers]\ncount = 2\nconcurrency = 10\nbatch = 20\n\
         [[jobs]]\nkind = \"sleep\"\nduration = \"5ms\"\n[phases]\ndrain_timeout = \"30s\"\n",
    );
    let pauser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        let stop = Command::new("kill").args(["-STOP", &pid]).status().unwrap();
        std::thread::sleep(Duration::from_millis(3000));
        let cont = Command::new("kill").args(["-CONT", &pid]).status().unwrap();
        assert!(stop.success() && cont.success());
    });
    let r = run_on(&url, &s).await;
    pauser.join().unwrap();
    eprintln!(
        "SIGSTOP 3s (lease 1s): produced {} finished {} duplicates {} lost {} end-to-end max {:.0}ms",
        r.counts.produced,
        r.counts.finished,
        r.counts.duplicates,
        r.counts.lost,
        r.latency_us.end_to_end.max as f64 / 1000.0
    );
    assert_nothing_lost(&r);
    assert_duplicates_counted(&r);
    assert!(r.counts.produced >= 2500, "{:?}", r.counts);
    drop(server);
}

/// Redis killed (SIGKILL) and restarted on the same port mid-run, with an append-only file
/// fsynced on every write. Prints how long after Redis came back the first job finished.
#[actix_rt::test]
async fn time_to_resume_after_a_redis_restart_is_measured() {
    restart_mid_run("always").await;
}

/// The same with `appendfsync everysec`: when only the process dies (not the machine), every
/// acknowledged write had reached the operating system, so nothing is lost either (the README's
/// table of what each setting can lose).
#[actix_rt::test]
async fn a_redis_process_killed_with_appendfsync_everysec_loses_nothing() {
    restart_mid_run("everysec").await;
}

async fn restart_mid_run(fsync: &str) {
    let server = support::own_server(&["--appendonly", "yes", "--appendfsync", fsync]);
    let url = server.url();
    let s = scenario(
        "[queue]\nlease = \"2s\"\n[producer]\nrate = 1000\nduration = \"3s\"\n[workers]\ncount = 2\n\
         [phases]\ndrain_timeout = \"60s\"\n",
    );
    let audit = QueueKeys::new(&s.queue.prefix, &s.queue_name()).audit_done();
    let watcher_url = url.clone();
    let run_over = Arc::new(AtomicBool::new(false));
    let watcher_run_over = run_over.clone();
    // The watcher only measures: whether the run recovered is for the audit below to say. It
    // counts finished jobs just before the kill (every one of them survives the restart), so
    // however late it gets to look after the restart, any job finished since shows; and it
    // stops looking when the run is over.
    let restarter = std::thread::spawn(move || {
        let mut server = server;
        std::thread::sleep(Duration::from_millis(1200));
        let bitcount = |conn: &mut redis::Connection| redis::cmd("BITCOUNT").arg(&audit).query::<u64>(conn).ok();
        let before_kill = bitcount(&mut sync_conn(&watcher_url)).unwrap_or(0);
        let killed_at = Instant::now();
        server.kill();
        server.restart().expect("restart redis-server");
        let up_at = Instant::now();
        let mut conn = None;
        let resumed_at = loop {
            if conn.is_none() {
                conn = redis::Client::open(watcher_url.as_str())
                    .unwrap()
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .ok();
            }
            match conn.as_mut().map(bitcount) {
                Some(Some(now)) if now > before_kill => break Some(Instant::now()),
                Some(None) => conn = None,
                _ => {}
            }
            if watcher_run_over.load(Ordering::SeqCst) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        (server, up_at - killed_at, resumed_at.map(|at| at - up_at))
    });
    let r = run_on(&url, &s).await;
    run_over.store(true, Ordering::SeqCst);
    let (_server, down, resume) = restarter.join().unwrap();
    eprintln!(
        "REDIS RESTART (appendfsync {fsync}): down {:.0}ms (kill + start + load AOF); first job finished {} \
         after Redis was back; produced {} duplicates {} enqueue errors {}",
        down.as_secs_f64() * 1000.0,
        resume.map_or("(not seen before the run ended)".to_owned(), |d| format!("{:.0}ms", d.as_secs_f64() * 1000.0)),
        r.counts.produced,
        r.counts.duplicates,
        r.counts.enqueue_errors
    );
    assert_nothing_lost(&r);
    // An open loop sends its whole plan (3 s at 1,000 jobs/s), Redis restart or not.
    assert!(r.counts.produced >= 3000, "{:?}", r.counts);
}

/// SIGTERM to one of two worker processes under load: it finishes and settles the jobs it holds
/// and exits 0. The lease is longer than the run may take, so any job it had dropped would show
/// as unfinished or lost: none does, and none runs twice.
#[test]
fn sigterm_to_a_worker_process_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let text = "lease = \"60s\"\n[producer]\nrate = 1500\nduration = \"3s\"\n\
                [workers]\ncount = 2\nconcurrency = 4\nbatch = 20\n\
                [[jobs]]\nkind = \"sleep\"\nduration = \"5ms\"\n[phases]\ndrain_timeout = \"50s\"\n";
    let (scenario, _) = support::scenario_file(dir.path(), "term.toml", "term", text);
    let url = support::shared_server().url();
    // Both are running (and handle SIGTERM) before the producer starts.
    let victim = support::start_worker(support::worker(&url, &scenario, &["--metrics-addr", "off"]));
    let survivor = support::start_worker(support::worker(&url, &scenario, &["--metrics-addr", "off"]));
    let producer = support::producer(&url, &dir.path().join("results"), &scenario, &[]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let term_at = Instant::now();
    let (status, victim_log) = victim.terminate();
    let stop_took = term_at.elapsed();
    assert!(status.success(), "worker exit {status:?}: {victim_log}");
    assert!(victim_log.contains("workers stopped"), "{victim_log}");
    let out = producer.wait_with_output().unwrap();
    survivor.terminate();
    let json = support::json_output(&out);
    let counts = &json["cells"][0]["runs"][0]["counts"];
    eprintln!("SIGTERM: worker stopped {:.0}ms after the signal; counts {counts}", stop_took.as_secs_f64() * 1000.0);
    assert_eq!(counts["lost"], 0, "{counts}");
    assert_eq!(counts["unfinished"], 0, "{counts}");
    assert_eq!(counts["finished"], counts["produced"], "{counts}");
    assert_eq!(counts["duplicates"], 0, "a graceful stop must not make jobs run twice: {counts}");
    assert!(counts["produced"].as_u64().unwrap() >= 4500, "an open loop sends its whole plan: {counts}");
}

/// Redis unreachable at start: every role exits 2 with a clear error within a bounded time,
/// whether nothing listens on the port or something accepts connections and never answers.
#[test]
fn every_role_reports_unreachable_redis_within_a_bounded_time() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // accepts, never answers
    let silent_url = format!("redis://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quick.toml");
    let dir = tempfile::tempdir().unwrap();
    for url in ["redis://127.0.0.1:1", silent_url.as_str()] {
        for role in ["run", "produce", "worker"] {
            let started = Instant::now();
            let mut cmd = conveyor();
            cmd.args([role, "--redis-url", url, scenario]);
            if role != "worker" {
                cmd.arg("--quiet").arg("--results").arg(dir.path().join("results"));
            }
            let out = cmd.output().unwrap();
            let took = started.elapsed();
            let stderr = String::from_utf8_lossy(&out.stderr);
            eprintln!("UNREACHABLE {url} {role}: exit {:?} after {:.0}ms", out.status.code(), took.as_secs_f64() * 1e3);
            assert_eq!(out.status.code(), Some(2), "{role} {url}: {stderr}");
            // Only bounds a hang: the connect timeout is 3 s.
            assert!(took < Duration::from_secs(60), "{role} {url} took {took:?}");
            assert!(stderr.contains("unreachable") && stderr.contains(url), "{role} {url}: {stderr}");
        }
    }
    assert!(!dir.path().join("results").exists());
    drop(silent);
}

/// The shipped `chaos` scenario through the CLI, on its private redis-server: a worker process
/// killed and Redis restarted mid-run, nothing lost, and the recovery times reported.
#[test]
fn the_chaos_scenario_recovers_and_reports_its_recovery_times() {
    let dir = tempfile::tempdir().unwrap();
    let out = conveyor()
        .args(["run", concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/chaos.toml")])
        .args(["--quiet", "--json", "--metrics-addr", "off", "--results"])
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let json = support::json_output(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let counts = &json["cells"][0]["runs"][0]["counts"];
    assert_eq!(json["lost"], 0, "{counts}");
    assert_eq!(counts["finished"], counts["produced"], "{counts}");
    let chaos = support::read_json(&support::result_dir(dir.path()).join("chaos.json"));
    eprintln!("CHAOS: {chaos}; counts {counts}");
    assert_eq!(chaos["problems"], serde_json::json!([]), "{chaos}");
    for field in ["worker_killed_at_seconds", "reclaimed_after_seconds", "redis_down_seconds", "resumed_after_seconds"]
    {
        assert!(chaos[field].is_number(), "{field} missing: {chaos}");
    }
    assert!(stderr.contains("chaos ") && stderr.contains("reclaimed after"), "{stderr}");
}

/// `conveyor run` killed with SIGKILL (no chance to clean up) takes its private redis-server
/// with it instead of leaving it running on a random port.
#[test]
fn a_private_redis_server_dies_with_a_killed_conveyor_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = conveyor()
        .args(["run", "--quiet", "--metrics-addr", "off", "--duration", "60s", "--results"])
        .arg(dir.path())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/soak.toml"))
        .env_remove("CONVEYOR_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Deadlines here only bound a hang.
    let deadline = Instant::now() + Duration::from_secs(60);
    let server = loop {
        if let Some(pid) = children_named(run.id(), "redis-server").first() {
            break *pid;
        }
        assert!(Instant::now() < deadline, "conveyor run started no redis-server");
        std::thread::sleep(Duration::from_millis(20));
    };
    run.kill().unwrap();
    run.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(server) {
        assert!(Instant::now() < deadline, "redis-server {server} outlived the conveyor run that started it");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Process ids of `parent`'s children whose command is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            found.extend(entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()));
        }
    }
    found
}

/// Whether `pid` is running (a zombie waiting to be reaped counts as dead).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned)))
        .is_some_and(|state| state != "Z" && state != "X")
}
