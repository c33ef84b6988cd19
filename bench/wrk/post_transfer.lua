-- post_transfer.lua: random ledger money movements, a fresh Idempotency-Key each.
--
--   BENCH_KEY=olk_... BENCH_MODE=transfer|credit BENCH_ACCOUNTS=1000 \
--       wrk -s bench/wrk/post_transfer.lua http://127.0.0.1:PORT
--
-- BENCH_MODE       transfer: POST /v1/transfers between two distinct random accounts
--                  credit:   POST /v1/accounts/{random}/credits (from @world)
-- BENCH_ACCOUNTS   how many accounts: ids "<prefix><i>", i in 0..N-1 (default 1000)
-- BENCH_ACCOUNT_PREFIX  default "bacc-"
-- BENCH_DELAY_MS   optional pause of each connection before each request
--                  (a lighter, paced load: the latency at part of the peak)
-- Results: see report.lua (one "WRKJSON {...}" line).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

setup = report.setup_ids

function init(args)
   mode = os.getenv("BENCH_MODE") or "transfer"
   naccounts = tonumber(os.getenv("BENCH_ACCOUNTS") or "1000")
   prefix = os.getenv("BENCH_ACCOUNT_PREFIX") or "bacc-"
   pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
   key_prefix = string.format("tr-%s-%d-", run_id, thread_id)
   counter = 0
   math.randomseed(thread_id * 7919 + os.time())
   headers = report.json_headers()
end

function delay()
   return pause
end

function request()
   counter = counter + 1
   headers["Idempotency-Key"] = key_prefix .. counter
   local a = math.random(0, naccounts - 1)
   if mode == "credit" then
      return wrk.format("POST", "/v1/accounts/" .. prefix .. a .. "/credits", headers, '{"amount":1}')
   end
   local b = math.random(0, naccounts - 2)
   if b >= a then b = b + 1 end
   local body = string.format('{"from":"%s%d","to":"%s%d","amount":1,"currency":"USD"}', prefix, a, prefix, b)
   return wrk.format("POST", "/v1/transfers", headers, body)
end
