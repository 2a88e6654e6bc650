#!/usr/bin/env bash
# The stack as a payments team deploys it, measured: every webhook signed (Standard
# Webhooks, its own signature per request), mutual TLS on the gRPC hop, random
# provider-like ids (`pay_` + 14 characters), processing at the default 30 s delay.
# MODE=plain measures today's benchmark configuration with the same load generator
# (unsigned, plaintext gRPC, rising ids, processing delayed 10 min), for the figures beside.
#
# Starts its own stack (release build, fresh database and stream "perf_bench", its own
# ports: see production-env.sh), runs
# bench/loadgen RUNS times for DURATION at each of LEVELS connections after a short warm-up,
# prints each run and the medians, with the CPU each process spent per accepted webhook,
# and stops the stack. It runs beside a bench/stack.sh (other ports, database and stream).
#
#   bench/production.sh
#   MODE=plain bench/production.sh
#   RUNS=5 DURATION=10 LEVELS="64 1024" bench/production.sh
#
# CPU per webhook: user + system ticks from /proc/<pid>/stat before and after each run,
# for the gateway, the processor, Redis, and PostgreSQL's backends of the "perf_bench" database
# plus its background processes (WAL writer, checkpointer ...); divided by the webhooks
# accepted. The load generator's CPU is not counted. PostgreSQL's background processes and
# Redis are the shared servers': other databases' work in the same seconds counts too.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-production}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
LEVELS=${LEVELS:-64 1024}
THREADS=${THREADS:-2}
source bench/production-env.sh

ulimit -n 65536 2>/dev/null || true
[ "$BIN_DIR" != target/release ] || cargo build --locked --release --bins >&2
trap stop_stack EXIT INT TERM
start_stack
echo "MODE=$MODE PROCESSING_DELAY=$PROCESSING_DELAY IDS=$IDS RUNS=$RUNS DURATION=${DURATION}s ($(uptime | sed 's/.*load/load/'))"

ticks_per_s=$(getconf CLK_TCK)
snapshot() { # "pid name ticks" of the processes that take part
  local pids
  pids="${stack_pids[*]} $(pgrep -x redis-server || true)
$(psql -qtAc "SELECT pid FROM pg_stat_activity WHERE datname = '$database' OR backend_type <> 'client backend'" \
      postgres://postgres@127.0.0.1:5432/postgres 2>/dev/null || true)"
  for pid in $pids; do
    [ -r "/proc/$pid/stat" ] || continue
    name=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
    case $name in postgres*) name=postgres ;; esac
    echo "$pid $name $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)"
  done
}

loadgen() { URL=$URL THREADS=$THREADS CONNECTIONS=$1 DURATION=$2 target/release/loadgen; }

loadgen 64 3 >/dev/null # warm-up: TLS handshakes, pools, caches
for connections in $LEVELS; do
  results=()
  for run in $(seq 1 "$RUNS"); do
    before=$(snapshot)
    line=$(loadgen "$connections" "$DURATION")
    after=$(snapshot)
    accepted=$(sed -E 's/.*accepted_202=([0-9]+).*/\1/' <<<"$line")
    cpu=$(awk -v n="$accepted" -v hz="$ticks_per_s" '
      FNR == NR { before[$1] = $3; next }
      { used[$2] += $3 - ($1 in before ? before[$1] : 0) }
      END {
        total = 0
        for (name in used) {
          us = used[name] / hz * 1e6 / (n > 0 ? n : 1)
          total += us
          gsub("-", "_", name)
          printf "cpu_%s_us=%.1f ", name, us
        }
        printf "cpu_total_us=%.1f", total
      }' <(echo "$before") <(echo "$after"))
    echo "c=$connections run $run: $line $cpu"
    results+=("$line $cpu")
  done
  printf '%s\n' "${results[@]}" | CONNECTIONS=$connections MODE=$MODE python3 -c '
import os, re, statistics, sys
rows = [{k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)} for line in sys.stdin]
m = lambda key: statistics.median(r.get(key, 0) for r in rows)
print("MEDIAN %s c=%s: %.0f accepted/s (%.0f answers/s), 202 %.1f%%, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (os.environ["MODE"], os.environ["CONNECTIONS"], m("accepted_per_s"), m("req_per_s"),
         statistics.median(100 * r["accepted_202"] / max(r["responses"], 1) for r in rows),
         m("p50_ms"), m("p90_ms"), m("p99_ms"), m("max_ms")))
print("  CPU per accepted webhook: gateway %.1f us, processor %.1f us, PostgreSQL %.1f us, Redis %.1f us, total %.1f us"
      % (m("cpu_ingest_gateway_us"), m("cpu_processor_us"), m("cpu_postgres_us"),
         m("cpu_redis_server_us"), m("cpu_total_us")))'
done
