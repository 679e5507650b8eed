-- The loop, timers and the methods every handle has.
local uv = require "uv"

describe("uv loop", function()
  after_each(assert_clean)

  it("run modes: nowait returns at once, once waits for one event",
    function()
      local fired = 0
      local t = uv.new_timer()
      uv.update_time() -- the cached time may be stale: due in a real 50 ms
      t:start(50, 0, function() fired = fired + 1 end)
      local t0 = uv.hrtime()
      assert.is_true(uv.run("nowait")) -- still alive: the timer
      assert.equal(0, fired)
      assert.truthy(uv.hrtime() - t0 < 40e6)
      assert.is_true(uv.loop_alive())
      uv.run("once")
      assert.equal(1, fired)
      assert.is_false(uv.loop_alive())
      t:close()
      uv.run("nowait")
      assert.has_error(function() uv.run("bogus") end)
    end)

  it("run default returns when nothing is left; stop ends it early",
    function()
      local n = 0
      local t = uv.new_timer()
      t:start(1, 1, function()
        n = n + 1
        if n == 3 then uv.stop() end
      end)
      uv.run() -- a repeating timer: only stop ends it
      assert.equal(3, n)
      t:close()
      assert.is_false(uv.run())
    end)

  it("refuses to re-enter the loop from a callback", function()
    local err
    local t = uv.new_timer()
    t:start(0, 0, function()
      local ok, e = pcall(uv.run, "nowait")
      err = not ok and e
    end)
    run_loop(function() return err ~= nil end)
    assert.matches("already running", err)
    t:close()
  end)

  it("now, update_time and hrtime move forward", function()
    local n0, h0 = uv.now(), uv.hrtime()
    assert.equal(math.type(1), math.type(n0))
    uv.sleep(15)
    assert.equal(n0, uv.now()) -- cached until update_time
    uv.update_time()
    assert.truthy(uv.now() - n0 >= 14)
    assert.truthy(uv.hrtime() - h0 >= 14e6)
  end)

  it("walk shows Lua handles only, and each once", function()
    local a, b = uv.new_timer(), uv.new_idle()
    local seen = {}
    uv.walk(function(h) seen[#seen + 1] = h end)
    assert.equal(2, #seen)
    local set = {[seen[1]] = true, [seen[2]] = true}
    assert.truthy(set[a] and set[b])
    assert.has_error(function() uv.walk() end)
    a:close()
    b:close()
  end)

  it("backend fd and timeout are numbers", function()
    assert.truthy(uv.backend_fd() >= 0)
    assert.equal("number", type(uv.backend_timeout()))
  end)

  it("loop_mode names the mode of the run in progress, nil outside",
    function()
      assert.is_nil(uv.loop_mode())
      local seen = {}
      local t = uv.new_timer()
      for _, mode in ipairs{"once", "nowait", "default"} do
        t:start(0, 0, function() seen[#seen + 1] = uv.loop_mode() end)
        uv.update_time()
        uv.sleep(2) -- due by the time the loop looks
        uv.run(mode)
      end
      t:close()
      assert.same({"once", "nowait", "default"}, seen)
      assert.is_nil(uv.loop_mode())
    end)

  it("os.exit(code, true) inside an explicit uv.run exits with code",
    function()
      local path = tmpname()
      local f = assert(io.open(path, "w"))
      f:write([[
        local uv = require "uv"
        local t = uv.new_timer()
        t:start(10, 0, function() t:close() os.exit(5, true) end)
        uv.run()
        print("not reached")
      ]])
      f:close()
      local out, err, code = run_host({path})
      assert.equal("", out)
      assert.equal("", err)
      assert.equal(5, code)
    end)

  it("loop_configure: block_signal and metrics_idle_time", function()
    assert.equal(0, uv.loop_configure("block_signal", "sigprof"))
    assert.equal(0, uv.loop_configure("block_signal", 27))
    assert.matches("bad argument #1",
      select(2, pcall(uv.loop_configure, "bogus")))
    assert.matches("bad argument #1",
      select(2, pcall(uv.loop_configure)))
    assert.matches("bad argument #2",
      select(2, pcall(uv.loop_configure, "block_signal", "nosuchsig")))
    assert.matches("bad argument #2",
      select(2, pcall(uv.loop_configure, "block_signal")))
    -- libuv refuses a signal it cannot block that way
    local ok, err, name = uv.loop_configure("block_signal", "sigint")
    assert.is_nil(ok)
    assert.equal("EINVAL", name)
    assert.matches("^EINVAL: ", err)
  end)

  it("metrics_idle_time counts the time the loop waited", function()
    local path = tmpname()
    local f = assert(io.open(path, "w"))
    f:write([[
      local uv = require "uv"
      assert(uv.loop_configure("metrics_idle_time") == 0)
      local t = uv.new_timer()
      t:start(100, 0, function() t:close() end)
      uv.run()
      print(math.type(uv.metrics_idle_time()), uv.metrics_idle_time())
    ]])
    f:close()
    local out, err, code = run_host({path})
    assert.equal("", err)
    assert.equal(0, code)
    local kind, ns = out:match("^(%a+)\t(%d+)")
    assert.equal("integer", kind)
    assert.truthy(tonumber(ns) >= 50e6, out) -- waited ~100 ms of it
  end)

  it("loop_close: EBUSY while the script has handles, 0 when none",
    function()
      local t = uv.new_timer()
      local ok, err, name = uv.loop_close()
      assert.is_nil(ok)
      assert.equal("EBUSY", name)
      assert.matches("^EBUSY: ", err)
      t:close()
      uv.run("nowait")
      assert.equal(0, uv.loop_close())
      -- the host's loop still works afterwards
      local fired = false
      t = uv.new_timer()
      t:start(1, 0, function() fired = true end)
      run_loop(function() return fired end)
      t:close()
    end)
end)

describe("uv timer", function()
  after_each(assert_clean)

  it("fires once after the timeout; repeats with repeat", function()
    local once, rep = 0, 0
    local t1, t2 = uv.new_timer(), uv.new_timer()
    assert.equal(0, uv.timer_start(t1, 5, 0, function() once = once + 1 end))
    assert.equal(0, t2:start(1, 2, function()
      rep = rep + 1
      if rep == 3 then t2:stop() end
    end))
    assert.equal(2, t2:get_repeat())
    run_loop(function() return once == 1 and rep == 3 end)
    assert.is_false(t1:is_active())
    assert.is_false(t2:is_active())
    t1:close()
    t2:close()
  end)

  it("again restarts with the repeat value; set_repeat and get_due_in",
    function()
      local t = uv.new_timer()
      local ok, _, name = t:again() -- never started: EINVAL
      assert.is_nil(ok)
      assert.equal("EINVAL", name)
      local n = 0
      t:start(10000, 0, function() n = n + 1 end)
      assert.truthy(t:get_due_in() > 9000)
      t:set_repeat(3)
      assert.equal(3, uv.timer_get_repeat(t))
      assert.equal(0, t:again()) -- now due in 3 ms, repeating
      assert.truthy(t:get_due_in() <= 3)
      run_loop(function() return n >= 2 end)
      assert.equal(0, uv.timer_stop(t))
      assert.is_false(t:is_active())
      t:close()
    end)

  it("raises on bad times and callbacks", function()
    local t = uv.new_timer()
    for _, args in ipairs{
      {-1, 0, print}, {0, -1, print}, {2^60, 0, print}, {0.5, 0, print},
      {"x", 0, print}, {0, 0, nil}, {0, 0, 1},
    } do
      local ok, err = pcall(t.start, t, table.unpack(args, 1, 3))
      assert.is_false(ok)
      assert.matches("bad argument", err)
    end
    assert.matches("bad argument #2", select(2, pcall(t.set_repeat, t)))
    t:close()
  end)
end)

describe("uv handle methods", function()
  after_each(assert_clean)

  it("ref, unref, has_ref decide whether a handle keeps the loop alive",
    function()
      local t = uv.new_timer()
      t:start(10000, 0, function() end)
      assert.is_true(t:has_ref())
      assert.is_true(uv.loop_alive())
      t:unref()
      assert.is_false(uv.has_ref(t))
      assert.is_false(uv.loop_alive())
      assert.is_false(uv.run("nowait"))
      uv.ref(t)
      assert.is_true(t:has_ref())
      t:close()
    end)

  it("is_active and is_closing follow the life of a handle", function()
    local t = uv.new_timer()
    assert.is_false(t:is_active())
    assert.is_false(t:is_closing())
    t:start(1000, 0, function() end)
    assert.is_true(uv.is_active(t))
    t:close()
    assert.is_true(t:is_closing())
    assert.is_false(t:is_active())
    uv.run("nowait")
    assert.is_true(t:is_closing()) -- closed counts as closing
    assert.matches("closed", tostring(t))
  end)

  it("close runs its callback once; closing twice is harmless", function()
    local t = uv.new_timer()
    t:close(expect())
    t:close(expect(nil, 0)) -- already closing: ignored
    uv.run("nowait")
    t:close()
    uv.close(t)
  end)

  it("get_type names the handle type", function()
    local t = uv.new_timer()
    local name, num = t:get_type()
    assert.equal("timer", name)
    assert.equal("number", type(num))
    assert.equal("timer", uv.handle_get_type(t))
    t:close()
  end)

  it("calls on a closed handle raise, naming it", function()
    local t = uv.new_timer()
    t:close()
    for _, f in ipairs{
      function() t:start(1, 0, print) end,
      function() t:stop() end,
      function() t:again() end,
      function() t:ref() end,
      function() t:has_ref() end,
      function() t:fileno() end,
      function() uv.timer_get_due_in(t) end,
    } do
      local ok, err = pcall(f)
      assert.is_false(ok)
      -- methods say "bad self", functions "bad argument #1"
      assert.truthy(err:match("bad self") or err:match("bad argument #1"),
                    err)
      assert.matches("closed", err)
    end
    uv.run("nowait")
    local ok, err = pcall(t.get_type, t)
    assert.is_false(ok)
    assert.matches("closed", err)
  end)

  it("fileno on a timer fails with EINVAL", function()
    local t = uv.new_timer()
    local ok, _, name = t:fileno()
    assert.is_nil(ok)
    assert.equal("EINVAL", name)
    t:close()
  end)

  it("send_buffer_size / recv_buffer_size read and set socket buffers",
    function()
      if not uv.new_tcp then
        pending("uv.new_tcp is not merged yet")
        return
      end
      local t = uv.new_tcp("inet") -- the socket exists at once
      for _, f in ipairs{uv.send_buffer_size, uv.recv_buffer_size} do
        local size = f(t)
        assert.equal(math.type(1), math.type(size))
        assert.truthy(size > 0)
        assert.equal(0, f(t, 32768))
        -- Linux doubles what it is given (bookkeeping overhead).
        assert.truthy(f(t) >= 32768, f(t))
        assert.matches("bad argument #2", select(2, pcall(f, t, -1)))
      end
      assert.equal(t:send_buffer_size(), uv.send_buffer_size(t))
      local timer = uv.new_timer()
      assert.matches("bad argument #1",
        select(2, pcall(uv.send_buffer_size, timer)))
      timer:close()
      t:close()
    end)

  it("<close> closes a handle at the end of its scope", function()
    local h
    do
      local t <close> = uv.new_timer()
      h = t
    end
    assert.is_true(h:is_closing())
    uv.run("nowait")
  end)
end)
