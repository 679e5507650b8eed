--[[
http.server: HTTP/1.1 on net. One task per connection; requests on it are
read, handled and answered in order (pipelining), the head parsed in C
(http.core.parse_request, which also decides the body's framing).

  handler(req, res) runs once per request, in the connection's task:
  req.method, req.target, req.path (without the query, not decoded),
  req.query (decoded table), req.version, req.headers (lower-case keys,
  any case looks up, repeated fields joined by ", "), req.fields (the
  fields in order, name, value, name, value...), req.peer ("ip:port"),
  req:body([max]), req:chunks([max]);
  res:status(code), res:header(name, value), res:add_header(name, value),
  res:write(...), res:send([status,] [body]), res:finish(),
  res:sendfile(path).

An error the handler lets through is logged and answered 500 (or, for
http errors raised by req:body(), their status: 400, 408, 413); the
connection then closes. Nothing reaches a response head unchecked: a
header name must be a token and a value must hold no CR, LF, NUL or other
control byte, else res:header raises.
]]
local net = require "net"
local task = require "task"
local core = require "http.core"
local common = require "http.common"

local REASON, raise, is_error = common.REASON, common.raise, common.is_error
local field_ok, head_fields = core.field_ok, core.head_fields
local head_headers = core.head_headers
local now, concat, lower, fmt, find =
  task.now, table.concat, string.lower, string.format, string.find
local headers_mt = common.headers_mt
local Conn = select(2, ...).require("net.core").conn_methods
local buffered, rest, recv = Conn.buffered, Conn.rest, Conn.recv
-- (the C methods called once a request, without the look-up through the
-- conn's metatable)
local conn_write, settimeout = Conn.write, Conn.settimeout
local net_core = select(2, ...).require("net.core")
local rested = net_core.rested
-- net's state of each server: its `closed` is true once the server is
-- closed (server:close, a drain), what net's is_closed() would say
local net_servers = select(2, ...).net_servers
local recv_wait, waits_next, ceil = net_core.recv_wait, net_core.waits_next,
  math.ceil

local M = {}

-- {{{ query strings

local function unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end
M.unescape = unescape

--- decode_query("a=1&b=x%20y") -> {a = "1", b = "x y"} (the last of a
--- repeated name wins; a name without "=" maps to "").
function M.decode_query(q)
  local t = {}
  if q == nil then return t end
  if type(q) ~= "string" then
    error("bad argument #1 to 'decode_query' (string expected, got " ..
      type(q) .. ")", 2)
  end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[unescape(k)] = unescape(v)
  end
  return t
end

-- }}}

-- {{{ requests

local Request = {__name = "http.request"}
-- Defaults of the private state (a request that never reads its body
-- writes none of it), of close (parse_request sets it only when true) and
-- of version (set only when it is not HTTP/1.1).
local REQ_DEFAULTS = {_got = 0, _framing = 0, close = false,
  version = "HTTP/1.1"}

-- The peer of the request's conn: ip, "ip:port" ("[ip]:port" for IPv6),
-- asked of the socket only when someone wants it.
local function peer_of(req)
  local ip, port = req._reader.conn:peername()
  if not ip then return nil, "-" end
  if port == nil then return ip, ip end -- a unix socket: its path
  return ip, (find(ip, ":", 1, true) and "[" .. ip .. "]" or ip) .. ":" ..
    port
end

-- Methods, then the fields made on first use: peer, peer_ip, query,
-- headers, fields, proxy_ip, params, _server, _conn.
function Request.__index(req, k)
  local v = Request[k]
  if v ~= nil then return v end
  v = REQ_DEFAULTS[k]
  if v ~= nil then return v end
  if k == "peer" or k == "peer_ip" then
    local ip, ps = peer_of(req)
    rawset(req, "peer", ps)
    if rawget(req, "peer_ip") == nil then rawset(req, "peer_ip", ip) end
    return rawget(req, k)
  elseif k == "query" then
    local q = req.query_string
    v = q == "" and {} or M.decode_query(q)
    rawset(req, "query", v)
    return v
  elseif k == "headers" then -- (made from the head's bytes when read)
    v = setmetatable(head_headers(rawget(req, "_hbuf"), rawget(req, "_hb")),
      headers_mt)
    rawset(req, "headers", v)
    return v
  elseif k == "fields" then -- (made from the head's bytes when read)
    v = head_fields(rawget(req, "_hbuf"), rawget(req, "_hb"))
    rawset(req, "fields", v)
    return v
  elseif k == "proxy_ip" then
    return req._reader.conn:proxyname()
  elseif k == "params" then -- (a router sets it when it has captures)
    v = {}
    rawset(req, "params", v)
    return v
  elseif k == "_server" then
    return req._reader.srv
  elseif k == "_conn" then
    return req._reader.conn
  end
  return nil
end

-- Will the connection close after the response because what is left of
-- the body will not be read (drain)? Known before the head for a body not
-- yet asked for (Expect: 100-continue never answered: it is not coming)
-- or left larger than limits.drain: the head then says Connection: close
-- (RFC 9112 9.6).
local function undrainable(req)
  if req._done then return false end
  if req._expect then return true end
  local length = req._length
  return length and length - req._got > req._server.limits.drain or false
end

local function send_continue(req)
  if req._expect then
    req._expect = false
    req._conn:write("HTTP/1.1 100 Continue\r\n\r\n")
  end
end

-- The next piece of the body, or nil at its end; raises an http error
-- (400 bad framing or closed, 408 timeout, 413 over max).
local function next_piece(req, max)
  if req._done then return nil end
  send_continue(req)
  local r, srv = req._reader, req._server
  -- a bounded read has a deadline for the whole body, counted from the
  -- head; an unbounded stream only a limit between two reads
  local timeout = srv.timeouts.body
  local deadline = req._deadline
  if deadline then
    timeout = deadline - now()
    if timeout <= 0 then raise(408, "body timeout") end
  end
  local piece
  local dec = req._decoder
  if dec then
    while true do
      local pos = r.pos
      if pos <= #r.buf then
        local d, nxt = dec:decode(r.buf, pos)
        if not d then raise(400, nxt) end
        if nxt then
          r.pos = nxt
          req._done = true
        else
          nxt = #r.buf + 1
          r.buf, r.pos = "", 1
        end
        -- framing that outweighs its data (floods of tiny chunks): 413
        local framing = req._framing + (nxt - pos) - #d
        req._framing = framing
        if framing > srv.limits.framing + (req._got + #d) // 8 then
          req._done = true
          raise(413, "chunked framing outweighs its data")
        end
        if req._got + #d + dec:pending() > max then
          req._done = true
          raise(413, "body larger than " .. max)
        end
        if d ~= "" then
          piece = d
          break
        end
        if req._done then return nil end
      end
      local ok, err = r:fill(timeout)
      if not ok then raise(err == "timeout" and 408 or 400, err) end
      if deadline then timeout = deadline - now() end
    end
  else
    local left = req._left
    if left == 0 then
      req._done = true
      return nil
    end
    local err
    piece, err = r:some(left < 65536 and left or 65536, timeout)
    if not piece then raise(err == "timeout" and 408 or 400, err) end
    left = left - #piece
    req._left = left
    if left == 0 then req._done = true end
  end
  local got = req._got + #piece
  req._got = got
  if got > max then
    req._done, req._toolarge = true, true
    raise(413, "body larger than " .. max)
  end
  return piece
end

--- req:chunks([max]) -> iterator over the body's pieces as they arrive
--- (any framing); more than max bytes in all (default limits.body;
--- math.huge: no limit) raises 413.
function Request:chunks(max)
  if max ~= nil and type(max) ~= "number" then
    error("bad argument #1 to 'chunks' (number expected, got " ..
      type(max) .. ")", 2)
  end
  max = max or self._server.limits.body
  if self._length and self._length > max then
    raise(413, "body larger than " .. max)
  end
  if max ~= math.huge and not self._deadline then
    self._deadline = (self._t0 or now()) + self._server.timeouts.body
  end
  return function() return next_piece(self, max) end
end

--- req:body([max]) -> the whole body (a string; "" when there is none);
--- over max bytes (default limits.body) raises 413.
function Request:body(max)
  if self._body then return self._body end
  if self._got > 0 then
    error("the body is being read with chunks()", 2)
  end
  local parts = {}
  for piece in self:chunks(max) do parts[#parts + 1] = piece end
  self._body = concat(parts)
  return self._body
end

-- }}}

-- {{{ responses

-- The fields a response starts with are defaults here: a response is
-- made with _conn, _req and _headers only. _headers is flat: name as
-- given, value, lower-case name, for each field in order.
local Response = {_status = 200, _sent = 0, head_sent = false,
  finished = false}
Response.__index = Response
Response.__name = "http.response"

-- Headers a handler may not set: the server frames the message itself.
local RESERVED = {["transfer-encoding"] = true}

--- res:status(code) -> res
-- (fname: the method the caller called, status or send: the error names
-- it and points at the caller's line)
local function set_status(self, code, fname)
  -- (a final status: 1xx are interim answers, and 600 and up are no HTTP
  -- status at all, RFC 9110 15)
  if math.type(code) ~= "integer" or code < 200 or code > 599 then
    error(("bad argument #1 to '%s' (a final status, integer in 200..599 " ..
      "expected, got %s)"):format(fname, tostring(code)), 3)
  end
  if self.head_sent then error(fname .. ": the head is already sent", 3) end
  self._status = code
end

function Response:status(code)
  set_status(self, code, "status")
  return self
end

local function header_value(v, fname)
  local tv = type(v)
  if tv == "number" then return tostring(math.tointeger(v) or v) end
  if tv ~= "string" then
    error(("bad argument #2 to '%s' (string expected, got %s)")
      :format(fname, tv), 4) -- (the caller of res:header, a C function)
  end
  return v
end

-- Remove every field named key (lower-case) from a flat header list.
local function remove_header(list, key)
  local n = #list
  for i = n - 2, 1, -3 do
    if list[i + 2] == key then
      table.move(list, i + 3, n + 3, i)
      n = n - 3
    end
  end
end

-- A Content-Length of the handler's, as the head will say it: a decimal
-- integer (digits, or a non-negative integer number), else an error at
-- the handler's line (a value a peer could read otherwise, "0x5", "5e0",
-- " 5", would frame the message as the server does not)
local function content_length(v, fname)
  local n
  if type(v) == "string" then
    if find(v, "^%d+$") then n = math.tointeger(tonumber(v)) end
  elseif type(v) == "number" then
    n = math.tointeger(v)
  end
  if not n or n < 0 then
    error(("bad argument #2 to '%s' (Content-Length: a decimal integer " ..
      ">= 0 expected, got %s)"):format(fname, type(v) == "string" and
      fmt("%q", v) or tostring(v)), 4) -- (the caller of res:header)
  end
  return tostring(n)
end

local function set_header(self, name, value, add, fname)
  if type(name) ~= "string" then
    error(("bad argument #1 to '%s' (string expected, got %s)")
      :format(fname, type(name)), 3)
  end
  if self.head_sent then error(fname .. ": the head is already sent", 3) end
  local key = lower(name)
  if RESERVED[key] then
    error(("bad argument #1 to '%s' (%s is set by the server)")
      :format(fname, name), 3)
  end
  if key == "content-length" then
    -- (one only: a second, even equal, is no framing the server makes)
    if add then
      error(("bad argument #1 to '%s' (%s: only one, set by res:header)")
        :format(fname, name), 3)
    end
    if value ~= nil then value = content_length(value, fname) end
  end
  local list = self._headers
  if not add and list[1] ~= nil then remove_header(list, key) end
  if value == nil then return self end
  if type(value) ~= "string" then value = header_value(value, fname) end
  local ok, why = field_ok(name, value)
  if not ok then
    error(("bad argument to '%s' (%s: %s)"):format(fname, name, why), 3)
  end
  local n = #list
  list[n + 1], list[n + 2], list[n + 3] = name, value, key
  return self
end

-- (res:header and res:add_header are C functions, http_resp.c's
-- header_method: a valid field before the head is sent is set with no Lua
-- call; anything else, and every error, goes through set_header)
--- res:header(name, value) -> res: set (replacing), nil removes.
Response.header = core.header_method(set_header, false, "header")

--- res:add_header(name, value) -> res: one more field of that name.
Response.add_header = core.header_method(set_header, true, "add_header")

--- res:get_header(name) -> the value set, or nil
function Response:get_header(name)
  local key = lower(name)
  local list = self._headers
  for i = 3, #list, 3 do
    if list[i] == key then return list[i - 1] end
  end
  return nil
end

-- (205 has no body either, but says so with Content-Length: 0)
local function no_body_status(s)
  return s < 200 or s == 204 or s == 205 or s == 304
end

-- The head, as a string (http_resp.c); decides the framing: length
-- given (a number or nil), else chunked (HTTP/1.1) or close-delimited
-- (HTTP/1.0); sets _length, _chunked, _close, head_sent. With body: the
-- body follows the head in the string when it may be sent and is small
-- (the second result is true when it may be sent and is not in it).
local c_build_head, send_args = core.build_head, core.send_args
local function build_head(self, length, body)
  local req = self._req
  -- (a closed server, a drain: this is the connection's last response;
  -- so it is when the rest of the body will not be read)
  if req._server._st.closed or undrainable(req) then self._close = true end
  return c_build_head(self, length, req, REASON[self._status], body)
end

local function send_failed(self, err)
  self._close = true
  self._broken = err
  error(setmetatable({status = false, message = "write: " .. err},
    common.HttpError), 0)
end

local function send_raw(self, ...)
  local ok, err = self._conn:write(...)
  if not ok then send_failed(self, err) end
end

-- May the body go out (not HEAD, not a status without body)?
local function body_allowed(self)
  return self._req.method ~= "HEAD" and not no_body_status(self._status)
end

-- {{{ fixed responses (http.fixed): the same bytes from Lua or from C

local Fixed = {__name = "http.fixed"}
Fixed.__index = Fixed

-- (the server frames a fixed response itself; and a Connection: close of
-- its own would end the connection, which C does not)
local FIXED_RESERVED = {["transfer-encoding"] = true,
  ["content-length"] = true, connection = true}

-- The bytes of a fixed response to method, from build_head as res:send
-- makes them, without the Date line; where that goes (-1: none, the
-- fields have their own Date); where the head's last CRLF is (an
-- HTTP/1.0 keep-alive's field goes there).
local function fixed_bytes(self, method, fields)
  local f, status = fields or self._fields, self.status
  local reason = REASON[status]
  local data, apart = c_build_head({_status = status, _headers = f},
    #self.body, {method = method}, reason, self.body)
  if apart then data = data .. self.body end
  local at = #"HTTP/1.1 000 \r\n" + #(reason or "Unknown")
  for i = 1, #f, 3 do at = at + #f[i] + #f[i + 1] + 4 end
  local date = -1
  if data:sub(at + 1, at + 6) == "Date: " then
    local e = assert(data:find("\r\n", at + 1, true))
    data, date = data:sub(1, at) .. data:sub(e + 2), at
  end
  return {data, date, assert(data:find("\r\n\r\n", 1, true)) + 1,
    #self.body, status}
end

local function fixed_arg(n, what, got)
  error(("bad argument #%d to 'fixed' (%s expected, got %s)")
    :format(n, what, got), 3)
end

--- fixed(status, body [, headers]) -> handler: the same response to every
--- request (nginx's `return`); answered in C when it can be (see
--- docs/http.md, "Fixed responses").
function M.fixed(status, body, headers)
  if math.type(status) ~= "integer" or status < 200 or status > 599 then
    fixed_arg(1, "a final status, integer in 200..599", tostring(status))
  end
  if type(body) ~= "string" then fixed_arg(2, "string", type(body)) end
  if headers ~= nil and type(headers) ~= "table" then
    fixed_arg(3, "table of fields", type(headers))
  end
  local names, seen, fields = {}, {}, {}
  for k in pairs(headers or {}) do
    if type(k) ~= "string" then
      fixed_arg(3, "field names as keys", type(k) .. " key")
    end
    names[#names + 1] = k
  end
  table.sort(names) -- (the fields in one order, whatever pairs says)
  for _, name in ipairs(names) do
    local key = lower(name)
    if FIXED_RESERVED[key] then
      error(("bad argument #3 to 'fixed' (%s is set by the server)")
        :format(name), 2)
    end
    if seen[key] then
      error(("bad argument #3 to 'fixed' (%s given twice)"):format(name), 2)
    end
    seen[key] = true
    local v = headers[name]
    local list = type(v) == "table" and v or {v}
    if #list == 0 then fixed_arg(3, "a value for " .. name, "none") end
    for _, x in ipairs(list) do
      if math.type(x) == "integer" then x = tostring(x) end
      if type(x) ~= "string" then
        fixed_arg(3, "string value for " .. name, type(x))
      end
      local ok, why = field_ok(name, x)
      if not ok then
        error(("bad argument #3 to 'fixed' (%s: %s)"):format(name, why), 2)
      end
      fields[#fields + 1], fields[#fields + 2], fields[#fields + 3] =
        name, x, key
    end
  end
  local self = setmetatable({status = status, body = body, _fields = fields},
    Fixed)
  self._get = fixed_bytes(self, "GET")
  self._head = fixed_bytes(self, "HEAD")
  return self
end

-- As a Lua handler (any method, behind middleware, a router's capture
-- route): the fields, then res:send.
function Fixed:__call(_, res)
  local f = self._fields
  for i = 1, #f, 3 do
    if i > 1 and f[i + 2] == f[i - 1] then res:add_header(f[i], f[i + 1])
    else res:header(f[i], f[i + 1]) end
  end
  return res:send(self.status, self.body)
end

M.is_fixed = function(v) return getmetatable(v) == Fixed end

-- }}}

-- {{{ gzip (http.listen{gzip = true}): text-like types, when asked

local function compressible(ctype)
  ctype = lower(ctype)
  return find(ctype, "^text/") or find(ctype, "^application/json") or
    find(ctype, "^application/javascript") or
    find(ctype, "^application/xml") or find(ctype, "%+xml") or
    find(ctype, "%+json") or false
end

-- Does Accept-Encoding v take gzip (q > 0)?
local function accepts_gzip(v)
  if not v then return false end
  for e in v:gmatch("[^,]+") do
    local name, params = e:match("^[ \t]*([^; \t]+)[ \t]*(.*)$")
    name = name and lower(name)
    if name == "gzip" or name == "x-gzip" or name == "*" then
      local q = params:match("[qQ][ \t]*=[ \t]*([%d.]+)")
      return not q or (tonumber(q) or 0) > 0
    end
  end
  return false
end
M.accepts_gzip = accepts_gzip

-- Decide once per response whether its body is gzipped; a type that could
-- be gets "Vary: Accept-Encoding" either way.
local function plan_gzip(self)
  local gz = self._req._reader.srv.gzip
  if not gz or self._gz_planned then return false end
  self._gz_planned = true
  local status = self._status
  if no_body_status(status) or status == 206 or
    self:get_header("content-encoding") or
    self:get_header("content-range") then
    return false
  end
  local ctype = self:get_header("content-type")
  if not ctype or not compressible(ctype) then return false end
  if not common.has_token(self:get_header("vary"), "accept-encoding") then
    local list = self._headers
    local n = #list
    list[n + 1], list[n + 2], list[n + 3] = "Vary", "Accept-Encoding", "vary"
  end
  return accepts_gzip(self._req.headers["accept-encoding"])
end

-- For a handler that must know before its head what the server will do
-- (http.files: its ETag and its 304 depend on it): with this Content-Type
-- does a 200 body vary with Accept-Encoding, and does this request get it
-- gzipped? -> varies, gzipped
function M.gzip_for(req, ctype)
  local rd = req._reader
  local gz = rd and rd.srv and rd.srv.gzip
  if not gz or not ctype or not compressible(ctype) then
    return false, false
  end
  return true, accepts_gzip(req.headers["accept-encoding"])
end

-- The body goes out gzipped: its length is no longer the handler's.
local function start_gzip(self)
  local list = self._headers
  remove_header(list, "content-length")
  local n = #list
  list[n + 1], list[n + 2], list[n + 3] = "Content-Encoding", "gzip",
    "content-encoding"
end

-- }}}

--- res:write(...) -> res: body bytes (strings or numbers), sent at once;
--- blocks while the peer is slow (backpressure). The head goes first,
--- chunked when no Content-Length was set.
function Response:write(...)
  if self.finished then error("write: the response is finished", 2) end
  local n = select("#", ...)
  local data = n == 1 and ... or concat({...})
  if type(data) ~= "string" then
    if type(data) == "number" then data = tostring(data)
    else error("bad argument #1 to 'write' (string expected, got " ..
      type(data) .. ")", 2) end
  end
  local head = false
  if not self.head_sent then
    if plan_gzip(self) then
      start_gzip(self)
      self._gz = core.gzip(self._req._reader.srv.gzip.level)
    end
    head = build_head(self, nil)
  end
  self._sent = self._sent + #data
  if self._length and self._sent > self._length and body_allowed(self) then
    self._sent = self._sent - #data
    if head then
      -- nothing is sent yet: the head is undone, and the error answered
      -- (500) as any other the handler lets through
      self.head_sent, self._length, self._chunked = false, false, nil
    else
      self._close = true -- short of its Content-Length: the peer knows
    end
    error("write: more bytes than the Content-Length set", 2)
  end
  if self._gz and body_allowed(self) and #data > 0 then
    data = self._gz:write(data)
  end
  local len = #data
  if not body_allowed(self) or len == 0 then
    if head then send_raw(self, head) end
    return self
  end
  if self._chunked then
    local size = fmt("%x\r\n", len)
    if head then send_raw(self, head, size, data, "\r\n")
    else send_raw(self, size, data, "\r\n") end
  elseif head then
    send_raw(self, head, data)
  else
    send_raw(self, data)
  end
  return self
end

--- res:finish(): end the response (the last chunk, when chunked).
function Response:finish()
  if self.finished then return self end
  local gz = self._gz
  if gz then -- the end of the gzip stream, then of the body
    self._gz = nil
    local tail = gz:finish()
    gz:close()
    if body_allowed(self) and #tail > 0 then
      if self._chunked then send_raw(self, fmt("%x\r\n", #tail), tail, "\r\n")
      else send_raw(self, tail) end
    end
  end
  if not self.head_sent then
    send_raw(self, (build_head(self, 0)))
  elseif self._chunked and body_allowed(self) then
    send_raw(self, "0\r\n\r\n")
  elseif self._length and self._sent < self._length and body_allowed(self)
  then
    self._close = true -- short of its Content-Length: the peer must know
  end
  self.finished = true
  return self
end

--- res:send([status,] [body]) -> res: the whole response at once (or the
--- last of it, after writes).
function Response:send(status, body)
  local st, b = send_args(status, body)
  if st == false then -- (a status error first, as it comes first)
    if status ~= nil then set_status(self, status, "send") end
    error("bad argument #2 to 'send' (string expected, got " .. b .. ")",
      2)
  end
  status, body = st, b
  if status ~= nil then set_status(self, status, "send") end
  if self.head_sent then
    if body then self:write(body) end
    return self:finish()
  end
  body = body or ""
  self._sent = #body
  local req = self._req
  local srv = req._reader.srv
  local gz = srv.gzip
  gz = gz and plan_gzip(self) and gz
  if gz and #body >= gz.min_size then
    start_gzip(self)
    local z = core.gzip(gz.level)
    body = z:write(body) .. z:finish()
    z:close()
  end
  -- (build_head and send_raw inlined: the common response's path)
  if srv._st.closed then self._close = true end -- (drain)
  local data, apart = c_build_head(self, #body, req, REASON[self._status],
    body)
  local ok, err
  if apart then ok, err = conn_write(self._conn, data, body)
  else ok, err = conn_write(self._conn, data) end
  if not ok then send_failed(self, err) end
  self.finished = true
  return self
end

-- The responses of one server: Response's fields and methods, with a
-- send whose common case runs whole in C (core.send_method, bound to the
-- server's net state), for a server without gzip; it returns false for
-- any other case, which res:send's Lua above does.
-- A second kind, for the responses to requests with a body (the few),
-- whose send first asks whether the connection will close for want of
-- reading the rest of it: the head then says so.
local function server_response(srv)
  local R = {}
  for k, v in pairs(Response) do R[k] = v end
  R.__index = R
  if not srv.gzip then
    local fast = core.send_method(REASON, conn_write, send_failed, srv._st)
    local send = Response.send
    function R:send(status, body)
      if fast(self, status, body) then return self end
      return send(self, status, body)
    end
  end
  local B = {}
  for k, v in pairs(R) do B[k] = v end
  B.__index = B
  local send = R.send
  function B:send(status, body)
    if not self.head_sent and undrainable(self._req) then
      self._close = true
    end
    return send(self, status, body)
  end
  return R, B
end

--- res:sendfile(path [, content_type]) -> true | nil, err: a whole file,
--- read on libuv's thread pool 64 KiB at a time (http.files adds types,
--- ranges and validators).
function Response:sendfile(path, ctype)
  if type(path) ~= "string" then
    error("bad argument #1 to 'sendfile' (string expected, got " ..
      type(path) .. ")", 2)
  end
  if ctype ~= nil and type(ctype) ~= "string" then
    error("bad argument #2 to 'sendfile' (string expected, got " ..
      type(ctype) .. ")", 2)
  end
  local fs = common.fs
  local st, err = fs("stat", path)
  if not st then return nil, err end
  if st.type ~= "file" then return nil, "not a regular file: " .. path end
  local fd, oerr = fs("open", path, "r", 0)
  if not fd then return nil, oerr end
  if ctype then self:header("Content-Type", ctype) end
  self:header("Content-Length", st.size)
  local ok, werr = pcall(function()
    self:write("")
    local pos = 0
    while body_allowed(self) and pos < st.size do
      local piece = fs("read", fd, math.min(65536, st.size - pos), pos)
      if not piece or piece == "" then break end
      pos = pos + #piece
      self:write(piece)
    end
  end)
  fs("close", fd)
  if not ok then error(werr, 0) end
  self:finish()
  return true
end

-- }}}

-- {{{ connections

local function access_log(srv, req, res)
  local log = srv.log
  if not log then return end
  local mod = srv.log_module
  if mod then -- the log module's format: one info line, fields apart
    if mod.enabled("info") then
      mod.info(req.method .. " " .. req.target, {peer = req.peer_ip,
        status = res._status, bytes = res._sent, version = req.version,
        ms = req._t0 and math.floor((task.now() - req._t0) * 1e4 + 0.5)
          / 10 or nil})
    end
    return
  end
  local line = fmt('%s - - [%s] "%s %s %s" %d %s\n', req.peer_ip or "-",
    os.date("!%d/%b/%Y:%H:%M:%S +0000"), req.method, req.target,
    req.version, res._status, res._sent > 0 and res._sent or "-")
  log(line)
end

-- websocket.accept's upgrade (101) is logged when it happens, not when
-- the handler returns (a WebSocket may stay open for hours); once.
function Response:_log_upgrade()
  local req = self._req
  local srv = req._reader.srv
  self._logged = true
  access_log(srv, req, self)
end

-- A response to a request that could not be read: status, then close.
local function reply_error(conn, status, why)
  local body = status .. " " .. (REASON[status] or "Error") .. "\n"
  conn:write("HTTP/1.1 ", status, " ", REASON[status] or "Error", "\r\n",
    "Date: ", common.date(), "\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "Content-Length: ", #body, "\r\n",
    "Connection: close\r\n\r\n", body)
  local _ = why
end

-- Read the next head: the head table, or nil, status, why (answer and
-- close), or nil (the peer is gone or idle too long), or false: nothing
-- is buffered and the conn rests (net's conn:rest: it waits in C, with
-- no task and no buffer, and serve_conn runs again, in a new round,
-- when the next request arrives).
local function read_head(srv, r)
  local T, parse = srv.timeouts, srv.parse
  local from, deadline = r.pos, nil
  local conn = r.conn
  while true do
    if r.pos <= #r.buf then
      local h, nxt, why = parse(r.buf, r.pos, from)
      if h then
        r.pos = nxt
        return h
      elseif h == false then
        return nil, nxt, why
      end
      -- (a head that came whole in one read never asks the clock)
      deadline = deadline or now() + T.head
    end
    local timeout = T.idle
    local before = #r.buf - r.pos + 1
    local ok, err
    if deadline then
      timeout = deadline - now()
      if timeout <= 0 then return nil, 408, "head timeout" end
    elseif before == 0 then
      if buffered(conn) == 0 then
        -- idle: the conn rests (no task, no buffer) for net's
        -- idle_timeout, which is T.idle; should it not be able to (a
        -- pending error), the read below reports it
        if rest(conn) then return false end
      else
        -- input waits in C (a round's first read): taken at once, with
        -- no wait and so no timeout to set
        ok, err = recv(conn)
        if ok then r.buf, r.pos = ok, 1 end
      end
    end
    if ok == nil then ok, err = r:fill(timeout) end
    if not ok then
      if err == "timeout" and deadline then
        return nil, 408, "head timeout"
      end
      return nil
    end
    from = before + 1
  end
end

-- The client behind trusted proxies: X-Forwarded-For read from the right,
-- past the addresses of trusted proxies; only when the peer itself is one
-- (anyone else could write the header). nil: keep the peer.
local in_cidr = select(2, ...).require("net.core").proxy_cidr
local function is_trusted(list, ip)
  for i = 1, #list do
    if in_cidr(list[i], ip) then return true end
  end
  return false
end
local function forwarded_for(srv, h, peer_ip)
  local list = srv.trusted
  local xff = h.headers["x-forwarded-for"]
  if not list or not peer_ip or not xff or not is_trusted(list, peer_ip) then
    return nil
  end
  if type(xff) == "table" then xff = table.concat(xff, ",") end
  local hops = {}
  for a in xff:gmatch("[^,%s]+") do hops[#hops + 1] = a end
  for i = #hops, 1, -1 do
    local a = hops[i]
    if not in_cidr(a:find(":", 1, true) and "::/0" or "0.0.0.0/0", a) then
      return nil -- not an address: trust nothing of it
    end
    if i == 1 or not is_trusted(list, a) then return a end
  end
  return nil
end

-- h came from parse_request with the request's metatables: its path,
-- query_string and body state (_done alone for none; else has_body, and
-- _left, _length for a length) are set.
local function new_request(srv, r, req, info)
  req._reader = r
  -- (the time taken goes in the log module's access line, when it is on)
  if info then req._t0 = now() end
  -- (proxy_ip: __index asks the conn when wanted, also when the PROXY
  -- protocol came with the socket: --listen ADDR,proxy, a systemd socket
  -- named "...,proxy")
  if srv.trusted then
    local peer_ip = req.peer_ip
    local client = forwarded_for(srv, req, peer_ip)
    if client then req.peer_ip, req.proxy_ip = client, peer_ip end
  end
  if req.has_body then
    if req.chunked then req._decoder = core.chunked() end
    req._t0 = now()
    if req.version == "HTTP/1.1" then
      local expect = rawget(req.headers, "expect")
      if expect and lower(expect) == "100-continue" then
        req._expect = true
      end
    end
  end
  return req
end

-- Skip what the handler left of the body, up to limits.drain; false when
-- the connection cannot go on.
local function drain(req)
  if req._done then return true end
  -- (a 100-continue never sent: not coming; or too large to skip)
  if undrainable(req) then return false end
  local ok = pcall(function()
    for _ in req:chunks(req._got + req._server.limits.drain) do end
  end)
  return ok and req._done
end

-- (task:cancel()'s marker: the task is being cancelled, not failing)
local CANCEL = net_core.CANCEL
local function traceback(e)
  if is_error(e) or e == CANCEL then return e end
  return debug.traceback(tostring(e), 2)
end

-- One round of a connection (net's serve runs it again after a rest):
-- requests read, handled and answered in order while input is
-- buffered; then the conn rests (read_head) until the next one.
local function serve_conn(srv, conn)
  local r = setmetatable({conn = conn, buf = "", pos = 1, srv = srv,
    timeout = false},
    common.Reader)
  local handler, T = srv.handler, srv.timeouts
  -- (has the conn rested before? asked once a round; then how long it
  -- waits for a next request before it rests)
  local warm, wait, wait_ms
  local parse = srv.parse
  while true do
    -- (a head whole in the buffer, the common case, parsed here; else
    -- read_head reads, and rests the conn when nothing is buffered)
    local h, status, why
    local buf, pos = r.buf, r.pos
    if pos <= #buf then h, status, why = parse(buf, pos, pos) end
    if h then
      r.pos = status
    elseif h == nil then
      h, status, why = read_head(srv, r)
      if h == false then return end -- resting (net's conn:rest)
    else
      h = nil -- a bad head: answered below
    end
    if not h then
      if status then
        reply_error(conn, status, why)
        if srv.log then
          access_log(srv, {peer_ip = (conn:peername()), method = "-",
            target = "-", version = "-"}, {_status = status, _sent = 0})
        end
      end
      return
    end
    -- (new_request only for a request with a body or behind trusted
    -- proxies: most have neither)
    local req, mt = h, srv.Response
    -- (the log module's level, asked once a request: info is true when
    -- its access line is on; nil with no log module)
    local log_module = srv.log_module
    local info = log_module and log_module.enabled("info")
    if srv.trusted or not h._done then
      new_request(srv, r, h, info)
      -- (its send asks first whether the rest of the body will be read)
      if not h._done then mt = srv.BodyResponse end
    else
      h._reader = r
      if info then h._t0 = now() end
    end
    -- (every field a plain response sets, so that its table is made
    -- once at its size; the header list has room for two fields: the
    -- nils size its array, # is 0)
    local res = setmetatable({_conn = conn, _req = req,
      _headers = {nil, nil, nil, nil, nil, nil}, -- luacheck: ignore
      _sent = 0, _length = false, _close = false, head_sent = false,
      finished = false}, mt)
    -- (r.timeout: the conn's timeout as the reader last set it; the
    -- handler's reads of the body set theirs through r too, and the wait
    -- for a next request (recv_wait) does not change it: so the second
    -- request of a round sets nothing)
    if r.timeout ~= T.write then
      settimeout(conn, T.write)
      r.timeout = T.write
    end
    local ok, err = xpcall(handler, traceback, req, res)
    if not ok and err == CANCEL then
      -- the task was cancelled (task:cancel() from another task): no
      -- handler error to log nor answer; the connection goes at once (a
      -- close frame or a response could wait on the very peer that made
      -- someone cancel it) and the cancel goes on
      conn:close()
      error(CANCEL, 0)
    end
    -- (the connection is theirs: websocket.accept marks the response
    -- finished "upgraded"; upgraded itself is not a field of every
    -- response, and its read would miss through the metatable)
    if res.finished == "upgraded" then
      -- (a WebSocket its handler left open ends with a close frame:
      -- 1000, or 1011 when the handler raised)
      local ws = res._websocket
      if ws then ws:_ended(ok and 1000 or 1011) end
      if ok then return end
    end
    if not ok then
      if is_error(err) then
        if err.status and not res.head_sent then
          res._headers, res._close = {}, true
          pcall(res.send, res, err.status,
            err.status .. " " .. (REASON[err.status] or "Error") .. "\n")
        end
      else
        if srv.log_module then
          srv.log_module.error("http: handler error: " .. tostring(err))
        else
          io.stderr:write("http: handler error: ", tostring(err), "\n")
        end
        if not res.head_sent then
          res._headers, res._close = {}, true
          pcall(res.send, res, 500, "500 Internal Server Error\n")
        end
      end
      if not res._logged then access_log(srv, req, res) end -- (101: was)
      return
    end
    if not res.finished then
      ok = pcall(res.finish, res)
      if not ok then return end
    end
    if srv.log and (info or not log_module) then
      access_log(srv, req, res)
    end
    -- (req.close is in res._close: the head said so)
    if res._close or not (req._done or drain(req)) then
      return
    end
    -- a closed server keeps no connection for a next request
    if srv._st.closed then return end
    -- nothing more to read: the conn rests (as read_head would), for
    -- what is left of timeouts.idle after a wait of timeouts.rest in a
    -- plain read when it rested before: a client that came back on a
    -- kept-alive conn often asks again at once, and this round serves
    -- that with no rest and no new round (a conn's first round does not
    -- wait: most one-request conns would hold a task for nothing)
    -- (input buffered already: recv_wait returns it at once, rest
    -- declines and read_head takes it)
    if r.pos > #r.buf then
      -- (the wait, its milliseconds: reckoned once a round)
      if warm == nil then
        warm = rested(conn)
        wait = warm and math.min(T.idle, T.rest) or 0
        wait_ms = ceil(wait * 1000)
        -- (close closes the conns of the list that wait in recv_wait at
        -- that moment: a conn is listed once, weakly, not once a wait)
        if wait > 0 then srv.waiting[conn] = true end
      end
      if wait > 0 then
        local data, rerr = recv_wait(conn, wait_ms)
        if data then
          r.buf, r.pos = data, 1
        elseif rerr ~= "timeout" or srv._st.closed then
          return
        end
      end
      if r.pos > #r.buf and rest(conn, T.idle - wait) then return end
    end
  end
end

-- {{{ servers

local Server = {}
Server.__index = Server
Server.__name = "http.server"

--- close(): stop accepting, and close the connections that wait for a
--- next request (requests being handled finish).
function Server:close()
  local r = self._net:close()
  self._net:close_idle()
  -- (each one's read returns "closed" and its round ends; listed first:
  -- a round that ends may list or drop others)
  local list = {}
  for conn in pairs(self.waiting) do
    if waits_next(conn) then list[#list + 1] = conn end
  end
  for i = 1, #list do list[i]:close() end
  return r
end
function Server:sockname() return self._net:sockname() end
function Server:active() return self._net:active() end

local LISTEN_OPTS = {host = true, port = true, path = true, fd = true,
  tls = true, handler = true, limits = true, timeouts = true, log = true,
  gzip = true, proxy_protocol = true, trusted_proxies = true,
  backlog = true, reuseport = true}

local attach_answers
local function make_log(log)
  if log == nil or log == false then return nil end
  if type(log) == "table" and log == package.loaded.log then
    return true, log -- lines through the log module (access_log)
  end
  if log == true then
    return function(line) io.stderr:write(line) end
  end
  if type(log) == "string" then
    local f = assert(io.open(log, "a"))
    f:setvbuf("line")
    return function(line) f:write(line) end
  end
  if type(log) == "function" then return log end
  error("bad argument #1 to 'listen' (log: true, a file name, a " ..
    "function or the log module expected)", 3)
end

-- A server whose handler is a fixed response, or a router with fixed
-- routes, answers them in C (http_fixed.c): its answers hold their
-- bytes, made again when the router changes. Not with gzip (the Lua
-- decides per request) nor an access log of another kind than the log
-- module's (whose level C reads).
local Router = require("http.router")
-- A fixed response's bytes as this server sends them to method, or nil
-- when they depend on the request. With gzip on, res:send's plan_gzip
-- decides: a type it may compress gets "Vary: Accept-Encoding" whatever
-- the request, and a body of min_size or more is compressed for a client
-- that takes gzip (the Lua's, then); any other response is as without
-- gzip.
local function fixed_for(srv, fx, method)
  local plain = method == "GET" and fx._get or fx._head
  local gz = srv.gzip
  if not gz then return plain end
  local f, first = fx._fields, {}
  for i = 1, #f, 3 do
    if first[f[i + 2]] == nil then first[f[i + 2]] = f[i + 1] end
  end
  local st, ctype = fx.status, first["content-type"]
  if no_body_status(st) or st == 206 or first["content-encoding"] or
    first["content-range"] or not ctype or not compressible(ctype) then
    return plain
  end
  if #fx.body >= gz.min_size then return nil end
  local key = "_vary_" .. method
  if not fx[key] then
    local fields = table.move(f, 1, #f, 1, {})
    if not common.has_token(first.vary, "accept-encoding") then
      local n = #fields
      fields[n + 1], fields[n + 2], fields[n + 3] = "Vary",
        "Accept-Encoding", "vary"
    end
    fx[key] = fixed_bytes(fx, method, fields)
  end
  return fx[key]
end

local function sync_answers(srv)
  local h, list, all = srv._fixed_src, {}, nil
  local N = 5 -- (the values of a response: see fixed_bytes)
  local function put(t, at, resp)
    for k = 1, N do t[at + k] = resp and resp[k] or false end
  end
  if getmetatable(h) == Fixed then
    all = {}
    put(all, 0, fixed_for(srv, h, "GET"))
    put(all, N, fixed_for(srv, h, "HEAD"))
  else
    local ex = Router.exact_routes(h)
    for i = 1, #ex, 3 do
      local get, head = ex[i + 1], ex[i + 2]
      get = getmetatable(get) == Fixed and fixed_for(srv, get, "GET")
      head = getmetatable(head) == Fixed and fixed_for(srv, head, "HEAD")
      if get or head then
        local n = #list
        list[n + 1] = ex[i]
        put(list, n + 1, get)
        put(list, n + 1 + N, head)
      end
    end
  end
  srv._answers:set(list, all)
end

attach_answers = function(srv, handler, log, log_module, whole)
  if log and not log_module then return end
  local is_router = getmetatable(handler) == Router.Router
  if not is_router and getmetatable(handler) ~= Fixed then return end
  local L = srv.limits
  srv._fixed_src = handler
  srv._answers = core.answers(whole(L.line), whole(L.head),
    whole(L.fields), log_module and 1 or 0)
  sync_answers(srv)
  srv._answers:attach(srv._net)
  if is_router then
    local w = rawget(handler, "_watch")
    if not w then
      w = setmetatable({}, {__mode = "k"})
      rawset(handler, "_watch", w)
    end
    w[srv] = sync_answers
  end
end

--- listen{host=, port= | path= | fd=, handler=, limits=, timeouts=,
---   log=, gzip=, backlog=, reuseport=, tls=, proxy_protocol=,
---   trusted_proxies=} -> server | nil, err
--- (tls: a tls.context or its options, as net.listen: HTTPS)
function M.listen(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'listen' (table expected, got " ..
      type(opts) .. ")", 2)
  end
  for k in pairs(opts) do
    if not LISTEN_OPTS[k] then
      error(("bad argument #1 to 'listen' (unknown option '%s')")
        :format(tostring(k)), 2)
    end
  end
  local handler = opts.handler
  local mt = getmetatable(handler)
  if type(handler) ~= "function" and not (mt and mt.__call) then
    error("bad argument #1 to 'listen' (handler: function expected, got " ..
      type(handler) .. ")", 2)
  end
  -- (a router: called through its plain function, see router.lua)
  if type(handler) == "table" and type(rawget(mt, "__handler")) == "function"
  then
    handler = mt.__handler(handler)
  end
  local gzip = opts.gzip
  if gzip == true then gzip = {} end
  if gzip then
    if type(gzip) ~= "table" then
      error("bad argument #1 to 'listen' (gzip: true or a table expected)",
        2)
    end
    local level, min = gzip.level or 6, gzip.min_size or 256
    if math.type(level) ~= "integer" or level < 1 or level > 9 or
      math.type(min) ~= "integer" or min < 0 then
      error("bad argument #1 to 'listen' (gzip: level 1..9, min_size " ..
        ">= 0 expected)", 2)
    end
    gzip = {level = level, min_size = min}
  end
  local trusted = opts.trusted_proxies
  if trusted ~= nil then
    local ok = type(trusted) == "table"
    for _, c in ipairs(ok and trusted or {}) do
      if type(c) ~= "string" or not in_cidr(c) then ok = false end
    end
    if not ok then
      error("bad argument #1 to 'listen' (trusted_proxies: a list of " ..
        "CIDRs expected)", 2)
    end
  end
  local d = common.defaults
  local log, log_module = make_log(opts.log)
  local srv = setmetatable({handler = handler, log = log,
    -- (false, not nil, for what is off: a field read once a request
    -- finds it in the table, not through the metatable)
    log_module = log_module, gzip = gzip or false,
    trusted = trusted or false, proxy_protocol = opts.proxy_protocol,
    limits = common.merge(d.limits, opts.limits, "limits", "listen"),
    timeouts = common.merge(d.timeouts, opts.timeouts, "timeouts", "listen"),
    -- conns whose rounds wait timeouts.rest for a next request (weak:
    -- listed once a round; close closes those that wait at the time)
    waiting = setmetatable({}, {__mode = "k"}),
    }, Server)
  -- (parse_request with this server's limits and metatable bound: whole
  -- numbers, at least 1, a huge one as 2^40, "no limit" in effect)
  local L = srv.limits
  local function whole(v)
    return math.max(1, math.floor(math.min(v, 1 << 40)))
  end
  srv.parse = core.request_parser(whole(L.line), whole(L.head),
    whole(L.fields), Request)
  -- net.listen checks the rest: its argument errors are raised again
  -- here, so that they point at the caller's line, not at this one
  local ok, s, err, msg = pcall(net.listen, {host = opts.host,
    port = opts.port, path = opts.path, fd = opts.fd,
    backlog = opts.backlog, reuseport = opts.reuseport,
    max_connections = srv.limits.connections,
    proxy_protocol = opts.proxy_protocol,
    idle_timeout = srv.timeouts.idle, tls = opts.tls})
  if not ok then
    if type(s) == "string" then s = s:gsub("^[^\n]-:%d+: ", "", 1) end
    error(s, 2)
  end
  if not s then return nil, err, msg end
  srv._net = s
  srv._st = assert(net_servers[s], "net server state")
  attach_answers(srv, opts.handler, log, log_module, whole)
  srv.Response, srv.BodyResponse = server_response(srv)
  task.spawn(function()
    s:serve(function(conn) return serve_conn(srv, conn) end)
  end)
  return srv
end

-- }}}

return M
