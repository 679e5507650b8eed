-- net_echo.lua: TCP echo server on luahost's high-level net API: one task
-- per connection, blocking-style recv/write. The bench uses it for the
-- "luahost net" rows while scripts/echo.lua does not exist.
-- Usage: net_echo.lua [host [port]] (default 127.0.0.1, port 0).
-- Prints "port N" once listening, then serves until killed.
local net = require "net"

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2] or "0")

-- max_connections above the 10,000 of the idle-connection case (the
-- default is 10,000), and as many from one address (the load generator's:
-- the default is 256); every other limit keeps its default.
local server = assert(net.listen{host = host, port = port, backlog = 1024,
                                 max_connections = 20000,
                                 max_per_address = 20000})
local _, bound = server:sockname()
print("port " .. bound)
io.stdout:flush()

server:serve(function(conn)
  conn:setopt("nodelay", true)
  while true do
    local data = conn:recv()
    if not data then break end    -- closed or failed: the peer is gone
    if not conn:write(data) then break end
  end
end)
