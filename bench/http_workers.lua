-- http_workers.lua: scripts/http_server.lua for `--workers N --listen
-- HOST:PORT` (the "luahost HTTP, 2 workers" rows). http_server.lua binds
-- its own socket; this wrapper makes its net.listen adopt the socket the
-- supervisor bound instead (luahost.listen_fds()), every other option and
-- all of the server unchanged. Usage: http_workers.lua TOP ROOT, TOP the
-- repository (where scripts/http_server.lua is).
local net = require "net"

local top, root = assert(arg[1], "usage: http_workers.lua TOP ROOT"), arg[2]
local l = assert(require("luahost").listen_fds()[1],
  "run me under --listen HOST:PORT")
local listen = net.listen
net.listen = function(opts)
  local o = {fd = l.fd}
  for k, v in pairs(opts) do
    if k ~= "host" and k ~= "port" then o[k] = v end
  end
  return listen(o)
end
local script = top .. "/scripts/http_server.lua"
-- http_server.lua reads host, port and root from arg: the host and port
-- are ignored above, the root is served
-- luacheck: push ignore 122
arg[0], arg[1], arg[2], arg[3] = script, "127.0.0.1", "0",
  root or top .. "/scripts"
-- luacheck: pop
dofile(script)
