--[[
counter_api.lua: a rate-limited counter HTTP API whose state lives in
redis-server, so that any number of instances behind a load balancer
serve one consistent state (see docs/deploy.md).

  usage: luahost [--pidfile F --drain SECS] scripts/counter_api.lua
           [port] [redis_port] [name] [proxy]
         (a socket from systemd or --listen is used instead of port)
         (defaults: 8080 6379 hostname; "proxy": the listener expects
         the PROXY protocol header, v1 or v2, as HAProxy's send-proxy-v2)
  try:   curl -X POST http://127.0.0.1:8080/counter/visits

  POST /counter/:name   add 1, answer the new value
  GET  /counter/:name   the value
  GET  /whoami          the client address as the server sees it
  GET  /health          200 "ok", 503 once the process drains

Every answer names the instance (X-Instance). Each client address may
add RATE_LIMIT (environment, default 100) times per 10 s window, counted
in redis too; more gets 429. The client address is the real one behind
a balancer: the PROXY header's, or X-Forwarded-For from 127.0.0.1 (a
balancer in HTTP mode on the same host).
]]
local http = require "http"
local net = require "net"
local redis = require "redis"

local port = math.tointeger(tonumber(arg[1] or 8080))
local rport = math.tointeger(tonumber(arg[2] or 6379))
if not (port and rport and port >= 0 and port <= 65535 and rport > 0 and
  rport <= 65535) then
  io.stderr:write("usage: counter_api.lua [port] [redis_port] [name] " ..
    "[proxy] (ports: 0..65535)\n")
  os.exit(2)
end
local name = arg[3] or net.hostname()
local proxy = arg[4] == "proxy"
local LIMIT = tonumber(os.getenv("RATE_LIMIT") or 100)
local WINDOW = 10

local db = redis.pool{host = "127.0.0.1", port = rport, size = 8}

local app = http.router()
app:use(http.health("/health"))
app:use(function(_, res, nxt)
  res:header("X-Instance", name)
  return nxt()
end)

local function fail(res, err)
  res:send(503, "store unavailable: " .. tostring(err) .. "\n")
end

app:post("/counter/:name", function(req, res)
  local win = math.floor(os.time() / WINDOW)
  local key = ("rate:%s:%d"):format(req.peer_ip or "-", win)
  local r, err = db:with(function(c)
    return c:pipeline(function(p)
      p:call("INCR", key)
      p:call("EXPIRE", key, WINDOW * 2)
    end)
  end)
  if not r then return fail(res, err) end
  if r[1] > LIMIT then
    res:header("Retry-After", tostring(WINDOW))
    return res:send(429, "rate limited\n")
  end
  local v
  v, err = db:call("INCR", "counter:" .. req.params.name)
  if not v then return fail(res, err) end
  res:send(200, v .. "\n")
end)

app:get("/counter/:name", function(req, res)
  local v, err = db:call("GET", "counter:" .. req.params.name)
  if v == nil and err then return fail(res, err) end
  res:send(200, (v or 0) .. "\n")
end)

app:get("/whoami", function(req, res)
  res:send(200, ("%s via %s\n"):format(req.peer_ip,
    req.proxy_ip or "-"))
end)

-- A socket given by systemd (socket activation) or --listen is adopted;
-- named "...,proxy" (FileDescriptorName=api,proxy), it expects the PROXY
-- header. Otherwise: 127.0.0.1, port.
local given = require("luahost").listen_fds()[1]
local server = http.assert(http.listen{fd = given and given.fd,
  host = not given and "127.0.0.1" or nil, port = not given and port or nil,
  handler = app, proxy_protocol = proxy or nil,
  trusted_proxies = {"127.0.0.1/32", "::1/128"}})
local _, bound = server:sockname()
print(("counter_api %s listening %d"):format(name, bound))
io.stdout:flush()
