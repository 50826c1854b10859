-- wrk script: POST a canonical TradingView alert, each with an id no other request reuses.
-- Same body as ../shared/bench/alert.lua, except for the id. That script's math.random starts
-- from the same seed in every wrk thread and every run, so its ids repeat across threads and
-- runs, and PineLab (rightly) stores the repeats as duplicates, which skip the job insert.
-- Here the id is "bench-<run>-<thread>-<n>": pass a run id that is new for each run.
--   wrk -t2 -c64 -d10s --latency -s alert.lua http://127.0.0.1:PORT/webhooks/TOKEN -- RUN_ID
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local prefix = "bench"
local counter = 0

function init(args)
  prefix = string.format("bench-%s-%d", args[1] or "run", thread_id or 0)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"ticker":"AAPL","action":"buy","quantity":1,"price":190.25,"id":"%s-%d","time":"2026-01-02T15:30:00Z"}',
    prefix, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
