#!/usr/bin/env bash
# Resident memory of each binary, idle and under load, against a running stack
# (`bench/stack.sh` in another terminal): RSS of the gateway and the processor before, then
# sampled every 0.2 s while wrk sends CONNECTIONS connections of new webhooks for
# DURATION (peak), then once more after.
#
#   bench/memory.sh
#   CONNECTIONS=1024 DURATION=20s bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")"

source load.sh
CONNECTIONS=${CONNECTIONS:-256}
DURATION=${DURATION:-20s}
require_wrk_and_stack memory.sh
# By port (load.sh): other people's tests run binaries of the same names on this machine.
gateway=$(listener_pid "$(port_of "$URL")")
processor=$(listener_pid "$GRPC_PORT")
[ -n "$gateway" ] || { echo "memory.sh: no gateway listens at $URL" >&2; exit 1; }
[ -n "$processor" ] || { echo "memory.sh: no processor listens on port $GRPC_PORT" >&2; exit 1; }

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v kib="$1" 'BEGIN { printf "%.1f", kib / 1024 }'; }
rss_mib() { mib "$(rss_kib "$1")"; }
echo "idle: gateway $(rss_mib "$gateway") MiB, processor $(rss_mib "$processor") MiB"

wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s webhooks.lua "$URL" >/tmp/memory-wrk.$$ &
load=$!
peak_gateway=0 peak_processor=0
while kill -0 "$load" 2>/dev/null; do
  now=$(rss_kib "$gateway"); [ "$now" -gt "$peak_gateway" ] && peak_gateway=$now
  now=$(rss_kib "$processor"); [ "$now" -gt "$peak_processor" ] && peak_processor=$now
  sleep 0.2
done
wait "$load"
grep '^RESULT' /tmp/memory-wrk.$$ | sed 's/^/load: /'
rm -f /tmp/memory-wrk.$$
echo "peak under load ($CONNECTIONS connections): gateway $(mib "$peak_gateway") MiB, processor $(mib "$peak_processor") MiB"
echo "after: gateway $(rss_mib "$gateway") MiB, processor $(rss_mib "$processor") MiB"
