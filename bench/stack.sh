#!/usr/bin/env bash
# The stack the benchmarks run against: release build, a fresh database and stream named
# bench (dropped and recreated each time, so no run inherits another's rows or dead
# tuples), on the usual ports. Runs in the foreground like scripts/dev.sh; Ctrl-C stops it.
#
#   bench/stack.sh                              # ingest alone: processing delayed 10 min
#   PROCESSING_DELAY=30s bench/stack.sh         # ingest with processing sharing the CPU
#
# PROCESSING_DELAY defaults to 10m so that processing one run's transactions does not
# share the two cores with the next run's ingest: ingest.sh, overload.sh and
# duplicates.sh then measure ingest alone, like the baseline (bench/naive.sh), which does
# no processing. Any setting of the README applies.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

database=bench
export DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/$database
export STREAM_KEY=$database CONSUMER_GROUP=$database
export PROCESSING_DELAY=${PROCESSING_DELAY:-10m}
export MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-100000}
export RUST_LOG=${RUST_LOG:-warn}
export PROFILE=release

ensure_postgres
ensure_redis
psql "$POSTGRES_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
redis-cli -u "$REDIS_URL" DEL "$STREAM_KEY" >/dev/null
exec scripts/dev.sh
