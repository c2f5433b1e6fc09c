//! The results directory of a run: `results/<UTC timestamp>-<scenario>/` with
//! - `result.json`: the whole [`SuiteResult`] (schema: `schema/result.schema.json`);
//! - `report.md`: summary tables and PASS/FAIL per target;
//! - `report.html`: the same with SVG charts, one self-contained page;
//! - `histograms.hlog`: every latency histogram of every run, and each cell's merged ones, in
//!   the HdrHistogram interval-log format (V2, compressed, base64), tagged
//!   `<cell>/<run>/<stage>` (`<run>` is `all` for the merged histogram), so any HdrHistogram
//!   tool can re-read the exact distributions.
//!
//! Files are written under a temporary name and renamed, so a reader never sees half a file.

use super::suite::SuiteResult;
use super::{html, markdown};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Writes the results directory under `root` and returns its path.
pub fn write(suite: &SuiteResult, root: &Path) -> std::io::Result<PathBuf> {
    // 2026-11-23T17:53:54.105Z → 20261123T175354Z
    let seconds = suite.started_at.split(['.', 'Z', '+']).next().unwrap_or_default();
    let stamp: String = seconds.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>() + "Z";
    let mut dir = root.join(format!("{stamp}-{}", suite.scenario));
    // Two runs started in the same second get distinct directories.
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = root.join(format!("{stamp}-{}-{n}", suite.scenario));
    }
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::to_vec_pretty(suite).map_err(std::io::Error::other)?;
    write_atomic(&dir.join("result.json"), &json)?;
    write_atomic(&dir.join("report.md"), markdown::render(suite).as_bytes())?;
    write_atomic(&dir.join("report.html"), html::render(suite).as_bytes())?;
    write_atomic(&dir.join("histograms.hlog"), &histogram_log(suite)?)?;
    Ok(dir)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Every histogram as an HdrHistogram interval log.
pub fn histogram_log(suite: &SuiteResult) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder.add_comment(&format!("conveyor {} histograms (microseconds); tag = cell/run/stage", suite.scenario));
    builder.with_start_time(SystemTime::now());
    let mut log = builder.begin_log_with(&mut out, &mut serializer)?;
    for cell in &suite.cells {
        let cell_tag: String = cell.label.chars().map(|c| if c == ' ' || c == ',' { '_' } else { c }).collect();
        let runs = cell.runs.iter().enumerate().map(|(i, r)| ((i + 1).to_string(), &r.histograms));
        for (run, histograms) in runs.chain(std::iter::once(("all".to_owned(), &cell.histograms))) {
            for (stage, h) in histograms {
                if h.is_empty() {
                    continue;
                }
                let tag = format!("{cell_tag}/{run}/{stage}");
                log.write_histogram(h.histogram(), Duration::ZERO, Duration::ZERO, Tag::new(&tag))
                    .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
            }
        }
    }
    Ok(out)
}
