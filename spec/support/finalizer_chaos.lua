--[[
finalizer_chaos.lua: finalizers (__gc) that call net and task functions on
live sockets, made all the time while an echo server (one shared
net.buffer, recv_into) serves 20 clients of 30 connections each. A
finalizer runs inside whatever allocated: the handlers' Lua, and net's
own C code (a recv's string, a task's start). Each op either works, or
raises (a wait: "cannot wait here"; a second reader), and nothing
breaks.

SEED picks the random choices; OPS ("1,2,...") the ops in play. Prints
"done N" (clients that finished: one whose recv was refused fails) and
exits 0.
]]
local net = require "net"
local task = require "task"
math.randomseed(tonumber(os.getenv("SEED") or 1))
-- (a young collection at every 1 % of growth: finalizers run often, at
-- many more of the places that allocate)
collectgarbage("generational", 1, 100)
local conns = {}
local buf = net.buffer(4096)
local srv = assert(net.listen{host = "127.0.0.1", port = 0})
local _, port = srv:sockname()
local all_ops = {
  function(c) c:close() end,
  function(c) c:write("x") end,
  function(c) c:write(buf) end,
  function(c) c:settimeout(math.random() < 0.5 and 0 or nil) end,
  function(c) c:peername() end,
  function(c) c:recv() end, -- (buffered input, or a wait: it raises)
  function(c) task.spawn(function() c:recv_into(buf) end) end,
  function(c) task.spawn(function() c:write(("y"):rep(100000)) end) end,
  function(c) c:setopt("nodelay", true) end,
  function() collectgarbage("step") end,
  function(c) task.spawn(function() c:close() end) end,
  function(c) task.spawn(function() c:recv() end) end,
  function(c) c:read(math.random(1, 10)) end,
}
local ops = {}
for d in (os.getenv("OPS") or "1,2,3,4,5,6,7,8,9,10,11,12,13"):gmatch("%d+")
do
  ops[#ops + 1] = all_ops[tonumber(d)]
end
local function chaos()
  for _ = 1, math.random(1, 20) do
    setmetatable({}, {__gc = function()
      local list = {}
      for c in pairs(conns) do list[#list + 1] = c end
      if #list > 0 then
        ops[math.random(#ops)](list[math.random(#list)])
      end
    end})
  end
end
task.on_error(function() end) -- (tasks that fail on a refused op: quiet)
task.spawn(function()
  srv:serve(function(conn)
    conns[conn] = true
    while true do
      chaos()
      local n = conn:recv_into(buf)
      if not n then break end
      chaos()
      if not conn:write(buf, ("z"):rep(math.random(0, 50))) then break end
    end
    conns[conn] = nil
  end)
end)
local done = 0
for _ = 1, 20 do
  task.spawn(function()
    for _ = 1, 30 do
      local c = net.connect("127.0.0.1", port, {timeout = 2})
      if c then
        conns[c] = true
        for _ = 1, math.random(1, 10) do
          chaos()
          if not c:write(("m"):rep(math.random(1, 3000))) then break end
          if not c:recv() then break end -- (raises when refused)
        end
        conns[c] = nil
        c:close()
      end
    end
    done = done + 1
  end)
end
local t0 = task.now()
while done < 20 and task.now() - t0 < 60 do task.sleep(0.05) end
print("done " .. done)
srv:close()
os.exit(0)
