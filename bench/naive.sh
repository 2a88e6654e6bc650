#!/usr/bin/env bash
# The baseline of issue #6, measured like the stack: builds `naive-path` (axum, one
# INSERT … ON CONFLICT DO NOTHING commit per request, then XADD; no gRPC) in release, runs
# it on a fresh database, and runs bench/ingest.sh against it. Run it with the stack
# stopped, in the same hour as the stack's figures: the machine is shared and its speed
# varies from day to day.
#
#   bench/naive.sh
#   RUNS=3 DURATION=10s LEVELS="16 64 256" POOL_SIZE=64 bench/naive.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

database=naive_path
ADDR=${ADDR:-127.0.0.1:8100}
export DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/$database
export STREAM_KEY=$database HTTP_ADDR=$ADDR

ensure_postgres
ensure_redis
psql "$POSTGRES_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
create_database "$database"
redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379}" DEL "$STREAM_KEY" >/dev/null

cargo build --locked --release -p naive-path
target/release/naive-path &
naive=$!
trap 'kill "$naive" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://$ADDR/" >/dev/null 2>&1 && break; sleep 0.1; done

URL=http://$ADDR bench/ingest.sh
