#!/usr/bin/env bash
# Runs the whole stack on this machine without Docker: PostgreSQL and Redis (started if
# installed but stopped), the processor on :50051 and the gateway on :8000, with both
# logs in this terminal and in .dev/stack.log. Ctrl-C stops everything it started.
#
#   scripts/dev.sh                      # debug build, 30 s processing delay
#   PROCESSING_DELAY=2s scripts/dev.sh  # any setting of the README applies
#   PROFILE=release scripts/dev.sh      # optimised build
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

: "${DATABASE_URL:=postgres://postgres:postgres@127.0.0.1:5432/webhooks}"
: "${GRPC_ADDR:=0.0.0.0:50051}"
: "${HTTP_ADDR:=0.0.0.0:8000}"
# Local use: unsigned webhooks (the README's curl example) and reads without a token, each
# stated explicitly, as the gateway requires. Setting a secret or API_TOKENS still applies.
: "${ALLOW_UNSIGNED_WEBHOOKS:=true}"
: "${ALLOW_UNAUTHENTICATED_READS:=true}"
export DATABASE_URL REDIS_URL GRPC_ADDR HTTP_ADDR ALLOW_UNSIGNED_WEBHOOKS ALLOW_UNAUTHENTICATED_READS
database_name=${DATABASE_URL##*/}
database_name=${database_name%%\?*}

ensure_postgres
ensure_redis
create_database "$database_name"

profile=${PROFILE:-dev}
say "building (profile $profile)"
cargo build --locked --profile "$profile" --bins
target_dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")

mkdir -p .dev
log=.dev/stack.log
: >"$log"
pids=()
stop() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

run() { # run NAME BINARY: its output prefixed with its name, here and in the log
  local name=$1
  shift
  "$@" > >(sed -u "s/^/[$name] /" | tee -a "$log") 2>&1 &
  pids+=($!)
}

run processor "$target_dir/processor"
for _ in $(seq 1 120); do
  (exec 3<>/dev/tcp/127.0.0.1/"${GRPC_ADDR##*:}") 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { say "the processor exited; see $log"; exit 1; }
  sleep 0.5
done 2>/dev/null
run ingest-gateway "$target_dir/ingest-gateway"
say "gateway http://127.0.0.1:${HTTP_ADDR##*:}  processor grpc 127.0.0.1:${GRPC_ADDR##*:}  logs $log  (Ctrl-C stops)"
wait -n "${pids[@]}" || true
