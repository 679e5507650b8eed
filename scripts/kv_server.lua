--[[
kv_server.lua: an in-memory key-value server that speaks the Redis protocol
(RESP2), so redis-cli, redis-benchmark and Redis client libraries work with
it.

  usage: luahost scripts/kv_server.lua [host] [port]
         (defaults: 127.0.0.1 6379; port 0 picks a free port)
  try:   redis-cli -p 6379 set greeting hello; redis-cli -p 6379 get greeting

It prints "listening on HOST:PORT" once it is ready.

Commands: PING [msg], ECHO msg, GET key, SET key value [EX s|PX ms] [NX|XX],
DEL key..., EXISTS key..., INCR key, DECR key, EXPIRE key s, TTL key,
KEYS pattern, DBSIZE, FLUSHALL, QUIT (and CONFIG GET, which redis-benchmark
asks). Requests may be pipelined; "inline" commands (plain words on a line,
as typed into nc) work too. Keys with a time to live vanish when it passes
(checked on access, as Redis does lazily).

Limits against hostile clients (environment variables override the last
two): an argument of at most 1 MiB, a request of at most 64 MiB in all
(KV_MAX_REQUEST), a request must arrive whole within 10 s of the moment
the server starts waiting for its rest (KV_REQUEST_TIMEOUT; then the
connection is closed), a client silent for 300 s is dropped, a KEYS
pattern is at most 128 bytes, and an error reply quotes at most a few
bytes of what the client sent.
]]
local net = require "net"
local task = require "task"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 6379))
if not port or port < 0 or port > 65535 then
  io.stderr:write("usage: kv_server.lua [host] [port] (port: 0..65535)\n")
  os.exit(2)
end

local MAX_ARGS = 1024 * 1024        -- elements in one request
local MAX_BULK = 1024 * 1024        -- bytes in one argument
-- bytes in one whole request, each element counted with ELEMENT more for
-- what it costs to keep (Redis's ratio: proto-max-bulk-len 512 MiB,
-- client-query-buffer-limit 1 GiB; here 1 MiB and 64 MiB)
local MAX_REQUEST = tonumber(os.getenv("KV_MAX_REQUEST")) or 64 * 1024 * 1024
local ELEMENT = 32
local MAX_INLINE = 64 * 1024        -- bytes in an inline command line
local IDLE = 300                    -- seconds a client may stay silent
-- seconds a request may take to arrive once its first bytes are here
local REQUEST_TIMEOUT = tonumber(os.getenv("KV_REQUEST_TIMEOUT")) or 10
local MAX_GLOB = 128                -- bytes in a KEYS pattern (see glob)
-- seconds of time to live at most (Redis: what fits in 64-bit ms); past
-- 2^53 ms float arithmetic would lose the second
local MAX_TTL = 1e15
local QUOTE = 32                    -- bytes of a client's word in an error

local data = {}    -- key -> string value
local expires = {} -- key -> time (task.now() seconds) it dies at

