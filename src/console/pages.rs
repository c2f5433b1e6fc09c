//! The console's HTML, one function per page, written with maud: every value is escaped as it
//! is written (job names, payloads, errors, queue names), and no page holds an inline script or
//! style. A page shows what it is given and asks Redis nothing.

use crate::runtime::admin::{JobRecord, QueueOverview};
use crate::runtime::clock::rfc3339_ms;
use crate::runtime::queue::{JobState, JobSummary, JobsIn, Page, WorkerRecord};
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Bytes of a payload a job's page shows (the rest is summarised).
const PAYLOAD_SHOWN: usize = 64 * 1024;

/// The characters a path segment keeps as they are.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~').remove(b'.');

/// What every page needs besides its content.
pub(super) struct Frame<'a> {
    /// Where the console is mounted.
    pub base: &'a str,
    /// This browser's CSRF token, for the forms.
    pub csrf: &'a str,
    /// A token is required (so there is a session to end).
    pub guarded: bool,
    /// Now (ms since the epoch), for ages.
    pub now_ms: u64,
}

/// The states a queue's page has a tab for, with their labels.
pub(super) const STATES: [(JobsIn, &str); 5] = [
    (JobsIn::Waiting, "waiting"),
    (JobsIn::Active, "active"),
    (JobsIn::Delayed, "delayed"),
    (JobsIn::Retrying, "retrying"),
    (JobsIn::Dead, "dead"),
];

/// The name of `state` in URLs and labels.
pub(super) fn state_name(state: JobsIn) -> &'static str {
    STATES.iter().find(|(s, _)| *s == state).map_or("waiting", |(_, n)| n)
}

impl<'a> Frame<'a> {
    /// A frame for building URLs under `base` only (a redirect's target), with no form on it.
    pub fn links(base: &'a str) -> Self {
        Frame { base, csrf: "", guarded: false, now_ms: 0 }
    }

    /// The URL of `segments` under the console (each segment percent-encoded).
    pub fn url(&self, segments: &[&str]) -> String {
        let mut s = self.base.to_owned();
        for seg in segments {
            s.push('/');
            match *seg {
                // A browser would resolve these, not send them.
                "." => s.push_str("%2E"),
                ".." => s.push_str("%2E%2E"),
                _ => s.extend(utf8_percent_encode(seg, SEGMENT)),
            }
        }
        if segments.is_empty() {
            s.push('/');
        }
        s
    }

    /// The URL of queue `queue`'s page in `state`, from `cursor`, with `extra` query pairs.
    pub fn queue_url(&self, queue: &str, state: JobsIn, cursor: Option<&str>, extra: &[(&str, &str)]) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("state", state_name(state));
        if let Some(c) = cursor {
            query.append_pair("cursor", c);
        }
        for (k, v) in extra {
            query.append_pair(k, v);
        }
        format!("{}?{}", self.url(&["queues", queue]), query.finish())
    }

    /// The URL of asset `file`, with the version that keeps a browser's copy current.
    fn asset(&self, file: &str) -> String {
        format!("{}?v={}", self.url(&["assets", file]), super::assets::VERSION)
    }

    fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(super::guard::CSRF_FIELD) value=(self.csrf); }
    }

    /// Seconds, minutes, hours or days since `ms`.
    fn ago(&self, ms: u64) -> String {
        if ms == 0 {
            return "—".into();
        }
        if ms > self.now_ms {
            return format!("in {}", span(ms - self.now_ms));
        }
        format!("{} ago", span(self.now_ms - ms))
    }
}

fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A moment: its age, with the exact time on hover.
fn when(frame: &Frame, ms: u64) -> Markup {
    html! { span title=(rfc3339_ms(ms)) { (frame.ago(ms)) } }
}

/// How a payload is shown: pretty JSON when it is JSON, else hex.
pub(super) fn payload_view(bytes: &[u8]) -> (&'static str, String) {
    let shown = &bytes[..bytes.len().min(PAYLOAD_SHOWN)];
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let text = serde_json::to_string_pretty(&value).expect("a JSON value serializes");
        return ("JSON", text);
    }
    let mut hex = String::with_capacity(shown.len() * 3);
    for (i, line) in shown.chunks(16).enumerate() {
        hex.push_str(&format!("{:08x}  ", i * 16));
        for b in line {
            hex.push_str(&format!("{b:02x} "));
        }
        hex.push('\n');
    }
    if shown.len() < bytes.len() {
        hex.push_str(&format!("… {} more bytes\n", bytes.len() - shown.len()));
    }
    ("hex (not JSON)", hex)
}

