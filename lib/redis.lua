--[[
redis: a Redis client (RESP2) over net, for tasks.

  local redis = require "redis"
  local db = assert(redis.connect("127.0.0.1", 6379, {timeout = 5}))
  db:call("SET", "k", "v")               --> "OK"
  db:get("k")                            --> "v" (any command as a method)
  db:pipeline(function(p)                --> {1, 2} (one write, one read)
    p:incr("n") p:incr("n")
  end)
  db:subscribe("news")                   -- then, in subscribe mode:
  for kind, channel, msg in db:messages() do ... end
  local pool = redis.pool{host = "127.0.0.1", port = 6379, size = 8}
  pool:call("INCR", "hits")              -- borrows, calls, gives back

Replies map to Lua values: simple and bulk strings to strings, integers to
integers, arrays to lists, the null bulk string and array to redis.null.
An error reply is nil, "ERR message" from call (and a table {err =
"ERR message"} inside a pipeline's or an array's results). Network
failures are nil, err too ("closed", "timeout", "ECONNREFUSED", ...), and
so is a reply that breaks the protocol ("protocol error: ...": the
connection is closed, its stream can no longer be trusted). Replies are
parsed strictly and within bounds (max_bulk, max_elements, max_depth).
See docs/redis.md.
]]
local net = require "net"
local task = require "task"
-- (raises unless a task that can wait runs: at the caller's line)
local need_task = select(2, ...).require("net.core").need_task

local redis = {}

--- Limits and defaults; connect/pool options override them.
redis.defaults = {
  timeout = 10,                    -- seconds: connect, and each reply
  max_bulk = 512 * 1024 * 1024,    -- bytes in one bulk string (Redis's)
  max_elements = 16 * 1024 * 1024, -- elements in one array
  max_depth = 32,                  -- arrays within arrays
  max_line = 64 * 1024,            -- bytes in a status, error or length
}

redis.null = setmetatable({}, {__name = "redis.null",
  __tostring = function() return "redis.null" end})

local ErrorReply = {__name = "redis.error"}
ErrorReply.__tostring = function(e) return "redis.error: " .. e.err end

--- is_error(v): true for an error reply inside a pipeline or array.
function redis.is_error(v) return getmetatable(v) == ErrorReply end

local concat = table.concat
local tointeger, mtype = math.tointeger, math.type

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- {{{ RESP2: encoding commands, decoding replies

-- One command as RESP: an array of bulk strings. Arguments are strings
-- or numbers (floats written with 17 digits: no precision lost).
local function encode(args, n, fname, first)
  local out = {"*", n, "\r\n"}
  for i = 1, n do
    local a = args[i]
    local t = mtype(a)
    if t == "float" then a = ("%.17g"):format(a)
    elseif t == "integer" then a = tostring(a)
    elseif type(a) ~= "string" then
      argerror(i + (first or 1) - 1, fname, "string or number expected, got "
        .. (a == nil and "nil" or type(a)))
    end
    out[#out + 1] = "$"
    out[#out + 1] = #a
    out[#out + 1] = "\r\n"
    out[#out + 1] = a
    out[#out + 1] = "\r\n"
  end
  return concat(out)
end

--- encode(...) -> the command as RESP bytes
function redis.encode(...)
  local n = select("#", ...)
  if n == 0 then error("bad argument #1 to 'encode' (command expected)", 2) end
  return encode({...}, n, "encode")
end

-- A decimal integer as RESP writes it: digits, maybe a minus; nil for
-- anything else (spaces, "+5", "0x10", "1e3", overflow).
local function integer(s)
  if not s:find("^%-?%d+$") or #s > 20 then return nil end
  return tointeger(tonumber(s))
end

-- Decode one reply from src, whose :line() gives the next line without
-- its LF (or nil, err) and :bytes(n) the next n bytes (or nil, err).
-- Returns true, value or false, err. Every length is checked before
-- anything is read or allocated for it.
local function decode(src, lim, depth)
  local line, err = src:line()
  if not line then return false, err end
  local n = #line
  if n < 2 or line:byte(n) ~= 13 then
    return false, "protocol error: line without CR LF"
  end
  local kind, rest = line:byte(1), line:sub(2, n - 1)
  if kind == 43 then return true, rest end -- '+'
  if kind == 45 then return true, setmetatable({err = rest}, ErrorReply) end
  if kind == 58 then -- ':'
    local v = integer(rest)
    if not v then return false, "protocol error: bad integer" end
    return true, v
  end
  if kind == 36 then -- '$'
    local len = integer(rest)
    if len == -1 then return true, redis.null end
    if not len or len < 0 or len > lim.max_bulk then
      return false, "protocol error: bad bulk length"
    end
    local s
    s, err = src:bytes(len + 2)
    if not s then return false, err end
    if #s < len + 2 then return false, "closed" end
    if s:byte(len + 1) ~= 13 or s:byte(len + 2) ~= 10 then
      return false, "protocol error: bulk string without CR LF"
    end
    return true, s:sub(1, len)
  end
  if kind == 42 then -- '*'
    local count = integer(rest)
    if count == -1 then return true, redis.null end
    if not count or count < 0 or count > lim.max_elements then
      return false, "protocol error: bad array length"
    end
    if depth >= lim.max_depth then
      return false, "protocol error: arrays nested too deep"
    end
    local list = {}
    for i = 1, count do
      local ok, v = decode(src, lim, depth + 1)
      if not ok then return false, v end
      list[i] = v
    end
    return true, list
  end
  return false, ("protocol error: unexpected byte %q"):format(
    string.char(kind))
end

-- A source over a string (for redis.decode).
local StringSource = {}
StringSource.__index = StringSource

function StringSource:line()
  local e = self.s:find("\n", self.pos, true)
  if not e then return nil, "closed" end
  if e - self.pos > self.max_line then return nil, "line too long" end
  local line = self.s:sub(self.pos, e - 1)
  self.pos = e + 1
  return line
end

function StringSource:bytes(n)
  local s = self.s:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + #s
  return s
end

-- The conn's max_read: a bulk string is read whole (read(n)), with its
-- CRLF; net's limit is 32-bit.
local function max_read(lim)
  return math.min(lim.max_bulk + 2, 0xffffffff)
end

local function limits(opts, fname, n)
  local d = redis.defaults
  local lim = {}
  for _, k in ipairs{"max_bulk", "max_elements", "max_depth", "max_line"} do
    local v = opts and opts[k]
    if v == nil then v = d[k]
    elseif mtype(v) ~= "integer" or v < 0 then
      argerror(n, fname, k .. ": non-negative integer expected")
    end
    lim[k] = v
  end
  return lim
end

--- decode(s [, pos [, limits]]) -> value, next_pos | nil, err
--- One reply from the bytes of s at pos (default 1): its value (an error
--- reply as a redis.error table), and where the next one starts.
function redis.decode(s, pos, opts)
  if type(s) ~= "string" then argerror(1, "decode", "string expected") end
  if pos ~= nil and mtype(pos) ~= "integer" then
    argerror(2, "decode", "integer expected")
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(3, "decode", "table expected")
  end
  local lim = limits(opts, "decode", 3)
  local src = setmetatable({s = s, pos = pos or 1, max_line = lim.max_line},
    StringSource)
  local ok, v = decode(src, lim, 0)
  if not ok then return nil, v end
  return v, src.pos
end

-- }}}

-- {{{ clients

local Client = {}
local methods = {}
Client.__name = "redis.client"

-- db:anything(...) sends ANYTHING: one function per name, made once.
local command_methods = setmetatable({}, {__mode = "v"})
Client.__index = function(_, name)
  local m = methods[name]
  if m then return m end
  if type(name) ~= "string" then return nil end
  m = command_methods[name]
  if not m then
    local cmd = name:upper()
    m = function(self, ...) return self:call(cmd, ...) end
    command_methods[name] = m
  end
  return m
end

local CONNECT_OPTS = {timeout = true, password = true, username = true,
  db = true, max_bulk = true, max_elements = true, max_depth = true,
  max_line = true, host = true, port = true, path = true}

-- A source over a connection: read("l") and read(n) are buffered in C.
local ConnSource = {}
ConnSource.__index = ConnSource
-- (taken: whether a read since it was cleared got bytes; a timeout
-- before any is harmless, one in the middle of a reply is not)
function ConnSource:line()
  local line, err = self.conn:read("l")
  if line then self.taken = true end
  return line, err
end
function ConnSource:bytes(n)
  local s, err = self.conn:read(n)
  if s then self.taken = true end
  return s, err
end

local function check_opts(opts, fname, n)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(n, fname, "table expected") end
  for k in pairs(opts) do
    if not CONNECT_OPTS[k] then
      argerror(n, fname, "unknown option '" .. tostring(k) .. "'")
    end
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or
      opts.timeout ~= opts.timeout or opts.timeout < 0) then
    argerror(n, fname, "timeout: non-negative number expected")
  end
  return opts
end

-- The client is unusable after a network or protocol failure: its stream
-- may hold half a reply.
local function broken(self, err)
  self.failed = err
  if not self.conn:is_closed() then self.conn:close() end
  return nil, err
end

local function read_reply(self)
  local ok, v = decode(self.src, self.lim, 0)
  if not ok then return broken(self, v) end
  return v
end

-- Turn an error reply into nil, message (at the top level).
local function result(v, err)
  if v == nil then return nil, err end
  if getmetatable(v) == ErrorReply then return nil, v.err end
  return v
end

--- connect(host, port [, opts]) or connect{host=, port= | path=, ...}
--- -> client | nil, err. opts: timeout, password, username, db,
--- max_bulk, max_elements, max_depth, max_line.
function redis.connect(host, port, opts)
  if type(host) == "table" then
    opts = check_opts(host, "connect", 1)
    host, port = opts.host, opts.port
  else
    opts = check_opts(opts, "connect", 3)
  end
  local lim = limits(opts, "connect", 3)
  need_task("redis.connect", 2) -- (at the caller's line, not net's)
  local timeout = opts.timeout
  if timeout == nil then timeout = redis.defaults.timeout end
  local conn, err
  if opts.path ~= nil then
    if type(opts.path) ~= "string" then
      argerror(1, "connect", "path: string expected")
    end
    conn, err = net.connect{path = opts.path, timeout = timeout,
      max_line = lim.max_line + 1, max_read = max_read(lim)}
  else
    host = host or "127.0.0.1"
    port = port or 6379
    if type(host) ~= "string" then argerror(1, "connect", "string expected") end
    if mtype(port) ~= "integer" then
      argerror(2, "connect", "integer expected")
    end
    conn, err = net.connect(host, port, {timeout = timeout,
      max_line = lim.max_line + 1, max_read = max_read(lim)})
  end
  if not conn then return nil, err end
  local self = setmetatable({conn = conn, lim = lim, subscribed = 0,
    queue = {}, failed = false, channels = {n = 0}, patterns = {n = 0},
    src = setmetatable({conn = conn}, ConnSource)}, Client)
  local v
  if opts.password ~= nil then
    if opts.username ~= nil then
      v, err = self:call("AUTH", opts.username, opts.password)
    else
      v, err = self:call("AUTH", opts.password)
    end
    if not v then
      conn:close()
      return nil, err
    end
  end
  if opts.db ~= nil then
    v, err = self:call("SELECT", opts.db)
    if not v then
      conn:close()
      return nil, err
    end
  end
  return self
end

local function check_client(self, fname)
  if getmetatable(self) ~= Client then
    error(("bad argument #1 to '%s' (redis.client expected, got %s)")
      :format(fname, type(self)), 3)
  end
end

-- Write bytes; the client is broken when that fails.
local function send(self, bytes)
  if self.failed then return nil, self.failed end
  local ok, err = self.conn:write(bytes)
  if not ok then return broken(self, err) end
  return true
end

local note -- (pub/sub, below)

-- In subscribe mode only PING (and the subscription commands) may be
-- sent: its answer is a push {"pong", msg}, after any messages already
-- on the way (queued for next_message).
local function pubsub_ping(self)
  while true do
    local v, err = read_reply(self)
    if v == nil then return nil, err end
    if getmetatable(v) == ErrorReply then return nil, v.err end
    if type(v) ~= "table" or type(v[1]) ~= "string" then
      return broken(self, "protocol error: not a push in subscribe mode")
    end
    local kind = v[1]:lower()
    if kind == "pong" then
      return v[2] ~= "" and v[2] or "PONG"
    elseif kind == "message" or kind == "pmessage" then
      self.queue[#self.queue + 1] = v
    elseif not note(self, kind, v) then
      return broken(self, "protocol error: unexpected push " .. kind)
    end
  end
end

--- call(name, ...) -> reply | nil, err
function methods.call(self, ...)
  check_client(self, "call")
  local n = select("#", ...)
  if n == 0 then argerror(1, "call", "command name expected") end
  if self.subscribed > 0 and (type((...)) ~= "string" or
     (...):upper() ~= "PING") then
    return nil, "in subscribe mode: only (P)SUBSCRIBE, (P)UNSUBSCRIBE " ..
      "and PING"
  end
  local ok, err = send(self, encode({...}, n, "call"))
  if not ok then return nil, err end
  if self.subscribed > 0 then return pubsub_ping(self) end
  return result(read_reply(self))
end

-- A pipeline being filled: p:call(...) or p:name(...) queue commands.
local Pipeline = {__name = "redis.pipeline"}
local pipeline_methods = {}
Pipeline.__index = function(_, name)
  local m = pipeline_methods[name]
  if m then return m end
  if type(name) ~= "string" then return nil end
  local cmd = name:upper()
  return function(p, ...) return pipeline_methods.call(p, cmd, ...) end
end

function pipeline_methods.call(p, ...)
  if getmetatable(p) ~= Pipeline then
    error("bad argument #1 to 'call' (redis.pipeline expected)", 2)
  end
  local n = select("#", ...)
  if n == 0 then argerror(1, "call", "command name expected") end
  p.n = p.n + 1
  p[p.n] = encode({...}, n, "call")
  return p
end

--- pipeline(fn) or pipeline{{cmd, args...}, ...} -> {reply...} | nil, err
--- fn(p) queues commands with p:call(...) or p:name(...); they are sent
--- in one write and their replies read together: a list, with a
--- redis.error table ({err = "..."}) in place of each error reply.
function methods.pipeline(self, what)
  check_client(self, "pipeline")
  local p = setmetatable({n = 0}, Pipeline)
  if type(what) == "function" then
    what(p)
  elseif type(what) == "table" then
    for i, cmd in ipairs(what) do
      if type(cmd) ~= "table" or #cmd == 0 then
        argerror(2, "pipeline", "command " .. i .. ": list expected")
      end
      p.n = p.n + 1
      p[p.n] = encode(cmd, #cmd, "pipeline", 1)
    end
  else
    argerror(2, "pipeline", "function or table expected, got " .. type(what))
  end
  if self.subscribed > 0 then return nil, "in subscribe mode" end
  if p.n == 0 then return {} end
  local ok, err = send(self, concat(p, "", 1, p.n))
  if not ok then return nil, err end
  local replies = {}
  for i = 1, p.n do
    local v
    v, err = read_reply(self)
    if v == nil then return nil, err end
    replies[i] = v
  end
  return replies
end

-- }}}

-- {{{ pub/sub

-- A (un)subscribe confirmation {kind, name, count}: the sets of channels
-- and patterns follow it. True when v is one.
local SETS = {subscribe = {"channels", true}, unsubscribe = {"channels"},
  psubscribe = {"patterns", true}, punsubscribe = {"patterns"}}
function note(self, kind, v)
  local set = SETS[kind]
  if not set then return false end
  local names = self[set[1]]
  if type(v[2]) == "string" then
    if set[2] and not names[v[2]] then
      names[v[2]], names.n = true, names.n + 1
    elseif not set[2] and names[v[2]] then
      names[v[2]], names.n = nil, names.n - 1
    end
  end
  self.subscribed = mtype(v[3]) == "integer" and v[3] or 0
  return true
end

-- Read pushes until `want` confirmations of `kind` came (messages that
-- arrive meanwhile are queued for messages()); then the count of
-- subscriptions left.
local function confirm(self, kind, want)
  local got = 0
  while got < want do
    local v, err = read_reply(self)
    if v == nil then return nil, err end
    if getmetatable(v) == ErrorReply then return nil, v.err end
    if type(v) ~= "table" or type(v[1]) ~= "string" then
      return broken(self, "protocol error: not a push in subscribe mode")
    end
    local k = v[1]:lower()
    if k == "message" or k == "pmessage" then
      self.queue[#self.queue + 1] = v
    elseif note(self, k, v) and k == kind then
      got = got + 1
    end
  end
  return self.subscribed
end

local function subscriber(kind, unsub)
  return function(self, ...)
    check_client(self, kind)
    local n = select("#", ...)
    if n == 0 and not unsub then
      argerror(2, kind, "channel expected")
    end
    if unsub and self.subscribed == 0 then return 0 end
    local ok, err = send(self, encode({kind:upper(), ...}, n + 1, kind, 0))
    if not ok then return nil, err end
    -- (without names: one confirmation per name left, or one for none)
    local want = n
    if n == 0 then
      want = math.max(1, self[SETS[kind][1]].n)
    end
    return confirm(self, kind, want)
  end
end

--- subscribe(channel...) / psubscribe(pattern...) -> subscriptions | nil,
--- err: the client is in subscribe mode until it unsubscribes from all.
methods.subscribe = subscriber("subscribe")
methods.psubscribe = subscriber("psubscribe")
--- unsubscribe([channel...]) / punsubscribe([pattern...]) -> left
methods.unsubscribe = subscriber("unsubscribe", true)
methods.punsubscribe = subscriber("punsubscribe", true)

--- next_message([timeout]) -> kind, channel, payload [, pattern] | nil, err
--- kind is "message" or "pmessage" (then pattern is the one matched).
function methods.next_message(self, timeout)
  check_client(self, "next_message")
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    argerror(2, "next_message", "number expected")
  end
  while true do
    local v = table.remove(self.queue, 1)
    if not v then
      if self.subscribed == 0 then return nil, "not subscribed" end
      if self.failed then return nil, self.failed end
      local ok, err
      local src = self.src
      src.taken = false
      if timeout ~= nil then
        local saved = self.conn:gettimeout()
        self.conn:settimeout(timeout)
        ok, v = decode(src, self.lim, 0)
        self.conn:settimeout(saved)
      else
        ok, v = decode(src, self.lim, 0)
      end
      if not ok then
        err = v
        if err == "timeout" and not src.taken then return nil, err end
        return broken(self, err)
      end
      if type(v) ~= "table" or type(v[1]) ~= "string" then
        return broken(self, "protocol error: not a push in subscribe mode")
      end
    end
    local kind = v[1]:lower()
    if kind == "message" and type(v[2]) == "string" and
       type(v[3]) == "string" then
      return "message", v[2], v[3]
    elseif kind == "pmessage" and type(v[3]) == "string" and
       type(v[4]) == "string" then
      return "pmessage", v[3], v[4], v[2]
    elseif not note(self, kind, v) and kind ~= "pong" then
      return broken(self, "protocol error: unexpected push " .. kind)
    end
  end
end

--- messages([timeout]) -> iterator of kind, channel, payload [, pattern]
--- (the loop ends on any failure or timeout: next_message tells why)
function methods.messages(self, timeout)
  check_client(self, "messages")
  return function() return self:next_message(timeout) end
end

-- }}}

--- close(): closes the connection (twice is harmless).
function methods.close(self)
  check_client(self, "close")
  if not self.conn:is_closed() then self.conn:close() end
  self.failed = self.failed or "closed"
end
Client.__close = methods.close

--- is_closed() -> true once closed or broken
function methods.is_closed(self)
  check_client(self, "is_closed")
  return self.failed ~= false or self.conn:is_closed()
end

Client.__tostring = function(self)
  return "redis.client (" .. (self.failed and "closed" or "open") .. ")"
end

-- {{{ pools

local Pool = {__name = "redis.pool"}
Pool.__index = Pool

--- pool{host=, port= | path=, size=, wait=, <connect options>} -> pool
--- At most `size` connections (default 8) at once; get waits (at most
--- `wait` seconds, default the timeout) for one to be given back.
function redis.pool(opts)
  if type(opts) ~= "table" then argerror(1, "pool", "table expected") end
  local copts = {}
  for k, v in pairs(opts) do
    if k ~= "size" and k ~= "wait" then copts[k] = v end
  end
  check_opts(copts, "pool", 1)
  local size = opts.size or 8
  if mtype(size) ~= "integer" or size < 1 then
    argerror(1, "pool", "size: positive integer expected")
  end
  local wait = opts.wait
  if wait ~= nil and (type(wait) ~= "number" or wait ~= wait or wait < 0) then
    argerror(1, "pool", "wait: non-negative number expected")
  end
  return setmetatable({opts = copts, size = size, total = 0, idle = {},
    freed = task.event(), closed = false,
    wait = wait or copts.timeout or redis.defaults.timeout}, Pool)
end

local function check_pool(self, fname)
  if getmetatable(self) ~= Pool then
    error(("bad argument #1 to '%s' (redis.pool expected)"):format(fname), 3)
  end
end

--- get() -> client (reused or new) | nil, err ("timeout" when all are
--- busy for `wait` seconds, "closed" once the pool is closed)
function Pool:get()
  check_pool(self, "get")
  need_task("pool:get", 2)
  local due = task.now() + self.wait
  while true do
    if self.closed then return nil, "closed" end
    local c = table.remove(self.idle)
    if c then
      if not c:is_closed() then return c, true end
      self.total = self.total - 1
    elseif self.total < self.size then
      self.total = self.total + 1
      local err
      c, err = redis.connect(self.opts)
      if not c then
        self.total = self.total - 1
        self.freed:set() -- (a slot is free again)
        return nil, err
      end
      return c, false
    else
      local left = due - task.now()
      if left <= 0 then return nil, "timeout" end
      self.freed:clear()
      self.freed:wait(left)
    end
  end
end

--- put(client): give it back (a broken one, or one in subscribe mode,
--- is closed instead).
function Pool:put(c)
  check_pool(self, "put")
  check_client(c, "put")
  if self.closed or c:is_closed() or c.subscribed > 0 or #c.queue > 0 then
    c:close()
    self.total = self.total - 1
  else
    self.idle[#self.idle + 1] = c
  end
  self.freed:set()
end

local function finish(self, c, ok, ...)
  -- (after an error the client may have a reply on the way that nobody
  -- will read: it is closed, not given back)
  if not ok then c:close() end
  self:put(c)
  if not ok then error((...), 0) end
  return ...
end

--- with(fn) -> fn(client)'s results: the client goes back to the pool
--- afterwards; when fn raises, the client is closed (its stream may be
--- half way through a reply), its slot freed, and the error raised again.
function Pool:with(fn)
  check_pool(self, "with")
  need_task("pool:with", 2)
  if type(fn) ~= "function" then argerror(2, "with", "function expected") end
  local c, err = self:get()
  if not c then return nil, err end
  return finish(self, c, pcall(fn, c))
end

local RETRY = {closed = true, reset = true, EPIPE = true, ECONNRESET = true}

--- call(name, ...) -> reply | nil, err: on a pooled connection. A command
--- that fails on a reused connection because the server closed it
--- meanwhile is sent again (on the next idle one, at worst a new one).
function Pool:call(...)
  check_pool(self, "call")
  need_task("pool:call", 2)
  for _ = 1, self.size + 1 do
    local c, reused = self:get()
    if not c then return nil, reused end
    local ok, v, err = pcall(c.call, c, ...)
    if not ok then -- (a wrong argument: raised before anything was sent)
      self:put(c)
      error((tostring(v):gsub("^[^:]*redis%.lua:%d+: ", "")), 2)
    end
    local failed = c:is_closed()
    self:put(c)
    if v ~= nil or not (failed and reused and RETRY[err]) then
      return v, err
    end
  end
  return nil, "closed"
end

--- close(): closes the idle connections; those lent out are closed when
--- given back; get returns nil, "closed".
function Pool:close()
  check_pool(self, "close")
  self.closed = true
  for _, c in ipairs(self.idle) do c:close() end
  self.total = self.total - #self.idle
  self.idle = {}
  self.freed:set()
end

--- stats() -> connections open, idle
function Pool:stats()
  check_pool(self, "stats")
  return self.total, #self.idle
end

-- }}}

return redis
