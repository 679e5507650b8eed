--[[
spec/support/process_helper.lua: luahost processes that run in the background
while a spec talks to them or signals them (workers, daemon specs).

  local proc = require "process_helper"
  local p = proc.start({"--workers", "2", script}, {env = "X=1"})
  p.pid                 the luahost process (not a shell around it)
  p:out(), p:err()      what it printed so far
  p:code()              its exit status once it ended, else nil
  p:signal("TERM")      kill -TERM pid
  p:wait_exit([secs])   wait (bounded) and return the exit status
  p:stop()              for finally(): SIGKILL if still running
  proc.wait(cond[, secs, what])  drive the loop until cond() (bounded)
  proc.write(path, text)
  proc.alive(pid)       running (not a zombie)
]]
local uv = require "uv"

local M = {}

local function slurp(name)
  local f = io.open(name, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- Drive the loop until cond() is true, waking every 10 ms to ask.
function M.wait(cond, secs, what)
  secs = secs or TEST_TIMEOUT
  local tick = uv.new_timer()
  tick:start(10, 10, function() end)
  local ok = pcall(run_loop, cond, secs)
  tick:close()
  uv.run("nowait")
  if not ok then
    error(("%s: not within %gs"):format(what or "condition", secs), 2)
  end
end

-- Running (a zombie, dead but not yet reaped by whoever adopted it, is
-- not alive).
function M.alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  -- (read fails when the process went between open and read: gone)
  local stat = f:read("a") or ""
  f:close()
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

function M.kill(pid, sig)
  os.execute(("kill -%s %d 2>/dev/null"):format(sig or "TERM", pid))
end

local Proc = {}
Proc.__index = Proc

function Proc:out() return slurp(self.outf) end
function Proc:err() return slurp(self.errf) end

function Proc:code()
  if self.status then return self.status end
  local s = slurp(self.codef)
  if s:match("%d") then self.status = tonumber(s:match("%d+")) end
  return self.status
end

function Proc:signal(sig) M.kill(self.pid, sig) end

function Proc:wait_exit(secs)
  M.wait(function() return self:code() ~= nil end, secs or TEST_TIMEOUT,
    "process " .. self.pid .. " to exit")
  return self:code()
end

-- Wait until the process printed something matching pattern on out or err.
function Proc:wait_for(pattern, secs, which)
  local get = which == "err" and Proc.err or Proc.out
  M.wait(function() return get(self):match(pattern) ~= nil end, secs,
    ("output matching %q (so far: %q / %q)"):format(pattern, self:out(),
      self:err()))
  return get(self):match(pattern)
end

function Proc:stop()
  if self:code() == nil then
    M.kill(self.pid, "KILL")
    pcall(self.wait_exit, self, 5)
  end
  for _, f in ipairs{self.pidf, self.outf, self.errf, self.codef} do
    os.remove(f)
  end
end

-- Start LUAHOST with args (a list of words) in the background. The shell
-- records its pid and then execs luahost, so pid is luahost's own.
function M.start(args, opts)
  opts = opts or {}
  local q = {}
  for i, a in ipairs(args) do q[i] = shell_quote(a) end
  local p = setmetatable({pidf = os.tmpname(), outf = os.tmpname(),
    errf = os.tmpname(), codef = os.tmpname()}, Proc)
  os.remove(p.pidf)
  os.remove(p.codef)
  local cmd = ("(%s %s sh -c 'echo $$ >%s; exec \"$0\" \"$@\"' %s %s; " ..
    "echo $? >%s) >%s 2>%s </dev/null &"):format(
    opts.env or "", opts.wrapper or "", p.pidf, shell_quote(LUAHOST),
    table.concat(q, " "), p.codef, p.outf, p.errf)
  assert(os.execute(cmd))
  -- (the shell writes the pid first thing; a loaded 2-core machine under
  -- ASan has taken more than 5 s to get there, and a start given up on
  -- would leave its process running with no one to stop it)
  M.wait(function() return slurp(p.pidf):match("%d+") ~= nil end,
    3 * TEST_TIMEOUT, "luahost to start")
  p.pid = tonumber(slurp(p.pidf):match("%d+"))
  return p
end

return M
