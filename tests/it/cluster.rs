//! The queue on a real Redis Cluster started on loopback (`redis-server --cluster-enabled yes`
//! joined by `redis-cli --cluster create`), through a `redis+cluster://` URL: every queue
//! operation (atomic settle pipeline, Lua scripts, reset by SCAN on the queue's slot), a whole
//! run with lost = 0, and a master killed mid-run with its replica promoted.

use crate::support::{self, job, never, run_options};
use conveyor::bench::run;
use conveyor::bench::run::RunBook;
use conveyor::bench::scenario::Scenario;
use conveyor::clock;
use conveyor::connection::Redis;
use conveyor::queue::{Depth, Enqueued, Outcome, Queue, QueueOptions, Settled};
use conveyor::testkit::redis_cluster::{ClusterOptions, RedisCluster};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A 3-master cluster of the test's own (about a second to start); its nodes stop when it drops.
fn cluster() -> RedisCluster {
    RedisCluster::start(ClusterOptions::default()).unwrap_or_else(|e| panic!("tests need a real redis cluster: {e}"))
}

#[tokio::test]
async fn every_queue_operation_works_on_a_cluster() {
    let cluster = cluster();
    let redis = Redis::connect(&cluster.url()).await.expect("connect to the cluster");
    assert!(redis.is_cluster());
    assert_eq!(redis.info_of_masters("server").await.unwrap().len(), 3, "INFO of each master");
    assert!(redis.used_memory().await.unwrap() > 3 * 500_000, "used_memory summed over the masters");
    // Several queues, so their slots land on different masters.
    let mut masters = std::collections::BTreeSet::new();
    for n in 0..6 {
        let options = QueueOptions { max_attempts: 2, backoff: Default::default(), ..QueueOptions::default() };
        let queue =
            Queue::new(redis.clone(), &support::unique_name(&format!("cluster-ops{n}")), options, clock::system());
        masters.insert(cluster.master_of(&queue.keys().ready()).unwrap());
        queue.ensure_group().await.unwrap();
        queue.ensure_group().await.expect("creating the group twice is fine");

        queue.enqueue_batch(&(0..20).map(job).collect::<Vec<_>>()).await.unwrap();
        assert_eq!(queue.depth().await.unwrap(), Depth { waiting: 20, ..Depth::default() });
        let mut conn = redis.blocking_connection().await.unwrap();
        let claimed = queue.claim(&mut conn, "w1", 100, Duration::from_millis(50)).await.unwrap();
        assert_eq!(claimed.len(), 20);
        // Settle is one MULTI/EXEC pipeline: 18 complete, 2 fail (and retry).
        let batch: Vec<_> = claimed
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c, if i < 18 { Outcome::Completed } else { Outcome::Failed("boom".into()) }))
            .collect();
        let settled = queue.settle(&batch).await.unwrap();
        assert_eq!(settled, Settled { completed: 18, retried: 2, dead: 0, cancelled: 0, duplicates: 0 });
        assert_eq!(queue.settle(&batch[..3]).await.unwrap().duplicates, 3, "the audit sees repeats");
        assert_eq!(queue.audited_done().await.unwrap(), 18);
        assert_eq!(queue.depth().await.unwrap(), Depth { retrying: 2, ..Depth::default() });

        // The promote script, once the retries are due.
        let mut promoted = 0;
        for _ in 0..100 {
            promoted += queue.promote_due(100).await.unwrap();
            if promoted == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(promoted, 2);
        // Claimed and never settled: the reclaim script gives them back.
        let held = queue.claim(&mut conn, "w2", 10, Duration::from_millis(50)).await.unwrap();
        assert_eq!(held.len(), 2);
        queue.renew("w2", &held).await.unwrap();
        let r = queue.reclaim("0-0", 100).await.unwrap();
        assert_eq!(r.moved, 0, "a 30 s lease has not expired");
        assert!(queue.oldest_waiting_age().await.unwrap() < Duration::from_secs(5));

        // Priorities and a rate limit: the claim script, the settings read, depth by priority.
        let mut high = job(100);
        high.priority = conveyor::queue::Priority::High;
        queue.enqueue(&high).await.unwrap();
        queue.set_limit(conveyor::queue::Limit::new(500.0, None).unwrap()).await.unwrap();
        let settings = queue.settings().await.unwrap();
        assert!(settings.lanes && settings.limit.is_some(), "{settings:?}");
        assert_eq!(queue.depth_by_priority().await.unwrap().1.high, 1);
        let plan = conveyor::queue::ClaimPlan { service: Default::default(), limit: settings.limit, lanes: true };
        let lane = queue.claim_planned(&mut conn, "w3", 10, Duration::from_millis(50), &plan).await.unwrap();
        assert_eq!(lane.len(), 1);
        assert_eq!(queue.settle(&[(lane[0].clone(), Outcome::Completed)]).await.unwrap().completed, 1);
        queue.reclaim("0-0", 100).await.unwrap();
        queue.clear_limit().await.unwrap();

        // The idempotency script.
        let first = queue.enqueue_unique(&job(100), "k", Duration::from_secs(60)).await.unwrap();
        let again = queue.enqueue_unique(&job(101), "k", Duration::from_secs(60)).await.unwrap();
        assert!(matches!(first, Enqueued::Added(_)));
        assert_eq!(again, Enqueued::Duplicate(first.id().clone()));

        let run = queue.start_run().await.unwrap();
        queue.publish_stats(run, "p1", b"stats").await.unwrap();
        assert_eq!(queue.published_stats(run).await.unwrap(), vec![("p1".to_owned(), b"stats".to_vec())]);

        // Reset finds every key of the queue on the master of its slot.
        queue.reset().await.unwrap();
        let k = queue.keys();
        let keys = [k.ready(), k.delayed(), k.dead(), k.audit_done(), k.run(), k.stats(run), k.unique("k")];
        for key in keys {
            let exists: u64 =
                redis.with_conn(async |c| redis::cmd("EXISTS").arg(&key).query_async(c).await).await.unwrap();
            assert_eq!(exists, 0, "{key} survived the reset");
        }
    }
    assert!(masters.len() >= 2, "the queues all landed on one master: {masters:?}");
}

