# Sourced by production.sh and callgrind.sh: the environment of MODE (production or plain).
# production: a Standard Webhooks secret (every webhook must be signed), mutual TLS on the
# gRPC hop with a CA and certificates made here, random provider-like ids, processing at
# the default 30 s delay. plain: unsigned, plaintext gRPC, rising ids, processing delayed
# 10 min (bench/stack.sh's default: ingest alone).
#
# Its own ports, database and stream (PORT_BASE, default 8100: HTTP on it, gRPC on it +
# 42051, metrics on it + 1000 and + 1001; database and stream "perf_bench"), so it runs
# beside a bench/stack.sh. start_stack starts both binaries from BIN_DIR (default
# target/release; another directory holds an earlier build, for A/B runs), the one named
# by $1 under callgrind; stop_stack stops them.
source scripts/services.sh
source bench/certs.sh
MODE=${MODE:-production}
PORT_BASE=${PORT_BASE:-8100}
BIN_DIR=${BIN_DIR:-target/release}
tls_dir=.dev/bench-tls
mkdir -p .dev
URL=http://127.0.0.1:$PORT_BASE
# BENCH_DATABASE: another name, for a second stack beside one already running (with
# another PORT_BASE): start_stack drops and makes its database and stream afresh.
database=${BENCH_DATABASE:-perf_bench}
export DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/$database
export STREAM_KEY=$database CONSUMER_GROUP=$database DEAD_LETTER_STREAM_KEY=${database}_dead
export HTTP_ADDR=127.0.0.1:$PORT_BASE GRPC_ADDR=127.0.0.1:$((PORT_BASE + 42051))
export MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-100000}
export RUST_LOG=${RUST_LOG:-warn} ALLOW_UNAUTHENTICATED_READS=true
# Stopping a stack should not wait out the calls under way (their rows are dropped anyway).
export SHUTDOWN_GRACE=${SHUTDOWN_GRACE:-1s}
export PROCESSOR_URL=http://127.0.0.1:$((PORT_BASE + 42051))

case $MODE in
  production)
    # A CA, the processor's certificate (for localhost) and the gateway's client certificate.
    make_certs "$tls_dir"
    STANDARD_WEBHOOKS_SECRET=whsec_$(openssl rand -base64 32)
    export STANDARD_WEBHOOKS_SECRET ALLOW_UNSIGNED_WEBHOOKS=false
    export GRPC_TLS_CERT_FILE=$tls_dir/server.pem GRPC_TLS_KEY_FILE=$tls_dir/server.key
    export GRPC_TLS_CLIENT_CA_FILE=$tls_dir/ca.pem
    export PROCESSOR_URL=https://localhost:$((PORT_BASE + 42051)) PROCESSOR_TLS_CA_FILE=$tls_dir/ca.pem
    export PROCESSOR_TLS_CERT_FILE=$tls_dir/client.pem PROCESSOR_TLS_KEY_FILE=$tls_dir/client.key
    export PROCESSING_DELAY=${PROCESSING_DELAY:-30s}
    export IDS=random
    ;;
  plain)
    unset STANDARD_WEBHOOKS_SECRET
    export ALLOW_UNSIGNED_WEBHOOKS=true
    export PROCESSING_DELAY=${PROCESSING_DELAY:-10m}
    export IDS=sequential
    ;;
  *) echo "production-env.sh: MODE must be production or plain, not $MODE" >&2; exit 1 ;;
esac


stack_pids=()
stack_log_dir=.dev/production
start_stack() { # start_stack [gateway|processor]: a fresh database and stream, both binaries
  mkdir -p "$stack_log_dir"
  ensure_postgres
  ensure_redis
  psql "$POSTGRES_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
  redis-cli -u "$REDIS_URL" DEL "$STREAM_KEY" "$DEAD_LETTER_STREAM_KEY" >/dev/null
  create_database "$database"
  if curl -fsS "$URL/" >/dev/null 2>&1; then die "something already answers at $URL; stop it first"; fi
  local name binary
  for name in processor gateway; do
    binary=$BIN_DIR/$([ $name = gateway ] && echo ingest-gateway || echo processor)
    export METRICS_ADDR=127.0.0.1:$((PORT_BASE + 1000 + ${#stack_pids[@]}))
    if [ "$name" = "${1:-}" ]; then
      valgrind --tool=callgrind --callgrind-out-file="$stack_log_dir/callgrind.out.%p" \
        "$binary" >"$stack_log_dir/$name.log" 2>&1 &
    else
      "$binary" >"$stack_log_dir/$name.log" 2>&1 &
    fi
    stack_pids+=($!)
    if [ $name = processor ]; then
      for _ in $(seq 1 600); do
        (exec 3<>/dev/tcp/127.0.0.1/$((PORT_BASE + 42051))) 2>/dev/null && break
        kill -0 "${stack_pids[0]}" 2>/dev/null || die "the processor exited; see $stack_log_dir/processor.log"
        sleep 0.5
      done 2>/dev/null
    fi
  done
  for _ in $(seq 1 600); do
    curl -fsS "$URL/" >/dev/null 2>&1 && break
    kill -0 "${stack_pids[1]}" 2>/dev/null || die "the gateway exited; see $stack_log_dir/gateway.log"
    sleep 0.5
  done
  curl -fsS "$URL/" >/dev/null || die "the stack did not start; see $stack_log_dir/*.log"
}
stop_stack() {
  local pid
  for pid in "${stack_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${stack_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stack_pids=()
}
