//! Connections to Redis. Ordinary commands share a small bb8 pool of multiplexed connections;
//! blocking reads (`XREADGROUP ... BLOCK`) get a dedicated connection each, with no response
//! timeout, because a blocking command stalls everything else on its connection and redis 1.x
//! otherwise gives up on any reply after 500 ms.
//!
//! When Redis restarts, pooled connections die with it; [`Redis::conn`] notices a dropped
//! connection through [`Redis::recover`] and builds a fresh pool, so callers only retry.
//!
//! `rediss://` URLs use TLS (rustls with the ring provider). [`TlsFiles`] adds a CA to trust
//! (a private CA, as in the tests) and a client certificate for servers with
//! `tls-auth-clients yes`. Passwords in URLs never reach a message: see [`redact_url`].

use crate::error::{Error, Result};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ClientTlsConfig, IntoConnectionInfo, TlsCertificates};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How many multiplexed connections the pool keeps. Each one pipelines any number of requests,
/// so a few are plenty on one event-loop thread.
const POOL_SIZE: u32 = 4;

/// How long to wait for a TCP connection (and for a pooled connection) before reporting Redis
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Response timeout for ordinary (non-blocking) commands. Long enough for a pipeline of
/// thousands of entries on a loaded machine, short enough that a hung Redis is noticed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool hands out connections made by our [`Client`], so they carry its TLS settings.
pub type Pool = bb8::Pool<Client>;
pub type PooledConn = bb8::PooledConnection<'static, Client>;

/// Files for TLS connections (`rediss://`), all PEM. Without a CA, the system's trusted roots
/// are used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate authority that signed the server's certificate.
    pub ca: Option<PathBuf>,
    /// Client certificate, for a server that checks clients (`tls-auth-clients yes`).
    pub cert: Option<PathBuf>,
    /// Private key of the client certificate.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// A client for `info` that trusts the CA and presents the client certificate.
    fn client(&self, info: redis::ConnectionInfo) -> Result<Client> {
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| Error::Input { file: path.clone(), message: format!("cannot read the TLS {what}: {e}") })
        };
        let client_tls = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read("client certificate", cert)?,
                client_key: read("client key", key)?,
            }),
            (None, None) => None,
            _ => return Err(Error::Other("TLS: give both a client certificate and its key, or neither".into())),
        };
        let root_cert = self.ca.as_ref().map(|ca| read("CA certificate", ca)).transpose()?;
        Ok(Client::build_with_tls(info, TlsCertificates { client_tls, root_cert })?)
    }
}

/// Where Redis is and how to reach it: what settings and flags resolve to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// May hold a password: print [`redact_url`] of it, never the URL itself.
    pub url: String,
    pub tls: TlsFiles,
}

impl Endpoint {
    pub fn plain(url: impl Into<String>) -> Self {
        Self { url: url.into(), tls: TlsFiles::default() }
    }

    pub async fn connect(&self) -> Result<Redis> {
        Redis::connect_with(&self.url, &self.tls).await
    }
}

/// A handle to one Redis deployment; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    /// Used to open dedicated connections for blocking reads.
    client: Client,
    /// Replaced as a whole after Redis dropped our connections.
    pool: Arc<RwLock<Pool>>,
    /// The URL with any password replaced by `***`, for messages.
    redacted_url: Arc<str>,
    /// The URL as given, password included: only ever handed to a child process's environment.
    url: Arc<str>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redis({})", self.redacted_url)
    }
}

