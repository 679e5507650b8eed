--[[
spec/support/helper.lua: what network specs need, in the manner of luv's test
harness and lua-http's spec helper.

  TEST_TIMEOUT            seconds a loop may run before a spec fails
  run_loop(cond[, secs])  run the loop until cond() is true; fails loudly
                          on timeout (never hangs)
  expect(fn[, n])         wrap fn; assert_clean() fails unless it was called
                          exactly n times (default 1)
  assert_clean()          expectations met, no handle left open (closes the
                          leftovers so the next spec starts clean), no file
                          left in the working tree (see below)
  run_host(args[, input]) run build/luahost as a separate process (bounded
                          by `timeout`); returns stdout, stderr, exit status
  LUAHOST                 path of the luahost binary under test
  tmpname()               a fresh temporary file path, removed at exit
  tmpfile(text[, suffix]) text written to a fresh temporary file (its
                          name ends in suffix, e.g. ".lua"), removed at
                          exit; returns the path
]]
local uv = require "uv"

-- White-box specs read the C core's numbers (net.core.stats) and call its
-- parsers directly: the helper grants them the private C modules, which
-- no script can require (the host hands them to its embedded modules).
do
  local private = debug.getregistry()["luahost.private"]
  for _, name in ipairs({"net.core", "luahost.thread"}) do
    package.preload[name] = function() return private.require(name) end
  end
end

TEST_TIMEOUT = tonumber(os.getenv("LUAHOST_TEST_TIMEOUT")) or 10
LUAHOST = os.getenv("LUAHOST") or "build/luahost"
-- true inside spec/run.sh's private network namespace
PRIVATE_NET = os.getenv("LUAHOST_NETNS") == "1"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_G.shell_quote = shell_quote

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
  -- and a clock bound: once an uncaught callback error stopped the host,
  -- uv.run returns at once without running timers, so the guard alone
  -- could never fire (the suite spun for ever instead of failing)
  local deadline = uv.hrtime() + seconds * 1e9
  while not (cond and cond()) and not timed_out do
    if not uv.run("once") and not cond then break end
    if uv.hrtime() > deadline then timed_out = true end
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

-- {===== the working tree: a spec leaves no file behind
-- (temporary files belong in /tmp: tmpname()). Every file of the tree
-- (build/ and .git/ aside) changed since the suite started is one a spec
-- wrote; assert_clean reports those that appeared during its spec, and
-- the run fails at exit if any appeared at all.
local stamp = os.tmpname() -- (made now: the reference time)
local stray_seen, stray_all = {}, {}

local function stray_files()
  local p = assert(io.popen("find . -path ./build -prune -o -path ./.git " ..
    "-prune -o -path ./bench/build -prune -o -newer " .. shell_quote(stamp) ..
    " ! -type d -print 2>/dev/null"))
  local new = {}
  for name in p:lines() do
    if not stray_seen[name] then
      stray_seen[name] = true
      new[#new + 1] = name
      stray_all[#stray_all + 1] = name
    end
  end
  p:close()
  return new
end

local ok_busted, busted = pcall(require, "busted")
if ok_busted and busted.subscribe then
  busted.subscribe({"exit"}, function()
    stray_files()
    os.remove(stamp)
    if #stray_all > 0 then
      io.stderr:write("spec/support/helper.lua: the specs left files in the " ..
        "working tree: " .. table.concat(stray_all, " ") .. "\n")
      os.exit(1)
    end
    return nil, true
  end)
end
-- }=====

-- {===== finally: every cleanup runs
-- busted keeps only the last function given to finally() in a test, so a
-- test that starts two processes and registers a stop for each would leak
-- the first one (a workers test left an echo.lua running after every
-- suite). Each test's finally() here collects its functions and runs them
-- all, last registered first, even when one fails; the first error is the
-- test's.
if ok_busted and busted.subscribe then
  busted.subscribe({"test", "start"}, function(element)
    local env = element.env
    local register = env and env.finally
    if register then
      local fns = {}
      env.finally = function(fn)
        if type(fn) ~= "function" then
          error("finally: function expected, got " .. type(fn), 2)
        end
        fns[#fns + 1] = fn
        if #fns == 1 then
          register(function()
            local first
            for i = #fns, 1, -1 do
              local ok, err = pcall(fns[i])
              if not ok and first == nil then first = err end
            end
            if first ~= nil then error(first, 0) end
          end)
        end
      end
    end
    return nil, true
  end)
end
-- }=====

function assert_clean()
  local errors = {}
  local stray = stray_files()
  if #stray > 0 then
    errors[#errors + 1] = "file(s) left in the working tree: " ..
      table.concat(stray, " ")
  end
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

function tmpfile(text, suffix)
  local name = tmpname()
  if suffix then
    name = name .. suffix
    tmpfiles[#tmpfiles + 1] = name
  end
  local f = assert(io.open(name, "wb"))
  assert(f:write(text))
  assert(f:close())
  return name
end


-- The lines of a child's stderr that a sanitizer wrote (ASan, UBSan's
-- "runtime error"), joined; "" when there are none.
function sanitizer_lines(err)
  local t = {}
  for line in err:gmatch("[^\n]+") do
    if line:find("runtime error", 1, true) or line:find("Sanitizer", 1, true)
    then t[#t + 1] = line end
  end
  return table.concat(t, "\n")
end

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
