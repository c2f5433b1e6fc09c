//! Security against private redis-servers configured for it: a password (`requirepass`), an ACL
//! user with exactly the permissions the README documents, and TLS with a CA and certificates
//! the test generates (openssl CLI), including client certificates. Passwords never appear in
//! output, logs, errors, result files or metrics.

use crate::support;
use conveyor::connection::{Redis, TlsFiles};
use conveyor::queue::{Enqueued, JobsIn, Outcome, QueueOptions};
use conveyor::runtime::acl;
use conveyor::runtime::eviction;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-Pa55word";

/// `conveyor <role> --metrics-addr off`, logging at debug level: a password in any log line
/// would show.
fn role(name: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conveyor"));
    cmd.env("RUST_LOG", "debug").arg(name).arg("--metrics-addr").arg("off");
    cmd
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A small scenario on its own queue, with retries so every command path runs.
fn scenario_file(dir: &Path, tag: &str) -> PathBuf {
    let path = dir.join(format!("{tag}.toml"));
    let queue = support::unique_name(tag);
    std::fs::write(
        &path,
        format!(
            "# security test\ndescription = \"security\"\n[queue]\nname = \"{queue}\"\nmax_attempts = 2\n\
             backoff_base = \"5ms\"\nbackoff_max = \"10ms\"\n[producer]\njobs = 600\n[workers]\ncount = 2\n\
             [[jobs]]\nkind = \"noop\"\n[[jobs]]\nkind = \"fail\"\nprobability = 0.3\n"
        ),
    )
    .unwrap();
    path
}

/// Every file under `dir`, as text.
fn files_text(dir: &Path) -> String {
    let mut all = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return all };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            all.push_str(&files_text(&p));
        } else {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    all
}

