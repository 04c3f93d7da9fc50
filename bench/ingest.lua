-- wrk script: every request is a distinct, valid event (organization, actor, targets,
-- metadata and Idempotency-Key all vary). Usage:
--   wrk -s bench/ingest.lua URL -- ORG_IDS_FILE API_KEY
local organizations = {}
local api_key = ""
local thread_counter = 0
local threads = {}

function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_id", thread_counter)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(organizations, line) end
  end
  api_key = args[2]
  counter = 0
end

local actions = { "user.signed_in", "user.signed_out", "document.viewed", "document.shared" }

function request()
  counter = counter + 1
  local n = counter * 16 + thread_id
  -- A stride coprime with any organization count, so every organization gets traffic.
  local organization = organizations[((counter * 7919 + thread_id * 104729) % #organizations) + 1]
  -- Emitters report events as they happen: occurred_at is "now" (to the second, with
  -- varying milliseconds), as real traffic would send.
  local body = string.format(
    '{"organization_id":"%s","event":{"action":"%s","occurred_at":"%s.%03dZ",' ..
    '"actor":{"id":"user_%d","type":"user","name":"User %d","metadata":{"role":"%s"}},' ..
    '"targets":[{"id":"team_%d","type":"team"},{"id":"doc_%d","type":"document"}],' ..
    '"context":{"location":"10.%d.%d.%d","user_agent":"wrk/4"},"metadata":{"request_id":"req_%d_%d"}}}',
    organization, actions[(n % 4) + 1], os.date("!%Y-%m-%dT%H:%M:%S"), n % 1000,
    n % 1000, n % 1000, (n % 10 == 0) and "admin" or "member",
    n % 100, n % 10000, n % 256, math.floor(n / 256) % 256, n % 7, thread_id, counter)
  local headers = {
    ["Authorization"] = "Bearer " .. api_key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%d-%d-%d", thread_id, counter, os.time()),
  }
  return wrk.format("POST", "/audit_logs/events", headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"non_2xx":%d,"socket_errors":%d,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status, errors,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
