//! Connections to Redis: one server, or a Redis Cluster.
//!
//! **One server** (`redis://`, `rediss://`): ordinary commands share a small bb8 pool of
//! multiplexed connections; blocking reads (`XREADGROUP ... BLOCK`) get a dedicated connection
//! each, with no response timeout, because a blocking command stalls everything else on its
//! connection and redis 1.x otherwise gives up on any reply after 500 ms. When Redis restarts,
//! pooled connections die with it; [`Redis::with_conn`] notices a dropped connection through
//! [`Redis::recover`] and builds a fresh pool, so callers only retry.
//!
//! **Redis Cluster** (`redis+cluster://host1:port1,host2:port2`): the redis crate's cluster
//! client routes every command, pipeline and script to the master of its key's slot and follows
//! `MOVED`/`ASK` and failovers itself. Its connection is multiplexed and cloneable, so ordinary
//! commands share one; blocking reads get a cluster connection of their own without a response
//! timeout. Every pipeline and script conveyor sends touches the keys of one hash tag, so it goes
//! to one node, and an atomic pipeline (`MULTI ... EXEC`) is sent whole to that node.
//!
//! Both kinds hand callers a [`Conn`], which implements the redis crate's async
//! `ConnectionLike`: queue code is the same for both.
//!
//! `rediss://` URLs use TLS (rustls with the ring provider). [`TlsFiles`] adds a CA to trust
//! (a private CA, as in the tests) and a client certificate for servers with
//! `tls-auth-clients yes`. Passwords in URLs never reach a message: see [`redact_url`].

mod raw;
pub mod resp;

pub use raw::RawConn;

use crate::runtime::error::{Error, Result};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, TlsCertificates,
    Value,
};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The scheme that selects Redis Cluster; the authority lists seed nodes separated by commas.
pub const CLUSTER_SCHEME: &str = "redis+cluster";

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
/// A connection borrowed from the [`Pool`].
pub type PooledConn = bb8::PooledConnection<'static, Client>;

/// One connection to Redis, whatever the deployment. Implements the redis crate's async
/// `ConnectionLike` by delegation, so commands, pipelines and scripts run on it unchanged.
pub enum Conn {
    /// Borrowed from the pool of a single server; goes back when dropped.
    Pooled(PooledConn),
    /// A connection of its own to a single server (blocking reads), over TLS.
    Single(MultiplexedConnection),
    /// A connection of its own to a single server (blocking reads), over plain TCP, whose
    /// replies a caller may read from their bytes ([`RawConn::query_frame`]).
    Raw(Box<RawConn>),
    /// A cluster connection: routes each request to the master of its key's slot.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Pooled(_) => "Conn::Pooled",
            Conn::Single(_) => "Conn::Single",
            Conn::Raw(_) => "Conn::Raw",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Pooled(c) => (**c).req_packed_command(cmd),
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Raw(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Pooled(c) => (**c).req_packed_commands(pipeline, offset, count),
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Raw(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Pooled(c) => c.get_db(),
            Conn::Single(c) => c.get_db(),
            Conn::Raw(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Every key whose name matches `pattern` and that lives in the slot of `key_in_slot`
    /// (on a single server: every matching key). `SCAN` only sees the node it is sent to, so on
    /// a cluster it goes to the master of that slot, which holds every key of the hash tag.
    pub async fn scan_slot(&mut self, pattern: &str, key_in_slot: &str) -> redis::RedisResult<Vec<String>> {
        let mut found = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = if let Conn::Cluster(c) = self {
                let route = Route::with_key(key_in_slot, SlotAddr::Master);
                let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                redis::from_redis_value(c.route_command(scan, to).await?)?
            } else {
                scan.query_async(self).await?
            };
            found.extend(keys);
            if next == 0 {
                return Ok(found);
            }
            cursor = next;
        }
    }
}

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
    /// No file given: a plain connection (or TLS with the system's roots).
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
            _ => return Err(Error::Tls("give both a client certificate and its key, or neither".into())),
        };
        let root_cert = self.ca.as_ref().map(|ca| read("CA certificate", ca)).transpose()?;
        Ok(Client::build_with_tls(info, TlsCertificates { client_tls, root_cert })?)
    }
}

