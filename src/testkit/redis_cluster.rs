//! A private Redis Cluster on loopback, for tests and local measurements: N masters (and R
//! replicas per master) started as [`RedisServer`]s with `--cluster-enabled yes`, joined by
//! `redis-cli --cluster create` (by hand for 1 or 2 masters, which redis-cli refuses), and ready
//! once every node reports `cluster_state:ok` and every slot covered. Nodes can be killed one at
//! a time to watch a replica take over. Every node is killed when the handle drops, so keep the
//! handle in the test (a `static` is never dropped and would leave the nodes running).

use crate::runtime::error::{Error, Result};
use crate::testkit::redis_server::{RedisServer, ServerOptions, free_port};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a node may be unreachable before the others fail it over. Short, so a test sees a
/// replica promoted in a couple of seconds.
const NODE_TIMEOUT_MS: u32 = 1000;

/// How to shape the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Masters, each owning an equal share of the 16384 slots (at least 1).
    pub masters: usize,
    /// Replicas per master.
    pub replicas_per_master: usize,
    /// Extra `--name value` arguments for every node (e.g. `["--appendonly", "yes"]`).
    pub args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self { masters: 3, replicas_per_master: 0, args: Vec::new() }
    }
}

/// A running private cluster; every node is killed when it drops.
#[derive(Debug)]
pub struct RedisCluster {
    /// Every node, masters first as `redis-cli --cluster create` assigned them.
    nodes: Vec<RedisServer>,
    /// The cluster bus port of each node (`CLUSTER MEET` must name it).
    bus_ports: Vec<u16>,
}

