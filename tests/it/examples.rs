//! The examples run as the README says: `worker` in a process of its own, `producer` enqueueing a
//! file to hash and URLs to fetch from a local HTTP server (one of which never answers in time),
//! and the worker's output and the dead letters checked.

use crate::support;
use conveyor::queue::QueueOptions;
use conveyor::{Queue, clock};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An example binary, built by `cargo test` beside the test binary.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir: PathBuf = exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples");
    let path = dir.join(name);
    assert!(path.exists(), "cargo test builds the examples: {} is missing", path.display());
    Command::new(path)
}

/// A local HTTP server: `/ok` answers at once, `/slow` only after 10 s (past the job's timeout).
fn http_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap_or(0);
                if String::from_utf8_lossy(&request[..n]).starts_with("GET /slow") {
                    std::thread::sleep(Duration::from_secs(10));
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
            });
        }
    });
    format!("http://{addr}")
}

/// Kills the worker if the test fails before it stops it.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn the_example_worker_hashes_files_and_fetches_urls_with_a_timeout() {
    let queue_name = support::unique_name("examples");
    let redis_url = support::shared_server().url();
    let env = [("CONVEYOR_REDIS_URL", redis_url.as_str()), ("CONVEYOR_QUEUE", queue_name.as_str())];
    let mut worker = Worker(example("worker").envs(env).stdout(Stdio::piped()).spawn().expect("the worker starts"));
    let (lines_tx, lines) = mpsc::channel();
    let stdout = worker.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |what: &str, pred: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("the worker never printed {what}"),
            }
        }
    };
    wait_for("that it is ready", &|l| l.starts_with("worker ready"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, b"conveyor example\n").unwrap();
    let produce = |args: &[&str]| -> Vec<String> {
        let out = example("producer").envs(env).args(args).output().expect("the producer runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "producer {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout.lines().filter_map(|l| l.strip_prefix("enqueued ").map(str::to_owned)).collect()
    };
    let hashed = produce(&["hash", file.to_str().unwrap()]);
    let server = http_server();
    let fetched = produce(&["fetch", &format!("{server}/ok"), &format!("{server}/slow")]);
    assert_eq!((hashed.len(), fetched.len()), (1, 2), "one id per job");

    let digest: String = Sha256::digest(b"conveyor example\n").iter().map(|b| format!("{b:02x}")).collect();
    let line = wait_for("the hash", &|l| l.contains(" hashed "));
    assert_eq!(line, format!("job {} hashed {} sha256={digest}", hashed[0], file.display()));
    let line = wait_for("the fetch", &|l| l.contains(" fetched "));
    assert_eq!(line, format!("job {} fetched {server}/ok status=200 bytes=5", fetched[0]));

    // `/slow` outlives the job's timeout on both attempts: a dead letter that says so.
    let queue = Queue::new(support::redis().await, &queue_name, QueueOptions::default(), clock::system());
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead = loop {
        let dead = queue.dead_letters(10).await.unwrap();
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].job.as_ref().unwrap().id.as_deref(), Some(fetched[1].as_str()));
    assert!(
        dead[0].reason.contains("failed 2 times") && dead[0].reason.contains("timed out after 2s"),
        "{}",
        dead[0].reason
    );

    // SIGTERM: it stops by itself.
    let _ = Command::new("kill").arg("-TERM").arg(worker.0.id().to_string()).status();
    wait_for("that it stopped", &|l| l == "worker stopped");
    let status = worker.0.wait().unwrap();
    assert!(status.success(), "the worker exits 0 on SIGTERM: {status}");
}

#[test]
fn an_application_load_tests_its_own_handler_with_a_scenario_through_the_embedded_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = example("myapp")
        .current_dir(root)
        .env("EXAMPLE_QUIET", "1")
        .args(["run", "examples/hash-load.toml", "--duration", "2s", "--quiet", "--json", "--metrics-addr", "off"])
        .args(["--redis-url", &support::shared_server().url(), "--results"])
        .arg(dir.path())
        .output()
        .expect("myapp runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "myapp run: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let run = if result["counts"].is_object() { &result } else { &result["cells"][0]["runs"][0] };
    let counts = &run["counts"];
    assert!(counts["completed"].as_u64().unwrap() >= 4_000, "2,000 jobs/s for 2 s (and the warm-up): {counts}");
    assert_eq!(
        (counts["lost"].as_u64(), counts["dead"].as_u64(), counts["duplicates"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "{counts}"
    );
    assert!(
        run["latency_us"]["start_to_complete"]["count"].as_u64().unwrap() > 0,
        "the handler's own time is measured"
    );

    // The plain conveyor binary has no handler for file.hash: a clear error before anything runs.
    let out = support::conveyor()
        .current_dir(root)
        .args([
            "run",
            "examples/hash-load.toml",
            "--quiet",
            "--metrics-addr",
            "off",
            "--redis-url",
            &support::shared_server().url(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("examples/hash-load.toml")
            && stderr.contains("jobs[0].type")
            && stderr.contains("no handler is registered for job type \"file.hash\""),
        "{stderr}"
    );
}
