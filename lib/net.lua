--[[
net: sockets as files, for straight-line Lua in tasks.

The hot path (reading, writing, accepting, connecting, waiting) is C
(net.core, lib/net_*.c); this file parses options, resolves names, tries
addresses in order and runs servers (one task per connection).

Failures a program must expect return nil, err with a short stable string
(see docs/net.md, "Errors"); programmer mistakes raise naming the argument.
]]
-- The host's plumbing and task.lua's hooks: not in any public table.
local private = select(2, ...)
local core = private.require "net.core"
local task = require "task"

local net = {}

--- Limits and defaults, in one place. listen/connect options override them
--- per server or connection; changing a field here affects later sockets.
net.defaults = {
  backlog = 511,            -- listen queue of the kernel
  max_connections = 10000,  -- per server; then idle ones are shed, oldest
                            -- first, or new clients wait in the backlog
  max_per_address = 256,    -- per server and client IP address; more are
                            -- closed at once
  max_line = 64 * 1024,     -- longest line read("l"/"L") returns (bytes)
  max_read = 1024 * 1024,   -- most read("a") or read(n) returns (bytes)
  idle_timeout = 60,        -- seconds a served connection may wait idle
  write_hwm = 64 * 1024,    -- write blocks while more is queued (bytes)
}

local own, spawn_light = private.task.own, private.task.spawn_light
local park, wake = private.task.park, private.task.wake
local cancelled = private.task.cancelled
-- In a worker group, the supervisor owns every listening socket (and every
-- bound UDP socket): share(kind, ...) gets the group's, or false outside
-- a group (see docs/deploy.md, Workers).
local share = private.share

local Conn, Server = core.conn_methods, core.server_methods

-- This file may run again over the same net.core (busted's insulation
-- reloads it for every spec file; a script may reload it): a method it
-- wraps is wrapped from the C original, kept at the first run, never
-- from the last run's wrapper (a chain of them grew with every run).
local originals = core.c_originals or {}
core.c_originals = originals
local function original(methods, kind, name)
  local key = kind .. "." .. name
  local f = originals[key]
  if f == nil then
    f = methods[name]
    originals[key] = f
  end
  return f
end
-- need_task(what, level): raises unless the running coroutine is a task
-- that can wait, at the position of the function at level (2: the
-- caller of the function that asks).
local need_task = core.need_task

local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg),
    (level or 2) + 1)
end

local function check_type(v, want, n, fname, optional)
  if v == nil and optional then return v end
  if type(v) ~= want then
    argerror(n, fname, want .. " expected, got " .. type(v), 3)
  end
  return v
end

local function check_port(v, n, fname, what)
  if math.type(v) ~= "integer" or v < 0 or v > 65535 then
    error(("bad argument #%d to '%s' (%s: integer in 0..65535 expected, " ..
      "got %s)"):format(n, fname, what or "port", tostring(v)), 3)
  end
  return v
end

local function check_seconds(v, n, fname, what, level)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < 0 then
    error(("bad argument #%d to '%s' (%s: non-negative number expected, " ..
      "got %s)"):format(n, fname, what, tostring(v)), level or 3)
  end
  return v
end

-- (max_line and max_read: 32-bit in a conn, lib/net_core.h)
local LIMIT_MAX = 0xffffffff
local function check_size(v, n, fname, what, max)
  if v == nil then return nil end
  if math.type(v) ~= "integer" or v < 1 then
    error(("bad argument #%d to '%s' (%s: positive integer expected, " ..
      "got %s)"):format(n, fname, what, tostring(v)), 3)
  end
  if max and v > max then
    error(("bad argument #%d to '%s' (%s: at most %d)"):format(n, fname,
      what, max), 3)
  end
  return v
end

-- Unknown option names raise: a typo must not silently mean a default.
local function check_options(opts, known, fname, n)
  for k in pairs(opts) do
    if not known[k] then
      error(("bad argument #%d to '%s' (unknown option '%s')"):format(
        n or 1, fname, tostring(k)), 3)
    end
  end
end

local function is_ip(s)
  return s:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or s:find(":", 1, true) ~= nil
end
--- is_ip(s) -> boolean: s is an IP address (v4 dotted, or v6: has a
--- ':'), not a name to look up.
function net.is_ip(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'is_ip' (string expected, got " .. type(s) ..
      ")", 2)
  end
  return is_ip(s)
end

--- assert(v, err, msg, ...): assert for net's failures (nil, err, msg:
--- err the code to compare, msg the message naming the operation and the
--- address): raises msg (err when there is none) when v is nil or false,
--- else returns all its arguments. net.assert(net.listen{port = 7000})
--- fails with "listen 127.0.0.1:7000: EADDRINUSE (address already in
--- use)" where assert(...) would say only "EADDRINUSE".
function net.assert(v, err, msg, ...)
  if v then return v, err, msg, ... end
  error(msg or err or "assertion failed!", 2)
end

-- A failure's message naming the operation and the address, for the
-- third value: "listen 127.0.0.1:7000: EADDRINUSE (address already in
-- use)". where: "ip:port" ("[ip6]:port"), a path or a name.
local strerror = core.strerror
-- (a name or path is shown as bytes the log can hold: control bytes
-- escaped, at most 200 of them)
local function shown(v)
  v = tostring(v)
  local cut = #v > 200
  v = v:sub(1, 200):gsub("[%c\\]", function(ch)
    return ("\\x%02x"):format(ch:byte())
  end)
  return cut and v .. "..." or v
end
local function where(host, port)
  host = shown(host)
  if port == nil then return host end
  if host:find(":", 1, true) then return "[" .. host .. "]:" .. port end
  return host .. ":" .. port
end
net._where = where
local function fail(op, at, err)
  err = err or "EAFNOSUPPORT"
  local d = type(err) == "string" and err:match("^E[%u%d_]+$") and
    (strerror(err) or err == "ENOTFOUND" and "name does not resolve")
  return nil, err, ("%s %s: %s"):format(op, at,
    d and ("%s (%s)"):format(err, d) or tostring(err))
