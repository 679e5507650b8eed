--[==[
http.websocket: RFC 6455 over an http.listen request or a net connection.

  local ws = assert(http.websocket.accept(req, res [, opts]))  -- server
  local ws = assert(http.websocket.connect(url [, opts]))      -- client
  ws:send(data [, "text" | "binary"])   -> true | nil, err
  ws:receive() -> message, "text" | "binary" | nil, err [, code, reason]
  for msg, kind in ws:messages() do ... end
  ws:ping([data]), ws:close([code [, reason]])

opts: max_message (bytes, default http.defaults.limits.ws_message; a
bigger message closes with 1009), timeout (seconds a receive waits for a
message to begin: then nil, "timeout", the WebSocket open; a stall within
a message closes it),
protocols (a list; accept picks the first the client offers; connect
offers them), headers (connect: extra request headers), tls (connect:
wss://). Unknown names and wrong types raise at the caller.

Enforced: client frames masked and server frames not (1002), no reserved
bits (no extension is negotiated), control frames short and unfragmented,
fragments in order, text (and close reasons) valid UTF-8 (1007), close
codes valid; a ping is answered with a pong; the close handshake is
completed before the TCP connection closes.
]==]
local net = require "net"
local task = require "task"
local core = require "http.core"
local common = require "http.common"
-- (raises unless a task that can wait runs: at the caller's line)
local need_task = select(2, ...).require("net.core").need_task
local tls_context = select(2, ...).net_tls_context

local M = {}

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
local spack, sunpack, char, byte = string.pack, string.unpack, string.char,
  string.byte
local mask, utf8len = core.mask, utf8.len

local function accept_key(key)
  return core.b64encode(core.sha1(key .. GUID))
end
M.accept_key = accept_key

-- Seed the masking keys from the kernel once (RFC 6455 10.3: keys must
-- not be predictable by the application sending data).
do
  local f = io.open("/dev/urandom", "rb")
  if f then
    local a, b = sunpack("<I8I8", f:read(16))
    f:close()
    math.randomseed(a, b)
  end
end
local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = char(math.random(0, 255)) end
  return table.concat(t)
end

local WS = {}
WS.__index = WS
WS.__name = "http.websocket"

local OPS = {text = 1, binary = 2}
local KIND = {[1] = "text", [2] = "binary"}

local function valid_code(c)
  return (c >= 1000 and c <= 1003) or (c >= 1007 and c <= 1011) or
    (c >= 3000 and c <= 4999)
end

-- Options, checked when accept or connect is called: a wrong type or an
-- unknown name raises at the caller's line (not later, as a failed
-- receive or a handler's error inside this file).
local ACCEPT_OPTS = {max_message = true, timeout = true, protocols = true}
local CONNECT_OPTS = {max_message = true, timeout = true, protocols = true,
  headers = true, tls = true}
-- (fields the handshake writes itself: not in opts.headers)
local HANDSHAKE_FIELDS = {host = true, upgrade = true, connection = true,
  ["sec-websocket-key"] = true, ["sec-websocket-version"] = true,
  ["sec-websocket-protocol"] = true, ["sec-websocket-extensions"] = true}

local function check_opts(opts, known, n, fname)
  if opts == nil then return {} end
  local function bad(msg, ...)
    error(("bad argument #%d to '%s' (" .. msg .. ")"):format(n, fname, ...),
      4) -- (bad, check_opts, accept/connect, their caller)
  end
  if type(opts) ~= "table" then bad("table expected, got %s", type(opts)) end
  for k in pairs(opts) do
    if not known[k] then bad("unknown option '%s'", tostring(k)) end
  end
  local max, timeout = opts.max_message, opts.timeout
  if max ~= nil and not (type(max) == "number" and max > 0) then
    bad("max_message: positive number expected, got %s", tostring(max))
  end
  if timeout ~= nil and not (type(timeout) == "number" and timeout >= 0) then
    bad("timeout: non-negative number expected, got %s", tostring(timeout))
  end
  local protocols = opts.protocols
  if protocols ~= nil then
    if type(protocols) ~= "table" then
      bad("protocols: a list of strings expected, got %s", type(protocols))
    end
    for i, p in ipairs(protocols) do
      if type(p) ~= "string" or not p:match("^[%w!#$%%&'*+%-.^_`|~]+$") then
        bad("protocols[%d]: a token string expected, got %s", i,
          type(p) == "string" and ("%q"):format(p) or type(p))
      end
    end
  end
  local headers = opts.headers
  if headers ~= nil then
    if type(headers) ~= "table" then
      bad("headers: table expected, got %s", type(headers))
    end
    for name, value in pairs(headers) do
      if type(name) ~= "string" or (type(value) ~= "string" and
        type(value) ~= "number") then
        bad("headers: name = value strings expected")
      end
      local ok, why = core.field_ok(name, tostring(value))
      if not ok then bad("header %s: %s", name, why) end
      if HANDSHAKE_FIELDS[name:lower()] then
        bad("header %s is set by the handshake", name)
      end
    end
  end
  local tls = opts.tls
  if tls ~= nil and tls ~= true and tls ~= false then
    -- (its options checked now, naming us; the context made is the one
    -- the connection gets, net.connect keeps it per options table)
    tls_context(tls, n, fname, false, 4)
  end
  return opts
end

local function new(conn, reader, client, opts)
  return setmetatable({conn = conn, r = reader, client = client,
    max = opts.max_message or common.defaults.limits.ws_message,
    timeout = opts.timeout, protocol = opts.protocol}, WS)
end

-- Write one frame (masked when we are the client).
local function write_frame(self, op, data, fin)
  local len = #data
  local b1 = (fin == false and 0 or 0x80) | op
  local m = self.client and 0x80 or 0
  local head
  if len < 126 then head = char(b1, m | len)
  elseif len < 65536 then head = spack(">BBI2", b1, m | 126, len)
  else head = spack(">BBI8", b1, m | 127, len) end
  if self.client then
    local key = random_bytes(4)
    return self.conn:write(head, key, mask(data, key))
  end
  return self.conn:write(head, data)
end

--- ws:send(data [, kind]) -> true | nil, err
function WS:send(data, kind)
  if type(data) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " ..
      type(data) .. ")", 2)
  end
  local op = OPS[kind or "text"]
  if not op then
    error("bad argument #2 to 'send' ('text' or 'binary' expected)", 2)
  end
  if op == 1 and not utf8len(data) then
    error("bad argument #1 to 'send' (text must be valid UTF-8)", 2)
  end
  if self.close_sent then return nil, "closed" end
  local ok, err = write_frame(self, op, data)
  if not ok then return nil, err end
  return true
end

--- ws:ping([data]) -> true | nil, err
function WS:ping(data)
  data = data or ""
  if #data > 125 then error("bad argument #1 to 'ping' (at most 125 bytes)",
    2) end
  if self.close_sent then return nil, "closed" end
  local ok, err = write_frame(self, 9, data)
  if not ok then return nil, err end
  return true
