#!/usr/bin/env bash
# CPU per webhook of each process, and PostgreSQL's WAL bytes per webhook, against a running
# stack (`bench/stack.sh`) or the baseline (`bench/naive.sh` leaves none running; start
# `target/release/naive-path` by hand for this): user + system time from /proc/<pid>/stat
# before and after one wrk run of new webhooks, divided by the webhooks accepted, and
# pg_current_wal_lsn() before and after. PostgreSQL's backends and workers are summed.
# The processes are the ones listening on the stack's ports (see load.sh), not every
# process of the same name on the machine.
#
#   bench/cpu.sh
#   URL=http://127.0.0.1:8100 CONNECTIONS=64 DURATION=10s bench/cpu.sh
#   BENCH_POSTGRES=postgres://postgres@127.0.0.1:55432 REDIS_URL=redis://127.0.0.1:56379 bench/cpu.sh
set -euo pipefail
cd "$(dirname "$0")"

source load.sh
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
require_wrk_and_stack cpu.sh

before=$(cpu_snapshot)
wal_before=$(wal_lsn)
out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency -s webhooks.lua "$URL")
after=$(cpu_snapshot)
wal_after=$(wal_lsn)
result=$(grep '^RESULT' <<<"$out")
echo "$result"
accepted=$(sed -E 's/.*accepted_202=([0-9]+).*/\1/' <<<"$result")
cpu_per_unit "$before" "$after" "$accepted" webhook
wal=$(wal_bytes_between "$wal_before" "$wal_after")
echo "WAL             $(( wal / (accepted > 0 ? accepted : 1) )) bytes per webhook ($wal bytes, load $(cut -d' ' -f1-3 /proc/loadavg))"
