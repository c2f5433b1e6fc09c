//! The eviction check every role runs before it touches a queue. Redis with a
//! `maxmemory-policy` other than `noeviction` may delete keys when memory runs short: a job
//! stream, a delayed set or an idempotency key would vanish without an error, and jobs would be
//! lost silently. So conveyor refuses to start against such a Redis unless the user insists
//! (`--allow-eviction`), in which case it warns.
//!
//! The policy is read with `CONFIG GET maxmemory-policy`; an ACL user without `CONFIG` (the
//! least-privilege user in the README) falls back to the `maxmemory_policy` field of
//! `INFO memory`.

use crate::runtime::connection::Redis;
use crate::runtime::error::{Error, Result};

/// The only policy under which Redis never deletes a key to free memory.
pub const SAFE_POLICY: &str = "noeviction";

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// `noeviction`: Redis answers writes with an error when full instead of deleting keys.
    Safe,
    /// Another policy, allowed by the user: the run goes on with a warning.
    Allowed {
        /// The policy Redis reported (`allkeys-lru`, ...), or "unknown" when Redis would not say.
        policy: String,
    },
}

/// Reads the eviction policy and refuses any but `noeviction` unless `allow` is set.
pub async fn check(redis: &Redis, allow: bool) -> Result<Eviction> {
    let policy = match policy(redis).await {
        Ok(p) => p,
        Err(e) if allow => {
            tracing::warn!(error = %e, "eviction policy unknown; going on because --allow-eviction was given");
            return Ok(Eviction::Allowed { policy: "unknown".into() });
        }
        Err(e) => return Err(e),
    };
    if policy == SAFE_POLICY {
        return Ok(Eviction::Safe);
    }
    if allow {
        tracing::warn!(
            policy = %policy,
            "redis may evict keys under memory pressure and lose jobs silently (--allow-eviction given)"
        );
        return Ok(Eviction::Allowed { policy });
    }
    Err(Error::Eviction(format!(
        "redis at {} has maxmemory-policy {policy}: under memory pressure it deletes keys, which loses jobs \
         silently; set it to {SAFE_POLICY} (`CONFIG SET maxmemory-policy {SAFE_POLICY}` or `maxmemory-policy \
         {SAFE_POLICY}` in redis.conf) or pass --allow-eviction to run anyway",
        redis.redacted_url()
    )))
}

/// The server's `maxmemory-policy`, from CONFIG GET or, when CONFIG is not allowed, INFO memory.
/// On a cluster every master must be safe: the first unsafe policy among them, from INFO memory
/// of each (a command sent to the cluster goes to one node).
pub async fn policy(redis: &Redis) -> Result<String> {
    if redis.is_cluster() {
        let infos = redis
            .info_of_masters("memory")
            .await
            .map_err(|e| unreadable(redis, "not used on a cluster", &e.to_string()))?;
        let mut policies = Vec::with_capacity(infos.len());
        for info in &infos {
            policies.push(info_field(info, "maxmemory_policy").ok_or_else(|| {
                unreadable(redis, "not used on a cluster", "INFO memory has no maxmemory_policy field")
            })?);
        }
        return Ok(policies.into_iter().find(|p| p != SAFE_POLICY).unwrap_or_else(|| SAFE_POLICY.into()));
    }
    let from_config = redis
        .with_conn(async |c| {
            redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query_async::<Vec<String>>(c).await
        })
        .await;
    let config_error = match from_config {
        Ok(pair) => match pair.get(1) {
            Some(p) => return Ok(p.clone()),
            None => "CONFIG GET returned nothing".to_owned(),
        },
        Err(e) => e.to_string(),
    };
    let info: String = redis
        .with_conn(async |c| redis::cmd("INFO").arg("memory").query_async(c).await)
        .await
        .map_err(|e| unreadable(redis, &config_error, &e.to_string()))?;
    info_field(&info, "maxmemory_policy")
        .ok_or_else(|| unreadable(redis, &config_error, "INFO memory has no maxmemory_policy field"))
}

fn unreadable(redis: &Redis, config_error: &str, info_error: &str) -> Error {
    Error::Eviction(format!(
        "cannot read the eviction policy of redis at {} (CONFIG GET: {config_error}; INFO memory: {info_error}): \
         allow the user `CONFIG GET` or `INFO`, or pass --allow-eviction to run without the check",
        redis.redacted_url()
    ))
}

/// `name:value` from an INFO reply.
fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::info_field;

    #[test]
    fn reads_the_policy_from_an_info_reply() {
        let info = "# Memory\r\nused_memory:1000\r\nmaxmemory_policy:allkeys-lru\r\nmaxmemory_policy_x:y\r\n";
        assert_eq!(info_field(info, "maxmemory_policy").as_deref(), Some("allkeys-lru"));
        assert_eq!(info_field(info, "missing"), None);
    }
}