/// One node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRole {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A master (else a replica).
    pub master: bool,
    /// Slot ranges a master serves, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until it serves every slot.
    pub fn start(options: ClusterOptions) -> Result<Self> {
        if options.masters == 0 {
            return Err(Error::RedisServer("a cluster needs at least one master".into()));
        }
        if options.masters < 3 && options.replicas_per_master > 0 {
            // Failover needs a majority of masters to vote; with fewer than 3 there is none.
            return Err(Error::RedisServer("replicas need at least 3 masters (failover needs a majority)".into()));
        }
        let count = options.masters * (1 + options.replicas_per_master);
        let mut nodes = Vec::with_capacity(count);
        let mut bus_ports = Vec::with_capacity(count);
        for _ in 0..count {
            // The cluster bus listens on a port of its own; port + 10000 may not exist.
            let bus = free_port()?;
            bus_ports.push(bus);
            let mut args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &NODE_TIMEOUT_MS.to_string(),
                "--cluster-port",
                &bus.to_string(),
                "--appendonly",
                "no",
                // A master otherwise waits 5 s before it starts a replica's first sync, and a
                // replica that never synced refuses to take over.
                "--repl-diskless-sync-delay",
                "0",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(options.args.iter().cloned());
            nodes.push(RedisServer::start(ServerOptions { args, ..ServerOptions::default() })?);
        }
        let cluster = Self { nodes, bus_ports };
        if options.masters >= 3 {
            cluster.create_with_redis_cli(options.replicas_per_master)?;
        } else {
            cluster.create_by_hand(options.masters)?;
        }
        cluster.wait_ready(Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// `redis-cli --cluster create`: slots spread evenly, replicas assigned to masters.
    fn create_with_redis_cli(&self, replicas_per_master: usize) -> Result<()> {
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &self.nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create.arg("--cluster-replicas").arg(replicas_per_master.to_string()).arg("--cluster-yes");
        let out = create.output().map_err(|e| Error::RedisServer(format!("cannot run redis-cli: {e}")))?;
        if !out.status.success() {
            return Err(Error::RedisServer(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// What `redis-cli --cluster create` refuses to do for fewer than 3 masters (a cluster that
    /// cannot fail over, but a fine yardstick): slots split evenly over the first `masters`
    /// nodes, every node introduced to the first, the rest replicating the masters in turn.
    fn create_by_hand(&self, masters: usize) -> Result<()> {
        let ports: Vec<u16> = self.nodes.iter().map(RedisServer::port).collect();
        for (i, &port) in ports.iter().take(masters).enumerate() {
            let first = i * 16384 / masters;
            let last = (i + 1) * 16384 / masters - 1;
            cli(port, &["CLUSTER", "ADDSLOTSRANGE", &first.to_string(), &last.to_string()])?;
            cli(port, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])?;
        }
        for (&port, bus) in ports.iter().zip(&self.bus_ports).skip(1) {
            cli(ports[0], &["CLUSTER", "MEET", "127.0.0.1", &port.to_string(), &bus.to_string()])?;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while ports.iter().any(|&p| self.roles_seen_by(p).map_or(true, |r| r.len() < ports.len())) {
            if Instant::now() > deadline {
                return Err(Error::RedisServer("cluster nodes did not meet within 20 s".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (i, &port) in ports.iter().enumerate().skip(masters) {
            let master_id = cli(ports[i % masters], &["CLUSTER", "MYID"])?;
            cli(port, &["CLUSTER", "REPLICATE", master_id.trim()])?;
        }
        Ok(())
    }

    /// `redis+cluster://` URL naming every running node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> =
            self.nodes.iter().filter(|n| n.pid().is_some()).map(|n| format!("127.0.0.1:{}", n.port())).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Every node, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Waits until every running node reports `cluster_state:ok` with all slots served, every
    /// replica is in sync with its master (only then can it take over), and every node agrees
    /// on which nodes are masters.
    pub fn wait_ready(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let mut last = String::new();
            let ok = self.running_ports().iter().all(|&port| match node_state(port) {
                Ok(info) => {
                    let ok = info.contains("cluster_state:ok")
                        && info.contains("cluster_slots_ok:16384")
                        && (info.contains("role:master") || info.contains("master_link_status:up"));
                    if !ok {
                        last = format!("node {port}: {}", info.lines().take(3).collect::<Vec<_>>().join(" "));
                    }
                    ok
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            });
            if ok && self.views_agree() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::RedisServer(format!("cluster not ready within {within:?}: {last}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every running node names the same masters.
    fn views_agree(&self) -> bool {
        let views: Vec<Vec<u16>> = self
            .running_ports()
            .iter()
            .map(|&p| {
                let mut masters: Vec<u16> = self
                    .roles_seen_by(p)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r.master && !r.slots.is_empty())
                    .map(|r| r.port)
                    .collect();
                masters.sort_unstable();
                masters
            })
            .collect();
        views.windows(2).all(|w| w[0] == w[1])
    }

    fn running_ports(&self) -> Vec<u16> {
        self.nodes.iter().filter(|n| n.pid().is_some()).map(RedisServer::port).collect()
    }

    /// Roles of every node as the first running node sees them.
    pub fn roles(&self) -> Result<Vec<NodeRole>> {
        let port = *self.running_ports().first().ok_or_else(|| Error::RedisServer("no node is running".into()))?;
        self.roles_seen_by(port)
    }

    fn roles_seen_by(&self, port: u16) -> Result<Vec<NodeRole>> {
        let text = cli(port, &["CLUSTER", "NODES"])?;
        Ok(text.lines().filter_map(parse_node_line).collect())
    }

    /// Index (in [`RedisCluster::nodes`]) of the master that serves `key`'s slot.
    pub fn master_of(&self, key: &str) -> Result<usize> {
        let port = *self.running_ports().first().ok_or_else(|| Error::RedisServer("no node is running".into()))?;
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", key])?
            .trim()
            .parse()
            .map_err(|e| Error::RedisServer(format!("CLUSTER KEYSLOT: {e}")))?;
        let owner = self
            .roles()?
            .into_iter()
            .find(|r| r.master && r.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .ok_or_else(|| Error::RedisServer(format!("no master serves slot {slot}")))?;
        self.nodes
            .iter()
            .position(|n| n.port() == owner.port)
            .ok_or_else(|| Error::RedisServer(format!("master on port {} is not ours", owner.port)))
    }

    /// Kills node `index` at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Sum of an `INFO` field over every running master (e.g. `total_commands_processed`).
    pub fn info_sum(&self, section: &str, field: &str) -> Result<u64> {
        let masters: Vec<u16> =
            self.roles()?.into_iter().filter(|r| r.master && !r.slots.is_empty()).map(|r| r.port).collect();
        let mut sum = 0;
        for port in masters {
            let info = cli(port, &["INFO", section])?;
            sum += info
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(sum)
    }

    /// Process ids of the running nodes (to measure their CPU time).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(RedisServer::pid).collect()
    }
}

/// `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot> <slot> ...`
fn parse_node_line(line: &str) -> Option<NodeRole> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    let address = parts.get(1)?;
    let port = address.split('@').next()?.rsplit(':').next()?.parse().ok()?;
    let flags = parts.get(2)?;
    let master = flags.split(',').any(|f| f == "master") && !flags.contains("fail");
    let slots = parts
        .iter()
        .skip(8)
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|n| (n, n)),
        })
        .collect();
    Some(NodeRole { port, master, slots })
}

/// `CLUSTER INFO` and `INFO replication` of one node.
fn node_state(port: u16) -> Result<String> {
    Ok(cli(port, &["CLUSTER", "INFO"])? + &cli(port, &["INFO", "replication"])?)
}

/// Runs `redis-cli -p port args...` and returns its output.
fn cli(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .map_err(|e| Error::RedisServer(format!("cannot run redis-cli: {e}")))?;
    if !out.status.success() {
        return Err(Error::RedisServer(format!("redis-cli -p {port} {}: {}", args.join(" "), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_node_line;

    #[test]
    fn reads_cluster_nodes_lines() {
        let m = "07c3 127.0.0.1:30004@31004 myself,master - 0 0 1 connected 0-5460 6000 [93->-e7d]";
        let role = parse_node_line(m).unwrap();
        assert_eq!((role.port, role.master, role.slots), (30004, true, vec![(0, 5460), (6000, 6000)]));
        let failed = "67ed 127.0.0.1:30002@31002 master,fail - 0 0 2 disconnected";
        assert!(!parse_node_line(failed).unwrap().master);
        let replica = "292f 127.0.0.1:30005@31005 slave 07c3 0 0 1 connected";
        assert!(!parse_node_line(replica).unwrap().master);
    }
}
