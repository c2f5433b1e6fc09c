//! Shared test fixtures: a private redis-server per test binary (or per test, for fault tests
//! that kill it), a unique queue name per test, and a ready-made [`Queue`].

use conveyor::clock::{ManualClock, SharedClock};
use conveyor::connection::Redis;
use conveyor::queue::{Queue, QueueOptions};
use conveyor::redis_server::{RedisServer, ServerOptions};
use conveyor::run::{Interrupt, RunOptions};
use conveyor::scenario::Scenario;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// The redis-server all tests of this binary share; it lives until the process exits.
pub fn shared_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| match RedisServer::start(ServerOptions::default()) {
        Ok(s) => s,
        // Never skip: a missing redis-server is a failed run with instructions.
        Err(e) => panic!("tests need a real redis-server: {e}"),
    })
}

/// A server of the test's own, for tests that kill or restart it.
pub fn own_server(args: &[&str]) -> RedisServer {
    RedisServer::start(ServerOptions { args: args.iter().map(|s| s.to_string()).collect() })
        .unwrap_or_else(|e| panic!("tests need a real redis-server: {e}"))
}

/// A queue name no other test uses.
pub fn unique_name(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

pub async fn redis() -> Redis {
    Redis::connect(&shared_server().url()).await.expect("connect to the shared test redis-server")
}

/// A fresh queue on the shared server, with its consumer group created.
pub async fn queue(test: &str, options: QueueOptions) -> Queue {
    queue_with_clock(test, options, conveyor::clock::system()).await
}

pub async fn queue_with_clock(test: &str, options: QueueOptions, clock: SharedClock) -> Queue {
    let q = Queue::new(redis().await, &unique_name(test), options, clock);
    q.ensure_group().await.expect("create consumer group");
    q
}

/// A manual clock set to now.
pub fn manual_clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::at(conveyor::clock::now_us());
    (c.clone(), Arc::new(c))
}

/// A scenario from `text` (sections and fields), with a unique name starting with `test` so
/// its queue is the test's own.
pub fn scenario(test: &str, text: &str) -> Scenario {
    let name = unique_name(test);
    let text = format!("name = \"{name}\"\ndescription = \"test\"\n{text}");
    Scenario::parse(&text, std::path::Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Options for a run with every role in the test process and no progress output.
pub fn run_options() -> RunOptions {
    RunOptions {
        local_workers: true,
        instance: unique_name("inst"),
        progress: false,
        private_server: false,
        ceiling: false,
    }
}

/// An interrupt that never comes.
pub fn never() -> Interrupt {
    Box::pin(std::future::pending())
}

/// A small noop job with sequence number `seq` (timestamps derived from it, 8-byte payload).
pub fn job(seq: u64) -> conveyor::queue::Job {
    conveyor::queue::Job {
        seq,
        run: 1,
        attempt: 0,
        warmup: false,
        kind: conveyor::queue::JobKind::Noop,
        intended_us: 1_000 + seq,
        enqueued_us: 2_000 + seq,
        payload: vec![seq as u8; 8],
    }
}
