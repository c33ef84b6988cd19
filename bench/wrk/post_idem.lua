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

setup = report.setup_ids

function init(args)
   path = os.getenv("BENCH_PATH")
   if path == nil or path == "" then path = wrk.path end
   body = os.getenv("BENCH_BODY")
   if body == nil or body == "" then body = "{}" end
   templated = body:find("{{id}}", 1, true) ~= nil
   local prefix = os.getenv("BENCH_IDEM_PREFIX")
   if prefix == nil or prefix == "" then prefix = "bench" end
   key_prefix = string.format("%s-%s-%d-", prefix, run_id, thread_id)
   counter = 0
   headers = report.json_headers()
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
