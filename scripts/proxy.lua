--[[
proxy.lua: a TCP forwarder. Each client that connects gets its own
connection to the upstream server, and bytes flow both ways.

  usage: luahost scripts/proxy.lua upstream-host upstream-port [host] [port]
         (listens on 127.0.0.1 8000 by default; port 0 picks a free port)
  try:   luahost scripts/proxy.lua 127.0.0.1 6379 127.0.0.1 6380
         redis-cli -p 6380 ping

It prints "listening on HOST:PORT -> UPSTREAM:PORT" once it is ready.

Each direction is one task doing read-then-write, so a slow reader on one
side slows the writer on the other (backpressure: nothing piles up in
memory). When one side finishes sending, the proxy half-closes the other
side (shutdown) and keeps the reverse direction open until it ends too.
]]
local net = require "net"
local task = require "task"

local up_host, up_port = arg[1], tonumber(arg[2])
local host = arg[3] or "127.0.0.1"
local port = tonumber(arg[4] or 8000)
if not up_host or not up_port then
  io.stderr:write("usage: proxy.lua upstream-host upstream-port " ..
    "[host] [port]\n")
  os.exit(2)
end

local CONNECT_TIMEOUT = 10
local IDLE = 300 -- seconds a direction may stay silent

-- Copy from `src` to `dst` until src ends, then half-close dst. If the
-- copy breaks off (reset, timeout), both connections are closed, which
-- also ends the other direction.
local function pump(src, dst, pair)
  while true do
    local data, err = src:recv()
    if not data then
      if err == "closed" and not pair.broken then -- a clean end: pass it on
        dst:shutdown()
        return
      end
      break
    end
    if not dst:write(data) then break end -- waits while dst is slow
  end
  pair.broken = true
  src:close()
  dst:close()
end

local function forward(client)
  local upstream, err = net.connect(up_host, up_port,
    {timeout = CONNECT_TIMEOUT})
  if not upstream then
    io.stderr:write("proxy: upstream ", up_host, ":", up_port, ": ", err,
      "\n")
    client:close()
    return
  end
  client:settimeout(IDLE)
  upstream:settimeout(IDLE)
  local pair = {}
  local back = task.spawn(pump, upstream, client, pair)
  pump(client, upstream, pair)
  back:join()
  upstream:close()
  client:close()
end

local server = net.assert(net.listen{host = host, port = port})
local ip, bound = server:sockname()
if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end -- IPv6
print(("listening on %s:%d -> %s:%d"):format(ip, bound, up_host,
  up_port))
io.stdout:flush()
server:serve(forward)
