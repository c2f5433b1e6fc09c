//! Every Redis key conveyor uses is built here and nowhere else.
//!
//! All keys of one queue share the hash tag `{<prefix>:<queue>}`, so every script and pipeline
//! of a queue touches one cluster slot. Layout for prefix `conveyor`, queue `q`:
//!
//! | key                          | type        | holds                                            |
//! |------------------------------|-------------|--------------------------------------------------|
//! | `{conveyor:q}:ready`         | stream      | jobs waiting or running (payload inline); consumer group `workers` tracks who holds what |
//! | `{conveyor:q}:ready:high`    | stream      | high-priority jobs waiting or running (group `workers`); exists once such a job was enqueued |
//! | `{conveyor:q}:ready:low`     | stream      | low-priority jobs waiting or running (group `workers`); exists once such a job was enqueued |
//! | `{conveyor:q}:limit`         | hash        | the queue's rate limit: `rate` (jobs per second) and `burst` (jobs), set by an operator |
//! | `{conveyor:q}:limit:tat`     | string      | the rate limit's bucket: when it will be empty again (µs, Redis clock); expires once full |
//! | `{conveyor:q}:delayed`       | sorted set  | delayed jobs, scored by due time (ms)             |
//! | `{conveyor:q}:retrying`      | sorted set  | failed jobs waiting for their next attempt, scored by due time (ms) |
//! | `{conveyor:q}:dead`          | stream      | dead letters: the job and the reason              |
//! | `{conveyor:q}:audit:done`    | bitmap      | bit `seq` set when job `seq` completed or died (exact-delivery audit) |
//! | `{conveyor:q}:run`           | string      | number of the latest benchmark run on this queue  |
//! | `{conveyor:q}:stats:<run>`   | hash        | per worker process: its merged statistics for run `<run>` |
//! | `{conveyor:q}:unique:<key>`  | string      | id of the job enqueued with idempotency key `<key>`; expires after its time to live |
//! | `{conveyor:q}:job:<id>`      | hash        | a tracked job's status (state, attempt, worker, error, result, times); expires after its retention |
//! | `{conveyor:q}:events`        | stream      | completed / failed / dead / cancelled events of tracked jobs, capped |
//! | `{conveyor:q}:cancelled`     | sorted set  | ids of jobs asked to be cancelled, scored by when (ms); trimmed after a week |
//! | `{conveyor:q}:audit:b:<name>` | bitmap     | audited batch `<name>`: bit `seq` set when its job `seq` finished |
//! | `{conveyor:q}:audit:b:<name>:twice` | bitmap | audited batch `<name>`: bit `seq` set when its job `seq` finished again |
//! | `{conveyor:q}:audit:b:<name>:size` | string | audited batch `<name>`: how many sequence numbers were handed out |
//! | `{conveyor:q}:meta`          | hash        | what the queue is: its partitions (written by the first worker or client that creates it) |
//! | `{conveyor:q}:paused`        | string      | present while the queue is paused |
//! | `{conveyor:q}:workers`       | sorted set  | live worker processes by instance name, scored by when their heartbeat expires (ms) |
//! | `{conveyor:q}:worker:<instance>` | string  | a worker process's heartbeat record (JSON); expires unless renewed |
//! | `{conveyor:q}:cron`          | hash        | periodic entries by name: schedule, job type, missed-firing policy (JSON), written by each scheduler that runs them |
//! | `{conveyor:q}:cron:fired`    | sorted set  | periodic entries by name, scored by their latest firing handled: enqueued, or skipped as missed (ms) |
//! | `{conveyor:q}:rate:<minute>` | hash        | jobs completed (`c<second>`) and failed (`f<second>`) in each second of a minute; expires after 3 minutes |
//!
//! A queue of N partitions (`partitions = N`) has N such sets of keys: partition 0 keeps the tag
//! `{conveyor:q}` (so one partition is exactly the unpartitioned layout), partition p > 0 has the
//! tag `{conveyor:q:p:k}`, whose salt `k` is the smallest number that puts it on slot
//! `slot0 + p * 16384 / N` (slot0: partition 0's slot). The partitions sit evenly spaced around
//! the 16384 slots, so a cluster whose masters own equal contiguous slot ranges holds the same
//! number of partitions on each master when N is a multiple of the masters (plain `q:1`, `q:2`
//! tags do not spread: see `slot.rs`). The salts depend on N: change the number of partitions
//! only on an empty queue. Each partition has its own streams of every priority and its own
//! rate-limit bucket (each enforces its share of the limit). Queue names cannot contain `:`, so no queue's tag is another's
//! partition. The run counter and the published statistics (`run`, `stats:<run>`) live in
//! partition 0 only, and so do the periodic entries (`cron`, `cron:fired`).

