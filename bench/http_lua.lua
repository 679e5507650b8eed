--[[
bench/http_lua.lua: GET /hello answered by a Lua handler, as
scripts/http_server.lua answered it before /hello became an http.fixed:
the request and response tables, the router, res:header and res:send.
The peer of nginx + a Lua handler (OpenResty's model) in make bench.

  usage: luahost bench/http_lua.lua [host] [port]
]]
local http = require "http"
local log = require "log"

local app = http.router()
app:get("/hello", function(_, res)
  res:header("Content-Type", "text/plain")
  res:send("hello world\n")
end)
local server = http.assert(http.listen{host = arg[1] or "127.0.0.1",
  port = math.tointeger(tonumber(arg[2] or 0)), handler = app, log = log})
local ip, port = server:sockname()
print(("listening on %s:%d"):format(ip, port))
io.stdout:flush()
