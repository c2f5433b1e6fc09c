//! A Redis that may evict keys loses jobs silently, so every role refuses to start against one
//! (exit 2, nothing written) unless `--allow-eviction` is given, and then warns. The policy is
//! read even by an ACL user that may not run CONFIG.

use crate::support::{self, conveyor};
use conveyor::connection::Redis;
use conveyor::runtime::eviction::{self, Eviction};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn scenario_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("evict.toml");
    let queue = support::unique_name("evict");
    std::fs::write(
        &path,
        format!("# eviction test\ndescription = \"e\"\n[queue]\nname = \"{queue}\"\n[producer]\njobs = 200\n"),
    )
    .unwrap();
    path
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn every_role_refuses_a_redis_that_evicts_unless_told_to_insist() {
    let server = support::own_server(&["--maxmemory-policy", "allkeys-lru"]);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(dir.path());
    let results = dir.path().join("results");
    for role in ["run", "produce", "worker"] {
        let started = Instant::now();
        let mut cmd = conveyor();
        cmd.args([role, "--redis-url", &url]).arg(&scenario);
        if role != "worker" {
            cmd.arg("--quiet").arg("--results").arg(&results);
        }
        let out = cmd.output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{role}: {all}");
        // Only bounds a hang: the check runs right after connecting.
        assert!(started.elapsed() < Duration::from_secs(60), "{role} took {:?}", started.elapsed());
        for needle in ["maxmemory-policy allkeys-lru", "noeviction", "--allow-eviction", &url] {
            assert!(all.contains(needle), "{role}: error lacks {needle:?}: {all}");
        }
        assert_eq!(all.matches("error:").count(), 1, "{role}: one error expected: {all}");
    }
    assert!(!results.exists(), "a refused run wrote results");

    let out = conveyor()
        .args(["run", "--quiet", "--allow-eviction", "--redis-url", &url, "--results"])
        .arg(&results)
        .arg(&scenario)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("evict keys") && all.contains("WARN"), "no warning: {all}");
    assert!(results.exists());
}

#[actix_rt::test]
async fn the_policy_is_read_from_info_when_config_is_forbidden() {
    let server = support::own_server(&[
        "--maxmemory-policy",
        "volatile-lru",
        "--user",
        "app",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "-config",
    ]);
    let url = format!("redis://app:pw@127.0.0.1:{}", server.port());
    let redis = Redis::connect(&url).await.unwrap();
    assert_eq!(eviction::policy(&redis).await.unwrap(), "volatile-lru");
    let err = eviction::check(&redis, false).await.unwrap_err().to_string();
    assert!(err.contains("volatile-lru") && !err.contains(":pw@"), "{err}");
    assert_eq!(eviction::check(&redis, true).await.unwrap(), Eviction::Allowed { policy: "volatile-lru".into() });

    let safe = Redis::connect(&support::shared_server().url()).await.unwrap();
    assert_eq!(eviction::check(&safe, false).await.unwrap(), Eviction::Safe);
}
