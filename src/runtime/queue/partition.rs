//! Partitions of one logical queue: how work is spread over them and how per-partition state
//! is carried through APIs that predate them.
//!
//! A queue with `partitions = N` is N independent sets of keys (see `keys.rs`), each under its
//! own hash tag. Producers spread batches round-robin ([`Rotation`]), or pin a job to the
//! partition of its key ([`of_key`]) when jobs of one key must keep their order. Workers start
//! each claim at the next partition in turn. The scheduler's reclaim cursor holds one stream id
//! per partition ([`split_cursor`], [`join_cursor`]).
//!
//! A partition whose master is down (killed, until a replica takes over) fails every request
//! after the cluster client's retries. [`Health`] remembers such a failure for a while, so
//! producers send their batches to the other partitions and claims look there first: the rest
//! of the queue keeps flowing through a failover instead of stalling on the lost master.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a partition that failed a request is passed over before it is tried again.
pub const COOLDOWN: Duration = Duration::from_secs(3);

/// Most partitions a queue may have: each is a stream, a consumer group and a few keys, a
/// worker may poll each one when the queue runs dry, and naming them takes a search for a salt
/// per partition.
pub const MAX_PARTITIONS: u16 = 256;

/// A round-robin counter shared by the clones of a queue in one process.
#[derive(Debug, Clone, Default)]
pub struct Rotation(Arc<AtomicUsize>);

impl Rotation {
    /// The next partition of `n`, in turn.
    pub fn next(&self, n: usize) -> usize {
        if n <= 1 { 0 } else { self.0.fetch_add(1, Ordering::Relaxed) % n }
    }
}

/// Which partitions failed a request recently, shared by the clones of a queue in one process.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<BTreeMap<usize, Instant>>>);

impl Health {
    /// Partition `p` just failed a request: pass it over for [`COOLDOWN`].
    pub fn failed(&self, p: usize) {
        self.0.lock().expect("health lock").insert(p, Instant::now() + COOLDOWN);
    }

    /// Partition `p` answered: use it again at once.
    pub fn answered(&self, p: usize) {
        let mut failed = self.0.lock().expect("health lock");
        if !failed.is_empty() {
            failed.remove(&p);
        }
    }

    /// True unless `p` failed within the cooldown.
    pub fn usable(&self, p: usize) -> bool {
        self.0.lock().expect("health lock").get(&p).is_none_or(|until| Instant::now() >= *until)
    }

    /// The first usable partition of `n` from `start` on, in turn; `start` when none is.
    pub fn first_usable(&self, start: usize, n: usize) -> usize {
        (0..n).map(|i| (start + i) % n).find(|&p| self.usable(p)).unwrap_or(start)
    }
}

/// The partition (of `n`) that `key` belongs to: FNV-1a of the key's bytes, so every process
/// and every version maps a key to the same partition.
pub fn of_key(key: &str, n: usize) -> u16 {
    if n <= 1 {
        return 0;
    }
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % n as u64) as u16
}

/// Items grouped by partition, in partition order, keeping their order within a partition.
pub fn group_by_partition<T>(items: &[T], partition: impl Fn(&T) -> u16) -> BTreeMap<u16, Vec<&T>> {
    let mut groups: BTreeMap<u16, Vec<&T>> = BTreeMap::new();
    for item in items {
        groups.entry(partition(item)).or_default().push(item);
    }
    groups
}

/// One cursor per partition from a reclaim cursor (`"0-0"` for partitions it does not name).
pub fn split_cursor(cursor: &str, n: usize) -> Vec<String> {
    let mut parts: Vec<String> = cursor.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect();
    parts.resize(n.max(1), "0-0".to_owned());
    parts
}

/// The reclaim cursor for per-partition cursors (just the one cursor for one partition).
pub fn join_cursor<'a>(cursors: impl Iterator<Item = &'a str>) -> String {
    cursors.collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_visits_every_partition_in_turn() {
        let r = Rotation::default();
        let seen: Vec<usize> = (0..6).map(|_| r.next(3)).collect();
        assert_eq!(seen, [0, 1, 2, 0, 1, 2]);
        assert_eq!(r.clone().next(1), 0);
    }

    #[test]
    fn keys_map_to_stable_partitions_spread_over_all() {
        assert_eq!(of_key("order-17", 1), 0);
        assert_eq!(of_key("order-17", 8), of_key("order-17", 8));
        let mut hit = [0u32; 4];
        for i in 0..400 {
            hit[usize::from(of_key(&format!("k{i}"), 4))] += 1;
        }
        assert!(hit.iter().all(|&h| h > 50), "{hit:?}");
    }

    #[test]
    fn cursors_round_trip_and_default_to_the_start() {
        assert_eq!(split_cursor("0-0", 3), ["0-0", "0-0", "0-0"]);
        assert_eq!(split_cursor("5-1,7-0", 2), ["5-1", "7-0"]);
        assert_eq!(join_cursor(["5-1", "0-0"].into_iter()), "5-1,0-0");
        assert_eq!(split_cursor(&join_cursor(["12-3"].into_iter()), 1), ["12-3"]);
    }

    #[test]
    fn a_failed_partition_is_passed_over_until_it_answers() {
        let h = Health::default();
        assert_eq!(h.first_usable(1, 3), 1);
        h.failed(1);
        assert!(!h.usable(1));
        assert_eq!(h.first_usable(1, 3), 2);
        h.failed(2);
        h.failed(0);
        assert_eq!(h.first_usable(1, 3), 1, "none usable: the one asked for");
        h.answered(2);
        assert_eq!(h.first_usable(1, 3), 2);
    }

    #[test]
    fn grouping_keeps_order_within_a_partition() {
        let items = [(1u16, 'a'), (0, 'b'), (1, 'c')];
        let groups = group_by_partition(&items, |i| i.0);
        assert_eq!(groups[&0], [&(0, 'b')]);
        assert_eq!(groups[&1], [&(1, 'a'), &(1, 'c')]);
    }
}
