-- wrk script: POST /scim/v2/Users with a unique userName on every request (as Okta creates a
-- user), then report like ../shared/bench/report.lua. env PREFIX keeps runs apart.
local counter = 0
local prefix = os.getenv("PREFIX") or "s"
local threads = {}

setup = function(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

request = function()
  counter = counter + 1
  local email = string.format("%s-%d-%d@scim.bench.example", prefix, tid, counter)
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s","name":{"givenName":"Scim","familyName":"User %d"},' ..
    '"emails":[{"value":"%s","type":"work","primary":true}],"title":"Clerk","active":true,"externalId":"ext-%d-%d"}',
    email, counter, email, tid, counter)
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Content-Type"] = "application/scim+json"
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