/// Where Redis is and how to reach it: what settings and flags resolve to. Its `Debug` shows
/// the URL redacted.
#[derive(Clone)]
pub struct Endpoint {
    /// May hold a password: print [`redact_url`] of it, never the URL itself.
    pub url: String,
    /// TLS files for a `rediss://` URL.
    pub tls: TlsFiles,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &redact_url(&self.url)).field("tls", &self.tls).finish()
    }
}

impl Endpoint {
    /// An endpoint at `url` with no TLS files.
    pub fn plain(url: impl Into<String>) -> Self {
        Self { url: url.into(), tls: TlsFiles::default() }
    }

    /// Connects (and checks the server answers).
    pub async fn connect(&self) -> Result<Redis> {
        Redis::connect_with(&self.url, &self.tls).await
    }

    /// A client of one server, with the TLS files for a `rediss://` URL: for code that opens
    /// its own (synchronous) connections, such as the chaos driver. Connects nowhere yet.
    pub fn client(&self) -> Result<Client> {
        single_client(&self.url, &self.tls, &redact_url(&self.url))
    }
}

/// The client of one server at `url` (`redis://` or `rediss://` with `tls`).
fn single_client(url: &str, tls: &TlsFiles, redacted_url: &str) -> Result<Client> {
    let info = url
        .into_connection_info()
        .map_err(|e| Error::BadUrl { url: redacted_url.to_owned(), message: redact_error(&e.to_string(), url) })?;
    if url.starts_with("rediss://") {
        // Already installed (by an earlier connection) is fine. ring is chosen on purpose
        // (aws-lc-rs needs a C build); rustls 0.23.48 deprecates it for lacking post-quantum
        // key exchange, which an application that needs it can install before connecting.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        tls.client(info)
    } else if tls.is_empty() {
        Ok(Client::open(info)?)
    } else {
        Err(Error::BadUrl {
            url: redacted_url.to_owned(),
            message: "TLS files were given but the URL does not use TLS (use rediss://)".into(),
        })
    }
}

/// A handle to one Redis deployment; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    /// One server or a cluster.
    backend: Backend,
    /// The URL with any password replaced by `***`, for messages.
    redacted_url: Arc<str>,
    /// The URL as given, password included: only ever handed to a child process's environment.
    url: Arc<str>,
}

