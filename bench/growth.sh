#!/usr/bin/env bash
# Cost as the table grows: fills `transactions` to each size in SIZES with finished rows
# (generate_series, random provider-like ids, creation times spread over the 90 days before
# the run), then measures at each size ingest through the gateway (bench/ingest.sh), CPU and
# WAL per webhook (bench/cpu.sh), and the list: every filter the API offers, first pages,
# cursor pages walking on from the first, and pages at a random point of the history
# (sequential requests on one kept-alive connection, p50/p99/max).
# Against a running stack (`bench/stack.sh` in another terminal), on its database; for
# ingest alone, with nothing claimed or finished meanwhile (BENCHMARKS.md, 2026-12-01):
#   BENCH_DATABASE=growth BENCH_KEEP_DATABASE=1 PROCESSING_DELAY=3h MAX_IN_FLIGHT=1 SHUTDOWN_GRACE=5s bench/stack.sh
#
#   bench/growth.sh                                  # 0, 10 and 50 million rows
#   SIZES="0 20000" LEVELS=16 DURATION=3s RUNS=1 CPU_RUNS=0 LIST_REQUESTS=20 bench/growth.sh   # a quick check
#   BENCH_POSTGRES=postgres://postgres@127.0.0.1:55432 REDIS_URL=redis://127.0.0.1:56379 bench/growth.sh
#   FILL_ONLY=1 SIZES=10000000 bench/growth.sh      # only fill (no stack needed once the schema is there)
#
# Rows are only ever added, so the sizes must rise. A row takes about 355 bytes with its
# indexes (18 GB at 50 million, and up to max_wal_size of WAL besides), and a fill
# adds about 21 000 rows/s on two busy cores: use a private PostgreSQL (see bench/stack.sh), not the shared
# one. Each fill is followed by VACUUM ANALYZE (a table of months of history has been
# vacuumed; autovacuum would otherwise start in the middle of a measurement). Fill rates
# are printed. API_TOKEN is sent as the bearer token of the list calls when the gateway
# requires one.
set -euo pipefail
cd "$(dirname "$0")"

source load.sh
SIZES=${SIZES:-0 10000000 50000000}
LEVELS=${LEVELS:-64}
RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
CPU_RUNS=${CPU_RUNS:-1}
LIST_REQUESTS=${LIST_REQUESTS:-300}
CHUNK=${CHUNK:-1000000}
FILL_JOBS=${FILL_JOBS:-2}
FILL_ONLY=${FILL_ONLY:-}
[ -n "$FILL_ONLY" ] || require_wrk_and_stack growth.sh
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

sql() { psql "$DATABASE_URL" -qtAX -c "$1"; }
finished_rows() { sql "SELECT count(*) FROM transactions WHERE transaction_id LIKE 'pay_%'"; }
now_s() { date +%s.%N; }
elapsed() { python3 -c "print(round($(now_s) - $1, 1))"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# Adds finished rows until there are $1 of them, $CHUNK per statement (each its own
# transaction, so checkpoints and the stack's own traffic go on between them), FILL_JOBS
# statements at once (one backend uses one core).
fill_to() {
  local target=$1 have start_rows started
  have=$(finished_rows)
  start_rows=$have
  started=$(now_s)
  while [ "$have" -lt "$target" ]; do
    local jobs=() job planned=$have
    for job in $(seq 1 "$FILL_JOBS"); do
      local add=$(( target - planned < CHUNK ? target - planned : CHUNK ))
      [ "$add" -gt 0 ] || break
      fill_chunk "$add" >"$scratch/added.$job" &
      jobs+=($!)
      planned=$(( planned + add ))
    done
    wait "${jobs[@]}"
    for job in $(seq 1 "${#jobs[@]}"); do have=$(( have + $(cat "$scratch/added.$job") )); done
    echo "  filled: $have rows ($(elapsed "$started") s, load $(load))"
  done
  local fill_s
  fill_s=$(elapsed "$started")
  if [ "$have" -gt "$start_rows" ]; then
    echo "  FILL $(( have - start_rows )) rows in $fill_s s: $(python3 -c "print(round(($have - $start_rows) / $fill_s))") rows/s ($FILL_JOBS at once)"
  fi
  started=$(now_s)
  sql "VACUUM ANALYZE transactions" >/dev/null
  echo "  VACUUM ANALYZE: $(elapsed "$started") s"
}

fill_chunk() { # fill_chunk ROWS: adds up to ROWS finished rows (a collision of ids adds one fewer)
  # Ids like Razorpay's (pay_ and 14 random hex characters); created over the 90 days
  # before the run, finished 30 s after; 1 % FAILED. The creation time is drawn per row:
  # the subquery refers to g, or PostgreSQL evaluates it once for the whole chunk.
  # Each chunk is inserted in time order (cheaper index inserts); the heap still ends up
  # in no time order across chunks, so a page's rows lie on different heap pages, which
  # is worse for the list than production, where rows arrive in time order.
  sql "WITH added AS (
       INSERT INTO transactions (transaction_id, source_account, destination_account, amount,
                                 currency, status, attempts, last_error, created_at,
                                 updated_at, processed_at, republish_at)
       SELECT 'pay_' || substr(md5(random()::text || g::text), 1, 14),
              'acc_' || (g % 100000), 'acc_merchant_' || (g % 5000),
              round((random() * 100000)::numeric, 2) + 1, 'INR',
              CASE WHEN g % 100 = 0 THEN 'FAILED' ELSE 'PROCESSED' END, 1,
              CASE WHEN g % 100 = 0 THEN 'simulated failure' END,
              at, at + interval '30 seconds', at + interval '30 seconds', at
         FROM generate_series(1, $1) AS g,
              LATERAL (SELECT now() - interval '90 days' * random() - interval '1 hour'
                              + interval '0 seconds' * g AS at) AS t
        ORDER BY at
       ON CONFLICT (transaction_id) DO NOTHING
       RETURNING 1)
       SELECT count(*) FROM added"
}