#[actix_rt::test]
async fn the_quick_scenario_runs_on_a_cluster_and_loses_nothing() {
    let cluster = cluster();
    let redis = Redis::connect(&cluster.url()).await.unwrap();
    let mut s = Scenario::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quick.toml"))).unwrap();
    s.queue.name = Some(support::unique_name("cluster-quick"));
    s.producer.jobs = Some(2_000);
    s.phases.warmup = Duration::ZERO;
    let r = run::run_scenario(&s, &redis, &run_options(), never()).await.unwrap_or_else(|e| panic!("run failed: {e}"));
    let c = &r.counts;
    assert_eq!((c.produced, c.finished, c.lost, c.duplicates), (2_000, 2_000, 0, 0), "{c:?}");
    assert_eq!(r.remaining.unfinished(), 0, "{:?}", r.remaining);
    assert!(r.redis.version.starts_with(|c: char| c.is_ascii_digit()), "version read from a master: {:?}", r.redis);
}

#[actix_rt::test]
async fn a_partitioned_queue_spreads_over_the_masters_and_loses_nothing() {
    let cluster = cluster();
    let redis = Redis::connect(&cluster.url()).await.unwrap();
    let name = support::unique_name("cluster-partitioned");
    let text = format!(
        "name = \"{name}\"\ndescription = \"partitioned\"\n[queue]\nname = \"{name}\"\npartitions = 6\n\
         [producer]\njobs = 3000\nbatch = 100\n[workers]\ncount = 3\n[phases]\ndrain_timeout = \"30s\"\n"
    );
    let s = Scenario::parse(&text, Path::new("partitioned.toml")).unwrap_or_else(|e| panic!("{e}"));
    let queue = Queue::new(redis.clone(), &name, s.queue_options(), clock::system());
    let mut per_master: BTreeMap<usize, u32> = BTreeMap::new();
    for keys in queue.partition_keys() {
        *per_master.entry(cluster.master_of(&keys.ready()).unwrap()).or_default() += 1;
    }
    assert_eq!(per_master.len(), 3, "6 partitions spread over the 3 masters: {per_master:?}");
    let r = run::run_scenario(&s, &redis, &run_options(), never()).await.unwrap_or_else(|e| panic!("run failed: {e}"));
    let c = &r.counts;
    assert_eq!((c.produced, c.finished, c.lost, c.duplicates), (3_000, 3_000, 0, 0), "{c:?}");
    // Every partition carried a share of the jobs.
    for keys in queue.partition_keys() {
        let key = keys.audit_done();
        let done: u64 = redis.with_conn(async |c| redis::cmd("BITCOUNT").arg(&key).query_async(c).await).await.unwrap();
        assert!(done > 0, "partition {key} got no job");
    }
}

