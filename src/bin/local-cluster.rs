//! `local-cluster`: starts a private Redis Cluster on loopback (the one the tests use), prints
//! its `redis+cluster://` URL and every node's port, role and pid, and keeps it up until Ctrl-C
//! or SIGTERM, when every node is stopped. For trying conveyor on a cluster, killing a master
//! by hand, and the scaling measurement (`scripts/cluster-scaling.sh`).
//!
//! ```text
//! local-cluster [--masters N] [--replicas R] [--node-timeout MS] [--url-file PATH]
//! ```

use conveyor::testkit::redis_cluster::{ClusterOptions, RedisCluster};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut options = ClusterOptions::default();
    let mut url_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name}: expected a value"));
        match arg.as_str() {
            "--masters" => options.masters = number("--masters", &value("--masters")?)?,
            "--replicas" => options.replicas_per_master = number("--replicas", &value("--replicas")?)?,
            "--url-file" => url_file = Some(value("--url-file")?),
            // Redis' own default is 15000; the harness uses 1000 so failovers are quick.
            "--node-timeout" => {
                let ms = number("--node-timeout", &value("--node-timeout")?)?;
                options.args.extend(["--cluster-node-timeout".to_owned(), ms.to_string()]);
            }
            "-h" | "--help" => {
                println!(
                    "local-cluster [--masters N (default 3)] [--replicas R per master (default 0)] \
                     [--node-timeout MS (default 1000)] [--url-file PATH]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if !(1..=16).contains(&options.masters) || options.replicas_per_master > 4 {
        return Err("expected 1 to 16 masters and 0 to 4 replicas per master".into());
    }
    let cluster = RedisCluster::start(options).map_err(|e| e.to_string())?;
    let roles = cluster.roles().map_err(|e| e.to_string())?;
    println!("url {}", cluster.url());
    for node in cluster.nodes() {
        let role = roles.iter().find(|r| r.port == node.port());
        let what = match role {
            Some(r) if r.master => format!("master slots {:?}", r.slots),
            _ => "replica".to_owned(),
        };
        println!("node 127.0.0.1:{} pid {} {what}", node.port(), node.pid().unwrap_or(0));
    }
    if let Some(path) = url_file {
        std::fs::write(&path, cluster.url()).map_err(|e| format!("{path}: {e}"))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), String>(())
    })?;
    drop(cluster);
    Ok(())
}

fn number(name: &str, text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| format!("{name}: expected a whole number, got {text:?}"))
}
