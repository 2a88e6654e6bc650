#!/usr/bin/env bash
# Load test of the webhook endpoint against a running stack (`bench/stack.sh` in another
# terminal): 1024 connections for DURATION, several runs,
# each printing the share of 202 vs 503 (shed at the limit, or past a deadline), p50/p99
# latency and throughput; then the medians.
#
#   bench/overload.sh                                  # http://127.0.0.1:8000, 3 runs of 30s
#   URL=http://127.0.0.1:8000 RUNS=5 DURATION=20s CONNECTIONS=1024 bench/overload.sh
#
# Needs wrk (https://github.com/wg/wrk); on Debian/Ubuntu it is installed below if missing.
set -euo pipefail
cd "$(dirname "$0")"

URL=${URL:-http://127.0.0.1:8000}
CONNECTIONS=${CONNECTIONS:-1024}
THREADS=${THREADS:-2}
DURATION=${DURATION:-30s}
RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-10s}

if ! command -v wrk >/dev/null; then
  echo "overload.sh: wrk is not installed; installing it with: apt-get install -y wrk" >&2
  if command -v apt-get >/dev/null; then
    apt-get install -y wrk >&2 || { echo "overload.sh: could not install wrk; install it and retry" >&2; exit 1; }
  else
    echo "overload.sh: no apt-get here; install wrk (https://github.com/wg/wrk) and retry" >&2
    exit 1
  fi
fi

if ! curl -fsS "$URL/" >/dev/null; then
  echo "overload.sh: nothing answers at $URL/; start the stack first (bench/stack.sh)" >&2
  exit 1
fi

# More connections than the default open-file limit allows otherwise.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

results=()
for run in $(seq 1 "$RUNS"); do
  echo "== run $run/$RUNS: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --timeout $TIMEOUT --latency -s webhooks.lua $URL"
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout "$TIMEOUT" --latency \
    -s webhooks.lua "$URL")
  echo "$out"
  results+=("$(grep '^RESULT' <<<"$out")")
done

echo
echo "== medians of $RUNS runs"
printf '%s\n' "${results[@]}" | python3 <(cat <<'PY'
import re, statistics, sys
rows = [{k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)} for line in sys.stdin]
def median(key):
    return statistics.median(r[key] for r in rows)
def share(key):
    return statistics.median(100 * r[key] / max(r["responses"], 1) for r in rows)
print("accepted 202: %.1f%%  shed 503 (limit): %.1f%%  503 past a deadline: %.1f%%  other: %.2f%%"
      % (share("accepted_202"), share("shed_503"), share("deadline_503"), share("other")))
print("p50 %.1f ms  p99 %.1f ms  max %.1f ms  %.0f req/s"
      % (median("p50_ms"), median("p99_ms"), median("max_ms"), median("req_per_s")))
PY
)