fn assert_no_password(what: &str, text: &str) {
    assert!(!text.contains(PASSWORD), "{what} shows the password:\n{text}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET /metrics` from a conveyor process.
fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn a_password_protected_redis_works_and_the_password_never_shows() {
    let server = support::own_server(&["--requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port());
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");

    // A whole run: summary, logs and every result file.
    let out = role("run")
        .args(["--redis-url", &url, "--results"])
        .arg(&results)
        .arg(scenario_file(dir.path(), "auth"))
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("lost 0"), "{all}");
    assert_no_password("conveyor run", &all);
    let written = files_text(&results);
    assert!(written.contains(":***@127.0.0.1"), "the result should name the redacted URL");
    assert_no_password("the result files", &written);

    // A worker process serving metrics while producers run: logs and every metric label.
    let metrics_port = free_port();
    let scenario = scenario_file(dir.path(), "auth-remote");
    let worker = Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .env("RUST_LOG", "debug")
        .args(["worker", "--redis-url", &url, "--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = role("produce")
        .args(["--quiet", "--redis-url", &url, "--results"])
        .arg(&results)
        .arg(&scenario)
        .output()
        .unwrap();
    let produce_all = text(&out);
    let metrics = scrape(metrics_port).unwrap_or_default();
    let _ = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status();
    let worker_out = worker.wait_with_output().unwrap();
    assert!(out.status.success(), "{produce_all}");
    assert!(metrics.contains("conveyor_"), "no metrics scraped from the worker: {metrics}");
    assert_no_password("conveyor produce", &produce_all);
    assert_no_password("conveyor worker", &text(&worker_out));
    assert_no_password("/metrics", &metrics);
    assert_no_password("the result files", &files_text(&results));

    // A wrong password: a clear error, exit 2, and neither password in it.
    let wrong = format!("redis://:not-{PASSWORD}@127.0.0.1:{}", server.port());
    let out = role("run").args(["--quiet", "--redis-url", &wrong]).arg(&scenario).output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.to_lowercase().contains("authentication failed"), "{all}");
    assert_no_password("a failed login", &all);
    // No password at all.
    let out = role("run").args(["--quiet", "--redis-url", &server.url()]).arg(&scenario).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("NOAUTH") || text(&out).contains("Authentication required"), "{}", text(&out));
}

/// `redis-server --user default off --user conveyor on >pw <the documented rule>`.
fn acl_server() -> conveyor::testkit::redis_server::RedisServer {
    let rule = acl::rule("conveyor");
    let mut args = vec!["--user", "default", "off", "--user", "conveyor", "on"];
    let password = format!(">{PASSWORD}");
    args.push(&password);
    args.extend(rule.split(' '));
    support::own_server(&args)
}

fn job(seq: u64) -> conveyor::queue::Envelope {
    support::job(seq)
}

#[actix_rt::test]
async fn an_acl_user_with_exactly_the_documented_permissions_runs_everything() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains(&acl::rule("conveyor")), "README must document the rule acl::rule(\"conveyor\") gives");
    let server = acl_server();
    let url = format!("redis://conveyor:{PASSWORD}@127.0.0.1:{}", server.port());
    let redis = Redis::connect(&url).await.unwrap();

    // The user may do nothing else: no CONFIG, no FLUSHALL, no key outside the prefix.
    for cmd in [
        redis::cmd("CONFIG").arg("GET").arg("save").clone(),
        redis::cmd("FLUSHALL").clone(),
        redis::cmd("SET").arg("elsewhere").arg(1).clone(),
    ] {
        let r: Result<redis::Value, _> = redis.with_conn(async |c| cmd.query_async(c).await).await;
        assert!(r.as_ref().is_err_and(|e| e.to_string().contains("no permissions")), "{r:?}");
    }
    // The eviction check reads the policy from INFO instead of CONFIG.
    assert_eq!(eviction::check(&redis, false).await.unwrap(), eviction::Eviction::Safe);

    // Queue paths a benchmark run may not reach: idempotency keys, delayed jobs, reclaim.
    let options = QueueOptions { lease: Duration::from_millis(50), ..QueueOptions::default() };
    let queue =
        conveyor::queue::Queue::new(redis.clone(), &support::unique_name("acl"), options, conveyor::clock::system());
    queue.ensure_group().await.unwrap();
    assert!(matches!(queue.enqueue_unique(&job(0), "k", Duration::from_secs(60)).await.unwrap(), Enqueued::Added(_)));
    queue.schedule(&job(1), 0).await.unwrap();
    assert_eq!(queue.promote_due(10).await.unwrap(), 1);
    let mut conn = redis.blocking_connection().await.unwrap();
    let claimed = queue.claim(&mut conn, "w", 10, Duration::from_millis(10)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(queue.reclaim("0-0", 10).await.unwrap().moved, 2);
    let claimed = queue.claim(&mut conn, "w", 10, Duration::from_millis(10)).await.unwrap();
    let batch: Vec<_> = claimed.into_iter().map(|c| (c, Outcome::Failed("x".into()))).collect();
    assert_eq!(queue.settle(&batch).await.unwrap().retried, 2);
    assert_eq!(queue.trim().await.unwrap(), 4, "the two reclaimed and the two settled entries");
    queue.renew("w", &[]).await.unwrap();
    queue.depth().await.unwrap();
    queue.dead_letters(10).await.unwrap();
    queue.oldest_waiting_age().await.unwrap();
    // Tracked jobs, cancellation, events, audited batches and the operator's commands.
    let client = conveyor::Client::new(queue.clone());
    let tracked = client.enqueue_raw("x", b"{}".to_vec(), conveyor::Enqueue::new().track()).await.unwrap().into_id();
    let own = client.enqueue_raw("x", b"{}".to_vec(), conveyor::Enqueue::new().id("own")).await.unwrap().into_id();
    assert!(matches!(client.status(tracked.as_str()).await.unwrap(), conveyor::queue::Status::Found(_)));
    client.cancel(own.as_str()).await.unwrap();
    queue.cancelled_since(0).await.unwrap();
    queue.trim_cancelled().await.unwrap();
    let claimed = queue.claim(&mut conn, "w", 10, Duration::from_millis(10)).await.unwrap();
    let marks: Vec<_> = claimed.iter().map(|c| (c.partition, c.job_id(), 0u16)).collect();
    let marks: Vec<_> = marks.iter().map(|(p, id, a)| (*p, id, *a)).collect();
    queue.mark_active("w", &marks).await.unwrap();
    let batch: Vec<_> = claimed.into_iter().map(|c| (c, Outcome::Dead("x".into()))).collect();
    queue.settle(&batch).await.unwrap();
    let mut events = client.events().from_oldest();
    assert!(!events.next(Duration::from_millis(10)).await.unwrap().is_empty());
    let batch = client.audited_batch("b");
    batch.enqueue(&[conveyor::bench::jobs::Noop]).await.unwrap();
    batch.report(10).await.unwrap();
    batch.forget().await.unwrap();
    let admin = conveyor::Admin::new(redis.clone(), "conveyor");
    admin.queues().await.unwrap();
    for state in [JobsIn::Waiting, JobsIn::Active, JobsIn::Delayed, JobsIn::Retrying, JobsIn::Dead] {
        admin.jobs(queue.name(), state, 10, None).await.unwrap();
    }
    admin.job(Some(queue.name()), tracked.as_str()).await.unwrap();
    admin.retry_dead(queue.name(), &conveyor::queue::Pick::All).await.unwrap();
    admin.delete_dead(queue.name(), &conveyor::queue::Pick::All).await.unwrap();
    for state in [JobsIn::Waiting, JobsIn::Delayed, JobsIn::Retrying, JobsIn::Dead] {
        admin.purge(queue.name(), state).await.unwrap();
    }
    admin.pause(queue.name()).await.unwrap();
    admin.resume(queue.name()).await.unwrap();
    let record = conveyor::queue::WorkerRecord {
        instance: "i".into(),
        host: "h".into(),
        pid: 1,
        queue: queue.name().into(),
        workers: 1,
        concurrency: 1,
        busy: 0,
        started_ms: 0,
        seen_ms: conveyor::clock::now_us() / 1000,
        version: "v".into(),
    };
    queue.heartbeat(&record).await.unwrap();
    assert_eq!(admin.workers(Some(queue.name())).await.unwrap().len(), 1);
    queue.forget_worker("i").await.unwrap();
    queue.rates().await.unwrap();
    // Priorities and a rate limit: the claim script (TIME, the bucket, a new stream's group),
    // the settings poll, every priority's maintenance.
    client
        .enqueue_raw("x", b"{}".to_vec(), conveyor::Enqueue::new().priority(conveyor::queue::Priority::High))
        .await
        .unwrap();
    queue.set_limit(conveyor::queue::Limit::new(1000.0, Some(10)).unwrap()).await.unwrap();
    let settings = queue.settings().await.unwrap();
    assert!(settings.lanes && settings.limit.is_some(), "{settings:?}");
    let plan =
        conveyor::queue::ClaimPlan { service: conveyor::queue::Service::Strict, limit: settings.limit, lanes: true };
    let claimed = queue.claim_planned(&mut conn, "w", 10, Duration::from_millis(10), &plan).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let batch: Vec<_> = claimed.into_iter().map(|c| (c, Outcome::Completed)).collect();
    queue.settle(&batch).await.unwrap();
    queue.trim().await.unwrap();
    queue.reclaim("0-0", 10).await.unwrap();
    queue.promote_due(10).await.unwrap();
    queue.depth_by_priority().await.unwrap();
    assert!(admin.clear_limit(queue.name()).await.unwrap());
    // A cron scheduler: its entry, its missed firings, its latest firing, and forgetting it.
    queue.cron_fired("yearly", 1_577_836_800_000).await.unwrap();
    let entry = conveyor::cron::Periodic::raw("yearly", "0 0 0 1 1 * 2020-2021", "t", b"{}".to_vec())
        .unwrap()
        .missed(conveyor::cron::Missed::Latest);
    conveyor::cron::Cron::new(conveyor::Client::new(queue.clone()))
        .entry(entry)
        .start()
        .await
        .unwrap()
        .shutdown()
        .await;
    assert_eq!(admin.crons(queue.name()).await.unwrap()[0].last_fired_ms, Some(1_609_459_200_000));
    admin.remove_cron(queue.name(), "yearly").await.unwrap();
    queue.reset().await.unwrap();

    // The CLI roles, as this user: a whole run, and producers with a worker process.
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let out = role("run")
        .args(["--quiet", "--redis-url", &url, "--results"])
        .arg(&results)
        .arg(scenario_file(dir.path(), "acl-run"))
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("no permissions"), "{all}");
    let scenario = scenario_file(dir.path(), "acl-remote");
    let worker = role("worker")
        .args(["--redis-url", &url])
        .arg(&scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = role("produce")
        .args(["--quiet", "--json", "--redis-url", &url, "--results"])
        .arg(&results)
        .arg(&scenario)
        .output()
        .unwrap();
    let _ = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status();
    let worker_out = worker.wait_with_output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &json["cells"][0]["runs"][0];
    assert_eq!(run["counts"]["lost"], 0, "{all}");
    assert!(
        run["setup"]["remote_worker_processes"].as_u64().unwrap() >= 1,
        "the worker could not publish its statistics: {all}"
    );
    assert!(!text(&worker_out).contains("no permissions"), "{}", text(&worker_out));
    assert!(worker_out.status.success(), "{}", text(&worker_out));
    assert_no_password("ACL runs", &format!("{all}{}{}", text(&worker_out), files_text(&results)));
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it,
/// and a second CA nobody trusts.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl CLI");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        for ca in ["ca", "other-ca"] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN=conveyor test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        std::fs::write(dir.path().join("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        std::fs::write(dir.path().join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for who in ["server", "client"] {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN=conveyor test {who}"),
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
            ]);
            run(&[
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &format!("{who}.ext"),
                "-out",
                &format!("{who}.crt"),
            ]);
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn files(&self, ca: &str, client: bool) -> TlsFiles {
        TlsFiles {
            ca: Some(self.dir.path().join(ca)),
            cert: client.then(|| self.dir.path().join("client.crt")),
            key: client.then(|| self.dir.path().join("client.key")),
        }
    }
}

