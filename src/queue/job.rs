//! The job as it travels through Redis: a small MessagePack envelope stored inline in the
//! stream entry (field `j`). It carries what the benchmark needs to stay honest: a sequence
//! number for the exact-delivery audit, the *intended* enqueue time (open loop), the actual
//! enqueue time, and the attempt number.

use serde::{Deserialize, Serialize};

/// What a job does when a worker runs it. Benchmarks use these built-in kinds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum JobKind {
    /// Return at once.
    Noop,
    /// Wait this many microseconds without using CPU.
    Sleep { us: u64 },
    /// Spin the CPU for this many microseconds.
    Cpu { us: u64 },
    /// Fail with this probability (0.0..=1.0), otherwise succeed at once.
    Fail { probability: f32 },
    /// Panic inside the handler (a crash the worker must survive).
    Panic,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Sequence number, unique within a run: the bit the audit sets when the job is finished.
    pub seq: u64,
    /// Number of the benchmark run that produced the job, so worker processes keep each run's
    /// statistics apart.
    pub run: u32,
    /// 0 for the first attempt; incremented by each retry.
    pub attempt: u16,
    /// Produced during warm-up: processed and audited, but left out of the measured figures.
    pub warmup: bool,
    pub kind: JobKind,
    /// When the producer's plan said the job should be enqueued (µs since the epoch). Latency is
    /// measured from here, so a stalled producer cannot hide its stall.
    pub intended_us: u64,
    /// When the producer actually sent it (µs since the epoch).
    pub enqueued_us: u64,
    /// Opaque user data.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Sequence numbers stay below this: a Redis bitmap (the audit) holds 2^32 bits.
pub const SEQ_LIMIT: u64 = 1 << 32;

/// A stream entry whose job field could not be decoded (a poison entry).
#[derive(Debug, Clone, thiserror::Error)]
#[error("undecodable job: {0}")]
pub struct DecodeError(pub String);

impl Job {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("a Job always serializes")
    }

    /// Decodes a stored job. A job whose sequence number the audit bitmap cannot hold is as
    /// undecodable as garbage: settling it would make Redis refuse the whole batch.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let job: Self = rmp_serde::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))?;
        if job.seq >= SEQ_LIMIT {
            return Err(DecodeError(format!("sequence number {} is not below 2^32", job.seq)));
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let job = Job {
            seq: 42,
            run: 7,
            attempt: 1,
            warmup: false,
            kind: JobKind::Sleep { us: 10_000 },
            intended_us: 1,
            enqueued_us: 2,
            payload: vec![7; 100],
        };
        assert_eq!(Job::decode(&job.encode()).unwrap(), job);
        assert!(Job::decode(b"\xff\x00garbage").is_err());
        // Compact: header overhead stays small next to a 100-byte payload.
        assert!(job.encode().len() < 140, "{}", job.encode().len());
    }
}
