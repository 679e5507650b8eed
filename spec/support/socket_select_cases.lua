-- socket_spec's select comparison, run twice: by lua5.4 with Debian's
-- LuaSocket (the reference) and by luahost with its own socket module.
-- usage: SEED N. A seeded random sequence of N steps on a few sockets of
-- one process (a listening server, clients it accepted, the clients, two
-- udp sockets): sends, receives, connects, accepts, closes, shutdowns,
-- and socket.select on random sets with a timeout of 0 or 0.05; one line
-- a step, sockets named by label.
local socket = require "socket"
local seed, N = tonumber(arg[1]), tonumber(arg[2])
math.randomseed(seed)
local random = math.random

local objs = {} -- socket -> label
local function name(s, label) objs[s] = label end

local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(0.1)
name(srv, "srv")
local _, port = srv:getsockname()
local u1, u2 = assert(socket.udp()), assert(socket.udp())
assert(u1:setsockname("127.0.0.1", 0))
assert(u2:setsockname("127.0.0.1", 0))
local _, p1 = u1:getsockname()
local _, p2 = u2:getsockname()
u1:settimeout(0.1)
u2:settimeout(0.1)
name(u1, "u1")
name(u2, "u2")
local clients, accepted = {}, {} -- live stream endpoints
-- labels whose peer was closed: not sent from (see close); the k-th
-- connection accepted is the k-th made (the kernel's queue is in order)
local peerless = {}
local function peer_label(label)
  local kind, k = label:match("^(%a)(%d+)$")
  return (kind == "c" and "a" or "c") .. k
end
local nc, na = 0, 0

-- The labels of a list, sorted when asked (select's results: their order
-- follows the descriptors' numbers, which differ between the two, as the
-- kernel gives an accepted connection its number when accept runs, and
-- libuv runs it before the script asks); "!" marks an item whose key does
-- not hold its place, a float.
local function labels(t, sorted)
  local out = {}
  for i, s in ipairs(t) do
    out[i] = objs[s] or "?"
    if t[s] ~= i or math.type(t[s]) ~= "float" then
      out[i] = out[i] .. "!"
    end
  end
  if sorted then table.sort(out) end
  return "[" .. table.concat(out, ",") .. "]"
end

local function pick(list) return list[random(#list)] end

local function streams()
  local t = {}
  for _, s in ipairs(clients) do t[#t + 1] = s end
  for _, s in ipairs(accepted) do t[#t + 1] = s end
  return t
end

local function some(all)
  local t, seen = {}, {}
  for _ = 1, random(0, #all) do
    local s = pick(all)
    if not seen[s] then
      seen[s] = true
      t[#t + 1] = s
    end
  end
  return t
end

local function short(v)
  if type(v) == "string" then return #v .. "B" end
  return tostring(v)
end

for step = 1, N do
  local r = random(1, 12)
  local line
  local live = streams()
  if r == 1 and nc < 3 then
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(0.1)
    nc = nc + 1
    clients[#clients + 1] = c
    name(c, "c" .. nc)
    line = "connect c" .. nc
  elseif r == 2 then
    local a, err = srv:accept()
    if a then
      a:settimeout(0.1)
      na = na + 1
      accepted[#accepted + 1] = a
      name(a, "a" .. na)
      line = "accept a" .. na
    else
      line = "accept " .. tostring(err)
    end
  elseif (r == 3 or r == 4) and #live > 0 then
    local s = pick(live)
    if peerless[objs[s]] then s = nil end
    local n = random(1, 3000)
    if s then
      local i, err = s:send(("x"):rep(n))
      line = ("send %s %d -> %s %s"):format(objs[s], n, short(i),
        tostring(err))
    else
      line = "send skipped (the peer was closed)"
    end
  elseif r == 5 and #live > 0 then
    local s = pick(live)
    local pat = ({"*l", "*a", 1, 100, 5000})[random(5)]
    local data, err, partial = s:receive(pat)
    line = ("receive %s %s -> %s %s %s"):format(objs[s], tostring(pat),
      short(data), tostring(err), short(partial))
  elseif r == 6 then
    local from, to = u1, p2
    if random(2) == 1 then from, to = u2, p1 end
    local n = random(0, 500)
    local ok, err = from:sendto(("u"):rep(n), "127.0.0.1", to)
    line = ("sendto %s %d -> %s %s"):format(objs[from], n, tostring(ok and
      math.tointeger(ok)), tostring(err))
  elseif r == 7 then
    local u = random(2) == 1 and u1 or u2
    local data, err = u:receivefrom()
    line = ("receivefrom %s -> %s %s"):format(objs[u], short(data),
      tostring(err and err:match("^%d") and "ADDR" or err))
  elseif r == 8 and #live > 2 and random(4) == 1 then
    -- (rare: net closes a connection gracefully, the descriptor kept
    -- until the peer is done, where LuaSocket closes it at once: the
    -- peer's later sends get a reset there only, so a closed socket's
    -- peer sends nothing more here)
    local s = pick(live)
    -- (what came is read first: a close with unread input is a reset in
    -- the kernel, where luahost has often read it already)
    s:settimeout(0)
    s:receive("*a")
    s:settimeout(0.1)
    s:close()
    for i, x in ipairs(clients) do
      if x == s then table.remove(clients, i) break end
    end
    for i, x in ipairs(accepted) do
      if x == s then table.remove(accepted, i) break end
    end
    -- (a close luahost's loop finishes: its fd may close after a turn,
    -- once a shutdown asked before it is done)
    socket.sleep(0.01)
    line = "close " .. objs[s]
    peerless[peer_label(objs[s])] = true
  elseif r == 9 and #live > 0 then
    -- (the send side only: what a read sees after the kernel's
    -- shutdown of the read side depends on what libuv has read before)
    local s = pick(live)
    local how = "send"
    line = ("shutdown %s %s -> %s"):format(objs[s], how,
      tostring(s:shutdown(how)))
  else
    local all = {srv, u1, u2}
    for _, s in ipairs(live) do all[#all + 1] = s end
    local rt, wt = some(all), some(all)
    local timeout = random(4) == 1 and 0.05 or 0
    local rr, ww, err = socket.select(rt, wt, timeout)
    line = ("select %s %s %s -> %s %s %s"):format(labels(rt), labels(wt),
      timeout, labels(rr, true), labels(ww, true), tostring(err))
  end
  print(step .. ": " .. line)
end