end
net._fail = fail

local function ms(seconds)
  if seconds == nil then return -1 end
  -- past 2^30 ms (12 days) is as good as forever: math.huge must not raise
  if seconds >= (1 << 30) / 1000 then return 1 << 30 end
  return math.floor(seconds * 1000 + 0.5)
end

-- {{{ names

local FAMILIES = {inet = "inet", inet6 = "inet6", ipv4 = "inet",
  ipv6 = "inet6", [4] = "inet", [6] = "inet6"}

--- lookup(name [, {family = "inet" | "inet6", timeout = seconds}])
--- -> {address...} | nil, err
function net.lookup(name, opts)
  check_type(name, "string", 1, "lookup")
  check_type(opts, "table", 2, "lookup", true)
  local family, timeout
  if opts then
    check_options(opts, {family = true, timeout = true}, "lookup", 2)
    timeout = check_seconds(opts.timeout, 2, "lookup", "timeout")
    if opts.family ~= nil then
      family = FAMILIES[opts.family]
      if not family then argerror(2, "lookup", "unknown family '" ..
        tostring(opts.family) .. "'") end
    end
  end
  if is_ip(name) then return {name} end
  need_task("net.lookup", 2) -- (at the caller's line, not this one's)
  return core.getaddrinfo(name, family, ms(timeout))
end

--- reverse(address) -> name | nil, err
function net.reverse(addr)
  check_type(addr, "string", 1, "reverse")
  if not is_ip(addr) then argerror(1, "reverse", "IP address expected") end
  need_task("net.reverse", 2)
  return core.getnameinfo(addr)
end

-- }}}

