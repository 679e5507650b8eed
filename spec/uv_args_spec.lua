--[[
The argument sweep: every function of the uv table and every method of
every handle type is called with wrong arguments (none, nil, numbers out
of range, non-integers, huge and path-like strings, tables, functions,
booleans, a closed handle, a handle of another type). Each call must
either raise an error that names an argument ("bad argument #n",
"bad self"), or return luv's fail triple (nil, "ENAME: message", "ENAME"),
or succeed where the argument is one the function ignores or accepts.
The process must not crash, and the loop must still work afterwards.

The function list is read from uv at run time, so bindings that land
later are swept too. Handles are made fresh for each function (a call
may close or start them) and all are closed after it.
]]
local uv = require "uv"

-- Functions never called with swept arguments, and why.
local skip = {
  run = "runs the loop: with an active handle \"default\" never returns",
  stop = "stops the loop the suite runs on",
  walk = "calls its argument on every handle, the suite's included",
  kill = "kill(pid) with a small number signals real processes " ..
         "(0 and -1 mean process groups)",
  chdir = "would move the whole suite's working directory",
  os_setenv = "changes the suite's environment",
  os_unsetenv = "changes the suite's environment",
  sleep = "blocks the whole process for as long as it is told",
  pipe = "returns raw fds that nothing in the sweep would close",
  socketpair = "returns raw fds that nothing in the sweep would close",
  print_all_handles = "dumps every handle to stderr (uv_misc_spec runs it)",
  print_active_handles = "dumps handles to stderr (uv_misc_spec runs it)",
  disable_stdio_inheritance = "marks the suite's fds 0-2 close-on-exec: " ..
    "every child the suite starts later would lose its stdio " ..
    "(uv_misc_spec runs it in a child)",
  set_process_title = "renames the suite's process",
  setuid = "drops the suite's privileges",
  setgid = "drops the suite's privileges",
  pipe_bind = "a number coerces to a name: binds a socket file in the " ..
              "suite's working directory",
}

-- When a call with a swept value succeeds, that is fine only if the value
-- sits where the function takes nothing (Lua ignores extra arguments), or
-- is a legitimate input there. nparams: how many parameters a function
-- has, for the functions that succeed with junk after them.
local nparams = {}
for name in ([[available_parallelism backend_fd backend_timeout cpu_info cwd
    exepath get_constrained_memory get_free_memory get_total_memory
    getgid getuid getrusage gettimeofday hrtime interface_addresses loadavg
    loop_alive new_fs_event new_fs_poll
    loop_alive loop_mode metrics_idle_time thread_self getpid
    get_process_title disable_stdio_inheritance print_all_handles
    print_active_handles tty_get_vterm_state loop_close
    new_check new_idle new_prepare new_signal new_timer now os_environ
    os_get_passwd os_gethostname os_getpid os_getppid os_homedir os_tmpdir
    os_uname resident_set_memory tty_reset_mode update_time uptime version
    version_string]]):gmatch("%S+") do
  nparams[name] = 0
end
-- (handle): anything after the handle is ignored
for name in ([[get_type handle_get_type is_active is_closing has_ref ref
    unref fileno timer_stop timer_again timer_get_repeat timer_get_due_in
    idle_stop prepare_stop check_stop signal_stop poll_stop
    process_get_pid read_stop is_readable is_writable pipe_pending_type
    pipe_pending_count tcp_write_queue_size stream_get_write_queue_size
    get_write_queue_size udp_recv_stop udp_get_send_queue_size
    udp_get_send_queue_count fs_event_stop fs_event_getpath fs_poll_stop
    fs_poll_getpath tty_get_winsize]]):gmatch("%S+") do
  nparams[name] = 1
end
nparams.new_pipe = 1  -- new_pipe([ipc])
nparams.new_tcp = 1   -- new_tcp([family | {family=}])
nparams.new_udp = 1   -- new_udp([family | {family=}])
nparams.new_async = 1 -- new_async(callback)
nparams.close = 2     -- close(handle[, callback])

-- Functions that take a handle of any type as their first argument.
local any_handle = {close = true, get_type = true, handle_get_type = true,
  is_active = true, is_closing = true, has_ref = true, ref = true,
  unref = true, fileno = true}

