//! SVG charts for `report.html`, drawn with plotters' SVG backend (pure Rust, no fonts to load):
//! - the latency percentile spectrum of each stage (percentile on a log scale of 1/(1−q), so
//!   p50, p90, p99, p99.9 are evenly spaced; one line per cell);
//! - throughput and queue depth over time (one line per cell, its last run);
//! - the scaling curve when the matrix varies a number (throughput per axis value, with the
//!   spread of the repeats).

use super::suite::SuiteResult;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One chart: its SVG markup and a caption.
#[derive(Debug, Clone)]
pub struct Chart {
    /// A complete `<svg>` element, embedded as is in `report.html`.
    pub svg: String,
    /// What the chart shows, in plain text (escaped when it is written as a `<figcaption>`).
    pub caption: String,
}

const SIZE: (u32, u32) = (580, 360);
/// Rightmost point of the spectrum: 1/(1−q) = 10^4, the 99.99th percentile.
const SPECTRUM_NINES: f64 = 4.0;

/// Every chart the suite has data for.
pub fn all(suite: &SuiteResult) -> Vec<Chart> {
    let mut charts = Vec::new();
    for stage in ["end_to_end", "enqueue_to_start", "start_to_complete", "ops.claim", "ops.enqueue"] {
        if let Some(c) = spectrum(suite, stage) {
            charts.push(c);
        }
    }
    if let Some(c) = over_time(suite, "throughput (jobs/s)", |s| s.jobs_per_second) {
        charts.push(c);
    }
    if let Some(c) = over_time(suite, "queue depth (waiting jobs)", |s| Some(s.waiting as f64)) {
        charts.push(c);
    }
    if let Some(c) = scaling(suite) {
        charts.push(c);
    }
    charts
}

fn color(i: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(i).to_rgba().rgb();
    RGBColor(r, g, b)
}

/// Latency (log axis, in µs, ms or s as its values need) against percentile for one stage.
fn spectrum(suite: &SuiteResult, stage: &str) -> Option<Chart> {
    let lines_us: Vec<(String, Vec<(f64, f64)>)> = suite
        .cells
        .iter()
        .filter_map(|c| {
            let h = c.histograms.get(stage)?.histogram();
            if h.is_empty() {
                return None;
            }
            let points = (0..=80)
                .map(|i| {
                    let x = SPECTRUM_NINES * f64::from(i) / 80.0;
                    let q = 1.0 - 10f64.powf(-x);
                    (x, h.value_at_quantile(q).max(1) as f64)
                })
                .collect();
            Some((c.label.clone(), points))
        })
        .collect();
    if lines_us.is_empty() {
        return None;
    }
    let top_us = lines_us.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(0.0, f64::max);
    let (unit, us_per_unit) = latency_unit(top_us);
    let lines: Vec<(String, Vec<(f64, f64)>)> = lines_us
        .into_iter()
        .map(|(label, points)| (label, points.into_iter().map(|(x, us)| (x, us / us_per_unit)).collect()))
        .collect();
    let lo = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(f64::INFINITY, f64::min).max(1.0 / us_per_unit);
    let hi = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(0.0, f64::max).max(lo * 10.0);
    let title = format!("{stage} latency by percentile");
    let svg = draw(&title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&title, ("sans-serif", 16))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..SPECTRUM_NINES, (lo * 0.8..hi * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc(unit)
            .x_labels(5)
            .x_label_formatter(&|x| percentile_label(*x))
            .y_labels(6)
            .y_label_formatter(&|y| compact(*y))
            .draw()?;
        for (i, (label, points)) in lines.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        Ok(())
    })?;
    Some(Chart { svg, caption: format!("{stage}: latency at each percentile (merged histograms of every run)") })
}

/// The unit latency values around `top_us` read best in, and microseconds per unit.
fn latency_unit(top_us: f64) -> (&'static str, f64) {
    if top_us < 1_000.0 {
        ("µs", 1.0)
    } else if top_us < 10_000_000.0 {
        ("ms", 1_000.0)
    } else {
        ("s", 1_000_000.0)
    }
}