/// redis-cli refuses to create a cluster of fewer than 3 masters; the harness builds one by hand
/// (the 1- and 2-master points of the scaling measurement).
#[actix_rt::test]
async fn a_two_master_cluster_built_by_hand_serves_a_partitioned_queue() {
    let cluster = RedisCluster::start(ClusterOptions { masters: 2, ..ClusterOptions::default() })
        .unwrap_or_else(|e| panic!("tests need a real redis cluster: {e}"));
    assert_eq!(cluster.roles().unwrap().iter().filter(|r| r.master && !r.slots.is_empty()).count(), 2);
    let redis = Redis::connect(&cluster.url()).await.unwrap();
    let name = support::unique_name("cluster-two");
    let text = format!(
        "name = \"{name}\"\ndescription = \"two masters\"\n[queue]\nname = \"{name}\"\npartitions = 4\n\
         [producer]\njobs = 1000\nbatch = 50\n[workers]\ncount = 2\n[phases]\ndrain_timeout = \"30s\"\n"
    );
    let s = Scenario::parse(&text, Path::new("two.toml")).unwrap_or_else(|e| panic!("{e}"));
    let r = run::run_scenario(&s, &redis, &run_options(), never()).await.unwrap_or_else(|e| panic!("run failed: {e}"));
    let c = &r.counts;
    assert_eq!((c.produced, c.finished, c.lost, c.duplicates), (1_000, 1_000, 0, 0), "{c:?}");
}

/// A master killed (SIGKILL) mid-run while a producer and workers use its slot: its replica is
/// promoted within a few seconds and the run carries on to the end. Replication is
/// asynchronous, so writes the master acknowledged but had not yet sent to its replica are gone
/// with it: enqueued jobs (counted as lost), settlements (the job runs again: a duplicate) and
/// audit bits (counted as lost though the job ran). The test counts them and prints them; it
/// asserts what the cluster guarantees: the queue keeps serving, and the loss is bounded by
/// what was in flight around the crash.
#[actix_rt::test]
async fn a_master_killed_mid_run_fails_over_and_the_queue_carries_on() {
    let cluster = RedisCluster::start(ClusterOptions { masters: 3, replicas_per_master: 1, args: Vec::new() })
        .unwrap_or_else(|e| panic!("tests need a real redis cluster: {e}"));
    let redis = Redis::connect(&cluster.url()).await.unwrap();
    let name = support::unique_name("cluster-failover");
    let text = format!(
        "name = \"{name}\"\ndescription = \"failover\"\n[queue]\nname = \"{name}\"\nlease = \"2s\"\n\
         [producer]\nrate = 500\nduration = \"5s\"\n[workers]\ncount = 2\n[phases]\ndrain_timeout = \"30s\"\n"
    );
    let s = Scenario::parse(&text, Path::new("failover.toml")).unwrap_or_else(|e| panic!("{e}"));
    let victim = cluster.master_of(&format!("{{conveyor:{name}}}:ready")).unwrap();
    let victim_port = cluster.nodes()[victim].port();
    let killer = std::thread::spawn(move || {
        let mut cluster = cluster;
        std::thread::sleep(Duration::from_millis(1500));
        cluster.kill(victim);
        let failed_over = std::time::Instant::now();
        cluster.wait_ready(Duration::from_secs(60)).expect("a replica takes over");
        (cluster, failed_over.elapsed())
    });
    let options = run_options();
    let running = run::run_scenario(&s, &redis, &options, never());
    // Only bounds a hang (5 s of producing, the failover, a drain of at most 30 s).
    let r = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the run ended within 120 s")
        .unwrap_or_else(|e| panic!("run failed: {e}"));
    let (cluster, took) = killer.join().unwrap();
    let c = &r.counts;
    eprintln!(
        "failover of master :{victim_port} took {took:?}; produced {} finished {} lost {} duplicates {} \
         unfinished {} enqueue errors {}",
        c.produced, c.finished, c.lost, c.duplicates, c.unfinished, c.enqueue_errors
    );
    assert!(!cluster.roles().unwrap().iter().any(|n| n.port == victim_port && n.master), "the killed master is out");
    // The producer kept going after the failover (5 s at 500/s, about 1.5 s before the kill).
    assert!(c.produced >= 1_500, "the producer did not carry on: {c:?}");
    assert_eq!(c.unfinished, 0, "the queue drained after the failover: {c:?}");
    // Only what was written around the crash can be gone: far less than a second of traffic.
    assert!(c.lost <= 500, "{c:?}");
    assert!(c.finished + c.lost == c.produced, "{c:?}");
}

