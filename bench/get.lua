-- wrk script for authenticated GETs of a fixed path. Usage:
--   wrk -s bench/get.lua URL -- API_KEY
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end

function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"non_2xx":%d,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
