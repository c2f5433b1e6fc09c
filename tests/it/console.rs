//! The web console in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! fantoccini) against a console served on a free loopback port over the shared redis-server,
//! each test under a key prefix of its own (so the overview lists only its queues). What the
//! page shows is checked against Redis through `Admin`; markup in payloads and errors runs
//! nothing; state changes need the CSRF token; a non-loopback bind needs an access token; a
//! page of a queue with 100,000 waiting jobs lists one page.
//!
//! With `CONVEYOR_SCREENSHOTS=1` the tests write docs/console-overview.png and
//! docs/console-dead-job.png.

use crate::support;
use conveyor::console::{Console, ConsoleOptions, PAGE_SIZE};
use conveyor::queue::{Depth, JobsIn, QueueOptions};
use conveyor::{Admin, Client, JobContext, JobError, JobType, Queue, Registry, WorkerPool};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde::{Deserialize, Serialize};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "apt-get install -y chromium chromium-driver";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Email {
    to: String,
}

impl JobType for Email {
    const NAME: &'static str = "email.send";
}

/// chromedriver on a free port, in a process group of its own so that dropping it ends the
/// Chromium it started too, whatever the test did.
struct Driver {
    child: Child,
    port: u16,
    /// Chromium's profile: fresh for every test.
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver and opens a headless Chromium session on it.
async fn browser() -> (Driver, Browser) {
    use std::os::unix::process::CommandExt;
    let port = conveyor::testkit::redis_server::free_port().unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the console tests need chromedriver and Chromium ({e}): install them: `{INSTALL}`")
        });
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver { child, port, _profile: profile };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on port {port} within a minute");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--user-data-dir={}", driver._profile.path().display()));
    let mut options = serde_json::json!({ "args": args });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        options["binary"] = "/usr/bin/chromium".into();
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start Chromium ({e}): is it installed? `{INSTALL}`"));
    (driver, client)
}

/// A console over `admin` served in this process on a free loopback port; its URL (no
/// trailing slash, base path included).
fn serve(admin: Admin, options: ConsoleOptions) -> (String, actix_web::dev::ServerHandle) {
    let base = options.base_path.clone();
    let console = Console::new(admin, options);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(console.configure()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (format!("http://127.0.0.1:{port}{base}"), handle)
}

/// A prefix of the test's own, its `Admin`, and a queue `name` under it.
async fn namespace(test: &str) -> (String, Admin) {
    let prefix = support::unique_name(test);
    (prefix.clone(), Admin::new(support::redis().await, prefix))
}

async fn queue_in(prefix: &str, name: &str) -> Queue {
    let options = QueueOptions { prefix: prefix.to_owned(), ..QueueOptions::default() };
    let q = Queue::new(support::redis().await, name, options, conveyor::clock::system());
    q.ensure_group().await.unwrap();
    q
}

/// A registry whose `email.send` fails for good with `reason`.
fn failing(reason: &'static str) -> Registry {
    Registry::new().handle(move |_: Email, _: JobContext| async move { Err::<(), _>(JobError::fail(reason)) })
}

async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within a minute");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn depth_until(queue: &Queue, what: &str, done: impl Fn(&Depth) -> bool) -> Depth {
    until(what, async || queue.depth().await.ok().filter(|d| done(d))).await
}

/// The text of the first element `css` selects, waiting for it to appear.
async fn text_of(b: &Browser, css: &str) -> String {
    let el = b.wait().at_most(Duration::from_secs(60)).for_element(Locator::Css(css)).await;
    match el {
        Ok(el) => el.text().await.unwrap(),
        Err(e) => panic!("element {css:?} on {:?}: {e}", b.current_url().await.ok()),
    }
}

async fn click(b: &Browser, css: &str) {
    let el = b.wait().at_most(Duration::from_secs(60)).for_element(Locator::Css(css)).await;
    el.unwrap_or_else(|e| panic!("element {css:?}: {e}")).click().await.unwrap();
}

/// Writes docs/<file> from the browser when CONVEYOR_SCREENSHOTS=1.
async fn screenshot(b: &Browser, file: &str) {
    if std::env::var("CONVEYOR_SCREENSHOTS").as_deref() == Ok("1") {
        let png = b.screenshot().await.unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(file);
        std::fs::write(&path, png).unwrap();
        println!("wrote {}", path.display());
    }
}

