//! Drivers: conveyor's scenarios run against other Redis job queues. A driver is a small program
//! in the queue's own language (`drivers/<name>/`) that speaks the protocol of [`protocol`]
//! over its stdin and stdout: conveyor paces the scenario's jobs exactly as for its own runs and
//! hands them to the driver, the driver enqueues them and its workers report when each ran,
//! and conveyor computes every figure itself ([`ledger`]), so the definitions are the same for
//! every queue. [`run::run_driven`] is the coordinator of one such run; [`conveyor`] is the
//! driver for conveyor itself (`conveyor driver`), whose figures against a native run measure
//! what the harness costs.
//!
//! This file owns the driver's process and the conveyor side of the protocol: spawning,
//! requests, matching acknowledgements, and routing records to the ledger.

pub mod conveyor;
pub mod ledger;
pub mod protocol;
pub mod run;

use crate::runtime::error::{Error, Result};
use crate::runtime::queue::Envelope;
use ledger::Ledger;
use protocol::{JobSpec, Reply, Request};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};

/// The queues conveyor has a driver for, as `--driver` and `driver = "…"` name them. `native`
/// is no driver: conveyor's own in-process run.
pub const DRIVERS: &[&str] = &["native", "conveyor", "bullmq", "celery", "rq", "dramatiq"];

/// Longest wait for a batch's acknowledgement.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `name` is a driver conveyor knows (see [`DRIVERS`]).
pub fn known(name: &str) -> bool {
    DRIVERS.contains(&name)
}

/// Where the drivers' programs live: `CONVEYOR_DRIVERS_DIR`, else `./drivers` when it exists,
/// else the `drivers/` of the source tree this binary was built from.
pub fn drivers_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CONVEYOR_DRIVERS_DIR") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from("drivers");
    if here.join("bullmq").is_dir() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("drivers")
}

/// A running driver process and the conveyor side of its protocol.
pub struct Driver {
    /// The driver's name.
    pub name: String,
    /// The driver process (killed if this is dropped before it exits).
    child: Child,
    /// Its process id: CPU accounting starts from it.
    pub pid: u32,
    /// Sends requests; shared with the producers.
    pub link: DriverLink,
    /// Every reply that is neither an acknowledgement nor records, in order.
    control: mpsc::UnboundedReceiver<Reply>,
}

/// What producers hold to hand jobs to the driver: requests in, acknowledgements back, and the
/// ledger every sent job is written into first.
#[derive(Clone)]
pub struct DriverLink {
    name: String,
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>,
    next_batch: Arc<AtomicU64>,
    /// Sent jobs and the records that came back.
    pub ledger: Arc<Mutex<Ledger>>,
}

impl Driver {
    /// Starts driver `name` (one of [`DRIVERS`] other than `native`). Its stderr is this
    /// process's, so what it says while installing or failing reaches the user.
    pub fn spawn(name: &str) -> Result<Self> {
        let mut command = match name {
            "conveyor" => {
                let mut c = tokio::process::Command::new(std::env::current_exe()?);
                c.arg("driver");
                c
            }
            other => {
                let script = drivers_dir().join(other).join("start");
                if !script.is_file() {
                    return Err(Error::Usage(format!(
                        "driver {other}: {} is missing (set CONVEYOR_DRIVERS_DIR to the drivers/ directory \
                         of a conveyor checkout)",
                        script.display()
                    )));
                }
                let mut c = tokio::process::Command::new("bash");
                c.arg(script);
                c
            }
        };
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| Error::Usage(format!("driver {name}: cannot start: {e}")))?;
        let pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let link = DriverLink {
            name: name.to_owned(),
            stdin: Arc::new(tokio::sync::Mutex::new(stdin)),
            pending: Arc::default(),
            next_batch: Arc::new(AtomicU64::new(1)),
            ledger: Arc::default(),
        };
        let (tx, control) = mpsc::unbounded_channel();
        let (pending, ledger) = (link.pending.clone(), link.ledger.clone());
        let driver_name = name.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                let line = match lines.next_line().await {
                    Ok(Some(line)) => line,
                    Ok(None) | Err(_) => {
                        let _ = tx.send(Reply::Error { message: format!("driver {driver_name} closed its stdout") });
                        pending.lock().expect("not poisoned").clear();
                        return;
                    }
                };
                match serde_json::from_str::<Reply>(&line) {
                    Ok(Reply::Enqueued { batch }) => {
                        if let Some(done) = pending.lock().expect("not poisoned").remove(&batch) {
                            let _ = done.send(());
                        }
                    }
                    Ok(Reply::Records { records }) => {
                        let mut l = ledger.lock().expect("not poisoned");
                        records.iter().for_each(|r| l.record(r));
                    }
                    Ok(other) => {
                        let _ = tx.send(other);
                    }
                    Err(e) => {
                        let short: String = line.chars().take(200).collect();
                        let message =
                            format!("driver {driver_name} sent a line that is not a protocol message ({e}): {short}");
                        let _ = tx.send(Reply::Error { message });
                    }
                }
            }
        });
        Ok(Self { name: name.to_owned(), child, pid, link, control })
    }

    /// Sends `request`.
    pub async fn send(&self, request: &Request) -> Result<()> {
        self.link.send(request).await
    }

    /// Waits up to `timeout` for the next control reply and returns it when `pick` takes it;
    /// an error reply, another reply, the driver exiting or the timeout is an error saying what
    /// was awaited.
    pub async fn expect<T>(&mut self, what: &str, timeout: Duration, pick: impl Fn(Reply) -> Option<T>) -> Result<T> {
        let reply = tokio::time::timeout(timeout, self.control.recv()).await;
        let fail = |message: String| Err(Error::Driver { name: self.name.clone(), message });
        match reply {
            Err(_) => fail(format!("no {what} within {timeout:?}")),
            Ok(None) => fail(format!("exited before its {what}")),
            Ok(Some(Reply::Error { message })) => fail(message),
            Ok(Some(reply)) => match pick(reply.clone()) {
                Some(t) => Ok(t),
                None => fail(format!("sent {reply:?} where its {what} was expected")),
            },
        }
    }

    /// The next unsolicited reply, if the driver sends one mid-run: an error (or its exit) ends
    /// the run with the driver's message. Never resolves while the driver runs quietly.
    pub async fn failure(&mut self) -> Error {
        let message = match self.control.recv().await {
            Some(Reply::Error { message }) => message,
            Some(other) => format!("sent {other:?} in the middle of the run"),
            None => "exited in the middle of the run".to_owned(),
        };
        Error::Driver { name: self.name.clone(), message }
    }

    /// Waits for the process to exit (up to `timeout`, then kills it).
    pub async fn wait(mut self, timeout: Duration) {
        if tokio::time::timeout(timeout, self.child.wait()).await.is_err() {
            tracing::warn!(driver = %self.name, "the driver did not exit after stopping; killing it");
            let _ = self.child.kill().await;
        }
    }
}

