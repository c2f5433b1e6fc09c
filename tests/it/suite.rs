//! Whole suites: matrix cells, repeats after a warm-up run, targets, a pre-filled backlog, rate
//! ramps, an injected worker stall, the results directory (result.json checked against its
//! schema, report.md, report.html, the histogram log), exit codes, and `conveyor compare`.
//! Job counts stay tiny: these check behaviour, not speed.

use crate::support::{self, conveyor, never};
use conveyor::bench::report::SuiteResult;
use conveyor::bench::run::{self, SuiteOptions};
use conveyor::bench::scenario::Scenario;
use std::path::Path;

fn scenario(text: &str) -> Scenario {
    support::scenario("suite", text)
}

fn options() -> SuiteOptions {
    SuiteOptions { run: support::run_options(), repeats: None, announce: false }
}

async fn suite(s: &Scenario) -> SuiteResult {
    let redis = support::redis().await;
    run::run_suite(s, &redis, &options(), never()).await.unwrap_or_else(|e| panic!("suite failed: {e}"))
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/result.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("the schema itself is valid")
}

fn assert_valid(json: &serde_json::Value) {
    let errors: Vec<String> = schema().iter_errors(json).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "result.json does not match schema/result.schema.json:\n{}", errors.join("\n"));
}

#[actix_rt::test]
async fn a_matrix_with_repeats_targets_and_a_backlog_writes_a_valid_results_directory() {
    let s = scenario(
        "repeats = 2\n\
         [producer]\nduration = \"600ms\"\nrate = { ramp = { from = 200, to = 800, over = \"400ms\" } }\n\
         [backlog]\njobs = 300\nmeasured = true\n\
         [probes]\nredis_memory_jobs = 200\n\
         [[jobs]]\nkind = \"noop\"\npayload_bytes = 1000\n\
         [matrix]\nworkers = [1, 2]\n\
         [targets]\nlost = \"= 0\"\n\"end_to_end.p50\" = \"< 1us\"\n\"throughput@workers=2\" = \"> 1\"\n",
    );
    // A server of its own: the memory probe's figure is the growth of `used_memory`, which other
    // tests on the shared server would move.
    let server = support::own_server(&[]);
    let redis = conveyor::connection::Redis::connect(&server.url()).await.unwrap();
    let r = run::run_suite(&s, &redis, &options(), never()).await.unwrap_or_else(|e| panic!("suite failed: {e}"));
    assert!(r.warmup_run);
    assert_eq!(r.axes, ["workers"]);
    assert_eq!(r.cells.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(), ["workers=1", "workers=2"]);
    for cell in &r.cells {
        assert_eq!(cell.runs.len(), 2);
        let mut merged_count = 0;
        for run in &cell.runs {
            assert_eq!(run.counts.lost, 0, "{:?}", run.counts);
            assert_eq!(run.counts.finished, run.counts.produced);
            // The backlog is measured, and producers continue above its sequence numbers.
            assert!(run.counts.produced > 300 && run.counts.produced_warmup == 0, "{:?}", run.counts);
            assert_eq!(run.throughput.measured_jobs, run.counts.produced);
            assert!(run.setup.rate == Some(800.0), "a ramp's peak is its top rate: {:?}", run.setup.rate);
            // Redis keeps at least the payload for each queued job.
            assert!(run.memory.redis_bytes_per_job[0].bytes_per_job > 1000.0, "{:?}", run.memory);
            merged_count += run.latency_us.end_to_end.count;
        }
        // Percentiles over repeats come from one merged histogram holding every run's jobs.
        assert_eq!(cell.histograms["end_to_end"].len(), merged_count);
        let m = &cell.metrics["end_to_end.p99"];
        assert!(m.min <= m.max);
        assert_eq!(cell.metrics["lost"].value, 0.0);
    }
    // One target per cell for unqualified targets, one for the qualified.
    assert_eq!(r.targets.len(), 5);
    let failed: Vec<_> = r.failed_targets().map(|t| (t.metric.as_str(), t.cell.as_str())).collect();
    assert_eq!(failed, [("end_to_end.p50", "workers=1"), ("end_to_end.p50", "workers=2")]);
    assert!(!r.passed);

    let dir = tempfile::tempdir().unwrap();
    let out = conveyor::bench::report::files::write(&r, dir.path()).unwrap();
    assert!(out.file_name().unwrap().to_string_lossy().ends_with(&format!("Z-{}", r.scenario)));
    let json = support::read_json(&out.join("result.json"));
    assert_valid(&json);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**FAIL**") && md.contains("| PASS |") && md.contains("workers=2"), "{md}");

    // Every histogram, per run and merged, is in the log and decodes to the same count.
    let log = std::fs::read(out.join("histograms.hlog")).unwrap();
    let mut tags = Vec::new();
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(h)) = entry {
            let tag = h.tag().unwrap().as_str().to_owned();
            if tag == "workers=2/all/end_to_end" {
                let bytes = base64_decode(h.encoded_histogram());
                let hist: hdrhistogram::Histogram<u64> =
                    hdrhistogram::serialization::Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                assert_eq!(hist.len(), r.cells[1].histograms["end_to_end"].len());
            }
            tags.push(tag);
        }
    }
    assert!(tags.contains(&"workers=1/1/enqueue_to_start".to_owned()), "{tags:?}");
    assert!(tags.contains(&"workers=2/all/end_to_end".to_owned()), "{tags:?}");
    check_html(&std::fs::read_to_string(out.join("report.html")).unwrap(), 4);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// The page is well-formed XHTML with at least `charts` inline SVG charts, each with drawn paths.
