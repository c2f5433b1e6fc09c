//! The error type every fallible conveyor operation returns. Variants are nouns; messages are
//! lower case and say what the user can change.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario or config file that could not be read or did not parse.
    #[error("{file}: {message}")]
    Input { file: PathBuf, message: String },

    /// A scenario that parsed but asks for something impossible.
    #[error("scenario {file}: field \"{field}\": {message}")]
    Invalid { file: PathBuf, field: String, message: String },

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

    #[error("io: {0}")]
    Io(#[from] std::io::Error),

    #[error("{0}")]
    Other(String),
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
