//! Where the example worker and producer find their queue.

/// The Redis URL and queue name both examples use: `CONVEYOR_REDIS_URL` (default
/// `redis://127.0.0.1:6379`) and `CONVEYOR_QUEUE` (default `examples`).
pub fn settings() -> (String, String) {
    let url = std::env::var("CONVEYOR_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let queue = std::env::var("CONVEYOR_QUEUE").unwrap_or_else(|_| "examples".into());
    (url, queue)
}

/// The queue both examples use.
pub async fn queue() -> conveyor::Result<conveyor::Queue> {
    let (url, name) = settings();
    let redis = conveyor::connection::Redis::connect(&url).await?;
    Ok(conveyor::Queue::new(redis, &name, conveyor::QueueOptions::default(), conveyor::clock::system()))
}
