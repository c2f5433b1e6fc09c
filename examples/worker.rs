//! A worker process for the examples' two job types: it hashes files and fetches URLs until it
//! gets SIGINT or SIGTERM, then finishes what it holds and stops.
//!
//! ```sh
//! cargo run --example worker                     # Redis at redis://127.0.0.1:6379, queue "examples"
//! cargo run --example producer -- hash Cargo.toml README.md
//! cargo run --example producer -- fetch http://127.0.0.1:8000/
//! ```

mod handlers;
mod jobs;
mod settings;

use conveyor::WorkerPool;

#[actix_rt::main]
async fn main() -> conveyor::Result<()> {
    let queue = settings::queue().await?;
    let pool = WorkerPool::builder(queue.clone(), handlers::registry()).workers(2).concurrency(8).start().await?;
    println!("worker ready on queue {}", queue.name());
    conveyor::shutdown_signal().await;
    pool.shutdown().await;
    println!("worker stopped");
    Ok(())
}
