//! Several jobs in one stream entry (`QueueOptions::pack`): each keeps its own id, attempts,
//! retry and dead letter; the entry is acknowledged once all of them settled; a reclaim splits
//! the entry of a dead worker into jobs of their own; listings and lookups show each job.

use crate::support;
use conveyor::queue::{Envelope, JobsIn, Outcome, QueueOptions};
use conveyor::{Client, JobContext, JobError, JobId, JobType, Queue, Registry, WorkerPool};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step {
    n: u32,
    /// Fail the first attempt (retried alone), or fail for good.
    fail_once: bool,
}

impl JobType for Step {
    const NAME: &'static str = "pack.step";
}

/// What a handler saw: the job's number, id and attempt.
type Seen = (u32, JobId, u16);

fn options(pack: u16) -> QueueOptions {
    QueueOptions {
        pack,
        lease: Duration::from_millis(300),
        backoff: conveyor::queue::Backoff { base: Duration::from_millis(10), max: Duration::from_millis(20) },
        ..QueueOptions::default()
    }
}

async fn pool(queue: &Queue) -> (WorkerPool, UnboundedReceiver<Seen>) {
    let (tx, rx) = unbounded_channel();
    let registry = Registry::new().handle::<Step, _, _, _>(move |job: Step, ctx: JobContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((job.n, ctx.id.clone(), ctx.attempt));
            if job.fail_once && ctx.attempt == 0 { Err(JobError::retry("first attempt fails")) } else { Ok(()) }
        }
    });
    let pool = support::pool(queue, registry).await;
    (pool, rx)
}

async fn next(rx: &mut UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a handler ran").expect("handlers live")
}

/// Stream entries in the queue's ready stream (acknowledged or not, until trimmed).
async fn entries(queue: &Queue) -> usize {
    let ready = queue.keys().ready();
    queue.redis().with_conn(async |c| redis::cmd("XLEN").arg(&ready).query_async::<usize>(c).await).await.unwrap()
}

#[actix_rt::test]
async fn a_batch_shares_entries_and_each_job_runs_once_under_the_id_its_enqueue_answered() {
    let queue = support::queue("pack-ids", options(10)).await;
    let client = Client::new(queue.clone());
    let batch: Vec<Step> = (0..25).map(|n| Step { n, fail_once: n == 7 }).collect();
    let ids = client.enqueue_batch(&batch).await.unwrap();
    assert_eq!(ids.len(), 25);
    assert_eq!(entries(&queue).await, 3, "25 jobs in entries of 10, 10 and 5");
    assert_eq!(ids[0].packed_index(), Some(0));
    assert_eq!(ids[13].packed_index(), Some(3));
    assert_eq!(ids[13].entry_place(), ids[10].entry_place(), "jobs 10..19 share an entry");

    // Before any worker: the listing and the lookup show each job, not each entry.
    let page = queue.jobs(JobsIn::Waiting, 10, None).await.unwrap();
    assert_eq!(page.jobs.len(), 25, "three entries list as their 25 jobs");
    assert!(page.jobs.iter().zip(&ids).all(|(j, id)| &j.id == id && j.name == Step::NAME));
    let found = queue.find(ids[13].as_str()).await.unwrap().expect("a packed job is found by its id");
    assert_eq!(found.id, ids[13]);
    assert!(String::from_utf8_lossy(&found.payload).contains("\"n\":13"), "{found:?}");

    let (pool, mut rx) = pool(&queue).await;
    let mut runs: HashMap<u32, Vec<(JobId, u16)>> = HashMap::new();
    for _ in 0..26 {
        let (n, id, attempt) = next(&mut rx).await;
        runs.entry(n).or_default().push((id, attempt));
    }
    for (n, id) in ids.iter().enumerate() {
        let got = &runs[&(n as u32)];
        let attempts: Vec<u16> = got.iter().map(|(_, a)| *a).collect();
        assert_eq!(attempts, if n == 7 { vec![0, 1] } else { vec![0] }, "job {n}: only job 7 is retried");
        assert!(got.iter().all(|(seen, _)| seen == id), "job {n} runs under its own id: {got:?}");
    }
    let d = support::depth_until(&queue, |d| d.waiting + d.in_flight + d.retrying == 0).await;
    assert_eq!((d.waiting, d.in_flight, d.dead), (0, 0, 0), "every entry acknowledged: {d:?}");
    pool.shutdown().await;
}

