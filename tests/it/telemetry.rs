//! Observability: what `/metrics` serves during a real run, the shipped Prometheus config, rules
//! and their promtool unit tests, the Grafana dashboards and the compose stack (checked
//! statically: no Docker engine here), and a live stack (`live`) where a real Prometheus
//! scrapes separate producer and worker processes and answers every dashboard expression.
//!
//! promtool, prometheus and prometheus-redis-exporter come from Debian's packages; a missing
//! tool fails the test with the command that installs it.

mod live;
mod promql;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Labels a conveyor metric may carry: all of them take few values.
const BOUNDED_LABELS: &[&str] = &[
    "queue",
    "role",
    "scenario",
    "phase",
    "outcome",
    "state",
    "operation",
    "priority",
    "le",
    "version",
    "revision",
    "profile",
    "entry",
];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command-line tool from a Debian package; panics with the install command when missing.
pub fn tool(name: &str, package: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(found, "{name} is not installed; install it with: apt-get install -y {package}");
    Command::new(name)
}

/// Runs a tool and panics with its output unless it succeeds; returns its stdout.
pub fn run_ok(mut command: Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

/// The conveyor binary under test with `args`.
pub fn conveyor_cli<const N: usize>(args: [&str; N]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_conveyor"));
    c.args(args);
    c
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET `path` from 127.0.0.1:`port`; the body on 200, `None` when unreachable or not 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_owned()))
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `limit` saying `what`. A limit
/// only bounds a hang: give it minutes, never the time the step takes on an idle machine.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child process killed (SIGTERM, then SIGKILL) when dropped, so a failing test leaves none.
pub struct Process {
    pub name: &'static str,
    pub child: Child,
}

impl Process {
    pub fn spawn(name: &'static str, command: &mut Command) -> Self {
        let child = command.stdin(Stdio::null()).spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self { name, child }
    }

    /// Asks the process to stop (SIGTERM) and waits up to `limit` for it.
    pub fn terminate(&mut self, limit: Duration) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM within {limit:?}; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(Duration::from_secs(5));
        }
    }
}

/// One sample of a text exposition.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub help: HashMap<String, String>,
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Self {
        let mut e = Exposition::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                e.help.insert(name.to_owned(), help.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                e.types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') {
                e.samples.push(parse_sample(line));
            }
        }
        e
    }

    /// Every sample name (histograms give `_bucket`, `_sum`, `_count`).
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// Sum of the samples named `name` whose labels include every pair of `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.matching(name, with).map(|s| s.value).sum()
    }

    pub fn matching<'a>(&'a self, name: &'a str, with: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name_labels, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad sample value in: {line}")),
    };
    let (name, labels) = match name_labels.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in: {line}"))),
        None => (name_labels, ""),
    };
    let mut map = BTreeMap::new();
    let mut rest = labels;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        map.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end..].trim_start_matches(',');
    }
    Sample { name: name.to_owned(), labels: map, value }
}

/// A scenario file in `dir` for queue `queue`.
pub fn write_scenario(dir: &Path, queue: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{queue}.toml"));
    std::fs::write(
        &path,
        format!("# telemetry test\ndescription = \"telemetry test\"\n[queue]\nname = \"{queue}\"\n{body}"),
    )
    .unwrap();
    path
}

/// Scenario body: open loop with failing jobs (so retries and dead letters happen) and warm-up.
pub const OPEN_LOOP_WITH_FAILURES: &str = "max_attempts = 2\nbackoff_base = \"5ms\"\n\
    [producer]\nrate = 400\nduration = \"DURATION\"\nbatch = 20\n\
    [workers]\ncount = 2\nbatch = 16\n\
    [[jobs]]\nkind = \"noop\"\nweight = 9\n\
    [[jobs]]\nkind = \"fail\"\nprobability = 0.5\nweight = 1\n\
    [phases]\nwarmup = \"1s\"\ndrain_timeout = \"30s\"\n";

