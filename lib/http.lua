--[[
http: an HTTP/1.1 server and client, with WebSocket, on net.

  http.listen{...} -> server        (http.server)
  http.router() -> router           (http.router)
  http.fixed(status, body [, headers]) -> handler (answered in C)
  http.request{...} -> res, http.get(url) (http.client)
  http.websocket.accept / connect   (http.websocket)
  http.files(dir) -> handler        (http.files)
  http.defaults                     limits and timeouts, in one table

See docs/http.md. Heads and chunked bodies are parsed in C (http.core).
]]
local common = require "http.common"
local server = require "http.server"
local router = require "http.router"

local http = {}

http.defaults = common.defaults
http.REASON = common.REASON
http.listen = server.listen
-- (http.listen fails as net.listen does: nil, err, msg; this raises msg)
http.assert = require("net").assert
http.router = router.new
http.decode_query = server.decode_query
http.fixed = server.fixed

--- health([path]) -> middleware: answers GET/HEAD path (default
--- "/health") with 200 "ok", and 503 "draining" once the process
--- drains (task.exiting()) or after h:fail() (a pre-stop hook: take the
--- instance out of the balancer before stopping it); h:ok() undoes
--- fail(). Other requests go on to the next handler.
function http.health(path)
  path = path or "/health"
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("bad argument #1 to 'health' (path starting with '/' expected)",
      2)
  end
  local task = require "task"
  local h = {failed = false}
  function h.fail() h.failed = true end
  function h.ok() h.failed = false end
  return setmetatable(h, {__call = function(_, req, res, nxt)
    if req.path ~= path or (req.method ~= "GET" and req.method ~= "HEAD")
    then
      if nxt then return nxt() end
      return res:send(404, "404 Not Found\n")
    end
    res:header("Cache-Control", "no-store")
    if h.failed or task.exiting() then
      res:header("Connection", "close")
      return res:send(503, "draining\n")
    end
    return res:send(200, "ok\n")
  end})
end
--- date([t]) -> an HTTP date (IMF-fixdate) for t (integer seconds since
--- the epoch, up to year 9999), default now.
local date = common.date
function http.date(t)
  if t ~= nil and (type(t) ~= "number" or math.tointeger(t) == nil or
    t < 0 or t > 253402300799) then
    error("bad argument #1 to 'date' (seconds since the epoch expected, " ..
      "got " .. (type(t) == "number" and tostring(t) or type(t)) .. ")", 2)
  end
  return date(t)
end
http.HttpError = common.HttpError

-- The client, WebSocket and files load on first use.
setmetatable(http, {__index = function(t, k)
  local v
  if k == "request" or k == "get" or k == "parse_url" then
    v = require("http.client")[k]
  elseif k == "websocket" then
    v = require "http.websocket"
  elseif k == "files" then
    v = require("http.files").new
  end
  if v ~= nil then rawset(t, k, v) end
  return v
end})

return http