impl Redis {
    /// Connects and checks that Redis answers, within a bounded time.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &TlsFiles::default()).await
    }

    /// [`Redis::connect`] with TLS files for a `rediss://` URL.
    pub async fn connect_with(url: &str, tls: &TlsFiles) -> Result<Self> {
        let redacted_url: Arc<str> = redact_url(url).into();
        let info = url
            .into_connection_info()
            .map_err(|e| Error::Other(format!("redis url {redacted_url}: {}", redact_error(&e.to_string(), url))))?;
        let client = if url.starts_with("rediss://") {
            // Already installed (by an earlier connection) is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            tls.client(info)?
        } else if tls.is_empty() {
            Client::open(info)?
        } else {
            return Err(Error::Other(format!(
                "redis url {redacted_url}: TLS files were given but the URL does not use TLS (use rediss://)"
            )));
        };
        let pool = build_pool(client.clone());
        let redis = Self { client, pool: Arc::new(RwLock::new(pool)), redacted_url, url: url.into() };
        // A direct first connection reports the real cause (refused, auth, TLS), which the
        // pool would only log.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut conn = redis
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| redis.unreachable(e.into()))?;
        let _: () = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| redis.unreachable(e.into()))?;
        Ok(redis)
    }

    fn unreachable(&self, e: Error) -> Error {
        Error::Other(format!("redis at {} is unreachable: {e}", self.redacted_url))
    }

    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The URL as given (it may hold a password: never print or log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pooled connection for ordinary commands.
    pub async fn conn(&self) -> Result<PooledConn> {
        let pool = self.pool.read().expect("pool lock").clone();
        Ok(pool.get_owned().await?)
    }

    /// Call after a command failed: if the failure means our connections are gone (Redis
    /// restarted, or `CLIENT KILL`), the pool is rebuilt so the next call reconnects.
    pub fn recover(&self, error: &redis::RedisError) {
        if error.is_connection_dropped() || error.is_io_error() || error.is_timeout() {
            let fresh = build_pool(self.client.clone());
            *self.pool.write().expect("pool lock") = fresh;
        }
    }

    /// Runs `f` on a pooled connection; a failure that means the connection is gone rebuilds
    /// the pool before the error is returned.
    pub async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    {
        let mut conn = self.conn().await?;
        f(&mut conn).await.map_err(|e| {
            self.recover(&e);
            Error::Redis(e)
        })
    }

    /// A connection of its own for blocking reads: no response timeout.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection> {
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT)).set_response_timeout(None);
        Ok(self.client.get_multiplexed_async_connection_with_config(&config).await?)
    }
}

fn build_pool(client: Client) -> Pool {
    bb8::Pool::builder()
        .max_size(POOL_SIZE)
        .min_idle(Some(1))
        // A PING per checkout would double our round trips; dropped connections are replaced
        // by `recover` instead.
        .test_on_check_out(false)
        .connection_timeout(CONNECT_TIMEOUT)
        .retry_connection(false)
        .connection_customizer(Box::new(LongerResponseTimeout))
        .build_unchecked(client)
}

/// redis 1.x gives a multiplexed connection a 500 ms response timeout; a pipeline of thousands
/// of entries on a loaded 2-core machine can take longer than that without anything being
/// wrong, so pooled connections get [`RESPONSE_TIMEOUT`] instead.
#[derive(Debug)]
struct LongerResponseTimeout;

impl bb8::CustomizeConnection<MultiplexedConnection, redis::RedisError> for LongerResponseTimeout {
    fn on_acquire<'a>(
        &'a self,
        conn: &'a mut MultiplexedConnection,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), redis::RedisError>> + Send + 'a>> {
        conn.set_response_timeout(RESPONSE_TIMEOUT);
        Box::pin(async { Ok(()) })
    }
}

/// `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let redacted_authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    match path {
        Some(p) => format!("{scheme}://{redacted_authority}/{p}"),
        None => format!("{scheme}://{redacted_authority}"),
    }
}

/// Removes a URL's password from an error message that may quote the URL.
fn redact_error(message: &str, url: &str) -> String {
    message.replace(url, &redact_url(url))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("redis://:hunter2@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("rediss://app:hunter2@h:1"), "rediss://app:***@h:1");
        assert_eq!(redact_url("redis://hunter2@h"), "redis://***@h");
    }
}
