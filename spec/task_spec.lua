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

  it("join and cancel take the task alone: an extra value or another " ..
     "self raises, at the caller's line", function()
    run_task(function()
      local t = task.spawn(function() task.sleep(0.01) return "r" end)
      -- (pcall: error_matches strips the position this checks)
      local _, e = pcall(function() t:join(5) end)
      assert.matches("^spec/task_spec%.lua:%d+: bad argument #2 to 'join' " ..
        "%(no value expected%)", e)
      _, e = pcall(function() t:cancel(true) end)
      assert.matches("^spec/task_spec%.lua:%d+: bad argument #2 to " ..
        "'cancel'", e)
      assert.error_matches(function() t.join(5) end,
        "bad argument #1 to 'join' %(task expected, got number%)")
      assert.error_matches(function() t.cancel({}) end,
        "bad argument #1 to 'cancel' %(task expected, got table%)")
      -- (the task itself was not touched)
      assert.equal("r", t:join())
    end)
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

  it("on_error takes the reports of failed tasks; a failing one is " ..
     "reported with the error it got", function()
    local out, err, code = run_host({"-e", [[
      local task = require "task"
      local got = {}
      assert(task.on_error(function(tb, t) got[#got + 1] = {tb, t} end)
        == nil)
      local t = task.spawn(function() task.sleep(0.01); error("one") end)
      t:join()
      print(#got, got[1][2] == t, got[1][1]:match("^[^\n]*"))
      print(got[1][1]:match("stack traceback") ~= nil)
      assert(type(task.on_error(function() error("hook fails") end))
        == "function")
      task.spawn(function() error("two") end)
      assert(type(task.on_error(nil)) == "function")
      task.spawn(function() error("three") end)
      print(pcall(task.on_error, 42))]]})
    assert.equal(0, code, err)
    assert.equal("1\ttrue\t(command line):5: one\ntrue\n" ..
      "false\tbad argument #1 to 'on_error' (function expected, got " ..
      "number)\n", out)
    assert.matches("^luahost: task.on_error: %(command line%):9: hook " ..
      "fails\nluahost: %(command line%):11: two\nstack traceback:", err)
    assert.matches("\nluahost: %(command line%):13: three\nstack", err)
    assert.not_matches("one", err)
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

    it("an on_signal watcher does not keep the host alive", function()
      local out, err, code = run_host({"-e", [[
        local task = require "task"
        task.on_signal("SIGUSR1", print)
        print("main done")]]})
      assert.equal("", err)
      assert.equal("main done\n", out)
      assert.equal(0, code)
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

  describe("queue", function()
    local core = require "net.core"

    it("a bounded queue blocks the producer at max, in order", function()
      run_task(function()
        local q = task.queue(2)
        local log, most = {}, 0
        local producer = task.spawn(function()
          for i = 1, 6 do
            assert.is_true(q:put(i))
            log[#log + 1] = i
            most = math.max(most, #q)
          end
        end)
        -- ran until its first wait: two puts went in, the third blocks
        assert.same({1, 2}, log)
        assert.equal(2, #q)
        assert.equal(2, q:len())
        local got = {}
        for _ = 1, 6 do
          got[#got + 1] = q:get()
          assert.is_true(#q <= 2)
        end
        producer:join()
        assert.same({1, 2, 3, 4, 5, 6}, got)
        assert.same({1, 2, 3, 4, 5, 6}, log)
        assert.equal(2, most)
        assert.equal(0, #q)
      end)
    end)

    it("several getters are served in FIFO order, after put returns",
      function()
      run_task(function()
        local q = task.queue()
        local order = {}
        local gs = {}
        for i = 1, 4 do
          gs[i] = task.spawn(function()
            local v = q:get()
            order[#order + 1] = i .. "=" .. v
          end)
        end
        for _, v in ipairs({"a", "b", "c", "d"}) do q:put(v) end
        -- nobody ran inside put: the getters wait in the ready queue
        assert.same({}, order)
        assert.equal(4, #q) -- promised to the getters, still queued
        for i = 1, 4 do gs[i]:join() end
        assert.same({"1=a", "2=b", "3=c", "4=d"}, order)
        assert.equal(0, #q)
      end)
    end)

    it("a task arriving later does not take the item promised to a " ..
      "woken getter; gets return items in put order", function()
      run_task(function()
        local q = task.queue()
        local log = {}
        local g = task.spawn(function()
          local v = q:get()
          log[#log + 1] = "g=" .. v
        end)
        q:put("x")
        assert.equal(1, #q)
        assert.same({nil, "timeout"}, {q:get(0)})
        q:put("y")
        local v = q:get()
        log[#log + 1] = "main=" .. v
        g:join()
        assert.same({"main=x", "g=y"}, log)
      end)
    end)

    it("get times out, and the timed-out getter is gone", function()
      run_task(function()
        local q = task.queue()
        local t0 = task.now()
        local v, err = q:get(0.05)
        local dt = task.now() - t0
        assert.is_nil(v)
        assert.equal("timeout", err)
        assert.is_true(dt >= 0.045 and dt < 2, "waited " .. dt)
        v, err = q:get(0)                     -- does not wait at all
        assert.is_nil(v)
        assert.equal("timeout", err)
        assert.is_true(q:put(1))
        assert.equal(1, #q)                   -- not handed to a ghost
        assert.equal(1, q:get(0.05))
        assert.equal(0, core.stats().deadlines)
      end)
    end)

    it("close wakes getters with nil, 'closed', after the items",
      function()
      run_task(function()
        local q = task.queue(1)
        local res = {}
        for i = 1, 3 do
          task.spawn(function() res[i] = {q:get()} end)
        end
        q:put("a")
        q:close()
        q:close() -- twice is harmless
        task.yield()
        assert.same({{"a"}, {nil, "closed"}, {nil, "closed"}}, res)
        local r, err = q:put("b")
        assert.is_nil(r)
        assert.equal("closed", err)

        local q2 = task.queue(1)
        q2:put(1)
        local put_res
        local p = task.spawn(function() put_res = {q2:put(2)} end)
        q2:close()
        p:join()
        assert.same({nil, "closed"}, put_res)  -- 2 was not added
        assert.equal(1, q2:get())
        assert.same({nil, "closed"}, {q2:get()})
        assert.same({nil, "closed"}, {q2:get(1)})
      end)
    end)

    it("a cancelled getter loses no item and gets none twice", function()
      run_task(function()
        local q = task.queue()
        local got = {}
        local function getter(name)
          return task.spawn(function()
            local v = q:get()
            got[#got + 1] = name .. "=" .. v
          end)
        end
        -- cancelled while it waits
        local g1, g2 = getter("g1"), getter("g2")
        g1:cancel()
        assert.equal("cancelled", g1.status)
        q:put("a")
        g2:join()
        assert.same({"g2=a"}, got)
        -- cancelled after it was woken, before it ran: the item stays
        local g3, g4 = getter("g3"), getter("g4")
        q:put("b")
        g3:cancel()
        g4:join()
        assert.same({"g2=a", "g4=b"}, got)
        assert.equal(0, #q)
        -- and with nobody else waiting, the item is still there
        local g5 = getter("g5")
        q:put("c")
        g5:cancel()
        assert.equal(1, #q)
        assert.equal("c", q:get(0))
        assert.equal(0, core.stats().deadlines)
        -- a getter with a timeout, cancelled: its deadline goes too
        local g6 = task.spawn(function() q:get(3600) end)
        assert.equal(1, core.stats().deadlines)
        g6:cancel()
        assert.equal(0, core.stats().deadlines)
        q:put("d")
        assert.equal("d", q:get(0))
      end)
    end)

    it("a cancelled putter adds nothing and keeps its place's order",
      function()
      run_task(function()
        local q = task.queue(1)
        q:put("a")
        local done = {}
        local function putter(v)
          return task.spawn(function()
            local ok = q:put(v)
            done[#done + 1] = ok and v
          end)
        end
        -- cancelled while it waits: "b" never goes in
        local p1 = putter("b")
        p1:cancel()
        assert.equal("a", q:get())
        assert.equal(0, #q)
        assert.same({nil, "timeout"}, {q:get(0)})
        -- woken (a slot promised), cancelled before it ran: the slot
        -- passes to the next putter
        q:put("a")
        local p2, p3 = putter("x"), putter("y")
        assert.equal("a", q:get())
        p2:cancel()
        p3:join()
        assert.same({"y"}, done)
        assert.equal("y", q:get(0))
        assert.equal(0, #q)
      end)
    end)

    it("a swallowed cancel leaves the queue consistent", function()
      run_task(function()
        local q = task.queue()
        local t = task.spawn(function()
          for _ = 1, 20 do pcall(q.get, q) end
          q:get()
        end)
        t:cancel()
        assert.equal("cancelled", t.status)
        q:put(1)
        assert.equal(1, #q)
        assert.equal(1, q:get(0))
      end)
    end)

    it("a wait where a task cannot wait raises and leaves no waiter",
      function()
      run_task(function()
        local q = task.queue()
        local ok, err = pcall(table.sort, {3, 2, 1}, function(a, b)
          q:get()
          return a < b
        end)
        assert.is_false(ok)
        assert.matches("queue:get cannot wait here", err)
        local e = task.event()
        ok, err = pcall(string.gsub, "x", "x", function() e:wait() end)
        assert.is_false(ok)
        assert.matches("event:wait cannot wait here", err)
        -- nobody was left on the lists: a put must not wake this task
        -- in its next wait, elsewhere
        local other = task.queue()
        task.spawn(function() task.yield(); q:put(1) end)
        assert.same({nil, "timeout"}, {other:get(0.05)})
        assert.equal(1, #q)
        assert.equal(1, q:get(0))
        e:set()
      end)
    end)

    it("10,000 items pass without a task running inside another",
      function()
      run_task(function()
        local q = task.queue(1)
        local producer
        local nested, sum = 0, 0
        local consumer = task.spawn(function()
          for _ = 1, 10000 do
            sum = sum + q:get()
            -- resumed from inside put, the producer would be "normal"
            if coroutine.status(producer.co) == "normal" then
              nested = nested + 1
            end
          end
        end)
        producer = task.spawn(function()
          for i = 1, 10000 do q:put(i) end
        end)
        producer:join()
        consumer:join()
        assert.equal(50005000, sum)
        assert.equal(0, nested)
      end)
    end)

    it("a chain of 500 queues does not deepen the C stack", function()
      -- each task forwards from its queue to the next: recursive wake-ups
      -- would overflow the C stack (about 200 levels)
      run_task(function()
        local n = 500
        local qs = {}
        for i = 1, n + 1 do qs[i] = task.queue(1) end
        for i = 1, n do
          task.spawn(function()
            while true do
              local v = qs[i]:get()
              if v == nil then qs[i + 1]:close() return end
              qs[i + 1]:put(v + 1)
            end
          end)
        end
        local feeder = task.spawn(function()
          for _ = 1, 20 do qs[1]:put(0) end
          qs[1]:close()
        end)
        local got = {}
        for v in function() return qs[n + 1]:get(5) end do
          got[#got + 1] = v
        end
        feeder:join()
        assert.equal(20, #got)
        assert.equal(n, got[1])
        assert.equal(n, got[20])
      end)
    end)

    it("works from handlers, and put from a callback wakes a task",
      function()
      run_task(function()
        local net = require "net"
        local uv = require "uv"
        local q = task.queue()
        local s = assert(net.listen{})
        local _, port = s:sockname()
        local st = task.spawn(s.serve, s, function(c)
          q:put(c:read())
        end)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        c:write("from a handler\n")
        assert.equal("from a handler", q:get(5))
        c:close()
        s:close()
        st:join()
        local timer = uv.new_timer()
        local full = task.queue(1)
        local err
        timer:start(1, 0, function()
          timer:close()
          q:put("from a callback")
          full:put(1)
          err = select(2, pcall(full.put, full, 2)) -- would block: raises
        end)
        assert.equal("from a callback", q:get(5))
        assert.matches("queue:put must be called from a task", err)
      end)
    end)

    it("rejects bad arguments, naming them", function()
      assert.has_error(function() task.queue(0) end,
        "bad argument #1 to 'queue' (positive integer expected, got 0)")
      assert.has_error(function() task.queue(1.5) end,
        "bad argument #1 to 'queue' (positive integer expected, got 1.5)")
      assert.has_error(function() task.queue("x") end,
        "bad argument #1 to 'queue' (positive integer expected, got string)")
      local q = task.queue()
      assert.has_error(function() q:put(nil) end,
        "bad argument #1 to 'put' (value expected, got nil)")
      assert.has_error(function() q:put() end,
        "bad argument #1 to 'put' (value expected, got nil)")
      assert.has_error(function() q:get(-1) end,
        "bad argument #1 to 'get' (non-negative number expected, got -1)")
      assert.has_error(function() q:get("soon") end,
        "bad argument #1 to 'get' (non-negative number expected, got " ..
        "string)")
      assert.has_error(function() q.get(42) end,
        "calling 'get' on bad self (task.queue expected, got number)")
      assert.has_error(function() q.put({}, 1) end,
        "calling 'put' on bad self (task.queue expected, got table)")
      assert.has_error(function() q.close() end,
        "calling 'close' on bad self (task.queue expected, got nil)")
      assert.equal(0, #q)
      assert.equal("task.queue (0)", tostring(q))
    end)
  end)

  describe("event", function()
    local core = require "net.core"

    it("wait blocks until set, returns at once while set, again after " ..
      "clear", function()
      run_task(function()
        local e = task.event()
        assert.is_false(e:is_set())
        local woke = false
        local t = task.spawn(function() woke = e:wait() end)
        task.yield()
        assert.is_false(woke)
        e:set()
        assert.is_true(e:is_set())
        assert.is_false(woke) -- set does not run the waiter inside it
        t:join()
        assert.is_true(woke)
        assert.is_true(e:wait())
        assert.is_true(e:wait(0))
        e:set() -- again: harmless
        e:clear()
        assert.is_false(e:is_set())
        assert.same({nil, "timeout"}, {e:wait(0)})
        local t0 = task.now()
        assert.same({nil, "timeout"}, {e:wait(0.05)})
        assert.is_true(task.now() - t0 >= 0.045)
        assert.equal(0, core.stats().deadlines)
        assert.equal("task.event (clear)", tostring(e))
      end)
    end)

    it("set wakes many waiters, in order; a cancelled one is skipped",
      function()
      run_task(function()
        local e = task.event()
        local order, ts = {}, {}
        for i = 1, 200 do
          ts[i] = task.spawn(function()
            assert.is_true(e:wait(i % 2 == 0 and 60 or nil))
            order[#order + 1] = i
          end)
        end
        ts[7]:cancel()
        assert.equal(100, core.stats().deadlines)
        e:set()
        assert.equal(0, core.stats().deadlines)
        for i = 1, 200 do ts[i]:join() end
        local want = {}
        for i = 1, 200 do if i ~= 7 then want[#want + 1] = i end end
        assert.same(want, order)
        assert.equal("cancelled", ts[7].status)
      end)
    end)

    it("a waiter cancelled after set returns nothing and breaks nothing",
      function()
      run_task(function()
        local e = task.event()
        local a_done, b_done = false, false
        local a = task.spawn(function() e:wait(); a_done = true end)
        local b = task.spawn(function() e:wait(); b_done = true end)
        e:set()
        a:cancel()
        b:join()
        assert.is_false(a_done)
        assert.is_true(b_done)
        assert.equal("cancelled", a.status)
      end)
    end)

    it("rejects bad arguments, naming them", function()
      local e = task.event()
      assert.has_error(function() e:wait(-1) end,
        "bad argument #1 to 'wait' (non-negative number expected, got -1)")
      assert.has_error(function() e.wait("e") end,
        "calling 'wait' on bad self (task.event expected, got string)")
      assert.has_error(function() e.set(task.queue()) end,
        "calling 'set' on bad self (task.event expected, got table)")
      assert.has_error(function() e.is_set() end,
        "calling 'is_set' on bad self (task.event expected, got nil)")
    end)
  end)

  it("queues and events work in the main chunk", function()
    local out, err, code = run_host({"-e", [[
      local task = require "task"
      local q, e = task.queue(1), task.event()
      task.spawn(function()
        for i = 1, 3 do q:put(i) end
        q:close()
        e:wait()
        print("set")
      end)
      for v in function() return q:get() end do print(v) end
      e:set()]]})
    assert.equal("", err)
    assert.equal("1\n2\n3\nset\n", out)
    assert.equal(0, code)
  end)

  it("the public task and luahost tables hold only documented API",
    function()
    -- Plumbing (resume, start, the finish hook, own, wait...) is handed
    -- to the embedded modules privately; every public field is in docs.
    local function doc(name)
      local f = assert(io.open("docs/" .. name .. ".md"))
      local text = f:read("a")
      f:close()
      return text
    end
    local docs = doc("task") .. doc("deploy")
    local n = 0
    for _, mod in ipairs({"task", "luahost"}) do
      for k in pairs(require(mod)) do
        n = n + 1
        assert(docs:find(mod .. "." .. k, 1, true),
          mod .. "." .. k .. " is public but not documented")
      end
    end
    assert.is_true(n >= 15)
    for _, k in ipairs({"resume", "start", "fatal", "report", "main_done",
                        "share"}) do
      assert.is_nil(require("luahost")[k])
    end
  end)

  it("a script cannot require the scheduler's C core or the thread pool",
    function()
    -- (specs get them from spec/support/helper.lua, by the registry)
    local out, err, code = run_host({"-e", [[
      for _, m in ipairs{"net.core", "luahost.thread"} do
        print(m, (pcall(require, m)))
      end
      local task = require "task"
      print(task.thread(function() return 6 * 7 end))]]})
    assert.equal("", err)
    assert.equal("net.core\tfalse\nluahost.thread\tfalse\n42\n", out)
    assert.equal(0, code)
  end)
end)
