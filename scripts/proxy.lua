--[[
proxy.lua: a TCP forwarder. Each client that connects gets its own
connection to the upstream server, and bytes flow both ways.

  usage: luahost scripts/proxy.lua upstream-host upstream-port [host] [port]
         (listens on 127.0.0.1 8000 by default; port 0 picks a free port)
  try:   luahost scripts/proxy.lua 127.0.0.1 6379 127.0.0.1 6380
         redis-cli -p 6380 ping

It prints "listening on HOST:PORT -> UPSTREAM:PORT" once it is ready.

The bytes never become Lua strings: net.splice moves them in C, both
ways at once, from one connection's read straight to the other's write.
A slow reader on one side stops the reading on the other (backpressure:
nothing piles up in memory). When one side finishes sending, the proxy
half-closes the other side (shutdown) and keeps the reverse direction
open until it ends too. A reset, an error or IDLE seconds with no byte
either way close both connections.
]]
local net = require "net"

local up_host, up_port = arg[1], math.tointeger(tonumber(arg[2]))
local host = arg[3] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[4] or 8000))
local function is_port(n) return n and n >= 0 and n <= 65535 end
if not up_host or not is_port(up_port) or up_port == 0 or
  not is_port(port) then
  io.stderr:write("usage: proxy.lua upstream-host upstream-port " ..
    "[host] [port]\n")
  os.exit(2)
end

local CONNECT_TIMEOUT = 10
local IDLE = 300 -- seconds the pair may stay silent (no byte either way)

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
  net.splice(client, upstream) -- until both ends are done, or a failure
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
