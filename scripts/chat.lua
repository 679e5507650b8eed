--[[
chat.lua: a line-based chat room. Each client picks a nickname, then every
line it sends goes to everyone else as "nick: line".

  usage: luahost scripts/chat.lua [host] [port]
         (defaults: 127.0.0.1 7001; port 0 picks a free port)
  try:   socat - TCP:127.0.0.1:7001   (in two terminals)

It prints "listening on HOST:PORT" once it is ready. Commands: /who lists
the room, /quit leaves.

A client that stops reading must not stall the room: a task writing to it
would block. So messages are never written by the sender's task: each
client has its own queue, drained by its own writer task (started when
the queue fills, ending when it is empty), and a client whose queue grows
past MAX_PENDING bytes is disconnected as too slow.
]]
local net = require "net"
local task = require "task"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 7001))
if not port or port < 0 or port > 65535 then
  io.stderr:write("usage: chat.lua [host] [port] (port: 0..65535)\n")
  os.exit(2)
end

local MAX_PENDING = 1024 * 1024 -- bytes queued for one client, then it goes
local MAX_NICK = 32
local IDLE = 600 -- seconds a client may stay silent

local clients = {} -- nick -> client

-- The writer of client c: sends what is queued, in one write per batch,
-- and ends when the queue is empty (send starts a new one when needed).
local function writer(c)
  while c.first <= c.last and not c.closed do
    local batch = table.concat(c.queue, "\n", c.first, c.last) .. "\n"
    for i = c.first, c.last do c.queue[i] = nil end
    c.first = c.last + 1
    if not c.conn:write(batch) then -- waits while c is slow
      c.closed = true
      break
    end
    c.pending = c.pending - #batch
  end
  c.writer = nil
end

-- Queue a line for client c; the caller never waits.
local function send(c, line)
  if c.closed then return end
  if c.pending + #line + 1 > MAX_PENDING then
    c.closed = true
    c.conn:close() -- too slow: its writer and its reader end
    return
  end
  c.last = c.last + 1
  c.queue[c.last] = line
  c.pending = c.pending + #line + 1
  if not c.writer then
    c.writer = true -- (the writer may finish before spawn returns)
    local t = task.spawn(writer, c)
    if c.writer then c.writer = t end
  end
end

-- The nicknames in the room, sorted, as one string.
local function who()
  local names = {}
  for n in pairs(clients) do names[#names + 1] = n end
  table.sort(names)
  return table.concat(names, ", ")
end

local function broadcast(from, line)
  for _, c in pairs(clients) do
    if c ~= from then send(c, line) end
  end
end

-- Ask for a nickname until a free, valid one arrives; nil if the client
-- leaves first.
local function ask_nick(conn)
  for _ = 1, 10 do
    conn:write("nick? ")
    local nick = conn:read("l")
    if not nick then return nil end
    nick = nick:gsub("\r$", "")
    if not nick:match("^[%w_%-]+$") or #nick > MAX_NICK then
      conn:write("letters, digits, _ and - only, at most ", MAX_NICK, "\n")
    elseif clients[nick] then
      conn:write(nick, " is taken\n")
    else
      return nick
    end
  end
end

local function session(conn)
  local nick = ask_nick(conn)
  if not nick then return end -- serve closes conn
  local c = {conn = conn, nick = nick, queue = {}, first = 1, last = 0,
             pending = 0}
  clients[nick] = c
  send(c, ("welcome %s; here: %s"):format(nick, who()))
  broadcast(c, "* " .. nick .. " has joined")
  while true do
    local line = conn:read("l") -- nil at the end: closed, timeout, dropped
    if not line then break end
    line = line:gsub("\r$", "")
    if line == "/quit" then break end
    if line == "/who" then
      send(c, "here: " .. who())
    elseif line ~= "" then
      broadcast(c, nick .. ": " .. line)
    end
    if c.closed then break end
  end
  clients[nick] = nil
  broadcast(c, "* " .. nick .. " has left")
  -- let the queued lines out (bounded by the idle timeout), then close
  if type(c.writer) == "table" then c.writer:join() end
  c.closed = true
  conn:close()
end

local server = net.assert(net.listen{host = host, port = port,
  idle_timeout = IDLE})
local ip, bound = server:sockname()
if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end -- IPv6
print(("listening on %s:%d"):format(ip, bound))
io.stdout:flush()
server:serve(session)
