//! Property tests, bounded in time for CI: the scenario parser, the job decoder and the claim →
//! settle → reclaim path never panic on arbitrary input. Arbitrary scenario text is either noise
//! or lines built from the scenario's own vocabulary (so the fuzzer reaches validation, not only
//! the TOML tokenizer); arbitrary job bytes are noise or mutations of real encoded jobs, and the
//! queue path runs them through a real Redis, where every entry must end settled or dead.

use crate::support;
use conveyor::bench::scenario::Scenario;
use conveyor::queue::{Envelope, Outcome, QueueOptions};
use proptest::prelude::*;
use std::path::Path;
use std::time::Duration;

/// Cases per property: enough to find shallow panics, small enough for a CI budget of seconds.
/// `PROPTEST_CASES=200000 cargo test fuzz` fuzzes longer.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

const SECTIONS: &[&str] = &[
    "",
    "[queue]",
    "[producer]",
    "[workers]",
    "[[jobs]]",
    "[phases]",
    "[matrix]",
    "[targets]",
    "[backlog]",
    "[[events]]",
    "[probes]",
    "[queue_ops]",
    "[producer.rate]",
    "[producer.rate.ramp]",
];
const KEYS: &[&str] = &[
    "name",
    "description",
    "ceiling",
    "mode",
    "repeats",
    "lease",
    "max_attempts",
    "max_reclaims",
    "backoff_base",
    "backoff_max",
    "partitions",
    "prefix",
    "count",
    "rate",
    "batch",
    "jobs",
    "duration",
    "concurrency",
    "block",
    "kind",
    "probability",
    "weight",
    "payload_bytes",
    "warmup",
    "drain_timeout",
    "idle",
    "workers",
    "producers",
    "backlog",
    "at",
    "pause_workers",
    "measured",
    "capacity_jobs",
    "samples",
    "from",
    "to",
    "over",
    "steps",
    "\"end_to_end.p99\"",
    "throughput",
    "\"throughput@workers=1\"",
    "lost",
    "ramp",
];
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "10000",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "1e309",
    "-0.0",
    "nan",
    "inf",
    "-inf",
    "0.5",
    "1.5",
    "true",
    "false",
    "\"\"",
    "\"max\"",
    "\"50% capacity\"",
    "\"150% capacity\"",
    "\"0% capacity\"",
    "\"10ms\"",
    "\"0s\"",
    "\"-1s\"",
    "\"1h\"",
    "\"99999999999999999999s\"",
    "\"noop\"",
    "\"sleep\"",
    "\"cpu\"",
    "\"fail\"",
    "\"panic\"",
    "\"run\"",
    "\"queue-ops\"",
    "\"ceiling\"",
    "\"< 50ms\"",
    "\"> 500\"",
    "\"= 0\"",
    "\"<\"",
    "\"< -1ms\"",
    "[]",
    "[0]",
    "[1, 5]",
    "[\"max\"]",
    "[\"10% capacity\", 5]",
    "{ from = 1, to = 5, over = \"1s\" }",
    "{ ramp = { from = 1, to = 0, over = \"1s\" } }",
    "{ steps = [{ rate = 5, for = \"1s\" }] }",
    "{ steps = [] }",
    "\"a b\"",
    "\"\\u0000\"",
    "{}",
];

