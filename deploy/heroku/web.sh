#!/usr/bin/env bash
# Heroku `web` dyno: the gateway on $PORT and a processor beside it, talking gRPC over
# loopback (dynos of the Common Runtime cannot reach each other). When either exits the
# other is stopped and the dyno exits non-zero, so Heroku restarts it; SIGTERM (a
# restart, a deploy, a scale-down) stops both gracefully.
set -uo pipefail
: "${PORT:?Heroku sets PORT}"
# The buildpack leaves the release binaries in target/release of the slug.
PATH="$PWD/target/release:$PATH"

# Ports of the dyno's own, beside the routed $PORT; Heroku routes nothing else. Each
# process gets its own METRICS_ADDR: both binaries read that name.
grpc="127.0.0.1:$((PORT + 1))"
processor_metrics="127.0.0.1:$((PORT + 2))"
gateway_metrics="127.0.0.1:$((PORT + 3))"
GRPC_ADDR="$grpc" METRICS_ADDR="$processor_metrics" processor &
processor=$!
HTTP_ADDR="0.0.0.0:$PORT" PROCESSOR_URL="http://$grpc" METRICS_ADDR="$gateway_metrics" \
  ingest-gateway &
gateway=$!

stopping=false
trap 'stopping=true; kill -TERM "$processor" "$gateway" 2>/dev/null' TERM INT
wait -n "$processor" "$gateway"
status=$?
# Whichever ended first (or both, on SIGTERM): stop the other and wait for it.
kill -TERM "$processor" "$gateway" 2>/dev/null
wait "$processor" "$gateway"
if $stopping; then
  exit 0
fi
echo "web.sh: a process of the web dyno exited (status $status); stopping the dyno" >&2
exit $((status == 0 ? 1 : status))
