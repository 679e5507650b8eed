-- spec/support/proxy_fd_app.lua: answers each connection with its
-- peername, on a --listen ADDR,proxy socket (the PROXY protocol is on
-- without the script asking): 127.0.0.1:arg[1] (under --workers, shared
-- by the supervisor), or with arg[2] == "fd" the first listen_fds() one.
local net = require "net"
local s
if arg[2] == "fd" then
  s = assert(net.listen{fd = require("luahost").listen_fds()[1].fd})
else
  s = assert(net.listen{host = "127.0.0.1", port = tonumber(arg[1])})
end
print("listening")
io.stdout:flush()
s:serve(function(c) c:write(("peer %s\n"):format((c:peername()))) end)