use super::priority::Priority;
use super::slot;

/// The names of one queue's keys.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    /// `{prefix:queue}`: the hash tag every key of the queue starts with.
    tag: String,
    /// Name of the queue, kept for labels and messages.
    queue: String,
}

/// The consumer group every worker of a queue joins.
pub const GROUP: &str = "workers";

/// The set of every queue's name under `prefix` (a tag of its own, matched by the ACL's
/// `{prefix:*` key pattern).
pub fn queues_key(prefix: &str) -> String {
    format!("{{{prefix}:}}:queues")
}

impl QueueKeys {
    /// The keys of queue `queue` under `prefix` (partition 0).
    pub fn new(prefix: &str, queue: &str) -> Self {
        Self { tag: format!("{{{prefix}:{queue}}}"), queue: queue.to_owned() }
    }

    /// The keys of partition `p` of a queue of `n` partitions (partition 0 is
    /// [`QueueKeys::new`]).
    pub fn partition(prefix: &str, queue: &str, p: u16, n: u16) -> Self {
        if p == 0 {
            return Self::new(prefix, queue);
        }
        let base = format!("{prefix}:{queue}:{p}");
        let first = u32::from(slot::of_tag(&format!("{prefix}:{queue}")));
        let target = (first + u32::from(p) * u32::from(slot::SLOTS) / u32::from(n.max(1))) % u32::from(slot::SLOTS);
        let tag = match slot::salt_for(target as u16, |k| format!("{base}:{k}")) {
            Some(k) => format!("{{{base}:{k}}}"),
            None => format!("{{{base}}}"),
        };
        Self { tag, queue: queue.to_owned() }
    }

