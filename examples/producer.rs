//! Enqueues jobs for the example worker (`cargo run --example worker`) and prints their ids:
//!
//! ```sh
//! cargo run --example producer -- hash Cargo.toml README.md   # one job per file, one round trip
//! cargo run --example producer -- fetch http://127.0.0.1:8000/
//! ```

mod jobs;
mod settings;

use conveyor::Client;
use jobs::{Fetch, HashFile};
use std::process::ExitCode;

#[actix_rt::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let client = match settings::queue().await {
        Ok(queue) => Client::new(queue),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let enqueued = match args.split_first() {
        Some((what, paths)) if what == "hash" && !paths.is_empty() => {
            let jobs: Vec<HashFile> = paths.iter().map(|p| HashFile { path: p.clone() }).collect();
            client.enqueue_batch(&jobs).await
        }
        Some((what, urls)) if what == "fetch" && !urls.is_empty() => {
            let jobs: Vec<Fetch> = urls.iter().map(|u| Fetch { url: u.clone() }).collect();
            client.enqueue_batch(&jobs).await
        }
        _ => {
            eprintln!("usage: producer hash <file>... | producer fetch <url>...");
            return ExitCode::from(2);
        }
    };
    match enqueued {
        Ok(ids) => {
            for id in ids {
                println!("enqueued {id}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