impl DriverLink {
    async fn send(&self, request: &Request) -> Result<()> {
        let mut line = serde_json::to_vec(request).expect("requests serialize");
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        Ok(())
    }

    fn failed(&self, message: String) -> Error {
        Error::Driver { name: self.name.clone(), message }
    }

    /// Hands `jobs` to the driver (each written into the ledger first, with `warm[i]` saying
    /// whether job `i` is warm-up) and waits until the driver says its queue has them.
    pub async fn enqueue(&self, jobs: &[Envelope], warm: &[bool]) -> Result<()> {
        let specs: Vec<JobSpec> = jobs.iter().map(job_spec).collect();
        {
            let mut ledger = self.ledger.lock().expect("not poisoned");
            for (spec, w) in specs.iter().zip(warm) {
                ledger.sent(spec.seq, spec.intended_ns / 1_000, *w);
            }
        }
        let batch = self.next_batch.fetch_add(1, Ordering::Relaxed);
        let (done, acked) = oneshot::channel();
        self.pending.lock().expect("not poisoned").insert(batch, done);
        self.send(&Request::Enqueue { batch, jobs: specs }).await?;
        match tokio::time::timeout(ENQUEUE_TIMEOUT, acked).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.failed("exited before acknowledging a batch".into())),
            Err(_) => {
                self.pending.lock().expect("not poisoned").remove(&batch);
                Err(self.failed(format!("did not acknowledge a batch within {ENQUEUE_TIMEOUT:?}")))
            }
        }
    }
}

/// A benchmark job as the protocol describes it: its kind and handler time come from the
/// envelope conveyor's producer built (`bench.sleep` carries its µs in the payload's first 8
/// bytes), so a driver run sends what a native run enqueues.
fn job_spec(e: &Envelope) -> JobSpec {
    let kind = e.name.strip_prefix("bench.").unwrap_or(&e.name).to_owned();
    let duration_us = match kind.as_str() {
        "sleep" | "cpu" => e.payload.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes),
        _ => 0,
    };
    JobSpec {
        seq: u64::from(e.seq.unwrap_or(u32::MAX)),
        intended_ns: e.enqueued_us.unwrap_or(0) * 1_000,
        kind,
        duration_us,
        payload_bytes: e.payload.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::jobs::JobKind;

    #[test]
    fn a_sleep_job_keeps_its_time_and_payload_size() {
        let kind = JobKind::Sleep { us: 1_500 };
        let e = Envelope { seq: Some(4), enqueued_us: Some(10), ..Envelope::new(kind.name(), kind.payload(100)) };
        let spec = job_spec(&e);
        assert_eq!(
            spec,
            JobSpec { seq: 4, intended_ns: 10_000, kind: "sleep".into(), duration_us: 1_500, payload_bytes: 100 }
        );
    }
}
