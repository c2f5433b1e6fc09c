//! The error type every fallible conveyor operation returns. Variants are nouns a caller can
//! match on (a URL that does not parse is not a Redis that does not answer); messages are lower
//! case and say what the user can change.

use std::path::PathBuf;

/// Everything that can go wrong in conveyor, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario or config file that could not be read or did not parse.
    #[error("{file}: {message}")]
    Input {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A scenario that parsed but asks for something impossible.
    #[error("scenario {file}: field \"{field}\": {message}")]
    Invalid {
        /// The scenario file.
        file: PathBuf,
        /// The field, as a path (`producer.rate`, `jobs[0].type`).
        field: String,
        /// What was expected.
        message: String,
    },

    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),

    /// Could not get a pooled connection in time.
    #[error("redis pool: {0}")]
    Pool(String),

    /// The private redis-server could not be started.
    #[error("redis-server: {0}")]
    RedisServer(String),

    /// An actor stopped before it answered.
    #[error("actor mailbox: {0}")]
    Mailbox(#[from] actix::MailboxError),

    /// A file or socket operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),

    /// A Redis URL that does not parse, or asks for something conveyor cannot do (the URL in
    /// the message has its password replaced by `***`).
    #[error("redis url {url}: {message}")]
    BadUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        message: String,
    },

    /// Redis did not answer: refused, timed out, authentication failed.
    #[error("{0}")]
    Unreachable(String),

    /// TLS files that do not go together or cannot be used.
    #[error("TLS: {0}")]
    Tls(String),

    /// An argument to a library call that it cannot take.
    #[error("{what}: {message}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What was expected.
        message: String,
    },

    /// A queue or a job that does not exist.
    #[error("no {what} {name:?}{hint}")]
    NotFound {
        /// `queue` or `job`.
        what: &'static str,
        /// What was asked for.
        name: String,
        /// More to say (where it was looked for), or nothing.
        hint: String,
    },

    /// A job's payload could not be encoded.
    #[error("job type \"{job_type}\": cannot encode the payload: {message}")]
    Encode {
        /// The job type's name.
        job_type: String,
        /// What the encoder said.
        message: String,
    },

    /// A command-line flag or combination of flags that cannot be used (exit code 2).
    #[error("{0}")]
    Usage(String),

    /// Redis may evict keys, which can lose jobs silently.
    #[error("{0}")]
    Eviction(String),

    /// The CPU profiler of `--profile` failed.
    #[error("--profile: {0}")]
    Profile(String),

    /// A benchmark driver (the process that adapts another queue) failed or broke its protocol.
    #[error("driver {name}: {message}")]
    Driver {
        /// The driver's name.
        name: String,
        /// What went wrong.
        message: String,
    },

    /// The metrics endpoint could not be set up.
    #[error("metrics: {0}")]
    Telemetry(String),
}

impl From<bb8::RunError<redis::RedisError>> for Error {
    fn from(e: bb8::RunError<redis::RedisError>) -> Self {
        match e {
            bb8::RunError::User(e) => Error::Redis(e),
            bb8::RunError::TimedOut => Error::Pool("timed out waiting for a connection".into()),
        }
    }
}

impl Error {
    /// True when Redis says the stream or its consumer group is gone (the queue was reset while
    /// we were blocked on it, or before we joined).
    pub fn is_missing_group(&self) -> bool {
        match self {
            Error::Redis(e) => {
                matches!(e.code(), Some("NOGROUP") | Some("UNBLOCKED"))
            }
            _ => false,
        }
    }

    /// True for mistakes in what the user gave us (exit code 2, nothing written).
    pub fn is_input(&self) -> bool {
        matches!(self, Error::Input { .. } | Error::Invalid { .. })
    }
}

/// A result whose error is conveyor's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
