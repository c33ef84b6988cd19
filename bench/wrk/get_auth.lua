-- get_auth.lua: GET one path with an API key.
--
--   BENCH_KEY=olk_... [BENCH_PATH=/v1/whoami] wrk -s bench/wrk/get_auth.lua http://127.0.0.1:PORT
--
-- BENCH_KEY   sent as "Authorization: Bearer $BENCH_KEY" (omitted when unset/empty)
-- BENCH_PATH  request path; default: the path of the URL given to wrk
-- Results: see report.lua (one "WRKJSON {...}" line).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

function setup(thread)
   report.track(thread)
end

function init(args)
   local key = os.getenv("BENCH_KEY")
   local path = os.getenv("BENCH_PATH")
   if path == nil or path == "" then path = wrk.path end
   local headers = {}
   if key ~= nil and key ~= "" then
      headers["Authorization"] = "Bearer " .. key
   end
   -- The request never changes: format it once per thread.
   fixed_request = wrk.format("GET", path, headers, nil)
end

function request()
   return fixed_request
end