-- Legitimate inputs by function and position, for the values swept.
local legit = {
  new_pipe = {[1] = {boolean = true}},
  new_tcp = {[1] = {table = true}},  -- a flags table without family
  new_udp = {[1] = {table = true}},
  new_async = {[1] = {["function"] = true}},
  close = {[2] = {["function"] = true}},
  idle_start = {[2] = {["function"] = true}},
  prepare_start = {[2] = {["function"] = true}},
  check_start = {[2] = {["function"] = true}},
  tcp_nodelay = {[2] = {boolean = true}},
  tcp_keepalive = {[2] = {boolean = true}}, -- keepalive(enable[, delay])
  tcp_simultaneous_accepts = {[2] = {boolean = true}},
  udp_recv_start = {[2] = {["function"] = true}},
  -- a stream that can take them (a tty, writable at once) takes these
  read_start = {[2] = {["function"] = true}},
  stream_set_blocking = {[2] = {boolean = true}},
  set_blocking = {[2] = {boolean = true}},
  write = {[2] = {string = true, table = true}},
  try_write = {[2] = {string = true, table = true}},
  -- Lua turns numbers into strings: a numeric host or service is legal
  getaddrinfo = {[1] = {number = true}, [2] = {number = true, string = true}},
}
-- async_send carries any plain values
local plain = {number = true, string = true, boolean = true}
legit.async_send = {[2] = plain, [3] = plain, [4] = plain}
-- threads and work take their code as a function or as source (the empty
-- string is an empty chunk), then plain values
local code = {string = true, ["function"] = true}
legit.new_thread = {[1] = code, [2] = plain, [3] = plain}
legit.new_work = {[1] = code, [2] = {["function"] = true}}
legit.set_process_title = {[1] = {string = true, number = true}}
legit.translate_sys_error = {[1] = {number = true}}

-- Functions of uv's stream family: any tcp, pipe or tty is a stream.
local stream_fn = {}
for _, m in ipairs{"accept", "listen", "read_start", "read_stop", "write",
    "write2", "try_write", "try_write2", "shutdown", "is_readable",
    "is_writable", "stream_get_write_queue_size", "stream_set_blocking",
    "get_write_queue_size", "set_blocking"} do
  stream_fn[m] = true
end
local stream_type = {tcp = true, pipe = true, tty = true}

