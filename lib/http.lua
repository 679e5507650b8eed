--[[
http: an HTTP/1.1 server and client, with WebSocket, on net.

  http.listen{...} -> server        (http.server)
  http.router() -> router           (http.router)
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
http.router = router.new
http.decode_query = server.decode_query
http.date = common.date
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
