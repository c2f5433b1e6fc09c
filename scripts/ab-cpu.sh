#!/bin/bash
# A/B of two conveyor binaries on one scenario: throughput, whole-process CPU per job (user+sys
# from the kernel over every job produced, warm-up included), and what each job cost Redis (its
# process CPU from INFO cpu, its time in commands from INFO commandstats without EXEC, and the
# audit's BITFIELD alone), in alternating runs on one private redis-server (port 7399), so both
# see the same minutes of a shared machine.
#   scripts/ab-cpu.sh OLD_BINARY NEW_BINARY PAIRS SCENARIO.toml
set -eu
old=$1; new=$2; pairs=$3; sc=$4
redis_cpu() { redis-cli -p 7399 info cpu | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }
redis-server --port 7399 --save '' --appendonly no --daemonize yes >/dev/null 2>&1 || true; sleep 0.5
for i in $(seq 1 $pairs); do
  for b in old new; do
    bin=$old; [ $b = new ] && bin=$new
    redis-cli -p 7399 flushall >/dev/null
    redis-cli -p 7399 config resetstat >/dev/null
    before=$(redis_cpu)
    out=$( { CONVEYOR_REDIS_URL=redis://127.0.0.1:7399 python3 -c "
import resource,subprocess,sys
p=subprocess.run(sys.argv[1:],capture_output=True)
r=resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(p.stdout.decode())
sys.stderr.write('CPU %f\n'%(r.ru_utime+r.ru_stime))
" $bin run "$sc" --quiet --metrics-addr off --json; } 2>&1 )
    after=$(redis_cpu)
    stats=$(redis-cli -p 7399 info commandstats)
    commands=$(echo "$stats" | grep '^cmdstat_' | grep -v '^cmdstat_exec:' | sed 's/.*usec=\([0-9]*\),.*/\1/' | awk '{ s += $1 } END { print s }')
    bitfield=$(echo "$stats" | grep '^cmdstat_bitfield:' | sed 's/.*usec=\([0-9]*\),.*/\1/')
    echo "$out" | python3 -c "
import json,sys,re
t=sys.stdin.read(); cpu=float(re.search(r'CPU ([0-9.]+)',t).group(1)); j=json.loads(t[:t.rindex('}')+1])
m=j['cells'][0]['metrics']; g=lambda k: m[k]['value']; n=g('produced')
print('$b pair $i', round(g('throughput')), 'lost', int(g('lost')), 'dup', int(g('duplicates')), 'cpu/job us %.2f'%(cpu*1e6/n),
      'redis cpu/job us %.3f commands %.3f bitfield %.3f'%(($after-$before)*1e6/n, ${commands:-0}/n, ${bitfield:-0}/n))
"
  done
done
redis-cli -p 7399 shutdown nosave >/dev/null 2>&1 || true
