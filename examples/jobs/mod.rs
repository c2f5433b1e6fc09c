//! The two job types of the examples, shared by the producer and the worker: what an
//! application's own crate of job types looks like.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Hash a file and report its SHA-256.
#[derive(Debug, Serialize, Deserialize)]
pub struct HashFile {
    /// The file, as the worker sees it.
    pub path: String,
}

impl conveyor::JobType for HashFile {
    const NAME: &'static str = "file.hash";
}

/// Fetch a URL; give up after the job's timeout.
#[derive(Debug, Serialize, Deserialize)]
pub struct Fetch {
    /// What to GET.
    pub url: String,
}

impl conveyor::JobType for Fetch {
    const NAME: &'static str = "http.fetch";

    /// A slow endpoint must not hold a worker: each attempt gets 2 s, and there are 2.
    fn defaults() -> conveyor::Enqueue {
        conveyor::Enqueue::new().timeout(Duration::from_secs(2)).max_attempts(2)
    }
}
