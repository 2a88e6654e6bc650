#!/usr/bin/env bash
# The baselines of issue 19, measured as bench/production.sh measures the stack (the same
# load generator, warm-up, runs, medians and CPU per accepted webhook per process:
# bench/measure.sh), to run in the same hour as it:
#
#   BASELINE=hop    the storage-free hop: axum, then ONE unary gRPC call to a tonic
#                   TransactionService that stores nothing (bench/hop, two processes)
#   BASELINE=lean   the lean per-request-commit path: axum, tokio-postgres with the INSERT
#                   prepared once per connection, POOL_SIZE=16 connections, one commit per
#                   webhook on our table, then XADD (bench/lean-path)
#   BASELINE=naive  the naive path of issue 6: sea-orm, POOL_SIZE=64, one commit per
#                   webhook, then XADD (bench/naive-path)
#
# MODE as production.sh: production (the default) signs every webhook (no baseline checks
# it: the requests are the stack's, their checking is not), sends random provider-like ids,
# and puts mutual TLS on the hop's gRPC call; plain sends unsigned webhooks with rising ids,
# and the hop's call is plaintext.
#
# Starts the one baseline (release build) on its own ports (PORT_BASE, default 8200: HTTP on
# it, the hop's gRPC on it + 42051) with a fresh database and stream "baseline_bench", runs
# bench/loadgen RUNS times for DURATION seconds at CONNECTIONS after a 3 s warm-up, prints
# each run and the medians, and stops it. It runs beside bench/stack.sh and production.sh
# (other ports, database and stream), but measure one thing at a time: the cores are shared.
#
#   BASELINE=hop bench/baselines.sh
#   BASELINE=lean bench/baselines.sh
#   BASELINE=naive bench/baselines.sh
#   MODE=plain BASELINE=hop RUNS=5 DURATION=10 CONNECTIONS=64 bench/baselines.sh
#   BASELINE=lean SHARING=pipelined bench/baselines.sh    # connections shared, not pooled
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source bench/certs.sh
source bench/measure.sh

BASELINE=${BASELINE:-hop}
MODE=${MODE:-production}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT_BASE=${PORT_BASE:-8200}
BIN_DIR=${BIN_DIR:-target/release}
log_dir=.dev/baselines
tls_dir=.dev/baselines-tls
mkdir -p "$log_dir"

URL=http://127.0.0.1:$PORT_BASE
grpc_port=$((PORT_BASE + 42051))
database=baseline_bench
export DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/$database
export STREAM_KEY=$database HTTP_ADDR=127.0.0.1:$PORT_BASE GRPC_ADDR=127.0.0.1:$grpc_port
export PROCESSOR_URL=http://127.0.0.1:$grpc_port

case $MODE in
  production)
    STANDARD_WEBHOOKS_SECRET=whsec_$(openssl rand -base64 32)
    export STANDARD_WEBHOOKS_SECRET IDS=random
    if [ "$BASELINE" = hop ]; then
      make_certs "$tls_dir"
      export GRPC_TLS_CERT_FILE=$tls_dir/server.pem GRPC_TLS_KEY_FILE=$tls_dir/server.key
      export GRPC_TLS_CLIENT_CA_FILE=$tls_dir/ca.pem
      export PROCESSOR_URL=https://localhost:$grpc_port PROCESSOR_TLS_CA_FILE=$tls_dir/ca.pem
      export PROCESSOR_TLS_CERT_FILE=$tls_dir/client.pem PROCESSOR_TLS_KEY_FILE=$tls_dir/client.key
    fi
    ;;
  plain)
    unset STANDARD_WEBHOOKS_SECRET
    export IDS=sequential
    ;;
  *) die "MODE must be production or plain, not $MODE" ;;
esac

# Each process as "binary argument label"; the label names its CPU in the output.
case $BASELINE in
  hop) processes=("hop grpc hop-grpc" "hop http hop-http") cpu_names=(hop_http=axum hop_grpc=tonic) ;;
  lean) export POOL_SIZE=${POOL_SIZE:-16}; processes=("lean-path - lean-path") cpu_names=(lean_path=lean-path) ;;
  naive) export POOL_SIZE=${POOL_SIZE:-64}; processes=("naive-path - naive-path") cpu_names=(naive_path=naive-path) ;;
  *) die "BASELINE must be hop, lean or naive, not $BASELINE" ;;
esac

ulimit -n 65536 2>/dev/null || true
[ "$BIN_DIR" != target/release ] ||
  cargo build --locked --release --bins >&2 # all of them, as production.sh: one build, no second feature set

ensure_postgres
ensure_redis
if curl -fsS "$URL/" >/dev/null 2>&1; then die "something already answers at $URL; stop it first"; fi
psql "$POSTGRES_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
redis-cli -u "$REDIS_URL" DEL "$STREAM_KEY" >/dev/null
[ "$BASELINE" = hop ] || create_database "$database"

pids=() measured=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop EXIT INT TERM
for process in "${processes[@]}"; do
  read -r binary argument label <<<"$process"
  if [ "$argument" = - ]; then
    "$BIN_DIR/$binary" >"$log_dir/$label.log" 2>&1 &
  else
    "$BIN_DIR/$binary" "$argument" >"$log_dir/$label.log" 2>&1 &
  fi
  pid=$!
  pids+=("$pid") measured+=("$pid:$label")
  if [ "$label" = hop-grpc ]; then
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || die "hop grpc exited; see $log_dir/$label.log"
      sleep 0.1
    done
  fi
done
for _ in $(seq 1 300); do curl -fsS "$URL/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$URL/" >/dev/null || die "$BASELINE did not start; see $log_dir/*.log"

echo "BASELINE=$BASELINE MODE=$MODE IDS=$IDS${POOL_SIZE:+ POOL_SIZE=$POOL_SIZE}${SHARING:+ SHARING=$SHARING} RUNS=$RUNS DURATION=${DURATION}s ($(uptime | sed 's/.*load/load/'))"
loadgen 64 3 >/dev/null # warm-up: TLS handshakes, pools, caches
measure_runs "$BASELINE/$MODE" "$CONNECTIONS" "${measured[*]}" \
  "${cpu_names[@]}" postgres=PostgreSQL redis_server=Redis
