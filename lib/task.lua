--[[
task: the coroutine scheduler of luahost.

The main chunk, every connection handler and every spawned function runs
as a task: a coroutine that the loop resumes from libuv callbacks. A call
that would wait yields the current task; the rest of the host keeps running.
All wake-ups go through luahost.resume or lh_resume (C), so a finished or
cancelled task is never resumed by a stale event.

Waiting is done in C (net.core): sleep, yield and every socket wait park
the task with lua_yieldk, and deadlines live in one heap on one uv timer.

Cancellation: task:cancel() resumes the task with the marker core.CANCEL.
The wait it was parked in drops its registration and raises the marker,
so the task unwinds like an error that is not reported: its pending
<close> variables are closed (coroutine.close), then every socket the task
opened (net.listen, net.connect, accept, net.udp) that is still open is
closed.
]]
local host = require "luahost"
local core = require "net.core"

local coroutine_running, coroutine_yield = coroutine.running, coroutine.yield
local resume = host.resume
local CANCEL, DROP = core.CANCEL, core.DROP

local task = {}

local Task = {}
Task.__index = Task
Task.__name = "task"

-- coroutine -> task record; weak keys: a task nobody can wake is garbage.
local tasks = setmetatable({}, {__mode = "k"})
core.init(tasks)

-- A task's record: {co =, status =, main =, results =, err =, joiners =,
-- owned =, cancelled =}. Connection handlers start as `true` in tasks (a
-- running task without a record, to keep idle connections small); the
-- record is made when something asks for it (task.current, join, own).
local function new_record(co, main)
  local t = setmetatable({co = co, status = "running"}, Task)
  if main then t.main = true end
  tasks[co] = t
  return t
end

local function record(co)
  local t = tasks[co]
  if t == true then t = new_record(co, false) end
  return t
end

-- Called by the host for the main chunk's coroutine.
-- The main task is held strongly: the host keeps no reference to its
-- coroutine, and a running coroutine is not a GC root by itself.
local main_task
function task._adopt(co, main)
  local t = new_record(co, main)
  if main then main_task = t end
  return t
end
function task._main() return main_task end

-- The running task's record, or raises: blocking calls need a task.
local function current(fname)
  local co, ismain = coroutine_running()
  local t = record(co)
  if ismain or t == nil then
    error((fname or "this function") .. " must be called from a task " ..
      "(the main chunk, a handler or task.spawn), not from a callback", 3)
  end
  return t, co
end
task._current = current

-- Yield the running task until something resumes it; a cancel raises.
local function wait()
  local a, b, c = coroutine_yield()
  if a == CANCEL then error(CANCEL, 0) end
  while a == DROP do a, b, c = coroutine_yield() end -- (see Task:cancel)
  return a, b, c
end
task._wait = wait

-- Remember a socket the running task opened (closed if it is cancelled
-- or fails). Outside a task, nothing to do.
function task._own(sock)
  local t = record(coroutine_running())
  if t and not t.main then
    local owned = t.owned
    if not owned then
      owned = setmetatable({}, {__mode = "k"})
      t.owned = owned
    end
    owned[sock] = true
  end
  return sock
end

local function close_owned(t)
  local owned = t.owned
  if owned then
    t.owned = nil
    for sock in pairs(owned) do
      if not sock:is_closed() then pcall(sock.close, sock) end
    end
  end
end


-- Joiners are woken through one trampoline: a joiner that finishes in turn
-- queues its own joiners instead of resuming them from inside this call,
-- so a long chain of joins never deepens the C stack.
local ready, ready_head, ready_tail, draining = {}, 1, 0, false
local function wake_joiners(list)
  for i = 1, #list do
    ready_tail = ready_tail + 1
    ready[ready_tail] = list[i]
  end
  if draining then return end
  draining = true
  while ready_head <= ready_tail do
    local co = ready[ready_head]
    ready[ready_head] = nil
    ready_head = ready_head + 1
    resume(co)
  end
  ready_head, ready_tail, draining = 1, 0, false
end

-- The finish hook the host calls when a task returns or fails.
function task._finish(co, ok, ...)
  local t = tasks[co]
  if t == nil then return end
  if t == true then -- a handler nobody asked about
    tasks[co] = nil
    if not ok then
      local traceback, err = ...
      coroutine.close(co)
      if err ~= CANCEL then host.report(traceback) end
    end
    return
  end
  if ok then
    t.status, t.results = "done", table.pack(...)
  else
    local traceback, err = ...
    local cancelled = err == CANCEL or t.cancelled
    t.status, t.err = cancelled and "cancelled" or "failed", err
    -- Close the <close> variables the error left pending.
    coroutine.close(co)
    close_owned(t)
    if not cancelled then
      host.report(traceback)
      if t.main then host.fatal(1) end
    end
  end
  if t.main then host.main_done() end
  local joiners = t.joiners
  if joiners then
    t.joiners = nil
    wake_joiners(joiners)
  end
end

local function check_callable(fn, fname)
  if type(fn) == "function" then return fn end
  local mt = getmetatable(fn)
  if not (mt and mt.__call) then
    error("bad argument #1 to '" .. fname .. "' (function expected, got " ..
      type(fn) .. ")", 3)
  end
  return function(...) return fn(...) end
end
task._check_callable = check_callable

--- Run fn(...) as a new task; returns the task. fn runs at once until its
--- first wait.
function task.spawn(fn, ...)
  fn = check_callable(fn, "spawn")
  local co = coroutine.create(fn)
  local t = new_record(co, false)
  host.start(co, ...)
  return t
end