/// A scenario assembled from real section names, keys and values, in any order.
fn vocabulary_scenario() -> impl Strategy<Value = String> {
    let line = (0..SECTIONS.len(), 0..KEYS.len(), 0..VALUES.len(), any::<bool>());
    prop::collection::vec(line, 0..14).prop_map(|lines| {
        let mut text = String::new();
        for (section, key, value, new_section) in lines {
            if new_section {
                text.push_str(SECTIONS[section]);
                text.push('\n');
            }
            text.push_str(&format!("{} = {}\n", KEYS[key], VALUES[value]));
        }
        text
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn scenario_parse_never_panics_on_noise(text in any::<String>()) {
        let _ = Scenario::parse(&text, Path::new("fuzz.toml"));
    }

    #[test]
    fn scenario_parse_never_panics_on_scenario_like_text(text in vocabulary_scenario()) {
        if let Err(e) = Scenario::parse(&text, Path::new("fuzz.toml")) {
            // Whatever is wrong, the message names the file.
            prop_assert!(e.to_string().contains("fuzz.toml"), "{e}");
        }
    }

    #[test]
    fn unpacking_never_panics_on_noise(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Envelope::unpack(&bytes);
    }

    #[test]
    fn a_mutated_packed_job_decodes_to_one_that_packs_again(
        seq in any::<u64>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = job(seq).pack();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(decoded) = Envelope::unpack(&bytes) {
            prop_assert_eq!(Envelope::unpack(&decoded.pack()).unwrap(), decoded, "what decodes round-trips");
        }
    }

    #[test]
    fn decoding_fields_never_panics_and_keeps_them_on_failure(fields in fields()) {
        let mut copy = fields.clone();
        if Envelope::from_fields(&mut copy).is_err() {
            prop_assert_eq!(copy, fields, "a failed decode leaves the fields as they were");
        }
    }
}

/// A benchmark job, audited as `seq` when that fits the audit (its low 32 bits otherwise).
fn job(seq: u64) -> Envelope {
    support::job(seq % (1 << 32))
}

/// An entry's fields: a real job's with some values changed, dropped or added, or noise.
fn fields() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let names = prop::sample::select(vec!["v", "n", "d", "t", "s", "h", "a", "ma", "to", "id", "r", "j", "zz"]);
    let noise = prop::collection::vec(
        (names.clone().prop_map(|n| n.as_bytes().to_vec()), prop::collection::vec(any::<u8>(), 0..12)),
        0..8,
    );
    let value = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        Just(b"2".to_vec()),
        Just(b"4294967296".to_vec()),
    ];
    let mutated = (any::<u64>(), prop::collection::vec((any::<prop::sample::Index>(), value), 0..4), any::<bool>())
        .prop_map(|(seq, edits, drop_one)| {
            let packed = job(seq).pack();
            let mut fields = conveyor::queue::envelope::unpack_fields(&packed).unwrap();
            for (at, value) in edits {
                let i = at.index(fields.len());
                fields[i].1 = value;
            }
            if drop_one && !fields.is_empty() {
                fields.remove(seq as usize % fields.len());
            }
            fields
        });
    prop_oneof![noise, mutated]
}

/// Arbitrary entries go through claim → settle, and through claim → lease expiry → reclaim:
/// no call fails or panics, and every entry ends settled or in the dead letters.
#[test]
fn the_claim_settle_and_reclaim_path_survives_arbitrary_entries() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(config(48));
    let entries = prop::collection::vec(fields(), 1..8);
    runner
        .run(&(entries, any::<bool>()), |(entries, abandon)| {
            runtime.block_on(async {
                let options = QueueOptions {
                    lease: Duration::from_millis(1),
                    max_reclaims: if abandon { 0 } else { 5 },
                    ..QueueOptions::default()
                };
                let queue = support::queue("fuzz", options).await;
                let ready = queue.keys().ready();
                for fields in &entries {
                    let mut add = redis::cmd("XADD");
                    add.arg(&ready).arg("*");
                    if fields.is_empty() {
                        add.arg("x").arg(""); // an entry needs a field
                    }
                    for (k, v) in fields {
                        add.arg(k).arg(v);
                    }
                    let _: String = queue.redis().with_conn(async |c| add.query_async(c).await).await.unwrap();
                }
                let mut conn = queue.redis().blocking_connection().await.unwrap();
                let claimed = queue.claim(&mut conn, "fuzzer", 100, Duration::from_millis(10)).await.unwrap();
                prop_assert_eq!(claimed.len(), entries.len());
                if abandon {
                    // The worker "dies": its lease expires and reclaim must cope with whatever bytes
                    // the entries hold (max_reclaims 0 sends them to the dead letters).
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let r = queue.reclaim("0-0", 100).await;
                    prop_assert!(r.is_ok(), "reclaim failed: {:?}", r);
                    prop_assert_eq!(r.unwrap().dead, entries.len() as u64);
                } else {
                    let batch: Vec<_> = claimed.into_iter().map(|c| (c, Outcome::Completed)).collect();
                    let s = queue.settle(&batch).await;
                    prop_assert!(s.is_ok(), "settle failed: {:?}", s);
                }
                let depth = queue.depth().await.unwrap();
                prop_assert_eq!(depth.waiting + depth.in_flight, 0, "{:?}", depth);
                queue.reset().await.unwrap();
                Ok(())
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
