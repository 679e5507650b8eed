--[[
echo.lua: a TCP echo server. Every byte a client sends comes back to it.

  usage: luahost scripts/echo.lua [host] [port]
         (defaults: 127.0.0.1 7000; port 0 picks a free port)
  try:   socat - TCP:127.0.0.1:7000
  TLS:   TLS_CERT=cert.pem TLS_KEY=key.pem luahost scripts/echo.lua
         openssl s_client -connect 127.0.0.1:7000 -CAfile ca.pem

It prints "listening on HOST:PORT" once it is ready. Each connection runs in
its own task: a client that goes quiet for a minute is dropped, and a client
that misbehaves only ends its own connection. When one ends, a log line on
stderr says who, how many bytes came back and for how long (the log
module; --log-format json, --log-level warn for none).
]]
local net = require "net"
local task = require "task"
local log = require "log"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 7000))
if not port or port < 0 or port > 65535 then
  io.stderr:write("usage: echo.lua [host] [port] (port: 0..65535)\n")
  os.exit(2)
end

-- idle_timeout: a client silent for a minute is dropped (each read or
-- write waits at most that long).
-- TLS when TLS_CERT and TLS_KEY name a certificate (chain) and its key.
local cert = os.getenv("TLS_CERT")
local tls = cert and {cert = cert, key = os.getenv("TLS_KEY")} or nil
local server = net.assert(net.listen{host = host, port = port,
  idle_timeout = 60, tls = tls})
local ip, bound = server:sockname()
if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end -- IPv6
print(("listening on %s:%d"):format(ip, bound))
io.stdout:flush()

-- The bytes pass through a buffer, never a string: recv_into fills it
-- with whatever arrived (up to its size; binary data and partial lines are
-- echoed at once) and write sends from it. One buffer serves every
-- connection: each handler writes what it received before it waits again.
local buf = net.buffer(65536)

server:serve(function(conn)
  local t0, bytes = task.now(), 0
  local why
  while true do
    local n, err = conn:recv_into(buf)
    if not n then why = err break end -- "closed", "timeout", ...
    local ok, werr = conn:write(buf) -- blocks while the peer is slow
    if not ok then why = werr break end
    bytes = bytes + n
  end
  if log.enabled("info") then
    log.info("connection ended", {peer = (conn:peername()), bytes = bytes,
      secs = math.floor((task.now() - t0) * 1000 + 0.5) / 1000, why = why})
  end
end) -- serve closes conn when the handler returns
