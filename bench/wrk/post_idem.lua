-- post_idem.lua: POST a JSON body with a fresh Idempotency-Key on every request.
--
--   BENCH_KEY=olk_... BENCH_PATH=/v1/... BENCH_BODY='{"amount":100}' \
--       wrk -s bench/wrk/post_idem.lua http://127.0.0.1:PORT
--
-- BENCH_KEY    sent as "Authorization: Bearer $BENCH_KEY" (omitted when unset/empty)
-- BENCH_PATH   request path; default: the path of the URL given to wrk
-- BENCH_BODY   request body (JSON), default "{}"; every "{{id}}" in it is replaced
--              by the request's idempotency key, e.g. to make ids unique
-- BENCH_IDEM_PREFIX  prefix of the keys (default "bench")
--
-- Keys are "<prefix>-<run>-<thread>-<counter>": <run> is drawn once per wrk run
-- (48 random bits from /dev/urandom, else time + math.random), <thread> is set per wrk thread in setup(), <counter> counts
-- that thread's requests. So keys are unique across threads, and across runs
-- against the same database.
-- Results: see report.lua (one "WRKJSON {...}" line).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

-- Main-state locals (setup() runs in the main Lua state); the thread states
-- see only what thread:set() copied into their globals.
local next_thread_id = 0
local this_run = nil

function setup(thread)
   if this_run == nil then
      local f = io.open("/dev/urandom", "rb")
      if f then
         local bytes = f:read(6)
         f:close()
         this_run = bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)
      else
         math.randomseed(os.time())
         this_run = string.format("%x%06x", os.time(), math.random(0, 0xffffff))
      end
   end
   next_thread_id = next_thread_id + 1
   thread:set("thread_id", next_thread_id)
   thread:set("run_id", this_run)
   report.track(thread)
end

function init(args)
   local key = os.getenv("BENCH_KEY")
   path = os.getenv("BENCH_PATH")
   if path == nil or path == "" then path = wrk.path end
   body = os.getenv("BENCH_BODY")
   if body == nil or body == "" then body = "{}" end
   templated = body:find("{{id}}", 1, true) ~= nil
   local prefix = os.getenv("BENCH_IDEM_PREFIX")
   if prefix == nil or prefix == "" then prefix = "bench" end
   key_prefix = string.format("%s-%s-%d-", prefix, run_id, thread_id)
   counter = 0
   headers = { ["Content-Type"] = "application/json" }
   if key ~= nil and key ~= "" then
      headers["Authorization"] = "Bearer " .. key
   end
end

function request()
   counter = counter + 1
   local idem = key_prefix .. counter
   headers["Idempotency-Key"] = idem
   local b = body
   if templated then
      b = body:gsub("{{id}}", idem)
   end
   return wrk.format("POST", path, headers, b)
end
