--[[
redis_client.lua: a small Redis (RESP2) client, usable as a module and as
a command-line tool.

  usage: luahost scripts/redis_client.lua [-h host] [-p port] command [arg...]
         (defaults: 127.0.0.1 6379), e.g. ... set greeting hello
         luahost scripts/redis_client.lua [-h host] [-p port] --demo
  as a module (with scripts/ on package.path):
    local redis = require "redis_client"
    local db = assert(redis.connect("127.0.0.1", 6379))
    db:call("SET", "k", "v")          --> "OK"
    db:call("GET", "k")               --> "v"
    db:pipeline{{"INCR", "n"}, {"INCR", "n"}} --> {1, 2}
    db:close()

Replies map to Lua values: simple strings and bulk strings to strings,
integers to integers, arrays to tables, the null bulk string or array to
redis.null (a unique value), errors to nil, "ERR message". Network
failures are nil, err as well (err "closed", "timeout", ...).
]]
local net = require "net"

local M = {}
M.null = setmetatable({}, {__tostring = function() return "(nil)" end})

local Client = {}
Client.__index = Client
Client.__name = "redis_client"

local MAX_DEPTH = 16 -- nested arrays
local MAX_BULK = 512 * 1024 * 1024 -- a bulk string (Redis's own limit)

--- Connect; opts.timeout (seconds) bounds the connect and every reply.
function M.connect(host, port, opts)
  opts = opts or {}
  local conn, err = net.connect(host or "127.0.0.1", port or 6379,
    {timeout = opts.timeout or 10})
  if not conn then return nil, err end
  conn:settimeout(opts.timeout or 10)
  return setmetatable({conn = conn}, Client)
end

-- One command in RESP: an array of bulk strings.
local function encode(args)
  local out = {"*" .. #args .. "\r\n"}
  for _, a in ipairs(args) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(out)
end
M.encode = encode

-- Read one reply. Returns ok, value: ok false means a network or protocol
-- failure (value is the reason); a Redis error reply is ok with an error
-- marker {err = "..."} so that pipelines keep their positions.
local function read_reply(conn, depth)
  local line, err = conn:read("l")
  if not line then return false, err end
  line = line:gsub("\r$", "")
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return true, rest end
  if kind == "-" then return true, {err = rest} end
  if kind == ":" then
    local n = math.tointeger(tonumber(rest))
    if not n then return false, "protocol error: bad integer" end
    return true, n
  end
  if kind == "$" then
    local len = math.tointeger(tonumber(rest))
    -- (len + 2 below must not wrap around)
    if not len or len > MAX_BULK then
      return false, "protocol error: bad length"
    end
    if len < 0 then return true, M.null end
    local s, rerr = conn:read(len + 2)
    if not s or #s < len + 2 then return false, rerr or "closed" end
    return true, s:sub(1, len)
  end
  if kind == "*" then
    local n = math.tointeger(tonumber(rest))
    if not n then return false, "protocol error: bad length" end
    if n < 0 then return true, M.null end
    if depth >= MAX_DEPTH then return false, "protocol error: too deep" end
    local list = {}
    for i = 1, n do
      local ok, v = read_reply(conn, depth + 1)
      if not ok then return false, v end
      list[i] = v
    end
    return true, list
  end
  return false, "protocol error: unexpected " .. ("%q"):format(kind)
end

-- Turn error markers into nil, message (at the top level only).
local function result(ok, v)
  if not ok then return nil, v end
  if type(v) == "table" and v.err then return nil, v.err end
  return v
end

--- Send one command and wait for its reply.
function Client:call(...)
  local ok, err = self.conn:write(encode({...}))
  if not ok then return nil, err end
  return result(read_reply(self.conn, 0))
end

--- Send many commands at once, then read all the replies: a list of
--- values, with {err = "..."} in place of each error reply.
function Client:pipeline(commands)
  local out = {}
  for i, c in ipairs(commands) do out[i] = encode(c) end
  local ok, err = self.conn:write(table.concat(out))
  if not ok then return nil, err end
  local replies = {}
  for i = 1, #commands do
    local rok, v = read_reply(self.conn, 0)
    if not rok then return nil, v end
    replies[i] = v
  end
  return replies
end

function Client:close()
  self.conn:close()
end
Client.__close = Client.close

-- A reply the way redis-cli prints it.
local function format(v, indent)
  indent = indent or ""
  if v == M.null then return "(nil)" end
  if type(v) == "number" then return "(integer) " .. v end
  if type(v) == "string" then
    return (("%q"):format(v):gsub("\\\n", "\\n"))
  end
  if v.err then return "(error) " .. v.err end
  if #v == 0 then return "(empty array)" end
  local lines = {}
  for i, item in ipairs(v) do
    lines[i] = ("%s%d) %s"):format(i == 1 and "" or indent, i,
      format(item, indent .. "   "))
  end
  return table.concat(lines, "\n")
end
M.format = format

-- Used as a module (require "redis_client"), not run as the script: stop.
if ... == "redis_client" or not (arg and arg[0] and
                                 arg[0]:find("redis_client%.lua$")) then
  return M
end

-- {================================================================
-- The command-line tool
-- =================================================================

local host, port, words = "127.0.0.1", 6379, {}
do
  local i = 1
  while arg[i] do
    if (arg[i] == "-h" or arg[i] == "-p") and arg[i + 1] and #words == 0 then
      if arg[i] == "-h" then
        host = arg[i + 1]
      else
        port = tonumber(arg[i + 1])
      end
      i = i + 2
    else
      words[#words + 1] = arg[i]
      i = i + 1
    end
  end
end
if #words == 0 or not port then
  io.stderr:write("usage: redis_client.lua [-h host] [-p port] " ..
    "command [arg...] | --demo\n")
  os.exit(2)
end

local db, err = M.connect(host, port)
if not db then
  io.stderr:write("redis_client: ", host, ":", port, ": ", err, "\n")
  os.exit(1)
end

if words[1] == "--demo" then
  -- A tour: plain calls, an error reply, and a pipeline of 100 commands
  -- in one write.
  print("SET demo:greeting hello ->", format(db:call("SET", "demo:greeting",
    "hello")))
  print("GET demo:greeting ->", format(db:call("GET", "demo:greeting")))
  print("DEL demo:counter ->", format(db:call("DEL", "demo:counter")))
  local _, e = db:call("NOSUCHCOMMAND")
  print("NOSUCHCOMMAND ->", "(error) " .. tostring(e))
  local batch = {}
  for i = 1, 100 do batch[i] = {"INCR", "demo:counter"} end
  local replies = assert(db:pipeline(batch))
  print("100 x INCR demo:counter (pipelined) -> last", format(replies[100]))
  print("DEL demo:greeting demo:counter ->",
    format(db:call("DEL", "demo:greeting", "demo:counter")))
  db:close()
  return
end

-- One command, its reply printed as redis-cli does (errors included).
local replies, perr = db:pipeline{words}
db:close()
if not replies then
  io.stderr:write("redis_client: ", perr, "\n")
  os.exit(1)
end
print(format(replies[1]))
if type(replies[1]) == "table" and replies[1].err then os.exit(1) end