#[actix_rt::test]
async fn tls_with_a_test_ca_and_client_certificates_works_and_refuses_what_it_should() {
    let certs = Certs::generate();
    let tls_port = free_port();
    let server = support::own_server(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &certs.path("server.crt"),
        "--tls-key-file",
        &certs.path("server.key"),
        "--tls-ca-cert-file",
        &certs.path("ca.crt"),
        "--tls-auth-clients",
        "yes",
        "--requirepass",
        PASSWORD,
    ]);
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{tls_port}");

    let redis = Redis::connect_with(&url, &certs.files("ca.crt", true)).await.unwrap();
    let queue = conveyor::queue::Queue::new(
        redis,
        &support::unique_name("tls"),
        QueueOptions::default(),
        conveyor::clock::system(),
    );
    queue.ensure_group().await.unwrap();
    queue.enqueue(&job(0)).await.unwrap();
    assert_eq!(queue.depth().await.unwrap().waiting, 1);

    // Refused: a server the CA does not vouch for, no client certificate, no CA, plain TCP to
    // the TLS port. Each within a bounded time and without the password.
    for (what, files) in [
        ("an untrusted CA", certs.files("other-ca.crt", true)),
        ("no client certificate", certs.files("ca.crt", false)),
        ("no CA (system roots only)", TlsFiles::default()),
    ] {
        let started = Instant::now();
        let err = Redis::connect_with(&url, &files).await.expect_err(what).to_string();
        // Only bounds a hang (the connect timeout is 3 s).
        assert!(started.elapsed() < Duration::from_secs(60), "{what} took {:?}", started.elapsed());
        assert!(err.contains("unreachable") && err.contains("rediss://:***@127.0.0.1"), "{what}: {err}");
        assert_no_password(what, &err);
    }
    let err = Redis::connect(&format!("redis://:{PASSWORD}@127.0.0.1:{tls_port}"))
        .await
        .expect_err("plain TCP to TLS")
        .to_string();
    assert_no_password("plain TCP to TLS", &err);
    let err = Redis::connect_with(&server.url(), &certs.files("ca.crt", true))
        .await
        .expect_err("TLS files with redis://")
        .to_string();
    assert!(err.contains("rediss://"), "{err}");

    // The CLI, with the files as flags.
    let dir = tempfile::tempdir().unwrap();
    let out = role("run")
        .args(["--quiet", "--redis-url", &url, "--tls-ca-file", &certs.path("ca.crt")])
        .args(["--tls-cert-file", &certs.path("client.crt"), "--tls-key-file", &certs.path("client.key"), "--results"])
        .arg(dir.path().join("results"))
        .arg(scenario_file(dir.path(), "tls"))
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("lost 0"), "{all}");
    assert_no_password("conveyor run over TLS", &format!("{all}{}", files_text(&dir.path().join("results"))));

    // The chaos driver watches the queue over its own connections: they use the TLS files too.
    // A worker process is killed while it holds jobs; the reclaim must be seen over TLS.
    let chaos = dir.path().join("chaos.toml");
    std::fs::write(
        &chaos,
        format!(
            "# chaos over TLS\ndescription = \"chaos over TLS\"\n[queue]\nname = \"{}\"\nlease = \"1s\"\n\
             [producer]\nrate = 500\nduration = \"4s\"\n[workers]\ncount = 2\nbatch = 20\n\
             [[jobs]]\nkind = \"sleep\"\nduration = \"2ms\"\n[chaos]\nworker_processes = 1\nkill_worker_at = \"1s\"\n",
            support::unique_name("tls-chaos")
        ),
    )
    .unwrap();
    let results = dir.path().join("chaos-results");
    let out = role("run")
        .args(["--quiet", "--redis-url", &url, "--tls-ca-file", &certs.path("ca.crt")])
        .args(["--tls-cert-file", &certs.path("client.crt"), "--tls-key-file", &certs.path("client.key"), "--results"])
        .arg(&results)
        .arg(&chaos)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let report = support::read_json(&support::result_dir(&results).join("chaos.json"));
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert!(report["reclaimed_after_seconds"].is_number(), "the reclaim was not seen over TLS: {report}");
    assert_no_password("chaos over TLS", &format!("{all}{}", files_text(&results)));
}
