-- uv_echo.lua: TCP echo server written against luv's callback API.
-- Runs unchanged on luahost (build/luahost bench/uv_echo.lua) and on
-- lua5.4 with Debian's lua-luv (lua5.4 bench/uv_echo.lua).
-- Usage: uv_echo.lua [host [port]]   (default 127.0.0.1, port 0)
-- Prints "port N" once listening, then serves until killed.
local uv = require "luv"

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2] or "0")

local server = uv.new_tcp()
assert(server:bind(host, port))
assert(server:listen(1024, function(err)
  assert(not err, err)
  local client = uv.new_tcp()
  server:accept(client)
  client:nodelay(true)
  client:read_start(function(rerr, data)
    if rerr or not data then   -- error or EOF: the peer is gone
      client:close()
      return
    end
    client:write(data)
  end)
end))

print("port " .. server:getsockname().port)
io.stdout:flush()
uv.run()
