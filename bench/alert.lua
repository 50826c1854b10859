-- wrk script: POST a canonical TradingView alert, each with an id no other request reuses.
-- Same body as ../shared/bench/alert.lua, except for the id. That script's math.random starts
-- from the same seed in every wrk thread and every run, so its ids repeat across threads and
-- runs, and PineLab (rightly) stores the repeats as duplicates, which skip the job insert.
-- Here the id is "bench-<run>-<thread>-<n>": pass a run id that is new for each run.
-- An optional second argument, comma-separated webhook tokens, spreads the alerts over those
-- strategies in turn (each request goes to /webhooks/<token>); without it, the URL's path.
--   wrk -t2 -c64 -d10s --latency -s alert.lua http://127.0.0.1:PORT/webhooks/TOKEN -- RUN_ID
--   wrk -t2 -c64 -d10s --latency -s alert.lua http://127.0.0.1:PORT -- RUN_ID T1,T2,T3
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local prefix = "bench"
local counter = 0
local paths = {}

function init(args)
  prefix = string.format("bench-%s-%d", args[1] or "run", thread_id or 0)
  for token in string.gmatch(args[2] or "", "[^,]+") do
    paths[#paths + 1] = "/webhooks/" .. token
  end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"ticker":"AAPL","action":"buy","quantity":1,"price":190.25,"id":"%s-%d","time":"2026-01-02T15:30:00Z"}',
    prefix, counter)
  local path = nil
  if #paths > 0 then
    path = paths[(counter % #paths) + 1]
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end
