-- uv thread pool work (bindings/work.c): new_work, queue_work, work:queue.
local uv = require "uv"

local function host_script(src)
  local path = tmpname()
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  return run_host({path})
end

describe("uv work", function()
  after_each(assert_clean)

  it("runs work_fn on the pool and gives its results to after_fn",
    function()
      local results = {}
      local work = uv.new_work(function(n, s)
        return n, n * n, math.type(n * 1.5), s .. "!", nil, true
      end, function(...)
        results[#results + 1] = table.pack(...)
      end)
      assert.matches("^luv_work_ctx_t: ", tostring(work))
      assert.is_true(uv.queue_work(work, 3, "a"))
      assert.is_true(work:queue(-4, "b\0c"))
      run_loop(function() return #results == 2 end)
      table.sort(results, function(x, y) return x[1] < y[1] end)
      assert.same({-4, 16, "float", "b\0c!", nil, true, n = 6}, results[1])
      assert.same({3, 9, "float", "a!", nil, true, n = 6}, results[2])
      assert.equal("integer", math.type(results[2][2]))
    end)

  it("takes work_fn as source; after_fn may be a callable table",
    function()
      local got
      local after = setmetatable({}, {__call = function(_, v) got = v end})
      local work = uv.new_work("return ... + 1", after)
      work:queue(41)
      run_loop(function() return got ~= nil end)
      assert.equal(42, got)
    end)

  it("gives work_fn uv with a loop of its own", function()
    local got
    local work = uv.new_work(function()
      local tuv = require "uv"
      local fired = false
      local t = tuv.new_timer()
      t:start(1, 0, function() fired = true; t:close() end)
      tuv.run()
      return fired, tuv.loop_mode() == nil
    end, function(a, b) got = {a, b} end)
    work:queue()
    run_loop(function() return got ~= nil end)
    assert.same({true, true}, got)
  end)

  it("reuses a work's states, as luv does: globals persist", function()
    local seen = {}
    local work
    work = uv.new_work(function()
      _G.count = (_G.count or 0) + 1 -- a global of the item's state
      return _G.count
    end, function(n)
      seen[#seen + 1] = n
      if #seen < 3 then work:queue() end -- one at a time: one state
    end)
    work:queue()
    run_loop(function() return #seen == 3 end)
    assert.same({1, 2, 3}, seen)
  end)

  it("keeps the loop running while the pool works", function()
    local ticks, done = 0, false
    local t = uv.new_timer()
    t:start(5, 5, function() ticks = ticks + 1 end)
    local work = uv.new_work(function()
      require("uv").sleep(200)
      return true
    end, function(ok) done = ok end)
    work:queue()
    run_loop(function() return done end)
    t:close()
    assert.truthy(ticks >= 3, "timer fired " .. ticks .. " times")
  end)

  it("copies at most 9 values each way, as luv does", function()
    local n_in, n_out
    local work = uv.new_work(function(...)
      return select("#", ...), 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
    end, function(...)
      n_in, n_out = (...), select("#", ...)
    end)
    work:queue(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
    run_loop(function() return n_out ~= nil end)
    assert.equal(9, n_in)
    assert.equal(9, n_out)
  end)

  it("raises naming the argument on bad input", function()
    local function f() end
    assert.matches("bad argument #1.-function or string expected",
      select(2, pcall(uv.new_work, 1, f)))
    assert.matches("bad argument #1.-C function",
      select(2, pcall(uv.new_work, print, f)))
    assert.matches("bad argument #1.-syntax error",
      select(2, pcall(uv.new_work, "this is not lua", f)))
    assert.matches("bad argument #2",
      select(2, pcall(uv.new_work, f)))
    assert.matches("bad argument #2",
      select(2, pcall(uv.new_work, f, 5)))
    local work = uv.new_work(f, f)
    assert.matches("bad argument #1.-luv_work_ctx expected",
      select(2, pcall(uv.queue_work, 1)))
    assert.matches("bad argument #1.-luv_work_ctx expected",
      select(2, pcall(work.queue, {})))
    assert.matches("bad argument #2.-cannot copy a table",
      select(2, pcall(uv.queue_work, work, {})))
    assert.matches("bad argument #3.-cannot copy a function",
      select(2, pcall(work.queue, work, 1, f)))
  end)

  it("an error in work_fn is a callback error: reported, exit 1",
    function()
      local out, err, code = host_script([[
        local uv = require "uv"
        uv.new_work(function() error("boom in pool") end,
                    function() print("after ran") end):queue()
      ]])
      assert.matches("uncaught error in work callback: .-boom in pool", err)
      assert.matches("stack traceback", err)
      assert.equal("", out)
      assert.equal(1, code)
    end)

  it("a thread value crosses both ways (luv's test-work returns one)",
    function()
      local got
      local me = uv.thread_self()
      local work = uv.new_work(function(main)
        local wuv = require "uv"
        local self = wuv.thread_self()
        return self, main, wuv.thread_equal(main, self), tostring(self)
      end, function(...) got = table.pack(...) end)
      assert.is_true(work:queue(me))
      run_loop(function() return got ~= nil end)
      local t, main, same, str = got[1], got[2], got[3], got[4]
      assert.matches("^uv_thread_t: ", tostring(t))
      assert.equal(str, tostring(t))
      assert.is_false(same)
      assert.is_false(uv.thread_equal(t, me))
      assert.is_true(uv.thread_equal(main, me))
      assert.is_true(main == me)
      -- a copy names the thread; only the state that made one joins it
      assert.same({nil, "EINVAL: invalid argument", "EINVAL"},
        {uv.thread_join(t)})
    end)

  it("a result that cannot cross is an error in work_fn", function()
    local _, err, code = host_script([[
      local uv = require "uv"
      uv.new_work(function() return print end, print):queue()
    ]])
    assert.matches("cannot copy a function value", err)
    assert.equal(1, code)
  end)

  it("os.exit(code) without close ends the host while items spin in Lua",
    function()
    -- (libuv joins its pool's threads at exit: the running items are
    -- asked to stop first, as for os.exit(code, true); it waited for
    -- ever)
    local out, _, code = host_script([[
      local uv = require "uv"
      local work = uv.new_work(function() while true do end end,
                               function() print("after ran") end)
      for _ = 1, 6 do work:queue() end
      local t = uv.new_timer()
      t:start(100, 0, function() print("exiting") os.exit(3) end)
    ]])
    assert.equal("exiting\n", out)
    assert.equal(3, code)
    -- task.thread's jobs too
    out, _, code = host_script([[
      local task = require "task"
      task.spawn(function()
        task.spawn(function() task.sleep(0.1) print("exiting") os.exit(4) end)
        task.thread(function() while true do end end)
      end)
    ]])
    assert.equal("exiting\n", out)
    assert.equal(4, code)
  end)

  it("host exit cancels queued items and stops running ones", function()
    local out, err, code = host_script([[
      local uv = require "uv"
      local work = uv.new_work(function() while true do end end,
                               function() print("after ran") end)
      for _ = 1, 12 do work:queue() end -- more than the pool's 4 threads
      local t = uv.new_timer()
      t:start(100, 0, function() print("exiting") os.exit(0, true) end)
    ]])
    assert.equal("exiting\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end)
end)
