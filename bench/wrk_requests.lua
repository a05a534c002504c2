-- wrk script for bench/wrk.py: requests read from a file, one per line,
--   METHOD <TAB> PATH <TAB> BEARER-TOKEN or - <TAB> JSON-BODY or -
-- wrk -s wrk_requests.lua URL -- FILE THREADS
-- Each wrk thread sends its own share of the lines (line i goes to thread i % THREADS), in
-- turn; past the end of its share it starts again, and those requests count as repeats
-- (for payments the bench makes enough orders that there are none). done() prints one line,
-- "WRK_JSON {...}", that the bench parses.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(fields, field)
  end
  return fields
end

function init(args)
  local file, count = args[1], tonumber(args[2])
  shared = {}
  local i = 0
  for line in io.lines(file) do
    if i % count == id then
      local f = split(line)
      local headers = {}
      if f[3] ~= "-" then headers["Authorization"] = "Bearer " .. f[3] end
      local body = nil
      if f[4] ~= "-" then
        body = f[4]
        headers["Content-Type"] = "application/json"
      end
      table.insert(shared, wrk.format(f[1], f[2], headers, body))
    end
    i = i + 1
  end
  share = #shared
  sent = 0
  bad = 0
end

function request()
  sent = sent + 1
  return shared[(sent - 1) % share + 1]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local repeats, bad_total = 0, 0
  for _, thread in ipairs(threads) do
    repeats = repeats + math.max(0, thread:get("sent") - thread:get("share"))
    bad_total = bad_total + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "repeats": %d, ' ..
    '"socket_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d}\n',
    summary.requests, summary.duration, bad_total, repeats,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
