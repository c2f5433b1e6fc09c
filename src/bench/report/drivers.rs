//! What a comparison of queues adds to the report: which library and worker settings each
//! driver ran, and every queue's headline figures as a ratio of the `conveyor` driver's (the
//! same harness, so the ratio is like with like; `native` against `conveyor` is what the
//! driver harness itself costs).

use super::metric;
use super::suite::{CellResult, SuiteResult};

/// Figures the ratio table holds.
const RATIO_METRICS: &[&str] =
    &["throughput", "end_to_end.p50", "end_to_end.p99", "cpu_per_job", "redis_bytes_per_job"];

fn driver_of(cell: &CellResult) -> Option<&str> {
    cell.params.get("driver").map(String::as_str)
}

/// Whether `suite` compares drivers (its one axis is `driver`).
pub fn is_comparison(suite: &SuiteResult) -> bool {
    suite.axes == ["driver"]
}

/// One row per driver: the library it ran and its worker settings.
pub fn setups(suite: &SuiteResult) -> (Vec<String>, Vec<Vec<String>>) {
    let header = ["driver", "library", "worker settings"].map(String::from).to_vec();
    let rows = suite
        .cells
        .iter()
        .filter_map(|c| {
            let name = driver_of(c)?;
            let run = c.runs.first()?;
            Some(match &run.driver {
                Some(d) => {
                    let settings: Vec<String> = d
                        .settings
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                        .collect();
                    vec![name.to_owned(), d.library.clone(), settings.join(", ")]
                }
                None => vec![
                    name.to_owned(),
                    format!("conveyor {} (in process, no driver)", run.system.conveyor_version),
                    format!(
                        "workers={}, concurrency={}, claim_batch={}",
                        run.setup.local_workers, run.setup.concurrency, run.setup.claim_batch
                    ),
                ],
            })
        })
        .collect();
    (header, rows)
}

/// Each queue's figures divided by the `conveyor` driver's (None without a conveyor cell).
/// Above 1 is more throughput, or more latency, CPU or memory, than conveyor.
pub fn ratios(suite: &SuiteResult) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    ratio_table(&suite.cells)
}

fn ratio_table(cells: &[CellResult]) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let base = cells.iter().find(|c| driver_of(c) == Some("conveyor"))?;
    let others: Vec<&CellResult> = cells.iter().filter(|c| driver_of(c) != Some("conveyor")).collect();
    if others.is_empty() {
        return None;
    }
    let mut header = vec!["metric".to_owned(), "conveyor".to_owned()];
    header.extend(others.iter().map(|c| format!("{} / conveyor", driver_of(c).unwrap_or("?"))));
    let rows = RATIO_METRICS
        .iter()
        .filter_map(|name| {
            let m = base.metrics.get(*name)?;
            let mut row = vec![(*name).to_owned(), metric::format(m.value, m.unit)];
            for c in &others {
                row.push(match c.metric(name) {
                    Some(v) if m.value > 0.0 => ratio(v / m.value),
                    _ => "–".to_owned(),
                });
            }
            Some(row)
        })
        .collect();
    Some((header, rows))
}

/// A ratio with two significant digits below 1 (`0.0011×`), two decimals up to 10, none above.
fn ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else if r >= 1.0 || r <= 0.0 {
        format!("{r:.2}×")
    } else {
        let digits = (-r.log10().floor()) as usize + 1;
        format!("{r:.digits$}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::suite::MetricSummary;
    use std::collections::BTreeMap;

    fn cell(driver: &str, throughput: f64) -> CellResult {
        let mut c = CellResult::new(format!("driver={driver}"), BTreeMap::new(), Vec::new());
        c.params.insert("driver".into(), driver.into());
        let m = MetricSummary { value: throughput, min: throughput, max: throughput, unit: metric::Unit::PerSecond };
        c.metrics.insert("throughput".into(), m);
        c
    }

    #[test]
    fn ratios_are_against_the_conveyor_driver() {
        let cells = vec![cell("conveyor", 1000.0), cell("bullmq", 250.0)];
        let (header, rows) = ratio_table(&cells).unwrap();
        assert_eq!(header, ["metric", "conveyor", "bullmq / conveyor"]);
        assert_eq!(rows, vec![vec!["throughput".to_owned(), "1000/s".into(), "0.25×".into()]]);
        assert!(ratio_table(&cells[1..]).is_none(), "no conveyor cell, no ratios");
        assert_eq!([ratio(0.001052), ratio(0.057), ratio(1.126), ratio(868.9)], ["0.0011×", "0.057×", "1.13×", "869×"]);
    }
}
