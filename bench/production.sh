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
#   WARMUP=40 MAX_IN_FLIGHT=400000 LEVELS=64 bench/production.sh   # steady state
#
# Steady state: with the 30 s delay, the first finishes come 30 s after the first webhook,
# so a warm-up (WARMUP seconds at 64 connections, default 3) longer than the delay makes
# every measured run pay for finishing as many webhooks as it ingests (claim, call record,
# PROCESSED, XACK and the heartbeat's refreshes). MAX_IN_FLIGHT must hold rate x delay:
# 100 000 (the default) caps processing at 3 333/s under a 30 s delay.
#
# CPU per webhook (bench/measure.sh): user + system ticks from /proc/<pid>/stat before and
# after each run, for the gateway, the processor, Redis, and PostgreSQL's backends of the
# "perf_bench" database plus its background processes (WAL writer, checkpointer ...); divided
# by the webhooks accepted. The load generator's CPU is not counted. PostgreSQL's background
# processes and Redis are the shared servers': other databases' work in the same seconds
# counts too.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-production}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
LEVELS=${LEVELS:-64 1024}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3}
source bench/production-env.sh
source bench/measure.sh

ulimit -n 65536 2>/dev/null || true
[ "$BIN_DIR" != target/release ] || cargo build --locked --release --bins >&2
trap stop_stack EXIT INT TERM
start_stack
echo "MODE=$MODE PROCESSING_DELAY=$PROCESSING_DELAY MAX_IN_FLIGHT=$MAX_IN_FLIGHT IDS=$IDS RUNS=$RUNS DURATION=${DURATION}s WARMUP=${WARMUP}s ($(uptime | sed 's/.*load/load/'))"

loadgen 64 "$WARMUP" >/dev/null # warm-up: TLS handshakes, pools, caches (and, past the delay, finishes)
for connections in $LEVELS; do
  measure_runs "$MODE" "$connections" "${stack_pids[*]}" \
    ingest_gateway=gateway processor=processor postgres=PostgreSQL redis_server=Redis
done
