--[[
spec/uv_fuzz.lua: the stateful fuzzer of the uv bindings.

  luahost spec/uv_fuzz.lua FIRST[-LAST] [STEPS] [-v]

For each seed: a pool of handles of every type (live, closing and closed,
with sockets bound, listening, connected, pipes opened on socketpairs,
spawned processes...), then STEPS random actions: a random uv function or
a random method of a random pool handle, called with a random argument
list (count and types drawn from the pool, edge numbers, strings, tables,
callbacks that themselves act on the pool, coroutines...), the loop run
with uv.run("nowait") between most calls. Every function is found in the
uv table at run time, so bindings added later are fuzzed too. After the
steps everything is closed and the loop drained: a handle left open, a
crash, a sanitizer report or a hang (the caller's timeout) fails the
seed. "seed N" is printed before each seed runs (to stderr, unbuffered),
so the failing one can be replayed alone with -v to see every call.

Excluded, because they would legitimately block, end or change the whole
process rather than exercise a binding:
  kill                 signals real processes by pid (0/-1: groups)
  sleep                blocks the process for as long as it is told
  run                  (the driver runs "nowait"; "default" may not return)
  chdir, os_setenv, os_unsetenv, setuid, setgid, os_setpriority
                       change the process (cwd, environment, identity,
                       scheduling) for every later seed
  spawn                runs arbitrary programs: the pool spawns /bin/sh
                       itself (exit 0, or sleep then exit)
  new_thread, thread_join, new_work, queue_work
                       run Lua in other states: a dumped closure loses its
                       upvalues there; fuzzed by their own specs
  print_all_handles, print_active_handles   only write to stderr
  disable_stdio_inheritance   later children (of later seeds) would start
                       without stdio
  random               random(n) allocates n bytes: memory, not a binding
  fs_read, fs_sendfile, fs_write, fs_close... with any fd but those the
                       seed opened itself (or the loop's own, to check
                       they are refused): fd numbers are drawn from the
                       pool, never 0-2 (a read of a pipe blocks, a close
                       of stdout loses the report)
Signal watchers only take harmless signals: a SIGSEGV watcher would turn
a crash into a hang.
]]
local uv = require "uv"

local first, last = (arg[1] or "1"):match("^(%d+)%-?(%d*)$")
first = tonumber(first)
last = tonumber(last) or first
local STEPS = tonumber(arg[2]) or 60
local VERBOSE = arg[3] == "-v" or arg[2] == "-v"
if arg[2] == "-v" then STEPS = 60 end
assert(first, "usage: uv_fuzz.lua FIRST[-LAST] [STEPS] [-v]")

local excluded = {}
for name in ([[kill sleep run chdir os_setenv os_unsetenv setuid setgid
    os_setpriority spawn new_thread thread_join new_work queue_work
    print_all_handles print_active_handles random
    disable_stdio_inheritance]]):gmatch("%S+") do
  excluded[name] = true
end

local function log(fmt, ...)
  if VERBOSE then io.stderr:write(fmt:format(...), "\n") end
end

-- {====================================================== state
local R                 -- the seed's random generator: R(n) in 1..n
local cbR               -- callbacks' own stream (their timing varies)
local pool              -- handles
local fds               -- fds the seed made: {fd = {dev, ino}}
local fdlist            -- the same, as a list, in creation order
local drawn             -- those a call may be given (blocking_stream)
local ports             -- ports of bound sockets
local pids              -- pids of spawned children
local loop_fds = {}     -- the loop's own fds (must be refused)
local depth = 0         -- callback nesting
local draining = false  -- closing down: callbacks do nothing
local calls, raises = 0, 0

local function pick(list) return list[R(#list)] end

local function is_handle(v)
  if type(v) ~= "userdata" or getmetatable(v) == nil then return false end
  local ok, s = pcall(tostring, v)
  return ok and (s:find("^uv_") or s:find("^uv handle")) ~= nil
end

-- A socket or pipe in blocking mode (a raw socketpair or pipe made
-- without nonblock): a read of it with nothing to read waits forever, in
-- the loop's thread (fs_read) as in any program. It is closed with the
-- seed's other fds but never drawn for a call.
local function blocking_stream(fd, st)
  if st.type ~= "socket" and st.type ~= "fifo" then return false end
  local f = io.open("/proc/self/fdinfo/" .. fd)
  local flags = f and f:read("a"):match("flags:%s*(%d+)")
  if f then f:close() end
  return flags ~= nil and tonumber(flags, 8) & 0x800 == 0 -- O_NONBLOCK
end

local function note_fd(fd)
  if type(fd) ~= "number" or fds[fd] then return end
  local ok, st = pcall(uv.fs_fstat, fd)
  fds[fd] = ok and st and {st.dev, st.ino} or {0, 0}
  fds[fd].blocking = ok and st and blocking_stream(fd, st)
  fdlist[#fdlist + 1] = fd
  if not fds[fd].blocking then drawn[#drawn + 1] = fd end
end

-- Remember what a call returned: handles join the pool, fds the fd list.
local function harvest(name, ...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if is_handle(v) then pool[#pool + 1] = v end
    if type(v) == "table" and (name == "pipe" or name == "socketpair") then
      for _, fd in pairs(v) do note_fd(fd) end
    end
    if (name == "fs_open" or name == "fs_mkstemp") and type(v) == "number"
        and i == 1 then
      note_fd(v)
    end
  end
end
-- }======================================================

-- {====================================================== values
local STRINGS = {"", "x", "127.0.0.1", "::1", "0.0.0.0", "localhost", "r",
  "w", "rw", "inet", "inet6", "unix", "stream", "dgram", "tcp", "sigint",
  "sigusr1", "sighup", "sigwinch", "nowait", "once", "a", "b", "sub/c",
  "sock", "f.txt", "nonexistent.invalid", "239.1.1.1", "::", "reuseaddr",
  "so_rcvbuf", "tcp_nodelay", "a\0b", ("z"):rep(300), ("y"):rep(70000),
  "default", "raw", "block_signal", "metrics_idle_time", "XXXXXX",
  "tmpXXXXXX", "STREAM", "INET", "ro", "wx", "a+"}
local INTS = {-1, 5, 64, 100, 1000, 4096, 65535, 65536, 2^31 - 1, 2^31,
  2^53, math.maxinteger, math.mininteger, 0.5, -0.0, 0 / 0, math.huge,
  -math.huge, 1, 2, 3, 10, 15, 438, 420}

local random_value, random_action -- forward

local function callback()
  local alive = true
  local f = function(...)
    if not alive or draining or depth > 2 then return end
    depth = depth + 1
    -- the callback acts on the pool with its own random stream
    local saved = R
    R = cbR
    local ok, err = pcall(function(...)
      local x = (...)
      if R(4) == 1 and is_handle(x) then pcall(x.close, x) end
      if R(3) == 1 then
        local h = pick(pool)
        if h then pcall(h.close, h) end
      end
      if R(3) == 1 then random_action() end
      if R(10) == 1 then pcall(uv.run, "nowait") end -- re-entry: raises
    end, ...)
    R = saved
    depth = depth - 1
    if not ok then log("callback error %s", tostring(err)) end
  end
  return f
end

local function random_table()
  local k = R(12)
  if k == 1 then return {} end
  if k == 2 then return {"a", "b"} end
  if k == 3 then return {family = pick{"inet", "inet6", "unix", 99}} end
  if k == 4 then return {nonblock = true} end
  if k == 5 then return {ipv6only = true, reuseaddr = R(2) == 1} end
  if k == 6 then
    local t = {}
    for i = 1, R(40) do t[i] = pick(STRINGS) end
    return t
  end
  if k == 7 then return setmetatable({}, {__call = callback()}) end
  if k == 8 then
    return setmetatable({}, {__index = function() error("trap") end})
  end
  if k == 9 then return {socktype = pick{"stream", "dgram", "STREAM"},
                         family = pick{"inet", "INET", "inet6"}} end
  if k == 10 then return {random_value(), random_value()} end
  if k == 11 then return {mode = pick{0, 1, 2}, mmsgs = R(8)} end
  return {args = {"-c", "exit 0"}, 1, 2, 3}
end

local function random_int()
  local k = R(10)
  if k <= 5 then return pick(INTS) end
  if k == 6 and #drawn > 0 then return pick(drawn) end
  if k == 7 and #loop_fds > 0 then return pick(loop_fds) end
  if k == 8 and #ports > 0 then return pick(ports) end
  if k == 9 and #pids > 0 then return pick(pids) end
  return R(200) - 50
end

random_value = function()
  local k = R(20)
  if k <= 6 then return pick(pool) end
  if k <= 9 then return random_int() end
  if k <= 12 then return pick(STRINGS) end
  if k == 13 then return random_table() end
  if k <= 15 then return callback() end
  if k == 16 then return R(2) == 1 end
  if k == 17 then return nil end
  if k == 18 then return coroutine.create(function() end) end
  if k == 19 then return io.stderr end
  return pick(pool)
end

-- A small integer may land where an fd is taken: it must be one of the
-- seed's own fds, one of the loop's (to be refused) or not open at all,
-- never stdio or an fd of the process around (closing it loses reports).
local is_loop_fd = {}
local function safe_int(v)
  if type(v) ~= "number" or v ~= v or v < 0 or v > 1023 or
      v ~= math.floor(v) then
    return true
  end
  -- fs_fstat raises for an fd the loop made since (inotify...): refused
  -- wherever it goes, so safe
  local ok, st = pcall(uv.fs_fstat, math.tointeger(v))
  if fds[v] then -- (asked now: set_blocking may have changed it)
    return not (ok and st and blocking_stream(math.tointeger(v), st))
  end
  return is_loop_fd[v] or not ok or not st
end

local function random_args(name)
  local n = R(6) - 1
  if R(10) == 1 then n = R(20) end
  local args = {n = n}
  for i = 1, n do
    local v = random_value()
    if type(v) == "number" and not safe_int(v) then v = -1 end
    if name:find("^fs_") and (i <= 2) and type(v) == "number" and
        math.type(v) == "integer" and v >= 0 and v < 2^31 then
      -- an fd position: ours (files, sockets) or the loop's
      v = R(3) == 1 and #loop_fds > 0 and pick(loop_fds) or
          (#drawn > 0 and pick(drawn) or -1)
    end
    args[i] = v
  end
  return args
end
-- Plausible arguments by method name, so that calls also succeed and
-- reach deeper states (a listening socket that accepted, a write queued
-- behind another, a close from inside a read callback...).
local G = {
  cb = function() return callback() end,
  ip = function() return pick{"127.0.0.1", "::1", "0.0.0.0"} end,
  port = function() return #ports > 0 and R(3) > 1 and pick(ports) or 0 end,
  n = function() return R(5) - 1 end,
  ms = function() return pick{0, 1, 2, 5} end,
  data = function()
    return R(3) == 1 and {"ab", "", ("q"):rep(R(3000))} or
      ("d"):rep(R(2) == 1 and R(10) or R(200000))
  end,
  h = function() return pick(pool) end,
  name = function() return pick{"sock", "a", "f.txt", "sub"} end,
  sig = function() return pick{"sigusr1", "sigusr2", "sighup", "sigwinch",
                               "sigterm", 0} end,
  ev = function() return pick{"r", "w", "rw", "rd", "rwdp"} end,
  bool = function() return R(2) == 1 end,
  fd = function() return #drawn > 0 and pick(drawn) or -1 end,
  opt = function() return pick{"so_rcvbuf", "so_sndbuf", "tcp_nodelay",
                               "so_keepalive", "so_reuseaddr"} end,
}
local T = {
  start = {"ms", "ms", "cb"}, again = {}, set_repeat = {"ms"},
  bind = {"ip", "port"}, listen = {"n", "cb"}, connect = {"ip", "port", "cb"},
  accept = {"h"}, read_start = {"cb"}, read_stop = {}, write = {"data", "cb"},
  write2 = {"data", "h", "cb"}, try_write = {"data"},
  try_write2 = {"data", "h"}, shutdown = {"cb"}, close = {"cb"},
  send = {"data", "ip", "port", "cb"}, try_send = {"data", "ip", "port"},
  recv_start = {"cb"}, recv_stop = {}, open = {"fd"}, close_reset = {"cb"},
  keepalive = {"bool", "ms"}, nodelay = {"bool"}, setopt = {"opt", "n"},
  getopt = {"opt"}, kill = {"sig"}, send_ = {}, set_blocking = {"bool"},
  set_broadcast = {"bool"}, set_ttl = {"n"}, getsockname = {},
  getpeername = {}, stop = {}, ref = {}, unref = {}, fileno = {},
}
local TSIG = {start = {"sig", "cb"}, start_oneshot = {"sig", "cb"}}
local TPOLL = {start = {"ev", "cb"}}
local TPIPE = {bind = {"name"}, connect = {"name", "cb"}}
local TFS = {start = {"name", "n", "cb"}}
local TIDLE = {start = {"cb"}}

local function plausible(tname, m)
  local t = (tname == "signal" and TSIG[m]) or (tname == "poll" and TPOLL[m])
    or (tname == "pipe" and TPIPE[m])
    or ((tname == "fs_event" or tname == "fs_poll" or tname == "fs") and
        TFS[m])
    or ((tname == "idle" or tname == "prepare" or tname == "check") and
        TIDLE[m])
    or T[m]
  if not t then return nil end
  local args = {n = #t}
  for i, g in ipairs(t) do args[i] = G[g]() end
  if R(6) == 1 then args.n = args.n - 1 end           -- one missing
  if R(6) == 1 then args.n = args.n + 1; args[args.n] = random_value() end
  return args
end
-- }======================================================

-- {====================================================== makers
local function bound_tcp()
  local t = uv.new_tcp()
  if t:bind("127.0.0.1", 0) == 0 then
    local a = t:getsockname()
    if a then ports[#ports + 1] = a.port end
  end
  return t
end

local makers = {
  function() return uv.new_timer() end,
  function() return uv.new_idle() end,
  function() return uv.new_prepare() end,
  function() return uv.new_check() end,
  function() return uv.new_async(callback()) end,
  function() return uv.new_signal() end,
  function() return uv.new_tcp() end,
  function() return uv.new_tcp(pick{"inet", "inet6"}) end,
  bound_tcp,
  function()
    local t = bound_tcp()
    t:listen(R(8), callback())
    return t
  end,
  function() -- a connected pair over loopback
    local srv = bound_tcp()
    local port = ports[#ports]
    srv:listen(4, function()
      local c = uv.new_tcp()
      pool[#pool + 1] = c
      pcall(srv.accept, srv, c)
    end)
    local c = uv.new_tcp()
    c:connect("127.0.0.1", port or 1, callback())
    pool[#pool + 1] = srv
    return c
  end,
  function()
    local u = uv.new_udp(pick{"inet", "inet6", nil})
    if R(2) == 1 and u:bind("127.0.0.1", 0) == 0 then
      local a = u:getsockname()
      if a then ports[#ports + 1] = a.port end
    end
    return u
  end,
  function() return uv.new_pipe(R(2) == 1) end,
  function() -- a pipe opened on a socketpair end, the other end too
    local pair = uv.socketpair()
    local a, b = uv.new_pipe(R(2) == 1), uv.new_pipe(R(2) == 1)
    a:open(pair[1])
    b:open(pair[2])
    pool[#pool + 1] = b
    return a
  end,
  function() -- a raw socketpair / pipe, left for random opens
    local nb = R(2) == 1 and {nonblock = true} or nil -- (else never drawn)
    local p = R(2) == 1 and uv.socketpair(nil, nil, nb, nb) or uv.pipe(nb, nb)
    for _, fd in pairs(p) do note_fd(fd) end
    return uv.new_timer()
  end,
  function()
    local pair = uv.socketpair()
    note_fd(pair[1])
    note_fd(pair[2])
    return uv.new_socket_poll(pair[1])
  end,
  function()
    local script = R(2) == 1 and "exit 0" or "sleep 0.05; exit 3"
    local p, pid = uv.spawn("/bin/sh", {args = {"-c", script}}, callback())
    if pid then pids[#pids + 1] = pid end
    return p
  end,
  function() return uv.new_fs_event and uv.new_fs_event() end,
  function() return uv.new_fs_poll and uv.new_fs_poll() end,
  function() -- a closed handle
    local t = uv.new_timer()
    t:close()
    return t
  end,
}

local function make_one()
  local ok, h = pcall(makers[R(#makers)])
  if ok and h then pool[#pool + 1] = h end
  if not ok then log("maker failed: %s", tostring(h)) end
end
-- }======================================================

-- {====================================================== actions
local fnames = {}
for name, f in pairs(uv) do
  if type(f) == "function" and not excluded[name] then
    fnames[#fnames + 1] = name
  end
end
table.sort(fnames)

local function describe_args(args)
  local t = {}
  for i = 1, args.n do
    local v = args[i]
    if type(v) == "string" and #v > 20 then v = ("<%d bytes>"):format(#v) end
    t[i] = tostring(v)
  end
  return table.concat(t, ", ")
end

local function call(label, name, f, args)
  for i = 1, args.n do -- no stdio or foreign fd, whatever made the list
    if not safe_int(args[i]) then args[i] = -1 end
  end
  calls = calls + 1
  log("%s(%s)", label, describe_args(args))
  local res = table.pack(pcall(f, table.unpack(args, 1, args.n)))
  if not res[1] then
    raises = raises + 1
    log("  raised %s", tostring(res[2]))
  else
    harvest(name, table.unpack(res, 2, res.n))
  end
end

random_action = function()
  local k = R(10)
  if k <= 1 then return make_one() end
  if k <= 6 and #pool > 0 then -- a method of a pool handle
    local h = pick(pool)
    local mt = getmetatable(h)
    local index = mt and mt.__index
    if type(index) ~= "table" then return end
    local methods = {}
    for m in pairs(index) do methods[#methods + 1] = m end
    table.sort(methods)
    local m = pick(methods)
    local tname = tostring(h):match("^uv_([%a_]+)") or "?"
    local mname = uv[tname .. "_" .. m] and tname .. "_" .. m or m
    if excluded[mname] or excluded[m] then return end
    local args = R(2) == 1 and plausible(tname, m) or random_args(mname)
    if R(8) ~= 1 then -- mostly the handle itself as self
      args.n = args.n + 1
      table.insert(args, 1, h)
    end
    return call(tostring(h) .. ":" .. m, mname, index[m], args)
  end
  local name = pick(fnames)
  return call("uv." .. name, name, uv[name], random_args(name))
end
-- }======================================================

-- {====================================================== seeds
local function scan_loop_fds()
  -- the loop's own fds: the epoll fd and what the listing calls eventfd,
  -- plus any pipe libuv made before the first seed
  local dir = "/proc/" .. uv.os_getpid() .. "/fd"
  local ls = io.popen("ls -l " .. dir)
  for line in ls:lines() do
    local fd, target = line:match(" (%d+) %-> (.*)$")
    fd = tonumber(fd)
    if fd and fd > 2 and (target:find("eventpoll") or
        target:find("eventfd") or (target:find("^pipe:") and fd < 16)) then
      loop_fds[#loop_fds + 1] = fd
      is_loop_fd[fd] = true
    end
  end
  ls:close()
  table.sort(loop_fds)
end

-- Run the loop until nothing is left in it (callbacks do nothing now),
-- at most `seconds`; true when no handle is left.
local function drain(seconds)
  draining = true
  local expired = false
  local guard = uv.new_timer()
  guard:start(math.floor(seconds * 1000), 0, function()
    expired = true
    uv.stop()
  end)
  guard:unref()
  while not expired and uv.loop_alive() do uv.run("once") end
  guard:close()
  uv.run("nowait")
  draining = false
  local open = 0
  uv.walk(function() open = open + 1 end)
  return open == 0
end

local function close_everything()
  for _, h in ipairs(pool) do
    if is_handle(h) then pcall(h.close, h) end
  end
  uv.walk(function(h) if not h:is_closing() then h:close() end end)
end

local home = uv.cwd()
local scratch = os.tmpname()
os.remove(scratch)
assert(os.execute("mkdir " .. scratch))

local function run_seed(seed)
  R = function(n) return math.random(n) end
  local cbstate = seed * 7919 + 1
  cbR = function(n)
    cbstate = (cbstate * 1103515245 + 12345) % 2147483648
    return cbstate % n + 1
  end
  math.randomseed(seed)
  pool, fds, fdlist, drawn, ports, pids = {}, {}, {}, {}, {}, {}
  local dir = scratch .. "/" .. seed
  assert(uv.fs_mkdir and uv.fs_mkdir(dir, 448) or
         os.execute("mkdir " .. dir))
  assert(uv.chdir(dir))
  for _ = 1, 4 do make_one() end
  for _ = 1, STEPS do
    random_action()
    if R(10) <= 7 then uv.run("nowait") end
  end
  close_everything()
  local clean = drain(10)
  -- every fd the seed made and still holds (same file as when made)
  for _, fd in ipairs(fdlist) do
    local ok, st = pcall(uv.fs_fstat, fd)
    if ok and st and st.dev == fds[fd][1] and st.ino == fds[fd][2] and
        fds[fd][2] ~= 0 then
      uv.fs_close(fd)
    end
  end
  assert(uv.chdir(home))
  os.execute("rm -rf " .. dir)
  if not clean then
    local left = {}
    uv.walk(function(h) left[#left + 1] = tostring(h) end)
    error(("seed %d: handles still open after closing all: %s"):format(
      seed, table.concat(left, ", ")))
  end
end

scan_loop_fds()
local t0 = uv.hrtime()
for seed = first, last do
  io.stderr:write("seed ", seed, "\n")
  local ok, err = xpcall(run_seed, debug.traceback, seed)
  if not ok then
    uv.chdir(home)
    os.execute("rm -rf " .. scratch)
    io.stderr:write("uv_fuzz: FAILED at seed ", seed, ": ", tostring(err),
                    "\nreplay: luahost spec/uv_fuzz.lua ", seed, " ",
                    STEPS, " -v\n")
    os.exit(1)
  end
end
os.execute("rm -rf " .. scratch)
-- the loop still works
local fired = false
local t = uv.new_timer()
t:start(1, 0, function() fired = true end)
drain(5)
assert(fired, "a timer did not fire after the seeds")
print(("uv_fuzz: seeds %d-%d ok: %d calls (%d raised) in %.1fs"):format(
  first, last, calls, raises, (uv.hrtime() - t0) / 1e9))
