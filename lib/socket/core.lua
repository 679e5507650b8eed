--[[
socket.core: LuaSocket's C core, on net and task. Every call that would
block in LuaSocket parks only the running task (as OpenResty's cosockets
and copas do), so libraries written for LuaSocket (socket.http,
socket.smtp, database and Redis clients) run inside luahost without
stopping the loop. `require "socket"` (lib/socket.lua) layers LuaSocket's
helpers on top, and Debian's pure-Lua socket.http, socket.smtp,
socket.url, ltn12 and mime run unchanged on it.

Blocking calls must run in a task (the main chunk, a handler, task.spawn);
from a raw uv callback they raise, as every net call does.
LUAHOST_SYSTEM_SOCKET=1 in the environment keeps the system LuaSocket.
]]
local net = require "net"
local task = require "task"
local uv = require "uv"
local net_core = select(2, ...).require("net.core")
local fd_readable, fd_shutdown = net_core.fd_readable,
  net_core.fd_shutdown
local bind_fd, fd_sockname, fd_close = net_core.bind_fd,
  net_core.fd_sockname, net_core.fd_close

local M = {
  _VERSION = "LuaSocket 3.1.0 (luahost)",
  _SETSIZE = 1024,
  _SOCKETINVALID = -1,
}

-- net's error names → LuaSocket's messages: its pierror.h strings (a
-- reset or an abort is "closed", as the end is), else the C library's
-- strerror, which its socket_strerror falls back to.
local messages = {
  ECONNREFUSED = "connection refused",
  ECONNRESET = "closed",
  ECONNABORTED = "closed",
  EADDRINUSE = "address already in use",
  EADDRNOTAVAIL = "Cannot assign requested address",
  EACCES = "permission denied",
  EISCONN = "already connected",
  EPIPE = "closed",
  ENOTFOUND = "host not found",
  EAI_NONAME = "host not found",
  ENETUNREACH = "Network is unreachable",
  EHOSTUNREACH = "No route to host",
  ETIMEDOUT = "timeout",
}
local function lserr(err)
  if err == nil then return nil end
  local name = tostring(err):match("^(E[%u_]+)")
  return messages[name] or messages[err] or err
end

-- The same for a name that connect, bind, setpeername and getaddrinfo
-- could not resolve: LuaSocket 3.0 says it with its getaddrinfo message
-- there (toip and tohostname keep "host not found").
local function gaierr(err)
  local name = tostring(err):match("^(E[%u_]+)")
  if name == "ENOTFOUND" or name == "EAI_NONAME" then
    return "host or service not provided, or not known"
  end
  return lserr(err)
end