/// The frame of every page: header, navigation, the content.
fn layout(frame: &Frame, title: &str, here: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · conveyor" }
                link rel="stylesheet" href=(frame.asset("console.css"));
                script src=(frame.asset("console.js")) defer {}
            }
            body {
                header {
                    a.brand href=(frame.url(&[])) { "conveyor" }
                    nav {
                        a.here[here == "queues"] href=(frame.url(&[])) { "Queues" }
                        a.here[here == "live"] href=(frame.url(&["live"])) { "Live" }
                        a.here[here == "workers"] href=(frame.url(&["workers"])) { "Workers" }
                    }
                    @if frame.guarded {
                        form.inline method="post" action=(frame.url(&["logout"])) {
                            (frame.csrf_field())
                            button.small type="submit" { "Log out" }
                        }
                    }
                }
                (content)
            }
        }
    }
}

/// A line saying what the last action did.
pub(super) fn notice(text: Option<&str>) -> Markup {
    html! { @if let Some(t) = text { div.notice role="status" { (t) } } }
}

fn paused_badge(paused: bool) -> Markup {
    html! {
        @if paused { span.badge.paused { "paused" } } @else { span.badge.running { "running" } }
    }
}

/// The pause or resume button of a queue; `back` says which page to come back to.
fn pause_form(frame: &Frame, queue: &str, paused: bool, back: &str) -> Markup {
    let (action, label) = if paused { ("resume", "Resume") } else { ("pause", "Pause") };
    html! {
        form.inline method="post" action=(frame.url(&["queues", queue, action])) {
            (frame.csrf_field())
            input type="hidden" name="back" value=(back);
            button.small type="submit" data-action=(action) { (label) }
        }
    }
}

/// Every queue at a glance.
pub(super) fn overview(frame: &Frame, queues: &[QueueOverview], said: Option<&str>) -> Markup {
    let content = html! {
        main {
            h1 { "Queues" }
            (notice(said))
            table #queues {
                thead { tr {
                    th { "queue" } th.num { "waiting" } th.num { "active" } th.num { "delayed" }
                    th.num { "retrying" } th.num { "dead" } th.num { "oldest waiting" }
                    th.num { "done/s" } th.num { "failed/s" } th.num { "workers" } th { "state" } th {}
                } }
                tbody {
                    @for q in queues {
                        @let d = &q.depth;
                        tr data-queue=(q.name) {
                            td { a href=(frame.queue_url(&q.name, JobsIn::Waiting, None, &[])) { (q.name) } }
                            @for (state, n) in [(JobsIn::Waiting, d.waiting), (JobsIn::Active, d.in_flight),
                                                (JobsIn::Delayed, d.delayed), (JobsIn::Retrying, d.retrying),
                                                (JobsIn::Dead, d.dead)] {
                                td.num data-state=(state_name(state)) {
                                    a href=(frame.queue_url(&q.name, state, None, &[])) { (n) }
                                }
                            }
                            td.num { (format!("{:.1} s", q.oldest_waiting_seconds)) }
                            td.num { (format!("{:.1}", q.rates.completed_per_second)) }
                            td.num { (format!("{:.1}", q.rates.failed_per_second)) }
                            td.num data-field="workers" { (q.live_workers) }
                            td { (paused_badge(q.paused)) }
                            td { (pause_form(frame, &q.name, q.paused, "overview")) }
                        }
                    }
                    @if queues.is_empty() {
                        tr { td.empty colspan="12" { "No queue under this prefix yet." } }
                    }
                }
            }
        }
    };
    layout(frame, "Queues", "queues", content)
}

