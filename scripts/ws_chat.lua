--[[
ws_chat.lua: a WebSocket chat room on the http module.

  usage: luahost scripts/ws_chat.lua [host] [port]
         (defaults: 127.0.0.1 8090; port 0 picks a free port)
  try:   open http://127.0.0.1:8090/ in two browser tabs, or
         python3 -m websockets ws://127.0.0.1:8090/ws

It prints "chat on http://HOST:PORT/" once it is ready. Every text
message sent to /ws goes to everyone in the room, prefixed with its
sender's number ("3: hello"); arrivals and departures are announced.
A client too slow to take its messages (64 queued) is dropped rather
than slowing the room down. GET / gives a small HTML page that talks to
/ws.
]]
local http = require "http"
local task = require "task"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 8090))
if not port or port < 0 or port > 65535 then
  io.stderr:write("usage: ws_chat.lua [host] [port] (port: 0..65535)\n")
  os.exit(2)
end

local PAGE = [[<!DOCTYPE html>
<title>chat</title>
<pre id="log"></pre>
<form id="f"><input id="m" autofocus size="60"></form>
<script>
const ws = new WebSocket("ws://" + location.host + "/ws");
const log = document.getElementById("log");
ws.onmessage = e => { log.textContent += e.data + "\n"; };
document.getElementById("f").onsubmit = e => {
  e.preventDefault();
  const m = document.getElementById("m");
  ws.send(m.value); m.value = "";
};
</script>
]]

local room, last = {}, 0 -- queue -> {me =, reader =, writer =}

-- Queue a message for everyone. A full queue means a stuck client: it
-- leaves the room at once, its tasks are cancelled (its writer may wait
-- on it; the server closes the connection of a cancelled handler) and
-- the room is told.
local function broadcast(text)
  local dropped = {}
  for q, who in pairs(room) do
    if q:len() >= 64 then
      room[q] = nil
      q:close()
      dropped[#dropped + 1] = who
    else
      q:put(text)
    end
  end
  local myself = false
  for _, who in ipairs(dropped) do
    who.writer:cancel()
    if who.reader == task.current() then myself = true
    else who.reader:cancel() end
    broadcast(who.me .. " dropped (too slow)")
  end
  -- (a stuck client that talks drops itself, last: the cancel of the
  -- running task unwinds it at once)
  if myself then task.current():cancel() end
end

local app = http.router()
app:get("/", function(_, res)
  res:header("Content-Type", "text/html; charset=utf-8")
  res:send(PAGE)
end)
app:get("/ws", function(req, res)
  local ws = http.websocket.accept(req, res, {max_message = 4096})
  if not ws then return end
  last = last + 1
  local me, q = last, task.queue()
  -- the writer: this client's messages, in order, at its own pace
  local writer = task.spawn(function()
    for text in function() return q:get() end do
      if not ws:send(text) then break end
    end
  end)
  room[q] = {me = me, reader = task.current(), writer = writer}
  broadcast(me .. " joined")
  for msg, kind in ws:messages() do
    if not room[q] then return end -- dropped
    if kind == "text" then broadcast(me .. ": " .. msg) end
    -- (the writers run before this client's next message, which may be
    -- buffered already: a fast talker is not a stuck reader)
    task.yield()
  end
  if not room[q] then return end
  room[q] = nil
  q:close()
  writer:join()
  broadcast(me .. " left")
end)

local server = http.assert(http.listen{host = host, port = port,
  handler = app})
local ip, bound = server:sockname()
print(("chat on http://%s:%d/"):format(ip:find(":") and "[" .. ip .. "]"
  or ip, bound))
io.stdout:flush()
