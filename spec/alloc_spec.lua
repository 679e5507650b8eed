-- The host's Lua states (host/alloc.c): small blocks pooled per state, the
-- collector in generational mode, luaL_newstate's panic and warnings.
-- Each case runs build/luahost as a separate process (run_host).

-- Blocks of every pooled size and past it (POOL_MAX is 2056), grown and
-- shrunk across classes (strings, table parts, coroutine stacks), half
-- dropped and collected in between so that freed blocks are reused; every
-- byte is checked at the end.
local churn = [[
local keep, n = {}, 0
local function fill(len, seed)
  local t = {}
  for i = 1, len do t[i] = string.char((i * 7 + seed) % 256) end
  return table.concat(t)
end
local function check(s, len, seed)
  if #s ~= len then return false end
  for i = 1, len, 13 do
    if s:byte(i) ~= (i * 7 + seed) % 256 then return false end
  end
  return true
end
for round = 1, 3 do
  for len = 0, 2200, 3 do
    local seed = len + round
    keep[#keep + 1] = {fill(len, seed), len, seed}
  end
  for i = #keep, 1, -2 do table.remove(keep, i) end
  local grow = {}
  for i = 1, 600 do grow[i] = i; grow["k" .. i] = i end
  for i = 1, 600 do grow[i] = nil; grow["k" .. i] = nil end
  local co = coroutine.wrap(function(depth)
    local function deep(d) if d == 0 then return 0 end
      return 1 + deep(d - 1) end
    return deep(depth)
  end)
  n = n + co(300 * round)
  collectgarbage()
end
for _, e in ipairs(keep) do
  assert(check(e[1], e[2], e[3]), "bytes changed in a block of " .. e[2])
end
return #keep, n
]]
local churn_main = "print((function() " .. churn .. " end)())"

describe("the host's Lua states", function()
  it("start in generational mode, the main one and task.thread's",
     function()
    local out, err, code = run_host({"-e", [[
      print(collectgarbage("incremental"))
      print(require("task").thread(function()
        return collectgarbage("incremental") end))]]})
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("generational\ngenerational\n", out)
  end)

  it("keep every byte of pooled blocks reused across size classes",
     function()
    local script = tmpfile(churn_main)
    local out, err, code = run_host({script})
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("642\t1800\n", out)
  end)

  it("use the plain allocator with LUAHOST_MALLOC=libc, same results",
     function()
    local script = tmpfile(churn_main)
    local out, err, code = run_host({script}, nil, "LUAHOST_MALLOC=libc")
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("642\t1800\n", out)
  end)

  it("run task.thread's states with pooled blocks too", function()
    local script = tmpfile("local task = require 'task'\n" ..
      "print(task.thread(" .. ("%q"):format(churn) .. "))")
    local out, err, code = run_host({script})
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("642\t1800\n", out)
  end)

  it("warn: off by default, on with -W or \"@on\", pieces joined",
     function()
    local prog = [[
      warn("hidden")
      warn("@on")
      warn("a ", "b")
      warn("@off")
      warn("hidden again")]]
    local _, err, code = run_host({"-e", prog})
    assert.equal(0, code)
    assert.equal("Lua warning: a b\n", err)
    _, err, code = run_host({"-W", "-e", "warn('x', 1 .. '')"})
    assert.equal(0, code)
    assert.equal("Lua warning: x1\n", err)
  end)
end)