/// One queue: its counts, pause, one page of its jobs in one state, its live workers.
pub(super) fn queue(
    frame: &Frame,
    q: &QueueOverview,
    state: JobsIn,
    page: &Page,
    workers: &[WorkerRecord],
    said: Option<&str>,
) -> Markup {
    let d = &q.depth;
    let counts = [d.waiting, d.in_flight, d.delayed, d.retrying, d.dead];
    let content = html! {
        main {
            h1 { "Queue " code { (q.name) } " " (paused_badge(q.paused)) }
            (notice(said))
            div.bar {
                nav.tabs {
                    @for ((s, label), n) in STATES.iter().zip(counts) {
                        a.here[*s == state] href=(frame.queue_url(&q.name, *s, None, &[])) {
                            (label) span.n { (n) }
                        }
                    }
                }
                span.spacer {}
                span.muted { "oldest waiting " (format!("{:.1} s", q.oldest_waiting_seconds))
                    " · " (format!("{:.1}", q.rates.completed_per_second)) " done/s · "
                    (format!("{:.1}", q.rates.failed_per_second)) " failed/s · " }
                (pause_form(frame, &q.name, q.paused, "queue"))
            }
            @if state == JobsIn::Dead {
                form #dead method="post" action=(frame.url(&["queues", &q.name, "dead", "retry"])) {
                    (frame.csrf_field())
                    div.bar {
                        button.primary type="submit" name="scope" value="selected" { "Retry selected" }
                        button.danger type="submit" name="scope" value="selected"
                            formaction=(frame.url(&["queues", &q.name, "dead", "delete"]))
                            data-confirm="Delete the selected dead letters?" { "Delete selected" }
                        span.spacer {}
                        button type="submit" name="scope" value="all"
                            data-confirm=(format!("Retry all {} dead letters?", d.dead)) { "Retry all" }
                        button.danger type="submit" name="scope" value="all"
                            formaction=(frame.url(&["queues", &q.name, "dead", "delete"]))
                            data-confirm=(format!("Delete all {} dead letters?", d.dead)) { "Delete all" }
                    }
                    (jobs_table(frame, &q.name, state, page))
                }
            } @else {
                (jobs_table(frame, &q.name, state, page))
            }
            div.bar {
                span.muted { (page.jobs.len()) " job(s) on this page" }
                span.spacer {}
                @if let Some(next) = &page.next {
                    a #next rel="next" href=(frame.queue_url(&q.name, state, Some(next), &[])) { "Next page →" }
                }
            }
            h2 { "Live workers" }
            (workers_table(frame, workers))
        }
    };
    layout(frame, &q.name, "queues", content)
}

fn jobs_table(frame: &Frame, queue: &str, state: JobsIn, page: &Page) -> Markup {
    let dead = state == JobsIn::Dead;
    html! {
        table #jobs {
            thead { tr {
                @if dead { th {} }
                th { "id" } th { "type" } th.num { "attempt" } th { "enqueued" } th { (detail_label(state)) }
                @if dead { th {} }
            } }
            tbody {
                @for j in &page.jobs {
                    tr.job {
                        @if dead { td { input type="checkbox" name="id" value=(j.id.as_str()); } }
                        td.mono { a href=(frame.url(&["queues", queue, "jobs", j.id.as_str()])) { (j.id.as_str()) } }
                        td { (j.name) }
                        td.num { (j.attempt) }
                        td { (when(frame, j.enqueued_ms)) }
                        td { (detail(frame, j)) }
                        @if dead {
                            td {
                                button.small type="submit" name="one" value=(j.id.as_str()) { "Retry" }
                                " "
                                button.small.danger type="submit" name="one" value=(j.id.as_str())
                                    formaction=(frame.url(&["queues", queue, "dead", "delete"])) { "Delete" }
                            }
                        }
                    }
                }
                @if page.jobs.is_empty() {
                    tr { td.empty colspan="7" { "No " (state_name(state)) " job." } }
                }
            }
        }
    }
}

fn detail_label(state: JobsIn) -> &'static str {
    match state {
        JobsIn::Waiting => "",
        JobsIn::Active => "worker",
        JobsIn::Delayed | JobsIn::Retrying => "due",
        JobsIn::Dead => "reason",
    }
}

fn detail(frame: &Frame, j: &JobSummary) -> Markup {
    html! {
        @if let Some(r) = &j.reason { span.bad { (r) } }
        @else if let Some((w, idle)) = &j.worker { code { (w) } span.muted { " idle " (idle) " ms" } }
        @else if let Some(due) = j.due_ms { (when(frame, due)) }
    }
}

fn workers_table(frame: &Frame, workers: &[WorkerRecord]) -> Markup {
    html! {
        table #workers {
            thead { tr {
                th { "instance" } th { "queue" } th.num { "pid" } th.num { "workers" } th.num { "concurrency" }
                th.num { "busy" } th { "started" } th { "seen" } th { "version" }
            } }
            tbody {
                @for w in workers {
                    tr.worker {
                        td.mono { (w.instance) } td { (w.queue) } td.num { (w.pid) } td.num { (w.workers) }
                        td.num { (w.concurrency) } td.num { (w.busy) } td { (when(frame, w.started_ms)) }
                        td { (when(frame, w.seen_ms)) } td { (w.version) }
                    }
                }
                @if workers.is_empty() { tr { td.empty colspan="9" { "No live worker process." } } }
            }
        }
    }
}

