#!/bin/bash
# A/B of two conveyor binaries on one scenario: throughput and whole-process CPU per job (user+sys
# from the kernel over every job produced, warm-up included), in alternating runs on one private
# redis-server (port 7399), so both see the same minutes of a shared machine.
#   scripts/ab-cpu.sh OLD_BINARY NEW_BINARY PAIRS SCENARIO.toml
set -eu
old=$1; new=$2; pairs=$3; sc=$4
redis-server --port 7399 --save '' --appendonly no --daemonize yes >/dev/null 2>&1 || true; sleep 0.5
for i in $(seq 1 $pairs); do
  for b in old new; do
    bin=$old; [ $b = new ] && bin=$new
    redis-cli -p 7399 flushall >/dev/null
    out=$( { CONVEYOR_REDIS_URL=redis://127.0.0.1:7399 python3 -c "
import resource,subprocess,sys
p=subprocess.run(sys.argv[1:],capture_output=True)
r=resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(p.stdout.decode())
sys.stderr.write('CPU %f\n'%(r.ru_utime+r.ru_stime))
" $bin run "$sc" --quiet --metrics-addr off --json; } 2>&1 )
    echo "$out" | python3 -c "
import json,sys,re
t=sys.stdin.read(); cpu=float(re.search(r'CPU ([0-9.]+)',t).group(1)); j=json.loads(t[:t.rindex('}')+1])
m=j['cells'][0]['metrics']; g=lambda k: m[k]['value']
print('$b pair $i', round(g('throughput')), 'lost', int(g('lost')), 'dup', int(g('duplicates')), 'cpu/job us %.2f'%(cpu*1e6/g('produced')))
"
  done
done
redis-cli -p 7399 shutdown nosave >/dev/null 2>&1 || true
