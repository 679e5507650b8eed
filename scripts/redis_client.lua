--[[
redis_client.lua: run one Redis command and print its reply as redis-cli
does, on the redis module (require "redis", docs/redis.md).

  usage: luahost scripts/redis_client.lua [-h host] [-p port] command [arg...]
         (defaults: 127.0.0.1 6379), e.g. ... set greeting hello
         luahost scripts/redis_client.lua [-h host] [-p port] --demo

Exit status: 0, or 1 for an error reply or a failure (with a message).
]]
local redis = require "redis"

-- A reply the way redis-cli prints it.
local function format(v, indent)
  indent = indent or ""
  if v == redis.null then return "(nil)" end
  if math.type(v) == "integer" then return "(integer) " .. v end
  if type(v) == "string" then
    return (("%q"):format(v):gsub("\\\n", "\\n"))
  end
  if redis.is_error(v) then return "(error) " .. v.err end
  if #v == 0 then return "(empty array)" end
  local lines = {}
  for i, item in ipairs(v) do
    lines[i] = ("%s%d) %s"):format(i == 1 and "" or indent, i,
      format(item, indent .. "   "))
  end
  return table.concat(lines, "\n")
end

local function fail(...)
  io.stderr:write("redis_client: ", ...)
  io.stderr:write("\n")
  os.exit(1)
end

local host, port, words = "127.0.0.1", 6379, {}
local i = 1
while arg[i] do
  if (arg[i] == "-h" or arg[i] == "-p") and arg[i + 1] and #words == 0 then
    if arg[i] == "-h" then host = arg[i + 1]
    else port = tonumber(arg[i + 1]) end
    i = i + 2
  else
    words[#words + 1] = arg[i]
    i = i + 1
  end
end
if #words == 0 or not math.tointeger(port) then
  io.stderr:write("usage: redis_client.lua [-h host] [-p port] " ..
    "command [arg...] | --demo\n")
  os.exit(2)
end

local db <close>, err = redis.connect(host, math.tointeger(port))
if not db then fail(host, ":", port, ": ", err) end

if words[1] == "--demo" then
  -- A tour: plain calls, commands as methods, an error reply, and a
  -- pipeline of 100 commands in one write.
  print("SET demo:greeting hello ->", format(db:set("demo:greeting", "hello")))
  print("GET demo:greeting ->", format(db:get("demo:greeting")))
  print("DEL demo:counter ->", format(db:del("demo:counter")))
  local _, e = db:call("NOSUCHCOMMAND")
  print("NOSUCHCOMMAND ->", "(error) " .. tostring(e))
  local replies = assert(db:pipeline(function(p)
    for _ = 1, 100 do p:incr("demo:counter") end
  end))
  print("100 x INCR demo:counter (pipelined) -> last", format(replies[100]))
  print("DEL demo:greeting demo:counter ->",
    format(db:del("demo:greeting", "demo:counter")))
  return
end

-- One command (in a pipeline: an error reply comes back as a value).
local replies, perr = db:pipeline{words}
if not replies then fail(perr) end
print(format(replies[1]))
if redis.is_error(replies[1]) then os.exit(1) end