fn check_html(html: &str, charts: usize) {
    let body = html.trim_start_matches("<!DOCTYPE html>");
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("report.html is not well-formed: {e}"));
    let svgs: Vec<_> = doc.descendants().filter(|n| n.tag_name().name() == "svg").collect();
    assert!(svgs.len() >= charts, "{} charts", svgs.len());
    for svg in &svgs {
        assert!(svg.attribute("width").is_some() && svg.attribute("viewBox").is_some(), "svg without size");
        let drawn = svg.descendants().filter(|n| matches!(n.tag_name().name(), "polyline" | "path" | "line")).count();
        assert!(drawn > 3, "an empty chart");
        assert!(svg.descendants().any(|n| n.tag_name().name() == "text"), "a chart without labels");
    }
    assert!(doc.descendants().any(|n| n.tag_name().name() == "table"));
}

/// Charts of `report.html` a reader can use: every cell of a rate matrix is on the scaling
/// curve, a share of capacity at the rate it was given; latencies of a few microseconds are
/// labelled in µs with short numbers, not as a column of overlapping "0.0010000".
#[actix_rt::test]
async fn report_charts_place_every_rate_cell_and_label_microsecond_latencies_readably() {
    let s = scenario(
        "[producer]\nduration = \"500ms\"\n[probes]\ncapacity_jobs = 500\n\
         [matrix]\nrate = [100, 300, \"50% capacity\"]\n",
    );
    let r = suite(&s).await;
    let html = conveyor::bench::report::html::render(&r);
    check_html(&html, 4);
    let doc = roxmltree::Document::parse(html.trim_start_matches("<!DOCTYPE html>")).unwrap();
    fn text_of<'a>(n: roxmltree::Node<'a, 'a>) -> Vec<&'a str> {
        n.descendants().filter_map(|t| t.text()).map(str::trim).filter(|t| !t.is_empty()).collect()
    }
    let svgs: Vec<_> = doc.descendants().filter(|n| n.tag_name().name() == "svg").collect();
    let chart = |title: &str| {
        *svgs
            .iter()
            .find(|svg| text_of(**svg).iter().any(|t| t.contains(title)))
            .unwrap_or_else(|| panic!("no {title:?} chart"))
    };
    let scaling = chart("throughput by rate");
    let points = scaling.descendants().filter(|n| n.tag_name().name() == "circle").count();
    assert_eq!(points, 3, "every cell is a point on the curve, the share of capacity too");
    assert!(text_of(scaling).iter().any(|t| t.contains("50% capacity")), "the share-of-capacity point is labelled");
    // Noop jobs run for a few µs: the axis says µs, and its labels are short numbers. (On a
    // busy machine a run can be preempted past 1 ms; then the axis may read ms, as it should.)
    let running = chart("start_to_complete latency by percentile");
    let labels = text_of(running);
    let slowest_us =
        r.cells.iter().filter_map(|c| c.histograms.get("start_to_complete")).map(|h| h.histogram().max()).max();
    assert!(slowest_us.is_some_and(|us| us > 0), "the runs recorded start_to_complete latencies");
    if slowest_us < Some(1_000) {
        assert!(
            labels.contains(&"µs"),
            "every run took under 1 ms ({slowest_us:?} µs at most), the axis reads µs: {labels:?}"
        );
    } else {
        assert!(labels.contains(&"µs") || labels.contains(&"ms"), "{labels:?}");
    }
    let numbers: Vec<&&str> = labels.iter().filter(|t| t.parse::<f64>().is_ok()).collect();
    assert!(!numbers.is_empty() && numbers.iter().all(|t| t.len() <= 5), "unreadable labels: {labels:?}");
}

