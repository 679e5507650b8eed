-- http_h11_diff_spec's server: every request it accepts is answered 200
-- with what the server read of it, one item a line, values in hex (any
-- byte survives): M method, T target, V version, H name:value for each
-- field as sent, B the body. usage: luahost h11_echo_server.lua
-- (prints the port)
local http = require "http"

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local server = assert(http.listen{host = "127.0.0.1", port = 0,
  timeouts = {head = 5, body = 5, idle = 5},
  handler = function(req, res)
    local out = {"M " .. hex(req.method), "T " .. hex(req.target),
      "V " .. req.version}
    local f = req.fields
    for i = 1, #f, 2 do
      out[#out + 1] = "H " .. hex(f[i]) .. ":" .. hex(f[i + 1])
    end
    out[#out + 1] = "B " .. hex(req:body())
    res:header("Content-Type", "text/plain")
    res:send(200, table.concat(out, "\n") .. "\n")
  end})
local _, port = server:sockname()
print(port)
io.stdout:flush()
