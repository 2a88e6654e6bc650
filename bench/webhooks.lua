-- wrk script for bench/ingest.sh and bench/overload.sh: POSTs webhooks with a unique transaction_id per
-- request and counts 202 (accepted) against 503: shed at the gateway's concurrency limit
-- ("overloaded") or past a deadline ("unavailable"), and anything else.
--
-- wrk runs one Lua state per thread plus the main state (setup and done run there).
-- `thread:set(name, v)` writes a *global* of the thread's state: a file-scope `local`
-- of the same name would hide it, so the per-thread values below are globals.

local threads = {} -- main state only: the thread handles, read back in done()

function setup(thread)
  thread:set("thread_number", #threads + 1)
  thread:set("run_id", run_id_for_this_run)
  table.insert(threads, thread)
end

-- One id per run, so repeated runs never collide with rows already stored.
run_id_for_this_run = string.format("%d%04d", os.time(), math.random(0, 9999))

function init(args)
  counter, accepted, shed, unavailable, other = 0, 0, 0, 0, 0
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"transaction_id":"bench_%s_%d_%d","source_account":"acc_bench_a",' ..
    '"destination_account":"acc_bench_b","amount":1500.50,"currency":"INR"}',
    run_id, thread_number, counter)
  return wrk.format("POST", "/v1/webhooks/transactions",
    { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  elseif status == 503 and string.find(body, "problem:overloaded", 1, true) then
    shed = shed + 1
  elseif status == 503 then
    unavailable = unavailable + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, s, u, o = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    s = s + thread:get("shed")
    u = u + thread:get("unavailable")
    o = o + thread:get("other")
  end
  local total = math.max(a + s + u + o, 1)
  local errors = summary.errors
  io.write(string.format(
    "RESULT responses=%d accepted_202=%d (%.1f%%) shed_503=%d (%.1f%%) " ..
    "deadline_503=%d (%.1f%%) other=%d " ..
    "p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f req_per_s=%.0f accepted_per_s=%.0f " ..
    "socket_errors(connect=%d read=%d write=%d timeout=%d)\n",
    a + s + u + o, a, 100 * a / total, s, 100 * s / total, u, 100 * u / total, o,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests / (summary.duration / 1e6), a / (summary.duration / 1e6),
    errors.connect, errors.read, errors.write, errors.timeout))
end
