//! The `conveyor` driver: `conveyor driver`, the driver side of the protocol for conveyor
//! itself, using the runtime the way an application does (a `Queue` to enqueue into, a
//! `WorkerPool` with the benchmark's job kinds, an observer that reports when each job ran). A
//! comparison runs it beside the native path: the difference between the two is what the
//! driver harness costs (a process boundary, JSON lines, and handler end instead of
//! settlement as the end of a job).

use super::protocol::{JobSpec, Record, Reply, Request, WorkersHint};
use crate::bench::jobs::JobKind;
use crate::runtime::clock;
use crate::runtime::connection::Endpoint;
use crate::runtime::error::{Error, Result};
use crate::runtime::queue::{Envelope, Queue, QueueOptions};
use crate::runtime::worker::{Observer, SettledBatch, Settlement, WorkerPool};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How often buffered records go out.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Records not yet sent, shared by every worker's observer and the flusher.
type Outbox = Arc<Mutex<Vec<Record>>>;

/// Serves the protocol on stdin and stdout until [`Request::Stop`] (or stdin closes). Call
/// inside an actix `System`.
pub async fn serve() -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let outbox: Outbox = Arc::default();
    let mut queue: Option<(Queue, WorkersHint)> = None;
    let mut pool: Option<WorkerPool> = None;
    let flusher = {
        let outbox = outbox.clone();
        actix::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                flush(&outbox);
            }
        })
    };
    while let Some(line) = lines.next_line().await? {
        let request: Request = serde_json::from_str(&line)
            .map_err(|e| Error::Usage(format!("conveyor driver: not a protocol request ({e}): {line}")))?;
        match request {
            Request::Hello { redis_url, queue: name, workers, .. } => {
                let redis = Endpoint::plain(redis_url).connect().await?;
                let q = Queue::new(redis, &name, QueueOptions::default(), clock::system());
                q.reset().await?;
                q.ensure_group().await?;
                queue = Some((q, workers));
                let settings =
                    [("workers", workers.count), ("concurrency", workers.concurrency), ("claim_batch", workers.batch)]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), serde_json::json!(v)))
                        .chain([("processes".to_owned(), serde_json::json!(1))])
                        .collect();
                let library = format!("conveyor {}", env!("CARGO_PKG_VERSION"));
                reply(&Reply::Hello { driver: "conveyor".into(), library, settings });
            }
            Request::Enqueue { batch, jobs } => {
                let (q, _) =
                    queue.as_ref().ok_or_else(|| Error::Usage("conveyor driver: enqueue before hello".into()))?;
                let now = clock::now_us();
                let envelopes: Vec<Envelope> = jobs.iter().map(|j| envelope(j, now)).collect();
                q.enqueue_batch(&envelopes).await?;
                reply(&Reply::Enqueued { batch });
            }
            Request::Start => {
                let (q, hint) =
                    queue.as_ref().ok_or_else(|| Error::Usage("conveyor driver: start before hello".into()))?;
                let outbox = outbox.clone();
                pool = Some(
                    WorkerPool::builder(q.clone(), crate::bench::jobs::registry())
                        .workers(hint.count)
                        .concurrency(hint.concurrency as usize)
                        .batch(hint.batch as usize)
                        .observed_by(Arc::new(move || Box::new(Recorder { outbox: outbox.clone() })))
                        .start()
                        .await?,
                );
                reply(&Reply::Started { pids: vec![std::process::id()] });
            }
            Request::Stop => break,
        }
    }
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    flusher.abort();
    flush(&outbox);
    let records_sent = RECORDS_SENT.load(std::sync::atomic::Ordering::Relaxed);
    let remaining = match &queue {
        Some((q, _)) => Some(q.depth().await?.unfinished()),
        None => None,
    };
    reply(&Reply::Stopped { records_sent, remaining });
    Ok(())
}

/// Records written to stdout so far.
static RECORDS_SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The job a protocol request describes, as conveyor's producer would build it, stamped with
/// the driver's enqueue time.
fn envelope(j: &JobSpec, now_us: u64) -> Envelope {
    let kind = match j.kind.as_str() {
        "sleep" => JobKind::Sleep { us: j.duration_us },
        "cpu" => JobKind::Cpu { us: j.duration_us },
        _ => JobKind::Noop,
    };
    Envelope {
        seq: u32::try_from(j.seq).ok(),
        enqueued_us: Some(now_us),
        ..Envelope::new(kind.name(), kind.payload(j.payload_bytes))
    }
}

/// Writes the buffered records as one message; returns how many.
fn flush(outbox: &Outbox) -> u64 {
    let records = std::mem::take(&mut *outbox.lock().expect("not poisoned"));
    let n = records.len() as u64;
    if n > 0 {
        reply(&Reply::Records { records });
        RECORDS_SENT.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    n
}

fn reply(r: &Reply) {
    let mut line = serde_json::to_vec(r).expect("replies serialize");
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    // conveyor reading our stdout is gone: nothing is left to tell.
    let _ = out.write_all(&line).and_then(|_| out.flush());
}

/// A worker's observer: one record per job its handler ran.
struct Recorder {
    outbox: Outbox,
}

impl Observer for Recorder {
    fn settled(&mut self, batch: &SettledBatch<'_>) {
        let pid = std::process::id();
        let mut out = self.outbox.lock().expect("not poisoned");
        for job in batch.jobs.iter().filter(|j| j.settlement == Settlement::Completed && j.started_us > 0) {
            let Some(seq) = job.seq else { continue };
            out.push(Record {
                seq: u64::from(seq),
                enqueued_ns: job.enqueued_us * 1_000,
                started_ns: job.started_us * 1_000,
                finished_ns: job.finished_us * 1_000,
                pid,
            });
        }
    }
}
