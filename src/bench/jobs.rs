//! The benchmark's job types: five kinds of work a scenario can mix, registered as handlers the
//! way an application registers its own ([`registry`]). Their payloads are a few bytes of
//! parameters (little-endian) followed by padding up to the scenario's `payload_bytes`, which
//! the handlers do not read: a benchmark measures the queue, not a JSON decoder.

use crate::runtime::handler::{JobContext, JobError, JobType, Registry};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// What a benchmark job does when a worker runs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum JobKind {
    /// Return at once.
    Noop,
    /// Wait this many microseconds without using CPU.
    Sleep {
        /// How long.
        us: u64,
    },
    /// Spin the CPU for this many microseconds.
    Cpu {
        /// How long.
        us: u64,
    },
    /// Fail with this probability (0.0..=1.0), otherwise succeed at once.
    Fail {
        /// Chance of failing.
        probability: f32,
    },
    /// Panic inside the handler (a crash the worker must survive).
    Panic,
}

impl JobKind {
    /// The job type name of this kind.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Noop => Noop::NAME,
            JobKind::Sleep { .. } => Sleep::NAME,
            JobKind::Cpu { .. } => Cpu::NAME,
            JobKind::Fail { .. } => Fail::NAME,
            JobKind::Panic => Panic::NAME,
        }
    }

    /// Its payload, padded with `x` to at least `bytes` bytes.
    pub fn payload(&self, bytes: usize) -> Vec<u8> {
        let mut p = match self {
            JobKind::Noop | JobKind::Panic => Vec::new(),
            JobKind::Sleep { us } | JobKind::Cpu { us } => us.to_le_bytes().to_vec(),
            JobKind::Fail { probability } => probability.to_le_bytes().to_vec(),
        };
        if p.len() < bytes {
            p.resize(bytes, b'x');
        }
        p
    }
}

/// The first `N` bytes of a payload.
fn prefix<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], String> {
    bytes.get(..N).and_then(|b| b.try_into().ok()).ok_or_else(|| format!("expected {N} bytes of {what}"))
}

/// `bench.noop`: returns at once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Noop;

impl JobType for Noop {
    const NAME: &'static str = "bench.noop";

    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn decode(_: &[u8]) -> Result<Self, String> {
        Ok(Noop)
    }
}

/// `bench.sleep`: waits without using CPU.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Sleep {
    /// How long, in µs.
    pub us: u64,
}

impl JobType for Sleep {
    const NAME: &'static str = "bench.sleep";

    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.us.to_le_bytes().to_vec())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        Ok(Sleep { us: u64::from_le_bytes(prefix(bytes, "microseconds")?) })
    }
}

/// `bench.cpu`: spins the CPU, off the event loop.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Cpu {
    /// How long, in µs.
    pub us: u64,
}

impl JobType for Cpu {
    const NAME: &'static str = "bench.cpu";

    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.us.to_le_bytes().to_vec())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        Ok(Cpu { us: u64::from_le_bytes(prefix(bytes, "microseconds")?) })
    }
}

/// `bench.fail`: fails with a probability, else succeeds at once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Fail {
    /// Chance of failing, 0.0 to 1.0.
    pub probability: f32,
}

impl JobType for Fail {
    const NAME: &'static str = "bench.fail";

    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.probability.to_le_bytes().to_vec())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        Ok(Fail { probability: f32::from_le_bytes(prefix(bytes, "probability")?) })
    }
}

/// `bench.panic`: panics (a crash the worker must survive).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Panic;

impl JobType for Panic {
    const NAME: &'static str = "bench.panic";

    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn decode(_: &[u8]) -> Result<Self, String> {
        Ok(Panic)
    }
}

/// `bench.json`: what an application's job looks like — a serde struct decoded from about 100
/// bytes of JSON — for measuring the cost of a typed payload beside `bench.noop`'s bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Json {
    /// An order number, say.
    pub id: u64,
    /// A recipient.
    pub to: String,
    /// A line of text.
    pub subject: String,
}

impl JobType for Json {
    const NAME: &'static str = "bench.json";
}

impl Json {
    /// A job whose JSON payload is exactly `bytes` long (at least 60).
    pub fn of_size(bytes: usize) -> Self {
        let mut job = Json { id: 1_234_567, to: "someone@example.com".into(), subject: String::new() };
        let base = serde_json::to_vec(&job).expect("serializes").len();
        job.subject = "x".repeat(bytes.saturating_sub(base));
        job
    }
}

/// The handlers of the five kinds, and of `bench.json`.
pub fn registry() -> Registry {
    Registry::new()
        .handle::<Json, _, _, _>(|job: Json, _: JobContext| async move {
            std::hint::black_box(&job);
            Ok(())
        })
        .handle::<Noop, _, _, _>(|_, _| async { Ok(()) })
        .handle::<Sleep, _, _, _>(|job: Sleep, _: JobContext| async move {
            crate::runtime::timer::sleep(Duration::from_micros(job.us)).await;
            Ok(())
        })
        .handle::<Cpu, _, _, _>(|job: Cpu, _: JobContext| async move {
            let spin = Duration::from_micros(job.us);
            // Off the event loop: a spinning job must not stall every other actor.
            tokio::task::spawn_blocking(move || spin_for(spin))
                .await
                .map_err(|e| JobError::retry(format!("cpu job: {e}")))
        })
        .handle::<Fail, _, _, _>(|job: Fail, _: JobContext| async move {
            if rand::random::<f32>() < job.probability {
                Err(JobError::retry(format!("failed on purpose (probability {})", job.probability)))
            } else {
                Ok(())
            }
        })
        // The registry catches the unwind: a panic is a failed attempt, not a crashed worker.
        .handle::<Panic, _, _, ()>(|_, _| async { panic!("job panicked on purpose") })
}

fn spin_for(d: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_parameters_before_the_padding() {
        let p = JobKind::Sleep { us: 10_000 }.payload(100);
        assert_eq!(p.len(), 100);
        assert_eq!(Sleep::decode(&p).unwrap().us, 10_000);
        assert_eq!(Fail::decode(&JobKind::Fail { probability: 0.25 }.payload(0)).unwrap().probability, 0.25);
        assert!(Sleep::decode(b"abc").is_err());
        let registry = registry();
        for kind in [
            JobKind::Noop,
            JobKind::Sleep { us: 1 },
            JobKind::Cpu { us: 1 },
            JobKind::Fail { probability: 0.0 },
            JobKind::Panic,
        ] {
            assert!(registry.handles(kind.name()), "{} has a handler", kind.name());
        }
        assert_eq!(registry.names().len(), 6);
        assert_eq!(Json::of_size(100).encode().unwrap().len(), 100);
    }
}
