# Sourced by the wrk benchmarks (ingest, cpu, memory, duplicates): where the stack answers,
# and what a run needs before it starts.
URL=${URL:-http://127.0.0.1:8000}
THREADS=${THREADS:-2}

require_wrk_and_stack() { # require_wrk_and_stack SCRIPT_NAME
  command -v wrk >/dev/null || { echo "$1: wrk is not installed (Debian: apt-get install -y wrk)" >&2; exit 1; }
  curl -fsS "$URL/" >/dev/null || { echo "$1: nothing answers at $URL/; start the stack first (bench/stack.sh)" >&2; exit 1; }
  # More connections than the default open-file limit allows otherwise.
  ulimit -n 65536 2>/dev/null || true
}
