-- http_h11_diff_spec's client side: for each case of CASEFILE (a line
-- "METHOD HEX": a method and the bytes of a response, in hex), a server
-- of its own (a fresh port: nothing pooled carries over) answers the
-- first request with those bytes and closes; http.request (no redirects,
-- no gzip) makes the request. One line a case: "ok STATUS HEXBODY
-- name:hexvalue,..." or "error". usage: luahost h11_client_run.lua
-- CASEFILE
local http = require "http"
local net = require "net"
local task = require "task"

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end
local function unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

local out = {}
task.spawn(function()
  for line in io.lines(arg[1]) do
    local method, data = line:match("^(%u+) (%x*)$")
    data = unhex(data)
    local server = assert(net.listen{host = "127.0.0.1", port = 0})
    local _, port = server:sockname()
    task.spawn(function()
      local conn = server:accept()
      server:close()
      if not conn then return end
      conn:settimeout(5)
      local head = ""
      while not head:find("\r\n\r\n", 1, true) do
        local piece = conn:recv()
        if not piece then break end
        head = head .. piece
      end
      conn:write(data)
      conn:close()
    end)
    local res = http.request{method = method, timeout = 5, redirects = 0,
      url = "http://127.0.0.1:" .. port .. "/"}
    local body = res and res:body()
    if body then
      local f, fields = res.fields, {}
      for i = 1, #f, 2 do
        fields[#fields + 1] = hex(f[i]:lower()) .. ":" .. hex(f[i + 1])
      end
      out[#out + 1] = ("ok %d %s %s"):format(res.status, hex(body),
        table.concat(fields, ","))
    else
      out[#out + 1] = "error"
    end
    if res then res:close() end
  end
  io.write(table.concat(out, "\n"), "\n")
end)
