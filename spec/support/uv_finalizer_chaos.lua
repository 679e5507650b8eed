--[[
uv_finalizer_chaos.lua: finalizers (__gc) that close, write to, stop and
start reading on random live uv handles, or start timers, made all the
time while a uv TCP echo server (callbacks, no tasks) serves 20 clients
of up to 30 connections each; some are left for lua_close to run at
exit. Each op works or raises (pcall'd), and nothing breaks.

SEED picks the random choices. Prints "done N" (clients that finished;
few do: a finalizer that closes a client's handle ends its chain) and
exits 0.
]]
local uv = require "uv"
math.randomseed(tonumber(os.getenv("SEED") or 1))
-- (a young collection at every 1 % of growth: finalizers run often)
collectgarbage("generational", 1, 100)
local handles = {}
local ops = {
  function(h) h:close() end,
  function(h) if h.write then h:write("x") end end,
  function(h) if h.read_stop then h:read_stop() end end,
  function(h) if h.read_start then h:read_start(function() end) end end,
  function(h) if h.shutdown then h:shutdown() end end,
  function(h) if h.stop then h:stop() end end,
  function()
    local t = uv.new_timer()
    t:start(0, 0, function() t:close() end)
  end,
  function(h) if h.try_write then h:try_write(("q"):rep(100000)) end end,
  function() uv.fs_stat(".", function() end) end,
}
local function chaos()
  for _ = 1, math.random(1, 10) do
    setmetatable({}, {__gc = function()
      local l = {}
      for h in pairs(handles) do l[#l + 1] = h end
      if #l > 0 then pcall(ops[math.random(#ops)], l[math.random(#l)]) end
    end})
  end
end
local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
local port = server:getsockname().port
server:listen(128, function()
  local c = uv.new_tcp()
  if not server:accept(c) then c:close() return end
  handles[c] = true
  c:read_start(function(_, data)
    chaos()
    if data then
      pcall(c.write, c, data .. ("z"):rep(math.random(0, 30)))
    else
      handles[c] = nil
      if not c:is_closing() then c:close() end
    end
  end)
end)
local done, deadline = 0, uv.new_timer()
local function finish()
  if not deadline:is_closing() then deadline:close() end
  if not server:is_closing() then server:close() end
  for h in pairs(handles) do
    if not h:is_closing() then h:close() end
  end
end
local function client(n)
  if n == 0 then
    done = done + 1
    if done == 20 then finish() end
    return
  end
  local c = uv.new_tcp()
  handles[c] = true
  local ok = pcall(c.connect, c, "127.0.0.1", port, function(err)
    if err then
      handles[c] = nil
      if not c:is_closing() then c:close() end
      return client(n - 1)
    end
    local k = 0
    pcall(c.read_start, c, function(_, d)
      chaos()
      k = k + 1
      if not d or k > 5 then
        handles[c] = nil
        if not c:is_closing() then c:close() end
        return client(n - 1)
      end
      pcall(c.write, c, ("m"):rep(math.random(1, 2000)))
    end)
    pcall(c.write, c, "hello")
  end)
  if not ok then
    handles[c] = nil
    if not c:is_closing() then c:close() end
    return client(n - 1)
  end
end
for _ = 1, 20 do client(30) end
-- (a client whose handle a finalizer closed or stopped never ends:
-- the run lasts 3 s at most)
deadline:start(3000, 0, finish)
uv.run()
chaos() -- (some for lua_close to run at exit)
print("done " .. done)
