--[[
time.lua: the Time Protocol (RFC 868) over TCP and UDP on one port. The
answer is the time as a 32-bit big-endian count of seconds since
1900-01-01 00:00 UTC: over TCP sent at once, then the connection closes;
over UDP in reply to any datagram.

  usage: luahost scripts/time.lua [host] [port]
         (defaults: 127.0.0.1 3737; the standard port 37 needs root;
         port 0 picks a free port, the same for TCP and UDP)
  try:   nc 127.0.0.1 3737 | od -An -tu1

It prints "listening on HOST:PORT (tcp and udp)" once it is ready.
]]
local net = require "net"
local task = require "task"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 3737))
if not port or port < 0 or port > 65535 then
  io.stderr:write("usage: time.lua [host] [port] (port: 0..65535)\n")
  os.exit(2)
end

local EPOCH_1900 = 2208988800 -- seconds from 1900 to 1970

local function now32()
  -- The count wraps in 2036 (RFC 868 says so); the mask keeps 32 bits.
  return string.pack(">I4", (os.time() + EPOCH_1900) & 0xFFFFFFFF)
end

local server = net.assert(net.listen{host = host, port = port})
local ip, bound = server:sockname()
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
    udp:sendto(now32(), peer, peer_port)
  end
end)

server:serve(function(conn)
  conn:settimeout(10)
  conn:write(now32())
  conn:close()
end)