#[actix_rt::test]
async fn a_packed_job_that_does_not_decode_goes_to_the_dead_letters_alone() {
    let queue = support::queue("pack-poison", options(8)).await;
    // One batch (one packed entry) whose third job's payload is not a Step.
    let jobs: Vec<Envelope> = (0..4u32)
        .map(|n| match n {
            2 => Envelope::new(Step::NAME, br#"{"n":"two"}"#.to_vec()),
            n => Envelope::new(Step::NAME, format!(r#"{{"n":{n},"fail_once":false}}"#).into_bytes()),
        })
        .collect();
    let ids = queue.enqueue_batch(&jobs).await.unwrap();
    assert_eq!(entries(&queue).await, 1, "one entry of four jobs");
    let (pool, mut rx) = pool(&queue).await;
    let mut ran: Vec<u32> = Vec::new();
    for _ in 0..3 {
        ran.push(next(&mut rx).await.0);
    }
    ran.sort_unstable();
    assert_eq!(ran, [0, 1, 3]);
    let d = support::depth_until(&queue, |d| d.dead == 1 && d.in_flight == 0).await;
    assert_eq!((d.waiting, d.in_flight), (0, 0));
    let dead = queue.jobs(JobsIn::Dead, 10, None).await.unwrap();
    assert_eq!(dead.jobs.len(), 1);
    assert_eq!(dead.jobs[0].id, ids[2], "the dead letter keeps the packed job's id");
    let reason = dead.jobs[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("payload does not decode as job type \"pack.step\""), "{reason}");
    pool.shutdown().await;
}

#[actix_rt::test]
async fn the_entry_of_a_dead_worker_is_split_into_jobs_of_their_own_that_keep_their_ids() {
    let queue = support::queue("pack-reclaim", options(16)).await;
    let client = Client::new(queue.clone());
    let batch: Vec<Step> = (0..6).map(|n| Step { n, fail_once: false }).collect();
    let ids = client.enqueue_batch(&batch).await.unwrap();

    // A worker claims the entry, settles one of its jobs, and dies.
    let mut conn = queue.redis().blocking_connection().await.unwrap();
    let claimed = queue.claim(&mut conn, "doomed", 10, Duration::from_millis(50)).await.unwrap();
    assert_eq!(claimed.len(), 6, "one entry, six jobs");
    assert!(claimed.iter().all(|c| c.pack.is_some_and(|p| p.of == 6)));
    let first = (&claimed[0], &Outcome::Completed, false);
    queue.settle_acking(&[first]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await; // past the lease
    let r = queue.reclaim("0-0", 100).await.unwrap();
    assert_eq!(r.moved, 6, "each job of the entry is an entry of its own now: {r:?}");

    let (pool, mut rx) = pool(&queue).await;
    let mut seen: Vec<(u32, JobId)> = Vec::new();
    for _ in 0..6 {
        let (n, id, _) = next(&mut rx).await;
        seen.push((n, id));
    }
    seen.sort();
    let expected: Vec<(u32, JobId)> = ids.iter().cloned().enumerate().map(|(n, id)| (n as u32, id)).collect();
    assert_eq!(seen, expected, "every job ran again under its own id (job 0 a second time: at least once)");
    let d = support::depth_until(&queue, |d| d.waiting + d.in_flight == 0).await;
    assert_eq!((d.waiting, d.in_flight, d.dead), (0, 0, 0));
    pool.shutdown().await;
}

/// Worker processes on a partitioned queue that packs: one of two is killed (SIGKILL) while it
/// holds packed entries. The reclaim splits them and the other process runs their jobs: every
/// job produced finishes, none is lost; the jobs of the dead worker's entries that had already
/// finished run again (at least once), and the audit counts them as duplicates.
#[test]
fn a_worker_process_killed_holding_packed_entries_of_a_partitioned_queue_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let text = "pack = 50\npartitions = 3\nlease = \"1s\"\n[producer]\nrate = 3000\nduration = \"3s\"\nbatch = 200\n\
                [workers]\ncount = 2\nconcurrency = 4\nbatch = 100\n\
                [[jobs]]\nkind = \"sleep\"\nduration = \"1ms\"\n[phases]\ndrain_timeout = \"60s\"\n";
    let (scenario, _) = support::scenario_file(dir.path(), "pack-kill.toml", "pack-kill", text);
    let url = support::shared_server().url();
    let victim = support::start_worker(support::worker(&url, &scenario, &["--metrics-addr", "off"]));
    let survivor = support::start_worker(support::worker(&url, &scenario, &["--metrics-addr", "off"]));
    let producer = support::producer(&url, &dir.path().join("results"), &scenario, &[]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    victim.kill();
    let out = producer.wait_with_output().unwrap();
    survivor.terminate();
    let json = support::json_output(&out);
    let counts = &json["cells"][0]["runs"][0]["counts"];
    eprintln!("PACKED KILL: counts {counts}");
    assert_eq!(counts["lost"], 0, "{counts}");
    assert_eq!(counts["unfinished"], 0, "{counts}");
    assert_eq!(counts["finished"], counts["produced"], "{counts}");
    assert!(counts["produced"].as_u64().unwrap() >= 9000, "an open loop sends its whole plan: {counts}");
}
