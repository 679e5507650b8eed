--[[
spec/support/tcp_cycles.lua: a lifetime measurement, not part of the suite.
  build/luahost spec/support/tcp_cycles.lua [cycles]
Runs `cycles` (default 100000) sequential connect/accept/write/close cycles
over 127.0.0.1 and prints VmRSS and Lua memory after a warm-up and at the
end, and the number of handles uv.walk still finds open (must be 0).
]]
local uv = require "uv"
local N = tonumber(arg and arg[1]) or 100000

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
local port = server:getsockname().port
local closed = 0
assert(server:listen(128, function(err)
  assert(not err, err)
  local conn = uv.new_tcp()
  assert(server:accept(conn))
  conn:read_start(function(_, data)
    if not data then conn:close(function() closed = closed + 1 end) end
  end)
end))

local function cycles(n)
  local target = closed + n
  for i = 1, n do
    local c, done = uv.new_tcp(), false
    c:connect("127.0.0.1", port, function(err)
      assert(not err, err)
      c:write("x" .. i, function() c:close(function() done = true end) end)
    end)
    while not done do uv.run("once") end
  end
  while closed < target do uv.run("once") end
end

local function report(label)
  collectgarbage(); collectgarbage()
  print(("%-10s VmRSS %6d KiB  Lua %8.1f KiB"):format(label, rss_kb(),
        collectgarbage("count")))
end

cycles(1000)
report("warm-up")
local t0 = uv.hrtime()
cycles(N)
local secs = (uv.hrtime() - t0) / 1e9
report("after " .. N)
server:close()
uv.run("nowait")
local open = 0
uv.walk(function(h) if not h:is_closing() then open = open + 1 end end)
print(("%d cycles in %.1f s (%.0f/s), open handles: %d"):format(N, secs,
      N / secs, open))