/// Families the scrape of a whole-run process must have, with their type.
const FAMILIES: &[(&str, &str)] = &[
    ("conveyor_jobs_enqueued_total", "counter"),
    ("conveyor_jobs_started_total", "counter"),
    ("conveyor_jobs_completed_total", "counter"),
    ("conveyor_jobs_retried_total", "counter"),
    ("conveyor_jobs_dead_total", "counter"),
    ("conveyor_jobs_duplicated_total", "counter"),
    ("conveyor_jobs_reclaimed_total", "counter"),
    ("conveyor_jobs_promoted_total", "counter"),
    ("conveyor_job_enqueue_to_start_seconds", "histogram"),
    ("conveyor_job_start_to_complete_seconds", "histogram"),
    ("conveyor_job_end_to_end_seconds", "histogram"),
    ("conveyor_redis_operation_duration_seconds", "histogram"),
    ("conveyor_queue_depth", "gauge"),
    ("conveyor_queue_oldest_waiting_age_seconds", "gauge"),
    ("conveyor_jobs_in_flight", "gauge"),
    ("conveyor_workers", "gauge"),
    ("conveyor_producer_schedule_lag_seconds", "gauge"),
    ("conveyor_build_info", "gauge"),
    ("conveyor_scenario_info", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_threads", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
];

/// The checks every conveyor scrape must pass: HELP and TYPE for each family, base units in
/// the names, bounded labels, and `promtool check metrics`.
pub fn check_exposition(text: &str, families: &[(&str, &str)]) -> Exposition {
    let e = Exposition::parse(text);
    for (family, kind) in families {
        assert_eq!(e.types.get(*family).map(String::as_str), Some(*kind), "family {family}: TYPE {kind} expected");
        let help = e.help.get(*family).unwrap_or_else(|| panic!("family {family} has no HELP line"));
        assert!(help.len() > 10, "family {family}: HELP says too little: {help:?}");
    }
    for (family, kind) in &e.types {
        if !family.starts_with("conveyor_") {
            continue;
        }
        assert!(e.help.contains_key(family), "{family} has no HELP line");
        match kind.as_str() {
            "counter" => assert!(family.ends_with("_total"), "counter {family} must end in _total"),
            "histogram" => assert!(family.ends_with("_seconds"), "histogram {family} must be in seconds"),
            _ => assert!(!family.ends_with("_total"), "only counters end in _total: {family}"),
        }
        assert!(!family.contains("milli") && !family.contains("micro"), "{family}: base units only");
    }
    for s in e.samples.iter().filter(|s| s.name.starts_with("conveyor_")) {
        for key in s.labels.keys() {
            assert!(
                BOUNDED_LABELS.contains(&key.as_str()),
                "{}: label {key:?} is not one of the bounded labels",
                s.name
            );
        }
    }
    let series = e.samples.iter().filter(|s| s.name.starts_with("conveyor_")).count();
    assert!(series < 1_000, "{series} conveyor series: labels are not bounded");
    // The histogram buckets go from 100 µs to minutes.
    let les: BTreeSet<String> =
        e.matching("conveyor_job_end_to_end_seconds_bucket", &[]).filter_map(|s| s.labels.get("le").cloned()).collect();
    if !les.is_empty() {
        assert!(les.contains("0.0001") && les.contains("600") && les.contains("+Inf"), "buckets: {les:?}");
    }
    let mut promtool = tool("promtool", "prometheus");
    promtool.args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = promtool.spawn().unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    e
}

#[test]
fn a_run_serves_every_metric_family_with_help_units_and_bounded_labels() {
    let dir = tempfile::tempdir().unwrap();
    let queue = crate::support::unique_name("metrics");
    let scenario = write_scenario(dir.path(), &queue, &OPEN_LOOP_WITH_FAILURES.replace("DURATION", "6s"));
    let port = free_port();
    let mut run = Process::spawn(
        "conveyor run",
        conveyor_cli(["run", "--quiet", "--json", "--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--redis-url", &crate::support::shared_server().url(), "--results"])
            .arg(dir.path().join("results"))
            .arg(&scenario)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // A scrape taken while jobs complete, fail and retry, in the measured phase.
    let text = wait_for("a scrape showing completed, retried and measured jobs", Duration::from_secs(120), || {
        let text = http_get(port, "/metrics")?;
        let e = Exposition::parse(&text);
        let busy = e.sum("conveyor_jobs_completed_total", &[("outcome", "success")]) > 0.0
            && e.sum("conveyor_jobs_retried_total", &[]) > 0.0
            && e.sum("conveyor_scenario_info", &[("phase", "measure")]) == 1.0
            && e.sum("conveyor_job_end_to_end_seconds_count", &[]) > 0.0
            && e.sum("conveyor_redis_operation_duration_seconds_count", &[("operation", "depth")]) > 0.0;
        busy.then_some(text)
    });
    let e = check_exposition(&text, FAMILIES);
    let q = [("queue", queue.as_str())];
    assert!(e.sum("conveyor_jobs_enqueued_total", &q) >= e.sum("conveyor_jobs_started_total", &q) * 0.5);
    assert_eq!(e.sum("conveyor_workers", &q), 2.0, "two worker actors, busy or idle");
    for state in ["waiting", "in_flight", "delayed", "dead"] {
        assert_eq!(e.matching("conveyor_queue_depth", &[("queue", &queue), ("state", state)]).count(), 1, "{state}");
    }
    for op in ["enqueue", "claim", "settle", "promote", "depth"] {
        let n = e.sum("conveyor_redis_operation_duration_seconds_count", &[("queue", &queue), ("operation", op)]);
        assert!(n > 0.0, "no {op} timings");
    }
    let info = e.matching("conveyor_scenario_info", &[("phase", "measure")]).next().unwrap();
    assert_eq!(info.labels["role"], "run");
    assert_eq!(info.labels["queue"], queue);
    assert_eq!(e.sum("conveyor_scenario_info", &[("phase", "warmup")]), 0.0, "the warm-up phase is over");
    assert_eq!(e.matching("conveyor_build_info", &[]).next().unwrap().labels["version"], env!("CARGO_PKG_VERSION"));
    assert!(e.sum("process_resident_memory_bytes", &[]) > 1e6);
    // CPU seconds are a counter of fractional seconds: two scrapes a few seconds apart (while
    // the run works) show it growing by less than whole seconds would.
    let cpu = |e: &Exposition| e.sum("process_cpu_seconds_total", &[]);
    let first = cpu(&e);
    let later = wait_for("a later scrape with more CPU seconds", Duration::from_secs(120), || {
        std::thread::sleep(Duration::from_secs(2));
        let later = cpu(&Exposition::parse(&http_get(port, "/metrics")?));
        (later > first).then_some(later)
    });
    eprintln!("process_cpu_seconds_total: {first} then {later}");
    assert!(first.fract() != 0.0 && later.fract() != 0.0, "whole seconds exported: {first}, {later}");
    // Not the metrics endpoint: 404.
    assert_eq!(http_get(port, "/nothing"), None);
    let status = wait_for("the run to end", Duration::from_secs(180), || run.child.try_wait().unwrap());
    assert!(status.success(), "conveyor run failed: {status}");
}

#[test]
fn a_taken_explicit_metrics_address_is_an_error_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), &crate::support::unique_name("taken"), "[producer]\njobs = 10\n");
    let out = conveyor_cli(["run", "--quiet", "--metrics-addr", &addr])
        .args(["--redis-url", &crate::support::shared_server().url()])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr) && stderr.contains("--metrics-addr"), "{stderr}");

    let out = conveyor_cli(["run", "--metrics-addr", "localhost"]).arg(&scenario).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HOST:PORT") && stderr.contains("localhost"), "{stderr}");
}