#[derive(Clone)]
enum Backend {
    Single {
        /// Used to open dedicated connections for blocking reads (boxed: it is large).
        client: Box<Client>,
        /// Replaced as a whole after Redis dropped our connections.
        pool: Arc<RwLock<Pool>>,
    },
    Cluster {
        /// Connections for blocking reads have no response timeout (boxed: it is large).
        blocking: Box<ClusterClient>,
        /// Shared by every ordinary command; answers within [`RESPONSE_TIMEOUT`] (it multiplexes and follows the topology itself).
        conn: ClusterConnection,
    },
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
        if let Some(nodes) = cluster_seed_urls(url) {
            if !tls.is_empty() {
                return Err(Error::BadUrl {
                    url: redacted_url.to_string(),
                    message: format!(
                        "TLS files are not supported with {CLUSTER_SCHEME}:// (use a single server's rediss:// URL, \
                         or a cluster without TLS)"
                    ),
                });
            }
            return Self::connect_cluster(nodes?, redacted_url, url).await;
        }
        let client = single_client(url, tls, &redacted_url)?;
        let pool = build_pool(client.clone());
        let backend = Backend::Single { client: Box::new(client.clone()), pool: Arc::new(RwLock::new(pool)) };
        let redis = Self { backend, redacted_url, url: url.into() };
        // A direct first connection reports the real cause (refused, auth, TLS), which the
        // pool would only log.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| redis.unreachable(e.into()))?;
        let _: () = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| redis.unreachable(e.into()))?;
        Ok(redis)
    }

    async fn connect_cluster(nodes: Vec<String>, redacted_url: Arc<str>, url: &str) -> Result<Self> {
        let builder = |nodes: &[String]| {
            ClusterClientBuilder::new(nodes.to_vec())
                .connection_timeout(CONNECT_TIMEOUT)
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
        };
        let bad_url = |e: redis::RedisError| Error::BadUrl {
            url: redacted_url.to_string(),
            message: redact_error(&e.to_string(), url),
        };
        let client = builder(&nodes).response_timeout(RESPONSE_TIMEOUT).build().map_err(bad_url)?;
        // No response timeout on the node connections (a blocked read may take its time), but
        // a bound on the whole request, retries included, so a lost node cannot hang a worker.
        let blocking =
            builder(&nodes).overall_response_timeout(Some(BLOCKING_OVERALL_TIMEOUT)).build().map_err(bad_url)?;
        let unreachable = |e: redis::RedisError| {
            Error::Unreachable(format!(
                "redis cluster at {redacted_url} is unreachable: {}",
                redact_error(&e.to_string(), url)
            ))
        };
        let connecting = client.get_async_connection();
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT * 2, connecting)
            .await
            .map_err(|_| {
                Error::Unreachable(format!(
                    "redis cluster at {redacted_url} did not answer within {:?}",
                    CONNECT_TIMEOUT * 2
                ))
            })?
            .map_err(unreachable)?;
        let _: () = redis::cmd("PING").query_async(&mut conn).await.map_err(unreachable)?;
        Ok(Self { backend: Backend::Cluster { blocking: Box::new(blocking), conn }, redacted_url, url: url.into() })
    }

    fn unreachable(&self, e: Error) -> Error {
        Error::Unreachable(format!("redis at {} is unreachable: {e}", self.redacted_url))
    }

    /// The URL with its password replaced by `***`: the only form of it to show.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The URL as given (it may hold a password: never print or log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True when connected to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster { .. })
    }

    /// A connection for ordinary commands: pooled on a single server, the shared cluster
    /// connection on a cluster.
    pub async fn conn(&self) -> Result<Conn> {
        match &self.backend {
            Backend::Single { pool, .. } => {
                let pool = pool.read().expect("pool lock").clone();
                Ok(Conn::Pooled(pool.get_owned().await?))
            }
            Backend::Cluster { conn, .. } => Ok(Conn::Cluster(conn.clone())),
        }
    }

    /// Call after a command failed: if the failure means our connections are gone (Redis
    /// restarted, or `CLIENT KILL`), the pool is rebuilt so the next call reconnects. A cluster
    /// connection reconnects and refreshes its slot map by itself.
    pub fn recover(&self, error: &redis::RedisError) {
        if let Backend::Single { client, pool } = &self.backend
            && (error.is_connection_dropped() || error.is_io_error() || error.is_timeout())
        {
            *pool.write().expect("pool lock") = build_pool((**client).clone());
        }
    }

    /// Runs `f` on a connection for ordinary commands; a failure that means the connection is
    /// gone rebuilds the pool before the error is returned.
    pub async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let mut conn = self.conn().await?;
        f(&mut conn).await.map_err(|e| {
            self.recover(&e);
            Error::Redis(e)
        })
    }

    /// `INFO <section>` of one server; on a cluster, of one master (a command sent to every
    /// node would answer with one reply per node).
    pub async fn info(&self, section: &str) -> Result<String> {
        let mut info = redis::cmd("INFO");
        info.arg(section);
        self.with_conn(async |c| match c {
            Conn::Cluster(cluster) => {
                let one_master = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
                Ok(redis::from_redis_value(cluster.route_command(info, one_master).await?)?)
            }
            other => info.query_async(other).await,
        })
        .await
    }

    /// `INFO <section>` of every master of a cluster (of the one server otherwise), for
    /// settings every node must have, such as the eviction policy.
    pub async fn info_of_masters(&self, section: &str) -> Result<Vec<String>> {
        let mut info = redis::cmd("INFO");
        info.arg(section);
        self.with_conn(async |c| match c {
            Conn::Cluster(cluster) => {
                let masters = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                // One reply per node, keyed by its address.
                let replies: Vec<(String, String)> = match cluster.route_command(info, masters).await? {
                    Value::Map(pairs) => pairs
                        .into_iter()
                        .map(|(k, v)| Ok((redis::from_redis_value(k)?, redis::from_redis_value(v)?)))
                        .collect::<redis::RedisResult<_>>()?,
                    other => vec![(String::new(), redis::from_redis_value(other)?)],
                };
                Ok(replies.into_iter().map(|(_, text)| text).collect())
            }
            other => Ok(vec![info.query_async(other).await?]),
        })
        .await
    }

    /// Redis `used_memory` in bytes: of the one server, or summed over a cluster's masters.
    pub async fn used_memory(&self) -> Result<u64> {
        let field = |info: &String| {
            info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse::<u64>().ok())
        };
        Ok(self.info_of_masters("memory").await?.iter().filter_map(field).sum())
    }

    /// A connection of its own for blocking reads: no response timeout. To a single server over
    /// plain TCP it is a [`RawConn`].
    pub async fn blocking_connection(&self) -> Result<Conn> {
        match &self.backend {
            Backend::Single { client, .. } => {
                let info = client.get_connection_info();
                if let redis::ConnectionAddr::Tcp(host, port) = info.addr() {
                    let raw = RawConn::connect(host, *port, info.redis_settings(), CONNECT_TIMEOUT).await?;
                    return Ok(Conn::Raw(Box::new(raw)));
                }
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None);
                Ok(Conn::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
            }
            Backend::Cluster { blocking, .. } => Ok(Conn::Cluster(blocking.get_async_connection().await?)),
        }
    }
}

