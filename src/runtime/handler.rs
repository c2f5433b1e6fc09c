//! Job types and the handlers that run them.
//!
//! An application describes each kind of job it has as a [`JobType`]: a name and a serde
//! payload. It registers an async handler per job type in a [`Registry`], which workers share.
//! A handler receives the decoded payload and a [`JobContext`] (id, attempt, queue, deadline,
//! a cancellation token) and answers `Ok` or a typed [`JobError`]: retry with the queue's
//! backoff, retry after a given delay, or fail now (straight to the dead letters).
//!
//! Nothing a handler or a producer does can crash a worker or block its queue: a job whose name
//! has no handler, or whose payload does not decode into the handler's type, goes to the dead
//! letters with a reason that says exactly that; a panic is a failed attempt, as an error is.
//!
//! Per job the registry costs one hash lookup and one boxed future.

use crate::runtime::cancel::CancelToken;
use crate::runtime::queue::JobId;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A kind of job: its name on the wire and its payload type.
///
/// The payload travels as JSON unless the type overrides [`JobType::encode`] and
/// [`JobType::decode`] (a producer in another language then writes the same bytes).
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendEmail {
///     to: String,
/// }
///
/// impl conveyor::JobType for SendEmail {
///     const NAME: &'static str = "email.send";
/// }
/// ```
pub trait JobType: Serialize + DeserializeOwned + 'static {
    /// The job type's name in every envelope (the `n` field): 1 to 256 bytes, stable across
    /// versions of the application, since jobs outlive deployments.
    const NAME: &'static str;

    /// Options every job of this type gets unless the enqueue call says otherwise.
    fn defaults() -> crate::runtime::client::Enqueue {
        crate::runtime::client::Enqueue::new()
    }

    /// The payload's bytes (JSON by default).
    fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| e.to_string())
    }

    /// The payload from its bytes (JSON by default).
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// Why a run of a job did not succeed, and what should happen next.
///
/// Any error converts into [`JobError::Retry`] with `?`, so a handler written with ordinary
/// error handling retries with backoff by default.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Run again after the queue's backoff, while attempts remain.
    Retry {
        /// What went wrong (kept with the job: the last one is in its dead letter).
        reason: String,
    },
    /// Run again after `delay` (the handler knows better, e.g. a rate limit's reset time),
    /// while attempts remain.
    RetryAfter {
        /// How long to wait before the next attempt.
        delay: Duration,
        /// What went wrong.
        reason: String,
    },
    /// Do not run again: the job goes to the dead letters now with this reason.
    Fail {
        /// Why the job cannot succeed.
        reason: String,
    },
}

impl JobError {
    /// Retry with backoff.
    pub fn retry(reason: impl fmt::Display) -> Self {
        JobError::Retry { reason: reason.to_string() }
    }

    /// Retry after `delay`.
    pub fn retry_after(delay: Duration, reason: impl fmt::Display) -> Self {
        JobError::RetryAfter { delay, reason: reason.to_string() }
    }

    /// Dead now, no retry.
    pub fn fail(reason: impl fmt::Display) -> Self {
        JobError::Fail { reason: reason.to_string() }
    }

    /// What went wrong.
    pub fn reason(&self) -> &str {
        match self {
            JobError::Retry { reason } | JobError::RetryAfter { reason, .. } | JobError::Fail { reason } => reason,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::retry(e)
    }
}

/// What a handler knows about the job it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job's id (stable across retries and reclaims).
    pub id: JobId,
    /// The job type's name.
    pub name: Arc<str>,
    /// 0 for the first run.
    pub attempt: u16,
    /// Runs allowed in all; this is the last when `attempt + 1 == max_attempts`.
    pub max_attempts: u16,
    /// The queue the job came from.
    pub queue: Arc<str>,
    /// When the producer enqueued the job.
    pub enqueued_at: SystemTime,
    /// When this run is given up (its timeout); `None` without one.
    pub deadline: Option<SystemTime>,
    /// Headers the producer attached (opaque to conveyor).
    pub headers: Option<Arc<[u8]>>,
    /// Trips when the run should stop early: its timeout passed or the worker is shutting down
    /// and its grace period ran out. A handler that awaits I/O is dropped at its deadline anyway;
    /// one that loops can check this.
    pub cancel: CancelToken,
}

impl JobContext {
    /// This run is the job's last chance.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt + 1 >= self.max_attempts
    }
}

/// What a handler returns when it succeeds: nothing (`()`), or a result that tracked jobs keep
/// ([`Json`]).
pub trait JobOutput: 'static {
    /// The bytes to keep as the job's result (`None`: nothing to keep).
    fn into_result(self) -> Result<Option<Vec<u8>>, String>;
}

