--[[
portcheck.lua: which TCP ports of a host accept connections. The ports are
tried concurrently (a pool of tasks), each attempt bounded by a timeout.

  usage: luahost scripts/portcheck.lua [-t seconds] [-c count] host port...
    port      a number or a range, e.g. 22 80 8000-8010
    -t        seconds to wait for each connection (default 2)
    -c        attempts in flight at once (default 64)
  try:   luahost scripts/portcheck.lua 127.0.0.1 22 80 443 6379 8000-8010

It prints one line per port, in port order: "PORT open", "PORT closed
(ECONNREFUSED)" or "PORT timeout"; then "N of M open". Exit status 0 if at
least one port is open, 1 if none is, 2 for bad arguments.
]]
local net = require "net"
local task = require "task"

local USAGE = "usage: portcheck.lua [-t seconds] [-c count] host port...\n"
local MAX_PORTS = 65536

local timeout, count, target, ports = 2, 64, nil, {}
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "-t" or a == "-c" then
      local n = tonumber(arg[i + 1])
      if not n or n <= 0 then io.stderr:write(USAGE) os.exit(2) end
      if a == "-t" then timeout = n else count = math.floor(n) end
      i = i + 1
    elseif not target then
      target = a
    else
      local lo, hi = a:match("^(%d+)%-(%d+)$")
      lo, hi = tonumber(lo or a), tonumber(hi or a)
      if not lo or not hi or lo < 1 or hi > 65535 or lo > hi or
         #ports + hi - lo >= MAX_PORTS then
        io.stderr:write("portcheck: bad port: ", a, "\n", USAGE)
        os.exit(2)
      end
      for p = lo, hi do ports[#ports + 1] = p end
    end
    i = i + 1
  end
  if not target or #ports == 0 then io.stderr:write(USAGE) os.exit(2) end
end

local results = {} -- port index -> "open" | "closed (...)" | "timeout"
local next_index = 1

-- A worker takes the next untried port until none is left.
local function worker()
  while next_index <= #ports do
    local i = next_index
    next_index = i + 1
    local conn, err = net.connect(target, ports[i], {timeout = timeout})
    if conn then
      conn:close()
      results[i] = "open"
    elseif err == "timeout" then
      results[i] = "timeout"
    else
      results[i] = "closed (" .. tostring(err) .. ")"
    end
  end
end

local workers = {}
for w = 1, math.min(count, #ports) do workers[w] = task.spawn(worker) end
for _, w in ipairs(workers) do w:join() end

local open = 0
for i, port in ipairs(ports) do
  print(port .. " " .. results[i])
  if results[i] == "open" then open = open + 1 end
end
print(("%d of %d open"):format(open, #ports))
os.exit(open > 0 and 0 or 1)
