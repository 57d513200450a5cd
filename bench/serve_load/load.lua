-- wrk script for bench/serve_load/run: POSTs the photos listed in a file to /api/v1/recognition/recognize as
-- multipart `file`, in turn, and counts answers by status. Usage: wrk -s load.lua URL -- KEY LIST
local bodies = {}
local at = 0
local boundary = "facekitLoadBoundary7MA4YWxk"

function init(args)
  key = args[1]
  for path in io.lines(args[2]) do
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    bodies[#bodies + 1] = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\n" ..
      "Content-Type: image/jpeg\r\n\r\n" .. data .. "\r\n--" .. boundary .. "--\r\n"
  end
  at = math.random(#bodies)
  ok, s429, s503, other = 0, 0, 0, 0
end

function request()
  at = at % #bodies + 1
  return wrk.format("POST", "/api/v1/recognition/recognize",
    {["x-api-key"] = key, ["Content-Type"] = "multipart/form-data; boundary=" .. boundary}, bodies[at])
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  else other = other + 1 end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("ok"); b = b + t:get("s429"); c = c + t:get("s503"); d = d + t:get("other")
  end
  local e = summary.errors
  local s = summary.duration / 1e6
  io.write(string.format('{"requests":%d,"duration_s":%.2f,"ok":%d,"ok_per_s":%.2f,"status_429":%d,' ..
    '"status_503":%d,"other_status":%d,"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"p50_ms":%.1f,"p90_ms":%.1f,"p99_ms":%.1f,"max_ms":%.1f}\n',
    summary.requests, s, a, a / s, b, c, d, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