/// What a user does by hand: a producer process and two `conveyor worker` processes on a
/// partitioned queue over a 3-master cluster with replicas, and a master SIGKILLed mid-run.
/// Workers in both processes serve every partition, the producer audits every job and merges the
/// latency histograms the worker processes publish, and produced is compared with finished.
#[test]
fn worker_processes_share_a_partitioned_queue_across_a_failover() {
    let mut cluster = RedisCluster::start(ClusterOptions { masters: 3, replicas_per_master: 1, args: Vec::new() })
        .unwrap_or_else(|e| panic!("tests need a real redis cluster: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let text = "lease = \"2s\"\npartitions = 6\n[producer]\nrate = 1000\nduration = \"4s\"\n\
                [workers]\ncount = 2\nbatch = 50\n[phases]\ndrain_timeout = \"30s\"\n";
    let (scenario, queue) = support::scenario_file(dir.path(), "partitioned.toml", "cluster-processes", text);
    let url = cluster.url();
    // Both serve before the producer starts, so both take part (and publish their statistics).
    let workers = [(); 2].map(|_| support::start_worker(support::worker(&url, &scenario, &["--metrics-addr", "off"])));
    let producer = support::producer(&url, &dir.path().join("results"), &scenario, &["--metrics-addr", "off"])
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let victim = cluster.master_of(&conveyor::queue::QueueKeys::partition("conveyor", &queue, 1, 6).ready()).unwrap();
    cluster.kill(victim);
    let out = producer.wait_with_output().unwrap();
    for w in workers {
        w.terminate();
    }
    let json = support::json_output(&out);
    let run = &json["cells"][0]["runs"][0];
    let counts = &run["counts"];
    eprintln!("worker processes across a failover: {counts}");
    assert!(run["setup"]["remote_worker_processes"].as_u64().unwrap() >= 2, "{}", run["setup"]);
    assert!(counts["produced"].as_u64().unwrap() >= 3000, "the producer did not carry on: {counts}");
    assert_eq!(counts["unfinished"], 0, "{counts}");
    // Asynchronous replication: only writes around the crash can be gone (counted, not hidden).
    assert!(counts["lost"].as_u64().unwrap() <= 500, "{counts}");
    assert_eq!(
        counts["finished"].as_u64().unwrap() + counts["lost"].as_u64().unwrap(),
        counts["produced"].as_u64().unwrap(),
        "{counts}"
    );
    assert!(run["latency_us"]["end_to_end"]["count"].as_u64().unwrap() > 0, "histograms merged from the workers");
}

/// The least-privilege ACL user of the README, plus `+cluster|slots` for the cluster client's slot
/// map, runs a scenario on a cluster; and the eviction check reads every master, refusing a
/// cluster where one master may evict keys.
#[actix_rt::test]
async fn a_least_privilege_user_runs_on_a_cluster_and_every_master_is_checked_for_eviction() {
    let cluster = cluster();
    let rule = format!("{} +cluster|slots", conveyor::runtime::acl::rule("conveyor"));
    for node in cluster.nodes() {
        let mut setuser = std::process::Command::new("redis-cli");
        setuser.args(["-p", &node.port().to_string(), "ACL", "SETUSER", "app", "on", ">app-secret"]);
        let out = setuser.args(rule.split(' ')).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    }
    let url = cluster.url().replace("redis+cluster://", "redis+cluster://app:app-secret@");
    let redis = Redis::connect(&url).await.unwrap();
    assert_eq!(
        conveyor::runtime::eviction::check(&redis, false).await.unwrap(),
        conveyor::runtime::eviction::Eviction::Safe
    );
    let mut s = Scenario::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quick.toml"))).unwrap();
    s.queue.name = Some(support::unique_name("cluster-acl"));
    s.queue.partitions = 3;
    s.producer.jobs = Some(1_000);
    s.phases.warmup = Duration::ZERO;
    let r = run::run_scenario(&s, &redis, &run_options(), never()).await.unwrap_or_else(|e| panic!("run failed: {e}"));
    assert_eq!((r.counts.produced, r.counts.finished, r.counts.lost), (1_000, 1_000, 0), "{:?}", r.counts);

    let last = cluster.nodes().last().unwrap().port().to_string();
    let set = std::process::Command::new("redis-cli")
        .args(["-p", &last, "CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        .output()
        .unwrap();
    assert!(set.status.success());
    let refused = conveyor::runtime::eviction::check(&redis, false).await.unwrap_err().to_string();
    assert!(refused.contains("allkeys-lru") && !refused.contains("app-secret"), "{refused}");
}

/// The compose file's `cluster` profile (no Docker engine here: its shape is what is checked).
#[test]
fn the_compose_cluster_profile_names_real_nodes_and_a_valid_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut y: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("docker-compose.yml")).unwrap()).unwrap();
    y.apply_merge().unwrap();
    let services = &y["services"];
    let in_profile =
        |name: &str| services[name]["profiles"].as_sequence().is_some_and(|p| p.iter().any(|v| v == "cluster"));
    let nodes: Vec<String> = (1..=6).map(|n| format!("redis-node-{n}")).collect();
    for name in nodes.iter().map(String::as_str).chain(["redis-cluster", "worker-cluster", "producer-cluster"]) {
        assert!(in_profile(name), "{name} is not in the cluster profile");
    }
    for name in &nodes {
        let command: Vec<&str> =
            services[name.as_str()]["command"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert!(command.join(" ").contains("--cluster-enabled yes --cluster-config-file nodes.conf"), "{name}");
        assert!(command.join(" ").contains("--maxmemory-policy noeviction"), "{name}");
    }
    for role in ["worker-cluster", "producer-cluster"] {
        let url = services[role]["environment"]["CONVEYOR_REDIS_URL"].as_str().unwrap();
        conveyor::cli::settings::check_redis_url(url).unwrap_or_else(|e| panic!("{role}: {e}"));
        let seeds = conveyor::connection::cluster_seed_urls(url).unwrap().unwrap();
        for seed in seeds {
            let host = seed.trim_start_matches("redis://").split(':').next().unwrap().to_owned();
            assert!(nodes.contains(&host), "{role}: seed {host} is not a node of the profile");
        }
        let scenario = services[role]["command"][1].as_str().unwrap();
        let path = scenario.strip_prefix("${CONVEYOR_SCENARIO:-").and_then(|s| s.strip_suffix('}')).unwrap();
        let s = Scenario::load(&root.join(path)).unwrap_or_else(|e| panic!("{role}: {e}"));
        assert!(s.queue.partitions > 1, "{role} runs a partitioned scenario by default");
    }
}

/// A master lost for good (no replica; `cluster-require-full-coverage no`, so the other masters
/// keep serving their slots): producers and workers of a partitioned queue pass its partitions
/// over and the rest of the queue keeps flowing.
#[tokio::test]
async fn the_partitions_of_a_lost_master_are_passed_over() {
    let args = vec!["--cluster-require-full-coverage".to_owned(), "no".to_owned()];
    let mut cluster = RedisCluster::start(ClusterOptions { masters: 3, replicas_per_master: 0, args })
        .unwrap_or_else(|e| panic!("tests need a real redis cluster: {e}"));
    let redis = Redis::connect(&cluster.url()).await.unwrap();
    let options = QueueOptions { partitions: 6, ..QueueOptions::default() };
    let queue = Queue::new(redis.clone(), &support::unique_name("cluster-lost"), options, clock::system());
    queue.ensure_group().await.unwrap();
    let victim = cluster.master_of(&queue.partition_keys()[1].ready()).unwrap();
    let lost: Vec<u16> = (0..6u16)
        .filter(|&p| cluster.master_of(&queue.partition_keys()[usize::from(p)].ready()).unwrap() == victim)
        .collect();
    cluster.kill(victim);

    let began = std::time::Instant::now();
    let mut sent = 0u64;
    let mut failures = 0;
    while sent < 300 {
        let batch: Vec<_> = (sent..sent + 10).map(job).collect();
        match queue.enqueue_batch(&batch).await {
            Ok(_) => sent += 10,
            Err(_) => failures += 1, // the producer's way: send the batch again
        }
        assert!(failures < 20, "enqueue keeps failing");
    }
    let mut conn = redis.blocking_connection().await.unwrap();
    let mut claimed = Vec::new();
    while claimed.len() < 300 {
        claimed.extend(
            queue.claim(&mut conn, "w", 100, Duration::from_millis(20)).await.expect("claims skip the lost partitions"),
        );
        assert!(began.elapsed() < Duration::from_secs(40), "only {} of 300 claimed", claimed.len());
    }
    assert!(claimed.iter().all(|c| !lost.contains(&c.partition)), "a job in a lost partition: {lost:?}");
    let done: Vec<_> = claimed.into_iter().map(|c| (c, Outcome::Completed)).collect();
    assert_eq!(queue.settle(&done).await.unwrap().completed, 300);
    eprintln!("lost partitions {lost:?}: 300 jobs in {:?} with {failures} failed enqueue call(s)", began.elapsed());
}