#[actix_rt::test]
async fn the_overview_counts_a_dead_jobs_page_gives_its_reason_and_retry_and_delete_act_in_redis() {
    let (prefix, admin) = namespace("console-overview").await;
    let emails = queue_in(&prefix, "emails").await;
    let reports = queue_in(&prefix, "reports").await;
    // Three dead letters, with the reason their handler gave.
    let pool = WorkerPool::builder(emails.clone(), failing("smtp: 550 mailbox unavailable")).start().await.unwrap();
    let client = Client::new(emails.clone());
    let dead =
        client.enqueue_batch(&["ada", "bob", "eve"].map(|n| Email { to: format!("{n}@example.com") })).await.unwrap();
    depth_until(&emails, "three dead letters", |d| d.dead == 3).await;
    pool.shutdown().await;
    // Then three waiting, two delayed, and a second queue with one waiting and paused.
    for n in 0..3 {
        client.enqueue(&Email { to: format!("user{n}@example.com") }).await.unwrap();
    }
    for n in 0..2 {
        let later = conveyor::Enqueue::new().delay(Duration::from_secs(3600));
        client.enqueue_with(&Email { to: format!("later{n}@example.com") }, later).await.unwrap();
    }
    Client::new(reports.clone()).enqueue(&Email { to: "boss@example.com".into() }).await.unwrap();
    admin.pause("reports").await.unwrap();

    let (url, server) = serve(admin.clone(), ConsoleOptions::default());
    let (_driver, b) = browser().await;
    b.goto(&format!("{url}/")).await.unwrap();
    for (state, n) in [("waiting", "3"), ("active", "0"), ("delayed", "2"), ("retrying", "0"), ("dead", "3")] {
        let shown = text_of(&b, &format!(r#"tr[data-queue="emails"] td[data-state="{state}"]"#)).await;
        assert_eq!(shown, n, "the overview's {state} count of queue emails");
    }
    assert_eq!(text_of(&b, r#"tr[data-queue="reports"] td[data-state="waiting"]"#).await, "1");
    assert_eq!(text_of(&b, r#"tr[data-queue="reports"] .badge"#).await, "paused");
    assert_eq!(text_of(&b, r#"tr[data-queue="emails"] .badge"#).await, "running");
    screenshot(&b, "console-overview.png").await;

    // The dead tab lists them; a dead job's page says why it died.
    click(&b, r#"tr[data-queue="emails"] td[data-state="dead"] a"#).await;
    until("the dead tab lists three jobs", async || {
        (b.find_all(Locator::Css("#jobs tr.job")).await.ok()?.len() == 3).then_some(())
    })
    .await;
    b.goto(&format!("{url}/queues/emails/jobs/{}", dead[0])).await.unwrap();
    assert_eq!(text_of(&b, "#reason").await, "smtp: 550 mailbox unavailable", "the dead job's reason");
    assert!(text_of(&b, "#payload").await.contains("\"to\": \"ada@example.com\""), "its payload, pretty JSON");
    screenshot(&b, "console-dead-job.png").await;

    // Retry on its page: back to waiting, in Redis.
    click(&b, "#retry").await;
    let d = depth_until(&emails, "the retried job waits", |d| d.dead == 2).await;
    assert_eq!((d.waiting, d.dead), (4, 2), "retry moved exactly that job back to waiting: {d:?}");
    let record = admin.job(Some("emails"), dead[0].as_str()).await.unwrap();
    assert_eq!(record.found.map(|f| f.state), Some(JobsIn::Waiting), "the retried job is waiting");
    until("the page says it was retried", async || {
        let t = b.find(Locator::Css(".notice")).await.ok()?.text().await.ok()?;
        t.contains("Retried 1").then_some(())
    })
    .await;

    // A selection on the dead tab: the checked one is retried, the other stays.
    b.goto(&format!("{url}/queues/emails?state=dead")).await.unwrap();
    click(&b, &format!(r#"input[type="checkbox"][value="{}"]"#, dead[2])).await;
    click(&b, r#"button[value="selected"]:not([formaction])"#).await;
    let d = depth_until(&emails, "the selected job waits", |d| d.dead == 1).await;
    assert_eq!(d.waiting, 5, "{d:?}");
    let left = admin.jobs("emails", JobsIn::Dead, 10, None).await.unwrap();
    assert_eq!(left.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), vec![dead[1].clone()], "bob stays dead");

    // Delete all on the dead tab (after confirming): gone from Redis.
    b.goto(&format!("{url}/queues/emails?state=dead")).await.unwrap();
    click(&b, r#"button[value="all"][formaction$="/dead/delete"]"#).await;
    until("the confirmation", async || b.accept_alert().await.ok()).await;
    let d = depth_until(&emails, "the dead letters are deleted", |d| d.dead == 0).await;
    assert_eq!(d.waiting, 5, "deleting dead letters touched nothing else: {d:?}");

    // The live view refreshes itself from /api/live (its script, no reload).
    b.goto(&format!("{url}/live")).await.unwrap();
    until("the live view's script updates it", async || {
        let t = b.find(Locator::Id("updated")).await.ok()?.text().await.ok()?;
        (t != "now" && !t.contains("unreachable")).then_some(())
    })
    .await;
    assert_eq!(text_of(&b, r#"[data-queue="emails"] [data-field="waiting"]"#).await, "5");
    assert_eq!(text_of(&b, r#"[data-queue="emails"] [data-field="dead"]"#).await, "0");
    assert_eq!(text_of(&b, r#"[data-queue="reports"] [data-field="paused"]"#).await, "paused");
    let rate: f64 = text_of(&b, r#"[data-queue="emails"] [data-field="failed"]"#).await.parse().unwrap();
    assert!(rate >= 0.0, "failures per second, a number");

    b.close().await.unwrap();
    server.stop(false).await;
}

#[actix_rt::test]
async fn markup_in_a_payload_and_an_error_is_shown_as_text_and_runs_nothing() {
    const ATTACK: &str =
        "<script>window.pwned = 1; document.title = 'pwned'</script><img src=x onerror=\"window.pwned = 2\">";
    let (prefix, admin) = namespace("console-xss").await;
    let queue = queue_in(&prefix, "<b>inbox</b>").await;
    let pool = WorkerPool::builder(queue.clone(), failing(ATTACK)).start().await.unwrap();
    let id = Client::new(queue.clone()).enqueue(&Email { to: ATTACK.into() }).await.unwrap();
    depth_until(&queue, "the job dies", |d| d.dead == 1).await;
    pool.shutdown().await;

    let (url, server) = serve(admin, ConsoleOptions::default());
    let (_driver, b) = browser().await;
    let job = format!("{url}/queues/%3Cb%3Einbox%3C%2Fb%3E/jobs/{id}");
    for page in [
        format!("{url}/"),
        format!("{url}/queues/%3Cb%3Einbox%3C%2Fb%3E?state=dead"),
        job.clone(),
        format!("{url}/live"),
    ] {
        b.goto(&page).await.unwrap();
        text_of(&b, "main").await;
        let pwned = b.execute("return [typeof window.pwned, document.title]", vec![]).await.unwrap();
        assert_eq!(pwned[0], "undefined", "no script of the job ran on {page}");
        assert!(!pwned[1].as_str().unwrap().contains("pwned"), "the title is the console's on {page}: {pwned}");
        let made = b.find_all(Locator::Css("main img, main b:not([data-field])")).await.unwrap().len();
        assert_eq!(made, 0, "no markup of the queue's name, payload or error became an element on {page}");
    }
    b.goto(&job).await.unwrap();
    assert_eq!(text_of(&b, "#reason").await, ATTACK, "the error shows as the text it is");
    assert!(text_of(&b, "#payload").await.contains("<script>window.pwned = 1;"), "the payload shows as text");
    assert!(text_of(&b, "h1").await.starts_with("Job "), "the job's page");
    b.close().await.unwrap();

    let res = reqwest::get(&job).await.unwrap();
    let csp = res.headers().get("content-security-policy").expect("a CSP header").to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "inline scripts are forbidden: {csp}");
    server.stop(false).await;
}

#[actix_rt::test]
async fn pausing_from_the_page_stops_a_running_worker_claiming_and_resuming_restarts_it() {
    let (prefix, admin) = namespace("console-pause").await;
    let queue = queue_in(&prefix, "emails").await;
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let registry = Registry::new().handle(move |_: Email, _: JobContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(());
            Ok::<(), JobError>(())
        }
    });
    let pool = WorkerPool::builder(queue.clone(), registry).start().await.unwrap();
    let client = Client::new(queue.clone());
    client.enqueue(&Email { to: "first@example.com".into() }).await.unwrap();
    depth_until(&queue, "the first job runs", |d| d.unfinished() == 0).await;
    while started.try_recv().is_ok() {}

    let (url, server) = serve(admin.clone(), ConsoleOptions::default());
    let (_driver, b) = browser().await;
    b.goto(&format!("{url}/queues/emails")).await.unwrap();
    click(&b, r#"button[data-action="pause"]"#).await;
    until("the queue is paused in Redis", async || admin.overview("emails").await.ok()?.paused.then_some(())).await;
    assert_eq!(text_of(&b, "h1 .badge").await, "paused", "the page says paused");

    // The worker sees the pause within its poll; until a probe stays unclaimed for 2 s, it may
    // still have been claiming.
    until("a probe job stays unclaimed", async || {
        client.enqueue(&Email { to: "probe@example.com".into() }).await.ok()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut ran = false;
        while started.try_recv().is_ok() {
            ran = true;
        }
        (!ran).then_some(())
    })
    .await;
    client.enqueue_batch(&(0..5).map(|n| Email { to: format!("u{n}@example.com") }).collect::<Vec<_>>()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(started.try_recv().is_err(), "the running worker claims nothing while paused");
    let overview = admin.overview("emails").await.unwrap();
    assert!(overview.paused && overview.depth.waiting >= 6, "the jobs wait: {overview:?}");
    assert_eq!(overview.live_workers, 1, "the worker is alive, only paused");

    click(&b, r#"button[data-action="resume"]"#).await;
    depth_until(&queue, "the resumed worker runs what waited", |d| d.unfinished() == 0).await;
    assert!(started.try_recv().is_ok(), "the handler ran again");
    b.close().await.unwrap();
    pool.shutdown().await;
    server.stop(false).await;
}

#[actix_rt::test]
async fn a_tracked_jobs_page_shows_its_attempt_last_error_and_result() {
    let (prefix, admin) = namespace("console-tracked").await;
    let options = QueueOptions {
        prefix: prefix.clone(),
        backoff: conveyor::queue::Backoff { base: Duration::from_millis(50), max: Duration::from_millis(50) },
        ..QueueOptions::default()
    };
    let queue = Queue::new(support::redis().await, "emails", options, conveyor::clock::system());
    queue.ensure_group().await.unwrap();
    let registry = Registry::new().handle(|_: Email, ctx: JobContext| async move {
        if ctx.attempt == 0 {
            return Err(JobError::retry("smtp: 421 try again later"));
        }
        Ok(conveyor::Json(serde_json::json!({ "message_id": "<42@example.com>" })))
    });
    let pool = WorkerPool::builder(queue.clone(), registry).start().await.unwrap();
    let tracked = conveyor::Enqueue::new().id("welcome-ada");
    Client::new(queue.clone()).enqueue_with(&Email { to: "ada@example.com".into() }, tracked).await.unwrap();
    until("the job completes", async || {
        let record = admin.job(Some("emails"), "welcome-ada").await.ok()?;
        matches!(record.status?.state, conveyor::queue::JobState::Completed { .. }).then_some(())
    })
    .await;
    pool.shutdown().await;

    let (url, server) = serve(admin, ConsoleOptions::default());
    let (_driver, b) = browser().await;
    b.goto(&format!("{url}/queues/emails/jobs/welcome-ada")).await.unwrap();
    assert_eq!(text_of(&b, "#status").await, "completed");
    assert_eq!(text_of(&b, "#last-error").await, "smtp: 421 try again later", "the failed attempt's error");
    assert!(text_of(&b, "#result").await.contains(r#""message_id": "<42@example.com>""#), "the result, pretty JSON");
    assert_eq!(text_of(&b, "#attempt").await, "1", "the attempt it finished at");
    b.close().await.unwrap();
    server.stop(false).await;
}

/// The CSRF token a page of the console put in its forms.
fn csrf_in(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + r#"name="csrf" value=""#.len();
    page[at..at + 32].to_owned()
}

#[actix_rt::test]
async fn a_post_without_the_right_csrf_token_is_refused_and_changes_nothing() {
    let (prefix, admin) = namespace("console-csrf").await;
    let queue = queue_in(&prefix, "emails").await;
    let pool = WorkerPool::builder(queue.clone(), failing("no")).start().await.unwrap();
    let id = Client::new(queue.clone()).enqueue(&Email { to: "a@example.com".into() }).await.unwrap();
    depth_until(&queue, "a dead letter", |d| d.dead == 1).await;
    pool.shutdown().await;
    let (url, server) = serve(admin.clone(), ConsoleOptions::default());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let page = http.get(format!("{url}/")).send().await.unwrap();
    let cookie = page.headers().get("set-cookie").expect("the CSRF cookie").to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let token = csrf_in(&page.text().await.unwrap());
    assert_eq!(cookie, format!("conveyor_csrf={token}"), "the page's token is the cookie's");

    let post = |path: &str, cookie: Option<&str>, body: String| {
        let mut req = http.post(format!("{url}{path}")).header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.body(body).send()
    };
    let wrong = "0".repeat(32);
    for (what, cookie, body) in [
        ("no token", Some(cookie.as_str()), "back=queue".to_owned()),
        ("a wrong token", Some(cookie.as_str()), format!("csrf={wrong}")),
        ("no cookie", None, format!("csrf={token}")),
        ("a cookie of another browser", Some(&*format!("conveyor_csrf={wrong}")), format!("csrf={token}")),
    ] {
        let res = post("/queues/emails/pause", cookie, body.clone()).await.unwrap();
        assert_eq!(res.status(), 403, "pause with {what}");
        let res = post("/queues/emails/dead/delete", cookie, format!("{body}&scope=all")).await.unwrap();
        assert_eq!(res.status(), 403, "delete with {what}");
    }
    let overview = admin.overview("emails").await.unwrap();
    assert!(!overview.paused && overview.depth.dead == 1, "nothing changed: {overview:?}");
    // Without a token, only a loopback Host is served (DNS rebinding), whatever a script adds.
    for forwarded in ["x-forwarded-host", "forwarded"] {
        let value = if forwarded == "forwarded" { "host=127.0.0.1" } else { "127.0.0.1" };
        let res =
            http.get(format!("{url}/")).header("host", "evil.example").header(forwarded, value).send().await.unwrap();
        assert_eq!(res.status(), 421, "Host evil.example with {forwarded}");
    }
    let get = http.get(format!("{url}/queues/emails/pause")).send().await.unwrap();
    assert_eq!(get.status(), 404, "a GET changes nothing either");

    // The same requests with the token act.
    let res = post("/queues/emails/dead/retry", Some(&cookie), format!("csrf={token}&one={id}")).await.unwrap();
    assert_eq!(res.status(), 303);
    let res = post("/queues/emails/pause", Some(&cookie), format!("csrf={token}&back=overview")).await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/?did=paused");
    let overview = admin.overview("emails").await.unwrap();
    assert!(overview.paused && overview.depth.dead == 0 && overview.depth.waiting == 1, "{overview:?}");
    server.stop(false).await;
}

#[actix_rt::test]
async fn a_non_loopback_bind_needs_a_token_and_with_one_every_request_carries_it() {
    let url = support::shared_server().url();
    let out = support::conveyor().args(["console", "--addr", "0.0.0.0:0", "--redis-url", &url]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "refused: {err}");
    assert!(err.contains("not a loopback address") && err.contains("--token"), "{err}");

    // With a token (mounted under /ops): nothing without it, everything with it, and the
    // login form's cookie.
    let (prefix, admin) = namespace("console-token").await;
    queue_in(&prefix, "emails").await;
    let options = ConsoleOptions { token: Some("s3cret-token".into()), base_path: "/ops".into() };
    let (base, server) = serve(admin, options);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/ops/login"));
    assert_eq!(http.get(format!("{base}/api/live")).send().await.unwrap().status(), 401);
    let res = http.get(format!("{base}/")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(res.status(), 303, "a wrong token is no token");
    let res = http.get(format!("{base}/")).bearer_auth("s3cret-token").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(r#"data-queue="emails""#));

    let (_driver, b) = browser().await;
    b.goto(&format!("{base}/")).await.unwrap();
    b.find(Locator::Css("#token")).await.unwrap().send_keys("s3cret-token").await.unwrap();
    click(&b, r#"form button[type="submit"]"#).await;
    assert_eq!(text_of(&b, r#"tr[data-queue="emails"] td[data-state="waiting"]"#).await, "0", "logged in");
    b.close().await.unwrap();
    server.stop(false).await;
}

#[actix_rt::test]
async fn no_page_shows_the_redis_password() {
    const PASSWORD: &str = "pw-7f3a9c-never-shown";
    let server = support::own_server(&["--requirepass", PASSWORD]);
    let redis_url = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port());
    let redis = conveyor::connection::Redis::connect(&redis_url).await.unwrap();
    let options = QueueOptions::default();
    let queue = Queue::new(redis, "emails", options, conveyor::clock::system());
    queue.ensure_group().await.unwrap();
    let id = Client::new(queue.clone()).enqueue(&Email { to: "a@example.com".into() }).await.unwrap();

    // The console as the command line runs it, given the URL with the password.
    let port = conveyor::testkit::redis_server::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut console = support::conveyor()
        .args(["console", "--addr", &addr, "--redis-url", &redis_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    until("the console answers", async || http.get(format!("{base}/")).send().await.ok()).await;
    for path in [
        "/",
        "/queues/emails",
        &format!("/queues/emails/jobs/{id}"),
        "/workers",
        "/live",
        "/api/live",
        "/queues/nope",
        "/login",
    ] {
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(!body.contains(PASSWORD), "page {path} ({status}) shows the Redis password");
        if path == "/" {
            assert!(body.contains(r#"data-queue="emails""#), "the console reads that Redis: {body}");
        }
    }
    // Redis gone: the page says so, still without the password.
    let mut server = server;
    server.kill();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    if let Ok(res) = http.get(format!("{base}/")).send().await {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        assert!(!body.contains(PASSWORD), "the error page ({status}) shows the Redis password: {body}");
        println!("with Redis gone the overview answers {status}");
    }
    let _ = console.kill();
    let out = console.wait_with_output().unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!printed.contains(PASSWORD), "the console printed the password: {printed}");
}

#[actix_rt::test]
async fn a_queue_with_100000_waiting_jobs_renders_one_page_of_them() {
    const WAITING: usize = 100_000;
    let (prefix, admin) = namespace("console-deep").await;
    let queue = queue_in(&prefix, "bulk").await;
    let client = Client::new(queue.clone());
    let started = Instant::now();
    for chunk in 0..(WAITING / 5_000) {
        let jobs: Vec<Email> =
            (0..5_000).map(|n| Email { to: format!("u{}@example.com", chunk * 5_000 + n) }).collect();
        client.enqueue_batch(&jobs).await.unwrap();
    }
    println!("enqueued {WAITING} jobs in {:?}", started.elapsed());
    let (url, server) = serve(admin, ConsoleOptions::default());
    let (_driver, b) = browser().await;
    b.goto(&format!("{url}/")).await.unwrap(); // warm: the browser's first page, the assets

    let mut times = Vec::new();
    for page in ["/", "/queues/bulk?state=waiting"] {
        for _ in 0..3 {
            let t = Instant::now();
            b.goto(&format!("{url}{page}")).await.unwrap();
            let wall = t.elapsed();
            // The browser's own account: request sent to response end, and to the load event.
            let nav = b
                .execute(
                    "const n = performance.getEntriesByType('navigation')[0]; \
                     return [n.responseEnd - n.requestStart, n.loadEventEnd - n.startTime];",
                    vec![],
                )
                .await
                .unwrap();
            times.push((page, wall, nav[0].as_f64().unwrap_or(f64::NAN), nav[1].as_f64().unwrap_or(f64::NAN)));
        }
    }
    let http = reqwest::Client::new();
    let mut served = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let body = http.get(format!("{url}/queues/bulk?state=waiting")).send().await.unwrap().text().await.unwrap();
        served.push(t.elapsed());
        assert!(body.len() < 200_000, "one page of jobs, not all of them: {} bytes", body.len());
    }
    for (page, wall, response, load) in &times {
        println!(
            "100,000 waiting: {page} in Chromium: response {response:.1} ms, load event {load:.1} ms \
             (WebDriver navigation {:.1} ms)",
            wall.as_secs_f64() * 1e3
        );
    }
    let ms: Vec<String> = served.iter().map(|t| format!("{:.1}", t.as_secs_f64() * 1e3)).collect();
    println!("100,000 waiting: the queue page served (GET, whole body) in [{}] ms", ms.join(", "));

    assert_eq!(text_of(&b, ".tabs a.here .n").await, WAITING.to_string(), "the waiting tab counts them all");
    let rows = b.find_all(Locator::Css("#jobs tr.job")).await.unwrap().len();
    assert_eq!(rows, PAGE_SIZE, "the page lists one page of jobs");
    // The next page starts where this one ended.
    let first_page_last =
        b.find_all(Locator::Css("#jobs tr.job td.mono")).await.unwrap().pop().unwrap().text().await.unwrap();
    click(&b, "#next").await;
    until("the second page", async || b.current_url().await.ok()?.as_str().contains("cursor=").then_some(())).await;
    let second: Vec<String> = {
        let mut out = Vec::new();
        for el in b.find_all(Locator::Css("#jobs tr.job td.mono")).await.unwrap() {
            out.push(el.text().await.unwrap());
        }
        out
    };
    assert_eq!(second.len(), PAGE_SIZE);
    assert!(!second.contains(&first_page_last), "the second page goes on after the first");
    b.close().await.unwrap();
    server.stop(false).await;
}
