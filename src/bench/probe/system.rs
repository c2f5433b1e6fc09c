//! The context every result records, so a figure can be judged: the machine, the Redis it ran
//! against and how that Redis keeps data, and which conveyor made it.

use crate::runtime::connection::Redis;
use serde::Serialize;

/// The machine and build a result was measured on, so two results are compared only like with
/// like. Read from `/proc` and `/etc/os-release` (Linux); what cannot be read is left
/// "unknown", empty or 0.
#[derive(Debug, Clone, Serialize)]
pub struct SystemInfo {
    /// CPU model name from `/proc/cpuinfo` ("unknown" when absent).
    pub cpu_model: String,
    /// CPUs this process may use (`available_parallelism`), which may be fewer than the machine has.
    pub cores: usize,
    /// Total memory of the machine in bytes (`MemTotal`; 0 when unreadable).
    pub memory_bytes: u64,
    /// The operating system's pretty name (`/etc/os-release`), else the target OS (`linux`).
    pub os: String,
    /// Host name of the machine (empty when unreadable).
    pub hostname: String,
    /// This crate's version (`CARGO_PKG_VERSION`).
    pub conveyor_version: String,
    /// Short git commit hash the binary was built from (set by `build.rs`; "unknown" outside a
    /// git checkout).
    pub git_revision: String,
    /// Whether the build was optimized (debug numbers are not comparable).
    pub release_build: bool,
}

/// The Redis server a result was measured against and how it keeps data, since persistence and
/// eviction settings change what a queue can do. A setting Redis refuses to show is "unknown".
#[derive(Debug, Clone, Serialize, Default)]
pub struct RedisInfo {
    /// `redis_version` from `INFO server`.
    pub version: String,
    /// Redis URL with any password removed.
    pub url: String,
    /// True when conveyor started its own redis-server for this run.
    pub private_server: bool,
    /// `CONFIG GET appendonly`: whether the append-only file is on (`yes`/`no`).
    pub appendonly: String,
    /// `CONFIG GET appendfsync`: how often the append-only file is synced (`always`, `everysec`, `no`).
    pub appendfsync: String,
    /// `CONFIG GET save`: the RDB snapshot schedule (empty when snapshots are off).
    pub save: String,
    /// `CONFIG GET maxmemory-policy`: what Redis evicts when full (`noeviction` keeps every job).
    pub maxmemory_policy: String,
    /// Whether the Redis server process runs on this host (it then shares our cores).
    pub same_host: bool,
}

impl SystemInfo {
    /// Reads the machine's description; never fails (see the fields for what an unreadable one holds).
    pub fn gather() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        let os = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            os,
            hostname,
            conveyor_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision: option_env!("CONVEYOR_GIT_REVISION").unwrap_or("unknown").to_owned(),
            release_build: !cfg!(debug_assertions),
        }
    }
}

impl RedisInfo {
    /// Reads version and persistence/eviction settings; fields Redis refuses (an ACL user
    /// without CONFIG) stay "unknown".
    pub async fn gather(redis: &Redis, private_server: bool) -> Self {
        let info: String = redis.info("server").await.unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(|v| v.trim().to_owned()))
        };
        let version = field("redis_version").unwrap_or_else(|| "unknown".into());
        let same_host = on_this_host(redis.url());
        let config = async |name: &str| -> String {
            redis
                .with_conn(async |c| redis::cmd("CONFIG").arg("GET").arg(name).query_async::<Vec<String>>(c).await)
                .await
                .ok()
                .and_then(|v| v.get(1).cloned())
                .unwrap_or_else(|| "unknown".into())
        };
        Self {
            version,
            url: redis.redacted_url().to_owned(),
            private_server,
            appendonly: config("appendonly").await,
            appendfsync: config("appendfsync").await,
            save: config("save").await,
            maxmemory_policy: config("maxmemory-policy").await,
            same_host,
        }
    }
}

/// True when `url` reaches a Redis on this machine: a Unix socket, or a loopback host.
fn on_this_host(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else { return false };
    if url.scheme() == "unix" || url.scheme() == "redis+unix" {
        return true;
    }
    match url.host() {
        // A redis:// URL is not a "special" scheme, so its IPv4 host arrives as a domain.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::on_this_host;

    #[test]
    fn loopback_hosts_and_unix_sockets_are_this_host() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://[::1]:6380/0",
            "unix:///tmp/r.sock",
            "redis://127.0.0.2",
        ] {
            assert!(on_this_host(url), "{url}");
        }
        for url in ["redis://10.0.0.5:6379", "redis://cache.internal", "not a url"] {
            assert!(!on_this_host(url), "{url}");
        }
    }
}