# p50, p99 and max of LIST_REQUESTS sequential calls of each list query: the first page,
# the pages after it (following next_page_token), and a page at a random point of the
# history (the page after the first one created before a random moment of the 90 days:
# a cursor page as deep as any).
measure_list() {
  URL=$URL API_TOKEN=${API_TOKEN:-} LIST_REQUESTS=$LIST_REQUESTS python3 - <<'PY'
import http.client, json, os, random, statistics, time, urllib.parse
from datetime import datetime, timedelta, timezone

base = urllib.parse.urlsplit(os.environ["URL"])
token, count = os.environ["API_TOKEN"], int(os.environ["LIST_REQUESTS"])
now = datetime.now(timezone.utc)
stamp = lambda moment: urllib.parse.quote(moment.isoformat(timespec="seconds"))
day_ago, window = now - timedelta(days=1), (now - timedelta(days=46), now - timedelta(days=45))
in_window = f"created_after={stamp(window[0])}&created_before={stamp(window[1])}"
history = (now - timedelta(days=90), now)
# (name, query, the span a random point is drawn from)
queries = [
    ("unfiltered", "page_size=100", history),
    ("status=PROCESSED", "status=PROCESSED&page_size=100", history),
    ("status=FAILED", "status=FAILED&page_size=100", history),
    ("status=PROCESSING", "status=PROCESSING&page_size=100", history),
    ("created_after (the last day)", f"created_after={stamp(day_ago)}&page_size=100", (day_ago, now)),
    ("created_after+before (a day, 45 days ago)", f"{in_window}&page_size=100", window),
    ("status=FAILED, the same day", f"status=FAILED&{in_window}&page_size=100", window),
]
connection = http.client.HTTPConnection(base.hostname, base.port or 80, timeout=10)

def call(query):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    global connection
    for attempt in (1, 2):
        started = time.perf_counter()
        try:
            connection.request("GET", f"/v1/transactions?{query}", headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
            break
        except (http.client.HTTPException, OSError):
            # The gateway closed the kept-alive connection: open another, not timed.
            connection.close()
            connection = http.client.HTTPConnection(base.hostname, base.port or 80, timeout=10)
            if attempt == 2:
                raise
    elapsed = (time.perf_counter() - started) * 1000
    body = json.loads(raw) if answer.status == 200 else {}
    return elapsed, answer.status, body.get("next_page_token"), len(body.get("transactions", []))

def random_moment(span):
    return span[0] + (span[1] - span[0]) * random.random()

for name, query, span in queries:
    for page in ("first", "next", "deep"):
        times, statuses, rows, cursor = [], {}, 0, None
        for _ in range(count):
            if page == "first":
                q = query
            elif page == "next":
                if not cursor:  # at the start, and when the walk reaches the end
                    cursor = call(query)[2]
                q = f"{query}&page_token={cursor}" if cursor else query
            else:
                # created_before is not combined with the window's own (it would be twice)
                base_query = query.replace(f"&created_before={stamp(window[1])}", "")
                before = f"{base_query}&created_before={stamp(random_moment(span))}"
                start = call(before)[2]
                q = f"{base_query}&page_token={start}" if start else before
            elapsed, status, next_cursor, page_rows = call(q)
            if page == "next":
                cursor = next_cursor
            times.append(elapsed)
            rows += page_rows
            statuses[status] = statuses.get(status, 0) + 1
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"  LIST {name:<42} {page:<5} p50 {statistics.median(times):6.1f} ms"
              f"  p99 {p99:6.1f} ms  max {times[-1]:6.1f} ms  rows/page {rows / count:5.1f}  answers {statuses}")
PY
}

for size in $SIZES; do
  echo "== $size finished rows (load $(load))"
  fill_to "$size"
  echo "  table and indexes: $(sql "SELECT pg_size_pretty(pg_total_relation_size('transactions'))"), rows $(sql "SELECT count(*) FROM transactions")"
  [ -z "$FILL_ONLY" ] || continue
  echo "  ingest (load $(load))"
  LEVELS=$LEVELS RUNS=$RUNS DURATION=$DURATION ./ingest.sh | sed 's/^/  /'
  for _ in $(seq 1 "$CPU_RUNS"); do
    echo "  cpu (load $(load))"
    CONNECTIONS=$LEVELS ./cpu.sh | sed 's/^/  /'
  done
  echo "  list (load $(load))"
  measure_list
  echo "  list done (load $(load))"
done
