#!/usr/bin/env bash
# CPU per webhook of each process, against a running stack (`bench/stack.sh`) or the
# baseline (`bench/naive.sh` leaves none running; start `target/release/naive-path` by
# hand for this): user + system time from /proc/<pid>/stat before and after one wrk run
# of new webhooks, divided by the webhooks accepted. PostgreSQL's backends are summed.
#
#   bench/cpu.sh
#   URL=http://127.0.0.1:8100 CONNECTIONS=64 DURATION=10s bench/cpu.sh
set -euo pipefail
cd "$(dirname "$0")"

source load.sh
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
require_wrk_and_stack cpu.sh

ticks_per_s=$(getconf CLK_TCK)
snapshot() { # "pid name ticks" for the processes that take part
  for pid in $(pgrep -x 'ingest-gateway|processor|naive-path|redis-server|postgres|wrk'); do
    [ -r "/proc/$pid/stat" ] && echo "$pid $(cat "/proc/$pid/comm") $(awk '{ print $14 + $15 }' "/proc/$pid/stat")"
  done
}

before=$(snapshot)
out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency -s webhooks.lua "$URL")
after=$(snapshot)
result=$(grep '^RESULT' <<<"$out")
echo "$result"
accepted=$(sed -E 's/.*accepted_202=([0-9]+).*/\1/' <<<"$result")
# Per process: its ticks now less its ticks before (none if it started during the run).
# wrk has exited by now and a backend that exited during the run is gone: neither counts.
awk -v n="$accepted" -v hz="$ticks_per_s" '
  FNR == NR { before[$1] = $3; next }
  { used[$2] += $3 - ($1 in before ? before[$1] : 0) }
  END { for (name in used) printf "%-15s %6.1f µs per webhook\n", name, used[name] / hz * 1e6 / (n > 0 ? n : 1) }
' <(echo "$before") <(echo "$after") | sort
