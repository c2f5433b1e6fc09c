//! The live check: redis_exporter, a conveyor worker process and a conveyor producer process on
//! 127.0.0.1, and a real Prometheus started with a copy of the shipped `prometheus.yml` (its
//! jobs pointed at those local targets, intervals shortened) and the shipped rules. While the
//! run goes on, every dashboard and rule expression must name only metrics the processes
//! really export, every dashboard expression must return data (only `offset 1d` comparisons,
//! which need a day of history, may be empty), and every rule group must be healthy. After the
//! run, what Prometheus computes from the worker's counters and buckets must agree with the
//! run's report.

use super::*;

/// Prometheus's own series that dashboards and rules may use.
const PROMETHEUS_SERIES: &[&str] = &["up", "ALERTS"];

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query; panics when Prometheus rejects it (a parse error), else its result list.
fn query(port: u16, expr: &str) -> Vec<serde_json::Value> {
    let body = http_get(port, &format!("/api/v1/query?query={}", encode(expr)))
        .unwrap_or_else(|| panic!("Prometheus rejected or did not answer: {expr}"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{expr}: {body}");
    match v["data"]["resultType"].as_str() {
        Some("scalar") => vec![v["data"]["result"].clone()],
        _ => v["data"]["result"].as_array().cloned().unwrap_or_default(),
    }
}

fn single_value(port: u16, expr: &str) -> f64 {
    let r = query(port, expr);
    assert_eq!(r.len(), 1, "{expr}: {r:?}");
    r[0]["value"][1].as_str().unwrap().parse().unwrap()
}

/// Grafana's variables as the live check fills them in.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "5s")
        .replace("$__range", "5m")
        .replace("$scenario", ".*")
        .replace("$queue", ".*")
        .replace("$instance", ".*")
}

/// A copy of the shipped prometheus.yml: each job scrapes its local target every second.
fn local_config(targets: &BTreeMap<&str, u16>) -> String {
    let shipped = repo().join("prometheus");
    let mut y: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(shipped.join("prometheus.yml")).unwrap()).unwrap();
    y["global"]["scrape_interval"] = "1s".into();
    y["global"]["scrape_timeout"] = "1s".into();
    y["global"]["evaluation_interval"] = "1s".into();
    let rules: Vec<serde_yaml::Value> = y["rule_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| shipped.join(f.as_str().unwrap()).display().to_string().into())
        .collect();
    y["rule_files"] = rules.into();
    for job in y["scrape_configs"].as_sequence_mut().unwrap() {
        let name = job["job_name"].as_str().unwrap().to_owned();
        let port = targets.get(name.as_str()).unwrap_or_else(|| panic!("no local target for job {name}"));
        let job = job.as_mapping_mut().unwrap();
        job.remove("dns_sd_configs");
        let static_configs: serde_yaml::Value =
            serde_yaml::from_str(&format!("[{{targets: [\"127.0.0.1:{port}\"]}}]")).unwrap();
        job.insert("static_configs".into(), static_configs);
    }
    serde_yaml::to_string(&y).unwrap()
}

#[test]
fn live_prometheus_answers_every_dashboard_expression_and_agrees_with_the_report() {
    let redis_url = crate::support::shared_server().url();
    let dir = tempfile::tempdir().unwrap();
    let queue = crate::support::unique_name("live");
    // No warm-up: the workers export every job they run, the report counts measured jobs only,
    // and without a warm-up the two are the same jobs, so their figures can be compared.
    let text = OPEN_LOOP_WITH_FAILURES.replace("DURATION", "20s").replace("warmup = \"1s\"", "warmup = \"0s\"");
    let scenario = write_scenario(dir.path(), &queue, &text);
    let ports: BTreeMap<&str, u16> =
        ["conveyor-producer", "conveyor-worker", "conveyor-exporter", "redis", "prometheus"]
            .into_iter()
            .map(|job| (job, free_port()))
            .collect();
    let addr = |job: &str| format!("127.0.0.1:{}", ports[job]);

    let mut exporter = tool("prometheus-redis-exporter", "prometheus-redis-exporter");
    exporter.args(["-redis.addr", &redis_url, "-web.listen-address", &addr("redis")]);
    let _exporter = Process::spawn("redis_exporter", exporter.stdout(Stdio::null()).stderr(Stdio::null()));

    let mut worker = conveyor_cli(["worker"]);
    worker.arg(&scenario).args(["--redis-url", &redis_url, "--metrics-addr", &addr("conveyor-worker")]);
    let _worker = Process::spawn("conveyor worker", worker.stdout(Stdio::null()).stderr(Stdio::null()));
    wait_for("the worker's /metrics", Duration::from_secs(120), || {
        let text = http_get(ports["conveyor-worker"], "/metrics")?;
        (Exposition::parse(&text).sum("conveyor_scenario_info", &[("phase", "serve")]) == 1.0).then_some(())
    });

    // conveyor exporter, and a cron entry on a queue of its own (its jobs wait: no worker
    // serves that queue) for the operations panels.
    let cron_queue = format!("{queue}-cron");
    let mut cron = conveyor_cli(["cron", "run", &cron_queue, "tick", "* * * * * *", "test.tick", "--json", "{}"]);
    cron.args(["--redis-url", &redis_url]);
    let _cron = Process::spawn("conveyor cron run", cron.stdout(Stdio::null()).stderr(Stdio::null()));
    let mut watch = conveyor_cli(["exporter", "--every", "500ms", "--queue", &queue, "--queue", &cron_queue]);
    watch.args(["--redis-url", &redis_url, "--metrics-addr", &addr("conveyor-exporter")]);
    let _watch = Process::spawn("conveyor exporter", watch.stdout(Stdio::null()).stderr(Stdio::null()));
    wait_for("the exporter to see the cron entry fire", Duration::from_secs(120), || {
        let text = http_get(ports["conveyor-exporter"], "/metrics")?;
        let e = Exposition::parse(&text);
        (e.sum("conveyor_cron_last_fired_timestamp_seconds", &[("queue", &cron_queue)]) > 0.0
            && e.sum("conveyor_queue_depth", &[("queue", &cron_queue), ("state", "waiting")]) > 0.0
            && e.matching("conveyor_worker_processes", &[("queue", &cron_queue)]).any(|s| s.value == 0.0))
        .then_some(())
    });

    std::fs::write(dir.path().join("prometheus.yml"), local_config(&ports)).unwrap();
    let mut prometheus = tool("prometheus", "prometheus");
    prometheus
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address={}", addr("prometheus")))
        .arg("--log.level=warn");
    let _prometheus = Process::spawn("prometheus", prometheus.stdout(Stdio::null()).stderr(Stdio::null()));
    let prom = ports["prometheus"];
    wait_for("Prometheus to be ready", Duration::from_secs(120), || http_get(prom, "/-/ready"));

    let mut produce = conveyor_cli(["produce", "--quiet", "--json"]);
    produce.arg(&scenario).args(["--redis-url", &redis_url, "--metrics-addr", &addr("conveyor-producer")]);
    produce.arg("--results").arg(dir.path().join("results"));
    let mut producer = Process::spawn("conveyor produce", produce.stdout(Stdio::piped()).stderr(Stdio::null()));
    let started = Instant::now();

    // Mid-run: Prometheus has several scrapes of every target and rule evaluations. (The run
    // lasts 20 s, so the producer still runs while the expressions below are checked.)
    wait_for("Prometheus to see jobs completing and every target up", Duration::from_secs(120), || {
        let completed =
            query(prom, &format!("conveyor_jobs_completed_total{{queue=\"{queue}\",outcome=\"success\"}} > 0"));
        let up = query(prom, "up == 1");
        (started.elapsed() > Duration::from_secs(7) && !completed.is_empty() && up.len() == ports.len()).then_some(())
    });

    // Names: from real scrapes of the producer, the worker and redis_exporter.
    let producer_text = http_get(ports["conveyor-producer"], "/metrics").expect("producer scrape");
    let worker_text = http_get(ports["conveyor-worker"], "/metrics").expect("worker scrape");
    let exporter_text = http_get(ports["redis"], "/metrics").expect("redis_exporter scrape");
    let watch_text = http_get(ports["conveyor-exporter"], "/metrics").expect("conveyor exporter scrape");
    let watch_scrape = check_exposition(
        &watch_text,
        &[
            ("conveyor_queue_depth", "gauge"),
            ("conveyor_worker_processes", "gauge"),
            ("conveyor_queue_paused", "gauge"),
            ("conveyor_cron_last_fired_timestamp_seconds", "gauge"),
        ],
    );
    assert!(
        watch_scrape.sum("conveyor_worker_processes", &[("queue", &queue)]) >= 1.0,
        "the exporter counts the live worker process of the run's queue"
    );
    let producer_scrape = check_exposition(
        &producer_text,
        &[
            ("conveyor_jobs_enqueued_total", "counter"),
            ("conveyor_producer_schedule_lag_seconds", "gauge"),
            ("conveyor_queue_depth", "gauge"),
            ("conveyor_scenario_info", "gauge"),
            ("process_resident_memory_bytes", "gauge"),
        ],
    );
    assert_eq!(producer_scrape.sum("conveyor_scenario_info", &[("role", "producer"), ("phase", "measure")]), 1.0);
    assert!(producer_scrape.sum("conveyor_jobs_enqueued_total", &[("queue", &queue)]) > 0.0);
    let worker_scrape = check_exposition(
        &worker_text,
        &[
            ("conveyor_jobs_completed_total", "counter"),
            ("conveyor_job_end_to_end_seconds", "histogram"),
            ("conveyor_workers", "gauge"),
            ("conveyor_jobs_in_flight", "gauge"),
            ("process_cpu_seconds_total", "counter"),
        ],
    );
    assert!(worker_scrape.sum("conveyor_jobs_completed_total", &[("queue", &queue), ("outcome", "success")]) > 0.0);
    let mut exported: BTreeSet<String> = producer_scrape.names();
    exported.extend(worker_scrape.names());
    exported.extend(Exposition::parse(&exporter_text).names());
    exported.extend(watch_scrape.names());
    exported.extend(PROMETHEUS_SERIES.iter().map(|s| s.to_string()));
    for file in files_in(&repo().join("prometheus/rules"), "yml") {
        exported.extend(rule_names(&file, "record"));
    }
    let dashboards = dashboard_queries();
    let mut unknown = Vec::new();
    for (place, expr) in dashboards.iter().map(|q| (q.place.clone(), q.expr.clone())).chain(rule_expressions()) {
        for name in promql::metric_names(&expr) {
            if !exported.contains(&name) {
                unknown.push(format!("{place}: {name}"));
            }
        }
    }
    assert!(unknown.is_empty(), "expressions use metrics nobody exports:\n{}", unknown.join("\n"));

    // Every dashboard expression parses and returns data. Recording rules and rates need a few
    // evaluations and scrapes first, which a busy machine delays: an expression without data
    // is asked again until it has some, or two minutes have passed.
    let (mut passed, mut failed) = (0, Vec::new());
    let asked = Instant::now();
    let mut waiting: Vec<_> = dashboards.iter().collect();
    loop {
        waiting.retain(|q| {
            let expr = substitute(&q.expr);
            let has_data = !query(prom, &expr).is_empty() || expr.contains("offset 1d");
            if has_data {
                passed += 1;
            }
            !has_data
        });
        if waiting.is_empty() || asked.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    failed.extend(waiting.iter().map(|q| format!("{}: no data for {}", q.place, substitute(&q.expr))));
    // Every rule group loads and evaluates healthily.
    let rules: serde_json::Value = serde_json::from_str(&http_get(prom, "/api/v1/rules").unwrap()).unwrap();
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert!(groups.len() >= 5, "rule groups loaded: {}", groups.len());
    for g in groups {
        for r in g["rules"].as_array().unwrap() {
            if r["health"] == "ok" {
                passed += 1;
            } else {
                failed.push(format!("rule {} in {}: health {} {}", r["name"], g["name"], r["health"], r["lastError"]));
            }
        }
    }
    // Jobs per CPU-second divides by the CPU rate: with fractional CPU seconds that rate is
    // steady, and an instance with no CPU in the interval has no point instead of +Inf or NaN.
    let per_cpu = dashboards.iter().find(|q| q.place.contains("Jobs per CPU-second")).expect("the panel");
    let values: Vec<String> = query(prom, &substitute(&per_cpu.expr))
        .iter()
        .map(|r| r["value"][1].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!values.is_empty(), "{}: no data", per_cpu.place);
    assert!(values.iter().all(|v| v.parse::<f64>().is_ok_and(f64::is_finite)), "{}: {values:?}", per_cpu.place);
    let worker_cpu = single_value(prom, "rate(process_cpu_seconds_total{job=\"conveyor-worker\"}[5s])");
    println!("worker CPU {worker_cpu:.4} CPU-s/s; jobs per CPU-second {values:?}");
    assert!(worker_cpu > 0.0 && worker_cpu < 4.0, "worker CPU rate {worker_cpu}");
    println!("observability: {passed} passed, {} failed", failed.len());
    assert!(failed.is_empty(), "{} failed:\n{}", failed.len(), failed.join("\n"));

    // After the run: the counters and buckets, as Prometheus sees them (summed over processes:
    // the producer exports the same series at 0), agree with the report the producer wrote.
    let status = wait_for("the run to end", Duration::from_secs(180), || producer.child.try_wait().unwrap());
    let mut json = String::new();
    producer.child.stdout.take().unwrap().read_to_string(&mut json).unwrap();
    assert!(status.success(), "conveyor produce failed: {status}\n{json}");
    let output: serde_json::Value = serde_json::from_str(&json).unwrap();
    // The run's result: the top level, or the single run of a report's single cell.
    let report = if output["counts"].is_object() { &output } else { &output["cells"][0]["runs"][0] };
    assert_eq!(report["counts"]["lost"], 0, "{json}");
    let completed = report["counts"]["completed"].as_f64().unwrap();
    let measured = report["latency_us"]["end_to_end"]["count"].as_f64().unwrap();
    let p99_report = report["latency_us"]["end_to_end"]["p99"].as_f64().unwrap() / 1e6;
    let q = &queue;
    let completed_expr =
        format!("sum(max_over_time(conveyor_jobs_completed_total{{queue=\"{q}\",outcome=\"success\"}}[5m]))");
    let count_expr = format!("sum(max_over_time(conveyor_job_end_to_end_seconds_count{{queue=\"{q}\"}}[5m]))");
    wait_for("Prometheus to scrape the worker's final counts", Duration::from_secs(120), || {
        (single_value(prom, &completed_expr) == completed && single_value(prom, &count_expr) == measured).then_some(())
    });
    // p99 from the buckets: the report's HDR p99 lies in the bucket Prometheus interpolates in.
    let buckets = query(
        prom,
        &format!("sum by (le) (max_over_time(conveyor_job_end_to_end_seconds_bucket{{queue=\"{q}\"}}[5m]))"),
    );
    let mut cumulative: Vec<(f64, f64)> = buckets
        .iter()
        .map(|b| {
            let le = b["metric"]["le"].as_str().unwrap();
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            (le, b["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        })
        .collect();
    cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank = 0.99 * measured;
    let at = cumulative.iter().position(|(_, n)| *n >= rank).unwrap();
    let (lower, upper) = (if at == 0 { 0.0 } else { cumulative[at - 1].0 }, cumulative[at].0);
    assert!(
        p99_report >= lower * 0.999 && p99_report <= upper * 1.001,
        "report p99 {p99_report}s is outside Prometheus's p99 bucket ({lower}, {upper}]"
    );
    let p99_prometheus = single_value(
        prom,
        &format!(
            "histogram_quantile(0.99, sum by (le) (max_over_time(conveyor_job_end_to_end_seconds_bucket{{queue=\"{q}\"}}[5m])))"
        ),
    );
    assert!(
        p99_prometheus >= lower && p99_prometheus <= upper,
        "Prometheus p99 {p99_prometheus}s vs report {p99_report}s: bucket ({lower}, {upper}]"
    );
    println!("p99 end-to-end: report {p99_report:.6}s, Prometheus {p99_prometheus:.6}s, bucket ({lower}, {upper}]");
}