-- Is a handle of type tname a correct first argument of fn_name?
local function handle_fits(fn_name, tname)
  return any_handle[fn_name] or fn_name:sub(1, #tname + 1) == tname .. "_"
    or (stream_fn[fn_name] and stream_type[tname])
end

local function accepts(fn_name, pos, v)
  if v == nil then return true end -- optional arguments are everywhere
  if nparams[fn_name] and pos > nparams[fn_name] then return true end
  if pos == 1 and type(v) == "userdata" and getmetatable(v) then
    local ok, tname = pcall(v.get_type, v)
    if ok and handle_fits(fn_name, tname) then return true end
    if not ok and any_handle[fn_name] then return true end -- closed
  end
  local l = legit[fn_name] and legit[fn_name][pos]
  return l ~= nil and l[type(v)] == true
end

-- A path that can never exist: binding or opening it fails, creates nothing.
local NOPATH = "/nonexistent-luahost-sweep/x"
local HUGE = ("x"):rep(1 << 20)

local made = {} -- every handle the sweep creates, to close at the end
local pty -- {pid, path, file}: the pty whose slave makes the tty fixtures
local raw_fds = {} -- fds polled by the poll fixtures: closed after them

-- Close the raw fds once the handles are closed (the loop has run).
local function close_raw_fds()
  for _, fd in ipairs(raw_fds) do uv.fs_close(fd) end
  raw_fds = {}
end

local function track(h)
  if type(h) == "userdata" and getmetatable(h) and
      type(h.is_closing) == "function" then
    made[#made + 1] = h
  end
  return h
end

-- A uv_tty needs a terminal fd: spec/support/pty_pair.py holds a pty
-- open and drains it, and each tty fixture is a fresh open of its slave
-- (a real terminal: libuv reopens it non-blocking, so even a huge write
-- never blocks the loop). Started once, stopped by PID in teardown.
local function pty_slave()
  if pty == nil then
    pty = false
    local f = io.popen("timeout -s KILL 300 /usr/bin/python3 " ..
      "spec/support/pty_pair.py 240 2>/dev/null")
    local line = f and f:read("l")
    local pid, path = (line or ""):match("^(%d+) (/dev/%S+)$")
    if pid then
      pty = {pid = tonumber(pid), path = path, file = f}
    elseif f then
      f:close()
    end
  end
  return pty and pty.path
end

local function stop_pty()
  if pty then
    uv.kill(pty.pid, "sigterm")
    pty.file:close()
  end
  pty = nil
end

-- One fresh handle of each type uv offers here.
local function fixtures()
  local f = {}
  local function add(name, ctor)
    local ok, h = pcall(ctor)
    if ok and h then f[name] = track(h) end
  end
  add("timer", uv.new_timer)
  add("idle", uv.new_idle)
  add("prepare", uv.new_prepare)
  add("check", uv.new_check)
  add("async", function() return uv.new_async(function() end) end)
  add("signal", uv.new_signal)
  if uv.new_fs_event then add("fs_event", uv.new_fs_event) end
  if uv.new_fs_poll then add("fs_poll", uv.new_fs_poll) end
  if uv.new_tcp then add("tcp", uv.new_tcp) end
  if uv.new_udp then add("udp", uv.new_udp) end
  if uv.new_pipe then add("pipe", function() return uv.new_pipe(false) end) end
  if uv.new_socket_poll and uv.socketpair and uv.new_pipe then
    -- A poll handle needs a pollable fd, closed once the poll is closed;
    -- a pipe handle owns the other end.
    local fds = uv.socketpair()
    if fds then
      add("poll", function() return uv.new_socket_poll(fds[1]) end)
      raw_fds[#raw_fds + 1] = fds[1]
      track(uv.new_pipe(false)):open(fds[2])
    end
  end
  add("process", function()
    return uv.spawn("/bin/sh", {args = {"-c", "exit 0"}}, function() end)
  end)
  local path = pty_slave()
  if path then
    -- the fd is the spec's to close, after the handle (libuv reopens it)
    local fd = uv.fs_open(path, "r+", 0)
    if fd then
      raw_fds[#raw_fds + 1] = fd
      add("tty", function() return uv.new_tty(fd, true) end)
    end
  end
  local closed = track(uv.new_timer())
  closed:close()
  f.closed = closed
  return f
end

-- The swept values: {label, value}. Handles come from fixtures.
local function sweep_values(fx, self_type)
  local other = self_type == "timer" and fx.idle or fx.timer
  return {
    {"nil", nil}, {"-1", -1}, {"math.huge", math.huge},
    {"-math.huge", -math.huge}, {"2^53", 2^53}, {"0.5", 0.5},
    {"nan", 0 / 0}, {"mininteger", math.mininteger},
    {"huge string", HUGE}, {"path-like string", NOPATH},
    {"empty string", ""}, {"table", {}}, {"function", function() end},
    {"true", true}, {"coroutine", coroutine.create(function() end)},
    {"closed handle", fx.closed}, {"other handle", other},
    {"an idle", fx.idle},
  }
end

local function close_all()
  for _, h in ipairs(made) do
    if not h:is_closing() then h:close() end
  end
  made = {}
  for _ = 1, 20 do
    if not uv.run("nowait") then break end
  end
  close_raw_fds()
end

local problems = {}
local calls = 0

-- Check one call's outcome; fn_name and desc only label problems.
local function check(fn_name, desc, pos, v, ok, ...)
  calls = calls + 1
  local r1, r2, r3 = ...
  for i = 1, select("#", ...) do track((select(i, ...))) end
  if not ok then
    if type(r1) ~= "string" or not (r1:find("bad argument", 1, true) or
        r1:find("bad self", 1, true)) then
      problems[#problems + 1] = ("%s(%s): raised without naming an " ..
        "argument: %s"):format(fn_name, desc, tostring(r1))
    end
  elseif r1 == nil and select("#", ...) > 0 and r2 ~= nil then
    if type(r2) ~= "string" or type(r3) ~= "string" or
        r2:sub(1, #r3 + 2) ~= r3 .. ": " then
      problems[#problems + 1] = ("%s(%s): malformed failure: %s, %s")
        :format(fn_name, desc, tostring(r2), tostring(r3))
    end
  elseif not accepts(fn_name, pos, v) then
    problems[#problems + 1] = ("%s(%s): succeeded with a wrong argument")
      :format(fn_name, desc)
  end
end

describe("uv argument sweep", function()
  after_each(function()
    close_all()
    assert_clean()
  end)
  teardown(stop_pty)

  it("every uv function: raises naming the argument or fails", function()
    local names = {}
    for name, f in pairs(uv) do
      if type(f) == "function" and not skip[name] then
        names[#names + 1] = name
      end
    end
    table.sort(names)
    assert.truthy(#names > 50, "too few functions to sweep")
    for _, name in ipairs(names) do
      local f = uv[name]
      local fx = fixtures()
      local vals = sweep_values(fx)
      -- no argument at all
      check(name, "", 1, nil, pcall(f))
      for pos = 1, 3 do
        for _, lv in ipairs(vals) do
          local args = {n = pos}
          args[pos] = lv[2]
          local desc = ("#%d=%s"):format(pos, lv[1])
          check(name, desc, pos, lv[2], pcall(f, table.unpack(args, 1, pos)))
        end
      end
      -- a handle of each type as first argument, junk after it
      for tname, h in pairs(fx) do
        for _, lv in ipairs(vals) do
          -- the handle is right or wrong at 1; the junk sits at 2
          local ok_handle = tname ~= "closed" and handle_fits(name, tname)
          local pos, v = 1, h
          if ok_handle then pos, v = 2, lv[2] end
          check(name, tname .. "," .. lv[1], pos, v,
                pcall(f, h, lv[2], lv[2]))
        end
      end
      close_all()
    end
    assert.equal(0, #problems, table.concat(problems, "\n"))
    assert.truthy(calls > 1000)
  end)

  -- Sweep the methods of the handle types `want` accepts; returns how
  -- many methods were swept.
  local function sweep_methods(want)
    local fx = fixtures()
    local types = {}
    for tname, h in pairs(fx) do
      if tname ~= "closed" and want(tname) then
        local methods = {}
        for m in pairs(getmetatable(h).__index) do
          methods[#methods + 1] = m
        end
        table.sort(methods)
        types[#types + 1] = {tname, methods}
      end
    end
    close_all()
    table.sort(types, function(a, b) return a[1] < b[1] end)
    local swept = 0
    for _, t in ipairs(types) do
      local tname, methods = t[1], t[2]
      for _, m in ipairs(methods) do
        local label = tname .. ":" .. m
        -- judged as the module function of the same name would be
        local mname = uv[tname .. "_" .. m] and tname .. "_" .. m or m
        if skip[mname] then goto next_method end
        local fx2 = fixtures()
        local h = fx2[tname]
        local method = getmetatable(h).__index[m]
        for _, lv in ipairs(sweep_values(fx2, tname)) do
          -- wrong self
          check(mname, "self=" .. lv[1], 1, lv[2], pcall(method, lv[2]))
          -- right self, wrong arguments
          check(mname, label .. "," .. lv[1], 2, lv[2],
                pcall(method, h, lv[2]))
          check(mname, label .. "," .. lv[1] .. "," .. lv[1], 2, lv[2],
                pcall(method, h, lv[2], lv[2], lv[2]))
        end
        swept = swept + 1
        close_all()
        ::next_method::
      end
    end
    return swept, #types
  end

  it("every method of every handle type: bad self or bad arguments",
    function()
      -- tty has a test of its own, below
      local _, ntypes = sweep_methods(function(t) return t ~= "tty" end)
      assert.truthy(ntypes >= 7, "too few handle types")
      assert.equal(0, #problems, table.concat(problems, "\n"))
    end)

  it("tty methods", function()
    -- the suite's stdio is never a terminal: the tty is a pty's slave
    assert.truthy(pty_slave(), "no pty (spec/support/pty_pair.py)")
    local swept = sweep_methods(function(t) return t == "tty" end)
    -- set_mode, get_winsize, the stream methods and the handle methods
    assert.truthy(swept >= 20, "only " .. swept .. " tty methods swept")
    assert.equal(0, #problems, table.concat(problems, "\n"))
    -- the tty still writes after the sweep
    local fx = fixtures()
    local wrote
    assert.equal(0, fx.tty:write("still a terminal\n",
      function(err) wrote = err or true end))
    run_loop(function() return wrote ~= nil end)
    assert.equal(true, wrote)
  end)

  it("leaves the loop usable: a timer still fires", function()
    local t = uv.new_timer()
    local fired = false
    t:start(1, 0, function() fired = true end)
    run_loop(function() return fired end)
    t:close()
  end)
end)

--[[
Argument count. The same call is made with the argument list a function
uses and then with values appended: every function must behave the same
whatever follows the arguments it takes (a binding that indexed its own
results at a fixed stack slot read the caller's extra value there and
crashed). Appended nils must change nothing at all. Appended values that
start with a coroutine (a value no uv function takes) either change
nothing or raise naming an argument after the ones the base call passed
(the function takes more, and the value is wrong), unless the base call
lacked an argument (then the values may supply it). A string appended
(a legal optional argument in many places) only has to give a lawful
outcome: a raise naming an argument, luv's fail triple, or results.
"The same" is the outcome's shape: the same error message, the same fail
code, or results of the same types. Each call gets handles of its own, so
the state one call leaves cannot change the next one's outcome.
]]
describe("uv argument count", function()
  local co = coroutine.create(function() end)
  local tail_nil = {n = 1}
  local tail_str = {n = 1, "xyz"} -- a length: read as a table it crashes
  local tail_mixed = {n = 9, co, "x", {}, function() end, true, 1e6, nil,
                      nil, co}
  local tail_long = {n = 40}
  for i = 1, 40 do tail_long[i] = i % 2 == 1 and co or nil end
  local tails = {{"nil", tail_nil, "same"}, {"string", tail_str, "lawful"},
                 {"mixed", tail_mixed, "after"},
                 {"40 values", tail_long, "after"}}

  local count_made = {}
  local function track_all(...)
    for i = 1, select("#", ...) do
      local h = select(i, ...)
      if type(h) == "userdata" and getmetatable(h) and
          type(h.is_closing) == "function" then
        count_made[#count_made + 1] = h
      end
    end
    return ...
  end

  -- Fresh handles by type name, made only when an argument list names one.
  local makers = {
    timer = uv.new_timer, idle = uv.new_idle, prepare = uv.new_prepare,
    check = uv.new_check, signal = uv.new_signal, tcp = uv.new_tcp,
    udp = uv.new_udp,
    pipe = function() return uv.new_pipe(false) end,
    async = function() return uv.new_async(function() end) end,
    poll = function()
      local fds = uv.socketpair()
      local p = uv.new_socket_poll(fds[1])
      raw_fds[#raw_fds + 1] = fds[1] -- closed after the poll
      track_all(uv.new_pipe(false)):open(fds[2])
      return p
    end,
    closed = function()
      local t = uv.new_timer()
      t:close()
      return t
    end,
  }
  -- A handle that is the wrong argument for fn_name only makes it raise:
  -- one of each type serves all such calls (spawning, making sockets for
  -- each call would take most of the sweep's time).
  local shared = {}
  local function make(tname, fn_name)
    if not handle_fits(fn_name, tname) then
      if not shared[tname] then
        shared[tname] = tname == "process" and
          uv.spawn("/bin/sh", {args = {"-c", "exit 0"}}, function() end)
          or makers[tname]()
      end
      return shared[tname]
    end
    if tname == "process" then
      return track_all(uv.spawn("/bin/sh", {args = {"-c", "exit 0"}},
                                function() end))
    end
    return track_all(makers[tname]())
  end

  -- An argument list is a list of specs: {value} or {handle = tname}.
  local function build(spec, fn_name)
    local args = {n = spec.n}
    for i = 1, spec.n do
      local s = spec[i]
      if s ~= nil then
        if s.handle then args[i] = make(s.handle, fn_name)
        else args[i] = s.value end
      end
    end
    return args
  end

  local function shape(ok, ...)
    if not ok then
      local msg = tostring((...)):gsub("0x%x+", "0x?")
        :gsub("got no value", "got nil")
      return "raise: " .. msg
    end
    local n = select("#", ...)
    local r1, r2, r3 = ...
    if r1 == nil and n == 3 and type(r2) == "string" and
        type(r3) == "string" then
      return "fail: " .. r3
    end
    local t = {}
    for i = 1, n do t[i] = type((select(i, ...))) end
    return "ok: " .. table.concat(t, ",")
  end

  local function call(f, spec, fn_name, tail)
    local args = build(spec, fn_name)
    local n = args.n
    if tail then
      for i = 1, tail.n do args[n + i] = tail[i] end
      n = n + tail.n
    end
    return shape(track_all(pcall(f, table.unpack(args, 1, n))))
  end

  local function close_count_made()
    for _, h in ipairs(count_made) do
      if not h:is_closing() then h:close() end
    end
    count_made = {}
    for _ = 1, 20 do
      if not uv.run("nowait") then break end
    end
    close_raw_fds()
  end

  local values = {{value = -1}, {value = 0.5}, {value = ""},
    {value = "/nonexistent-luahost-sweep/x"}, {value = {}},
    {value = function() end}, {value = true}, {handle = "closed"},
    {handle = "idle"}}
  local type_names = {"timer", "idle", "prepare", "check", "signal", "tcp",
    "udp", "pipe", "async", "poll", "process"}

  -- The base argument lists for fn_name: none, one value, a handle of
  -- each type followed by one value or two.
  local function specs_for()
    local list = {{n = 0}}
    for _, v in ipairs(values) do list[#list + 1] = {n = 1, v} end
    for _, tname in ipairs(type_names) do
      list[#list + 1] = {n = 1, {handle = tname}}
      -- a process costs a fork: fewer values after one
      local vals = tname == "process" and {values[1], values[5]} or values
      for _, v in ipairs(vals) do
        list[#list + 1] = {n = 2, {handle = tname}, v}
        list[#list + 1] = {n = 3, {handle = tname}, v, v}
      end
    end
    return list
  end

  local count_problems, compared = {}, 0
  local function sweep(label, f, fn_name)
    local t0 = uv.hrtime()
    for _, spec in ipairs(specs_for()) do
      local base = call(f, spec, fn_name)
      for _, t in ipairs(tails) do
        local got = call(f, spec, fn_name, t[2])
        compared = compared + 1
        -- a base call that lacked an argument may take a value appended
        local missing = tonumber(base:match("^raise: bad argument #(%d+)"))
        local pos = tonumber(got:match("^raise: bad argument #(%d+)"))
        local fine = got == base
        if t[3] == "after" then
          fine = fine or (pos and pos > spec.n) or
                 (missing and missing > spec.n)
        elseif t[3] == "lawful" then
          fine = got:find("^raise: bad argument") or
                 got:find("^raise: bad self") or not got:find("^raise")
        end
        if not fine then
          count_problems[#count_problems + 1] = ("%s with %d argument(s) + %s: %s, " ..
            "but without: %s"):format(label, spec.n, t[1], got, base)
        end
      end
      if #count_made > 200 then close_count_made() end
    end
    close_count_made()
    if os.getenv("SWEEP_TIMES") then
      io.stderr:write(("%-30s %8.1f ms\n"):format(label, (uv.hrtime() - t0) / 1e6))
    end
  end

  -- One chdir into a scratch directory for the whole sweep: a path-like
  -- value given to a function that creates files lands there.
  local scratch, home
  setup(function()
    home = uv.cwd()
    scratch = os.tmpname()
    os.remove(scratch)
    assert(os.execute("mkdir " .. shell_quote(scratch)))
    assert(uv.chdir(scratch))
  end)
  teardown(function()
    uv.chdir(home)
    os.execute("rm -rf " .. shell_quote(scratch))
  end)

  after_each(function()
    for _, h in pairs(shared) do count_made[#count_made + 1] = h end
    shared = {}
    close_count_made()
    assert_clean()
  end)

  it("every uv function behaves the same with values appended", function()
    local names = {}
    for name, f in pairs(uv) do
      -- walk is safe here: the only function swept is function() end
      if type(f) == "function" and (not skip[name] or name == "walk") then
        names[#names + 1] = name
      end
    end
    table.sort(names)
    assert.truthy(#names > 50, "too few functions to sweep")
    for _, name in ipairs(names) do sweep(name, uv[name], name) end
    assert.equal(0, #count_problems, table.concat(count_problems, "\n"))
    assert.truthy(compared > 10000, "too few comparisons: " .. compared)
  end)

  it("every method behaves the same with values appended", function()
    -- a method that is a uv function too was swept above
    local swept = {}
    for _, f in pairs(uv) do swept[f] = true end
    local seen = 0
    for _, tname in ipairs(type_names) do
      local h = make(tname, "close")
      local index = getmetatable(h).__index
      local methods = {}
      for m in pairs(index) do methods[#methods + 1] = m end
      table.sort(methods)
      close_count_made()
      for _, m in ipairs(methods) do
        local mname = uv[tname .. "_" .. m] and tname .. "_" .. m or m
        seen = seen + 1
        if not skip[mname] and not swept[index[m]] then
          swept[index[m]] = true
          sweep(tname .. ":" .. m, index[m], mname)
        end
      end
    end
    assert.truthy(seen > 100, "too few methods: " .. seen)
    assert.equal(0, #count_problems, table.concat(count_problems, "\n"))
  end)
end)
