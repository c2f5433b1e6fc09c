//! The console's two static files, compiled into the binary (no CDN: the page works offline):
//! a small stylesheet and the script of the live view and of confirmations. Inline scripts and
//! styles are forbidden by the Content-Security-Policy, so these are the only ones a page runs.

use actix_web::HttpResponse;
use actix_web::http::header;

/// The stylesheet.
pub(super) const CSS: &str = include_str!("assets/console.css");
/// The script: asks before a form marked `data-confirm` is sent, and refreshes the live view.
pub(super) const JS: &str = include_str!("assets/console.js");

/// The stylesheet, as served.
pub(super) async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

/// The script, as served.
pub(super) async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

/// What the assets' URLs carry, so a browser keeps them until the binary changes.
pub(super) const VERSION: &str = env!("CARGO_PKG_VERSION");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(body)
}