/// How often the cluster client retries a request that met a moved slot, a failover or a lost
/// node, with exponential waits between tries clamped to these bounds: about 2 s in all, then
/// the request fails to its caller, which retries in its own way (a producer resends, a worker
/// reconnects, a partitioned queue turns to its other partitions). The crate's default waits
/// grow to minutes.
const CLUSTER_RETRIES: u32 = 12;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 20;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 500;

/// Longest a blocking read on a cluster may take, retries included (it blocks for far less).
const BLOCKING_OVERALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The seed nodes of a `redis+cluster://[user:password@]host1:port1,host2:port2[/db]` URL, each
/// as a `redis://` URL carrying the credentials; `None` when `url` is not a cluster URL.
pub fn cluster_seed_urls(url: &str) -> Option<Result<Vec<String>>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?.strip_prefix("://")?;
    let (authority, _path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| match userinfo {
            Some(u) => format!("redis://{u}@{host}"),
            None => format!("redis://{host}"),
        })
        .collect();
    if nodes.is_empty() {
        return Some(Err(Error::BadUrl {
            url: redact_url(url),
            message: format!("expected at least one seed node, as in {CLUSTER_SCHEME}://127.0.0.1:7000,127.0.0.1:7001"),
        }));
    }
    Some(Ok(nodes))
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
    use super::{cluster_seed_urls, redact_url};

    #[test]
    fn debug_output_of_an_endpoint_hides_its_password() {
        let e = super::Endpoint::plain("redis://app:hunter2@h:1");
        assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
    }

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("redis://:hunter2@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("rediss://app:hunter2@h:1"), "rediss://app:***@h:1");
        assert_eq!(redact_url("redis://hunter2@h"), "redis://***@h");
        assert_eq!(redact_url("redis+cluster://:hunter2@a:1,b:2"), "redis+cluster://:***@a:1,b:2");
        assert_eq!(redact_url("redis+cluster://app:hunter2@a:1,b:2/0"), "redis+cluster://app:***@a:1,b:2/0");
    }

    #[test]
    fn cluster_urls_list_their_seed_nodes() {
        assert!(cluster_seed_urls("redis://a:1").is_none());
        let nodes = cluster_seed_urls("redis+cluster://a:1,b:2").unwrap().unwrap();
        assert_eq!(nodes, ["redis://a:1", "redis://b:2"]);
        let nodes = cluster_seed_urls("redis+cluster://:pw@a:1, b:2/").unwrap().unwrap();
        assert_eq!(nodes, ["redis://:pw@a:1", "redis://:pw@b:2"]);
        let error = cluster_seed_urls("redis+cluster://:hunter2@").unwrap().unwrap_err().to_string();
        assert!(error.contains("seed node") && !error.contains("hunter2"), "{error}");
    }
}
