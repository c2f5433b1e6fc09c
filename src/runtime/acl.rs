//! The least-privilege Redis ACL conveyor needs: the commands it sends, directly or from its Lua
//! scripts (scripts run with the caller's permissions), on the keys of its prefix only, and no
//! Pub/Sub channels. The README shows the rule for the default prefix; a test runs whole
//! scenarios, the CLI roles and the fault paths as a user with exactly these permissions.
//!
//! `CONFIG GET` is left out on purpose: the eviction check falls back to `INFO memory`, and the
//! result's persistence settings then read "unknown".

/// Every command conveyor runs, as ACL command names.
pub const COMMANDS: &[&str] = &[
    // connection and server
    "ping",
    "info",
    "time",
    // transactions (settle is one MULTI/EXEC) and scripts
    "multi",
    "exec",
    "discard",
    "evalsha",
    "eval",
    "script|load",
    // the ready stream, its consumer group, and the dead letters
    "xadd",
    "xreadgroup",
    "xack",
    "xtrim",
    "xclaim",
    "xautoclaim",
    "xgroup|create",
    "xlen",
    "xpending",
    "xrange",
    "xinfo|groups",
    "xdel",
    "xread",
    "xrevrange",
    // delayed and retrying jobs, cancellations, live workers
    "zadd",
    "zcard",
    "zrange",
    "zrangebyscore",
    "zrem",
    "zscore",
    "zremrangebyscore",
    // audit bitmap, run counter, idempotency keys, published statistics
    "get",
    "set",
    "incr",
    "setbit",
    "bitfield",
    "bitcount",
    "incrby",
    "hset",
    "hsetnx",
    "hget",
    "hdel",
    "hincrby",
    "hgetall",
    "expire",
    "pexpire",
    "exists",
    "type",
    // the set of queues (operators find them there)
    "sadd",
    "smembers",
    // resetting a queue
    "scan",
    "unlink",
    "del",
];

/// The ACL rule (after `ACL SETUSER <name> on ><password>`) for keys with `prefix`.
pub fn rule(prefix: &str) -> String {
    let commands: Vec<String> = COMMANDS.iter().map(|c| format!("+{c}")).collect();
    format!("resetkeys ~{{{prefix}:* resetchannels -@all {}", commands.join(" "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rule_names_only_the_prefix_keys_and_the_listed_commands() {
        let rule = super::rule("conveyor");
        assert!(rule.starts_with("resetkeys ~{conveyor:* resetchannels -@all +ping "), "{rule}");
        assert_eq!(rule.matches(" +").count(), super::COMMANDS.len());
    }
}
