-- task: spawn, join, cancel, sleep, yield, now, current, error containment.
local task = require "task"

describe("task", function()
  after_each(assert_clean)

  it("spawn runs fn at once until its first wait, join returns results",
    function()
    run_task(function()
      local log = {}
      local t = task.spawn(function(a, b)
        log[#log + 1] = "start"
        task.yield()
        log[#log + 1] = "end"
        return a + b, "x"
      end, 2, 3)
      assert.same({"start"}, log)
      local s, x = t:join()
      assert.equal(5, s)
      assert.equal("x", x)
      assert.same({"start", "end"}, log)
      assert.equal("task (done)", tostring(t))
      -- join of a finished task returns at once, again
      assert.equal(5, (t:join()))
    end)
  end)

  it("join of a failed task returns nil, err", function()
    local out, err, code = run_host({"-e", [[
      local task = require "task"
      local t = task.spawn(function() task.yield(); error("bad") end)
      print(t:join())
      print("still running")]]})
    assert.matches("nil\t%(command line%):2: bad", out)
    assert.matches("still running", out)
    assert.matches("%(command line%):2: bad", err)
    assert.matches("stack traceback", err)
    assert.equal(0, code)
  end)

  it("sleep waits about the time asked", function()
    run_task(function()
      local t0 = task.now()
      task.sleep(0.05)
      local dt = task.now() - t0
      assert.is_true(dt >= 0.045, "slept " .. dt)
      assert.is_true(dt < 1, "slept " .. dt)
    end)
  end)

  it("sleepers wake in deadline order", function()
    run_task(function()
      local order = {}
      local ts = {}
      for _, d in ipairs({0.03, 0.01, 0.02, 0}) do
        ts[#ts + 1] = task.spawn(function()
          task.sleep(d)
          order[#order + 1] = d
        end)
      end
      for _, t in ipairs(ts) do t:join() end
      assert.same({0, 0.01, 0.02, 0.03}, order)
    end)
  end)

  it("yield lets other tasks run, in turn", function()
    run_task(function()
      local log = {}
      local a = task.spawn(function()
        for i = 1, 3 do log[#log + 1] = "a" .. i; task.yield() end
      end)
      local b = task.spawn(function()
        for i = 1, 3 do log[#log + 1] = "b" .. i; task.yield() end
      end)
      a:join(); b:join()
      assert.same({"a1", "b1", "a2", "b2", "a3", "b3"}, log)
    end)
  end)

  it("a task that yields in a loop does not starve I/O", function()
    run_task(function()
      local net = require "net"
      local stop, n = false, 0
      local s = assert(net.listen{})
      local _, port = s:sockname()
      local t = task.spawn(s.serve, s, function(c) c:write("hello\n") end)
      local spinner = task.spawn(function()
        while not stop do n = n + 1; task.yield() end
      end)
      local c = assert(net.connect("127.0.0.1", port))
      c:settimeout(5)
      assert.equal("hello", c:read())
      stop = true
      spinner:join()
      assert.is_true(n > 0)
      c:close()
      s:close()
      t:join()
    end)
  end)

  it("current names the running task, nil outside", function()
    local uv = require "uv"
    local outside = "unset"
    local timer = uv.new_timer()
    timer:start(0, 0, function()
      timer:close()
      outside = task.current()
    end)
    run_loop(function() return outside ~= "unset" end)
    assert.is_nil(outside)
    run_task(function()
      local inner
      local t = task.spawn(function() inner = task.current() end)
      assert.equal(t, inner)
      assert.is_not_nil(task.current())
    end)
  end)

  it("cancel stops a sleeping task, closes its <close> variables",
    function()
    run_task(function()
      local closed, after = false, false
      local t = task.spawn(function()
        local mt = {__close = function() closed = true end}
        local _x <close> = setmetatable({}, mt) -- luacheck: ignore 211
        task.sleep(3600)
        after = true
      end)
      assert.is_true(t:cancel())
      assert.is_true(closed)
      assert.is_false(after)
      assert.equal("cancelled", t.status)
      local r, err = t:join()
      assert.is_nil(r)
      assert.equal("cancelled", err)
      assert.is_false(t:cancel()) -- not running any more
      -- the hour-long deadline is gone: nothing keeps the loop alive
      assert.equal(0, require("net.core").stats().deadlines)
    end)
  end)

  it("cancel of a joining task, and self-cancel", function()
    run_task(function()
      local sleeper = task.spawn(task.sleep, 10)
      local joiner = task.spawn(function() return sleeper:join() end)
      joiner:cancel()
      assert.equal("cancelled", joiner.status)
      sleeper:cancel()
      local me = task.spawn(function()
        task.current():cancel()
        error("not reached")
      end)
      assert.equal("cancelled", me.status)
    end)
  end)

  it("a task that swallows the cancel is closed anyway", function()
    run_task(function()
      local t = task.spawn(function()
        pcall(task.sleep, 10)
        task.sleep(10)
      end)
      t:cancel()
      assert.equal("cancelled", t.status)
      assert.equal(0, require("net.core").stats().deadlines)
    end)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() task.spawn(42) end,
      "bad argument #1 to 'spawn' (function expected, got number)")
    run_task(function()
      assert.has_error(function() task.sleep(-1) end,
        "bad argument #1 to 'sleep' (non-negative number expected, got -1)")
      assert.has_error(function() task.sleep("x") end,
        "bad argument #1 to 'sleep' (non-negative number expected, got " ..
        "string)")
      local t = task.current()
      assert.has_error(function() t:join() end, "a task cannot join itself")
    end)
  end)

  it("a blocking call outside a task raises a clear error", function()
    local uv = require "uv"
    local err
    local timer = uv.new_timer()
    timer:start(0, 0, function()
      timer:close()
      local ok, e = pcall(task.sleep, 0.01)
      err = ok and "no error" or e
    end)
    run_loop(function() return err ~= nil end)
    assert.matches("task.sleep must be called from a task", err)
  end)

  it("a wait inside a C function (sort, metamethod) raises clearly",
    function()
    run_task(function()
      local ok, err = pcall(table.sort, {3, 2, 1}, function(a, b)
        task.sleep(0)
        return a < b
      end)
      assert.is_false(ok)
      assert.matches("task.sleep cannot wait here", err)
    end)
  end)

  it("an error in a spawned task is reported and contained", function()
    local out, err, code = run_host({"-e", [[
      local task = require "task"
      task.spawn(function() task.sleep(0.01); error("boom in task") end)
      local t = task.spawn(function() task.sleep(0.03); return "fine" end)
      print(t:join())]]})
    assert.equal("fine\n", out)
    assert.matches("luahost: %(command line%):2: boom in task", err)
    assert.matches("stack traceback", err)
    assert.equal(0, code)
  end)

  it("an error in the main chunk after a wait exits 1", function()
    local out, err, code = run_host({"-e", [[
      local task = require "task"
      task.sleep(0.01)
      error("main fails")]]})
    assert.equal("", out)
    assert.matches("%(command line%):3: main fails", err)
    assert.equal(1, code)
  end)

  it("sleep does not allocate a uv timer per call", function()
    run_task(function()
      local uv = require "uv"
      local before = 0
      uv.walk(function() before = before + 1 end)
      local seen = 0
      local t = task.spawn(function() task.sleep(0.01) end)
      uv.walk(function() seen = seen + 1 end)
      assert.equal(before, seen)
      t:join()
    end)
  end)

  describe("signals", function()
    local uv = require "uv"
    local pid = uv.os_getpid and uv.os_getpid() or
      tonumber(io.open("/proc/self/stat"):read("n"))
    local function kill(sig)
      assert(os.execute("kill -" .. sig .. " " .. pid))
    end

    it("wait_signal returns the name that arrived", function()
      run_task(function()
        task.spawn(function() task.sleep(0.01); kill("USR2") end)
        assert.equal("sigusr2", task.wait_signal("SIGUSR1", "sigusr2"))
      end)
    end)

    it("on_signal runs a task per signal until stopped", function()
      run_task(function()
        local got = {}
        local stop = task.on_signal("SIGUSR1", function(name)
          task.yield() -- a task: it may wait
          got[#got + 1] = name
        end)
        kill("USR1")
        for _ = 1, 100 do
          if #got == 1 then break end
          task.sleep(0.005)
        end
        kill("USR1")
        for _ = 1, 100 do
          if #got == 2 then break end
          task.sleep(0.005)
        end
        stop()
        assert.same({"SIGUSR1", "SIGUSR1"}, got)
        task.yield()
      end)
    end)

    it("cancel of a task in wait_signal closes its watchers", function()
      run_task(function()
        local t = task.spawn(task.wait_signal, "SIGHUP")
        t:cancel()
        assert.equal("cancelled", t.status)
        task.yield()
      end)
    end)

    it("rejects bad signal names", function()
      run_task(function()
        assert.has_error(function() task.wait_signal("SIGNOPE") end)
        assert.has_error(function() task.wait_signal() end)
        assert.has_error(function() task.on_signal("SIGUSR1", 1) end)
      end)
    end)
  end)

  it("a long chain of joins finishes without deepening the C stack",
     function()
    -- each task joins the previous one: finishing the first wakes all
    run_task(function()
      local last = task.spawn(function() task.sleep(0.01) return 0 end)
      for _ = 1, 3000 do
        last = task.spawn(function(p) return p:join() + 1 end, last)
      end
      assert.equal(3000, last:join())
    end)
  end)
end)
