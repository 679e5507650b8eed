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
]]
local net = require "net"
local task = require "task"

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2] or 6379)

local MAX_ARGS = 1024 * 1024        -- elements in one request
local MAX_BULK = 64 * 1024 * 1024   -- bytes in one argument
local MAX_INLINE = 64 * 1024        -- bytes in an inline command line
local IDLE = 300                    -- seconds a client may stay silent

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
-- The glob is cut at each "*" into pieces that match a fixed number of
-- characters (Lua patterns without repetition); the first piece must match
-- at the start, the last at the end, the others are found left to right.
-- That takes time linear in the key whatever the glob: as one Lua pattern,
-- "*a*a*a...*b" backtracks exponentially and one KEYS would stall every
-- client. A malformed set matches nothing.
local function glob(pattern)
  local pieces, cur, i = {}, {}, 1
  while i <= #pattern do
    local c = pattern:sub(i, i)
    if c == "*" then
      pieces[#pieces + 1] = table.concat(cur)
      cur = {}
    elseif c == "?" then cur[#cur + 1] = "."
    elseif c == "\\" and i < #pattern then
      i = i + 1
      c = pattern:sub(i, i)
      cur[#cur + 1] = c:match("%w") and c or "%" .. c -- (%a is a class)
    elseif c == "[" then
      local close = pattern:find("]", i + 2, true)
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
    i = i + 1
  end
  pieces[#pieces + 1] = table.concat(cur)
  local n = #pieces
  local function match(key)
    if n == 1 then return key:find("^" .. pieces[1] .. "$") ~= nil end
    local _, e = key:find("^" .. pieces[1])
    if not e then return false end
    for k = 2, n - 1 do
      _, e = key:find(pieces[k], e + 1)
      if not e then return false end
    end
    return key:find(pieces[n] .. "$", e + 1) ~= nil
  end
  return function(key)
    local ok, found = pcall(match, key)
    return ok and found
  end
end

local function incr_by(key, delta)
  local v = get(key) or "0"
  local n = v:match("^%-?%d+$") and math.tointeger(tonumber(v))
  if not n or #v > 20 then return NOT_INT end
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
  local ttl, nx, xx
  local i = 4
  while i <= #a do
    local opt = a[i]:upper()
    if (opt == "EX" or opt == "PX") and a[i + 1] and not ttl then
      local n = math.tointeger(tonumber(a[i + 1]))
      if not n or n <= 0 then
        return err("ERR invalid expire time in 'set' command")
      end
      ttl = opt == "EX" and n or n / 1000
      i = i + 2
    elseif opt == "NX" and not xx then nx, i = true, i + 1
    elseif opt == "XX" and not nx then xx, i = true, i + 1
    else return SYNTAX end
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
  local n = math.tointeger(tonumber(a[3]))
  if not n then return NOT_INT end
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
  return int(math.floor(at - task.now() + 0.5)) -- rounded, as Redis does
end}

commands.keys = {2, function(a)
  local match, list = glob(a[2]), {}
  for key in pairs(data) do
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

-- The reply to one request (a list of strings), checked for arity.
local function execute(a)
  local name = a[1]:lower()
  local cmd = commands[name]
  if not cmd then
    local rest = {}
    for i = 2, math.min(#a, 10) do rest[#rest + 1] = "'" .. a[i] .. "'" end
    return err(("ERR unknown command '%s', with args beginning with: %s")
      :format(a[1], table.concat(rest, " ")))
  end
  local arity = cmd[1]
  if (arity > 0 and #a ~= arity) or (arity < 0 and #a < -arity) then
    return err(("ERR wrong number of arguments for '%s' command")
      :format(name))
  end
  return cmd[2](a) or err(("ERR wrong number of arguments for '%s' command")
    :format(name))
end

-- }================================================================

-- {================================================================
-- The protocol
-- =================================================================

-- Read one request: a list of strings, or nil, why. `why` is a protocol
-- error text (to send before closing) or a network error.
local function read_request(conn)
  local line, e = conn:read("l")
  if e == "line too long" then return nil, "Protocol error: too big inline" end
  if not line then return nil, e end
  line = line:gsub("\r$", "")
  if line:sub(1, 1) ~= "*" then -- an inline command
    local a = {}
    for word in line:gmatch("%S+") do a[#a + 1] = word end
    return a
  end
  local n = math.tointeger(tonumber(line:sub(2)))
  if not n or n > MAX_ARGS then
    return nil, "Protocol error: invalid multibulk length"
  end
  local a = {}
  for i = 1, n do
    line, e = conn:read("l")
    if not line then return nil, e end
    local len = line:match("^%$(%d+)\r?$")
    len = len and tonumber(len)
    if not len or len > MAX_BULK then
      return nil, "Protocol error: invalid bulk length"
    end
    local s = conn:read(len + 2) -- the value and its CRLF
    if not s or #s < len + 2 then return nil, "closed" end
    if s:sub(-2) ~= "\r\n" then return nil, "Protocol error: bad bulk" end
    a[i] = s:sub(1, len)
  end
  return a
end

local function client(conn)
  while true do
    local a, why = read_request(conn)
    if not a then
      if why and why:find("^Protocol error") then
        conn:write(err("ERR " .. why))
      end
      break
    end
    if #a > 0 then -- an empty line or "*0" asks nothing
      if not conn:write(execute(a)) then break end
      if a[1]:lower() == "quit" then break end
    end
  end
  conn:close()
end

-- }================================================================

local server = assert(net.listen{host = host, port = port,
  max_line = MAX_INLINE, idle_timeout = IDLE})
local ip, bound = server:sockname()
if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end -- IPv6
print(("listening on %s:%d"):format(ip, bound))
io.stdout:flush()
server:serve(client)
