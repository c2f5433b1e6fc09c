//! A producer in another language, following only `docs/wire-format.md`: the page's Python
//! example is cut out of the page and run as it is (the real `redis` and `msgpack` packages,
//! no conveyor code), and a conveyor worker runs both jobs it enqueues.

use crate::support;
use conveyor::queue::QueueOptions;
use conveyor::{JobContext, JobType, Registry, WorkerPool};
use serde::{Deserialize, Serialize};
use std::process::Command;
use std::time::{Duration, SystemTime};

#[derive(Debug, Serialize, Deserialize)]
struct SendEmail {
    to: String,
}

impl JobType for SendEmail {
    const NAME: &'static str = "email.send";
}

/// The page's ```python block.
fn documented_python() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/wire-format.md")).unwrap();
    let start = doc.find("```python\n").expect("the page has a Python example") + "```python\n".len();
    doc[start..start + doc[start..].find("```").expect("the block ends")].to_owned()
}

/// python3 with the packages the page names, or a failure that says how to get them.
fn python_with_packages() -> &'static str {
    let check = Command::new("python3").args(["-c", "import redis, msgpack"]).output();
    match check {
        Ok(o) if o.status.success() => "python3",
        _ => panic!(
            "this test runs the Python example of docs/wire-format.md: install python3 and its packages with \
             `apt-get install -y python3 python3-pip && python3 -m pip install redis msgpack`"
        ),
    }
}

#[actix_rt::test]
async fn jobs_enqueued_by_the_documented_python_example_run_on_a_conveyor_worker() {
    let python = python_with_packages();
    let queue = support::queue("wire-python", QueueOptions::default()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let registry = Registry::new().handle::<SendEmail, _, _, _>(move |job: SendEmail, ctx: JobContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((job.to, ctx.id.to_string(), ctx.enqueued_at));
            Ok(())
        }
    });
    let pool = WorkerPool::builder(queue.clone(), registry).block(Duration::from_millis(20)).start().await.unwrap();

    // Entry ids have millisecond times: a second's margin.
    let before = SystemTime::now() - Duration::from_secs(1);
    let port = support::shared_server().url().rsplit(':').next().unwrap().trim_end_matches('/').to_owned();
    let out = Command::new(python)
        .args(["-c", &documented_python()])
        .env("REDIS_PORT", &port)
        .env("QUEUE", queue.name())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "the example ran: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let enqueued = stdout.lines().find_map(|l| l.strip_prefix("enqueued ")).expect("it printed the entry id");
    let scheduled = stdout.lines().find_map(|l| l.strip_prefix("scheduled ")).expect("it printed the delayed id");
    let packed = stdout.lines().find_map(|l| l.strip_prefix("packed ")).expect("it printed the packed entry id");

    let mut ran = Vec::new();
    while ran.len() < 4 {
        let (to, id, enqueued_at) =
            tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("every job ran").unwrap();
        // Written without `t`: the time of the entry it was claimed from (for the delayed job,
        // whose id is a UUID, when it became due), never the epoch or a number read off its id.
        assert!(
            enqueued_at >= before && enqueued_at <= SystemTime::now(),
            "job {id} ({to}) enqueued at {enqueued_at:?}, not between the test's start and now"
        );
        ran.push((to, id));
    }
    ran.sort();
    assert_eq!(
        ran,
        [
            ("a@example.com".to_owned(), enqueued.to_owned()),
            ("later@example.com".to_owned(), scheduled.to_owned()),
            ("p0@example.com".to_owned(), format!("{packed}.0")),
            ("p1@example.com".to_owned(), format!("{packed}.1")),
        ],
        "each job ran once, with its payload, under the id the producer saw"
    );
    pool.shutdown().await;
}