/// A 1 s pause of every worker in an open-loop run lands in the latency percentiles: jobs
/// keep their intended send time, so the stall cannot hide (coordinated omission).
#[actix_rt::test]
async fn a_worker_stall_shows_up_in_the_open_loop_p99() {
    let s = scenario(
        "[producer]\nrate = 400\nduration = \"2500ms\"\n[workers]\ncount = 2\n\
         [[events]]\nat = \"700ms\"\npause_workers = \"1s\"\n",
    );
    let r = suite(&s).await;
    let run = &r.cells[0].runs[0];
    assert_eq!(run.counts.lost, 0);
    assert_eq!(run.pauses.len(), 1);
    // About 40% of the jobs arrive during or just before the pause; the 99th percentile waits
    // for nearly all of it. (A lower bound: a slower machine only makes it longer.)
    assert!(run.latency_us.end_to_end.p99 >= 800_000, "p99 {} µs hides the 1 s stall", run.latency_us.end_to_end.p99);
    assert!(run.latency_us.enqueue_to_start.p99 >= 800_000);
}

#[actix_rt::test]
async fn queue_ops_mode_times_each_operation_alone_and_loses_nothing() {
    let s = scenario(
        "mode = \"queue-ops\"\n[queue_ops]\nsamples = 60\n[queue]\nbackoff_base = \"1ms\"\nbackoff_max = \"2ms\"\n",
    );
    let r = suite(&s).await;
    let run = &r.cells[0].runs[0];
    assert_eq!(
        run.ops_us.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ack", "claim", "enqueue", "fail", "status"]
    );
    assert_eq!(run.ops_us["enqueue"].count, 60);
    assert_eq!(run.ops_us["ack"].count + run.ops_us["fail"].count, 60);
    assert_eq!(run.counts.produced, 60);
    assert_eq!(run.counts.finished, 60, "the retried jobs were finished afterwards");
    assert_eq!(run.counts.lost, 0);
    assert!(r.cells[0].metrics.contains_key("ops.claim.p99"));
}

/// Writes a scenario file named `name` and runs it; returns (exit code, stdout, stderr, result dir).
fn cli_run(dir: &Path, file: &str, text: &str) -> (Option<i32>, String, String, std::path::PathBuf) {
    let path = dir.join(file);
    std::fs::write(&path, format!("# test\ndescription = \"test\"\n{text}")).unwrap();
    let results = dir.join(format!("results-{file}"));
    let out = support::cli_run(&[], &results, &path);
    let result_dir = std::fs::read_dir(&results).map(|mut d| d.next().unwrap().unwrap().path()).unwrap_or_default();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        result_dir,
    )
}

#[test]
fn a_missed_target_exits_1_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let queue = support::unique_name("targets");
    let base = format!("[queue]\nname = \"{queue}\"\n[producer]\njobs = 200\n[targets]\nlost = \"= 0\"\n");
    let (code, stdout, stderr, _) = cli_run(dir.path(), "met.toml", &base);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS lost"), "{stdout}");
    let (code, stdout, stderr, result) =
        cli_run(dir.path(), "missed.toml", &format!("{base}\"start_to_complete.p50\" = \"> 1h\"\n"));
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("target start_to_complete.p50 > 1h not met"), "{stderr}");
    let md = std::fs::read_to_string(result.join("report.md")).unwrap();
    assert!(md.contains("**FAIL**"), "{md}");
}

