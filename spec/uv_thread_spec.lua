-- uv threads (bindings/thread.c): new_thread, thread_join, thread_self,
-- thread_equal, and async handles sent between threads (watchers.c).
local uv = require "uv"

-- Run a script in its own luahost; returns stdout, stderr, exit code.
local function host_script(src)
  local path = tmpname()
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  return run_host({path})
end

describe("uv threads", function()
  after_each(assert_clean)

  it("runs the entry with its arguments copied; join returns true",
    function()
      local got
      local a
      a = uv.new_async(expect(function(...)
        got = table.pack(...)
        a:close()
      end))
      local t = uv.new_thread(function(async, i, d, s, b, n)
        async:send(math.type(i), i, math.type(d), d, s, b, n == nil)
      end, a, 7, 2.5, "x\0y", false, nil)
      assert.equal("userdata", type(t))
      assert.is_true(uv.thread_join(t))
      run_loop(function() return got ~= nil end)
      assert.same({"integer", 7, "float", 2.5, "x\0y", false, true, n = 7},
                  got)
    end)

  it("takes the entry as source or as a dumped function", function()
    local got = {}
    local a
    a = uv.new_async(expect(function(v)
      got[#got + 1] = v
      if #got == 2 then a:close() end
    end, 2))
    -- (sends coalesce: wait for each before the next)
    assert.is_true(uv.new_thread("local a, v = ...; a:send(v * 2)", a, 21)
                     :join())
    run_loop(function() return #got == 1 end)
    local dumped = string.dump(function(async, v) async:send(v .. "!") end)
    assert.is_true(uv.new_thread(dumped, a, "hi"):join())
    run_loop(function() return #got == 2 end)
    assert.same({42, "hi!"}, got)
  end)

  it("gives the thread uv (and luv) with a loop of its own", function()
    local got
    local a
    a = uv.new_async(expect(function(v) got = v; a:close() end))
    local t = uv.new_thread({stack_size = 0}, function(async)
      local tuv = require "uv"
      assert(require "luv" == tuv)
      local fired = 0
      local timer = tuv.new_timer()
      timer:start(5, 0, function() fired = fired + 1; timer:close() end)
      tuv.run()
      async:send(fired, tuv.loop_alive())
    end, a)
    t:join()
    run_loop(function() return got ~= nil end)
    assert.equal(1, got)
  end)

  it("runs a thread given a small stack_size (at least 256 KiB is used)",
    function()
    -- (1 to 128 KiB crashed the process: starting a Lua state, or a deep
    -- pcall chain, needs more; luv takes any size)
    local got
    local a
    a = uv.new_async(expect(function(v) got = v; a:close() end))
    local t = uv.new_thread({stack_size = 16384}, function(async)
      local function f(n)
        if n == 0 then return 0 end
        return select(2, pcall(f, n - 1))
      end
      local _, r = pcall(f, 250) -- (Lua's C-call limit, not the stack's)
      async:send(r)
    end, a)
    t:join()
    run_loop(function() return got ~= nil end)
    assert.equal("C stack overflow", got)
  end)

  it("thread_self, thread_equal, __eq, equal and tostring", function()
    local me, me2 = uv.thread_self(), uv.thread_self()
    assert.is_true(uv.thread_equal(me, me2))
    assert.is_true(me == me2)
    assert.is_true(me:equal(me2))
    assert.matches("^uv_thread_t: ", tostring(me))
    local str
    local a
    a = uv.new_async(expect(function(s) str = s; a:close() end))
    local t = uv.new_thread(function(async)
      local tuv = require "uv"
      local s1, s2 = tuv.thread_self(), tuv.thread_self()
      assert(s1 == s2)
      async:send(tostring(s1))
    end, a)
    t:join()
    run_loop(function() return str ~= nil end)
    assert.equal(tostring(t), str)
    assert.is_false(uv.thread_equal(t, me))
    assert.is_false(t == me)
    -- compared with another kind of userdata: unequal, no error
    local timer = uv.new_timer()
    assert.is_false(t == timer)
    assert.is_false(timer == me)
    timer:close()
    -- joining twice is harmless; a thread_self value cannot be joined
    assert.is_true(t:join())
    local ok, err, name = uv.thread_join(me)
    assert.is_nil(ok)
    assert.equal("EINVAL", name)
    assert.matches("^EINVAL: ", err)
  end)

  it("copies at most 9 arguments, as luv does", function()
    local n
    local a
    a = uv.new_async(expect(function(v) n = v; a:close() end))
    uv.new_thread(function(...)
      local async = ...
      async:send(select("#", ...))
    end, a, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11):join()
    run_loop(function() return n ~= nil end)
    assert.equal(9, n)
  end)

  it("raises naming the argument on bad input", function()
    local function f() end
    assert.matches("bad argument #1 to '.-new_thread' %(function or string",
      select(2, pcall(uv.new_thread, 42)))
    assert.matches("bad argument #1.-C function",
      select(2, pcall(uv.new_thread, print)))
    assert.matches("bad argument #1.-syntax error",
      select(2, pcall(uv.new_thread, "this is not lua")))
    assert.matches("bad argument #2.-cannot copy a table",
      select(2, pcall(uv.new_thread, f, {})))
    assert.matches("bad argument #3.-cannot copy a function",
      select(2, pcall(uv.new_thread, f, 1, f)))
    assert.matches("bad argument #2.-cannot copy a userdata",
      select(2, pcall(uv.new_thread, f, uv.new_timer())))
    assert.matches("bad argument #1.-stack_size",
      select(2, pcall(uv.new_thread, {stack_size = -1}, f)))
    assert.matches("bad argument #2 to '.-new_thread' %(function or string",
      select(2, pcall(uv.new_thread, {}, 1)))
    assert.matches("bad argument #1.-uv_thread expected",
      select(2, pcall(uv.thread_join, 1)))
    assert.matches("bad argument #2.-uv_thread expected",
      select(2, pcall(uv.thread_equal, uv.thread_self(), {})))
    assert.matches("bad argument #1.-uv_thread expected",
      select(2, pcall(uv.thread_equal)))
    uv.walk(function(h) h:close() end) -- the timer given above
  end)

  it("an async of a thread's loop can be sent back and used", function()
    local done
    local back
    back = uv.new_async(expect(function(theirs)
      back:close()
      assert.equal("userdata", type(theirs))
      assert.equal(0, uv.async_send(theirs, "ping", 3))
    end))
    local t = uv.new_thread(function(main_async)
      local tuv = require "uv"
      local mine
      mine = tuv.new_async(function(word, n)
        mine:close()
        assert(word == "ping" and n == 3)
      end)
      assert(tuv.async_send(main_async, mine) == 0)
      tuv.run()
      return true
    end, back)
    run_loop(function() return back:is_closing() end)
    t:join()
    done = true
    assert.is_true(done)
  end)

  it("a send to an async whose thread has ended fails EINVAL", function()
    local theirs
    local back
    back = uv.new_async(expect(function(x) theirs = x; back:close() end))
    uv.new_thread(function(main_async)
      local tuv = require "uv"
      local mine = tuv.new_async(function() end)
      main_async:send(mine)
    end, back):join() -- its state and loop are gone now
    run_loop(function() return theirs ~= nil end)
    local ok, err, name = uv.async_send(theirs, 1)
    assert.is_nil(ok)
    assert.equal("EINVAL", name)
    assert.matches("^EINVAL: ", err)
    assert.matches("another thread", tostring(theirs))
  end)

  it("an error in the entry is reported and ends that thread only",
    function()
      local out, err, code = host_script([[
        local uv = require "uv"
        local t = uv.new_thread(function() error("boom in thread") end)
        print("join", t:join())
        print("after")
      ]])
      assert.matches("uncaught error in thread: .-boom in thread", err)
      assert.matches("stack traceback", err)
      assert.equal("join\ttrue\nafter\n", out)
      assert.equal(0, code)
    end)

  it("a thread whose value is collected keeps running and is joined",
    function()
      -- one async each: libuv coalesces sends to one async that come
      -- close together into one callback
      local got = 0
      for _ = 1, 3 do
        local a
        a = uv.new_async(function()
          got = got + 1
          a:close()
        end)
        uv.new_thread(function(async)
          require("uv").sleep(20)
          async:send()
        end, a)
      end
      collectgarbage()
      collectgarbage()
      run_loop(function() return got == 3 end)
      assert.equal(3, got)
      -- a later new_thread reaps the finished ones
      uv.new_thread(function() end):join()
    end)

  it("host exit stops busy and waiting threads and joins them", function()
    local out, err, code = host_script([[
      local uv = require "uv"
      -- busy forever in Lua
      uv.new_thread(function() local x = 0 while true do x = x + 1 end end)
      -- waiting forever in its own loop
      uv.new_thread(function()
        local tuv = require "uv"
        tuv.new_async(function() end)
        tuv.run()
      end)
      -- left running, its value kept
      KEEP = uv.new_thread(function() while true do end end)
      local t = uv.new_timer()
      t:start(100, 0, function() print("exiting") os.exit(3, true) end)
    ]])
    assert.equal("exiting\n", out)
    assert.equal(3, code)
    -- each thread learns why it stopped
    local _, n = err:gsub("cancelled: the host is exiting", "")
    assert.equal(3, n, err)
  end)
end)