#[test]
fn promtool_accepts_the_config_and_rules_and_every_rule_unit_test_passes() {
    let p = repo().join("prometheus");
    run_ok({
        let mut c = tool("promtool", "prometheus");
        c.args(["check", "config"]).arg(p.join("prometheus.yml"));
        c
    });
    let rules: Vec<PathBuf> = files_in(&p.join("rules"), "yml");
    assert!(rules.len() >= 2, "{rules:?}");
    let out = run_ok({
        let mut c = tool("promtool", "prometheus");
        c.args(["check", "rules"]).args(&rules);
        c
    });
    assert!(out.contains("SUCCESS"), "{out}");
    let tests: Vec<PathBuf> = files_in(&p.join("tests"), "yml");
    assert!(tests.len() >= 2, "{tests:?}");
    let out = run_ok({
        let mut c = tool("promtool", "prometheus");
        c.args(["test", "rules"]).args(&tests);
        c
    });
    assert!(!out.contains("FAILED"), "{out}");

    // Every alert has a unit test that expects it to fire.
    let alerts = rule_names(&p.join("rules/alerts.yml"), "alert");
    assert!(alerts.len() >= 10, "{alerts:?}");
    let tested: String = tests.iter().map(|t| std::fs::read_to_string(t).unwrap()).collect();
    for alert in &alerts {
        assert!(
            tested.contains(&format!("alertname: {alert}\n        exp_alerts:\n          - exp_labels")),
            "alert {alert} has no test where it fires"
        );
    }
}

