//! What each URL of the console does: a page reads through [`Admin`] and renders; an action
//! (POST, with a checked CSRF token) calls [`Admin`] and redirects to the page it came from
//! with a line saying what it did. A page costs the same whatever a queue's depth: counts and
//! one page of jobs.
//!
//! ```text
//! GET  /                              queues overview
//! GET  /queues/{queue}?state&cursor   one page of a queue's jobs in one state, its workers
//! GET  /queues/{queue}/jobs/{id}      one job
//! GET  /workers · /live · /api/live   live workers, the live view and its JSON
//! POST /queues/{queue}/pause|resume   pause or resume
//! POST /queues/{queue}/dead/retry|delete   dead letters: one, a selection or all
//! GET|POST /login · POST /logout      the access token's cookie
//! ```

use super::State;
use super::guard::{self, CheckedForm, CsrfToken};
use super::pages::{self, Frame};
use crate::runtime::error::Error;
use crate::runtime::queue::{JobId, JobsIn, Pick};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use maud::Markup;
use std::collections::HashMap;

/// Registers every route under the console's base path.
pub(super) fn register(cfg: &mut web::ServiceConfig, state: web::Data<State>) {
    let base = state.base.clone();
    let scope = web::scope(&base)
        .app_data(state)
        .wrap(actix_web::middleware::from_fn(guard::gate))
        .route("/", web::get().to(overview))
        .route("/assets/console.css", web::get().to(super::assets::css))
        .route("/assets/console.js", web::get().to(super::assets::js))
        .route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/workers", web::get().to(workers))
        .route("/live", web::get().to(live))
        .route("/api/live", web::get().to(live_json))
        .route("/queues/{queue}", web::get().to(queue))
        .route("/queues/{queue}/jobs/{id}", web::get().to(job))
        .route("/queues/{queue}/pause", web::post().to(pause))
        .route("/queues/{queue}/resume", web::post().to(resume))
        .route("/queues/{queue}/dead/retry", web::post().to(retry_dead))
        .route("/queues/{queue}/dead/delete", web::post().to(delete_dead))
        .default_service(web::to(not_found));
    cfg.service(scope);
    if !base.is_empty() {
        // `/ops` as well as `/ops/`.
        let to = format!("{base}/");
        cfg.route(
            &base,
            web::get().to(move || {
                let to = to.clone();
                async move { redirect(to) }
            }),
        );
    }
}

/// A page, or a page saying what went wrong.
type Answer = Result<HttpResponse, Failure>;

/// A page saying what went wrong, with its status.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    page: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)
    }
}

impl actix_web::ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).content_type("text/html; charset=utf-8").body(self.page.clone())
    }
}

fn frame<'a>(state: &'a State, csrf: &'a str) -> Frame<'a> {
    Frame { base: &state.base, csrf, guarded: state.token.is_some(), now_ms: crate::runtime::clock::now_us() / 1000 }
}

fn csrf_of(req: &HttpRequest) -> String {
    req.extensions().get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default()
}

fn html(markup: Markup) -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(markup.into_string())
}

fn redirect(to: String) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

