//! When a process is asked to stop: SIGINT (Ctrl-C) or SIGTERM (a service manager, `kill`,
//! Kubernetes). Worker processes, cron schedulers and long benchmark runs wait on this, then
//! finish what they hold.

use std::future::Future;
use std::pin::Pin;

/// A future that resolves on Ctrl-C or SIGTERM.
pub type Interrupt = Pin<Box<dyn Future<Output = ()>>>;

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub fn shutdown_signal() -> Interrupt {
    Box::pin(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    })
}
