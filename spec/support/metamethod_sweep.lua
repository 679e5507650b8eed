--[[
metamethod_sweep.lua: every metamethod and method of every userdata type a
script can reach, called by hand (getmetatable(v).__gc and the like) with
values of other types: nil, a number, a string, a table, a function, a
file, a coroutine and every other userdata of the sweep. Each call must
raise or answer; the process must not crash. With CROSS set, __gc and
__close are also given the other userdata (a uv handle closes another:
they are of one type to it).

Run by spec/metamethods_spec.lua as a child process; prints
"calls N raised M" at the end. Progress goes to stderr (the last line
names the call a crash happened in).
]]
local uv = require "uv"
local net = require "net"
local task = require "task"
local hcore = require "http.core"
local CROSS = os.getenv("CROSS") == "1"

local objs = {}
local function add(name, v)
  if type(v) == "userdata" then objs[#objs + 1] = {name, v} end
end
local function try(name, f, ...)
  local ok, v = pcall(f, ...)
  if ok then add(name, v) end
end

add("buffer", net.buffer(8))
try("chunked", hcore.chunked)
try("gzip", hcore.gzip, 6)
try("gunzip", hcore.gunzip)
try("timer", uv.new_timer)
try("tcp", uv.new_tcp)
try("udp", uv.new_udp)
try("pipe", uv.new_pipe)
try("idle", uv.new_idle)
try("prepare", uv.new_prepare)
try("check", uv.new_check)
try("signal", uv.new_signal)
try("async", uv.new_async, function() end)
try("fs_event", uv.new_fs_event)
try("fs_poll", uv.new_fs_poll)
try("work", uv.new_work, function() end, function() end)
try("thread_self", uv.thread_self)
try("thread", uv.new_thread, function() end)
try("req", uv.fs_stat, "/", function() end)
try("dir", uv.fs_opendir, "/")
try("process", function()
  return (uv.spawn("true", {}, function() end))
end)

local srv = assert(net.listen{host = "127.0.0.1", port = 0})
local _, port = srv:sockname()
local client
task.spawn(function() client = assert(net.connect("127.0.0.1", port)) end)
local conn = assert(srv:accept(10))
for _ = 1, 1000 do
  if client then break end
  task.sleep(0.01)
end
assert(client, "no client")
add("server", srv)
add("conn", conn)
add("client", client)
try("udp_socket", net.udp, {host = "127.0.0.1", port = 0})

local socks = {srv, conn, client}
local function short_timeouts() -- (a recv on a valid socket returns soon)
  for _, s in ipairs(socks) do pcall(s.settimeout, s, 0.01) end
end

local bads = {nil, 5, "x", {}, print, io.stdout, coroutine.create(print)}
local nbad = 7 -- (bads[1] is nil: # would not count it)
for _, o in ipairs(objs) do
  nbad = nbad + 1
  bads[nbad] = o[2]
end

local calls, raised = 0, 0
local function call(what, f, b)
  io.stderr:write(what, "\n")
  short_timeouts()
  calls = calls + 1
  if not pcall(f, b) then raised = raised + 1 end
  pcall(f, b, b)
end

for _, o in ipairs(objs) do
  local mt = getmetatable(o[2])
  if type(mt) == "table" then
    local fns = {}
    for k, v in pairs(mt) do
      if type(v) == "function" then fns[k] = v end
    end
    if type(mt.__index) == "table" then
      for k, v in pairs(mt.__index) do
        if type(v) == "function" then fns["." .. k] = v end
      end
    end
    local names = {}
    for k in pairs(fns) do names[#names + 1] = k end
    table.sort(names) -- (one order a run: a crash replays)
    for _, k in ipairs(names) do
      local ending = k == "__gc" or k == "__close" or k == ".close"
      for i = 1, nbad do
        local b = bads[i]
        if b ~= o[2] and (not ending or type(b) ~= "userdata" or CROSS) then
          call(o[1] .. " " .. k .. " #" .. i, fns[k], b)
        end
      end
    end
  end
end
for _, s in ipairs(socks) do s:close() end
print(("calls %d raised %d"):format(calls, raised))
os.exit(0)