/// An error as a page: a missing queue or job is 404, input the console cannot use 400,
/// anything else (Redis unreachable) 502.
fn failed(state: &State, req: &HttpRequest, e: Error) -> Failure {
    let status = match &e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::InvalidArgument { .. } | Error::Usage(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    let csrf = csrf_of(req);
    let page = pages::error(&frame(state, &csrf), status.canonical_reason().unwrap_or("Error"), &e.to_string());
    Failure { status, page: page.into_string() }
}

async fn not_found(state: web::Data<State>, req: HttpRequest) -> Answer {
    let e = Error::NotFound { what: "page", name: req.path().to_owned(), hint: String::new() };
    Err(failed(&state, &req, e))
}

/// The line a page shows after an action, from the redirect's `did` and `n` (never text from
/// the URL itself, so a link cannot make the console say something).
fn said(query: &HashMap<String, String>) -> Option<String> {
    let n: u64 = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    Some(match query.get("did")?.as_str() {
        "paused" => "Paused: workers claim nothing new and finish what they hold.".into(),
        "resumed" => "Resumed: workers claim again.".into(),
        "retried" => format!("Retried {n} dead letter(s): they are waiting again."),
        "deleted" => format!("Deleted {n} dead letter(s)."),
        "missing" => format!("{n} of the selected dead letters were no longer there."),
        "none" => "Nothing was selected.".into(),
        _ => return None,
    })
}

async fn overview(state: web::Data<State>, req: HttpRequest, query: web::Query<HashMap<String, String>>) -> Answer {
    let queues = state.admin.queues().await.map_err(|e| failed(&state, &req, e))?;
    let csrf = csrf_of(&req);
    Ok(html(pages::overview(&frame(&state, &csrf), &queues, said(&query).as_deref())))
}

async fn queue(
    state: web::Data<State>,
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Answer {
    let fail = |e| failed(&state, &req, e);
    let job_state: JobsIn = match query.get("state") {
        None => JobsIn::Waiting,
        Some(s) => s.parse().map_err(|message| fail(Error::InvalidArgument { what: "state", message }))?,
    };
    let overview = state.admin.overview(&name).await.map_err(fail)?;
    let page = state
        .admin
        .jobs(&name, job_state, super::PAGE_SIZE, query.get("cursor").map(String::as_str))
        .await
        .map_err(fail)?;
    let workers = state.admin.workers(Some(&name)).await.map_err(fail)?;
    let csrf = csrf_of(&req);
    Ok(html(pages::queue(&frame(&state, &csrf), &overview, job_state, &page, &workers, said(&query).as_deref())))
}

async fn job(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<HashMap<String, String>>,
) -> Answer {
    let (name, id) = path.into_inner();
    let record = state.admin.job(Some(&name), &id).await.map_err(|e| failed(&state, &req, e))?;
    let csrf = csrf_of(&req);
    Ok(html(pages::job(&frame(&state, &csrf), &id, &record, said(&query).as_deref())))
}

async fn workers(state: web::Data<State>, req: HttpRequest) -> Answer {
    let workers = state.admin.workers(None).await.map_err(|e| failed(&state, &req, e))?;
    let csrf = csrf_of(&req);
    Ok(html(pages::workers(&frame(&state, &csrf), &workers)))
}

async fn live(state: web::Data<State>, req: HttpRequest) -> Answer {
    let queues = state.admin.queues().await.map_err(|e| failed(&state, &req, e))?;
    let csrf = csrf_of(&req);
    let f = frame(&state, &csrf);
    let api = f.url(&["api", "live"]);
    Ok(html(pages::live(&f, &queues, &api)))
}

/// Every queue at a glance with its last 60 seconds of completions and failures.
async fn live_json(state: web::Data<State>) -> HttpResponse {
    let answer = async {
        let mut out = Vec::new();
        for q in state.admin.queues().await? {
            let seconds = state.admin.throughput(&q.name).await?;
            let mut value = serde_json::to_value(&q).expect("an overview serializes");
            value["seconds"] = serde_json::to_value(seconds).expect("counts serialize");
            out.push(value);
        }
        Ok::<_, Error>(out)
    };
    match answer.await {
        Ok(queues) => HttpResponse::Ok().json(serde_json::json!({
            "at_ms": crate::runtime::clock::now_us() / 1000,
            "queues": queues,
        })),
        Err(e) => HttpResponse::BadGateway().json(serde_json::json!({ "error": e.to_string() })),
    }
}

/// Where an action on queue `name` goes back to: the form's `back`, among the pages that exist.
fn back_to(
    state: &State,
    form: &CheckedForm,
    name: &str,
    job: Option<&str>,
    fallback: JobsIn,
    did: &[(&str, &str)],
) -> String {
    let f = Frame::links(&state.base);
    match (form.value("back"), job) {
        (Some("overview"), _) => {
            let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(did).finish();
            format!("{}?{query}", f.url(&[]))
        }
        (Some("job"), Some(id)) => {
            let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(did).finish();
            format!("{}?{query}", f.url(&["queues", name, "jobs", id]))
        }
        _ => f.queue_url(name, fallback, None, did),
    }
}

async fn pause(state: web::Data<State>, req: HttpRequest, name: web::Path<String>, form: CheckedForm) -> Answer {
    state.admin.pause(&name).await.map_err(|e| failed(&state, &req, e))?;
    Ok(redirect(back_to(&state, &form, &name, None, JobsIn::Waiting, &[("did", "paused")])))
}

async fn resume(state: web::Data<State>, req: HttpRequest, name: web::Path<String>, form: CheckedForm) -> Answer {
    state.admin.resume(&name).await.map_err(|e| failed(&state, &req, e))?;
    Ok(redirect(back_to(&state, &form, &name, None, JobsIn::Waiting, &[("did", "resumed")])))
}

/// The dead letters a form names: `scope=all`, the row's `one`, or the checked `id`s.
fn pick_of(form: &CheckedForm) -> Result<Option<Pick>, Error> {
    if form.value("scope") == Some("all") {
        return Ok(Some(Pick::All));
    }
    let ids: Vec<&str> = match form.value("one") {
        Some(one) => vec![one],
        None => form.values("id").collect(),
    };
    if ids.is_empty() {
        return Ok(None);
    }
    let ids = ids
        .into_iter()
        .map(|id| JobId::parse(id).map_err(|message| Error::InvalidArgument { what: "job id", message }));
    Ok(Some(Pick::Ids(ids.collect::<Result<_, _>>()?)))
}

async fn retry_dead(state: web::Data<State>, req: HttpRequest, name: web::Path<String>, form: CheckedForm) -> Answer {
    act_on_dead(state, req, name.into_inner(), form, true).await
}

async fn delete_dead(state: web::Data<State>, req: HttpRequest, name: web::Path<String>, form: CheckedForm) -> Answer {
    act_on_dead(state, req, name.into_inner(), form, false).await
}

async fn act_on_dead(
    state: web::Data<State>,
    req: HttpRequest,
    name: String,
    form: CheckedForm,
    retry: bool,
) -> Answer {
    let fail = |e| failed(&state, &req, e);
    let one = form.value("one").map(str::to_owned);
    let Some(pick) = pick_of(&form).map_err(fail)? else {
        return Ok(redirect(back_to(&state, &form, &name, None, JobsIn::Dead, &[("did", "none")])));
    };
    let done =
        if retry { state.admin.retry_dead(&name, &pick).await } else { state.admin.delete_dead(&name, &pick).await }
            .map_err(fail)?;
    let n = done.done.to_string();
    let missing = done.not_found.len().to_string();
    let did: &[(&str, &str)] = match (done.not_found.is_empty(), retry) {
        (false, _) => &[("did", "missing"), ("n", &missing)],
        (true, true) => &[("did", "retried"), ("n", &n)],
        (true, false) => &[("did", "deleted"), ("n", &n)],
    };
    // A deleted job has no page left to go back to.
    let job = if retry { one.as_deref() } else { None };
    Ok(redirect(back_to(&state, &form, &name, job, JobsIn::Dead, did)))
}

async fn login_page(
    state: web::Data<State>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let csrf = csrf_of(&req);
    html(pages::login(&frame(&state, &csrf), query.contains_key("wrong")))
}

async fn login(state: web::Data<State>, form: CheckedForm) -> HttpResponse {
    let f = Frame::links(&state.base);
    match form.value("token") {
        Some(given) if guard::token_matches(&state, given) => {
            let mut res = redirect(f.url(&[]));
            let _ = res.add_cookie(&guard::token_cookie(&state, given));
            res
        }
        _ => redirect(format!("{}?wrong=1", f.url(&["login"]))),
    }
}

async fn logout(state: web::Data<State>, _form: CheckedForm) -> HttpResponse {
    let f = Frame::links(&state.base);
    let mut res = redirect(f.url(&["login"]));
    let mut cookie = guard::token_cookie(&state, "");
    cookie.make_removal();
    let _ = res.add_cookie(&cookie);
    res
}
