#!/usr/bin/env bash
# Instructions per webhook of one process, counted by valgrind's callgrind under a fixed
# number of webhooks: counts repeat exactly on a noisy, shared machine, where CPU time
# does not. Starts its own stack (release build, fresh database, the environment and
# ports of MODE as bench/production.sh: production-env.sh) with WHICH (gateway or processor) under callgrind and
# the other native, warms up, zeroes the counters, sends REQUESTS webhooks from
# CONNECTIONS connections (bench/loadgen), and prints instructions per accepted webhook
# and the functions they went to (inclusive and self).
#
#   bench/callgrind.sh                                   # WHICH=gateway MODE=production
#   WHICH=processor REQUESTS=20000 bench/callgrind.sh
#   MODE=plain WHICH=gateway bench/callgrind.sh
#   BIN_DIR=.dev/bin-before bench/callgrind.sh          # an earlier build, kept for A/B
#   SHED=1 bench/callgrind.sh                            # instructions per shed 503 answer
#
# SHED=1 (gateway only) counts the load-shedding answer instead: after the warm-up the
# processor is stopped (SIGSTOP, its one pid), MAX_CONCURRENT_REQUESTS (default 16 here)
# webhooks from a second loadgen take every permit and hang on it, and every one of the
# REQUESTS webhooks counted is then answered 503 `overloaded`; the instructions are
# divided by those answers (loadgen's shed_503). PROCESSOR_TIMEOUT and REQUEST_TIMEOUT are
# raised to 10 and 11 minutes (IDLE_TIMEOUT to 12) so that no held webhook times out inside
# the counted window.
#
# Under callgrind a process runs some 50 times slower, so the deadlines are raised
# (PROCESSOR_TIMEOUT=20s): batches then form as the slower process lets them, which is
# why CONNECTIONS is kept the same in every comparison. Needs valgrind (Debian: apt-get
# install -y valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."

WHICH=${WHICH:-gateway}
REQUESTS=${REQUESTS:-20000}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-2000}
SHED=${SHED:-0}
# Ingest alone by default: with the 30 s delay, how many finishes fall inside the counted
# window would depend on how slow the process under callgrind is.
export PROCESSING_DELAY=${PROCESSING_DELAY:-10m}
source bench/production-env.sh
command -v valgrind >/dev/null || die "valgrind is not installed (Debian: apt-get install -y valgrind)"
if [ "$SHED" = 1 ]; then
  [ "$WHICH" = gateway ] || die "SHED=1 counts the gateway's shed answers: WHICH must be gateway"
  export MAX_CONCURRENT_REQUESTS=${MAX_CONCURRENT_REQUESTS:-16}
  export PROCESSOR_TIMEOUT=${PROCESSOR_TIMEOUT:-10m} REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-11m}
  export IDLE_TIMEOUT=${IDLE_TIMEOUT:-12m}
fi
export PROCESSOR_TIMEOUT=${PROCESSOR_TIMEOUT:-20s} REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-30s}
[ "$BIN_DIR" != target/release ] || cargo build --locked --release --bins >&2

holder=
stop() {
  [ -z "$holder" ] || kill "$holder" 2>/dev/null || true
  # A stopped processor would not act on SIGTERM: let it go on first.
  [ "$SHED" != 1 ] || [ -z "${stack_pids[0]:-}" ] || kill -CONT "${stack_pids[0]}" 2>/dev/null || true
  stop_stack
}
trap stop EXIT INT TERM
start_stack "$WHICH"
target=${stack_pids[$([ "$WHICH" = processor ] && echo 0 || echo 1)]}
loadgen() { URL=$URL CONNECTIONS=$CONNECTIONS DURATION=600s REQUESTS=$1 target/release/loadgen; }
loadgen "$WARMUP" >/dev/null
sleep 2
if [ "$SHED" = 1 ]; then
  kill -STOP "${stack_pids[0]}"
  URL=$URL CONNECTIONS=$MAX_CONCURRENT_REQUESTS REQUESTS=$MAX_CONCURRENT_REQUESTS DURATION=600s \
    target/release/loadgen >/dev/null &
  holder=$!
  # Every permit is held once an (unsigned) webhook is shed; until then one takes a
  # permit only to be refused its missing signature.
  for _ in $(seq 1 120); do
    curl -sS -X POST -H 'content-type: application/json' -d '{}' "$URL/v1/webhooks/transactions" \
      | grep -q 'problem:overloaded' && break
    sleep 0.5
  done
  curl -sS -X POST -H 'content-type: application/json' -d '{}' "$URL/v1/webhooks/transactions" \
    | grep -q 'problem:overloaded' || die "the permits were not all held after 60 s"
  sleep 1
fi
callgrind_control -z "$target" >/dev/null
line=$(loadgen "$REQUESTS")
callgrind_control -d "$target" >/dev/null
sleep 1
echo "$line"
if [ "$SHED" = 1 ]; then
  what="shed answers (503 overloaded)"
  answers=$(sed -E 's/.*shed_503=([0-9]+).*/\1/' <<<"$line")
else
  what="accepted webhooks"
  answers=$(sed -E 's/.*accepted_202=([0-9]+).*/\1/' <<<"$line")
fi
dump=$(ls -t "$stack_log_dir/callgrind.out.$target".* 2>/dev/null | head -n 1)
[ -n "$dump" ] || die "no callgrind dump in $stack_log_dir"
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
echo "MODE=$MODE WHICH=$WHICH SHED=$SHED: $total instructions for $answers $what:" \
  "$(awk -v t="$total" -v n="$answers" 'BEGIN { printf "%.0f", t / (n > 0 ? n : 1) }') per answer ($dump)"
echo "-- inclusive (top 40)"
callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -n 40 | cut -c1-200
echo "-- self (top 40)"
callgrind_annotate "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -n 40 | cut -c1-200
