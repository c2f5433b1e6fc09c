//! The web console: the queues of one Redis in a browser — an overview, a queue's jobs by state,
//! one job, dead letters retried or removed, pause and resume, live workers and a live
//! throughput view. Server-rendered HTML (maud) on actix-web with two small embedded assets; no
//! JavaScript build step and nothing fetched from elsewhere, so it works offline.
//!
//! Every action goes through [`Admin`], the API the command line uses, so the console and
//! `conveyor dead retry` do the same thing. It never imports the benchmark or the command line.
//!
//! Security: [`Console::serve`] refuses a non-loopback address without an access token; with a
//! token every request carries it (`Authorization: Bearer`, or the cookie the login form sets);
//! without one, only requests addressed to a loopback host name are answered (a DNS-rebinding
//! page cannot reach it). Every state change is a POST carrying a CSRF token (double-submit
//! cookie, see `guard`); every response forbids inline scripts (Content-Security-Policy).
//!
//! - `routes`: what each URL does; `pages`: the HTML; `guard`: access token, CSRF and
//!   security headers; `assets`: the stylesheet and the live view's script.
//!
//! Mounting in an application:
//!
//! ```no_run
//! # async fn mount(admin: conveyor::Admin) -> std::io::Result<()> {
//! use conveyor::console::{Console, ConsoleOptions};
//! let console = Console::new(admin, ConsoleOptions { base_path: "/ops".into(), ..ConsoleOptions::default() });
//! actix_web::HttpServer::new(move || actix_web::App::new().configure(console.configure()))
//!     .bind("127.0.0.1:3000")?
//!     .run()
//!     .await
//! # }
//! ```

mod assets;
mod guard;
mod pages;
mod routes;

use crate::runtime::admin::Admin;
use crate::runtime::error::{Error, Result};
use actix_web::web;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where `conveyor console` listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Jobs one page of a queue lists: a page costs the same with ten jobs waiting or ten million.
pub const PAGE_SIZE: usize = 50;

/// How the console is reached and guarded.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// The access token every request must carry (`None`: none, which [`Console::serve`]
    /// allows on a loopback address only).
    pub token: Option<String>,
    /// The path the console is mounted under (`""` for the root, or e.g. `"/ops"`): every link
    /// and form of its pages starts with it.
    pub base_path: String,
}

/// The console of one [`Admin`]: build it once, then mount it in as many actix-web worker
/// threads as the server runs ([`configure`](Self::configure)).
#[derive(Debug, Clone)]
pub struct Console {
    /// What the pages read and the actions do, and how requests are guarded; shared by every
    /// worker thread of the HTTP server.
    state: Arc<State>,
}

/// What every handler reads.
#[derive(Debug)]
struct State {
    /// Every read and every action.
    admin: Admin,
    /// Where the console is mounted (no trailing slash).
    base: String,
    /// The access token, when one is required.
    token: Option<String>,
}

impl Console {
    /// The console over `admin`.
    pub fn new(admin: Admin, options: ConsoleOptions) -> Self {
        let base = options.base_path.trim_end_matches('/').to_owned();
        let token = options.token.filter(|t| !t.is_empty());
        Self { state: Arc::new(State { admin, base, token }) }
    }

    /// Registers the console's routes (under its `base_path`) in an actix-web application:
    /// `App::new().configure(console.configure())`.
    pub fn configure(&self) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
        let state = web::Data::from(self.state.clone());
        move |cfg| routes::register(cfg, state)
    }

    /// Serves the console on `addr` until SIGINT or SIGTERM. A non-loopback address without an
    /// access token is refused before anything is bound ([`Error::Usage`]).
    pub async fn serve(self, addr: SocketAddr) -> Result<()> {
        check_exposure(addr, self.state.token.is_some())?;
        let console = self.clone();
        let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(console.configure()))
            .workers(2)
            .disable_signals()
            .bind(addr)
            .map_err(|e| Error::Usage(format!("console: --addr {addr}: cannot listen there: {e}")))?;
        let local = server.addrs().first().copied().unwrap_or(addr);
        println!(
            "console on http://{local}{}/ ({}); SIGINT or SIGTERM stops it",
            self.state.base,
            if self.state.token.is_some() { "access token required" } else { "loopback only, no token" }
        );
        let server = server.run();
        let handle = server.handle();
        tokio::select! {
            done = server => done?,
            () = crate::runtime::shutdown::shutdown_signal() => handle.stop(true).await,
        }
        Ok(())
    }
}

/// Refuses to expose the console beyond this machine without an access token.
pub fn check_exposure(addr: SocketAddr, has_token: bool) -> Result<()> {
    if addr.ip().is_loopback() || has_token {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "console: --addr {addr} is not a loopback address: anyone who reaches it could retry, remove and \
         pause jobs; give an access token (--token or CONVEYOR_CONSOLE_TOKEN), or bind 127.0.0.1"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        assert!(check_exposure("127.0.0.1:8080".parse().unwrap(), false).is_ok());
        assert!(check_exposure("[::1]:8080".parse().unwrap(), false).is_ok());
        let refused = check_exposure("0.0.0.0:8080".parse().unwrap(), false).unwrap_err().to_string();
        assert!(refused.contains("--token"), "{refused}");
        assert!(check_exposure("0.0.0.0:8080".parse().unwrap(), true).is_ok());
    }
}
