//! What a worker does with a job: the built-in benchmark job kinds. A handler's failure is a
//! value, and so is its panic: the worker turns both into a failed job (retry, then dead
//! letter) and carries on.

use crate::queue::JobKind;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// Runs one job to its end. `Err` carries the reason the job failed.
pub async fn execute(kind: JobKind) -> Result<(), String> {
    match kind {
        JobKind::Noop => Ok(()),
        JobKind::Sleep { us } => {
            crate::timer::sleep(Duration::from_micros(us)).await;
            Ok(())
        }
        JobKind::Cpu { us } => {
            let spin = Duration::from_micros(us);
            // Off the event loop: a spinning job must not stall every other actor.
            tokio::task::spawn_blocking(move || spin_for(spin)).await.map_err(|e| format!("cpu job: {e}"))
        }
        JobKind::Fail { probability } => {
            if rand::random::<f32>() < probability {
                Err(format!("failed on purpose (probability {probability})"))
            } else {
                Ok(())
            }
        }
        JobKind::Panic => {
            let outcome = AssertUnwindSafe(async { panic!("job panicked on purpose") }).catch_unwind().await;
            outcome.map_err(|p| format!("handler panicked: {}", panic_message(&p)))
        }
    }
}

fn spin_for(d: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}
