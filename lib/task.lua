--[[
task: the coroutine scheduler of luahost.

The main chunk, every connection handler and every spawned function runs
as a task: a coroutine that the loop resumes from libuv callbacks. A call
that would wait yields the current task; the rest of the host keeps running.
All wake-ups go through luahost.resume (C), so a finished or cancelled
task is never resumed by a stale event.
]]
local uv = require "uv"
local host = require "luahost"

local coroutine_running, coroutine_yield = coroutine.running, coroutine.yield
local resume = host.resume

local task = {}

local Task = {}
Task.__index = Task
Task.__name = "task"

-- coroutine -> task record; weak keys: a task nobody can wake is garbage.
local tasks = setmetatable({}, {__mode = "k"})

local function new_record(co, main)
  local t = setmetatable({co = co, main = main, status = "running"}, Task)
  tasks[co] = t
  return t
end

-- Called by the host for the main chunk's coroutine.
-- The main task is held strongly (the others by whatever will wake them).
function task._adopt(co, main)
  local t = new_record(co, main)
  if main then task._main = t end
  return t
end

-- The running task's record, or raises: blocking calls need a task.
local function current(fname)
  local co, ismain = coroutine_running()
  local t = tasks[co]
  if ismain or t == nil then
    error((fname or "this function") .. " must be called from a task " ..
      "(the main chunk, a handler or task.spawn), not from a callback", 3)
  end
  return t, co
end
task._current = current

-- The finish hook the host calls when a task returns or fails.
function task._finish(co, ok, ...)
  local t = tasks[co]
  if t == nil then return end
  if ok then
    t.status, t.results = "done", table.pack(...)
  else
    local traceback, err = ...
    t.status, t.err = "failed", err
    -- Close the <close> variables the error left pending.
    coroutine.close(co)
    if not t.cancelled then
      host.report(traceback)
      if t.main then host.fatal(1) end
    end
  end
  if t.main then host.main_done() end
  local joiners = t.joiners
  if joiners then
    t.joiners = nil
    for i = 1, #joiners do resume(joiners[i]) end
  end
end

--- Run fn(...) as a new task; returns the task.
function task.spawn(fn, ...)
  if type(fn) ~= "function" then
    local mt = getmetatable(fn)
    if not (mt and mt.__call) then
      error("bad argument #1 to 'spawn' (function expected, got " ..
        type(fn) .. ")", 2)
    end
  end
  if type(fn) ~= "function" then
    local callable = fn
    fn = function(...) return callable(...) end
  end
  local co = coroutine.create(fn)
  local t = new_record(co, false)
  host.start(co, ...)
  return t
end

--- Suspend the current task for `seconds` (a number >= 0).
function task.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("bad argument #1 to 'sleep' (non-negative number expected, got " ..
      (type(seconds) == "number" and tostring(seconds) or type(seconds)) ..
      ")", 2)
  end
  local _, co = current("task.sleep")
  local timer = uv.new_timer()
  timer:start(math.floor(seconds * 1000 + 0.5), 0, function()
    timer:close()
    resume(co)
  end)
  coroutine_yield()
end

--- Let other tasks and callbacks run, then continue.
function task.yield()
  local _, co = current("task.yield")
  local idle = uv.new_timer()
  idle:start(0, 0, function()
    idle:close()
    resume(co)
  end)
  coroutine_yield()
end

--- Seconds since an arbitrary point, from the loop's clock (float).
function task.now()
  return uv.hrtime() / 1e9
end

--- The running task, or nil outside a task.
function task.current()
  return tasks[coroutine_running()]
end

--- Wait for the task to finish: its results, or nil, err.
function Task:join()
  local me, co = current("join")
  if me == self then error("a task cannot join itself", 2) end
  while self.status == "running" do
    local j = self.joiners or {}
    self.joiners = j
    j[#j + 1] = co
    coroutine_yield()
  end
  if self.status == "done" then
    return table.unpack(self.results, 1, self.results.n)
  end
  return nil, self.cancelled and "cancelled" or self.err
end

function Task:__tostring()
  return "task (" .. self.status .. ")"
end

return task
