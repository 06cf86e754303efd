-- wrk script of scripts/bench-server. Arguments (after `--`):
--   hello                       GET /
--   post <experiment> <key> <n> POST record batches of n events (unique batch ids)
--   get  <experiment> <key>     GET JSONP record, one view
--   page <experiment> <key> <n> POST page-like batches: a view of one of the
--                               variants v1..vn (at random), and its reward
--                               one time in ten
--   all  <experiment> <key> <n> POST batches touching every variant v1..vn:
--                               a view of each, in a shuffled order, and a
--                               reward of the first
-- Optional last arguments `pace=<ms>`: each connection waits that long between
-- requests (a paced run at a chosen rate); `run=<n>`: a number that goes into
-- every batch id, so runs (and two wrk processes at once) never share ids.
-- Prints one `RESULT` line at the end.

local mode, experiment, key, events, pace
local run = 0
local counter = 0
local threads = {}
-- `thread_id` is a global each thread gets from setup().

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local function parse(args)
  mode = args[1]
  experiment = args[2]
  key = args[3]
  events = tonumber(args[4] or "1")
  for _, a in ipairs(args) do
    local p = a:match("^pace=(%d+)$")
    if p then pace = tonumber(p) end
    local r = a:match("^run=(%d+)$")
    if r then run = tonumber(r) end
  end
end

function init(args)
  parse(args)
  math.randomseed(os.time() + (thread_id or 0) * 7919 + run * 104729)
  if mode == "page" or mode == "all" then
    wrk.method = "POST"
    wrk.path = "/v2/experiment/" .. experiment .. "/record"
    wrk.headers["Authorization"] = "ApiKey " .. key
    wrk.headers["Content-Type"] = "application/json"
  elseif mode == "post" then
    local one = {}
    for i = 1, events do
      if i % 10 == 0 then
        one[i] = '{"typename":"reward","variant":"a","amount":1}'
      else
        one[i] = '{"typename":"view","variant":"' .. ((i % 2 == 0) and "a" or "b") .. '"}'
      end
    end
    body_tail = '","events":[' .. table.concat(one, ",") .. ']}'
    wrk.method = "POST"
    wrk.path = "/v2/experiment/" .. experiment .. "/record"
    wrk.headers["Authorization"] = "ApiKey " .. key
    wrk.headers["Content-Type"] = "application/json"
  elseif mode == "get" then
    wrk.method = "GET"
    wrk.path = "/v2/experiment/" .. experiment .. "/record?typename=view&variant=a&apikey=" .. key .. "&callback=cb"
  else
    wrk.method = "GET"
    wrk.path = "/"
  end
end

-- The events of one page-like or all-variant batch.
local function variant_events()
  local one = {}
  if mode == "page" then
    local v = "v" .. math.random(events)
    one[1] = '{"typename":"view","variant":"' .. v .. '"}'
    if math.random(10) == 1 then
      one[2] = '{"typename":"reward","variant":"' .. v .. '","amount":1}'
    end
  else
    local order = {}
    for i = 1, events do order[i] = i end
    for i = events, 2, -1 do
      local j = math.random(i)
      order[i], order[j] = order[j], order[i]
    end
    for i = 1, events do
      one[i] = '{"typename":"view","variant":"v' .. order[i] .. '"}'
    end
    one[events + 1] = '{"typename":"reward","variant":"v' .. order[1] .. '","amount":1}'
  end
  return '","events":[' .. table.concat(one, ",") .. ']}'
end

function request()
  if mode == "page" or mode == "all" then
    counter = counter + 1
    local id = string.format("%08x-%04x-4000-8000-%012x", thread_id or 0, run % 65536, counter)
    return wrk.format(nil, nil, nil, '{"batch":"' .. id .. variant_events())
  end
  if mode == "post" then
    counter = counter + 1
    local id = string.format("%08x-%04x-4000-8000-%012x", thread_id or 0, run % 65536, counter)
    return wrk.format(nil, nil, nil, '{"batch":"' .. id .. body_tail)
  end
  return wrk.format()
end

function delay()
  return pace or 0
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
