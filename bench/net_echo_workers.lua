-- net_echo_workers.lua: scripts/echo.lua's server for `--workers N
-- --listen HOST:PORT` (the "luahost net, 2 workers" rows). echo.lua binds
-- its own socket; here each worker adopts the one the supervisor bound and
-- passed down (luahost.listen_fds()), with echo.lua's options and handler,
-- so the rows compare with the single-process ones.
local net = require "net"

local l = assert(require("luahost").listen_fds()[1],
  "run me under --listen HOST:PORT")
local server = assert(net.listen{fd = l.fd, idle_timeout = 60})

server:serve(function(conn)
  while true do
    local data = conn:recv()
    if not data then break end
    if not conn:write(data) then break end
  end
end)