impl JobOutput for () {
    fn into_result(self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

/// A handler's result, kept as JSON for a tracked job (`Ok(Json(digest))`); untracked jobs
/// keep nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize + 'static> JobOutput for Json<T> {
    fn into_result(self) -> Result<Option<Vec<u8>>, String> {
        serde_json::to_vec(&self.0).map(Some).map_err(|e| e.to_string())
    }
}

/// What one run of a handler came to: the result to keep (if any), or the error.
pub(crate) type HandlerResult = Result<Option<Vec<u8>>, JobError>;

/// A handler's answer as the registry keeps it.
fn into_handler_result<O: JobOutput>(answer: Result<O, JobError>) -> HandlerResult {
    answer.and_then(|o| o.into_result().map_err(|e| JobError::fail(format!("cannot encode the job's result: {e}"))))
}

/// A handler with its payload type erased, as the registry keeps it.
trait ErasedHandler: Send + Sync {
    /// Decodes the payload and starts the handler; `Err` when the payload does not decode.
    fn start(&self, payload: &[u8], ctx: JobContext) -> Result<LocalBoxFuture<'static, HandlerResult>, String>;
}

struct Typed<J, F> {
    handler: F,
    _job: std::marker::PhantomData<fn() -> J>,
}

impl<J, F, Fut, O> ErasedHandler for Typed<J, F>
where
    J: JobType,
    F: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, JobError>> + 'static,
    O: JobOutput,
{
    fn start(&self, payload: &[u8], ctx: JobContext) -> Result<LocalBoxFuture<'static, HandlerResult>, String> {
        let job = J::decode(payload)?;
        Ok((self.handler)(job, ctx).map(into_handler_result).boxed_local())
    }
}

struct Raw<F> {
    handler: F,
}

impl<F, Fut, O> ErasedHandler for Raw<F>
where
    F: Fn(Vec<u8>, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, JobError>> + 'static,
    O: JobOutput,
{
    fn start(&self, payload: &[u8], ctx: JobContext) -> Result<LocalBoxFuture<'static, HandlerResult>, String> {
        Ok((self.handler)(payload.to_vec(), ctx).map(into_handler_result).boxed_local())
    }
}

/// The handlers of every job type a worker runs, by name. Built once, shared by every worker
/// (cheap to clone).
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<Arc<str>, Arc<dyn ErasedHandler>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("job_types", &self.names()).finish()
    }
}

impl Registry {
    /// A registry with no handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for job type `J` (the type of its first argument), replacing any
    /// handler registered for its name. The handler answers `Ok(())`, or `Ok(Json(value))` to
    /// keep a result for a tracked job, or a [`JobError`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct SendEmail { to: String }
    /// # impl conveyor::JobType for SendEmail { const NAME: &'static str = "email.send"; }
    /// use conveyor::{JobContext, JobError, Registry};
    ///
    /// async fn send_email(job: SendEmail, ctx: JobContext) -> Result<(), JobError> {
    ///     if job.to.is_empty() {
    ///         return Err(JobError::fail("no recipient"));
    ///     }
    ///     println!("job {} (attempt {}): mail to {}", ctx.id, ctx.attempt, job.to);
    ///     Ok(())
    /// }
    ///
    /// let registry = Registry::new().handle(send_email);
    /// assert_eq!(registry.names(), ["email.send"]);
    /// ```
    pub fn handle<J, F, Fut, O>(mut self, handler: F) -> Self
    where
        J: JobType,
        F: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, JobError>> + 'static,
        O: JobOutput,
    {
        let typed = Typed::<J, F> { handler, _job: std::marker::PhantomData };
        let _ = std::marker::PhantomData::<(Fut, O)>;
        self.handlers.insert(Arc::from(J::NAME), Arc::new(typed));
        self
    }

    /// Registers a handler that takes the payload's bytes as they are, for job type `name`
    /// (payloads in an encoding of the application's own).
    pub fn handle_raw<F, Fut, O>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(Vec<u8>, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, JobError>> + 'static,
        O: JobOutput,
    {
        self.handlers.insert(Arc::from(name), Arc::new(Raw { handler }));
        self
    }

    /// Adds every handler of `other` (its handler wins where both have a name).
    pub fn merge(mut self, other: Registry) -> Self {
        self.handlers.extend(other.handlers);
        self
    }

    /// The registered job type names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.handlers.keys().map(|k| &**k).collect();
        names.sort_unstable();
        names
    }

