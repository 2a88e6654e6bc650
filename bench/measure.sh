# Sourced by production.sh and baselines.sh: one measured run of bench/loadgen, with the CPU
# each process spent per accepted webhook, and the medians of several runs.
#
# CPU per webhook: user + system ticks from /proc/<pid>/stat before and after the run, for
# the processes named, Redis, and PostgreSQL's backends of the database $database plus its
# background processes (WAL writer, checkpointer ...); divided by the webhooks accepted.
# The load generator's CPU is not counted. PostgreSQL's background processes and Redis are
# the shared servers': other databases' work in the same seconds counts too.
#
# Needs URL, THREADS and database set by the caller.

ticks_per_s=$(getconf CLK_TCK)

loadgen() { URL=$URL THREADS=$THREADS CONNECTIONS=$1 DURATION=$2 target/release/loadgen; }

snapshot() { # snapshot PID[:NAME]...: "pid name ticks" of the processes that take part
  local pids pid name entry
  declare -A names=()
  for entry in "$@"; do
    pid=${entry%%:*}
    [ "$pid" = "$entry" ] || names[$pid]=${entry#*:}
  done
  pids="${*%%:*} $(pgrep -x redis-server || true)
$(psql -qtAc "SELECT pid FROM pg_stat_activity WHERE datname = '$database' OR backend_type <> 'client backend'" \
      postgres://postgres@127.0.0.1:5432/postgres 2>/dev/null || true)"
  for pid in $pids; do
    [ -r "/proc/$pid/stat" ] || continue
    name=${names[$pid]:-$(cat "/proc/$pid/comm" 2>/dev/null)} || continue
    case $name in postgres*) name=postgres ;; esac
    echo "$pid $name $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)"
  done
}

# measured_run CONNECTIONS DURATION PID[:NAME]...: one loadgen run; prints its RESULT line
# and cpu_<name>_us=... per process (a NAME given replaces the process's command name;
# dashes become underscores) and cpu_total_us.
measured_run() {
  local connections=$1 duration=$2 before after line accepted cpu
  shift 2
  before=$(snapshot "$@")
  line=$(loadgen "$connections" "$duration")
  after=$(snapshot "$@")
  accepted=$(sed -E 's/.*accepted_202=([0-9]+).*/\1/' <<<"$line")
  cpu=$(awk -v n="$accepted" -v hz="$ticks_per_s" '
    FNR == NR { before[$1] = $3; next }
    { used[$2] += $3 - ($1 in before ? before[$1] : 0) }
    END {
      total = 0
      for (name in used) {
        us = used[name] / hz * 1e6 / (n > 0 ? n : 1)
        total += us
        gsub("-", "_", name)
        printf "cpu_%s_us=%.1f ", name, us
      }
      printf "cpu_total_us=%.1f", total
    }' <(echo "$before") <(echo "$after"))
  echo "$line $cpu"
}

# measure_runs LABEL CONNECTIONS "PID[:NAME] ..." KEY=NAME...: RUNS measured runs of DURATION,
# each printed as "c=CONNECTIONS run N: ...", then their medians (print_medians).
measure_runs() {
  local label=$1 connections=$2 run
  local -a processes results=()
  read -r -a processes <<<"$3"
  shift 3
  for run in $(seq 1 "$RUNS"); do
    results+=("$(measured_run "$connections" "$DURATION" "${processes[@]}")")
    echo "c=$connections run $run: ${results[-1]}"
  done
  printf '%s\n' "${results[@]}" | print_medians "$label" "$connections" "$@"
}

# print_medians LABEL CONNECTIONS KEY=NAME...: the medians of the measured_run lines on
# stdin; the CPU line names each cpu_<KEY>_us as NAME, in the order given.
print_medians() {
  LABEL=$1 CONNECTIONS=$2 python3 -c '
import os, re, statistics, sys
rows = [{k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)} for line in sys.stdin]
m = lambda key: statistics.median(r.get(key, 0) for r in rows)
print("MEDIAN %s c=%s: %.0f accepted/s (%.0f answers/s), 202 %.1f%%, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (os.environ["LABEL"], os.environ["CONNECTIONS"], m("accepted_per_s"), m("req_per_s"),
         statistics.median(100 * r["accepted_202"] / max(r["responses"], 1) for r in rows),
         m("p50_ms"), m("p90_ms"), m("p99_ms"), m("max_ms")))
parts = ["%s %.1f us" % (name, m("cpu_%s_us" % key))
         for key, name in (arg.split("=", 1) for arg in sys.argv[1:])]
print("  CPU per accepted webhook: %s, total %.1f us" % (", ".join(parts), m("cpu_total_us")))' "${@:3}"
}
