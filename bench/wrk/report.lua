-- report.lua: shared wrk reporting, loaded by the other scripts with
--   dofile(<this directory> .. "report.lua")
--
-- done() prints one machine-readable line on stdout, after wrk's own summary:
--   WRKJSON {"requests":N,"duration_s":S,"rps":R,"p50_ms":..,"p90_ms":..,
--            "p99_ms":..,"max_ms":..,"mean_ms":..,"non_2xx":N,"socket_errors":N,...}
--
-- non_2xx: by default wrk's own count of responses with status >= 400 (cheap:
-- wrk does not have to hand every response to Lua). With WRK_STATUS_DETAIL=1
-- a response() hook counts every status exactly (also 1xx/3xx) and the line
-- gets a "status" histogram; this costs client CPU, so it is off by default.
-- socket_errors = connect + read + write + timeout errors.

report = report or {}
report.threads = report.threads or {}

-- Register a wrk thread (call from setup()) so done() can read its counters.
function report.track(thread)
   table.insert(report.threads, thread)
end

-- setup() of the scripts that make unique ids: gives each thread the
-- globals run_id (48 random bits drawn once per wrk run, from /dev/urandom,
-- else time + math.random) and thread_id (1, 2, ...), and tracks it. Ids
-- "<run>-<thread>-<counter>" are unique across threads and across runs
-- against the same database. (setup() runs in the main Lua state; the
-- threads see only what thread:set() copies into their globals.)
local next_thread_id = 0
local this_run = nil

function report.setup_ids(thread)
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

-- The headers of a JSON POST, with "Authorization: Bearer $BENCH_KEY"
-- when BENCH_KEY is set.
function report.json_headers()
   local key = os.getenv("BENCH_KEY")
   local headers = { ["Content-Type"] = "application/json" }
   if key ~= nil and key ~= "" then
      headers["Authorization"] = "Bearer " .. key
   end
   return headers
end

report.detail = os.getenv("WRK_STATUS_DETAIL") == "1"

if report.detail then
   status_counts = {}
   function response(status, headers, body)
      status_counts[status] = (status_counts[status] or 0) + 1
   end
end

local function ms(us)
   return math.floor(us) / 1000.0
end

local function json_num(x)
   if x ~= x or x == math.huge or x == -math.huge then return "null" end
   if x == math.floor(x) and math.abs(x) < 1e15 then
      return string.format("%d", x)
   end
   return string.format("%.3f", x)
end

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   local non2xx = e.status
   local hist = nil
   if report.detail then
      hist = {}
      non2xx = 0
      for _, t in ipairs(report.threads) do
         local counts = t:get("status_counts")
         if counts then
            for status, n in pairs(counts) do
               hist[status] = (hist[status] or 0) + n
               if status < 200 or status > 299 then non2xx = non2xx + n end
            end
         end
      end
   end
   local fields = {
      {"requests", summary.requests},
      {"duration_s", secs},
      {"rps", secs > 0 and summary.requests / secs or 0},
      {"bytes", summary.bytes},
      {"p50_ms", ms(latency:percentile(50))},
      {"p90_ms", ms(latency:percentile(90))},
      {"p99_ms", ms(latency:percentile(99))},
      {"max_ms", ms(latency.max)},
      {"mean_ms", ms(latency.mean)},
      {"stdev_ms", ms(latency.stdev)},
      {"non_2xx", non2xx},
      {"socket_errors", e.connect + e.read + e.write + e.timeout},
      {"errors_connect", e.connect},
      {"errors_read", e.read},
      {"errors_write", e.write},
      {"errors_timeout", e.timeout},
   }
   local parts = {}
   for _, f in ipairs(fields) do
      table.insert(parts, string.format("%q:%s", f[1], json_num(f[2])))
   end
   if hist then
      local hp = {}
      for status, n in pairs(hist) do
         table.insert(hp, string.format("\"%d\":%d", status, n))
      end
      table.insert(parts, "\"status\":{" .. table.concat(hp, ",") .. "}")
   end
   io.write("WRKJSON {" .. table.concat(parts, ",") .. "}\n")
end
