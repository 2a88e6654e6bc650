# Sourced by the benchmarks (ingest, cpu, memory, duplicates, growth, processing): where the
# stack answers, what a run needs before it starts, and which processes are the stack's.
URL=${URL:-http://127.0.0.1:8000}
THREADS=${THREADS:-2}
# The stack's PostgreSQL and Redis (bench/stack.sh's BENCH_POSTGRES, BENCH_DATABASE, REDIS_URL)
# and the processor's gRPC port: CPU and memory are read from the processes listening there.
BENCH_POSTGRES=${BENCH_POSTGRES:-postgres://postgres:postgres@127.0.0.1:5432}
BENCH_DATABASE=${BENCH_DATABASE:-bench}
DATABASE_URL=${DATABASE_URL:-$BENCH_POSTGRES/$BENCH_DATABASE}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
GRPC_PORT=${GRPC_PORT:-50051}

require_wrk_and_stack() { # require_wrk_and_stack SCRIPT_NAME
  command -v wrk >/dev/null || { echo "$1: wrk is not installed (Debian: apt-get install -y wrk)" >&2; exit 1; }
  curl -fsS "$URL/" >/dev/null || { echo "$1: nothing answers at $URL/; start the stack first (bench/stack.sh)" >&2; exit 1; }
  # More connections than the default open-file limit allows otherwise.
  ulimit -n 65536 2>/dev/null || true
}

port_of() { # port_of URL: its TCP port
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  echo "${rest##*:}"
}

# The process listening on TCP port $1. By port, not by name: other people's tests on this
# machine run processes called processor, postgres and redis-server too.
listener_pid() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2; }

# "pid name" of every process of the stack: the gateway, the processor (or naive-path on
# URL's port), the postmaster of DATABASE_URL's port with all its backends and workers, and
# the Redis of REDIS_URL's port.
stack_processes() {
  local gateway processor postmaster redis pid
  gateway=$(listener_pid "$(port_of "$URL")")
  processor=$(listener_pid "$GRPC_PORT")
  postmaster=$(listener_pid "$(port_of "$DATABASE_URL")")
  redis=$(listener_pid "$(port_of "$REDIS_URL")")
  for pid in $gateway $processor $postmaster $([ -n "$postmaster" ] && pgrep -P "$postmaster") $redis; do
    [ -r "/proc/$pid/stat" ] && echo "$pid $(cat "/proc/$pid/comm")"
  done
  return 0
}

# "pid name ticks" (user + system) of each process of the stack.
cpu_snapshot() {
  stack_processes | while read -r pid name; do
    ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) && echo "$pid $name $ticks"
  done
  return 0
}

# cpu_per_unit BEFORE AFTER COUNT UNIT: µs of CPU per unit of work for each process name
# (PostgreSQL's backends summed), from two cpu_snapshot outputs. A process that started in
# between counts whole; one that exited in between is gone and does not count.
cpu_per_unit() {
  awk -v n="$3" -v unit="$4" -v hz="$(getconf CLK_TCK)" '
    FNR == NR { before[$1] = $3; next }
    { used[$2] += $3 - ($1 in before ? before[$1] : 0) }
    END { for (name in used) printf "%-15s %6.1f µs per %s\n", name, used[name] / hz * 1e6 / (n > 0 ? n : 1), unit }
  ' <(echo "$1") <(echo "$2") | sort
}

wal_lsn() { psql "$DATABASE_URL" -qtAXc "SELECT pg_current_wal_lsn()"; }
wal_bytes_between() { psql "$DATABASE_URL" -qtAXc "SELECT pg_wal_lsn_diff('$2', '$1')::bigint"; }
