--[[
daytime.lua: the Daytime Protocol (RFC 867) over TCP and UDP on one port.
A TCP client gets the date and time as one line and the connection closes;
a UDP datagram (any content) gets the same line back.

  usage: luahost scripts/daytime.lua [host] [port]
         (defaults: 127.0.0.1 1313; the standard port 13 needs root;
         port 0 picks a free port, the same for TCP and UDP)
  try:   nc 127.0.0.1 1313; echo | nc -u -w 1 127.0.0.1 1313

It prints "listening on HOST:PORT (tcp and udp)" once it is ready.
]]
local net = require "net"
local task = require "task"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 1313))
if not port or port < 0 or port > 65535 then
  io.stderr:write("usage: daytime.lua [host] [port] (port: 0..65535)\n")
  os.exit(2)
end

-- RFC 867 leaves the format free; this is RFC 822's, as many daemons do.
local function daytime()
  return os.date("!%a, %d %b %Y %H:%M:%S GMT") .. "\r\n"
end

local server = net.assert(net.listen{host = host, port = port})
local ip, bound = server:sockname()
-- UDP on the port TCP got (port 0 lets the kernel pick it).
local udp = net.assert(net.udp{host = ip, port = bound})
if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end -- IPv6
print(("listening on %s:%d (tcp and udp)"):format(ip, bound))
io.stdout:flush()

task.spawn(function()
  while true do
    local data, peer, peer_port = udp:recvfrom()
    if not data then -- a socket error: report it and stop the UDP side
      io.stderr:write("udp: ", tostring(peer), "\n")
      break
    end
    udp:sendto(daytime(), peer, peer_port)
  end
end)

server:serve(function(conn)
  conn:settimeout(10)
  conn:write(daytime()) -- a client that is gone makes this fail; fine
  conn:close()
end)
