--[[
rproxy.lua: a reverse proxy on the http module: every request is passed
to one upstream HTTP server over pooled keep-alive connections, bodies
streamed both ways.

  usage: luahost scripts/rproxy.lua [host] [port] UPSTREAM
         (defaults: 127.0.0.1 8081; port 0 picks a free port)
  try:   luahost scripts/http_server.lua 127.0.0.1 8080 scripts &
         luahost scripts/rproxy.lua 127.0.0.1 8081 http://127.0.0.1:8080
         curl -v http://127.0.0.1:8081/hello

It prints "proxying http://HOST:PORT/ to UPSTREAM" once it is ready.
Hop-by-hop fields (Connection, Keep-Alive, TE, Upgrade, ..., and those a
Connection header names) are not passed on, either way; X-Forwarded-For
and X-Forwarded-Host are added. An upstream that cannot be reached gets
502, one that is too slow 504.
]]
local http = require "http"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 8081))
local upstream = arg[3]
if not upstream or not upstream:match("^http://[^/]+$") or not port or
  port < 0 or port > 65535 then
  io.stderr:write("usage: rproxy.lua [host] [port] http://UPSTREAM:PORT\n")
  os.exit(2)
end

-- RFC 9110 7.6.1, plus the fields the client sets itself
local HOP = {connection = true, ["keep-alive"] = true, te = true,
  trailer = true, ["transfer-encoding"] = true, upgrade = true,
  ["proxy-connection"] = true, ["proxy-authenticate"] = true,
  ["proxy-authorization"] = true, host = true, ["content-length"] = true}

-- The fields a Connection header names are hop-by-hop too (RFC 9110
-- 7.6.1): the set for one message.
local function hop_set(connection)
  if not connection then return HOP end
  local set = setmetatable({}, {__index = HOP})
  for name in connection:gmatch("[^,%s]+") do set[name:lower()] = true end
  return set
end

local function handler(req, res)
  local headers, hop = {}, hop_set(req.headers.connection)
  for name, value in pairs(req.headers) do
    if not hop[name] then headers[name] = value end
  end
  headers["X-Forwarded-For"] = req.peer_ip
  headers["X-Forwarded-Host"] = req.headers.host
  local source -- the request body, streamed (no size limit of our own)
  if req.has_body then
    local pieces = req:chunks(math.huge)
    source = function() return pieces() end
  end
  -- (path and query: an absolute-form target names no other host here)
  local q = req.query_string
  local up, err = http.request{method = req.method, url = upstream ..
    req.path .. (q ~= "" and "?" .. q or ""), headers = headers,
    source = source, redirects = 0,
    timeout = 30, proxy = false} -- (the upstream is named: never via
                                   -- the machine's http_proxy)
  if not up then
    local status = err == "timeout" and 504 or 502
    return res:send(status, status .. " upstream: " .. err .. "\n")
  end
  res:status(up.status)
  local f, uphop = up.fields, hop_set(up.headers.connection)
  for i = 1, #f, 2 do
    local name = f[i]:lower()
    if name == "content-length" then -- (one only: res:header)
      res:header(f[i], f[i + 1])
    elseif not uphop[name] then
      res:add_header(f[i], f[i + 1])
    end
  end
  for piece in up:chunks(math.huge) do res:write(piece) end
  if up.error then error("upstream: " .. up.error) end -- 502 or a cut
end

local server = http.assert(http.listen{host = host, port = port,
  handler = handler})
local ip, bound = server:sockname()
print(("proxying http://%s:%d/ to %s"):format(ip:find(":") and
  "[" .. ip .. "]" or ip, bound, upstream))
io.stdout:flush()