    /// The cluster slot every key of these keys hashes to.
    pub fn slot(&self) -> u16 {
        slot::of_tag(self.tag.trim_start_matches('{').trim_end_matches('}'))
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The stream of waiting and running jobs.
    pub fn ready(&self) -> String {
        format!("{}:ready", self.tag)
    }

    /// The stream of jobs of priority `priority`: [`QueueKeys::ready`] for normal jobs (the
    /// queue's stream of before priorities), `ready:high` and `ready:low` for the others.
    pub fn ready_at(&self, priority: Priority) -> String {
        match priority {
            Priority::Normal => self.ready(),
            other => format!("{}:ready:{}", self.tag, other.name()),
        }
    }

    /// The stream of every priority, highest first.
    pub fn ready_all(&self) -> [String; 3] {
        Priority::ALL.map(|p| self.ready_at(p))
    }

    /// The queue's rate limit (`rate`, `burst`), in partition 0.
    pub fn limit(&self) -> String {
        format!("{}:limit", self.tag)
    }

    /// This partition's rate-limit bucket.
    pub fn bucket(&self) -> String {
        format!("{}:limit:tat", self.tag)
    }

    /// The sorted set of delayed jobs.
    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.tag)
    }

    /// The sorted set of failed jobs waiting for their next attempt.
    pub fn retrying(&self) -> String {
        format!("{}:retrying", self.tag)
    }

    /// The stream of dead letters.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }

    /// The bitmap of finished audit sequence numbers.
    pub fn audit_done(&self) -> String {
        format!("{}:audit:done", self.tag)
    }

    /// The counter of benchmark runs on this queue.
    pub fn run(&self) -> String {
        format!("{}:run", self.tag)
    }

    /// The statistics worker processes published for benchmark run `run`.
    pub fn stats(&self, run: u32) -> String {
        format!("{}:stats:{run}", self.tag)
    }

    /// Holds the entry id of the job enqueued with idempotency key `key`. The user's key comes
    /// after the hash tag, so any bytes in it (even braces) keep it in the queue's slot.
    pub fn unique(&self, key: &str) -> String {
        format!("{}:unique:{key}", self.tag)
    }

    /// The status hash of tracked job `id` (any bytes after the tag keep it in the queue's slot).
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.tag)
    }

    /// What every [`QueueKeys::job`] key starts with (scripts that find a job's hash by its id).
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.tag)
    }

    /// The capped stream of tracked jobs' events.
    pub fn events(&self) -> String {
        format!("{}:events", self.tag)
    }

    /// Ids of jobs asked to be cancelled, scored by when.
    pub fn cancelled(&self) -> String {
        format!("{}:cancelled", self.tag)
    }

    /// The bitmap of audited batch `name`, or the queue's own audit (`None`).
    pub fn audit_of(&self, batch: Option<&str>) -> String {
        match batch {
            None => self.audit_done(),
            Some(name) => format!("{}:audit:b:{name}", self.tag),
        }
    }

    /// The bitmap of the jobs of audited batch `name` that finished more than once.
    pub fn audit_twice(&self, batch: &str) -> String {
        format!("{}:audit:b:{batch}:twice", self.tag)
    }

    /// How many sequence numbers audited batch `name` handed out.
    pub fn audit_size(&self, batch: &str) -> String {
        format!("{}:audit:b:{batch}:size", self.tag)
    }

    /// What the queue is (its partitions).
    pub fn meta(&self) -> String {
        format!("{}:meta", self.tag)
    }

    /// Present while the queue is paused.
    pub fn paused(&self) -> String {
        format!("{}:paused", self.tag)
    }

    /// Live worker processes, scored by when their heartbeat expires.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.tag)
    }

    /// The heartbeat record of worker process `instance`.
    pub fn worker(&self, instance: &str) -> String {
        format!("{}:worker:{instance}", self.tag)
    }

    /// The periodic entries schedulers run, by name.
    pub fn cron(&self) -> String {
        format!("{}:cron", self.tag)
    }

    /// The latest firing handled of each periodic entry, by name.
    pub fn cron_fired(&self) -> String {
        format!("{}:cron:fired", self.tag)
    }

    /// Completions and failures per second during minute `minute` (since the epoch).
    pub fn rate(&self, minute: u64) -> String {
        format!("{}:rate:{minute}", self.tag)
    }

    /// Pattern matching every key of the queue (for `reset`).
    pub fn pattern(&self) -> String {
        // The tag contains `{` `}` which are not glob characters; `[`, `*`, `?` in queue names
        // are rejected by scenario validation.
        format!("{}:*", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_hash_tag() {
        let k = QueueKeys::new("conveyor", "emails");
        for key in [
            k.ready(),
            k.ready_at(Priority::High),
            k.ready_at(Priority::Low),
            k.limit(),
            k.bucket(),
            k.delayed(),
            k.retrying(),
            k.dead(),
            k.audit_done(),
            k.run(),
            k.stats(3),
            k.unique("{x}"),
            k.job("{y}"),
            k.events(),
            k.cancelled(),
            k.audit_of(Some("{z}")),
            k.audit_twice("b"),
            k.audit_size("b"),
            k.meta(),
            k.paused(),
            k.workers(),
            k.worker("{w}"),
            k.rate(7),
        ] {
            assert!(key.starts_with("{conveyor:emails}:"), "{key}");
        }
    }

    #[test]
    fn normal_priority_is_the_stream_of_before() {
        let k = QueueKeys::new("conveyor", "q");
        assert_eq!(k.ready_at(Priority::Normal), "{conveyor:q}:ready");
        assert_eq!(k.ready_all(), ["{conveyor:q}:ready:high", "{conveyor:q}:ready", "{conveyor:q}:ready:low"]);
    }

    #[test]
    fn partitions_have_tags_of_their_own_and_partition_zero_is_the_plain_queue() {
        assert_eq!(QueueKeys::partition("conveyor", "q", 0, 6).ready(), QueueKeys::new("conveyor", "q").ready());
        let p2 = QueueKeys::partition("conveyor", "q", 2, 6);
        assert!(p2.ready().starts_with("{conveyor:q:2:") && p2.ready().ends_with("}:ready"), "{}", p2.ready());
        assert!(p2.audit_done().starts_with("{conveyor:q:2:"));
        assert_eq!(p2.queue(), "q");
        assert_eq!(p2.ready(), QueueKeys::partition("conveyor", "q", 2, 6).ready(), "the same in every process");
    }

    /// Masters of an evenly split cluster, as `redis-cli --cluster create` assigns slots.
    fn master_of(slot: u16, masters: u32) -> u32 {
        (u32::from(slot) * masters / 16384).min(masters - 1)
    }

    #[test]
    fn partitions_spread_evenly_over_the_masters() {
        for queue in ["q", "emails", "bench-cluster", "orders.eu"] {
            for (n, masters) in [(6u16, 3u32), (6, 2), (12, 3), (12, 4), (8, 2), (16, 4)] {
                let mut per_master = vec![0u32; masters as usize];
                for p in 0..n {
                    per_master[master_of(QueueKeys::partition("conveyor", queue, p, n).slot(), masters) as usize] += 1;
                }
                let even = u32::from(n) / masters;
                assert!(
                    per_master.iter().all(|&c| c.abs_diff(even) <= 1),
                    "{queue}: {n} partitions on {masters} masters: {per_master:?}"
                );
            }
        }
    }
}
