--[[
task: the coroutine scheduler of luahost.

The main chunk, every connection handler and every spawned function runs
as a task: a coroutine that the loop resumes from libuv callbacks. A call
that would wait yields the current task; the rest of the host keeps running.
Events resume a task through lh_resume (C, lib/net_sched.c, with the rest
of the scheduler), which ignores a finished or cancelled one; a task
woken by another task (join, queues, events, server slots) goes through
net.core's ready queue (core.wake), see "One wake discipline" below.

Waiting is done in C (net.core): sleep, yield and every socket wait park
the task with lua_yieldk, and deadlines live in one heap on one uv timer.

Cancellation: task:cancel() resumes the task with the marker core.CANCEL.
The wait it was parked in drops its registration and raises the marker,
so the task unwinds like an error that is not reported: its pending
<close> variables are closed (coroutine.close), then every socket the task
opened (net.listen, net.connect, accept, net.udp) that is still open is
closed.
]]
-- The host's plumbing (resume, start, report, fatal, main_done), out of the
-- public luahost table; this module adds its own hooks as private.task.
local private = select(2, ...)
local core = private.require "net.core"
local uv = require "uv"

local coroutine_running, coroutine_yield = coroutine.running, coroutine.yield
local resume = private.resume
local CANCEL, DROP = core.CANCEL, core.DROP

local task = {}
-- The hooks the host (finish, adopt) and net.lua (own, park, ...) use.
local hooks = {}
private.task = hooks

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
function hooks.adopt(co, main)
  local t = new_record(co, main)
  if main then main_task = t end
  return t
end
function hooks.main() return main_task end

-- The running task's record, or raises (at the caller of the function
-- that asks): blocking calls need a task that can yield (checked in C, as
-- for every wait of net.core).
local need_task = core.need_task
local function current(fname)
  local co = coroutine_running()
  need_task(fname or "this function", 3)
  return record(co), co
end
hooks.current = current

-- Remember a socket the running task opened (closed if it is cancelled
-- or fails). Outside a task, nothing to do. owner_of: sock -> the owned
-- set it is in, so that closing it takes it out at once (disown): the
-- weak keys are only for sockets dropped unclosed. (Left to the GC, a
-- task that opens and closes thousands of sockets fills its set with
-- dead entries, and the set grows with them until a cycle runs.)
local owner_of = setmetatable({}, {__mode = "k"})
function hooks.own(sock)
  local t = record(coroutine_running())
  if t and not t.main then
    local owned = t.owned
    if not owned then
      owned = setmetatable({}, {__mode = "k"})
      t.owned = owned
    end
    owned[sock] = true
    owner_of[sock] = owned
  end
  return sock
end

-- sock is closed: no task owns it any more.
function hooks.disown(sock)
  local owned = owner_of[sock]
  if owned then
    owned[sock] = nil
    owner_of[sock] = nil
  end
end

local function close_owned(t)
  local owned = t.owned
  if owned then
    t.owned = nil
    for sock in pairs(owned) do
      owner_of[sock] = nil
      if not sock:is_closed() then pcall(sock.close, sock) end
    end
  end
end