    /// True when a handler is registered for `name`.
    pub fn handles(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// The shared name (for contexts) and handler of job type `name`.
    fn lookup(&self, name: &str) -> Option<(&Arc<str>, &Arc<dyn ErasedHandler>)> {
        self.handlers.get_key_value(name)
    }

    /// Runs one job to its end: [`Registry::begin`], then [`Running::finish`].
    #[cfg(test)]
    pub(crate) async fn run(&self, name: &str, payload: &[u8], start: Start) -> Attempt {
        match self.begin(name, payload, start) {
            Ok(running) => running.finish().await,
            Err(refused) => refused,
        }
    }

    /// Starts one job: finds its handler, decodes its payload and calls the handler, which
    /// hands back its future (not polled yet). A job that cannot start here comes back as
    /// [`Attempt::Refused`].
    pub(crate) fn begin(&self, name: &str, payload: &[u8], start: Start) -> Result<Running, Attempt> {
        let Some((shared_name, handler)) = self.lookup(name) else {
            return Err(Attempt::Refused(format!(
                "no handler for job type \"{name}\" in this worker (it handles: {})",
                self.names().join(", ")
            )));
        };
        let cancel = start.cancel;
        let ctx = JobContext {
            id: start.id,
            name: shared_name.clone(),
            attempt: start.attempt,
            max_attempts: start.max_attempts,
            queue: start.queue,
            enqueued_at: system_time_of_us(start.enqueued_us),
            deadline: start.timeout.map(|t| SystemTime::now() + t),
            headers: start.headers,
            cancel: cancel.clone(),
        };
        match handler.start(payload, ctx) {
            Ok(future) => Ok(Running { future, timeout: start.timeout, cancel }),
            Err(e) => Err(Attempt::Refused(format!("payload does not decode as job type \"{name}\": {e}"))),
        }
    }
}

/// A job whose handler was called: its future, with the run's timeout and cancellation token.
pub(crate) struct Running {
    future: LocalBoxFuture<'static, HandlerResult>,
    timeout: Option<Duration>,
    cancel: CancelToken,
}

impl Running {
    /// Polls the handler's future once, in the caller's task, catching a panic: the answer
    /// when it finished in that poll. A handler that answers at once (most do: a cache write,
    /// a no-op) is then settled without a task of its own; one that waits is woken through
    /// the caller's task until [`Running::finish`] takes it over.
    pub(crate) fn poll_once(&mut self, cx: &mut std::task::Context<'_>) -> Option<Attempt> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.future.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => None,
            Ok(std::task::Poll::Ready(result)) => Some(Attempt::Done(result)),
            Err(panic) => Some(panicked(&panic)),
        }
    }

    /// Runs the handler's future to its end under the run's timeout (counted from now),
    /// catching a panic.
    pub(crate) async fn finish(self) -> Attempt {
        let Running { future, timeout, cancel } = self;
        let mut guarded = AssertUnwindSafe(future).catch_unwind();
        let outcome = match timeout {
            None => guarded.await,
            Some(limit) => {
                tokio::select! {
                    outcome = &mut guarded => outcome,
                    _ = tokio::time::sleep(limit) => {
                        // The token trips before the future is dropped, so work the handler
                        // handed elsewhere (a blocking thread, a task) sees it.
                        cancel.cancel();
                        drop(guarded);
                        let after = humantime::format_duration(limit);
                        return Attempt::TimedOut(format!("timed out after {after}"));
                    }
                }
            }
        };
        match outcome {
            Ok(result) => Attempt::Done(result),
            Err(panic) => panicked(&panic),
        }
    }
}

/// A panic is a failed attempt (retried like an error).
fn panicked(panic: &Box<dyn std::any::Any + Send>) -> Attempt {
    Attempt::Done(Err(JobError::retry(format!("handler panicked: {}", panic_message(panic)))))
}

/// What the worker knows of a job before its handler starts.
#[derive(Debug)]
pub(crate) struct Start {
    pub id: JobId,
    pub attempt: u16,
    pub max_attempts: u16,
    pub queue: Arc<str>,
    pub enqueued_us: u64,
    pub timeout: Option<Duration>,
    pub headers: Option<Arc<[u8]>>,
    /// Trips on the timeout, or when the job is cancelled while it runs.
    pub cancel: CancelToken,
}

