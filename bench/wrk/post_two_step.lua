-- post_two_step.lua: a create followed by its completion, a fresh
-- Idempotency-Key per request (issue #16's hold_capture and order_settle).
--
--   BENCH_KEY=olk_... BENCH_MODE=hold|order BENCH_ACCOUNTS=1000 \
--       wrk -s bench/wrk/post_two_step.lua http://127.0.0.1:PORT
--
-- BENCH_MODE  hold:  POST /v1/holds (from -> to, amount 1), then
--                    POST /v1/holds/{id}/capture (the whole hold)
--             order: POST /v1/orders (customer -> merchant, amount 1), then
--                    POST /v1/orders/{id}/settle
-- A thread's request() sends the completion of a created object when one
-- is waiting (its id read from the 201's body by response()), else a new
-- create: so about half the requests are creates and half completions, and
-- a completion is never sent before its create was answered. wrk's rps is
-- HTTP requests per second; operations per second are half of it.
-- A refused create or completion (>= 400) is in the WRKJSON line's non_2xx.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

setup = report.setup_ids

function init(args)
   mode = os.getenv("BENCH_MODE") or "hold"
   naccounts = tonumber(os.getenv("BENCH_ACCOUNTS") or "1000")
   prefix = os.getenv("BENCH_ACCOUNT_PREFIX") or "bacc-"
   id_prefix = string.format("%s-%s-%d-", mode, run_id, thread_id)
   counter = 0
   waiting = {}
   math.randomseed(thread_id * 7919 + os.time())
   headers = report.json_headers()
end

function request()
   counter = counter + 1
   headers["Idempotency-Key"] = id_prefix .. "k" .. counter
   local id = table.remove(waiting)
   if id ~= nil then
      if mode == "order" then
         return wrk.format("POST", "/v1/orders/" .. id .. "/settle", headers, "{}")
      end
      return wrk.format("POST", "/v1/holds/" .. id .. "/capture", headers, "{}")
   end
   local a = math.random(0, naccounts - 1)
   local b = math.random(0, naccounts - 2)
   if b >= a then b = b + 1 end
   local new_id = id_prefix .. counter
   if mode == "order" then
      return wrk.format("POST", "/v1/orders", headers, string.format(
         '{"id":"%s","customer":"%s%d","merchant":"%s%d","amount":1,"currency":"USD"}', new_id, prefix, a, prefix, b))
   end
   return wrk.format("POST", "/v1/holds", headers, string.format(
      '{"id":"%s","from":"%s%d","to":"%s%d","amount":1,"currency":"USD"}', new_id, prefix, a, prefix, b))
end

function response(status, hdrs, body)
   if status == 201 then
      local id = body:match('"id"%s*:%s*"([^"]+)"')
      if id ~= nil then table.insert(waiting, id) end
   end
end
