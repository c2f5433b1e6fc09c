//! CPU time of other processes: a driver and everything it started (its worker processes and
//! theirs), read from `/proc/<pid>/stat`. A process's figure includes the children it has
//! reaped (`cutime`, `cstime`), so a worker that forks a process per job (RQ) is charged for
//! them too, and a difference of two readings stays right when children come and go.

use std::collections::{BTreeSet, HashMap};

/// Linux reports process times in USER_HZ ticks, 100 per second on every architecture.
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, reaped children included) of `roots` and all their descendants.
pub fn tree_cpu_seconds(roots: &[u32]) -> f64 {
    let table = process_table();
    tree(&table, roots).iter().filter_map(|pid| table.get(pid)).map(|p| p.cpu_ticks).sum::<f64>() / USER_HZ
}

/// Resident memory of `roots` and their descendants now (`VmRSS`), in bytes.
pub fn tree_rss_bytes(roots: &[u32]) -> u64 {
    tree(&process_table(), roots)
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            let kb = s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
            kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        })
        .sum::<u64>()
        * 1024
}

/// `roots` and every descendant alive now.
fn tree(table: &HashMap<u32, Proc>, roots: &[u32]) -> BTreeSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, p) in table {
        children.entry(p.ppid).or_default().push(pid);
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<u32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if seen.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    seen
}

/// What one `/proc/<pid>/stat` says.
struct Proc {
    ppid: u32,
    cpu_ticks: f64,
}

fn process_table() -> HashMap<u32, Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return HashMap::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?)))
        .collect()
}

/// Fields after the command name (which may hold spaces and parentheses): state, ppid, … utime
/// is field 14 of the line, so index 11 here.
fn parse_stat(line: &str) -> Option<Proc> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Some(Proc { ppid: f.get(1)?.parse().ok()?, cpu_ticks: tick(11) + tick(12) + tick(13) + tick(14) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_strange_name_parses() {
        let line = "42 (a b) c) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 3 2 20 0 1 0 100 0 0";
        let p = parse_stat(line).unwrap();
        assert_eq!(p.ppid, 7);
        assert_eq!(p.cpu_ticks, 305.0);
    }

    #[test]
    fn this_process_tree_has_used_some_cpu() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let mut spent = 0.0;
        for round in 0..1_000u64 {
            spent = tree_cpu_seconds(&[std::process::id()]);
            if spent > 0.0 {
                break;
            }
            // Spin more: the kernel counts in 10 ms ticks.
            std::hint::black_box((0..1_000_000u64).fold(round, |a, i| a.wrapping_mul(31).wrapping_add(i)));
        }
        assert!(spent > 0.0, "the test spun the CPU, so its process has ticks");
    }
}