-- An address net takes for one (dotted v4, or with a ':') that is no
-- address (256.1.1.1, ::g): net raises on it, LuaSocket's getaddrinfo
-- fails, returned ("host or service not provided, or not known"). The
-- rules of libuv's inet_pton, which net parses with.
local function v4_ok(a)
  local n = 0
  for part in (a .. "."):gmatch("([^.]*)%.") do
    n = n + 1
    if not part:match("^%d%d?%d?$") or tonumber(part) > 255 or
      (#part > 1 and part:sub(1, 1) == "0") then
      return false
    end
  end
  return n == 4
end

local function v6_groups(p, v4_last)
  if p == "" then return 0 end
  local parts = {}
  for g in (p .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = g end
  local n = 0
  for i, g in ipairs(parts) do
    if v4_last and i == #parts and g:find(".", 1, true) then
      if not v4_ok(g) then return nil end
      n = n + 2
    elseif g:match("^%x%x?%x?%x?$") then
      n = n + 1
    else
      return nil
    end
  end
  return n
end

local function bad_ip(s)
  if not net.is_ip(s) then return false end -- (a name: looked up)
  if not s:find(":", 1, true) then return not v4_ok(s) end
  local a = s:match("^([^%%]*)%%") or s -- (a zone: fe80::1%eth0)
  local head, tail = a:match("^(.-)::(.*)$")
  if head then
    if tail:find("::", 1, true) then return true end
    local h, t = v6_groups(head, false), v6_groups(tail, true)
    return not (h and t and h + t <= 7)
  end
  return v6_groups(a, true) ~= 8
end

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- {====================================================== time

function M.gettime()
  local s, us = uv.gettimeofday()
  return s + (us or 0) / 1e6
end

function M.sleep(s)
  if type(s) ~= "number" then argerror(1, "sleep", "number expected") end
  if s > 0 then task.sleep(s) end
end

-- }======================================================

-- {====================================================== helpers

function M.skip(d, ...)
  if math.type(d) ~= "integer" then argerror(1, "skip", "integer expected") end
  return select(d + 1, ...)
end

-- newtry(finalizer): a function like assert that raises a table
-- {err} (caught by protect) and calls the finalizer first.
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return tostring(f[1]) end

function M.newtry(finalizer)
  if finalizer ~= nil and type(finalizer) ~= "function" then
    argerror(1, "newtry", "function expected")
  end
  return function(ok, ...)
    if ok then return ok, ... end
    if finalizer then pcall(finalizer) end
    error(setmetatable({(...)}, Failure), 0)
  end
end

function M.protect(f)
  if type(f) ~= "function" then argerror(1, "protect", "function expected") end
  return function(...)
    local res = table.pack(pcall(f, ...))
    if res[1] then return table.unpack(res, 2, res.n) end
    local e = res[2]
    if getmetatable(e) == Failure then return nil, e[1] end
    error(e, 0)
  end
end

-- }======================================================

-- {====================================================== timeouts

-- LuaSocket's two timeouts: "b" per blocking operation, "t" for the
-- whole call. Both map to a deadline for the call; nil means none.
local function call_timeout(s)
  local b, t = s.tm_block, s.tm_total
  if b and t then return math.min(b, t) end
  return b or t
end

local function settimeout(s, value, mode)
  if value ~= nil and type(value) ~= "number" then
    argerror(1, "settimeout", "number expected")
  end
  if value and value < 0 then value = nil end
  mode = mode or "b"
  if mode == "b" or mode == "r" then
    s.tm_block = value
  elseif mode == "t" then
    s.tm_total = value
  else
    argerror(2, "settimeout", "invalid timeout mode")
  end
  return 1.0
end

-- (as LuaSocket: -1 for none, and floats, as all its numbers but ports)
local function gettimeout(s)
  return (s.tm_block or -1) + 0.0, (s.tm_total or -1) + 0.0
end

-- }======================================================

-- {====================================================== tcp

local tcp = {}
tcp.__index = tcp
tcp.__name = "tcp"

-- (an IPv6 socket is IPv6 alone, as LuaSocket's tcp6 and udp6 make it:
-- "ipv6-v6only" false before bind makes it take IPv4 too)
local function new_tcp(family)
  return setmetatable({kind = "master", family = family or "inet",
    stats = {0, 0, task.now()},
    options = {v6only = family == "inet6" or nil}}, tcp)
end

function tcp.__tostring(s)
  return ("tcp{%s}: %s"):format(s.kind,
    s.conn and tostring(s.conn):match("0x%x+") or "closed")
end

local function check_tcp(s, fname, kinds)
  if getmetatable(s) ~= tcp then
    argerror(1, fname, "tcp{" .. kinds .. "} expected")
  end
  return s
end

local function apply_timeout(s, obj)
  local t = call_timeout(s)
  obj:settimeout(t)
end

tcp.settimeout = function(s, ...)
  check_tcp(s, "settimeout", "any")
  return settimeout(s, ...)
end
tcp.gettimeout = gettimeout
function tcp.getfamily(s) return s.family end
function tcp.getfd(s)
  if s.fd then return s.fd end
  local obj = s.conn or s.server
  if obj and obj.getfd then return obj:getfd() end
  return M._SOCKETINVALID
end
function tcp.setfd() error("setfd is not supported by luahost's socket", 2) end
function tcp.dirty(s)
  return (s.pending and #s.pending > 0) or
    (s.conn and not s.conn:is_closed() and s.conn:buffered() > 0) or false
end
function tcp.getstats(s)
  return s.stats[1] + 0.0, s.stats[2] + 0.0, task.now() - s.stats[3]
end
function tcp.setstats(s, received, sent, age)
  s.stats = {received, sent, task.now() - age}
  return 1.0
end

local option_names = {
  ["tcp-nodelay"] = "nodelay", keepalive = "keepalive",
  reuseaddr = "reuseaddr", reuseport = "reuseport", linger = "linger",
  ["ipv6-v6only"] = "v6only", ["recv-buffer-size"] = "rcvbuf",
  ["send-buffer-size"] = "sndbuf", ["tcp-keepidle"] = "keepidle",
  ["tcp-keepintvl"] = "keepintvl", ["tcp-keepcnt"] = "keepcnt",
  broadcast = "broadcast", ["ip-multicast-ttl"] = "multicast_ttl",
  ["ip-multicast-loop"] = "multicast_loop",
}

local function linger_value(v)
  if type(v) == "table" then return {v.on and true or false, v.timeout or 0} end
  return v
end

function tcp.setoption(s, name, value)
  check_tcp(s, "setoption", "any")
  if type(name) ~= "string" then argerror(2, "setoption", "string expected") end
  local opt = option_names[name]
  if not opt then
    argerror(2, "setoption", "unsupported option '" .. name .. "'")
  end
  if name == "linger" then value = linger_value(value) end
  local obj = s.conn or s.server
  if obj then
    local ok, err = pcall(obj.setopt, obj, opt, value)
    if not ok then return nil, err end
  else
    s.options[opt] = value -- applied at bind/connect
  end
  return 1.0
end

function tcp.getoption(s, name)
  check_tcp(s, "getoption", "any")
  local opt = option_names[name]
  if not opt then argerror(2, "getoption", "unsupported option") end
  local obj = s.conn or s.server
  if not obj then return s.options[opt] end
  local ok, v = pcall(obj.getopt, obj, opt)
  if not ok then return nil, v end
  if name == "linger" and type(v) == "table" then
    return {on = v[1], timeout = v[2]}
  end
  return v
end

function tcp.bind(s, host, port)
  check_tcp(s, "bind", "master")
  if s.kind ~= "master" then return nil, "already bound" end
  if type(host) == "number" then host = tostring(host) end -- (as Lua's)
  if type(host) ~= "string" then argerror(1, "bind", "string expected") end
  if host == "*" then host = s.family == "inet6" and "::" or "0.0.0.0" end
  if bad_ip(host) then
    return nil, "host or service not provided, or not known"
  end
  -- (a name is resolved now, as LuaSocket's bind does: one that does not
  -- resolve is its getaddrinfo failure here, not at connect or listen)
  if not net.is_ip(host) then
    local addrs, err = net.lookup(host, {family = s.family})
    if not addrs then return nil, gaierr(err) end
    host = addrs[1]
  end
  if s.fd then return nil, "Invalid argument" end -- (bound: as the kernel)
  -- Bound now, as LuaSocket's bind: getsockname answers with the port
  -- (bind port 0, read it, then listen) and a taken port fails here. A
  -- socket of our own (net_core.bind_fd), not a net server listening at
  -- once: LuaSocket listens only at listen, with its backlog, and a bound
  -- socket may connect instead. listen hands it to net (listen's fd);
  -- connect closes it and binds the same address and port in net.connect.
  local fd, err = bind_fd(host, math.tointeger(tonumber(port)) or 0,
    s.options.reuseaddr, s.options.reuseport, s.options.v6only)
  if not fd then return nil, lserr(err) end
  s.fd = fd
  return 1.0
end

-- receive("*a") and receive(n) read as much as LuaSocket's do: net's
-- max_read at its largest (code written for LuaSocket bounds its own
-- reads, or reads in pieces)
local NO_READ_LIMIT = 0xffffffff

function tcp.listen(s, backlog)
  check_tcp(s, "listen", "master")
  if s.kind ~= "master" then return nil, "not a master socket" end
  -- (LuaSocket makes its socket at bind: one never bound has none)
  if not s.fd then return nil, "Bad file descriptor" end
  -- (net owns the descriptor now, or closed it failing)
  local server, err = net.listen{fd = s.fd, backlog = backlog or 32,
    max_read = NO_READ_LIMIT}
  s.fd = nil
  if not server then return nil, gaierr(err) end
  s.server, s.kind = server, "server"
  return 1.0
end

function tcp.connect(s, host, port)
  check_tcp(s, "connect", "master")
  if s.kind ~= "master" then return nil, "already connected" end
  if type(host) ~= "string" then argerror(2, "connect", "string expected") end
  port = tonumber(port)
  if not port then argerror(3, "connect", "number expected") end
  if bad_ip(host) then
    return nil, "host or service not provided, or not known"
  end
  local opts = {timeout = call_timeout(s),
    nodelay = s.options.nodelay ~= nil and s.options.nodelay or false,
    max_read = NO_READ_LIMIT}
  if s.fd then
    local ip, bport = fd_sockname(s.fd)
    fd_close(s.fd)
    s.fd = nil
    if ip then opts.bind = {host = ip, port = bport} end
  end
  if s.family == "inet6" then opts.family = "inet6" end
  local c, err = net.connect(host, math.tointeger(port) or port, opts)
  if not c then return nil, gaierr(err) end
  c:settimeout(nil)
  for opt, v in pairs(s.options) do
    if opt ~= "reuseaddr" and opt ~= "reuseport" and opt ~= "nodelay" then
      pcall(c.setopt, c, opt, v)
    end
  end
  s.conn, s.kind = c, "client"
  return 1.0
end

local function from_conn(c, family)
  local s = new_tcp(family)
  s.conn, s.kind = c, "client"
  c:settimeout(nil)
  return s
end

function tcp.accept(s)
  check_tcp(s, "accept", "server")
  if s.kind ~= "server" then return nil, "not a server socket" end
  if s.ready_conn then
    local c = s.ready_conn
    s.ready_conn = nil
    return from_conn(c, s.family)
  end
  local c, err = s.server:accept(call_timeout(s) or -1)
  if not c then return nil, lserr(err) end
  return from_conn(c, s.family)
end

function tcp.getsockname(s)
  if s.fd then
    local ip, port, family = fd_sockname(s.fd)
    if not ip then return nil, lserr(port) end
    return ip, tostring(port), family
  end
  local obj = s.conn or s.server
  if not obj then return nil, "not bound" end
  local ip, port, family = obj:sockname()
  return ip, port and tostring(port), family
end

function tcp.getpeername(s)
  if not s.conn then return nil, "not connected" end
  local ip, port, family = s.conn:peername()
  if not ip then return nil, lserr(port) end
  -- (as LuaSocket 3.1: getpeername's port is a number, getsockname's a
  -- string)
  return ip, port, family
end

function tcp.close(s)
  if s.fd then
    fd_close(s.fd)
    s.fd = nil
  end
  if s.conn then s.conn:close() end
  if s.server then s.server:close() end
  s.kind = "closed"
  return 1.0
end
tcp.__close = tcp.close
tcp.__gc = tcp.close

function tcp.shutdown(s, how)
  if not s.conn then return nil, "not connected" end
  how = how or "both"
  -- (the kernel's shutdown, at once, as LuaSocket's: the peer sees the
  -- end now, and reads here see what came before, then the end; net's
  -- own shutdown of the write side follows, so that a later send fails,
  -- and is harmless: a send returns once net has handed everything over.
  -- Not under TLS: its close_notify goes first, through net's.)
  local fd = s.conn:getfd()
  if how == "send" or how == "both" then
    if fd and not s.conn:tlsinfo() then fd_shutdown(fd, "write") end
    s.conn:shutdown()
  end
  if (how == "receive" or how == "both") and fd then
    fd_shutdown(fd, "read")
  end
  return 1.0
end

-- Bytes a select watcher took off the connection come first.
local function take_pending(s)
  local p = s.pending
  s.pending = nil
  return p or ""
end

local function drain_buffered(c)
  local n = (not c:is_closed()) and c:buffered() or 0
  if n > 0 then return c:read(n) or "" end
  return ""
end

-- receive's patterns, over net's read formats.
local function receive_line(s, c, pre)
  local nl = pre:find("\n", 1, true)
  if nl then
    s.pending = pre:sub(nl + 1)
    return (pre:sub(1, nl - 1):gsub("\r", ""))
  end
  if s.eof then return nil, "closed", pre end
  local line, err = c:read("L")
  if not line then
    local partial = pre .. drain_buffered(c)
    return nil, lserr(err), (partial:gsub("\r", ""))
  end
  line = pre .. line
  if line:sub(-1) ~= "\n" then -- the end of input came before a newline
    return nil, "closed", (line:gsub("\r", ""))
  end
  return (line:sub(1, -2):gsub("\r", ""))
end

local function receive_count(s, c, pre, n)
  -- (0 with nothing pending waits for a byte or the end, as LuaSocket)
  if #pre >= n and (n > 0 or #pre > 0) then
    s.pending = pre:sub(n + 1)
    return pre:sub(1, n)
  end
  if s.eof then return nil, "closed", pre end
  local data, err = c:read(n - #pre)
  if not data then
    return nil, lserr(err), pre .. drain_buffered(c)
  end
  data = pre .. data
  if #data < n then return nil, "closed", data end
  return data
end

-- (as LuaSocket: "*a" that gets no byte at all is "closed")
local function receive_all(s, c, pre)
  if s.eof then
    if pre == "" then return nil, "closed", "" end
    return pre
  end
  local data, err = c:read("a")
  if not data then
    if err == "closed" then
      if pre == "" then return nil, "closed", "" end
      return pre
    end
    return nil, lserr(err), pre .. drain_buffered(c)
  end
  data = pre .. data
  if data == "" then return nil, "closed", "" end
  return data
end

function tcp.receive(s, pattern, prefix)
  check_tcp(s, "receive", "client")
  if s.kind ~= "client" then return nil, "closed" end
  -- (as LuaSocket's luaL_optlstring and lua_isnumber: a number prefix is
  -- its string, a numeric string pattern is a count; the argument numbers
  -- are those its method calls name, self not counted)
  if type(prefix) == "number" then prefix = tostring(prefix) end
  if prefix ~= nil and type(prefix) ~= "string" then
    argerror(2, "receive", "string expected, got " .. type(prefix))
  end
  pattern = pattern or "*l"
  if type(pattern) == "string" then pattern = tonumber(pattern) or pattern end
  local c = s.conn
  if c:is_closed() then return nil, "closed" end
  apply_timeout(s, c)
  local pre = take_pending(s)
  local data, err, partial
  if type(pattern) == "number" then
    -- (a fraction is cut, as LuaSocket's size_t cast does)
    local n = math.tointeger(pattern) or (pattern >= 0 and pattern < 2^53 and
      math.tointeger(math.floor(pattern)))
    if not n or n < 0 then argerror(1, "receive", "invalid receive pattern") end
    -- (as LuaSocket: the count includes the prefix, so that
    -- receive(n, partial) completes an earlier partial read)
    if prefix and prefix ~= "" then
      if #prefix >= n then return prefix, nil, nil end
      n = n - #prefix
    end
    data, err, partial = receive_count(s, c, pre, n)
  elseif pattern == "*l" or pattern == "l" then
    data, err, partial = receive_line(s, c, pre)
  elseif pattern == "*a" or pattern == "a" then
    data, err, partial = receive_all(s, c, pre)
  else
    argerror(1, "receive", "invalid receive pattern")
  end
  c:settimeout(nil)
  local got = #(data or partial or "")
  s.stats[1] = s.stats[1] + got
  if prefix then
    if data then
      data = prefix .. data
    else
      partial = prefix .. (partial or "")
    end
  end
  if data then return data, nil, nil end -- (three values, as LuaSocket)
  return nil, err, partial
end

-- send's i or j as LuaSocket's (long) luaL_optnumber: a numeric string is
-- its number, a fraction is cut toward 0; nil if it is no number.
local function send_index(v, default)
  if v == nil then return default end
  local x = tonumber(v)
  if not x then return nil end
  if x ~= x then return 0 end
  x = x < 0 and math.ceil(x) or math.floor(x)
  return math.tointeger(x) or (x < 0 and math.mininteger or math.maxinteger)
end

function tcp.send(s, data, i, j)
  check_tcp(s, "send", "client")
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then
    argerror(1, "send", "string expected, got " .. type(data))
  end
  -- (the argument numbers are those LuaSocket's method calls name, self
  -- not counted)
  local ni, nj = send_index(i, 1), send_index(j, #data)
  if not ni then argerror(2, "send", "number expected, got " .. type(i)) end
  if not nj then argerror(3, "send", "number expected, got " .. type(j)) end
  i, j = ni, nj
  if s.kind ~= "client" or s.conn:is_closed() then
    return nil, "closed", 0.0
  end
  local len = #data
  if i < 0 then i = math.max(len + i + 1, 1) end
  if j < 0 then j = len + j + 1 end
  if i < 1 then i = 1 end
  if j > len then j = len end
  local chunk = i <= j and data:sub(i, j) or ""
  apply_timeout(s, s.conn)
  local ok, err = s.conn:write(chunk)
  if ok then ok, err = s.conn:flush() end
  s.conn:settimeout(nil)
  -- (after shutdown("send") net says ENOTCONN where the kernel's send
  -- says EPIPE: "closed" to LuaSocket)
  if not ok then
    return nil, tostring(err):match("^ENOTCONN") and "closed" or lserr(err),
      i - 1.0
  end
  s.stats[2] = s.stats[2] + #chunk
  -- (three values and a float, as LuaSocket)
  return math.max(j, i - 1) + 0.0, nil, nil
end

function M.tcp() return new_tcp("inet") end
function M.tcp4() return new_tcp("inet") end
function M.tcp6() return new_tcp("inet6") end

function M.connect(address, port, laddress, lport, family)
  local s = new_tcp(family == "inet6" and "inet6" or "inet")
  if laddress then
    local ok, err = s:bind(laddress, lport or 0)
    if not ok then return nil, err end
  end
  local ok, err = s:connect(address, port)
  if not ok then return nil, err end
  return s
end

-- }======================================================

-- {====================================================== udp

local udp = {}
udp.__index = udp
udp.__name = "udp"

local function new_udp(family)
  return setmetatable({family = family or "inet",
    options = {v6only = family == "inet6" or nil}}, udp)
end

function udp.__tostring(s)
  return ("udp{%s}: %s"):format(s.peer and "connected" or "unconnected",
    s.u and tostring(s.u):match("0x%x+") or "closed")
end

local function check_udp(s, fname)
  if getmetatable(s) ~= udp then argerror(1, fname, "udp{any} expected") end
  return s
end

local function udp_handle(s)
  if s.closed then return nil, "closed" end
  if not s.u then
    local u, err = net.udp{family = s.family}
    if not u then return nil, lserr(err) end
    s.u = u
  end
  return s.u
end

udp.settimeout = function(s, ...)
  check_udp(s, "settimeout")
  return settimeout(s, ...)
end
udp.gettimeout = gettimeout
function udp.getfamily(s) return s.family end

function udp.setsockname(s, host, port)
  check_udp(s, "setsockname")
  if s.u then return nil, "already bound" end
  if host == "*" then host = s.family == "inet6" and "::" or "0.0.0.0" end
  if type(host) == "string" and bad_ip(host) then
    return nil, "host or service not provided, or not known"
  end
  local opts = {host = host, port = tonumber(port) or 0, family = s.family}
  for k, v in pairs(s.options) do opts[k] = v end
  local u, err = net.udp(opts)
  if not u then return nil, lserr(err) end
  s.u = u
  return 1.0
end

function udp.setpeername(s, host, port)
  check_udp(s, "setpeername")
  local u, err = udp_handle(s)
  if not u then return nil, err end
  if host == "*" then
    u:connect()
    s.peer = nil
    return 1.0
  end
  if type(host) == "string" and bad_ip(host) then
    return nil, "host or service not provided, or not known"
  end
  local ip = host
  if not host:match("^[%d%.]+$") and not host:find(":", 1, true) then
    local addrs, lerr = net.lookup(host, {family = s.family})
    if not addrs then return nil, gaierr(lerr) end
    ip = addrs[1]
  end
  local ok, cerr = u:connect(ip, math.tointeger(tonumber(port)))
  if not ok then return nil, lserr(cerr) end
  s.peer = true
  return 1.0
end

function udp.sendto(s, data, ip, port)
  check_udp(s, "sendto")
  if type(data) ~= "string" then argerror(2, "sendto", "string expected") end
  local u, err = udp_handle(s)
  if not u then return nil, err end
  -- (an address, not a name, as in LuaSocket: a name is its
  -- getaddrinfo's failure, not an argument error)
  if type(ip) ~= "string" or not net.is_ip(ip) or bad_ip(ip) then
    return nil, "Name or service not known"
  end
  local ok, serr = u:sendto(data, ip, math.tointeger(tonumber(port)))
  if not ok then return nil, lserr(serr) end
  return #data + 0.0
end

function udp.send(s, data)
  check_udp(s, "send")
  if type(data) ~= "string" then argerror(2, "send", "string expected") end
  if not s.peer then return nil, "not connected" end
  local ok, err = s.u:send(data)
  if not ok then return nil, lserr(err) end
  return #data + 0.0
end

local function cut(data, size)
  if size and #data > size then return data:sub(1, size) end
  return data
end

-- A datagram select took (readable_now, watch), or nil.
local function kept(s)
  local d = s.dgram
  if d then s.dgram = nil end
  return d
end

function udp.receivefrom(s, size)
  check_udp(s, "receivefrom")
  local u, err = udp_handle(s)
  if not u then return nil, err end
  local d = kept(s)
  if d then return cut(d[1], size), d[2], d[3] end
  local data, ip, port = u:recvfrom(call_timeout(s) or -1)
  if not data then return nil, lserr(ip) end
  return cut(data, size), ip, port
end

function udp.receive(s, size)
  check_udp(s, "receive")
  local u, err = udp_handle(s)
  if not u then return nil, err end
  local d = kept(s)
  if d then return cut(d[1], size) end
  local data, rerr
  if s.peer then
    data, rerr = u:recv(call_timeout(s) or -1)
  else
    data, rerr = u:recvfrom(call_timeout(s) or -1)
  end
  if not data then return nil, lserr(rerr) end
  return cut(data, size)
end

function udp.getsockname(s)
  if not s.u then return nil, "not bound" end
  local ip, port, family = s.u:sockname()
  return ip, port and tostring(port), family
end

function udp.getpeername(s)
  if not s.peer then return nil, "not connected" end
  local ip, port, family = s.u:peername()
  return ip, port, family
end

function udp.setoption(s, name, value)
  check_udp(s, "setoption")
  local opt = option_names[name]
  if not opt then argerror(2, "setoption", "unsupported option") end
  if s.u then
    local ok, err = pcall(s.u.setopt, s.u, opt, value)
    if not ok then return nil, err end
  else
    s.options[opt] = value
  end
  return 1.0
end

function udp.getoption(s, name)
  check_udp(s, "getoption")
  local opt = option_names[name]
  if not opt then argerror(2, "getoption", "unsupported option") end
  if not s.u then return s.options[opt] end
  return s.u:getopt(opt)
end

function udp.close(s)
  if s.u then s.u:close() end
  s.dgram = nil
  s.closed = true
  return 1.0
end
udp.__close = udp.close
udp.__gc = udp.close

function udp.getfd(s)
  return s.u and s.u.getfd and s.u:getfd() or M._SOCKETINVALID
end
function udp.dirty() return false end

function M.udp() return new_udp("inet") end
function M.udp4() return new_udp("inet") end
function M.udp6() return new_udp("inet6") end

-- }======================================================

-- {====================================================== select

-- The socket of a select list's item: a tcp or udp object itself, or the
-- one a wrapper keeps as its `sock` (ssl.wrap's connections); nil for an
-- item select cannot wait on (LuaSocket skips a table or a string with no
-- usable getfd too). A number, boolean or function is an error, as in
-- LuaSocket (which fails to index it).
local function with_fd(s)
  local fd = s:getfd()
  -- (a socket with no descriptor, closed or not made yet, is skipped, as
  -- LuaSocket skips an invalid one)
  if math.type(fd) == "integer" and fd >= 0 then return s end
  return nil
end

local function sock_of(x, n, i)
  local mt = getmetatable(x)
  if mt == tcp or mt == udp then return with_fd(x) end
  local tx = type(x)
  if tx == "table" then
    local inner = rawget(x, "sock")
    if getmetatable(inner) == tcp then return with_fd(inner) end
    return nil
  end
  if tx ~= "string" and tx ~= "userdata" then
    -- (level 3: select's caller)
    error(("bad argument #%d to 'select' (socket expected at index %d, " ..
      "got %s)"):format(n, i, tx), 3)
  end
  return nil
end

-- Ready at once: data already here (or the end of input), a connection
-- already accepted, or a datagram waiting (taken now, kept for the next
-- receive).
local function kernel_readable(obj)
  local fd = obj:getfd()
  return fd and fd_readable(fd)
end

local function readable_now(s)
  local mt = getmetatable(s)
  if mt == tcp then
    if s.kind == "client" then
      return s.eof or (s.pending and #s.pending > 0) or s.conn:is_closed() or
        s.conn:buffered() > 0 or kernel_readable(s.conn)
    elseif s.kind == "server" then
      if s.ready_conn or kernel_readable(s.server) then return true end
      -- (one libuv took off the kernel's queue, not yet accepted)
      s.ready_conn = s.server:accept(0)
      return s.ready_conn ~= nil
    end
  elseif mt == udp and s.u and not s.closed then
    if s.dgram or kernel_readable(s.u) then return true end
    local data, ip, port = s.u:recvfrom(0)
    if data then
      s.dgram = {data, ip, port}
      return true
    end
  end
  return false
end

-- A watcher task that parks until s has something for a reader, keeps
-- what it took for the next receive/accept, and sets ev.
local function watch(s, ev)
  return task.spawn(function()
    local mt = getmetatable(s)
    if mt == tcp and s.kind == "client" then
      s.conn:settimeout(nil)
      local data = s.conn:recv()
      if data then s.pending = (s.pending or "") .. data else s.eof = true end
    elseif mt == tcp and s.kind == "server" then
      local c = s.server:accept(-1)
      if c then s.ready_conn = c end
    elseif mt == udp and s.u and not s.closed then
      local data, ip, port = s.u:recvfrom(-1)
      if not data then return end
      s.dgram = {data, ip, port}
    else
      return
    end
    ev:set()
  end)
end

local function list(t, n, fname)
  if t == nil then return {} end
  if type(t) ~= "table" then argerror(n, fname, "table expected") end
  return t
end

-- The result tables, as LuaSocket makes them: the ready items in an
-- array (for reading, first those with input already buffered, in the
-- order given, then the others in the order of their descriptors, as
-- select(2) reports them), each also a key whose value is its place, a
-- float. found: a list of {item, socket, buffered}.
local function result(found)
  local first, rest = {}, {}
  for _, e in ipairs(found) do
    if e[3] then first[#first + 1] = e[1]
    else rest[#rest + 1] = {e[1], e[2]:getfd() or -1} end
  end
  table.sort(rest, function(a, b) return a[2] < b[2] end)
  for _, e in ipairs(rest) do first[#first + 1] = e[1] end
  for i, x in ipairs(first) do first[x] = i + 0.0 end
  return first
end

function M.select(recvt, sendt, timeout)
  recvt, sendt = list(recvt, 1, "select"), list(sendt, 2, "select")
  if timeout ~= nil and type(timeout) ~= "number" then
    argerror(3, "select", "number expected")
  end
  if timeout and timeout < 0 then timeout = nil end
  local reads, seen = {}, {} -- {item, its socket}
  for i, x in ipairs(recvt) do
    local s = sock_of(x, 1, i)
    if s and not seen[x] then
      seen[x] = true
      reads[#reads + 1] = {x, s}
    end
  end
  local rf, wf = {}, {}
  local function collect()
    for _, e in ipairs(reads) do
      local s = e[2]
      local dirty = getmetatable(s) == tcp and tcp.dirty(s)
      if dirty or readable_now(s) then rf[#rf + 1] = {e[1], s, dirty} end
    end
  end
  -- every connected luahost socket and every udp one can take a write
  -- now; write blocks the task, not the loop, when the peer is slow
  seen = {}
  for i, x in ipairs(sendt) do
    local s = sock_of(x, 2, i)
    if s and not seen[x] and ((getmetatable(s) == tcp and s.kind == "client")
      or getmetatable(s) == udp) then
      seen[x] = true
      wf[#wf + 1] = {x, s, false}
    end
  end
  collect()
  if #rf == 0 and #wf == 0 and (timeout == nil or timeout > 0) then
    local ev = task.event()
    local watchers = {}
    for _, e in ipairs(reads) do watchers[#watchers + 1] = watch(e[2], ev) end
    if #watchers == 0 and timeout == nil then
      error("select: nothing to wait for and no timeout", 2)
    end
    ev:wait(timeout)
    for _, t in ipairs(watchers) do t:cancel() end
    collect()
  end
  local r, w = result(rf), result(wf)
  if #r == 0 and #w == 0 then return r, w, "timeout" end
  return r, w
end

-- }======================================================

-- {====================================================== dns

local dns = {}
M.dns = dns

function dns.gethostname() return net.hostname() end

local function is_ip(s)
  return s:match("^%d+%.%d+%.%d+%.%d+$") or s:find(":", 1, true)
end

function dns.toip(name)
  if type(name) ~= "string" then argerror(1, "toip", "string expected") end
  if name == "" then return nil, "host not found" end
  local addrs, err = net.lookup(name, {family = "inet"})
  if not addrs then return nil, lserr(err) end
  -- (an address's info names its host, as LuaSocket's gethostbyaddr)
  local canonical = is_ip(name) and net.reverse(name) or name
  return addrs[1], {name = canonical, alias = {}, ip = addrs}
end

function dns.tohostname(addr)
  if type(addr) ~= "string" then
    argerror(1, "tohostname", "string expected")
  end
  if addr == "" then return nil, "host not found" end
  local ip = addr
  if not is_ip(addr) then
    local addrs, err = net.lookup(addr)
    if not addrs then return nil, lserr(err) end
    ip = addrs[1]
  end
  local name, err = net.reverse(ip)
  if not name then return nil, lserr(err) end
  return name, {name = name, alias = {}, ip = {ip}}
end

function dns.getaddrinfo(host)
  if type(host) ~= "string" then
    argerror(1, "getaddrinfo", "string expected")
  end
  if host == "" then
    return nil, "host or service not provided, or not known"
  end
  local addrs, err = net.lookup(host)
  if not addrs then return nil, gaierr(err) end
  local out = {}
  for i, a in ipairs(addrs) do
    out[i] = {family = a:find(":", 1, true) and "inet6" or "inet", addr = a}
  end
  return out
end

function dns.getnameinfo(host, serv)
  local name
  if host then
    local err
    name, err = net.reverse(is_ip(host) and host or
      ((net.lookup(host) or {})[1] or host))
    if not name then return nil, lserr(err) end
  end
  local service
  if serv then service = net.service(tonumber(serv) or serv) end
  return name and {name} or {}, service -- ({}: no host asked, as LuaSocket)
end

-- }======================================================

function M.__unload() end

return M
