#!/usr/bin/env bash
# A storm of one webhook: 200 connections POST the same transaction_id for DURATION.
# Every answer must be 202; afterwards PostgreSQL must hold one row for it.
#
#   bench/duplicates.sh     (against bench/stack.sh; DATABASE_URL names another stack's database)
set -euo pipefail
cd "$(dirname "$0")"

source load.sh
DURATION=${DURATION:-15s}
DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/bench}
require_wrk_and_stack duplicates.sh

out=$(wrk -t2 -c200 -d"$DURATION" --timeout 10s --latency -s duplicates.lua "$URL")
line=$(grep '^RESULT' <<<"$out")
echo "$line"
id=$(sed -E 's/.*transaction_id=([^ ]+).*/\1/' <<<"$line")
rows=$(psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM transactions WHERE transaction_id = '$id'")
echo "rows for $id: $rows (must be 1)"
[ "$rows" = "1" ]