/// How a job's run ended, as the worker sees it.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The handler ran (or panicked) and answered.
    Done(HandlerResult),
    /// The handler ran past its timeout and was dropped: a failed attempt with this reason.
    TimedOut(String),
    /// The job could not be started here and never can be: no handler, a payload that does
    /// not decode. It goes to the dead letters with this reason.
    Refused(String),
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// `SystemTime` of a µs-since-the-epoch timestamp.
pub(crate) fn system_time_of_us(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::sync::atomic::Ordering;

    #[derive(Serialize, Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }

    impl JobType for Add {
        const NAME: &'static str = "math.add";
    }

    fn start(timeout: Option<Duration>) -> Start {
        Start {
            id: JobId::of_entry("1-0", 0),
            attempt: 0,
            max_attempts: 3,
            queue: Arc::from("q"),
            enqueued_us: 0,
            timeout,
            headers: None,
            cancel: CancelToken::new(),
        }
    }

    fn registry() -> Registry {
        Registry::new().handle::<Add, _, _, _>(|job: Add, ctx: JobContext| async move {
            assert_eq!(&*ctx.name, "math.add");
            assert_eq!(ctx.deadline.is_some(), job.a == 99);
            match job.a + job.b {
                0 => Err(JobError::fail("zero")),
                13 => panic!("unlucky"),
                99 => {
                    std::future::pending::<()>().await;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    #[test]
    fn a_registered_handler_gets_its_decoded_payload() {
        let ran = block_on(registry().run("math.add", br#"{"a":1,"b":2}"#, start(None)));
        assert!(matches!(ran, Attempt::Done(Ok(None))), "{ran:?}");
        let ran = block_on(registry().run("math.add", br#"{"a":1,"b":-1}"#, start(None)));
        assert!(matches!(ran, Attempt::Done(Err(JobError::Fail { .. }))), "{ran:?}");
    }

    #[test]
    fn unknown_names_and_undecodable_payloads_are_refused_with_the_reason() {
        match block_on(registry().run("math.mul", b"{}", start(None))) {
            Attempt::Refused(why) => {
                assert!(why.contains("no handler for job type \"math.mul\"") && why.contains("math.add"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        match block_on(registry().run("math.add", br#"{"a":"one"}"#, start(None))) {
            Attempt::Refused(why) => {
                assert!(why.starts_with("payload does not decode as job type \"math.add\""), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_panic_and_a_timeout_are_failed_attempts() {
        match block_on(registry().run("math.add", br#"{"a":6,"b":7}"#, start(None))) {
            Attempt::Done(Err(JobError::Retry { reason })) => assert!(reason.contains("unlucky"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let tripped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = tripped.clone();
        let watching = Registry::new().handle::<Add, _, _, _>(move |_: Add, ctx: JobContext| {
            let seen = seen.clone();
            async move {
                let _guard = Trip(ctx.cancel.clone(), seen);
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        match block_on(watching.run("math.add", br#"{"a":99,"b":0}"#, start(Some(Duration::from_millis(5))))) {
            Attempt::TimedOut(reason) => assert!(reason.contains("timed out after 5ms"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(tripped.load(Ordering::SeqCst), "the token trips, then the handler's future is dropped");
    }

    #[test]
    fn the_first_poll_answers_for_a_handler_that_does_not_wait_and_catches_its_panic() {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut first_poll =
            |payload: &[u8]| registry().begin("math.add", payload, start(None)).expect("begins").poll_once(&mut cx);
        assert!(matches!(first_poll(br#"{"a":1,"b":2}"#), Some(Attempt::Done(Ok(None)))));
        match first_poll(br#"{"a":6,"b":7}"#) {
            Some(Attempt::Done(Err(JobError::Retry { reason }))) => assert!(reason.contains("unlucky"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // One that waits is not finished by its first poll; finish() takes it over.
        let mut waiting =
            registry().begin("math.add", br#"{"a":99,"b":0}"#, start(Some(Duration::from_millis(5)))).expect("begins");
        assert!(waiting.poll_once(&mut cx).is_none());
        assert!(matches!(block_on(waiting.finish()), Attempt::TimedOut(_)));
        assert!(matches!(registry().begin("math.mul", b"{}", start(None)), Err(Attempt::Refused(_))));
    }

    /// Records, when dropped, whether the token had tripped.
    struct Trip(CancelToken, Arc<std::sync::atomic::AtomicBool>);

    impl Drop for Trip {
        fn drop(&mut self) {
            self.1.store(self.0.is_cancelled(), Ordering::SeqCst);
        }
    }

    #[test]
    fn any_error_converts_into_a_retry() {
        let e: JobError = std::io::Error::other("disk").into();
        assert_eq!(e, JobError::retry("disk"));
    }
}