-- {================================================================
-- Replies
-- =================================================================

local function simple(s) return "+" .. s .. "\r\n" end
-- (an error may quote the client's words: CR and LF become spaces, as in
-- Redis, or a client could forge replies of its own)
local function err(s) return "-" .. s:gsub("[\r\n]", " ") .. "\r\n" end
local function int(n) return (":%d\r\n"):format(n) end
local function bulk(s)
  if s == nil then return "$-1\r\n" end
  return "$" .. #s .. "\r\n" .. s .. "\r\n"
end
local function array(list)
  local out = {"*" .. #list .. "\r\n"}
  for i, s in ipairs(list) do out[i + 1] = bulk(s) end
  return table.concat(out)
end

local OK = simple("OK")
local SYNTAX = err("ERR syntax error")
local NOT_INT = err("ERR value is not an integer or out of range")

-- }================================================================

-- {================================================================
-- The key space
-- =================================================================

-- The live value of key (expired keys are deleted on the way).
local function get(key)
  local at = expires[key]
  if at and at <= task.now() then
    data[key], expires[key] = nil, nil
  end
  return data[key]
end

-- A Redis glob (*, ?, [abc], [^a-z], \x) as a matcher: key -> boolean.
-- It is compiled in one pass, in time linear in its length (a run of "*"
-- counts as one), into pieces cut at each "*", each a Lua pattern without
-- repetition that matches a fixed number of characters. A key shorter
-- than all the pieces together is refused at once; the first piece must
-- match at the start and the last at the end (both at fixed places), the
-- others are found left to right (the leftmost place is always a right
-- one). A key then costs at most its length times the glob's (MAX_GLOB
-- bounds that), never the backtracking of "*a*a*a...*b" as one Lua
-- pattern. A malformed set matches nothing.
local function glob(pattern)
  local pieces, widths, cur, w = {}, {}, {}, 0
  local i, len, close, star = 1, #pattern, nil, false
  local function cut()
    pieces[#pieces + 1], widths[#widths + 1] = table.concat(cur), w
    cur, w = {}, 0
  end
  while i <= len do
    local c = pattern:sub(i, i)
    if c == "*" then
      if not star then cut() end -- ("a**b" is "a*b")
      star = true
    else
      star = false
      w = w + 1
      if c == "?" then cur[#cur + 1] = "."
      elseif c == "\\" and i < len then
        i = i + 1
        c = pattern:sub(i, i)
        cur[#cur + 1] = c:match("%w") and c or "%" .. c -- (%a is a class)
      elseif c == "[" then
        -- the next "]" is found once for all the "[" before it: a glob
        -- of "[[[[..." must not search the rest for each
        if close ~= false and (not close or close < i + 2) then
          close = pattern:find("]", i + 2, true) or false
        end
        if not close then
          cur[#cur + 1] = "%["
        else
          -- a Lua set reads like a glob set; only % needs escaping
          local set = pattern:sub(i + 1, close - 1):gsub("%%", "%%%%")
          cur[#cur + 1] = "[" .. set .. "]"
          i = close
        end
      elseif c:match("%p") then cur[#cur + 1] = "%" .. c
      else cur[#cur + 1] = c end
    end
    i = i + 1
  end
  cut()
  local n, need = #pieces, 0
  for k = 1, n do need = need + widths[k] end
  local first, last = "^" .. pieces[1], "^" .. pieces[n]
  local whole, wlast = first .. "$", widths[n]
  local function match(key)
    local klen = #key
    if klen < need then return false end
    if n == 1 then return klen == need and key:find(whole) ~= nil end
    local at = klen - wlast + 1 -- where the last piece must start
    if not key:find(last, at) then return false end
    local _, e = key:find(first)
    if not e then return false end
    for k = 2, n - 1 do
      _, e = key:find(pieces[k], e + 1)
      if not e or e >= at then return false end
    end
    return true
  end
  return function(key)
    local ok, found = pcall(match, key)
    return ok and found
  end
end

-- An integer as Redis reads one (string2ll): optional "-", no "+", no
-- blanks, no leading zeros, no exponent, within 64 bits; else nil.
local function strict_int(v)
  if not (v == "0" or v:match("^%-?[1-9]%d*$")) or #v > 20 then
    return nil
  end
  local n = math.tointeger(tonumber(v))
  -- (past 64 bits tonumber gives a float: tointeger refuses it)
  if n and tostring(n) ~= v then return nil end
  return n
end

local function incr_by(key, delta)
  local v = get(key) or "0"
  local n = strict_int(v)
  if not n then return NOT_INT end
  if (delta > 0 and n > math.maxinteger - delta) or
     (delta < 0 and n < math.mininteger - delta) then
    return err("ERR increment or decrement would overflow")
  end
  n = n + delta
  data[key] = tostring(n)
  return int(n)
end

-- }================================================================

-- {================================================================
-- Commands: name -> {arity, function(args) -> reply}; arity as Redis
-- counts it (the name included; -n means at least n)
-- =================================================================

local commands = {}

commands.ping = {-1, function(a)
  if #a > 2 then return nil end
  return a[2] and bulk(a[2]) or simple("PONG")
end}

commands.echo = {2, function(a) return bulk(a[2]) end}

commands.get = {2, function(a) return bulk(get(a[2])) end}

commands.set = {-3, function(a)
  local key, value = a[2], a[3]
  local ttl, unit, given, nx, xx
  local i = 4
  -- (as Redis: EX or PX again replaces the value, the last one is read
  -- once all options are; EX with PX is a syntax error)
  while i <= #a do
    local opt = a[i]:upper()
    if (opt == "EX" or opt == "PX") and a[i + 1] and
      (unit == nil or unit == opt) then
      unit, given, i = opt, a[i + 1], i + 2
    elseif opt == "NX" and not xx then nx, i = true, i + 1
    elseif opt == "XX" and not nx then xx, i = true, i + 1
    else return SYNTAX end
  end
  if given then
    local n = strict_int(given)
    if not n then return NOT_INT end
    ttl = unit == "EX" and n or n / 1000
    if n <= 0 or ttl > MAX_TTL then
      return err("ERR invalid expire time in 'set' command")
    end
  end
  local exists = get(key) ~= nil
  if (nx and exists) or (xx and not exists) then return bulk(nil) end
  data[key] = value
  expires[key] = ttl and task.now() + ttl or nil
  return OK
end}

commands.del = {-2, function(a)
  local n = 0
  for i = 2, #a do
    if get(a[i]) ~= nil then
      data[a[i]], expires[a[i]] = nil, nil
      n = n + 1
    end
  end
  return int(n)
end}

commands.exists = {-2, function(a)
  local n = 0
  for i = 2, #a do
    if get(a[i]) ~= nil then n = n + 1 end
  end
  return int(n)
end}

commands.incr = {2, function(a) return incr_by(a[2], 1) end}
commands.decr = {2, function(a) return incr_by(a[2], -1) end}

commands.expire = {3, function(a)
  local n = strict_int(a[3])
  if not n then return NOT_INT end
  -- (as Redis: a time that cannot be is refused before the key is
  -- looked at; now + n must stay a float that counts seconds)
  if n > MAX_TTL then
    return err("ERR invalid expire time in 'expire' command")
  end
  if get(a[2]) == nil then return int(0) end
  if n <= 0 then
    data[a[2]], expires[a[2]] = nil, nil
  else
    expires[a[2]] = task.now() + n
  end
  return int(1)
end}

commands.ttl = {2, function(a)
  if get(a[2]) == nil then return int(-2) end
  local at = expires[a[2]]
  if not at then return int(-1) end
  -- rounded, as Redis does (at - now < MAX_TTL + 1: an integer)
  return int(math.floor(at - task.now() + 0.5))
end}

local TOO_LONG = err("ERR pattern too long")

-- (the keys are listed first and matched in slices, with other clients
-- served in between: a big key space takes its time, it stalls no one)
local SLICE = 1 << 22 -- key bytes times glob length between two yields
commands.keys = {2, function(a)
  local pattern = a[2]
  if #pattern > MAX_GLOB then return TOO_LONG end
  local match, all, list = glob(pattern), {}, {}
  for key in pairs(data) do all[#all + 1] = key end
  local work, cost = 0, #pattern + 1
  for _, key in ipairs(all) do
    work = work + (#key + 16) * cost
    if work > SLICE then
      task.yield()
      work = 0
    end
    if get(key) ~= nil and match(key) then list[#list + 1] = key end
  end
  table.sort(list)
  return array(list)
end}

commands.dbsize = {1, function()
  local n = 0
  for key in pairs(data) do
    if get(key) ~= nil then n = n + 1 end
  end
  return int(n)
end}

commands.flushall = {-1, function()
  data, expires = {}, {}
  return OK
end}

commands.config = {-2, function(a)
  if a[2]:upper() ~= "GET" or #a ~= 3 then
    return err("ERR unsupported CONFIG subcommand")
  end
  if #a[3] > MAX_GLOB then return TOO_LONG end
  local known = {save = "", appendonly = "no"}
  local list = {}
  for name, value in pairs(known) do
    if glob(a[3])(name) then
      list[#list + 1] = name
      list[#list + 1] = value
    end
  end
  return array(list)
end}

commands.quit = {1, function() return OK end}

-- A command's name in lower case (a bounded memo: clients send the same
-- few names again and again).
local names, nnames = {}, 0
local function command_name(s)
  local name = names[s]
  if not name then
    name = s:lower()
    if nnames >= 256 then names, nnames = {}, 0 end
    names[s], nnames = name, nnames + 1
  end
  return name
end

-- At most QUOTE bytes of a client's word, for an error reply.
local function quote(s)
  if #s <= QUOTE then return s end
  return s:sub(1, QUOTE) .. "..."
end

-- The reply to one request (a list of strings), checked for arity; and
-- the command's name when it is known.
local function execute(a)
  local name = command_name(a[1])
  local cmd = commands[name]
  if not cmd then -- (quoting a few bytes of each of a few words)
    local rest = {}
    for i = 2, math.min(#a, 4) do
      rest[#rest + 1] = "'" .. quote(a[i]) .. "'"
    end
    return err(("ERR unknown command '%s', with args beginning with: %s")
      :format(quote(a[1]), table.concat(rest, " ")))
  end
  local arity = cmd[1]
  if (arity > 0 and #a ~= arity) or (arity < 0 and #a < -arity) then
    return err(("ERR wrong number of arguments for '%s' command")
      :format(name))
  end
  return cmd[2](a) or err(("ERR wrong number of arguments for '%s' command")
    :format(name)), name
end

-- }================================================================

-- {================================================================
-- The protocol
-- =================================================================

-- Requests are parsed from the input already received (a whole
-- pipelined batch at a time); the connection batches the replies
-- (conn:setvbuf "full"): they leave together before the server waits for
-- more input, one write per batch, not per reply.

local find, sub, byte = string.find, string.sub, string.byte
local concat = table.concat

local OUT_MAX = 64 * 1024 -- bytes of replies batched before a write
local FAST_ARGS = 64      -- longer requests take the general path

-- A client: {conn =, buf = input, pos = first unread byte of buf,
-- args = the request table the fast path reuses, nargs = slots of it
-- that may be set, due = the deadline of the request being read or
-- false}. Its replies are batched by the connection (setvbuf "full"):
-- sent before a read waits, or once OUT_MAX bytes are batched (then the
-- write waits while the client does not read).
local function new_client(conn)
  conn:setvbuf("full", OUT_MAX)
  return {conn = conn, buf = "", pos = 1, args = {}, nargs = 0,
    due = false}
end

local function send(c, s)
  return c.conn:write(s)
end

-- The next chunk of input, or nil, err. Inside a request (busy) its
-- deadline bounds the wait: a request dripped a byte at a time is dropped
-- REQUEST_TIMEOUT seconds after the server first waited for its rest
-- ("request timeout"); between requests only IDLE does.
local function recv(c, busy)
  if not busy then return c.conn:recv() end
  local due = c.due
  if not due then
    due = task.now() + REQUEST_TIMEOUT
    c.due = due
  end
  local left = due - task.now()
  if left <= 0 then return nil, "request timeout" end
  if left >= IDLE then return c.conn:recv() end
  c.conn:settimeout(left)
  local input, e = c.conn:recv()
  c.conn:settimeout(IDLE)
  if e == "timeout" then e = "request timeout" end
  return input, e
end

-- More input (the batched replies leave first); nil, err at its end.
local function fill(c, busy)
  local buf, pos = c.buf, c.pos
  if pos > #buf then -- (an idle connection holds no input)
    buf, pos = "", 1
    c.buf, c.pos = buf, pos
  end
  local input, e = recv(c, busy)
  if not input then return nil, e end
  if pos > #buf then
    c.buf = input
  else
    c.buf = sub(buf, pos) .. input
  end
  c.pos = 1
  return true
end

-- The next line as a string without CR LF; nil, "line too long" past
-- MAX_INLINE, or nil, err. At the end of input the last partial line
-- counts, as read("l") gives it.
local function read_line(c)
  while true do
    local buf, pos = c.buf, c.pos
    local e = find(buf, "\n", pos, true)
    if e then
      c.pos = e + 1
      if e - pos > MAX_INLINE then return nil, "line too long" end
      e = e - 1
      if e >= pos and byte(buf, e) == 13 then e = e - 1 end
      return sub(buf, pos, e)
    end
    local len = #buf
    if len - pos + 1 > MAX_INLINE then
      c.pos = len + 1
      return nil, "line too long"
    end
    local ok, why = fill(c, true)
    if not ok then
      if pos > len or why == "request timeout" then return nil, why end
      c.pos = len + 1
      if byte(buf, len) == 13 then len = len - 1 end
      return sub(buf, pos, len)
    end
  end
end

-- The next n bytes, or nil, err when the input ends first (what follows
-- them stays in c.buf).
local function read_bytes(c, n)
  local buf, pos = c.buf, c.pos
  local have = #buf - pos + 1
  if have >= n then
    c.pos = pos + n
    return sub(buf, pos, pos + n - 1)
  end
  local parts = {have > 0 and sub(buf, pos) or ""}
  c.buf, c.pos = "", 1
  while have < n do
    local input, e = recv(c, true)
    if not input then return nil, e end
    local want = n - have
    if #input > want then -- the start of the next request
      c.buf = sub(input, want + 1)
      input = sub(input, 1, want)
    end
    parts[#parts + 1] = input
    have = have + #input
  end
  return concat(parts)
end

-- Read one request (the general path: any size, any split, inline
-- commands, errors): a list of strings, or nil, why. `why` is a protocol
-- error text (to send before closing) or a network error.
local function read_request_slow(c)
  local line, e = read_line(c)
  if e == "line too long" then return nil, "Protocol error: too big inline" end
  if not line then return nil, e end
  if line:sub(1, 1) ~= "*" then -- an inline command
    local a = {}
    for word in line:gmatch("%S+") do a[#a + 1] = word end
    return a
  end
  local n = math.tointeger(tonumber(line:sub(2)))
  if not n or n > MAX_ARGS then
    return nil, "Protocol error: invalid multibulk length"
  end
  local a, total = {}, 0
  for i = 1, n do
    line, e = read_line(c)
    if not line then return nil, e end
    local len = line:match("^%$(%d+)$")
    len = len and tonumber(len)
    if not len or len > MAX_BULK then
      return nil, "Protocol error: invalid bulk length"
    end
    total = total + len + ELEMENT
    if total > MAX_REQUEST then -- checked before the bytes are taken in
      return nil, "Protocol error: request too large"
    end
    local s
    s, e = read_bytes(c, len + 2) -- the value and its CRLF
    if not s then return nil, e end
    if s:sub(-2) ~= "\r\n" then return nil, "Protocol error: bad bulk" end
    a[i] = s:sub(1, len)
  end
  return a
end

-- The count and length lines seen: "*n\r" -> n, "\r\n$n\r" -> -1 - n (a
-- bounded memo: the fast path then needs no pattern and no tonumber);
-- nil for anything else (the general path reads it).
local ncounts = 0
local counts = setmetatable({}, {__index = function(t, line)
  local kind, digits = line:match("^([*])(%d+)\r$")
  if not kind then kind, digits = line:match("^\r\n([$])(%d+)\r$") end
  local n = digits and #digits <= 9 and tonumber(digits)
  if not n or (kind == "$" and n > MAX_BULK) then return nil end
  if kind == "$" then n = -1 - n end
  if ncounts >= 1024 then
    for k in pairs(t) do t[k] = nil end
    ncounts = 0
  end
  t[line], ncounts = n, ncounts + 1
  return n
end})

-- Read one request: a list of strings, or nil, why (as
-- read_request_slow). A whole multibulk request already received is cut
-- out of the input here, into c.args (reused: a command must not keep
-- it); anything else goes the general way.
local function read_request(c)
  local buf, pos = c.buf, c.pos
  c.due = false -- (a new request: its deadline starts when it waits)
  if pos > #buf then
    local ok, e = fill(c)
    if not ok then return nil, e end
    buf, pos = c.buf, c.pos
  end
  -- Each line "*n" or "$n" is looked up in a memo of those seen; the
  -- key of "$n" starts with the CR LF ending what comes before it, so
  -- one look-up checks both.
  local e = find(buf, "\n", pos, true)
  local n = e and e - pos <= 12 and counts[sub(buf, pos, e - 1)]
  if n and n > 0 and n <= FAST_ARGS then
    local a, p = c.args, e - 1
    if n > c.nargs then c.nargs = n end
    for i = 1, n do
      e = find(buf, "\n", p + 2, true)
      local len = e and e - p <= 14 and counts[sub(buf, p, e - 1)]
      if not len or len >= 0 then n = nil break end
      p = e + (-1 - len) + 1 -- just after the value
      a[i] = sub(buf, e + 1, p - 1)
    end
    local cr, lf = byte(buf, p, p + 1)
    if n and cr == 13 and lf == 10 then
      for i = n + 1, c.nargs do a[i] = nil end
      c.nargs = n
      c.pos = p + 2
      return a
    end
  end
  return read_request_slow(c)
end

-- A failing command must not take its client down nor print a
-- traceback per request (one client could flood the log): it answers an
-- error, and one line a second at most goes to stderr.
local logged = -math.huge
local function run(a)
  local ok, reply, name = pcall(execute, a)
  if ok then return reply, name end
  if task.now() - logged >= 1 then
    logged = task.now()
    io.stderr:write("kv_server: ", tostring(reply):sub(1, 200), "\n")
  end
  return err("ERR internal error")
end

local function client(conn)
  local c = new_client(conn)
  while true do
    local a, why = read_request(c)
    if not a then
      if why and why:find("^Protocol error") then
        send(c, err("ERR " .. why))
      end
      break
    end
    if #a > 0 then -- an empty line or "*0" asks nothing
      local reply, name = run(a)
      if not send(c, reply) or name == "quit" then break end
    end
  end
  conn:close()
end

-- }================================================================

local server = net.assert(net.listen{host = host, port = port,
  max_line = MAX_INLINE, idle_timeout = IDLE})
local ip, bound = server:sockname()
if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end -- IPv6
print(("listening on %s:%d"):format(ip, bound))
io.stdout:flush()
server:serve(client)
