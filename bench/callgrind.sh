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
# Ingest alone by default: with the 30 s delay, how many finishes fall inside the counted
# window would depend on how slow the process under callgrind is.
export PROCESSING_DELAY=${PROCESSING_DELAY:-10m}
source bench/production-env.sh
command -v valgrind >/dev/null || die "valgrind is not installed (Debian: apt-get install -y valgrind)"
export PROCESSOR_TIMEOUT=${PROCESSOR_TIMEOUT:-20s} REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-30s}
[ "$BIN_DIR" != target/release ] || cargo build --locked --release --bins >&2

trap stop_stack EXIT INT TERM
start_stack "$WHICH"
target=${stack_pids[$([ "$WHICH" = processor ] && echo 0 || echo 1)]}
loadgen() { URL=$URL CONNECTIONS=$CONNECTIONS DURATION=600s REQUESTS=$1 target/release/loadgen; }
loadgen "$WARMUP" >/dev/null
sleep 2
callgrind_control -z "$target" >/dev/null
line=$(loadgen "$REQUESTS")
callgrind_control -d "$target" >/dev/null
sleep 1
echo "$line"
accepted=$(sed -E 's/.*accepted_202=([0-9]+).*/\1/' <<<"$line")
dump=$(ls -t "$stack_log_dir/callgrind.out.$target".* 2>/dev/null | head -n 1)
[ -n "$dump" ] || die "no callgrind dump in $stack_log_dir"
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
echo "MODE=$MODE WHICH=$WHICH: $total instructions for $accepted accepted webhooks:" \
  "$(awk -v t="$total" -v n="$accepted" 'BEGIN { printf "%.0f", t / (n > 0 ? n : 1) }') per webhook ($dump)"
echo "-- inclusive (top 40)"
callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -n 40 | cut -c1-200
echo "-- self (top 40)"
callgrind_annotate "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -n 40 | cut -c1-200