/// Every live worker process.
pub(super) fn workers(frame: &Frame, workers: &[WorkerRecord]) -> Markup {
    let content = html! { main { h1 { "Live workers" } (workers_table(frame, workers)) } };
    layout(frame, "Workers", "workers", content)
}

/// One job: where it is, its payload, attempts, errors and result.
pub(super) fn job(frame: &Frame, id: &str, record: &JobRecord, said: Option<&str>) -> Markup {
    let found = record.found.as_ref();
    let status = record.status.as_ref();
    let name = found.map(|f| f.name.as_str()).or(status.map(|s| s.name.as_str())).unwrap_or("");
    let content = html! {
        main {
            h1 { "Job " code { (id) } }
            (notice(said))
            div.card {
                dl.facts {
                    dt { "queue" } dd { a href=(frame.queue_url(&record.queue, JobsIn::Waiting, None, &[])) { (record.queue) } }
                    dt { "type" } dd { code { (name) } }
                    @if let Some(f) = found {
                        dt { "where" } dd #where { (state_name(f.state)) }
                        dt { "attempt" } dd { span #attempt { (f.attempt) } " " span.muted { "(0 is the first)" } }
                        dt { "enqueued" } dd { (when(frame, f.enqueued_ms)) " " span.muted { (rfc3339_ms(f.enqueued_ms)) } }
                        @if let Some(due) = f.due_ms { dt { "due" } dd { (when(frame, due)) } }
                        @if let Some((w, idle)) = &f.worker { dt { "worker" } dd { code { (w) } " idle " (idle) " ms" } }
                        @if let Some(r) = &f.reason { dt { "reason" } dd #reason.bad { (r) } }
                    }
                    @if let Some(s) = status {
                        dt { "status" } dd #status { (status_text(&s.state)) }
                        @if found.is_none() { dt { "attempt" } dd { span #attempt { (s.attempt) } " " span.muted { "(0 is the first)" } } }
                        @if let Some(t) = s.started_ms { dt { "started" } dd { (when(frame, t)) } }
                        @if let Some(t) = s.finished_ms { dt { "finished" } dd { (when(frame, t)) } }
                        @if let Some(e) = &s.last_error { dt { "last error" } dd #last-error.bad { (e) } }
                    }
                }
            }
            @if let Some(f) = found.filter(|f| f.state == JobsIn::Dead) {
                form.bar method="post" action=(frame.url(&["queues", &record.queue, "dead", "retry"])) {
                    (frame.csrf_field())
                    input type="hidden" name="one" value=(f.id.as_str());
                    input type="hidden" name="back" value="job";
                    button.primary #retry type="submit" { "Retry" }
                    button.danger #delete type="submit" formaction=(frame.url(&["queues", &record.queue, "dead", "delete"]))
                        data-confirm="Delete this dead letter?" { "Delete" }
                }
            }
            @if let Some(JobState::Completed { result: Some(r) }) = status.map(|s| &s.state) {
                h2 { "Result" }
                @let (kind, text) = payload_view(r.as_bytes());
                pre #result { (text) } p.muted { (kind) }
            }
            @if let Some(f) = found {
                @let (kind, text) = payload_view(&f.payload);
                h2 { "Payload " span.muted { "(" (kind) ", " (f.payload.len()) " bytes)" } }
                pre #payload { (text) }
                @if let Some(h) = &f.headers {
                    @let (kind, text) = payload_view(h);
                    h2 { "Headers " span.muted { "(" (kind) ")" } }
                    pre { (text) }
                }
            } @else {
                p.muted { "Only this tracked job's status is left: it finished, so its payload is gone." }
            }
        }
    };
    layout(frame, &format!("Job {id}"), "queues", content)
}

fn status_text(state: &JobState) -> String {
    match state {
        JobState::Waiting => "waiting".into(),
        JobState::Delayed { until_ms } => format!("delayed until {}", rfc3339_ms(*until_ms)),
        JobState::Active { worker, cancel_requested } => {
            format!("active on {worker}{}", if *cancel_requested { " (cancellation asked)" } else { "" })
        }
        JobState::Retrying { next_ms, last_error } => format!("retrying at {}: {last_error}", rfc3339_ms(*next_ms)),
        JobState::Completed { .. } => "completed".into(),
        JobState::Dead { reason } => format!("dead: {reason}"),
        JobState::Cancelled => "cancelled".into(),
    }
}

/// Throughput and latency of every queue, refreshed by the script every two seconds from
/// `api` (the first render is complete without it).
pub(super) fn live(frame: &Frame, queues: &[QueueOverview], api: &str) -> Markup {
    let content = html! {
        main data-live=(api) {
            h1 { "Live " span.muted { "· updated " span #updated { "now" } } }
            p.muted { "Completed (blue) and failed (red) jobs in each of the last 60 seconds; latency is how long the oldest waiting job has waited." }
            div.grid {
                @for q in queues {
                    div.card data-queue=(q.name) {
                        h2 { a href=(frame.queue_url(&q.name, JobsIn::Waiting, None, &[])) { (q.name) }
                             " " span.badge.paused[q.paused].running[!q.paused] data-field="paused" { @if q.paused { "paused" } @else { "running" } } }
                        div.stats {
                            div { b data-field="completed" { (format!("{:.1}", q.rates.completed_per_second)) } span { "done/s" } }
                            div { b data-field="failed" { (format!("{:.1}", q.rates.failed_per_second)) } span { "failed/s" } }
                            div { b data-field="latency" { (format!("{:.1} s", q.oldest_waiting_seconds)) } span { "latency" } }
                            div { b data-field="waiting" { (q.depth.waiting) } span { "waiting" } }
                            div { b data-field="active" { (q.depth.in_flight) } span { "active" } }
                            div { b data-field="dead" { (q.depth.dead) } span { "dead" } }
                            div { b data-field="workers" { (q.live_workers) } span { "workers" } }
                        }
                        svg.spark viewBox="0 0 600 48" preserveAspectRatio="none" {}
                    }
                }
                @if queues.is_empty() { p.empty { "No queue under this prefix yet." } }
            }
        }
    };
    layout(frame, "Live", "live", content)
}

/// The login form (a token is required).
pub(super) fn login(frame: &Frame, wrong: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Log in · conveyor" }
                link rel="stylesheet" href=(frame.asset("console.css"));
            }
            body {
                main.login.card {
                    h1 { "conveyor console" }
                    @if wrong { div.error { "That is not the access token." } }
                    form method="post" action=(frame.url(&["login"])) {
                        (frame.csrf_field())
                        label for="token" { "Access token" }
                        input #token type="password" name="token" autocomplete="current-password" autofocus;
                        button.primary type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// A page saying what went wrong (`status` is the HTTP status's text).
pub(super) fn error(frame: &Frame, status: &str, message: &str) -> Markup {
    let content = html! {
        main {
            h1 { (status) }
            div.error { (message) }
            p { a href=(frame.url(&[])) { "Back to the queues" } }
        }
    };
    layout(frame, status, "", content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_pretty_json_or_hex() {
        let (kind, text) = payload_view(br#"{"a":[1,2]}"#);
        assert_eq!(kind, "JSON");
        assert!(text.contains("\n  \"a\""), "{text}");
        let (kind, text) = payload_view(&[0xff, 0x00, 0x41]);
        assert_eq!(kind, "hex (not JSON)");
        assert_eq!(text, "00000000  ff 00 41 \n");
    }

    #[test]
    fn markup_in_names_and_payloads_is_escaped() {
        let frame = Frame { base: "", csrf: "x", guarded: false, now_ms: 0 };
        let page = workers(
            &frame,
            &[WorkerRecord {
                instance: "<script>alert(1)</script>".into(),
                host: "h".into(),
                pid: 1,
                queue: "q\"><img>".into(),
                workers: 1,
                concurrency: 1,
                busy: 0,
                started_ms: 0,
                seen_ms: 0,
                version: "v".into(),
            }],
        )
        .into_string();
        assert!(!page.contains("<script>alert") && page.contains("&lt;script&gt;alert(1)"), "{page}");
        assert!(!page.contains("<img>"), "{page}");
    }

    #[test]
    fn path_segments_are_encoded() {
        let frame = Frame { base: "/ops", csrf: "x", guarded: false, now_ms: 0 };
        assert_eq!(frame.url(&["queues", "a b/c?"]), "/ops/queues/a%20b%2Fc%3F");
        assert_eq!(frame.url(&[]), "/ops/");
        assert_eq!(frame.url(&["assets", "console.css"]), "/ops/assets/console.css");
        assert_eq!(frame.url(&["queues", ".."]), "/ops/queues/%2E%2E");
    }
}