-- {{{ connections

Conn.receive = Conn.read

--- splice(a, b [, opts]): see lib/net_pipe.c and docs/net.md
net.splice = core.splice

--- buffer(size): bytes that conn:recv_into fills and conn:write sends,
--- with no string made for them (lib/net_buffer.c, docs/net.md)
net.buffer = core.buffer

local CONNECT_OPTS = {timeout = true, bind = true, nodelay = true,
  family = true, path = true, host = true, port = true, max_line = true,
  max_read = true, write_hwm = true, tls = true}

-- {{{ tls: the glue is C (lib/tls_conn.c); here, options to contexts

local tls_mod -- require "tls", when first needed
local default_client -- the context of tls = true (its session cache too)
-- A context per options table, so that connections made with the same
-- table share one (and resume each other's sessions).
local ctx_of_opts = setmetatable({}, {__mode = "k"})
-- conn -> {server = bool, host =, port =}: the side starttls takes.
local roles = setmetatable({}, {__mode = "k"})
-- every accepted conn shares one (read-only) role: no table per accept
local SERVER_ROLE = {server = true}

-- close() takes a socket out of roles and its task's owned set at once:
-- the weak keys are only for sockets dropped unclosed (left to the GC,
-- 10,000 handshakes filled them with dead entries, the tables growing
-- with them until a cycle ran).
local disown = private.task.disown
do
  -- (conn_close_m, for every kind)
  local core_close = original(Conn, "conn", "close")
  local function close(self)
    -- (protected: a bad self is the caller's error, at its line)
    local ok, err = pcall(core_close, self)
    if not ok then error(err, 2) end
    roles[self] = nil
    disown(self)
    return true
  end
  Conn.close, core.udp_methods.close = close, close
end

-- The context for a tls = option: a context, true (clients: the
-- defaults) or an options table; nil, err when it cannot be made. A
-- wrong one raises naming the function at level (default 3: the caller
-- of the function that asks).
local function tls_context(v, n, fname, server, level)
  level = level or 3
  tls_mod = tls_mod or require "tls"
  if tls_mod.is_context(v) then
    if server and not tls_mod._has_cert(v) then
      argerror(n, fname, "tls: a server context needs cert and key", level)
    end
    return v
  end
  if v == true and not server then
    if not default_client then
      local err
      default_client, err = tls_mod.context{}
      if not default_client then return nil, err end
    end
    return default_client
  end
  if type(v) ~= "table" then
    argerror(n, fname, "tls: true, an options table or a tls.context " ..
      "expected, got " .. (v == true and "true (a server needs cert and " ..
      "key)" or type(v)), level)
  end
  local ctx = ctx_of_opts[v]
  if not ctx then
    local ok, c, err = pcall(tls_mod.context, v)
    if not ok then
      argerror(n, fname, "tls: " .. (tostring(c):match("%((.*)%)$") or
        tostring(c)), level)
    end
    if not c then return nil, err end
    ctx = c
    ctx_of_opts[v] = ctx
  end
  if server and not tls_mod._has_cert(ctx) then
    argerror(n, fname, "tls: a server needs cert and key", level)
  end
  return ctx
end

-- Run TLS on c (a connected client or an accepted conn) and, unless
-- lazy, wait for the handshake (secs: its deadline, nil for the
-- context's handshake_timeout). c, or nil, err (c is closed then).
local function tls_start(c, ctx, server, host, port, secs, lazy)
  -- (a server's context, checked at listen, may have been released since
  -- by <close>: its next conns end, the server goes on)
  if not tls_mod.is_context(ctx) then
    c:close()
    return nil, "tls: the context is released"
  end
  local ok, err = core.tls_attach(c, ctx, server, host, port)
  if ok and not lazy then ok, err = c:handshake(secs) end
  if not ok then
    c:close()
    return nil, err
  end
  return c
end

--- starttls([opts [, how]]): TLS from now on, on a connected plaintext
--- conn (opts: true, an options table or a tls.context). The client side
--- on a conn made by connect, the server side on one a server accepted;
--- how = {server =, host =, timeout =} overrides the side, the name to
--- verify and the handshake's deadline. The input already buffered is
--- the first of the TLS stream: nothing is lost.
--- -> conn | nil, err (the conn is closed on failure)
function Conn:starttls(opts, how)
  if core.tls_running(self) then
    error("starttls: the connection runs TLS already", 2)
  end
  local r = roles[self] or {}
  if opts == nil then opts = true end
  check_type(how, "table", 2, "starttls", true)
  local server, host = r.server, r.host
  if how then
    check_options(how, {server = true, host = true, timeout = true},
      "starttls", 2)
    if how.server ~= nil then server = how.server and true or false end
    if how.host ~= nil then host = check_type(how.host, "string", 2,
      "starttls") end
    check_seconds(how.timeout, 2, "starttls", "timeout")
  end
  local ctx, err = tls_context(opts, 1, "starttls", server)
  if not ctx then return nil, err end
  return tls_start(self, ctx, server, host, r.port, how and how.timeout)
end

-- }}}

local function configure(sock, opts)
  local d = net.defaults
  core.configure(sock, opts.max_line or d.max_line,
    opts.write_hwm or d.write_hwm, nil, opts.max_read or d.max_read)
end

--- connect(host, port [, opts]) or connect{host=, port= | path=, ...}
--- -> conn | nil, err
function net.connect(host, port, opts)
  if type(host) == "table" then
    opts = host
    host, port = opts.host, opts.port
  end
  opts = opts or {}
  check_type(opts, "table", 3, "connect")
  check_options(opts, CONNECT_OPTS, "connect", 3)
  local timeout = check_seconds(opts.timeout, 3, "connect", "timeout")
  check_size(opts.max_line, 3, "connect", "max_line", LIMIT_MAX)
  check_size(opts.max_read, 3, "connect", "max_read", LIMIT_MAX)
  check_size(opts.write_hwm, 3, "connect", "write_hwm")
  local path = opts.path
  local ctx, cerr
  if opts.tls ~= nil and opts.tls ~= false then
    ctx, cerr = tls_context(opts.tls, 3, "connect")
    if not ctx then
      return fail("connect", where(path or host, path == nil and port or
        nil), cerr)
    end
  end
  -- (a callback cannot wait: raised here, at the caller's line, not
  -- where core.connect or net.lookup would find it)
  need_task("net.connect", 2)
  local t0 = task.now()
  -- the handshake's deadline: what the connect timeout leaves, if any
  local function hs_left()
    return timeout and math.max(0, timeout - (task.now() - t0))
  end
  if path ~= nil then
    check_type(path, "string", 1, "connect")
    if host ~= nil then check_type(host, "string", 1, "connect") end
    local c, err = core.connect(path, nil, ms(timeout))
    if not c then return fail("connect", where(path), err) end
    configure(c, opts)
    if timeout then c:settimeout(timeout) end
    roles[c] = {server = false, host = host}
    if ctx then
      c, err = tls_start(c, ctx, false, host, 0, hs_left())
      if not c then return fail("connect", where(path), err) end
    end
    return own(c)
  end
  check_type(host, "string", 1, "connect")
  check_port(port, 2, "connect")
  local bind_ip, bind_port = opts.bind, nil
  if type(bind_ip) == "table" then
    bind_ip, bind_port = bind_ip.host or bind_ip[1], bind_ip.port or bind_ip[2]
  end
  if bind_ip ~= nil then
    if type(bind_ip) ~= "string" or not is_ip(bind_ip) then
      argerror(3, "connect", "bind: IP address expected")
    end
    if bind_port ~= nil then
      check_port(bind_port, 3, "connect", "bind port")
    end
  end
  local nodelay = opts.nodelay
  if nodelay == nil then nodelay = true end
  local deadline = timeout and task.now() + timeout
  local addrs, err
  if is_ip(host) then
    addrs = {host}
  else
    addrs, err = net.lookup(host, {family = opts.family, timeout = timeout})
    if not addrs then return fail("connect", where(host, port), err) end
  end
  for i = 1, #addrs do
    local left = -1
    if deadline then
      left = ms(deadline - task.now())
      if left <= 0 then
        return fail("connect", where(host, port), "timeout")
      end
    end
    local ip = addrs[i]
    -- a bind address of the other family cannot work: skip that address
    if bind_ip == nil or is_ip(ip) and
      (ip:find(":", 1, true) ~= nil) == (bind_ip:find(":", 1, true) ~= nil)
    then
      local c
      c, err = core.connect(ip, port, left, bind_ip, bind_port, nodelay)
      if c then
        configure(c, opts)
        if timeout then c:settimeout(timeout) end
        roles[c] = {server = false, host = host, port = port}
        if ctx then
          c, err = tls_start(c, ctx, false, host, port, hs_left())
          if not c then return fail("connect", where(host, port), err) end
        end
        return own(c)
      end
    end
  end
  return fail("connect", where(host, port), err)
end

-- }}}

-- {{{ servers

local LISTEN_OPTS = {host = true, port = true, path = true, fd = true,
  backlog = true,
  reuseport = true, v6only = true, max_connections = true, max_line = true,
  max_read = true, idle_timeout = true, write_hwm = true,
  max_per_address = true, tls = true, proxy_protocol = true}

-- proxy_protocol = true | {trusted = {cidr...}, timeout = seconds}:
-- {ms = header deadline, trusted = cidr list or nil}, or nil when off.
local PROXY_TIMEOUT = 5

-- A server on a socket given as `--listen ADDR,proxy` (or a systemd
-- socket named "...,proxy"): the PROXY protocol is on unless the script
-- said proxy_protocol = false.
local function inherited_proxy(server)
  local ok, fds = pcall(require("luahost").listen_fds)
  if not ok or type(fds) ~= "table" then return nil end
  local ip, port = server:sockname()
  for _, f in ipairs(fds) do
    if f.proxy and ((f.path and f.path == ip) or
      (f.port and f.port == port and f.ip == ip)) then
      return {ms = ms(PROXY_TIMEOUT)}
    end
  end
  return nil
end
local function check_proxy(p)
  if p == nil or p == false then return nil end
  if p == true then return {ms = ms(PROXY_TIMEOUT)} end
  if type(p) ~= "table" then
    argerror(1, "listen", "proxy_protocol: boolean or table expected", 3)
  end
  for k in pairs(p) do
    if k ~= "trusted" and k ~= "timeout" then
      argerror(1, "listen", "proxy_protocol: unknown option '" ..
        tostring(k) .. "'", 3)
    end
  end
  local t = check_seconds(p.timeout, 1, "listen", "proxy_protocol.timeout",
    4)
  local trusted
  if p.trusted ~= nil then
    if type(p.trusted) ~= "table" then
      argerror(1, "listen", "proxy_protocol.trusted: table expected", 3)
    end
    trusted = {}
    for i, c in ipairs(p.trusted) do
      if type(c) ~= "string" or not core.proxy_cidr(c) then
        argerror(1, "listen", "proxy_protocol.trusted[" .. i ..
          "]: CIDR expected", 3)
      end
      trusted[i] = c
    end
  end
  return {ms = ms(t or PROXY_TIMEOUT), trusted = trusted}
end

local ANY = {["*"] = "0.0.0.0", ["0.0.0.0"] = "0.0.0.0", ["::"] = "::"}

-- per server: {max =, active = connections (resting ones too), waiter =,
-- per_addr = max_per_address, addrs = {ip -> connections}, closed (a
-- drain or close), slot_mt = the metatable of its slots, rest_fn = the
-- callback of resting conns,
-- logged = {what -> time of its last log line}, name = "ip:port",
-- server =, handler =}
local servers = setmetatable({}, {__mode = "k"})
-- (http reads a server's state, its `closed` above all: a field read
-- where is_closed() would be a C call a request)
private.net_servers = servers
-- (http.request and http.websocket.connect check their tls option with it,
-- naming themselves; the context made is the one their connect gets)
private.net_tls_context = tls_context

--- listen{host=, port= | path= | fd=, backlog=, reuseport=, v6only=,
---   max_connections=, max_per_address=, max_line=, max_read=,
---   idle_timeout=, write_hwm=} -> server
function net.listen(opts)
  check_type(opts, "table", 1, "listen")
  check_options(opts, LISTEN_OPTS, "listen")
  local d = net.defaults
  local backlog = check_size(opts.backlog, 1, "listen", "backlog")
    or d.backlog
  local maxc = check_size(opts.max_connections, 1, "listen",
    "max_connections") or d.max_connections
  local per_addr = check_size(opts.max_per_address, 1, "listen",
    "max_per_address") or d.max_per_address
  check_size(opts.max_line, 1, "listen", "max_line", LIMIT_MAX)
  check_size(opts.max_read, 1, "listen", "max_read", LIMIT_MAX)
  check_size(opts.write_hwm, 1, "listen", "write_hwm")
  local idle = check_seconds(opts.idle_timeout, 1, "listen", "idle_timeout")
  if opts.idle_timeout == nil then idle = d.idle_timeout end
  local server, err, ctx, at
  if opts.tls ~= nil and opts.tls ~= false then
    ctx, err = tls_context(opts.tls, 1, "listen", true)
    if not ctx then
      return fail("listen", opts.path and where(opts.path) or
        opts.fd and "fd " .. tostring(opts.fd) or
        where(opts.host or "127.0.0.1", opts.port or 0), err)
    end
  end
  local proxy = check_proxy(opts.proxy_protocol)
  if opts.fd ~= nil then
    if math.type(opts.fd) ~= "integer" or opts.fd < 0 then
      argerror(1, "listen", "fd: non-negative integer expected")
    end
    at = "fd " .. opts.fd
    server, err = core.listen_fd(opts.fd, backlog)
  elseif opts.path ~= nil then
    check_type(opts.path, "string", 1, "listen")
    at = where(opts.path)
    local fd
    fd, err = share("unix", opts.path, nil, backlog)
    if fd == false then
      server, err = core.listen(opts.path, nil, backlog)
    elseif fd then
      server, err = core.listen_fd(fd, backlog)
    end
  else
    local host = opts.host or "127.0.0.1"
    check_type(host, "string", 1, "listen")
    local port = check_port(opts.port or 0, 1, "listen")
    host = ANY[host] or host
    at = where(host, port)
    if not is_ip(host) then
      local addrs
      addrs, err = net.lookup(host)
      if not addrs then return fail("listen", at, err) end
      host = addrs[1]
    end
    local fd
    fd, err = share("tcp", host, port, backlog, opts.v6only, opts.reuseport)
    if fd == false then
      server, err = core.listen(host, port, backlog, opts.v6only,
        opts.reuseport)
    elseif fd then
      server, err = core.listen_fd(fd, backlog)
    end
  end
  if not server then return fail("listen", at, err) end
  if proxy == nil and opts.proxy_protocol == nil then
    proxy = inherited_proxy(server)
  end
  core.configure(server, opts.max_line or d.max_line,
    opts.write_hwm or d.write_hwm, idle and ms(idle) or -1,
    opts.max_read or d.max_read)
  local ip, bound = server:sockname()
  servers[server] = {max = maxc, active = 0, per_addr = per_addr,
    addrs = {}, logged = {}, tls = ctx, proxy = proxy,
    server = server,
    idle = idle and ms(idle) or -1,
    name = bound and ip .. ":" .. bound or tostring(ip)}
  return own(server)
end

local core_accept = original(Server, "server", "accept")

-- A line on stderr about a server, at most one per 10 s for each `what`
-- (an attack must not flood the log): with the count of the events it
-- stands for.
local function log(st, what, fmt, ...)
  local l = st.logged[what]
  if not l then
    l = {t = -math.huge, n = 0}
    st.logged[what] = l
  end
  l.n = l.n + 1
  local now = task.now()
  if now - l.t < 10 then return end
  io.stderr:write(("net: %s: "):format(st.name), fmt:format(...),
    l.n > 1 and (" (%d times since the last line)"):format(l.n) or "",
    "\n")
  l.t, l.n = now, 0
end

-- One connection's slot while a round runs: {conn, ip}, its role (the
-- server side of starttls: roles[conn]), given back when its handler
-- ends. Small on purpose (an array of two, its server in its metatable:
-- st.slot_mt), as every connection in a round has one. A conn the
-- handler lets rest (conn:rest) gives its slot up instead (slot[1] =
-- false) and waits in C with no Lua state at all (no userdata, no table
-- entry), but for two registry slots: its server's callback (rest_fn) and
-- its client address (a string shared with st.addrs); the next round
-- gets a new slot. The server's counts (active, per address) keep it
-- until it is closed.
local SlotBase = {server = true}
local function release(st, ip)
  st.active = st.active - 1
  if ip then
    local n = st.addrs[ip] - 1
    st.addrs[ip] = n > 0 and n or nil
  end
  local w = st.waiter
  if w then
    st.waiter = nil
    wake(w)
  end
end
-- The server of a slot, nil for anything else.
local function slot_st(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt and rawget(mt, "st")
end
local function slot_close(slot)
  local conn = slot[1]
  if not conn then return end -- the conn waits in C (conn:rest)
  slot[1] = false
  conn:close()
  release(slot_st(slot), slot[2])
end
local function slot_mt(st)
  return {__index = SlotBase, __close = slot_close, st = st}
end

-- (slot[3] is its server too: the hot paths find it with no call)
local function new_slot(st, conn, ip)
  local slot = setmetatable({conn, ip or false, st}, st.slot_mt)
  roles[conn] = slot
  return slot
end

local address, accepted

-- On a proxy_protocol server: read the header (net_proxy.c) before the
-- handler sees conn; false (conn to be closed, logged) when it fails.
local proxy_header = core.proxy_header
local function read_proxy(st, conn)
  local ok, err = proxy_header(conn, st.proxy.ms, st.proxy.trusted)
  if not ok then
    log(st, "proxy " .. err, "PROXY protocol: %s from %s: connection closed",
      err, tostring((conn:peername())))
  end
  return ok, err
end

-- Before the first round: the PROXY header and the TLS handshake; false
-- when the conn cannot be served (the round's slot closes it). Its
-- frame is where the handler's will be: a plain conn's prepare calls
-- nothing deeper than the handler's own reads and writes do (a call one
-- frame deeper would leave the coroutine a CallInfo more, 64 B, that
-- the collector never frees).
local function prepare(slot, conn)
  local st = getmetatable(slot).st
  if st.proxy then
    -- the client's own address counts for max_per_address
    if not read_proxy(st, conn) then return false end
    local ip = address(st, conn)
    if ip == false then return false end
    if ip then st.addrs[ip] = (st.addrs[ip] or 0) + 1 end
    slot[2] = ip
  end
  -- TLS: after the PROXY header (it precedes the handshake), then the
  -- handshake (bounded by handshake_timeout) before the handler
  if st.proxy and not accepted(st, conn) then return false end
  if st.tls and not conn:handshake() then return false end
  return true
end

-- Rest workers: a light task whose round ended with its conn resting
-- waits here (a plain yield, nothing registered) to serve the next round
-- of any rested conn: no coroutine is made per round. At most POOL_MAX
-- wait; the others end.
local pool, npool, POOL_MAX = {}, 0, 64
local start_round
local light_tasks = private.task.tasks -- (co -> true: a light task)
local coroutine_running, coroutine_yield =
  coroutine.running, coroutine.yield

-- One round of a served conn: the handler, in the running task; the slot
-- closes the conn and is given back after it, unless the conn rests.
-- The round is inline, not a function of its own: every frame under a
-- handler parked in a read counts. A C call needs 20 free stack slots
-- above its arguments; when the frames below the handler's read or write
-- push that past the 40 slots a coroutine starts with, its stack doubles
-- to 80 (+640 B per idle connection) and the collector never shrinks it
-- back (it does only past 3 times what is in use). Here the handler's
-- frame starts at slot 8, which leaves room for a handler with a dozen
-- registers (scripts/echo.lua's) to read and write within the 40.
local function worker(slot, handler, conn, first)
  while true do
    do
      local _slot <close> = slot -- luacheck: ignore 211
      if not first or prepare(slot, conn) then handler(conn) end
    end
    -- a slot given up (the conn rests or is closed) serves again, for
    -- its server's next round (nothing else holds it: roles let it go)
    if slot[1] == false then slot[3].free_slot = slot end
    local co = coroutine_running()
    if npool >= POOL_MAX or light_tasks[co] ~= true then return end
    npool = npool + 1
    pool[npool] = co
    -- nothing kept while it waits (the stack is traversed)
    slot, handler, conn = nil, nil, nil -- luacheck: ignore 311
    repeat -- (only start_round resumes it, with a slot)
      slot, handler, conn, first = coroutine_yield()
    until type(slot) == "table" and slot[3]
  end
end

-- Run a round (the first: first = true) in a waiting rest worker, or in
-- a new light task.
local resume = private.resume
start_round = function(slot, handler, conn, first)
  if npool > 0 then
    local co = pool[npool]
    pool[npool] = nil
    npool = npool - 1
    return resume(co, slot, handler, conn, first)
  end
  return spawn_light(worker, slot, handler, conn, first)
end

-- The callback of the resting conns of server st (net_read.c, core.rest;
-- ip: the tag given to it, the client address or false): input (err nil)
-- runs the handler in a new round, with a new slot; anything else closes
-- the conn and gives its place back.
local function rest_fn(st)
  return function(conn, err, ip)
    ip = ip or nil
    if err then
      conn:close()
      return release(st, ip)
    end
    -- (new_slot and start_round inline: once a request; the slot of the
    -- last round that ended, when there is one)
    local slot = st.free_slot
    if slot then
      st.free_slot = false
      slot[1], slot[2] = conn, ip or false
    else
      slot = setmetatable({conn, ip or false, st}, st.slot_mt)
    end
    roles[conn] = slot
    if npool > 0 then
      local co = pool[npool]
      pool[npool] = nil
      npool = npool - 1
      return resume(co, slot, st.handler, conn)
    end
    return spawn_light(worker, slot, st.handler, conn)
  end
end

local core_rest, resting, close_resting, fed =
  core.rest, core.resting, core.close_resting, core.fed
local FRESH_MS = core.FRESH_MS

--- conn:rest([timeout]) -> true | false: in a handler run by
--- server:serve, wait for the conn's next input with no task: when it
--- returns true, the handler must return at once (without touching
--- conn); when input arrives, the handler runs again, in a new task, with
--- a new conn object for the same connection (the one the handler had
--- reads as closed once rest returned true: C alone holds the
--- connection, with nothing in Lua); when the peer closes, the conn
--- fails, is closed
--- (server:close_idle) or stays silent for timeout seconds (default: the
--- server's idle_timeout), it is closed and the handler does not run.
--- False, doing nothing, when input is buffered already (read it) or the
--- conn is not a served one.
function Conn:rest(timeout)
  -- (the type only: http.server passes what its idle timeout leaves)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    error(("bad argument #1 to 'rest' (number of seconds expected, " ..
      "got %s)"):format(tostring(timeout)), 2)
  end
  local slot = roles[self]
  local st = slot and slot[3] -- (a role that is not a slot has none)
  if not st or slot[1] ~= self then return false end
  local wait = timeout and ms(timeout) or st.idle
  if st.closed then
    -- a closed server (a drain) keeps no connection for a next input: the
    -- round closes it when the handler returns; but a new one that has
    -- sent nothing yet may have its first request in flight (a balancer
    -- connects, then sends): it rests FRESH_MS at most (as close_idle
    -- leaves it, net_conn.c)
    if fed(self) then return true end
    if wait < 0 or wait > FRESH_MS then wait = FRESH_MS end
  end
  if not core_rest(self, wait, st.rest_fn, st.server, slot[2] or false) then
    return false
  end
  slot[1] = false
  roles[self] = nil
  return true
end

-- An accepted conn of server st: the server side of starttls, and TLS
-- at once on a TLS server (the handshake runs as bytes arrive). False
-- when TLS could not start (conn closed).
function accepted(st, conn)
  roles[conn] = roles[conn] or SERVER_ROLE -- (its slot, when served)
  if st.tls then return tls_start(conn, st.tls, true, nil, nil, nil, true)
    ~= nil end
  return true
end

-- The client address of conn for the per-address count (nil: not
-- counted, a unix socket), or false when that address has
-- max_per_address connections already: then conn is closed (logged).
function address(st, conn)
  local ip, _, family = conn:peername()
  if family ~= "inet" and family ~= "inet6" then return nil end
  if (st.addrs[ip] or 0) >= st.per_addr then
    log(st, "per_address", "%s has max_per_address (%d) connections: " ..
      "refusing more from it", ip, st.per_addr)
    conn:close()
    return false
  end
  return ip
end

-- Take a slot for conn (from ip, nil when not counted).
local function take_slot(st, conn, ip)
  if ip then st.addrs[ip] = (st.addrs[ip] or 0) + 1 end
  st.active = st.active + 1
  return new_slot(st, conn, ip)
end

-- true once a drain closes the listeners (after --drain-delay)
local closing = private.closing
local core_on_pending = core.on_pending

-- A client of serve's, accepted: its address counted (nil: not counted;
-- proxied: counted once the header is read) and TLS started, or false
-- (refused, closed).
local function admit(st, conn)
  local ip = nil
  if not st.proxy then
    ip = address(st, conn)
    if ip ~= false and not accepted(st, conn) then ip = false end
  end
  return ip
end

-- Wait until a slot is free or the server is closed, holding conn (the
-- next client: it waits unserved, the others in the backlog). In a drain
-- the clients queued in the backlog are served at once, past
-- max_connections (drain.c takes them from the queue before closing the
-- socket, which would reset them; the queue is bounded by the backlog,
-- descriptors by accept's reserve): on_pending is how a client pending
-- while serve waits here reaches it.
local function wait_slot(server, st, conn, handler)
  local _ <close> = setmetatable({}, {__close = function()
    core_on_pending(server, nil)
  end})
  core_on_pending(server, function()
    if not closing() then return end -- (the backlog holds them)
    local c = core_accept(server, 0) -- (pending: at once)
    local ip = c and admit(st, c)
    if ip ~= false and c then
      start_round(take_slot(st, c, ip), handler, c, true)
    end
  end)
  while st.active >= st.max and not server:is_closed() do
    local co = coroutine.running()
    st.waiter = co
    local r = park(nil, "serve")
    if r ~= true then
      if st.waiter == co then st.waiter = nil end
      conn:close()
      cancelled(r)
    end
  end
end

-- At max_connections: close the connection idle the longest (its handler
-- waits to read, nothing unread) if it has been idle SHED_IDLE seconds at
-- least, so that a crowd of silent clients cannot lock out new ones (and
-- a burst of fresh ones, their first request still on the way, is not
-- cut). False when none is (then new clients wait in the backlog until a
-- handler ends).
local SHED_IDLE = 2
local idle_for = core.idle_for
local function shed(st)
  local oldest, longest = nil, SHED_IDLE
  for conn, slot in pairs(roles) do -- (its conns in a round)
    if slot[1] == conn and slot_st(slot) == st then
      local t = idle_for(conn)
      if t and t >= longest then oldest, longest = conn, t end
    end
  end
  local _, t = resting(st.server) -- the one resting the longest
  if t and t >= longest then
    log(st, "shed", "max_connections (%d) reached: closing the " ..
      "connection idle the longest (%.0f s)", st.max, t)
    close_resting(st.server, 1)
    return true
  end
  if not oldest then return false end
  log(st, "shed", "max_connections (%d) reached: closing the connection " ..
    "idle the longest (%.0f s)", st.max, longest)
  oldest:close()
  return true
end

--- serve(handler): accept connections until the server is closed, each
--- handled by handler(conn) in its own task; conn is closed when the
--- handler returns or fails. Returns true once the server is closed.
function Server:serve(handler)
  handler = private.task.check_callable(handler, "serve")
  local st = servers[self]
  if st == nil then argerror(1, "serve", "net.server expected") end
  local accept = core_accept
  st.handler = st.handler or handler -- (for the rounds after a rest)
  st.rest_fn = st.rest_fn or rest_fn(st)
  st.slot_mt = st.slot_mt or slot_mt(st)
  while true do
    local conn, err = accept(self)
    if conn then
      if st.short then -- an episode out of descriptors ends
        io.stderr:write(("net: %s: accepting again after %.1f s out of " ..
          "file descriptors\n"):format(st.name, task.now() - st.short))
        st.short = nil
      end
      local ip = admit(st, conn)
      if ip ~= false and st.active >= st.max and not closing() then
        -- full, and a client waits: make room (or wait for it)
        if not shed(st) then
          log(st, "full", "max_connections (%d) reached and none idle: " ..
            "new clients wait in the backlog", st.max)
        end
        wait_slot(self, st, conn, handler)
        if self:is_closed() and not closing() then
          conn:close()
          return true
        end
      end
      if ip ~= false then -- (in a drain past max_connections: wait_slot)
        start_round(take_slot(st, conn, ip), handler, conn, true)
      end
    elseif err == "closed" then
      return true
    elseif err ~= "timeout" then
      -- e.g. EMFILE: back off, the backlog holds them (net.core leaves
      -- them there while descriptors are short); one line per episode
      if (err == "EMFILE" or err == "ENFILE") and not st.short then
        st.short = task.now()
        io.stderr:write(("net: %s: out of file descriptors (%s): not " ..
          "accepting for now, clients wait in the backlog\n"):format(
          st.name, err))
      end
      task.sleep(0.05)
    end
  end
end

--- close(): stop accepting; serve returns (also when it was waiting for a
--- free connection slot). Connections being served go on.
local core_close = original(Server, "server", "close")
function Server:close()
  private.task.disown(self)
  local r = core_close(self)
  local st = servers[self]
  if st then st.closed = true end
  local w = st and st.waiter
  if w then
    st.waiter = nil
    wake(w)
  end
  return r
end

--- close_idle(): close the served connections resting between two
--- rounds (conn:rest); returns how many.
function Server:close_idle()
  if not servers[self] then return 0 end
  return close_resting(self)
end

--- The number of connections being served.
function Server:active()
  local st = servers[self]
  return st and st.active or 0
end

function Server:accept(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    error(("bad argument #1 to 'accept' (number of seconds expected, " ..
      "got %s)"):format(tostring(timeout)), 2)
  end
  local c, err = core_accept(self, timeout)
  if c then
    local st = servers[self]
    if st and st.proxy then
      c = own(c)
      local ok, perr = read_proxy(st, c)
      if not ok then
        c:close()
        return nil, perr
      end
      if not accepted(st, c) then return nil, "tls: cannot start" end
      return c
    end
    -- (a TLS conn: its handshake runs as bytes arrive; conn:handshake()
    -- waits for it, read and write just work)
    if st and not accepted(st, c) then return nil, "tls: cannot start" end
    return own(c)
  end
  return nil, err
end

-- A drain (SIGTERM under --workers, --daemon, --pidfile) closes every
-- server: the tasks in serve and accept return, connections being served
-- go on (and close instead of resting when their handler is done), the
-- resting ones close at once (no request in flight: nothing to wait for,
-- and left resting they would hold the drain until their idle timeout).
do
  local host = require "luahost"
  if host.on_drain then
    host.on_drain(function()
      for server, st in pairs(servers) do
        if not server:is_closed() then server:close() end
        st.closed = true -- (also when drain.c closed its socket first)
        local w = st.waiter -- (serve waiting for a slot returns)
        if w then
          st.waiter = nil
          wake(w)
        end
        server:close_idle()
      end
    end)
  end
end

-- }}}

-- {{{ udp

local UDP_OPTS = {host = true, port = true, family = true, reuseaddr = true,
  v6only = true, broadcast = true, ttl = true, multicast_ttl = true,
  multicast_loop = true, multicast_interface = true, join = true,
  timeout = true}

-- the options net.udp sets with setopt (each needs the socket)
local SOCKET_OPTS = {"broadcast", "ttl", "multicast_ttl", "multicast_loop",
  "multicast_interface", "join"}

--- udp{host=, port=, family=, reuseaddr=, v6only=, broadcast=, ttl=, join=,
---   multicast_ttl=, multicast_loop=, multicast_interface=, timeout=}
--- -> udp socket (bound when host or port is given) | nil, err
function net.udp(opts)
  opts = opts or {}
  check_type(opts, "table", 1, "udp")
  check_options(opts, UDP_OPTS, "udp")
  local host, port = opts.host, opts.port
  if port ~= nil then check_port(port, 1, "udp") end
  if host ~= nil then check_type(host, "string", 1, "udp") end
  local family = opts.family and FAMILIES[opts.family]
  if opts.family ~= nil and not family then
    argerror(1, "udp", "unknown family '" .. tostring(opts.family) .. "'")
  end
  if host == nil and port ~= nil then
    host = family == "inet6" and "::1" or "127.0.0.1"
  end
  -- With no address, libuv makes the socket at the first send or connect,
  -- in that address's family. An option needs a socket now: make it in
  -- family, else the family of a join or multicast_interface address,
  -- else inet (broadcast is IPv4's; ttl and the multicast options are per
  -- family, IP_TTL or IPV6_UNICAST_HOPS: one family must be chosen, and
  -- IPv4 is the one an address-less UDP socket most often means).
  if host == nil and family == nil then
    for _, name in ipairs(SOCKET_OPTS) do
      if opts[name] ~= nil then family = "inet" end
    end
    local j, i = opts.join, opts.multicast_interface
    if type(j) == "table" then j = j[1] end
    if type(j) == "string" and j:find(":", 1, true) or
      type(i) == "string" and i:find(":", 1, true) then
      family = "inet6"
    end
  end
  if host ~= nil then
    host = ANY[host] or host
    if not is_ip(host) then
      local addrs, err = net.lookup(host, {family = family})
      if not addrs then return fail("udp", where(host, port or 0), err) end
      host = addrs[1]
    end
  end
  local u, err, fd = nil, nil, false
  -- A bound socket is the group's in a worker (each datagram reaches one
  -- worker), unless reuseaddr asks for one per process (multicast: each
  -- gets a copy).
  if host ~= nil and not opts.reuseaddr then
    fd, err = share("udp", host, port or 0, nil, opts.v6only)
  end
  if fd then
    u, err = core.udp_fd(fd)
  elseif fd == false then
    u, err = core.udp(host, port or 0, opts.reuseaddr, family, opts.v6only)
  end
  if not u then
    return fail("udp", host and where(host, port or 0) or "socket", err)
  end
  for _, name in ipairs(SOCKET_OPTS) do
    if opts[name] ~= nil then
      local ok, e = u:setopt(name, opts[name])
      if not ok then
        u:close()
        return fail("udp", (host and where(host, port or 0) or "socket") ..
          " " .. name, e)
      end
    end
  end
  if opts.timeout ~= nil then
    u:settimeout(check_seconds(opts.timeout, 1, "udp", "timeout"))
  end
  return own(u)
end

-- udp's sendto(data, host, port) and connect(host, port) given a name,
-- not an address (lib/net_udp.c sends an address at once, with no call
-- here): look it up (the task waits, the loop does not), bounded by the
-- socket's timeout, in the family of the socket when it has one, else
-- preferring an IPv4 address (the socket is made in the family of the
-- first address it sends to: inet, as for net.udp's options). A name that
-- does not resolve: nil, err, message, as net.connect.
local udp_sendto = original(core.udp_methods, "udp", "sendto")
local udp_connect = original(core.udp_methods, "udp", "connect")
core.udp_resolver(function(op, family, u, a, b, c)
  local host, port = a, b
  if op == "sendto" then host, port = b, c end
  local addrs, err = net.lookup(host, {family = family,
    timeout = u:gettimeout()})
  if not addrs then return fail(op, where(host, port), err) end
  local ip = addrs[1]
  if family == nil then
    for i = 1, #addrs do
      if not addrs[i]:find(":", 1, true) then
        ip = addrs[i]
        break
      end
    end
  end
  if op == "sendto" then return udp_sendto(u, a, ip, port) end
  return udp_connect(u, ip, port)
end)

-- }}}

-- {{{ host facts (none of these waits on the network)
-- Cold paths: Lua over uv, so that each look-up has one implementation in
-- C (bindings/misc.c, bindings/netdb.c); net only reshapes the results
-- and names failures as net does.

local uv = require "uv"

-- uv's fail (nil, "NAME: message", "NAME") as net's nil, err.
local NOTFOUND = {EAI_NONAME = true, EAI_NODATA = true, EAI_AGAIN = true,
  EAI_FAIL = true, EAI_PROTOCOL = true}
local function uv_fail(_, name)
  return nil, NOTFOUND[name] and "ENOTFOUND" or name
end

--- hostname() -> name
function net.hostname()
  local name, msg, ename = uv.os_gethostname()
  if not name then return uv_fail(msg, ename) end
  return name
end

--- interfaces() -> {{name=, address=, family=, netmask=, internal=,
--- mac=}...}, ordered by name
function net.interfaces()
  local byname, msg, ename = uv.interface_addresses()
  if not byname then return uv_fail(msg, ename) end
  local names, list = {}, {}
  for name in pairs(byname) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    for _, a in ipairs(byname[name]) do
      list[#list + 1] = {name = name, address = a.ip, family = a.family,
        netmask = a.netmask, internal = a.internal,
        mac = ("%02x:%02x:%02x:%02x:%02x:%02x"):format(a.mac:byte(1, 6))}
    end
  end
  return list
end

--- service(name | port [, proto = "tcp"]) -> port | name | nil, err
function net.service(what, proto)
  if type(what) ~= "string" and math.type(what) ~= "integer" then
    argerror(1, "service", "string or integer expected, got " .. type(what))
  end
  proto = check_type(proto, "string", 2, "service", true) or "tcp"
  if type(what) == "string" then
    local se, msg, ename = uv.getservbyname(what, proto)
    if not se then return uv_fail(msg, ename) end
    return se.port
  end
  check_port(what, 1, "service")
  local se, msg, ename = uv.getservbyport(what, proto)
  if not se then return uv_fail(msg, ename) end
  return se.name
end

--- protocol(name | number) -> number | name | nil, err
function net.protocol(what)
  if type(what) ~= "string" and math.type(what) ~= "integer" then
    argerror(1, "protocol", "string or integer expected, got " .. type(what))
  end
  if type(what) == "string" then
    local pe, msg, ename = uv.getprotobyname(what)
    if not pe then return uv_fail(msg, ename) end
    return pe.proto
  end
  if what < 0 or what > 255 then
    argerror(1, "protocol", "integer in 0..255 expected, got " .. what)
  end
  local pe, msg, ename = uv.getprotobynumber(what)
  if not pe then return uv_fail(msg, ename) end
  return pe.name
end

-- }}}

return net