local function check_seconds(s, fname)
  if type(s) ~= "number" or s ~= s or s < 0 then
    error("bad argument #1 to '" .. fname .. "' (non-negative number " ..
      "expected, got " .. (type(s) == "number" and tostring(s) or type(s)) ..
      ")", 3)
  end
end
task._check_seconds = check_seconds

local core_sleep = core.sleep

-- Start fn(...) as a task without a record (see new_record).
function task._spawn_light(fn, ...)
  local co = coroutine.create(fn)
  tasks[co] = true
  host.start(co, ...)
end

--- Suspend the current task for `seconds` (a number >= 0).
function task.sleep(seconds)
  check_seconds(seconds, "sleep")
  return core_sleep(seconds)
end

--- Let other tasks and callbacks run, then continue.
function task.yield()
  return core_sleep(0, true)
end

local hrtime = require("uv").hrtime

--- Seconds since an arbitrary point, monotonic (float).
function task.now()
  return hrtime() / 1e9
end

--- The running task, or nil outside a task.
function task.current()
  return record(coroutine_running())
end

--- Wait for the task to finish: its results, or nil, err ("cancelled"
--- for a cancelled task, the error value for a failed one).
function Task:join()
  local me, co = current("join")
  if me == self then error("a task cannot join itself", 2) end
  while self.status == "running" do
    local j = self.joiners or {}
    self.joiners = j
    j[#j + 1] = co
    wait()
  end
  if self.status == "done" then
    return table.unpack(self.results, 1, self.results.n)
  end
  if self.status == "cancelled" then return nil, "cancelled" end
  return nil, self.err
end

--- Stop the task at its current wait. Returns true if it was running.
--- Cancelling the running task itself unwinds it at once.
function Task:cancel()
  if self.status ~= "running" then return false end
  local co = self.co
  self.cancelled = true
  if co == coroutine_running() then error(CANCEL, 0) end
  local st = coroutine.status(co)
  if st == "normal" then
    error("cannot cancel a task that is resuming the current one", 2)
  end
  -- Each wait it is parked in raises the marker; a task that catches it
  -- (pcall) and waits again gets it again, a few times, then is closed.
  for _ = 1, 8 do
    resume(co, CANCEL)
    if self.status ~= "running" or coroutine.status(co) ~= "suspended" then
      break
    end
  end
  if self.status == "running" and coroutine.status(co) == "suspended" then
    -- The wait it is parked in drops its registration and stays parked
    -- (a wait closed with the coroutine would stay registered: its socket
    -- or signal would keep the host alive), then the coroutine is closed.
    resume(co, DROP)
    if self.status == "running" and coroutine.status(co) == "suspended" then
      coroutine.close(co)
      task._finish(co, false, "cancelled", CANCEL)
    end
  end
  return true
end

--- on_signal(name, fn): run fn(name) as a new task each time the signal
--- arrives; returns a function that stops it. The watcher does not keep
--- the host alive by itself.
function task.on_signal(name, fn)
  fn = check_callable(fn, "on_signal")
  if type(name) ~= "string" and math.type(name) ~= "integer" then
    error("bad argument #1 to 'on_signal' (signal name expected, got " ..
      type(name) .. ")", 2)
  end
  local h = assert(core.signal(name, function(n) task.spawn(fn, n) end))
  return function()
    if not h:is_closing() then h:close() end
  end
end

--- wait_signal(name...): block the task until one of the signals arrives;
--- returns its name as given.
function task.wait_signal(...)
  local _, co = current("task.wait_signal")
  local n = select("#", ...)
  if n == 0 then error("bad argument #1 to 'wait_signal' (signal name " ..
    "expected, got no value)", 2) end
  local got
  local handles = {}
  local function stop()
    for i = 1, #handles do
      if not handles[i]:is_closing() then handles[i]:close() end
    end
  end
  local function on(name)
    if got == nil then
      got = name
      stop()
      resume(co, name)
    end
  end
  for i = 1, n do
    local name = select(i, ...)
    local ok, h = pcall(core.signal, name, on, true)
    if not ok then
      stop()
      error(h:gsub("#1 to 'signal'", "#" .. i .. " to 'wait_signal'"), 2)
    end
    handles[i] = h
  end
  local a = coroutine_yield()
  if a == CANCEL or a == DROP then
    stop()
    while a == DROP do a = coroutine_yield() end -- (see Task:cancel)
    error(CANCEL, 0)
  end
  return got
end

function Task:__tostring()
  return "task (" .. self.status .. ")"
end

-- {===== worker processes and threads (host/workers.c, host/thread.c) =====
-- Kept in one block at the end: owned by the workers branch.
local thread = require "luahost.thread"

--- This worker's id (1..count) and the worker count, or nil when the
--- process is not one of a --workers group.
function task.worker()
  local id, count = host.worker()
  if id == nil then return nil end
  return id, count
end

--- True once this process started to drain (SIGTERM under --workers,
--- --daemon or --pidfile): finish the work at hand, take no new work.
function task.exiting()
  return host.exiting()
end

-- A cancel resumes the waiting task with the marker: raise it (the job
-- was detached and told to stop).
local function thread_result(a, ...)
  if a == CANCEL then error(CANCEL, 0) end
  return a, ...
end

--- Run fn_or_source(...) in a fresh Lua state on libuv's thread pool and
--- wait for it: its results, or nil, err (with the thread's traceback).
function task.thread(fn, ...)
  local t = type(fn)
  if t ~= "function" and t ~= "string" then
    error("bad argument #1 to 'thread' (function or string expected, got " ..
      t .. ")", 2)
  end
  current("task.thread")
  return thread_result(thread.run(fn, ...))
end
-- }=====

return task
