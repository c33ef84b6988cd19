-- post_replay.lua: POST one body with one Idempotency-Key, over and over:
-- after the first request every answer is a replay of the saved response.
--
--   BENCH_KEY=olk_... BENCH_PATH=/v1/accounts BENCH_BODY='{...}' BENCH_IDEM_KEY=k \
--       wrk -s bench/wrk/post_replay.lua http://127.0.0.1:PORT
--
-- Results: see report.lua (one "WRKJSON {...}" line).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

function setup(thread)
   report.track(thread)
end

function init(args)
   local path = os.getenv("BENCH_PATH")
   if path == nil or path == "" then path = wrk.path end
   local body = os.getenv("BENCH_BODY")
   if body == nil or body == "" then body = "{}" end
   local headers = report.json_headers()
   headers["Idempotency-Key"] = os.getenv("BENCH_IDEM_KEY") or "bench-replay"
   fixed_request = wrk.format("POST", path, headers, body)
end

function request()
   return fixed_request
end
