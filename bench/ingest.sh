#!/usr/bin/env bash
# Ingest throughput and latency against a running stack (`bench/stack.sh` in another
# terminal): every webhook a new transaction_id, at 16, 64 and 256 connections,
# RUNS runs of DURATION each, then the medians per connection count.
#
#   bench/ingest.sh
#   URL=http://127.0.0.1:8000 RUNS=3 DURATION=15s LEVELS="16 64 256" bench/ingest.sh
set -euo pipefail
cd "$(dirname "$0")"

source load.sh
RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
LEVELS=${LEVELS:-16 64 256}
require_wrk_and_stack ingest.sh

for connections in $LEVELS; do
  results=()
  for run in $(seq 1 "$RUNS"); do
    out=$(wrk -t"$THREADS" -c"$connections" -d"$DURATION" --timeout 10s --latency -s webhooks.lua "$URL")
    line=$(grep '^RESULT' <<<"$out")
    echo "c=$connections run $run: $line"
    results+=("$line")
  done
  printf '%s\n' "${results[@]}" | CONNECTIONS=$connections python3 -c '
import os, re, statistics, sys
rows = [{k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)} for line in sys.stdin]
m = lambda key: statistics.median(r[key] for r in rows)
print("MEDIAN c=%s: %.0f accepted/s (%.0f answers/s), 202 %.1f%%, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (os.environ["CONNECTIONS"], m("accepted_per_s"), m("req_per_s"),
         statistics.median(100 * r["accepted_202"] / max(r["responses"], 1) for r in rows),
         m("p50_ms"), m("p90_ms"), m("p99_ms"), m("max_ms")))'
done
