//! Enqueue with an idempotency key, against a real Redis: the same key twice yields one job,
//! even when the calls race; the key expires after its time to live; bad keys are refused.

use crate::support;
use conveyor::queue::{Enqueued, MAX_KEY_BYTES, QueueOptions};
use std::time::Duration;

fn job(seq: u64) -> conveyor::queue::Envelope {
    support::job(seq)
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn the_same_key_twice_yields_one_job() {
    let queue = support::queue("unique-twice", QueueOptions::default()).await;
    let first = queue.enqueue_unique(&job(0), "order-42", HOUR).await.unwrap();
    let Enqueued::Added(id) = &first else { panic!("first call must add: {first:?}") };
    let second = queue.enqueue_unique(&job(1), "order-42", HOUR).await.unwrap();
    assert_eq!(second, Enqueued::Duplicate(id.clone()), "the second call names the first job");
    assert!(matches!(queue.enqueue_unique(&job(2), "order-43", HOUR).await.unwrap(), Enqueued::Added(_)));
    assert_eq!(queue.depth().await.unwrap().waiting, 2);
}

#[tokio::test]
async fn racing_calls_with_one_key_add_one_job() {
    let queue = support::queue("unique-race", QueueOptions::default()).await;
    let calls = (0..50).map(|i| {
        let queue = queue.clone();
        async move { queue.enqueue_unique(&job(i), "same", HOUR).await.unwrap() }
    });
    let results = futures::future::join_all(calls).await;
    let added: Vec<_> = results.iter().filter(|r| matches!(r, Enqueued::Added(_))).collect();
    assert_eq!(added.len(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.id() == added[0].id()), "{results:?}");
    assert_eq!(queue.depth().await.unwrap().waiting, 1);
}

#[tokio::test]
async fn a_key_can_be_used_again_after_it_expires() {
    let queue = support::queue("unique-ttl", QueueOptions::default()).await;
    let ttl = Duration::from_millis(50);
    assert!(matches!(queue.enqueue_unique(&job(0), "k", ttl).await.unwrap(), Enqueued::Added(_)));
    assert!(matches!(queue.enqueue_unique(&job(0), "k", ttl).await.unwrap(), Enqueued::Duplicate(_)));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(matches!(queue.enqueue_unique(&job(0), "k", ttl).await.unwrap(), Enqueued::Added(_)));
    assert_eq!(queue.depth().await.unwrap().waiting, 2);
}

#[tokio::test]
async fn keys_with_any_bytes_stay_in_the_queue_and_reset_removes_them() {
    let queue = support::queue("unique-bytes", QueueOptions::default()).await;
    let key = "{other}:*?[x] ü";
    assert!(matches!(queue.enqueue_unique(&job(0), key, HOUR).await.unwrap(), Enqueued::Added(_)));
    let stored = queue.keys().unique(key);
    assert!(stored.starts_with(&format!("{{{}:", queue.options().prefix)), "{stored}");
    let exists = async |k: &str| -> u64 {
        queue.redis().with_conn(async |c| redis::cmd("EXISTS").arg(k).query_async(c).await).await.unwrap()
    };
    assert_eq!(exists(&stored).await, 1);
    queue.reset().await.unwrap();
    assert_eq!(exists(&stored).await, 0);
}

#[tokio::test]
async fn empty_or_huge_keys_and_a_zero_ttl_are_refused() {
    let queue = support::queue("unique-bad", QueueOptions::default()).await;
    for (key, ttl) in [("", HOUR), (&*"k".repeat(MAX_KEY_BYTES + 1), HOUR), ("k", Duration::ZERO)] {
        let err = queue.enqueue_unique(&job(0), key, ttl).await.unwrap_err().to_string();
        assert!(err.contains("idempotency key: expected"), "{err}");
    }
    assert_eq!(queue.depth().await.unwrap().waiting, 0);
}

#[tokio::test]
async fn a_redis_that_forgot_the_enqueue_script_is_sent_its_text() {
    let queue = support::queue("unique-noscript", QueueOptions::default()).await;
    assert!(matches!(queue.enqueue_unique(&job(0), "a", HOUR).await.unwrap(), Enqueued::Added(_)));
    // SCRIPT FLUSH on a Redis of the test's own (the shared one serves other tests' scripts).
    let server = support::own_server(&[]);
    let redis = conveyor::connection::Redis::connect(&server.url()).await.unwrap();
    let own = conveyor::Queue::new(redis.clone(), "noscript", QueueOptions::default(), conveyor::clock::system());
    own.ensure_group().await.unwrap();
    assert!(matches!(own.enqueue_unique(&job(0), "a", HOUR).await.unwrap(), Enqueued::Added(_)));
    redis.with_conn(async |c| redis::cmd("SCRIPT").arg("FLUSH").query_async::<()>(c).await).await.unwrap();
    assert!(
        matches!(own.enqueue_unique(&job(1), "b", HOUR).await.unwrap(), Enqueued::Added(_)),
        "loaded and sent again"
    );
    assert!(
        matches!(own.enqueue_unique(&job(2), "b", HOUR).await.unwrap(), Enqueued::Duplicate(_)),
        "and known by hash again"
    );
    assert_eq!(own.depth().await.unwrap().waiting, 2, "each job once");
}
