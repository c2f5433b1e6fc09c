#!/usr/bin/env bash
# Throughput of one partitioned queue (scenarios/cluster.toml: 6 partitions, 8 workers, noop
# jobs, closed loop, producing for DURATION after a 1 s warm-up) on a local Redis Cluster of 1,
# 2 and 3 masters, plus one plain redis-server for reference. Prints jobs/s and jobs per
# CPU-second, where CPU counts conveyor AND every redis-server (user + system time, from /proc):
# on a machine with few cores the masters and the runtime compete for the same cores, so jobs/s
# alone hides where the time went.
#
#   cargo build --release && scripts/cluster-scaling.sh [DURATION (default 5s)] [REPEATS (default 1)]
#
# Needs redis-server and redis-cli on PATH, python3 for the arithmetic.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5s}
REPEATS=${2:-1}
BIN=target/release
WORK=$(mktemp -d)
cluster=""
single=""
# Stop whatever this script started, also when it fails half-way.
trap 'for p in $cluster $single; do kill -TERM "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
TICKS=$(getconf CLK_TCK)

cpu_of() { # total user+system seconds of the given pids (0 for gone ones)
  local sum=0
  for pid in "$@"; do
    if [[ -r /proc/$pid/stat ]]; then
      sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    fi
  done
  python3 -c "print($sum / $TICKS)"
}

measure() { # label url redis-pids...
  local label=$1 url=$2
  shift 2
  for rep in $(seq 1 "$REPEATS"); do
    local before after out per_before per_after
    before=$(cpu_of "$@")
    per_before=$(for pid in "$@"; do cpu_of "$pid"; done | tr '\n' ' ')
    out="$WORK/run.json"
    /usr/bin/time -f "%U %S" -o "$WORK/time" \
      "$BIN/conveyor" run scenarios/cluster.toml --duration "$DURATION" --redis-url "$url" --json --quiet \
      --metrics-addr off --results "$WORK/results" >"$out" 2>"$WORK/err" || true
    after=$(cpu_of "$@")
    per_after=$(for pid in "$@"; do cpu_of "$pid"; done | tr '\n' ' ')
    python3 - "$label" "$out" "$WORK/time" "$before" "$after" "$per_before" "$per_after" <<'EOF'
import json, sys
label, out, timef, before, after, per_before, per_after = sys.argv[1:]
per_node = [b - a for a, b in zip(map(float, per_before.split()), map(float, per_after.split()))]
try:
    r = json.load(open(out))
except Exception as e:
    print(f"{label:<12} run failed: {e}; see stderr")
    sys.exit(0)
r = r["cells"][0]["runs"][-1]
user, system = map(float, open(timef).read().split()[-2:])
conveyor_cpu = user + system
redis_cpu = float(after) - float(before)
jobs = r["counts"]["finished"]  # warm-up included, as the CPU time is
jps = r["throughput"]["jobs_per_second"]
total = conveyor_cpu + redis_cpu
print(f"{label:<12} {jps:>8.0f} jobs/s  {jobs:>8} jobs  lost {r['counts']['lost']}  "
      f"conveyor {conveyor_cpu:5.2f} CPU-s ({conveyor_cpu * 1e6 / jobs:4.1f} us/job)  "
      f"redis {redis_cpu:5.2f} CPU-s ({redis_cpu * 1e6 / jobs:4.1f} us/job)  "
      f"{jobs / total:>7.0f} jobs per CPU-second (all processes); CPU-s per node "
      + " ".join(f"{c:.2f}" for c in per_node))
EOF
  done
}


for masters in 1 2 3; do
  "$BIN/local-cluster" --masters "$masters" --url-file "$WORK/url" >"$WORK/nodes" 2>&1 &
  cluster=$!
  for _ in $(seq 1 300); do [[ -s $WORK/url ]] && break; sleep 0.1; done
  url=$(cat "$WORK/url")
  mapfile -t pids < <(awk '/^node/ {print $4}' "$WORK/nodes")
  measure "${masters} master(s)" "$url" "${pids[@]}"
  kill -TERM "$cluster"
  wait "$cluster" || true
  cluster=""
  rm -f "$WORK/url"
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --logfile "$WORK/single.log" &
single=$!
for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
measure "plain redis" "redis://127.0.0.1:$port" "$single"
kill "$single"
wait "$single" 2>/dev/null || true
single=""
