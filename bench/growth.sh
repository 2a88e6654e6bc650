#!/usr/bin/env bash
# Cost as the table grows: fills `transactions` to each size in SIZES with finished rows
# (generate_series, random provider-like ids, creation times spread over the months before
# the run), then measures at each size ingest through the gateway (bench/ingest.sh) and the
# list (first pages and cursor pages of every filter, sequential requests, p50/p99).
# Against a running stack (`bench/stack.sh` in another terminal), on its database.
#
#   bench/growth.sh                                  # 0, 10 and 50 million rows
#   SIZES="0 20000" LEVELS=16 DURATION=3s LIST_REQUESTS=20 bench/growth.sh   # a quick check
#
# Rows are only ever added, so the sizes must rise. 50 million rows take about 15 GB of
# disk with their indexes, and the fill takes a long while on two cores: run it on a
# quiet machine. API_TOKEN is sent as the bearer token of the list calls when the gateway
# requires one.
set -euo pipefail
cd "$(dirname "$0")"

source load.sh
SIZES=${SIZES:-0 10000000 50000000}
LEVELS=${LEVELS:-64}
RUNS=${RUNS:-1}
DURATION=${DURATION:-15s}
LIST_REQUESTS=${LIST_REQUESTS:-200}
CHUNK=${CHUNK:-1000000}
DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/bench}
require_wrk_and_stack growth.sh

sql() { psql "$DATABASE_URL" -qtAX -c "$1"; }
finished_rows() { sql "SELECT count(*) FROM transactions WHERE transaction_id LIKE 'pay_%'"; }

# Adds finished rows until there are $1 of them, $CHUNK per statement (each its own
# transaction, so checkpoints and the stack's own traffic go on between them).
fill_to() {
  local target=$1 have added
  have=$(finished_rows)
  while [ "$have" -lt "$target" ]; do
    local add=$(( target - have < CHUNK ? target - have : CHUNK ))
    # Ids like Razorpay's (pay_ and 14 random characters); created over the 90 days before
    # the run, finished 30 s after; 1 % FAILED.
    added=$(sql "WITH added AS (
         INSERT INTO transactions (transaction_id, source_account, destination_account, amount,
                                   currency, status, attempts, last_error, created_at,
                                   updated_at, processed_at, republish_at)
         SELECT 'pay_' || substr(md5(random()::text || g::text), 1, 14),
                'acc_' || (g % 100000), 'acc_merchant_' || (g % 5000),
                round((random() * 100000)::numeric, 2) + 1, 'INR',
                CASE WHEN g % 100 = 0 THEN 'FAILED' ELSE 'PROCESSED' END, 1,
                CASE WHEN g % 100 = 0 THEN 'simulated failure' END,
                at, at + interval '30 seconds', at + interval '30 seconds', at
           FROM generate_series(1, $add) AS g,
                LATERAL (SELECT now() - interval '90 days' * random() - interval '1 hour' AS at) AS t
         ON CONFLICT (transaction_id) DO NOTHING
         RETURNING 1)
         SELECT count(*) FROM added")
    have=$(( have + added ))
    echo "  filled: $have rows"
  done
  sql "ANALYZE transactions" >/dev/null
}

# p50 and p99 of LIST_REQUESTS sequential calls of each list query, first page and the
# pages after it (following next_page_token).
measure_list() {
  URL=$URL API_TOKEN=${API_TOKEN:-} LIST_REQUESTS=$LIST_REQUESTS python3 - <<'PY'
import json, os, statistics, time, urllib.request, urllib.error

base, token, count = os.environ["URL"], os.environ["API_TOKEN"], int(os.environ["LIST_REQUESTS"])
queries = ["page_size=100", "status=PROCESSED&page_size=100", "status=FAILED&page_size=100",
           "status=PROCESSING&page_size=100"]

def call(query):
    request = urllib.request.Request(f"{base}/v1/transactions?{query}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            body, status = json.load(answer), answer.status
    except urllib.error.HTTPError as error:
        body, status = {}, error.code
    return (time.perf_counter() - started) * 1000, status, body.get("next_page_token")

for query in queries:
    for page in ("first", "next"):
        times, statuses, token_for_next = [], {}, None
        for _ in range(count):
            q = query if page == "first" or not token_for_next else f"{query}&page_token={token_for_next}"
            elapsed, status, next_token = call(q)
            times.append(elapsed)
            statuses[status] = statuses.get(status, 0) + 1
            # Cursor pages walk on into the history; at its end, start again.
            token_for_next = next_token if page == "next" else token_for_next or next_token
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"  list {query:<35} {page:<5} p50 {statistics.median(times):7.1f} ms  p99 {p99:7.1f} ms  answers {statuses}")
PY
}

for size in $SIZES; do
  echo "== $size finished rows"
  fill_to "$size"
  echo "  table and indexes: $(sql "SELECT pg_size_pretty(pg_total_relation_size('transactions'))")"
  LEVELS=$LEVELS RUNS=$RUNS DURATION=$DURATION ./ingest.sh | sed 's/^/  /'
  measure_list
done
