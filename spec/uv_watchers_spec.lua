-- uv idle, prepare, check and async handles.
local uv = require "uv"

describe("uv watchers", function()
  after_each(assert_clean)

  it("run prepare, then check, around each loop iteration", function()
    local order = {}
    local p, c = uv.new_prepare(), uv.new_check()
    assert.equal(0, p:start(function() order[#order + 1] = "prepare" end))
    assert.equal(0, uv.check_start(c, function()
      order[#order + 1] = "check"
    end))
    -- "nowait": one iteration that polls without blocking (prepare and
    -- check alone would keep a blocking poll waiting forever).
    uv.run("nowait")
    assert.truthy(#order >= 2)
    assert.equal("prepare", order[1])
    assert.equal("check", order[2])
    assert.equal(0, p:stop())
    assert.equal(0, uv.check_stop(c))
    local n = #order
    uv.run("nowait")
    assert.equal(n, #order)
    p:close()
    c:close()
  end)

  it("idle runs every iteration and keeps the loop from blocking", function()
    local n = 0
    local i = uv.new_idle()
    assert.equal(0, uv.idle_start(i, function()
      n = n + 1
      if n == 3 then i:stop() end
    end))
    assert.is_true(i:is_active())
    run_loop(function() return n >= 3 end, 2)
    assert.equal(3, n)
    assert.is_false(i:is_active())
    i:close()
  end)

  it("restarting replaces the callback", function()
    local a, b = 0, 0
    local i = uv.new_idle()
    i:start(function() a = a + 1 end)
    i:start(function() b = b + 1; i:stop() end)
    run_loop(function() return b == 1 end, 2)
    assert.equal(0, a)
    i:close()
  end)

  it("async_send wakes the loop with its values", function()
    local got
    local a
    a = uv.new_async(expect(function(...)
      got = table.pack(...)
      a:close()
    end))
    assert.equal(0, uv.async_send(a, 1, "two\0bytes", nil, true, 2.5))
    run_loop(function() return got ~= nil end)
    assert.equal(5, got.n)
    assert.equal(1, got[1])
    assert.equal(math.type(1), math.type(got[1]))
    assert.equal("two\0bytes", got[2])
    assert.is_nil(got[3])
    assert.is_true(got[4])
    assert.equal(2.5, got[5])
  end)

  it("coalesces sends made before the callback runs: last values win",
    function()
      local calls = {}
      local a = uv.new_async(function(...)
        calls[#calls + 1] = table.pack(...)
      end)
      a:send("first")
      a:send("second")
      run_loop(function() return #calls > 0 end)
      uv.run("nowait")
      assert.equal(1, #calls)
      assert.same({"second", n = 1}, calls[1])
      a:send()
      run_loop(function() return #calls > 1 end)
      assert.equal(2, #calls)
      assert.equal(0, calls[2].n)
      a:close()
    end)

  it("async_send refuses values that cannot cross threads", function()
    local a = uv.new_async(function() end)
    assert.matches("bad argument #2",
      select(2, pcall(uv.async_send, a, {})))
    assert.matches("bad argument #3",
      select(2, pcall(a.send, a, 1, function() end)))
    assert.matches("bad argument #1",
      select(2, pcall(uv.async_send, uv.new_idle())))
    assert.matches("bad argument #1", select(2, pcall(uv.new_async, 1)))
    a:close()
    uv.walk(function(h) h:close() end)
  end)

  it("raises for watchers of the wrong type or closed", function()
    local i, p = uv.new_idle(), uv.new_prepare()
    assert.matches("bad argument #1",
      select(2, pcall(uv.idle_start, p, function() end)))
    assert.matches("bad argument #2",
      select(2, pcall(uv.prepare_start, p, "x")))
    i:close()
    assert.matches("closed", select(2, pcall(i.start, i, function() end)))
    p:close()
  end)

  it("an async closed in its callback, after a send, frees cleanly",
    function()
      local a
      a = uv.new_async(function() a:close() end)
      a:send(("x"):rep(100000))
      run_loop(function() return a:is_closing() end)
    end)
end)