/// An axis label: at most three significant digits, no trailing zeros ("2", "0.05", "150").
fn compact(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

fn percentile_label(x: f64) -> String {
    match x.round() as i32 {
        0 => "p0".into(),
        1 => "p90".into(),
        2 => "p99".into(),
        3 => "p99.9".into(),
        4 => "p99.99".into(),
        _ => String::new(),
    }
}

/// One cell's line: its index (so each cell keeps its colour across charts), label and points.
type CellLine = (usize, String, Vec<(f64, f64)>);

/// A per-second series over time, one line per cell (its last run); samples without a value
/// (throughput nobody reported) are left out.
fn over_time(suite: &SuiteResult, what: &str, value: fn(&super::Sample) -> Option<f64>) -> Option<Chart> {
    let lines: Vec<CellLine> = suite
        .cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let run = c.runs.last()?;
            let points: Vec<(f64, f64)> =
                run.timeline.iter().filter_map(|s| value(s).map(|v| (s.t_seconds, v))).collect();
            (points.len() >= 2).then(|| (i, c.label.clone(), points))
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    let t_max = lines.iter().flat_map(|(_, _, p)| p.iter().map(|p| p.0)).fold(1.0, f64::max);
    let y_max = lines.iter().flat_map(|(_, _, p)| p.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.1;
    let svg = draw(what, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(what, ("sans-serif", 16))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max)?;
        chart.configure_mesh().x_desc("seconds since producers started").draw()?;
        for (i, label, points) in &lines {
            let c = color(*i);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
        Ok(())
    })?;
    Some(Chart { svg, caption: format!("{what}, sampled every second (last run of each cell)") })
}

/// Where a cell sits on the matrix's axis: its value, or for a rate given as a share of
/// capacity ("50% capacity") the rate its runs were given (with the text, to label the point).
fn axis_position(c: &super::CellResult, axis: &str) -> Option<(f64, Option<String>)> {
    let text = c.params.get(axis)?;
    if let Ok(x) = text.parse::<f64>() {
        return Some((x, None));
    }
    if axis != "rate" {
        return None;
    }
    let mut rates: Vec<f64> = c.runs.iter().filter_map(|r| r.setup.rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).map(|x| (*x, Some(text.clone())))
}

/// Throughput against the matrix's numeric axis.
fn scaling(suite: &SuiteResult) -> Option<Chart> {
    if suite.axes.len() != 1 || suite.cells.len() < 2 {
        return None;
    }
    let axis = &suite.axes[0];
    let mut points: Vec<(f64, f64, f64, f64)> = Vec::new();
    let mut named: Vec<(f64, f64, String)> = Vec::new();
    for c in &suite.cells {
        let (Some((x, name)), Some(m)) = (axis_position(c, axis), c.metrics.get("throughput")) else { continue };
        points.push((x, m.value, m.min, m.max));
        if let Some(name) = name {
            named.push((x, m.value, name));
        }
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    if points.len() < 2 {
        return None;
    }
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_max = points.iter().map(|p| p.3).fold(1.0, f64::max) * 1.1;
    let title = format!("throughput by {axis}");
    let svg = draw(&title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&title, ("sans-serif", 16))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart.configure_mesh().x_desc(axis.as_str()).y_desc("jobs/s").draw()?;
        let c = color(0);
        chart.draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), c.stroke_width(2)))?;
        chart.draw_series(points.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))?;
        chart.draw_series(points.iter().map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], c.stroke_width(1))))?;
        chart.draw_series(named.iter().map(|(x, y, name)| {
            // Right-aligned above its point: the share-of-capacity cell is usually the rightmost.
            let style = ("sans-serif", 12).into_font().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Bottom));
            Text::new(format!("{name} ({x:.0}/s) "), (*x, *y), style)
        }))?;
        Ok(())
    })?;
    Some(Chart { svg, caption: format!("scaling curve: median throughput per {axis} (bars: lowest to highest run)") })
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws into an SVG string; a drawing error leaves the chart out (logged), never fails a run.
fn draw(what: &str, f: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> DrawResult) -> Option<String> {
    let mut svg = String::new();
    let outcome = {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| f(&root).map_err(|e| e.to_string()))
            .and_then(|_| root.present().map_err(|e| e.to_string()))
    };
    match outcome {
        Ok(()) => Some(svg),
        Err(e) => {
            tracing::warn!(chart = what, error = %e, "chart left out of the report");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_axes_use_a_readable_unit_and_short_labels() {
        assert_eq!(latency_unit(3.0), ("µs", 1.0), "a few µs read as µs, not 0.003 ms");
        assert_eq!(latency_unit(45_000.0), ("ms", 1_000.0));
        assert_eq!(latency_unit(30_000_000.0), ("s", 1_000_000.0));
        assert_eq!(compact(0.0100000001), "0.01");
        assert_eq!(compact(2.0), "2");
        assert_eq!(compact(1.5), "1.5");
        assert_eq!(compact(150.0), "150");
        assert_eq!(compact(0.00123456), "0.00123");
    }
}
