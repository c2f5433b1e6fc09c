//! `report.html`: one self-contained page (no scripts, no external files) with the verdict,
//! the targets, the side-by-side table and SVG charts (see [`super::charts`]). The page is
//! well-formed XML (XHTML served as HTML), so tests can parse it.

use super::charts;
use super::suite::SuiteResult;
use super::table;
use std::fmt::Write as _;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px}\
td{text-align:right}td:first-child,th:first-child{text-align:left}.pass{color:#080;font-weight:bold}\
.fail{color:#c00;font-weight:bold}figure{display:inline-block;margin:1em 1em 1em 0}figcaption{font-size:13px;color:#555}\
.context{font-size:13px;color:#444}";

/// The whole `report.html` page of a suite.
pub fn render(suite: &SuiteResult) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>\
         <title>conveyor: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&suite.scenario)
    );
    let _ = writeln!(s, "<h1>{}</h1><p>{}</p>", esc(&suite.scenario), esc(&suite.description));
    let (class, verdict) = if suite.passed { ("pass", "PASS") } else { ("fail", "FAIL") };
    let failed = suite.targets.iter().filter(|t| !t.passed).count();
    let _ = writeln!(
        s,
        "<p><span class=\"{class}\">{verdict}</span>: {} job(s) lost; {} of {} target check(s) met{}. \
         {} measured run(s) per cell{}.</p>",
        suite.lost,
        suite.targets.len() - failed,
        suite.targets.len(),
        if suite.interrupted { "; interrupted" } else { "" },
        suite.repeats,
        if suite.warmup_run { " after one unmeasured warm-up run" } else { "" }
    );
    if !suite.targets.is_empty() {
        s.push_str("<h2>Targets</h2><table><tr><th>target</th><th>cell</th><th>expected</th><th>measured</th><th>result</th></tr>\n");
        for t in &suite.targets {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&t.metric),
                esc(&t.cell),
                esc(&t.expected),
                esc(&t.shown),
                if t.passed { "pass" } else { "fail" },
                if t.passed { "PASS" } else { "FAIL" }
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>Charts</h2>\n");
    for chart in charts::all(suite) {
        let _ = writeln!(s, "<figure>{}<figcaption>{}</figcaption></figure>", chart.svg, esc(&chart.caption));
    }
    s.push_str("<h2>Results</h2>\n");
    let (header, rows) = table::rows(suite);
    html_table(&mut s, &header, &rows);
    if super::drivers::is_comparison(suite) {
        s.push_str("<h2>Queues</h2>\n");
        let (header, rows) = super::drivers::setups(suite);
        html_table(&mut s, &header, &rows);
        if let Some((header, rows)) = super::drivers::ratios(suite) {
            s.push_str("<p>Against the <code>conveyor</code> driver (the same harness; above 1 is more):</p>\n");
            html_table(&mut s, &header, &rows);
        }
    }
    let notes = suite.notes();
    if !notes.is_empty() {
        s.push_str("<h2>Notes</h2><ul>");
        for n in &notes {
            let _ = write!(s, "<li>{}</li>", esc(n));
        }
        s.push_str("</ul>\n");
    }
    let (sys, r) = (&suite.system, &suite.redis);
    let _ = writeln!(
        s,
        "<h2>Context</h2><p class=\"context\">{} × {}, {:.1} GB, {}<br/>Redis {} (appendonly {}, maxmemory-policy {}){}<br/>\
         conveyor {} (git {}), {} build; started {} UTC</p>",
        sys.cores,
        esc(&sys.cpu_model),
        sys.memory_bytes as f64 / 1e9,
        esc(&sys.os),
        esc(&r.version),
        esc(&r.appendonly),
        esc(&r.maxmemory_policy),
        if r.same_host { ", same host" } else { "" },
        esc(&sys.conveyor_version),
        esc(&sys.git_revision),
        if sys.release_build { "release" } else { "debug" },
        esc(&suite.started_at)
    );
    s.push_str("</body></html>\n");
    s
}

/// Escapes text for HTML and XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html_table(s: &mut String, header: &[String], rows: &[Vec<String>]) {
    s.push_str("<table><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}
