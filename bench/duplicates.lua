-- wrk script for bench/duplicates.sh: every request is the same webhook (one
-- transaction_id per run), as a processor retrying a storm of deliveries. All must be
-- answered 202; one row and one processing result.

run_id = string.format("%d%04d", os.time(), math.random(0, 9999))

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  accepted, other = 0, 0
  body = string.format(
    '{"transaction_id":"dup_%s","source_account":"acc_bench_a",' ..
    '"destination_account":"acc_bench_b","amount":99.99,"currency":"INR"}', run_id)
end

function request()
  return wrk.format("POST", "/v1/webhooks/transactions",
    { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    o = o + thread:get("other")
  end
  io.write(string.format(
    "RESULT transaction_id=dup_%s responses=%d accepted_202=%d other=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f req_per_s=%.0f\n",
    run_id, a + o, a, o, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.requests / (summary.duration / 1e6)))
end
