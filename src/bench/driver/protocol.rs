//! The driver protocol's messages (docs/drivers.md is the reference): newline-delimited JSON,
//! conveyor → driver on the driver's stdin ([`Request`]), driver → conveyor on its stdout
//! ([`Reply`]). Every message is one JSON object on one line with a `type` field. Times are Unix
//! epoch nanoseconds on the host clock, so conveyor can subtract a driver's times from its own.

use serde::{Deserialize, Serialize};

/// The protocol version this conveyor speaks; a driver that speaks another one says so in its
/// error reply.
pub const PROTOCOL_VERSION: u32 = 1;

/// What conveyor sends a driver.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The first message: where the queue lives. The driver answers [`Reply::Hello`] and starts no
    /// worker yet.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The Redis every process of the driver connects to.
        redis_url: String,
        /// The queue name to use (fresh for every run, so runs never see each other's jobs).
        queue: String,
        /// CPUs the machine has: the base of the driver's worker settings.
        cores: usize,
        /// The scenario's `[workers]` settings, for a driver whose queue has the same knobs
        /// (the `conveyor` driver uses them; the others choose their own, documented, settings).
        workers: WorkersHint,
    },
    /// Enqueue these jobs; answer [`Reply::Enqueued`] with the same `batch` once the queue has
    /// acknowledged every one of them.
    Enqueue {
        /// Numbers the batch (from 1) so its acknowledgement can be matched.
        batch: u64,
        /// The jobs, in sequence order.
        jobs: Vec<JobSpec>,
    },
    /// Start the workers; answer [`Reply::Started`] when their processes are running.
    Start,
    /// Stop the workers (let them finish what they hold), send every remaining record, answer
    /// [`Reply::Stopped`] and exit.
    Stop,
}

/// The scenario's worker settings as a hint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkersHint {
    /// Worker actors (conveyor) in the process.
    pub count: u32,
    /// Jobs each runs at once.
    pub concurrency: u32,
    /// Most jobs per claim.
    pub batch: u32,
}

/// One job to enqueue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The audit number: every record of this job carries it back.
    pub seq: u64,
    /// When conveyor meant to send it (epoch ns): latency counts from here.
    pub intended_ns: u64,
    /// `noop` (return at once), `sleep` (wait `duration_us`), `cpu` (spin `duration_us`).
    pub kind: String,
    /// How long the handler works, in µs (0 for noop).
    pub duration_us: u64,
    /// Bytes of payload the job carries in the queue (the driver pads with `x`).
    pub payload_bytes: usize,
}

/// What a driver sends conveyor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The answer to [`Request::Hello`].
    Hello {
        /// The driver's name (`bullmq`).
        driver: String,
        /// The queue library and its exact version (`bullmq 5.1.0`).
        library: String,
        /// The worker settings it runs with and why, as a flat map (`"concurrency": "50"`).
        #[serde(default)]
        settings: std::collections::BTreeMap<String, serde_json::Value>,
    },
    /// A batch is in the queue.
    Enqueued {
        /// The `batch` of the [`Request::Enqueue`].
        batch: u64,
    },
    /// Workers are running.
    Started {
        /// The queue's worker processes (conveyor adds their CPU time, with every descendant's,
        /// to the driver's own).
        #[serde(default)]
        pids: Vec<u32>,
    },
    /// Jobs that ran: sent whenever the driver has some, in batches.
    Records {
        /// One per job run (a job run twice gives two records: a duplicate).
        records: Vec<Record>,
    },
    /// The answer to [`Request::Stop`]: every record was sent.
    Stopped {
        /// Records the driver sent over the whole run (a cross-check of the count conveyor read).
        records_sent: u64,
        /// Jobs still in the queue after the workers stopped, as the queue counts them (waiting,
        /// active or reserved): jobs without a record that are there are unfinished, the others
        /// lost. None when the driver cannot tell (every job without a record is then lost).
        #[serde(default)]
        remaining: Option<u64>,
    },
    /// Something failed; conveyor stops the run with this message.
    Error {
        /// What went wrong, for the user.
        message: String,
    },
}

/// One job run, as a worker saw it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The job's [`JobSpec::seq`].
    pub seq: u64,
    /// When the driver's enqueue call for it began (epoch ns).
    pub enqueued_ns: u64,
    /// When the handler started (epoch ns).
    pub started_ns: u64,
    /// When the handler returned (epoch ns).
    pub finished_ns: u64,
    /// The worker process that ran it.
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_one_line_objects() {
        let r = Request::Enqueue {
            batch: 3,
            jobs: vec![JobSpec { seq: 7, intended_ns: 9, kind: "noop".into(), duration_us: 0, payload_bytes: 100 }],
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.starts_with(r#"{"type":"enqueue","batch":3,"#), "{line}");
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        let reply: Reply = serde_json::from_str(
            r#"{"type":"records","records":[{"seq":1,"enqueued_ns":2,"started_ns":3,"finished_ns":4,"pid":5}]}"#,
        )
        .unwrap();
        assert_eq!(
            reply,
            Reply::Records { records: vec![Record { seq: 1, enqueued_ns: 2, started_ns: 3, finished_ns: 4, pid: 5 }] }
        );
    }
}