pub fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// The `alert` or `record` names of a rules file.
pub fn rule_names(file: &Path, kind: &str) -> Vec<String> {
    let y: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut names = Vec::new();
    for group in y["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            if let Some(n) = rule[kind].as_str() {
                names.push(n.to_owned());
            }
        }
    }
    names
}

/// Every PromQL expression of the rules files: (where, expression).
pub fn rule_expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in files_in(&repo().join("prometheus/rules"), "yml") {
        let y: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for group in y["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap_or("?");
                out.push((format!("{} {name}", file.display()), rule["expr"].as_str().unwrap().to_owned()));
            }
        }
    }
    out
}

/// A dashboard expression: where it is, and the query as Grafana stores it.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    pub place: String,
    pub expr: String,
}

/// Every query of every dashboard, checking on the way that each parses and has its basics.
pub fn dashboard_queries() -> Vec<DashboardQuery> {
    let dir = repo().join("grafana/dashboards");
    let files = files_in(&dir, "json");
    let titles: BTreeSet<String> =
        files.iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["overview", "latency", "workers", "redis", "soak"] {
        assert!(titles.contains(expected), "no dashboard {expected}.json in {titles:?}");
    }
    let mut out = Vec::new();
    let mut uids = BTreeSet::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let d: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
        assert!(
            uids.insert(d["uid"].as_str().unwrap_or_else(|| panic!("{name}: no uid")).to_owned()),
            "{name}: duplicate uid"
        );
        let vars: BTreeSet<&str> =
            d["templating"]["list"].as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
        for v in ["instance", "queue", "scenario"] {
            assert!(vars.contains(v), "{name}: no ${v} variable");
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap();
            assert_eq!(v["datasource"]["uid"], "prometheus", "{name} variable {}", v["name"]);
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(e, _)| e.to_owned())
                .unwrap_or_else(|| panic!("{name}: variable query is not label_values(expr, label): {q}"));
            out.push(DashboardQuery { place: format!("{name} variable {}", v["name"]), expr: inner });
        }
        let panels = d["panels"].as_array().unwrap();
        let mut queries = 0;
        for p in panels.iter().filter(|p| p["type"] != "row") {
            let title = p["title"].as_str().unwrap_or("?");
            assert!(p["description"].as_str().is_some_and(|s| !s.is_empty()), "{name} panel {title}: no description");
            assert_eq!(p["datasource"]["uid"], "prometheus", "{name} panel {title}: datasource uid");
            let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{name} panel {title}: no targets"));
            assert!(!targets.is_empty(), "{name} panel {title}: no targets");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "prometheus", "{name} panel {title}: target datasource uid");
                let expr = t["expr"].as_str().unwrap_or_else(|| panic!("{name} panel {title}: target without expr"));
                out.push(DashboardQuery { place: format!("{name} panel {title:?}"), expr: expr.to_owned() });
                queries += 1;
            }
        }
        assert!(queries >= 6, "{name}: only {queries} queries");
    }
    out
}

