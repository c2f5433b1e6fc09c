//! What a run cost Redis, read from Redis itself before and after: the CPU of its process
//! (`INFO cpu`: every command, the event loop and the network stack) and the time spent in
//! commands (`INFO commandstats`, `EXEC` left out: the commands it runs are counted on their
//! own), with the number of `XADD` calls, so a run can say what each job cost Redis and how
//! many jobs each stream entry carried.

use crate::runtime::connection::Redis;
use crate::runtime::error::Result;

/// Redis' counters at one moment (every master's, summed, on a cluster).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RedisCpu {
    /// `used_cpu_sys + used_cpu_user`, in µs.
    pub process_us: f64,
    /// Sum of `usec` over every command but `EXEC`.
    pub commands_us: f64,
    /// `XADD` calls.
    pub xadd_calls: u64,
}

/// What Redis spent between two readings, per job of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct RedisCost {
    /// Redis process CPU per job, µs.
    pub process_us_per_job: f64,
    /// Time in commands per job, µs (what `INFO commandstats` shows).
    pub commands_us_per_job: f64,
    /// Jobs per `XADD`: how many jobs a stream entry carried, on average.
    pub jobs_per_entry: f64,
}

impl RedisCpu {
    /// Reads the counters now.
    pub async fn read(redis: &Redis) -> Result<Self> {
        let mut total = Self::default();
        for text in redis.info_of_masters("cpu").await? {
            total.process_us += field(&text, "used_cpu_sys") * 1e6 + field(&text, "used_cpu_user") * 1e6;
        }
        for text in redis.info_of_masters("commandstats").await? {
            let one = parse_commandstats(&text);
            total.commands_us += one.commands_us;
            total.xadd_calls += one.xadd_calls;
        }
        Ok(total)
    }

    /// What was spent from `self` to `later`, over `jobs` jobs.
    pub fn cost_until(&self, later: &RedisCpu, jobs: u64) -> RedisCost {
        let jobs_f = jobs.max(1) as f64;
        let entries = later.xadd_calls.saturating_sub(self.xadd_calls);
        RedisCost {
            process_us_per_job: (later.process_us - self.process_us).max(0.0) / jobs_f,
            commands_us_per_job: (later.commands_us - self.commands_us).max(0.0) / jobs_f,
            jobs_per_entry: if entries > 0 { jobs as f64 / entries as f64 } else { 0.0 },
        }
    }
}

/// A number field (`name:value`) of an `INFO` text; 0 when absent.
fn field(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `cmdstat_<name>:calls=N,usec=N,...` lines: command time without `EXEC`, and `XADD` calls.
fn parse_commandstats(text: &str) -> RedisCpu {
    let mut out = RedisCpu::default();
    for line in text.lines() {
        let Some((name, stats)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else { continue };
        let stat = |key: &str| {
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if name != "exec" {
            out.commands_us += stat("usec").unwrap_or(0.0);
        }
        if name == "xadd" {
            out.xadd_calls += stat("calls").unwrap_or(0.0) as u64;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_time_leaves_exec_out_and_counts_xadd_calls() {
        let text = "# Commandstats\r\ncmdstat_exec:calls=10,usec=500,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_xadd:calls=40,usec=200,usec_per_call=5.00\r\ncmdstat_xack:calls=10,usec=30,usec_per_call=3.00\r\n";
        let c = parse_commandstats(text);
        assert_eq!((c.commands_us, c.xadd_calls), (230.0, 40));
        assert_eq!(field("# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:0.25\r\n", "used_cpu_user"), 0.25);
        let before = RedisCpu { process_us: 1e6, commands_us: 100.0, xadd_calls: 10 };
        let after = RedisCpu { process_us: 1.5e6, commands_us: 300.0, xadd_calls: 20 };
        let cost = before.cost_until(&after, 1000);
        assert_eq!((cost.process_us_per_job, cost.commands_us_per_job, cost.jobs_per_entry), (500.0, 0.2, 100.0));
    }
}
