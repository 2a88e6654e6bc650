#!/usr/bin/env bash
# Processing at scale against a running stack: ingests COUNT webhooks as fast as the
# gateway takes them (wrk, unique ids), then measures the time until every one of them is
# PROCESSED and the processor's resident memory (peak, sampled every second) while they
# wait out their delay. Start the stack with the delay and in-flight bound to test, e.g.
#
#   PROFILE=release PROCESSING_DELAY=30s MAX_IN_FLIGHT=100000 scripts/dev.sh
#   COUNT=100000 bench/processing.sh
set -euo pipefail
cd "$(dirname "$0")"

URL=${URL:-http://127.0.0.1:8000}
COUNT=${COUNT:-100000}
DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/webhooks}
ulimit -n 65536 2>/dev/null || true

pid=$(pgrep -xn processor) || { echo "processing.sh: no processor running" >&2; exit 1; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
count() { psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM transactions WHERE status = '$1' AND transaction_id LIKE 'bench_%'"; }

psql "$DATABASE_URL" -qc "DELETE FROM processing_attempts WHERE transaction_id LIKE 'bench_%'; DELETE FROM transactions WHERE transaction_id LIKE 'bench_%'" >/dev/null
echo "processor pid $pid, idle RSS $(( $(rss) / 1024 )) MiB"

# Ingest exactly COUNT: wrk's request budget per connection (COUNT / 64 each).
started=$(date +%s.%N)
wrk -t2 -c64 -d600s --timeout 10s -s webhooks.lua "$URL" -- >/dev/null &
wrk_pid=$!
trap 'kill "$wrk_pid" 2>/dev/null || true' EXIT
peak=0
while :; do
  stored=$(psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM transactions WHERE transaction_id LIKE 'bench_%'")
  [ "$stored" -ge "$COUNT" ] && break
  now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
  sleep 1
done
kill "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" 2>/dev/null || true
ingested=$(date +%s.%N)
total=$(psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM transactions WHERE transaction_id LIKE 'bench_%'")
echo "ingested $total in $(python3 -c "print(round($ingested - $started, 1))") s"

while :; do
  now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
  done_count=$(count PROCESSED)
  [ "$done_count" -ge "$total" ] && break
  sleep 1
done
finished=$(date +%s.%N)
echo "RESULT transactions=$total all_processed_after_s=$(python3 -c "print(round($finished - $started, 1))") peak_rss_mib=$(( peak / 1024 )) failed=$(count FAILED)"