#[test]
fn dashboards_parse_and_have_variables_descriptions_and_the_fixed_datasource() {
    let queries = dashboard_queries();
    assert!(queries.len() > 50, "{}", queries.len());
    // The provisioned datasource carries the uid every dashboard refers to.
    let ds: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("grafana/provisioning/datasources/prometheus.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(ds["datasources"][0]["uid"], "prometheus");
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
    let dp: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("grafana/provisioning/dashboards/conveyor.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(dp["providers"][0]["options"]["path"], "/var/lib/grafana/dashboards");
    // Every query names only metrics; the live test checks the names against real scrapes.
    for q in &queries {
        assert!(!promql::metric_names(&q.expr).is_empty(), "{}: no metric in {}", q.place, q.expr);
    }
}

/// The compose file, merged (`<<: *conveyor`) as compose would.
fn compose() -> serde_yaml::Value {
    let mut y: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap()).unwrap();
    y.apply_merge().unwrap();
    y
}

#[test]
fn compose_stack_is_complete_healthchecked_and_local_only() {
    let y = compose();
    let services = y["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for s in ["redis", "redis-exporter", "worker", "producer", "exporter", "prometheus", "grafana"] {
        assert!(names.contains(s), "service {s} missing: {names:?}");
    }
    for (name, s) in services {
        let name = name.as_str().unwrap();
        assert!(s["healthcheck"]["test"].as_sequence().is_some_and(|t| !t.is_empty()), "{name}: no healthcheck");
        if let Some(deps) = s["depends_on"].as_mapping() {
            for (dep, how) in deps {
                let dep = dep.as_str().unwrap();
                assert!(names.contains(dep), "{name} depends on unknown {dep}");
                assert_eq!(how["condition"], "service_healthy", "{name} -> {dep}: wait for health");
                assert!(
                    y["services"][dep]["healthcheck"].is_mapping(),
                    "{name} waits for {dep}, which has no healthcheck"
                );
            }
        }
        for port in s["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(port.starts_with("127.0.0.1:"), "{name}: port {port} is not bound to localhost");
        }
    }
    // Workers scale: no fixed port, no container name.
    assert!(y["services"]["worker"]["ports"].is_null() && y["services"]["worker"]["container_name"].is_null());
    for role in ["worker", "producer", "exporter"] {
        let s = &y["services"][role];
        assert_eq!(s["image"], "conveyor:local", "{role}");
        assert_eq!(
            s["environment"]["CONVEYOR_METRICS_ADDR"], "0.0.0.0:9464",
            "{role}: metrics reachable by prometheus"
        );
        assert_eq!(s["environment"]["CONVEYOR_REDIS_URL"], "redis://redis:6379", "{role}");
    }
    assert_eq!(y["services"]["worker"]["command"][0], "worker");
    assert_eq!(y["services"]["producer"]["command"][0], "produce");
    assert_eq!(y["services"]["exporter"]["command"][0], "exporter");
    // The default scenario exists and is valid.
    let default_scenario = y["services"]["producer"]["command"][1].as_str().unwrap();
    let path = default_scenario.strip_prefix("${CONVEYOR_SCENARIO:-").and_then(|s| s.strip_suffix('}')).unwrap();
    assert!(path.contains("soak"), "producer runs the soak scenario by default: {path}");
    conveyor::bench::scenario::Scenario::load(&repo().join(path)).unwrap_or_else(|e| panic!("default scenario: {e}"));

    let redis: Vec<&str> =
        y["services"]["redis"]["command"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
    let redis = redis.join(" ");
    assert!(redis.contains("--appendonly yes") && redis.contains("--maxmemory-policy noeviction"), "{redis}");
    let mounts = |s: &str| -> Vec<String> {
        y["services"][s]["volumes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    assert!(mounts("redis").contains(&"redis-data:/data".to_owned()));
    assert!(mounts("prometheus").contains(&"prometheus-data:/prometheus".to_owned()), "TSDB on a volume");
    assert!(mounts("prometheus").contains(&"./prometheus:/etc/prometheus:ro".to_owned()), "config and rules mounted");
    assert!(mounts("grafana").iter().any(|m| m.starts_with("./grafana/provisioning:")));
    assert!(mounts("grafana").iter().any(|m| m.starts_with("./grafana/dashboards:/var/lib/grafana/dashboards")));
    for v in ["redis-data", "prometheus-data", "grafana-data"] {
        assert!(y["volumes"].as_mapping().unwrap().contains_key(v), "volume {v} not declared");
    }
    let g = &y["services"]["grafana"]["environment"];
    assert!(
        g["GF_SECURITY_ADMIN_PASSWORD"].as_str().unwrap().starts_with("${GRAFANA_ADMIN_PASSWORD"),
        "admin password from env"
    );
    assert_eq!(g["GF_AUTH_ANONYMOUS_ENABLED"], "true");
    assert_eq!(g["GF_AUTH_ANONYMOUS_ORG_ROLE"], "Viewer");
    // Prometheus scrapes the compose services by their names.
    let p: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("prometheus/prometheus.yml")).unwrap()).unwrap();
    let text = serde_yaml::to_string(&p["scrape_configs"]).unwrap();
    for target in ["worker", "producer", "exporter:9464", "redis-exporter:9121"] {
        assert!(text.contains(target), "prometheus.yml does not scrape {target}");
    }

    // The Dockerfile: multi-stage release build, non-root runtime.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.matches("\nFROM ").count() >= 2, "multi-stage");
    assert!(dockerfile.contains("--release"));
    assert!(dockerfile.lines().any(|l| l.starts_with("USER ") && !l.contains("root")), "non-root user");

    // And docker-compose itself accepts the file (no engine needed for `config`).
    let mut c = tool("docker-compose", "docker-compose");
    c.current_dir(repo()).args(["-f", "docker-compose.yml", "config", "-q"]).env("GRAFANA_ADMIN_PASSWORD", "test");
    run_ok(c);
}

#[test]
fn the_exporter_reports_every_queue_from_redis_served_or_not() {
    let server = crate::support::own_server(&[]);
    let url = server.url();
    for (n, priority) in [(1, "normal"), (2, "high"), (3, "high")] {
        run_ok(conveyor_cli([
            "enqueue",
            "orphan",
            "test.work",
            "--json",
            &format!("{{\"n\": {n}}}"),
            "--priority",
            priority,
            "--redis-url",
            &url,
        ]));
    }
    let port = free_port();
    let mut exporter = conveyor_cli(["exporter", "--every", "200ms", "--redis-url", &url]);
    exporter.args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let mut process = Process::spawn("conveyor exporter", exporter.stdout(Stdio::null()).stderr(Stdio::null()));
    let sees = |paused: f64| {
        let text = http_get(port, "/metrics")?;
        let e = Exposition::parse(&text);
        let at = |name: &str, with: &[(&str, &str)]| e.matching(name, with).next().map(|s| s.value);
        (at("conveyor_queue_depth", &[("queue", "orphan"), ("state", "waiting")]) == Some(3.0)
            && at("conveyor_worker_processes", &[("queue", "orphan")]) == Some(0.0)
            && at("conveyor_queue_paused", &[("queue", "orphan")]) == Some(paused)
            && at("conveyor_queue_waiting_by_priority", &[("queue", "orphan"), ("priority", "high")]) == Some(2.0)
            && at("conveyor_queue_waiting_by_priority", &[("queue", "orphan"), ("priority", "low")]) == Some(0.0))
        .then_some(text)
    };
    let text = wait_for("the exporter to report the queue", Duration::from_secs(120), || sees(0.0));
    let e = check_exposition(&text, &[("conveyor_queue_depth", "gauge"), ("conveyor_worker_processes", "gauge")]);
    assert_eq!(e.sum("conveyor_scenario_info", &[("role", "exporter"), ("phase", "serve")]), 1.0);
    run_ok(conveyor_cli(["pause", "orphan", "--redis-url", &url]));
    wait_for("the exporter to see the pause", Duration::from_secs(120), || sees(1.0));
    process.terminate(Duration::from_secs(30));
    assert!(process.child.wait().unwrap().success(), "the exporter stops cleanly on SIGTERM");

    let off = conveyor_cli(["exporter", "--metrics-addr", "off", "--redis-url", &url]).output().unwrap();
    assert_eq!(off.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&off.stderr).contains("--metrics-addr off leaves nothing to do"));
}