end

-- Send a close frame once, then (server) close the TCP connection.
local function send_close(self, code, reason)
  if not self.close_sent then
    self.close_sent = true
    local payload = code and spack(">I2", code) .. (reason or "") or ""
    write_frame(self, 8, payload)
  end
end

-- Fail the connection (RFC 6455 7.1.7): close frame with code, drop TCP.
local function fail(self, code, why)
  send_close(self, code, "")
  self.conn:close()
  self.closed = true
  return nil, why, code
end

-- The handler that accepted the WebSocket returned (1000) or raised
-- (1011) with it still open: a close frame, then the TCP connection goes
-- (http.server calls this; no wait for the peer's answer).
function WS:_ended(code)
  if self.closed then return end
  pcall(send_close, self, code, "")
  self.conn:close()
  self.closed = true
end

--- ws:close([code [, reason]]) -> true: starts (or completes) the closing
--- handshake and waits (bounded) for the peer's close frame.
function WS:close(code, reason)
  if code ~= nil and (math.type(code) ~= "integer" or not valid_code(code))
  then
    error("bad argument #1 to 'close' (close code expected)", 2)
  end
  if reason ~= nil and (type(reason) ~= "string" or #reason > 123) then
    error("bad argument #2 to 'close' (reason: string of at most 123 " ..
      "bytes expected)", 2)
  end
  if self.closed then return true end
  send_close(self, code or 1000, reason)
  -- wait for the peer's close (bounded), discarding data
  self.timeout = math.min(self.timeout or 5, 5)
  for _ = 1, 1000 do
    local msg = self:receive()
    if msg == nil then break end
  end
  self.conn:close()
  self.closed = true
  return true
end

local function read_exact(self, n)
  return self.r:take(n, self.timeout)
end

--- ws:receive() -> message, kind | nil, err [, code, reason]
--- err is "closed" after a close handshake (code, reason: the peer's).
function WS:receive()
  if self.closed then return nil, "closed", self.close_code end
  local parts, size, first_op = nil, 0, nil
  while true do
    -- nothing of a message yet: a wait past the timeout is no failure,
    -- the WebSocket stays open (the caller may ping, send or close);
    -- within a message it is one (the peer stalled mid-message)
    local r = self.r
    if parts == nil and r.pos > #r.buf and self.timeout then
      local ok, ferr = r:fill(self.timeout)
      if not ok and ferr == "timeout" then return nil, "timeout" end
    end
    local h, err = read_exact(self, 2)
    if not h then
      self.conn:close()
      self.closed = true
      return nil, err
    end
    local b1, b2 = byte(h, 1, 2)
    local fin, op = b1 & 0x80 ~= 0, b1 & 0x0F
    local masked, len = b2 & 0x80 ~= 0, b2 & 0x7F
    if b1 & 0x70 ~= 0 then return fail(self, 1002, "reserved bits set") end
    if masked == self.client then
      return fail(self, 1002, masked and "masked frame from the server"
        or "unmasked frame from the client")
    end
    if len == 126 then
      local e = read_exact(self, 2)
      if not e then return fail(self, 1002, "closed in a frame") end
      len = sunpack(">I2", e)
    elseif len == 127 then
      local e = read_exact(self, 8)
      if not e then return fail(self, 1002, "closed in a frame") end
      len = sunpack(">i8", e)
      if len < 0 then return fail(self, 1002, "bad length") end
    end
    if op >= 8 then
      if not fin or len > 125 then
        return fail(self, 1002, "bad control frame")
      end
    elseif size + len > self.max then
      return fail(self, 1009, "message too big")
    end
    local key
    if masked then
      key = read_exact(self, 4)
      if not key then return fail(self, 1002, "closed in a frame") end
    end
    -- (not `len > 0 and read_exact(...) or ""`: a payload cut short by
    -- the end of the stream would read as an empty one)
    local payload = ""
    if len > 0 then
      payload = read_exact(self, len)
      if not payload then return fail(self, 1002, "closed in a frame") end
    end
    if key then payload = mask(payload, key) end
    if op == 8 then -- close
      local code, reason = 1005, ""
      if #payload == 1 then return fail(self, 1002, "bad close frame") end
      if #payload >= 2 then
        code = sunpack(">I2", payload)
        reason = payload:sub(3)
        if not valid_code(code) then
          return fail(self, 1002, "bad close code")
        end
        if not utf8len(reason) then
          return fail(self, 1007, "close reason not UTF-8")
        end
      end
      self.close_code, self.close_reason = code, reason
      send_close(self, code ~= 1005 and code or nil, "")
      if not self.client then self.conn:close() self.closed = true end
      if self.client then -- the server closes the TCP connection first
        self.conn:settimeout(2)
        self.conn:read("a")
        self.conn:close()
        self.closed = true
      end
      return nil, "closed", code, reason
    elseif op == 9 then -- ping: pong back
      if not self.close_sent then write_frame(self, 10, payload) end
    elseif op == 10 then -- pong: nothing to do
      self.last_pong = payload
    elseif op == 0 then
      if not first_op then return fail(self, 1002, "continuation first") end
      parts[#parts + 1] = payload
      size = size + len
      if fin then
        local msg = table.concat(parts)
        if first_op == 1 and not utf8len(msg) then
          return fail(self, 1007, "text not UTF-8")
        end
        return msg, KIND[first_op]
      end
    elseif op == 1 or op == 2 then
      if first_op then return fail(self, 1002, "message interleaved") end
      if fin then
        if op == 1 and not utf8len(payload) then
          return fail(self, 1007, "text not UTF-8")
        end
        return payload, KIND[op]
      end
      first_op, parts, size = op, {payload}, len
    else
      return fail(self, 1002, "unknown opcode " .. op)
    end
  end
end

--- ws:messages() -> iterator of message, kind (ends at close or error)
function WS:messages()
  return function() return self:receive() end
end

function WS:__tostring()
  return ("http.websocket (%s)"):format(self.closed and "closed" or "open")
end

-- {{{ handshakes

--- accept(req, res [, opts]) -> ws | nil, err: answer the upgrade (101);
--- a request that is not a WebSocket handshake gets 400 (426 for another
--- version) and nil, err.
function M.accept(req, res, opts)
  if type(req) ~= "table" or type(res) ~= "table" or not res._conn then
    error("bad argument #1 to 'accept' (http request, response expected)", 2)
  end
  opts = check_opts(opts, ACCEPT_OPTS, 3, "accept")
  local h = req.headers
  local key = h["sec-websocket-key"]
  local raw = key and core.b64decode(key)
  if req.method ~= "GET" or req.version ~= "HTTP/1.1" or
    not common.has_token(h.upgrade, "websocket") or
    not common.has_token(h.connection, "upgrade") or
    not raw or #raw ~= 16 then
    res:send(400, "not a WebSocket handshake\n")
    return nil, "not a websocket handshake"
  end
  if h["sec-websocket-version"] ~= "13" then
    -- (a 426 names the protocol to upgrade to, RFC 9110 15.5.22, and a
    -- sender of Upgrade lists it in Connection, 7.8)
    res:header("Upgrade", "websocket")
    res:header("Connection", "Upgrade")
    res:header("Sec-WebSocket-Version", "13")
    res:send(426, "WebSocket version 13 only\n")
    return nil, "unsupported websocket version"
  end
  local chosen
  if opts.protocols and h["sec-websocket-protocol"] then
    for offered in h["sec-websocket-protocol"]:gmatch("[^,%s]+") do
      for _, p in ipairs(opts.protocols) do
        if p == offered then chosen = p break end
      end
      if chosen then break end
    end
  end
  local conn = res._conn
  res.head_sent, res.finished = true, "upgraded"
  res._status = 101
  local ok, err = conn:write("HTTP/1.1 101 Switching Protocols\r\n",
    "Upgrade: websocket\r\nConnection: Upgrade\r\n",
    "Sec-WebSocket-Accept: ", accept_key(key), "\r\n",
    chosen and "Sec-WebSocket-Protocol: " .. chosen .. "\r\n" or "",
    "\r\n")
  -- (the access log's line for the request, its status 101: now)
  local log_upgrade = res._log_upgrade
  if log_upgrade then log_upgrade(res) end
  if not ok then return nil, err end
  conn:settimeout(nil)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.protocol = chosen
  local ws = new(conn, req._reader, false, o)
  res._websocket = ws
  return ws
end

--- connect(url [, opts]) -> ws | nil, err (ws:// URLs)
function M.connect(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " ..
      type(url) .. ")", 2)
  end
  opts = check_opts(opts, CONNECT_OPTS, 2, "connect")
  need_task("http.websocket.connect", 2) -- (at the caller's line)
  local client = require "http.client"
  local u, uerr = client.parse_url(url, {ws = 80})
  if not u then return nil, uerr end
  if u.scheme ~= "ws" and u.scheme ~= "wss" then
    return nil, "only ws:// and wss:// URLs are supported"
  end
  local timeout = opts.timeout or common.defaults.timeouts.connect
  local conn, err = net.connect(u.host, u.port, {timeout = timeout,
    tls = u.scheme == "wss" and (opts.tls or true) or nil})
  if not conn then return nil, err end
  local key = core.b64encode(random_bytes(16))
  local lines = {"GET ", u.target, " HTTP/1.1\r\nHost: ", u.authority,
    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    "Sec-WebSocket-Key: ", key, "\r\nSec-WebSocket-Version: 13\r\n"}
  if opts.protocols and #opts.protocols > 0 then
    lines[#lines + 1] = "Sec-WebSocket-Protocol: " ..
      table.concat(opts.protocols, ", ") .. "\r\n"
  end
  for name, value in pairs(opts.headers or {}) do
    lines[#lines + 1] = name .. ": " .. value .. "\r\n"
  end
  lines[#lines + 1] = "\r\n"
  local ok, werr = conn:write(table.concat(lines))
  if not ok then conn:close() return nil, werr end
  local r = common.reader(conn)
  local h, herr = common.read_response_head(r, task.now() + timeout)
  if not h then conn:close() return nil, herr end
  if h.status ~= 101 then
    conn:close()
    return nil, "handshake refused: " .. h.status, h
  end
  if not common.has_token(h.headers.upgrade, "websocket") or
    not common.has_token(h.headers.connection, "upgrade") or
    h.headers["sec-websocket-accept"] ~= accept_key(key) then
    conn:close()
    return nil, "bad handshake answer"
  end
  -- RFC 6455 4.1: the client fails the connection when the answer names
  -- an extension it did not offer (it offers none) or a subprotocol that
  -- is not one of its offer (or any when it offered none)
  local ext = h.headers["sec-websocket-extensions"]
  if ext and ext:find("[^%s,]") then
    conn:close()
    return nil, "bad handshake answer: extension not offered: " ..
      ext:sub(1, 100)
  end
  local chosen = h.headers["sec-websocket-protocol"]
  if chosen then
    local offered = false
    for _, p in ipairs(opts.protocols or {}) do
      if p == chosen then offered = true break end
    end
    if not offered then
      conn:close()
      return nil, "bad handshake answer: subprotocol not offered: " ..
        chosen:sub(1, 100)
    end
  end
  conn:settimeout(nil)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.protocol = chosen
  return new(conn, r, true, o)
end

-- }}}

return M
