#!/usr/bin/env bash
# A/B of builds in the same minutes: ROUNDS rounds, each running bench/production.sh
# (RUNS=1, a fresh stack) with each build's binaries in turn, so a change in the
# machine's load falls on all of them; then the medians per build and connection count.
#
#   cp target/release/{processor,ingest-gateway} .dev/bin-before/   # before the change
#   BUILDS=".dev/bin-before target/release" ROUNDS=3 bench/ab.sh
#   MODE=plain BUILDS="..." bench/ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a builds <<<"${BUILDS:?the directories of the builds to compare}"
ROUNDS=${ROUNDS:-3}
export MODE=${MODE:-production} DURATION=${DURATION:-10} LEVELS=${LEVELS:-64 1024}
lines=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for build in "${builds[@]}"; do
    RUNS=1 BIN_DIR=$build bench/production.sh 2>/dev/null | grep '^c=' | sed "s|^|build=$build round=$round |" | tee -a "$lines"
  done
done
python3 - "$lines" "${builds[@]}" <<'EOF'
import re, statistics, sys
rows = []
for line in open(sys.argv[1]):
    build = re.search(r"build=(\S+)", line).group(1)
    connections = re.search(r" c=(\d+)", line).group(1)
    values = {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line.split("RESULT", 1)[1])}
    rows.append((build, connections, values))
for connections in sorted({c for _, c, _ in rows}, key=int):
    for build in sys.argv[2:]:
        got = [v for b, c, v in rows if b == build and c == connections]
        if not got:
            continue
        m = lambda key: statistics.median(v.get(key, 0) for v in got)
        print("MEDIAN %s c=%s (%d runs): %.0f accepted/s, p50 %.1f ms, p99 %.1f ms, CPU per webhook: gateway %.1f, processor %.1f, PostgreSQL %.1f, Redis %.1f, total %.1f us"
              % (build, connections, len(got), m("accepted_per_s"), m("p50_ms"), m("p99_ms"),
                 m("cpu_ingest_gateway_us"), m("cpu_processor_us"), m("cpu_postgres_us"),
                 m("cpu_redis_server_us"), m("cpu_total_us")))
EOF
rm -f "$lines"
