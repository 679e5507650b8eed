-- spec/support/proxy_app.lua: a line server behind the PROXY protocol for
-- net_proxy_spec. Prints "listening PORT"; each connection gets one line
-- per line read: "peer IP PORT proxy IP|- line".
-- Env: PROXY_TRUSTED (comma-separated CIDRs), PROXY_TIMEOUT (seconds).
local net = require "net"

local pp = true
if os.getenv("PROXY_TRUSTED") or os.getenv("PROXY_TIMEOUT") then
  pp = {timeout = tonumber(os.getenv("PROXY_TIMEOUT"))}
  if os.getenv("PROXY_TRUSTED") then
    pp.trusted = {}
    for c in os.getenv("PROXY_TRUSTED"):gmatch("[^,]+") do
      pp.trusted[#pp.trusted + 1] = c
    end
  end
end
local server = assert(net.listen{host = "127.0.0.1", port = 0,
  proxy_protocol = pp})
local _, port = server:sockname()
io.stdout:write("listening ", port, "\n")
io.stdout:flush()
server:serve(function(c)
  for line in c:lines() do
    local ip, p = c:peername()
    local pip = c:proxyname()
    if line:match("^GET ") then -- curl: answer as HTTP/1.0
      while true do
        local l = c:read("l")
        if not l or l == "" or l == "\r" then break end
      end
      local body = ("peer %s %d proxy %s\n"):format(ip, p, pip or "-")
      c:write("HTTP/1.0 200 OK\r\nContent-Length: ", #body,
        "\r\nConnection: close\r\n\r\n", body)
      return
    end
    c:write(("peer %s %d proxy %s %s\n"):format(ip, p, pip or "-", line))
  end
end)
