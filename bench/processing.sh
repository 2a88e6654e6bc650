#!/usr/bin/env bash
# Processing at scale against a running stack: COUNT transactions at once, the time until
# every one is PROCESSED, and the processor's peak resident memory while they wait out
# their delay. Start the stack with the delay and in-flight bound to test, e.g.
#
#   PROCESSING_DELAY=30s MAX_IN_FLIGHT=100000 bench/stack.sh
#   COUNT=100000 bench/processing.sh               # MODE=backlog (default)
#   COUNT=30000 MODE=ingest bench/processing.sh
#
# MODE=backlog stores COUNT rows straight into PostgreSQL and XADDs their entries in one
# pipeline, as a backlog after an outage would look: it measures processing alone.
# MODE=ingest sends them through the gateway with wrk (unique ids), ingest and processing
# together.
#
# In backlog mode it also prints the CPU each process of the stack spent per processed
# transaction (claim, the delay's timers, finish, attempt row, XACK/XDEL) and PostgreSQL's
# WAL bytes per transaction, from the moment the entries are added until the last is
# PROCESSED (the INSERT of the rows comes before and does not count; Redis's figure
# includes the XADDs). The processor is the process listening on GRPC_PORT (load.sh).
# BENCH_POSTGRES, BENCH_DATABASE and REDIS_URL as for bench/stack.sh.
set -euo pipefail
cd "$(dirname "$0")"

source load.sh
COUNT=${COUNT:-100000}
MODE=${MODE:-backlog}
STREAM_KEY=${STREAM_KEY:-$BENCH_DATABASE}
POLL_INTERVAL=${POLL_INTERVAL:-1}
ulimit -n 65536 2>/dev/null || true

pid=$(listener_pid "$GRPC_PORT")
[ -n "$pid" ] || { echo "processing.sh: no processor listens on port $GRPC_PORT" >&2; exit 1; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
sql() { psql "$DATABASE_URL" -qtAXc "$1"; }
count() { sql "SELECT count(*) FROM transactions WHERE status = '$1' AND transaction_id LIKE 'bench_%'"; }
# Cheap enough to ask every second without taking a core from the run: the status index
# finds the first unfinished row, where a count would scan every row each time.
unfinished() { sql "SELECT EXISTS (SELECT 1 FROM transactions WHERE status = 'PROCESSING' AND transaction_id LIKE 'bench_%')"; }
peak=0
sample() { local now; now=$(rss); [ "$now" -gt "$peak" ] && peak=$now; return 0; }

sql "DELETE FROM processing_attempts WHERE transaction_id LIKE 'bench_%'; DELETE FROM transactions WHERE transaction_id LIKE 'bench_%'" >/dev/null
echo "processor pid $pid, idle RSS $(( $(rss) / 1024 )) MiB, mode $MODE"

case $MODE in
backlog)
  # republish_at far ahead: the outbox must not add entries of its own during the run.
  sql "INSERT INTO transactions (transaction_id, source_account, destination_account, amount, currency, republish_at)
       SELECT 'bench_' || g, 'acc_bench_src', 'acc_bench_dst', 1500.00, 'INR', now() + interval '1 hour'
         FROM generate_series(1, $COUNT) AS g" >/dev/null
  cpu_before=$(cpu_snapshot)
  wal_before=$(wal_lsn)
  started=$(date +%s.%N)
  seq 1 "$COUNT" | awk -v key="$STREAM_KEY" '{ printf "XADD %s * transaction_id bench_%d\r\n", key, $1 }' |
    redis-cli -u "$REDIS_URL" --pipe >/dev/null
  total=$COUNT
  ;;
ingest)
  started=$(date +%s.%N)
  wrk -t2 -c64 -d600s --timeout 10s -s webhooks.lua "$URL" -- >/dev/null &
  wrk_pid=$!
  trap 'kill "$wrk_pid" 2>/dev/null || true' EXIT
  while [ "$(sql "SELECT count(*) FROM transactions WHERE transaction_id LIKE 'bench_%'")" -lt "$COUNT" ]; do
    sample
    sleep 1
  done
  kill "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" 2>/dev/null || true
  total=$(sql "SELECT count(*) FROM transactions WHERE transaction_id LIKE 'bench_%'")
  echo "ingested $total in $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s"
  ;;
*) echo "processing.sh: MODE is backlog or ingest" >&2; exit 1 ;;
esac

while [ "$(unfinished)" = t ]; do
  sample
  sleep "$POLL_INTERVAL"
done
finished=$(date +%s.%N)
if [ "$MODE" = backlog ]; then
  cpu_after=$(cpu_snapshot)
  wal_after=$(wal_lsn)
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  cpu_per_unit "$cpu_before" "$cpu_after" "$total" transaction
  wal=$(wal_bytes_between "$wal_before" "$wal_after")
  echo "WAL             $(( wal / total )) bytes per transaction ($wal bytes)"
fi
# From the attempts: how long claiming took (first to last start) and the drain (first to
# last finish), each a rate over the whole COUNT.
read -r claim_s drain_s < <(sql "SELECT round(extract(epoch FROM max(started_at) - min(started_at))::numeric, 1),
                                       round(extract(epoch FROM max(finished_at) - min(finished_at))::numeric, 1)
                                  FROM processing_attempts WHERE transaction_id LIKE 'bench_%'" | tr '|' ' ')
echo "RESULT transactions=$total all_processed_after_s=$(python3 -c "print(round($finished - $started, 1))") claims_spread_s=$claim_s finishes_spread_s=$drain_s peak_rss_mib=$(( peak / 1024 )) failed=$(count FAILED)"
