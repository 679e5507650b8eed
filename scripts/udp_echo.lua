--[[
udp_echo.lua: a UDP echo server. Every datagram goes back to its sender.

  usage: luahost scripts/udp_echo.lua [host] [port]
         (defaults: 127.0.0.1 7000; port 0 picks a free port)
  try:   socat - UDP:127.0.0.1:7000

It prints "listening on HOST:PORT" once it is ready. UDP has no connections:
one task serves every client, one datagram at a time.
]]
local net = require "net"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 7000))
if not port or port < 0 or port > 65535 then
  io.stderr:write("usage: udp_echo.lua [host] [port] (port: 0..65535)\n")
  os.exit(2)
end

local sock = net.assert(net.udp{host = host, port = port})
local ip, bound = sock:sockname()
if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end -- IPv6
print(("listening on %s:%d"):format(ip, bound))
io.stdout:flush()

while true do
  local data, peer, peer_port = sock:recvfrom()
  if not data then -- a socket error, not a bad client: give up loudly
    error("udp_echo: " .. tostring(peer))
  end
  -- A send can fail (the peer's port closed, a full buffer); a datagram
  -- service just drops it and goes on.
  sock:sendto(data, peer, peer_port)
end
