-- net_echo.lua: TCP echo server on luahost's high-level net API (one task
-- per connection, blocking-style calls). Usage: net_echo.lua [host [port]]
-- (default 127.0.0.1, port 0). Prints "port N" once listening.
local net = require "net"

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2] or "0")

local server = assert(net.listen{host = host, port = port, backlog = 1024})
local _, bound = server:sockname()
if type(bound) ~= "number" then   -- sockname() may return a table
  local addr = server:sockname()
  bound = type(addr) == "table" and addr.port or bound
end
print("port " .. tostring(bound))
io.stdout:flush()

server:serve(function(conn)
  conn:setopt("nodelay", true)
  while true do
    local data = conn:recv()
    if not data then break end    -- closed or failed: the peer is gone
    if not conn:write(data) then break end
  end
  conn:close()
end)
