--[[
spec/helper.lua: what network specs need, in the manner of luv's test
harness and lua-http's spec helper.

  TEST_TIMEOUT            seconds a loop may run before a spec fails
  run_loop(cond[, secs])  run the loop until cond() is true; fails loudly
                          on timeout (never hangs)
  expect(fn[, n])         wrap fn; assert_clean() fails unless it was called
                          exactly n times (default 1)
  assert_clean()          expectations met, no handle left open (closes the
                          leftovers so the next spec starts clean)
  run_host(args[, input]) run build/luahost as a separate process (bounded
                          by `timeout`); returns stdout, stderr, exit status
  LUAHOST                 path of the luahost binary under test
  tmpname()               a fresh temporary file path, removed at exit
]]
local uv = require "uv"

TEST_TIMEOUT = tonumber(os.getenv("LUAHOST_TEST_TIMEOUT")) or 10
LUAHOST = os.getenv("LUAHOST") or "build/luahost"
-- true inside spec/run.sh's private network namespace
PRIVATE_NET = os.getenv("LUAHOST_NETNS") == "1"

local expectations = {}

function expect(fn, n)
  local e = {calls = 0, want = n or 1, where = debug.traceback("", 2)}
  expectations[#expectations + 1] = e
  return function(...)
    e.calls = e.calls + 1
    if fn then return fn(...) end
  end
end

function run_loop(cond, seconds)
  seconds = seconds or TEST_TIMEOUT
  local timed_out = false
  local guard = uv.new_timer()
  guard:start(math.floor(seconds * 1000), 0, function() timed_out = true end)
  -- run("once") still blocks in poll after a callback ran in the timers
  -- phase; a prepare watcher (just before poll) stops the loop once cond
  -- holds, so the wait ends there instead of at the next event.
  local early = cond and uv.new_prepare and uv.new_prepare()
  if early then
    early:unref()
    early:start(function()
      local ok, met = pcall(cond)
      if not ok or met then uv.stop() end
    end)
  end
  while not (cond and cond()) and not timed_out do
    if not uv.run("once") and not cond then break end
  end
  if early then early:close() end
  if not guard:is_closing() then guard:close() end
  uv.run("nowait") -- let the guard's close complete
  if timed_out and not (cond and cond()) then
    error(("run_loop: condition not met within %gs"):format(seconds), 2)
  end
end

local function open_handles()
  local list = {}
  uv.walk(function(h)
    if not h:is_closing() then list[#list + 1] = h end
  end)
  return list
end

function assert_clean()
  local errors = {}
  for _, e in ipairs(expectations) do
    if e.calls ~= e.want then
      errors[#errors + 1] = ("expected %d call(s), got %d%s"):format(
        e.want, e.calls, e.where)
    end
  end
  expectations = {}
  local left = open_handles()
  if #left > 0 then
    local names = {}
    for i, h in ipairs(left) do
      names[i] = tostring(h)
      h:close()
    end
    errors[#errors + 1] = #left .. " unclosed handle(s): " ..
      table.concat(names, ", ")
  end
  -- let close callbacks run (bounded)
  for _ = 1, 10 do
    if not uv.run("nowait") then break end
  end
  if #errors > 0 then error(table.concat(errors, "\n"), 2) end
end

local tmpfiles = {}
function tmpname()
  local name = os.tmpname()
  tmpfiles[#tmpfiles + 1] = name
  return name
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_G.shell_quote = shell_quote

-- Run luahost with args (a string of shell words, or a list of words).
function run_host(args, input, env)
  if type(args) == "table" then
    local q = {}
    for i, a in ipairs(args) do q[i] = shell_quote(a) end
    args = table.concat(q, " ")
  end
  local inf, outf, errf = tmpname(), tmpname(), tmpname()
  local f = assert(io.open(inf, "wb"))
  f:write(input or "")
  f:close()
  local cmd = ("%s timeout -s KILL 60 %s %s <%s >%s 2>%s"):format(
    env or "", shell_quote(LUAHOST), args, inf, outf, errf)
  local _, _, code = os.execute(cmd)
  local function slurp(name)
    local h = assert(io.open(name, "rb"))
    local s = h:read("a")
    h:close()
    os.remove(name)
    return s
  end
  os.remove(inf)
  return slurp(outf), slurp(errf), code
end

-- Temporary files are removed when the suite's state closes.
setmetatable(tmpfiles, {__gc = function(t)
  for _, name in ipairs(t) do os.remove(name) end
end})

--[[
  run_task(fn[, secs])    run fn as a task (net and task calls block it) and
                          run the loop until it finished; re-raises its error
                          with its traceback; returns fn's results
]]
function run_task(fn, seconds)
  local task = require "task"
  local done, res = false, nil
  task.spawn(function()
    res = table.pack(xpcall(fn, debug.traceback))
    done = true
    -- run_loop's uv.run("once") may be about to poll: make it return now
    require("uv").stop()
  end)
  run_loop(function() return done end, seconds)
  if not res[1] then error(res[2], 2) end
  return table.unpack(res, 2, res.n)
end
