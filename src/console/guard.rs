//! Who may use the console and how a state change proves it came from the console's own page.
//!
//! - Access: with a token, a request carries it as `Authorization: Bearer <token>` or in the
//!   cookie the login form sets (HttpOnly, SameSite=Strict). Without a token (loopback only),
//!   the request's `Host` must name a loopback host, so a page on another site whose name was
//!   rebound to 127.0.0.1 (DNS rebinding) is refused.
//! - CSRF: a double-submit cookie. The first answer sets a random `conveyor_csrf` cookie
//!   (SameSite=Strict); every form carries its value, and a POST whose form value is missing or
//!   differs from the cookie is answered 403 before anything is read or changed. Another site
//!   can neither read nor set the cookie, so it cannot forge the form.
//! - Every answer forbids inline scripts and framing (Content-Security-Policy); pages are
//!   never cached.

use super::State;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use futures::future::LocalBoxFuture;

/// The cookie that holds the access token after the login form.
pub(super) const TOKEN_COOKIE: &str = "conveyor_console";
/// The cookie that holds this browser's CSRF token.
const CSRF_COOKIE: &str = "conveyor_csrf";
/// The form field that carries the CSRF token.
pub(super) const CSRF_FIELD: &str = "csrf";

/// What every answer says about scripts, styles, frames and caching.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// This browser's CSRF token, for the page to put in its forms.
#[derive(Debug, Clone)]
pub(super) struct CsrfToken(pub String);

/// The middleware every console request passes: access, the CSRF cookie, security headers.
pub(super) async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<State>>().expect("the console registers its state").clone();
    let public = {
        let rest = req.path().strip_prefix(state.base.as_str()).unwrap_or(req.path());
        rest == "/login" || rest.starts_with("/assets/")
    };
    let (csrf, fresh) = match req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned()).filter(|v| v.len() == 32) {
        Some(v) => (v, false),
        None => (random_hex(), true),
    };
    req.extensions_mut().insert(CsrfToken(csrf.clone()));
    let mut res = match access(&state, req.request()) {
        Access::Granted => next.call(req).await?.map_into_left_body(),
        Access::WrongHost => {
            let r = HttpResponse::MisdirectedRequest().content_type("text/plain; charset=utf-8").body(
                "this console has no access token, so it answers only requests addressed to 127.0.0.1, [::1] or localhost",
            );
            req.into_response(r).map_into_right_body()
        }
        Access::NeedsToken if public => next.call(req).await?.map_into_left_body(),
        Access::NeedsToken => {
            let login = format!("{}/login", state.base);
            let r = if req.method() == actix_web::http::Method::GET && !req.path().contains("/api/") {
                HttpResponse::SeeOther().insert_header((header::LOCATION, login)).finish()
            } else {
                HttpResponse::Unauthorized()
                    .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                    .body("an access token is required (Authorization: Bearer, or the login form)")
            };
            req.into_response(r).map_into_right_body()
        }
    };
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Pages are never cached; the assets say otherwise themselves.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if fresh {
        let cookie = Cookie::build(CSRF_COOKIE, csrf)
            .path(cookie_path(&state))
            .http_only(true)
            .same_site(SameSite::Strict)
            .finish();
        res.response_mut().add_cookie(&cookie)?;
    }
    Ok(res)
}

/// What a request may do.
enum Access {
    Granted,
    /// A token is required and the request has none (or a wrong one).
    NeedsToken,
    /// No token is configured and the request is addressed to a name that is not loopback.
    WrongHost,
}

fn access(state: &State, req: &HttpRequest) -> Access {
    let Some(token) = &state.token else {
        // The Host header itself: never X-Forwarded-Host or Forwarded, which a script may set.
        let host =
            req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or(req.uri().authority().map(|a| a.as_str()));
        return if host.is_some_and(loopback_host) { Access::Granted } else { Access::WrongHost };
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = req.cookie(TOKEN_COOKIE);
    let given = bearer.or_else(|| cookie.as_ref().map(|c| c.value()));
    if given.is_some_and(|g| same(g, token)) { Access::Granted } else { Access::NeedsToken }
}

/// Whether `host` (a `Host` header: name, optional port) names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether the login form's `token` is the access token.
pub(super) fn token_matches(state: &State, given: &str) -> bool {
    state.token.as_deref().is_some_and(|t| same(given, t))
}

/// The cookie that keeps a browser logged in.
pub(super) fn token_cookie(state: &State, token: &str) -> Cookie<'static> {
    Cookie::build(TOKEN_COOKIE, token.to_owned())
        .path(cookie_path(state))
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish()
}

fn cookie_path(state: &State) -> String {
    if state.base.is_empty() { "/".into() } else { state.base.clone() }
}

/// Equality that takes as long whatever the first differing byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A POSTed form whose CSRF token matched the browser's cookie: the only way a handler that
/// changes something gets its input. A form without it, or with another, is refused (403)
/// before the handler runs.
#[derive(Debug)]
pub(super) struct CheckedForm {
    /// The form's fields in order (a field may repeat, as checkboxes do).
    pub fields: Vec<(String, String)>,
}

impl CheckedForm {
    /// The first value of `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl FromRequest for CheckedForm {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        let cookie = req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned());
        Box::pin(async move {
            let body = body.await?;
            let fields: Vec<(String, String)> =
                url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            let form = CheckedForm { fields };
            match (cookie, form.value(CSRF_FIELD)) {
                (Some(c), Some(f)) if !c.is_empty() && same(&c, f) => Ok(form),
                _ => Err(actix_web::error::ErrorForbidden(
                    "CSRF token missing or wrong: reload the console's page and submit its form again (nothing was changed)",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "127.0.0.2"] {
            assert!(loopback_host(host), "{host}");
        }
        for host in ["evil.example", "evil.example:8080", "10.0.0.1:8080", "[2001:db8::1]:80", ""] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("abc", "ab") && !same("", "a"));
    }
}
