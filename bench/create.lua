-- wrk script: POST a new member with a unique email on every request, then report like
-- ../shared/bench/report.lua. env PREFIX keeps runs apart.
local counter = 0
local prefix = os.getenv("PREFIX") or "w"
local threads = {}

setup = function(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

request = function()
  counter = counter + 1
  local body = string.format('{"email":"%s-%d-%d@create.bench.example","full_name":"Created %d","role":"viewer"}',
    prefix, tid, counter, counter)
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", nil, headers, body)
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms requests=%d non2xx3xx=%d sockerr=%d secs=%.1f\n",
    summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, secs))
end
