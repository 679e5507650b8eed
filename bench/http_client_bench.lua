--[==[
bench/http_client_bench.lua PORT [SECONDS [TASKS [WARMUP]]]: the http
module's client against a server on 127.0.0.1:PORT, as `wrk -t1 -cTASKS`
loads one: TASKS tasks, each sending `GET /hello` and reading the body
again and again through the connection pool (keep-alive), for SECONDS
after WARMUP. Every body is checked ("hello world\n"). Prints one line:

  msgs=N msgs_per_s=R cli_us_per_msg=C errors=E

where C is this process's CPU time (user + system) per request over the
measured window. Exits 1 on any failed or wrong answer.
]==]
local http = require "http"
local task = require "task"
local uv = require "uv"

local port = tonumber(arg[1])
local secs = tonumber(arg[2] or 3)
local ntasks = math.tointeger(tonumber(arg[3] or 50))
local warm = tonumber(arg[4] or 0.5)
if not (port and secs and ntasks and warm) then
  io.stderr:write("usage: http_client_bench.lua PORT [SECONDS [TASKS " ..
    "[WARMUP]]]\n")
  os.exit(2)
end

-- one pooled connection per task, as wrk keeps one per connection
http.defaults.limits.pool = ntasks

local url = "http://127.0.0.1:" .. port .. "/hello"
local BODY = "hello world\n"

local function cpu_us()
  local r = uv.getrusage()
  return (r.utime.sec + r.stime.sec) * 1e6 + r.utime.usec + r.stime.usec
end

local count, errors, first_error = 0, 0, nil
local t_start, t_stop, cpu0, cpu1
local running = ntasks

local function worker()
  local stop = task.now() + warm + secs
  while task.now() < stop do
    local res, err = http.request{url = url, timeout = 10}
    local body
    if res then body, err = res:body() end
    if body ~= BODY then
      errors = errors + 1
      first_error = first_error or tostring(err or ("status " ..
        tostring(res and res.status) .. ", body " .. tostring(body)))
      break
    end
    if t_start and not t_stop then count = count + 1 end
  end
  running = running - 1
end

task.spawn(function()
  for _ = 1, ntasks do task.spawn(worker) end
  task.sleep(warm)
  t_start, cpu0 = task.now(), cpu_us()
  task.sleep(secs)
  t_stop, cpu1 = task.now(), cpu_us()
  for _ = 1, 1000 do -- the tasks finish their last request (bounded)
    if running == 0 then break end
    task.sleep(0.01)
  end
  local elapsed = t_stop - t_start
  print(("msgs=%d msgs_per_s=%.0f cli_us_per_msg=%.3f errors=%d"):format(
    count, count / elapsed, count > 0 and (cpu1 - cpu0) / count or 0,
    errors))
  require("http.client").close_idle()
  if errors > 0 or count == 0 then
    io.stderr:write("http_client_bench: ", errors, " failed requests: ",
      tostring(first_error), "\n")
    os.exit(1)
  end
end)