-- One wake discipline: whatever a task waits for (a join, a queue, an
-- event, a free connection slot of a server), its waker never resumes it
-- directly: core.wake moves it to net.core's ready queue, run after the
-- next poll in the order woken. So a waker returns before the woken task
-- runs, and no chain of wake-ups (a joiner that finishes and wakes its
-- own joiners...) deepens the C stack. (I/O, deadlines and signals resume
-- from their libuv callback: that is already the loop's turn.)
local park, wake = core.park, core.wake

-- Raise the cancel marker a park returned; a drop marker stays parked
-- first (see Task:cancel).
local function cancelled(r)
  while r == DROP do r = coroutine_yield() end
  error(CANCEL, 0)
end
hooks.park, hooks.wake, hooks.cancelled = park, wake, cancelled

-- Where a failed task's traceback goes: task.on_error's function, or the
-- host's report (stderr). A failing function is reported itself, then
-- the original error, so nothing is lost.
local on_error
local function report(traceback, t)
  if on_error then
    local ok, e = pcall(on_error, traceback, t)
    if ok then return end
    private.report("task.on_error: " .. tostring(e))
  end
  private.report(traceback)
end

-- The finish hook the host calls when a task returns or fails.
function hooks.finish(co, ok, ...)
  local t = tasks[co]
  if t == nil then return end
  if t == true then -- a handler nobody asked about
    tasks[co] = nil
    if not ok then
      local traceback, err = ...
      coroutine.close(co)
      if err ~= CANCEL then report(traceback, nil) end
    end
    return
  end
  if ok then
    t.status, t.results = "done", table.pack(...)
  else
    local traceback, err = ...
    local stopped = err == CANCEL or t.cancelled
    t.status, t.err = stopped and "cancelled" or "failed", err
    -- Close the <close> variables the error left pending.
    coroutine.close(co)
    close_owned(t)
    if not stopped then
      report(traceback, t)
      if t.main then private.fatal(1) end
    end
  end
  if t.main then private.main_done() end
  -- (a finished task is found through its Task object, never through
  -- its coroutine: no dead entry left for the GC to clear)
  tasks[co] = nil
  local joiners = t.joiners
  if joiners then
    t.joiners = nil
    for i = 1, #joiners do wake(joiners[i]) end
  end
end

local function check_callable(fn, fname, n)
  if type(fn) == "function" then return fn end
  local mt = getmetatable(fn)
  if not (mt and mt.__call) then
    error("bad argument #" .. (n or 1) .. " to '" .. fname ..
      "' (function expected, got " .. type(fn) .. ")", 3)
  end
  return function(...) return fn(...) end
end
hooks.check_callable = check_callable

--- on_error(fn): fn(traceback, t) receives the error (with its
--- traceback) of every task that fails from now on, in place of the
--- report on stderr (t: the task, nil for a connection handler nobody
--- asked about); nil restores the report. Returns the previous fn.
function task.on_error(fn)
  if fn ~= nil then fn = check_callable(fn, "on_error") end
  local prev = on_error
  on_error = fn
  return prev
end

--- Run fn(...) as a new task; returns the task. fn runs at once until its
--- first wait (from a finalizer, __gc: at the loop's next turn).
function task.spawn(fn, ...)
  fn = check_callable(fn, "spawn")
  local co
  if collectgarbage("isrunning") then
    co = coroutine.create(fn)
  else
    -- In a finalizer (the collector does not run while one does; or the
    -- script stopped it): not at once. A finalizer runs inside whatever
    -- allocated, net's own C code included, and a task that started
    -- there and waited on a socket left net's state broken (a crash
    -- under load, spec/finalizers_spec.lua). It first yields to the
    -- ready queue, which the loop runs from a clean stack.
    local f = fn
    co = coroutine.create(function(...)
      core.sleep(0, true)
      return f(...)
    end)
  end
  local t = new_record(co, false)
  private.start(co, ...)
  return t
end

local function check_seconds(s, fname, level)
  if type(s) ~= "number" or s ~= s or s < 0 then
    error("bad argument #1 to '" .. fname .. "' (non-negative number " ..
      "expected, got " .. (type(s) == "number" and tostring(s) or type(s)) ..
      ")", level or 3)
  end
end
hooks.check_seconds = check_seconds

local core_sleep = core.sleep

-- Start fn(...) as a task without a record (see new_record).
function hooks.spawn_light(fn, ...)
  local co = coroutine.create(fn)
  tasks[co] = true
  private.start(co, ...)
end

-- Is co a task without a record (nobody asked about it: it may be
-- reused for other work, see net.lua's rest workers)?
function hooks.is_light(co) return tasks[co] == true end
hooks.tasks = tasks -- (net.lua's rest workers ask it inline, once a round)

--- Suspend the current task for `seconds` (a number >= 0).
function task.sleep(seconds)
  check_seconds(seconds, "sleep")
  return core_sleep(seconds)
end

--- Let other tasks and callbacks run, then continue.
function task.yield()
  return core_sleep(0, true)
end

--- Seconds since an arbitrary point, monotonic (float): uv.hrtime() / 1e9,
--- in C (net.core: a handler reading it needs no deeper call frame).
task.now = core.now

--- The running task, or nil outside a task.
function task.current()
  return record(coroutine_running())
end

-- t:join() and t:cancel() take the task alone: a value more (t:join(5),
-- meant as a timeout, say) is a mistake to name, not to ignore.
local function check_self(self, fname, ...)
  if getmetatable(self) ~= Task then
    error(("bad argument #1 to '%s' (task expected, got %s)"):format(fname,
      type(self)), 3)
  end
  if select("#", ...) > 0 then
    error(("bad argument #2 to '%s' (no value expected)"):format(fname), 3)
  end
end

--- Wait for the task to finish: its results, or nil, err ("cancelled"
--- for a cancelled task, the error value for a failed one).
function Task:join(...)
  check_self(self, "join", ...)
  local me, co = current("join")
  if me == self then error("a task cannot join itself", 2) end
  while self.status == "running" do
    local j = self.joiners or {}
    self.joiners = j
    j[#j + 1] = co
    local r = park(nil, "join")
    if r ~= true then
      for i = #j, 1, -1 do
        if j[i] == co then table.remove(j, i) break end
      end
      cancelled(r)
    end
  end
  if self.status == "done" then
    return table.unpack(self.results, 1, self.results.n)
  end
  if self.status == "cancelled" then return nil, "cancelled" end
  return nil, self.err
end

--- Stop the task at its current wait. Returns true if it was running.
--- Cancelling the running task itself unwinds it at once.
function Task:cancel(...)
  check_self(self, "cancel", ...)
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
      hooks.finish(co, false, "cancelled", CANCEL)
    end
  end
  return true
end

-- {===== signals: Lua over uv's signal watchers (bindings/signal.c)

-- A started uv signal watcher that calls fn(name), name as given; it
-- keeps the host alive only with keepalive. nil, message for a bad name
-- (as argument n of fname) or a watcher libuv refused.
local function watch(name, fn, keepalive, n, fname)
  local h, msg = uv.new_signal()
  if not h then return nil, fname .. ": " .. msg end
  local ok, r, err = pcall(h.start, h, name, function() fn(name) end)
  if not ok or not r then
    h:close()
    if not ok then
      return nil, (tostring(r):gsub("^bad argument #2 to '[%w_.]+'",
        "bad argument #" .. n .. " to '" .. fname .. "'"))
    end
    return nil, fname .. ": " .. tostring(err)
  end
  if not keepalive then h:unref() end
  return h
end

--- on_signal(name, fn): run fn(name) as a new task each time the signal
--- arrives; returns a function that stops it. The watcher does not keep
--- the host alive by itself.
function task.on_signal(name, fn)
  fn = check_callable(fn, "on_signal", 2)
  if type(name) ~= "string" and math.type(name) ~= "integer" then
    error("bad argument #1 to 'on_signal' (signal name expected, got " ..
      type(name) .. ")", 2)
  end
  local h, err = watch(name, function(n) task.spawn(fn, n) end, false, 1,
    "on_signal")
  if not h then error(err, 2) end
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
    local h, err = watch(select(i, ...), on, true, i, "wait_signal")
    if not h then
      stop()
      error(err, 2)
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
-- }=====

function Task:__tostring()
  return "task (" .. self.status .. ")"
end

-- {===== queues and events
-- A waiter is {co =, ok =, prev =, next =} on a doubly linked FIFO list,
-- so one that times out or is cancelled leaves from the middle at once.
-- Waking never resumes a task here: core.wake moves it to net.core's
-- ready queue (run after the next poll, in the order woken), so a put
-- returns before the getter runs and no chain of wake-ups deepens the C
-- stack.
--
-- A woken waiter holds a reservation until it runs: a getter an item
-- (q.gres: items in the queue promised to woken getters), a putter a
-- slot (q.pres). So a task that calls get or put meanwhile cannot take
-- what a woken waiter was promised (FIFO stays FIFO), #q never exceeds
-- max, and a woken waiter cancelled before it ran only gives its
-- reservation back: an item leaves the queue only in a get that returns
-- it, and enters only in a put that returns true.
local function link(list, w)
  local tail = list.tail
  w.prev = tail
  if tail then tail.next = w else list.head = w end
  list.tail = w
end

local function unlink(list, w)
  local p, n = w.prev, w.next
  if p then p.next = n elseif list.head == w then list.head = n else
    return -- not on the list
  end
  if n then n.prev = p else list.tail = p end
  w.prev, w.next = nil, nil
end

-- The first waiter that can still be woken, taken off the list and woken
-- with ok (true or "closed"); nil if none.
local function wake_first(list, ok)
  local w = list.head
  while w do
    unlink(list, w)
    w.ok = ok
    if wake(w.co) then return w end
    w = list.head -- (not parked: it failed before it could wait)
  end
  return nil
end

local function bad_self(fname, want, v)
  error(("calling '%s' on bad self (%s expected, got %s)"):format(fname,
    want, type(v)), 3)
end

-- The running coroutine, if it may park; raises otherwise. Checked
-- before the waiter goes on a list: a park that raised would leave it
-- there, and a later wake would reach the task in another wait.
local function waiter_co(fname)
  need_task(fname, 3)
  return (coroutine_running())
end

local function check_timeout(timeout, fname)
  if timeout ~= nil then check_seconds(timeout, fname, 4) end
end

local Queue = {__name = "task.queue"}
Queue.__index = Queue

--- queue([max]): a FIFO queue between tasks; put blocks while max items
--- are queued (max nil: never).
function task.queue(max)
  if max ~= nil and (math.type(max) ~= "integer" or max < 1) then
    error("bad argument #1 to 'queue' (positive integer expected, got " ..
      (type(max) == "number" and tostring(max) or type(max)) .. ")", 2)
  end
  return setmetatable({items = {}, first = 1, n = 0, max = max,
    gres = 0, pres = 0, closed = false, getters = {}, putters = {}}, Queue)
end

-- Promise the items nobody was promised to the waiting getters, and the
-- free slots to the waiting putters.
local function settle(q)
  while q.n > q.gres and q.getters.head do
    if not wake_first(q.getters, true) then break end
    q.gres = q.gres + 1
  end
  local max = q.max
  if max then
    while q.n + q.pres < max and q.putters.head do
      if not wake_first(q.putters, true) then break end
      q.pres = q.pres + 1
    end
  end
end

local function take(q)
  local i = q.first
  local v = q.items[i]
  q.items[i] = nil
  q.first, q.n = i + 1, q.n - 1
  if q.n == 0 then q.first = 1 end
  settle(q)
  return v
end

local function add(q, v)
  q.items[q.first + q.n] = v
  q.n = q.n + 1
  settle(q)
  return true
end

--- q:put(v): append v (not nil); blocks the task while the queue is
--- full. true, or nil, "closed" (v was not added).
function Queue:put(v)
  if getmetatable(self) ~= Queue then bad_self("put", "task.queue", self) end
  if v == nil then
    error("bad argument #1 to 'put' (value expected, got nil)", 2)
  end
  if self.closed then return nil, "closed" end
  local max = self.max
  if max == nil or self.n + self.pres < max then return add(self, v) end
  local w = {co = waiter_co("queue:put")}
  link(self.putters, w)
  local r = park(nil, "queue:put")
  if r == true then
    if w.ok == "closed" then return nil, "closed" end
    self.pres = self.pres - 1
    if self.closed then -- a slot promised before close: v stays out
      settle(self)
      return nil, "closed"
    end
    return add(self, v)
  end
  if w.ok == true then -- woken, then cancelled before it ran
    self.pres = self.pres - 1
    settle(self)
  elseif not w.ok then
    unlink(self.putters, w)
  end
  cancelled(r)
end

--- q:get([timeout]): the first item; blocks the task while the queue is
--- empty. v, or nil, "timeout", or nil, "closed" once closed and empty.
function Queue:get(timeout)
  if getmetatable(self) ~= Queue then bad_self("get", "task.queue", self) end
  check_timeout(timeout, "get")
  if self.n > self.gres then return take(self) end
  if self.closed then return nil, "closed" end
  if timeout == 0 then return nil, "timeout" end
  local w = {co = waiter_co("queue:get")}
  link(self.getters, w)
  local r = park(timeout, "queue:get")
  if r == true then
    if w.ok == "closed" then return nil, "closed" end
    self.gres = self.gres - 1
    return take(self)
  end
  if w.ok == true then -- woken, then cancelled before it ran: the item stays
    self.gres = self.gres - 1
    settle(self)
  elseif not w.ok then
    unlink(self.getters, w)
  end
  if r == false then return nil, "timeout" end
  cancelled(r)
end

--- q:close(): no more puts; waiting getters get nil, "closed" (later
--- gets take what is left first), waiting putters nil, "closed".
function Queue:close()
  if getmetatable(self) ~= Queue then
    bad_self("close", "task.queue", self)
  end
  if self.closed then return end
  self.closed = true
  -- every getter still waiting has no item coming: the queue is drained
  -- of unpromised items, or it would have been woken
  while wake_first(self.getters, "closed") do end
  while wake_first(self.putters, "closed") do end
end

--- The number of items queued.
function Queue:len()
  if getmetatable(self) ~= Queue then bad_self("len", "task.queue", self) end
  return self.n
end
Queue.__len = Queue.len

function Queue:__tostring()
  return ("task.queue (%d%s%s)"):format(self.n,
    self.max and "/" .. self.max or "", self.closed and ", closed" or "")
end

local Event = {__name = "task.event"}
Event.__index = Event

--- event(): a flag tasks wait for; starts clear.
function task.event()
  return setmetatable({set_ = false, waiters = {}}, Event)
end

--- e:wait([timeout]): true once set (at once if it is), or nil, "timeout".
function Event:wait(timeout)
  if getmetatable(self) ~= Event then bad_self("wait", "task.event", self) end
  check_timeout(timeout, "wait")
  if self.set_ then return true end
  if timeout == 0 then return nil, "timeout" end
  local w = {co = waiter_co("event:wait")}
  link(self.waiters, w)
  local r = park(timeout, "event:wait")
  if r == true then return true end
  unlink(self.waiters, w) -- (a no-op once woken)
  if r == false then return nil, "timeout" end
  cancelled(r)
end

--- e:set(): wake every waiter; waits return at once until clear().
function Event:set()
  if getmetatable(self) ~= Event then bad_self("set", "task.event", self) end
  if self.set_ then return end
  self.set_ = true
  while wake_first(self.waiters, true) do end
end

--- e:clear(): later waits block again.
function Event:clear()
  if getmetatable(self) ~= Event then
    bad_self("clear", "task.event", self)
  end
  self.set_ = false
end

--- e:is_set() -> boolean
function Event:is_set()
  if getmetatable(self) ~= Event then
    bad_self("is_set", "task.event", self)
  end
  return self.set_
end

function Event:__tostring()
  return "task.event (" .. (self.set_ and "set" or "clear") .. ")"
end
-- }=====

-- {===== worker processes and threads (host/worker.c, host/drain.c,
-- host/thread.c) =====
local luahost = require "luahost"
local thread = private.require "luahost.thread"

--- This worker's id (1..count) and the worker count, or nil when the
--- process is not one of a --workers group.
function task.worker()
  local id, count = luahost.worker()
  if id == nil then return nil end
  return id, count
end

--- True once this process started to drain (SIGTERM under --workers,
--- --daemon or --pidfile): finish the work at hand, take no new work.
function task.exiting()
  return luahost.exiting()
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
