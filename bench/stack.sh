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
#
# On another PostgreSQL or Redis (a private one, so that a big fill or a CPU count does not
# share a server with other people's tests):
#
#   BENCH_POSTGRES=postgres://postgres@127.0.0.1:55432 REDIS_URL=redis://127.0.0.1:56379/0 bench/stack.sh
#
# BENCH_POSTGRES is the server (no database; default the shared one on 5432), BENCH_DATABASE
# the database (default bench, dropped and made again; BENCH_KEEP_DATABASE=1 keeps it and its
# rows, for bench/growth.sh's filled table). A Redis on REDIS_URL must be running
# already: services.sh starts only the usual one on 6379. Give the other bench/ scripts the
# same BENCH_POSTGRES, BENCH_DATABASE and REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

BENCH_POSTGRES=${BENCH_POSTGRES:-postgres://postgres:postgres@127.0.0.1:5432}
database=${BENCH_DATABASE:-bench}
export POSTGRES_ADMIN_URL=$BENCH_POSTGRES/postgres
export DATABASE_URL=$BENCH_POSTGRES/$database
export STREAM_KEY=$database CONSUMER_GROUP=$database
export PROCESSING_DELAY=${PROCESSING_DELAY:-10m}
export MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-100000}
export RUST_LOG=${RUST_LOG:-warn}
export PROFILE=release

ensure_postgres
ensure_redis
if [ -z "${BENCH_KEEP_DATABASE:-}" ]; then
  psql "$POSTGRES_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
fi
redis-cli -u "$REDIS_URL" DEL "$STREAM_KEY" >/dev/null
exec scripts/dev.sh
