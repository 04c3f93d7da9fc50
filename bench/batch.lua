-- wrk script: every request is a batch of BATCH_SIZE distinct, valid events (the events of
-- bench/ingest.lua, each item with its own idempotency_key) to POST /audit_logs/events/batch.
-- Usage:
--   wrk -s bench/batch.lua URL -- ORG_IDS_FILE API_KEY [BATCH_SIZE]
-- The RESULT line counts events (requests x BATCH_SIZE) and items the server refused.
local organizations = {}
local api_key = ""
batch_size = 1000
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
  batch_size = tonumber(args[3] or "1000")
  counter = 0
  refused = 0
end

local actions = { "user.signed_in", "user.signed_out", "document.viewed", "document.shared" }

local function item()
  counter = counter + 1
  local n = counter * 16 + thread_id
  local organization = organizations[((counter * 7919 + thread_id * 104729) % #organizations) + 1]
  return string.format(
    '{"organization_id":"%s","idempotency_key":"bench-%d-%d-%d","event":{"action":"%s","occurred_at":"%s.%03dZ",' ..
    '"actor":{"id":"user_%d","type":"user","name":"User %d","metadata":{"role":"%s"}},' ..
    '"targets":[{"id":"team_%d","type":"team"},{"id":"doc_%d","type":"document"}],' ..
    '"context":{"location":"10.%d.%d.%d","user_agent":"wrk/4"},"metadata":{"request_id":"req_%d_%d"}}}',
    organization, thread_id, counter, os.time(), actions[(n % 4) + 1], os.date("!%Y-%m-%dT%H:%M:%S"), n % 1000,
    n % 1000, n % 1000, (n % 10 == 0) and "admin" or "member",
    n % 100, n % 10000, n % 256, math.floor(n / 256) % 256, n % 7, thread_id, counter)
end

function request()
  local items = {}
  for i = 1, batch_size do items[i] = item() end
  local headers = {
    ["Authorization"] = "Bearer " .. api_key,
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", "/audit_logs/events/batch", headers, '{"events":[' .. table.concat(items, ",") .. ']}')
end

function response(status, headers, body)
  local _, failures = string.gsub(body, '"success":false', "")
  refused = refused + failures
end

function done(summary, latency, requests)
  local size = threads[1]:get("batch_size")
  local refused_items = 0
  for _, thread in ipairs(threads) do refused_items = refused_items + thread:get("refused") end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests":%d,"events":%d,"refused_items":%d,"seconds":%.3f,"non_2xx":%d,"socket_errors":%d,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f}\n',
    summary.requests, summary.requests * size, refused_items, summary.duration / 1e6, summary.errors.status, errors,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
