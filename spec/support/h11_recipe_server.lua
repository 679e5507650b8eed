-- http_h11_diff_spec's response side: a server whose handler answers as
-- the request's query says (a recipe), through every way a handler can
-- frame a response, so that h11 can read what comes out. Query fields:
--   s      status (200 when absent)
--   h      n: that many extra fields (X-F1: v1, ...)
--   cl     a Content-Length the handler sets itself (the body's length)
--   ct     "text" (text/plain, gzip-able) or none
--   mode   send: res:send(s, body); sendnil: res:status(s) then
--          res:send(body); write: res:write in pieces, then finish;
--          empty: res:send(s) with no body; nothing: the handler returns
--          without a word; file: res:sendfile of a file of the body
--   n      the body's length (bytes "a".."z" repeated); p: pieces (write)
--   drain  read the request body first (else it is left unread)
-- usage: luahost h11_recipe_server.lua DIR (a directory for the files);
-- prints the port.
local http = require "http"

local dir = arg[1]
local function body_of(n)
  local t = {}
  for i = 1, n do t[i] = string.char(97 + (i - 1) % 26) end
  return table.concat(t)
end

local server = assert(http.listen{host = "127.0.0.1", port = 0, gzip = true,
  timeouts = {head = 5, body = 5, idle = 5},
  handler = function(req, res)
    local q = req.query
    local status = tonumber(q.s) or 200
    local body = body_of(tonumber(q.n) or 0)
    if q.drain then req:body() end
    for i = 1, tonumber(q.h) or 0 do res:header("X-F" .. i, "v" .. i) end
    if q.ct == "text" then res:header("Content-Type", "text/plain") end
    if q.cl then res:header("Content-Length", tostring(#body)) end
    local mode = q.mode or "send"
    if mode == "send" then
      res:send(status, body)
    elseif mode == "sendnil" then
      res:status(status)
      res:send(body)
    elseif mode == "write" then
      res:status(status)
      local p = math.max(1, tonumber(q.p) or 1)
      local step = math.max(1, #body // p)
      for i = 1, #body, step do res:write(body:sub(i, i + step - 1)) end
      res:finish()
    elseif mode == "empty" then
      res:send(status)
    elseif mode == "file" then
      local name = dir .. "/" .. #body
      local f = io.open(name, "rb")
      if not f then
        f = assert(io.open(name, "wb"))
        f:write(body)
      end
      f:close()
      res:status(status)
      res:sendfile(name, q.ct == "text" and "text/plain" or nil)
    end -- "nothing": the server answers for the handler
  end})
local _, port = server:sockname()
print(port)
io.stdout:flush()
