//! The handlers of the examples' job types, shared by the worker and `myapp`.

use crate::jobs::{Fetch, HashFile};
use conveyor::{JobContext, JobError, Registry};
use sha2::{Digest, Sha256};

/// Every job type of the examples with its handler.
pub fn registry() -> Registry {
    Registry::new().handle::<HashFile, _, _, _>(hash_file).handle::<Fetch, _, _, _>(fetch)
}

async fn hash_file(job: HashFile, ctx: JobContext) -> Result<(), JobError> {
    // Reading a missing file will not work next time either: fail now, no retry.
    let bytes = tokio::fs::read(&job.path).await.map_err(|e| JobError::fail(format!("{}: {e}", job.path)))?;
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if std::env::var_os("EXAMPLE_QUIET").is_none() {
        println!("job {} hashed {} sha256={hex}", ctx.id, job.path);
    }
    Ok(())
}

async fn fetch(job: Fetch, ctx: JobContext) -> Result<(), JobError> {
    // A failed request is retried with backoff (the `?`); the job's timeout drops a request
    // that hangs, and the attempt fails as timed out.
    let response = reqwest::get(&job.url).await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status.is_server_error() {
        return Err(JobError::retry(format!("{} answered {status}", job.url)));
    }
    if std::env::var_os("EXAMPLE_QUIET").is_none() {
        println!("job {} fetched {} status={} bytes={}", ctx.id, job.url, status.as_u16(), body.len());
    }
    Ok(())
}