#[test]
fn compare_exits_1_naming_the_metric_of_a_slower_run() {
    let dir = tempfile::tempdir().unwrap();
    let queue = support::unique_name("cmp");
    let common = format!("name = \"cmp\"\n[queue]\nname = \"{queue}\"\n[producer]\njobs = 300\n[workers]\ncount = 1\n");
    let (code, _, stderr, fast) = cli_run(dir.path(), "fast.toml", &format!("{common}[[jobs]]\nkind = \"noop\"\n"));
    assert_eq!(code, Some(0), "{stderr}");
    // The same scenario made slower: every job now sleeps 3 ms.
    let (code, _, stderr, slow) =
        cli_run(dir.path(), "slow.toml", &format!("{common}[[jobs]]\nkind = \"sleep\"\nduration = \"3ms\"\n"));
    assert_eq!(code, Some(0), "{stderr}");

    let out = conveyor().arg("compare").arg(&fast).arg(&slow).args(["--tolerance", "10%"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("REGRESSED") && stderr.contains("throughput (all)"), "{stderr}");
    assert!(stderr.contains("start_to_complete.p50"), "{stderr}");
    assert!(stdout.contains("REGRESSED") && stdout.contains("baseline"), "{stdout}");

    // A result compared with itself has nothing to report; the other way round is an improvement.
    let out = conveyor().arg("compare").arg(&fast).arg(fast.join("result.json")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // (Only the metrics the change moved are asserted: with 300 jobs, unrelated ones such as the
    // enqueue rate are noise and may cross any tolerance either way.)
    let out = conveyor().arg("compare").arg(&slow).arg(&fast).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = |metric: &str| stdout.lines().find(|l| l.split_whitespace().nth(1) == Some(metric)).unwrap_or_default();
    assert!(row("throughput").ends_with("better"), "{stdout}");
    assert!(row("start_to_complete.p50").ends_with("better"), "{stdout}");

    // Not a result: an error (exit 2) naming the file.
    let out = conveyor().arg("compare").arg(dir.path().join("fast.toml")).arg(&fast).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fast.toml"));
}

/// Samples follow CPU time, and frames in the C library and the kernel are not sampled: a noop
/// run of 500 jobs took 14 samples here, and none on a busy machine (which then wrote an empty
/// file). The profiled run spins (2 ms cpu jobs) to take more, and the file must be a valid SVG
/// that states its sample count whatever that count is.
#[test]
fn profile_writes_a_flame_graph_next_to_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[producer]\njobs = 500\n[[jobs]]\nkind = \"cpu\"\nduration = \"2ms\"\n";
    let (scenario, _) = support::scenario_file(dir.path(), "profiled.toml", "profile", text);
    let results = dir.path().join("results");
    let out = support::cli_run(&["--profile"], &results, &scenario);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result_dir = support::result_dir(&results);
    let svg = std::fs::read_to_string(result_dir.join("flamegraph.svg")).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &svg,
        roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() },
    )
    .unwrap_or_else(|e| panic!("flamegraph.svg is not well-formed: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let text: String = doc.descendants().filter_map(|n| n.text()).collect();
    let frames = doc.descendants().filter(|n| n.tag_name().name() == "rect").count();
    if text.contains("no CPU samples were taken") {
        // Possible on a starved machine: the file still says so, and so does the run.
        assert!(stderr.contains("--profile: only 0 CPU sample(s)"), "{stderr}");
    } else {
        assert!(frames > 1, "an empty flame graph ({frames} rect); stderr: {stderr}");
        let few = text.contains("sample(s): profile a longer");
        assert!(few || text.contains("samples at 997 Hz"), "the graph does not say its sample count: {text}");
        // The warning and the subtitle agree: few samples warn, enough do not.
        assert_eq!(stderr.contains("--profile: only"), few, "{stderr}");
    }
}
