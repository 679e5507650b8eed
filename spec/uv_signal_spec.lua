-- uv signal handles: delivery, names, oneshot, stop, and the host's own
-- SIGINT handling standing down for a script that watches SIGINT itself.
local uv = require "uv"

describe("uv signal", function()
  after_each(assert_clean)

  it("delivers a signal sent with uv.kill, by name, as luv's name", function()
    local got
    local s = uv.new_signal()
    assert.equal(0, s:start("sigusr1", expect(function(name)
      got = name
      s:close()
    end)))
    assert.equal(0, uv.kill(uv.os_getpid(), "sigusr1"))
    run_loop(function() return got ~= nil end)
    assert.equal("sigusr1", got)
  end)

  it("accepts numbers, upper case and short names", function()
    local names = {}
    local s1, s2 = uv.new_signal(), uv.new_signal()
    assert.equal(0, uv.signal_start(s1, "SIGUSR2", function(n)
      names[#names + 1] = n
      s1:close()
    end))
    assert.equal(0, s2:start("hup", function(n)
      names[#names + 1] = n
      s2:close()
    end))
    assert.equal(0, uv.kill(uv.os_getpid(), 12)) -- SIGUSR2 on Linux
    assert.equal(0, uv.kill(uv.os_getpid(), "SIGHUP"))
    run_loop(function() return #names == 2 end)
    table.sort(names)
    assert.same({"sighup", "sigusr2"}, names)
  end)

  it("fires a oneshot handle once, then it is inactive", function()
    local calls = 0
    local s = uv.new_signal()
    assert.equal(0, s:start_oneshot("sigusr1", function(n)
      calls = calls + 1
      assert.equal("sigusr1", n)
    end))
    -- A plain watcher keeps the process from dying on the second signal.
    local keep, kept = uv.new_signal(), 0
    keep:start("sigusr1", function() kept = kept + 1 end)
    uv.kill(uv.os_getpid(), "sigusr1")
    run_loop(function() return calls == 1 and kept == 1 end)
    assert.is_false(s:is_active())
    uv.kill(uv.os_getpid(), "sigusr1")
    run_loop(function() return kept == 2 end)
    assert.equal(1, calls)
    s:close()
    keep:close()
  end)

  it("stops delivering after signal_stop", function()
    local calls, kept = 0, 0
    local s, keep = uv.new_signal(), uv.new_signal()
    s:start("sigusr2", function() calls = calls + 1 end)
    keep:start("sigusr2", function() kept = kept + 1 end)
    assert.is_true(s:is_active())
    assert.equal(0, uv.signal_stop(s))
    assert.is_false(s:is_active())
    uv.kill(uv.os_getpid(), "sigusr2")
    run_loop(function() return kept == 1 end)
    assert.equal(0, calls)
    s:close()
    keep:close()
  end)

  it("returns fail for a signal libuv cannot watch", function()
    local s = uv.new_signal()
    local ok, msg, name = s:start("sigkill", function() end)
    assert.is_nil(ok)
    assert.equal("EINVAL", name)
    assert.matches("^EINVAL: ", msg)
    s:close()
  end)

  it("raises on wrong arguments, naming them", function()
    local s = uv.new_signal()
    assert.has_error(function() s:start("sigbogus", function() end) end,
      "bad argument #1 to 'start' (unknown signal 'sigbogus')")
    assert.matches("bad argument #2", select(2, pcall(uv.signal_start, s,
      {}, function() end)))
    assert.matches("bad argument #3", select(2, pcall(uv.signal_start, s,
      "sigusr1", 42)))
    assert.matches("bad argument #1", select(2, pcall(uv.signal_start,
      uv.new_timer(), "sigusr1", function() end)))
    assert.matches("bad argument #2", select(2, pcall(uv.kill, 1, "nope")))
    s:close()
    uv.walk(function(h) h:close() end) -- the stray timer
  end)

  it("the host stands down on SIGINT while a script watches it", function()
    local out, err, code = run_host({"-e", [[
      local uv = require "uv"
      local s = uv.new_signal()
      s:start("sigint", function(name)
        print("caught " .. name)
        s:close()
      end)
      uv.kill(uv.os_getpid(), "sigint")]]})
    assert.equal("caught sigint\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end)

  it("a oneshot SIGINT handle also keeps the host from stopping", function()
    -- libuv dispatches to plain handles before oneshot ones, so the host's
    -- watcher still sees the script's handle active.
    local out, err, code = run_host({"-e", [[
      local uv = require "uv"
      local s = uv.new_signal()
      s:start_oneshot("int", function(name) print("caught " .. name) end)
      uv.kill(uv.os_getpid(), "SIGINT")]]})
    assert.equal("caught sigint\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end)

  it("the host stops a script on SIGINT it does not watch", function()
    local out, err, code = run_host({"-e", [[
      local uv = require "uv"
      local t = uv.new_timer()
      t:start(5000, 0, function() print("not interrupted") end)
      uv.kill(uv.os_getpid(), "sigint")]]})
    assert.equal("", out)
    assert.matches("interrupted!", err)
    assert.equal(130, code)
  end)
end)
