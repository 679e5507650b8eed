-- conn:setvbuf: output batched in C, as Lua files buffer (loopback only).
local net = require "net"
local task = require "task"
local core = require "net.core"

-- Writes handed to sockets so far (each is one send attempt).
local function sends() return core.stats().sends end

-- A connected pair: the server side (accepted) and the client side.
local function pair()
  local s = assert(net.listen{port = 0})
  local _, port = s:sockname()
  -- (a client reads whole what the writes sent: megabytes, past the
  -- default max_read)
  local client = assert(net.connect("127.0.0.1", port, {timeout = 10,
    max_read = 64 * 1024 * 1024}))
  local srv = assert(s:accept(10))
  s:close()
  client:settimeout(10)
  srv:settimeout(10)
  return srv, client
end

describe("conn:setvbuf", function()
  after_each(assert_clean)

  it("is 'no' by default: every write is sent at once", function()
    run_task(function()
      local srv, client = pair()
      local n = sends()
      srv:write("a")
      srv:write("b", "c")
      srv:write(1)
      assert.equal(3, sends() - n)
      assert.equal("abc1", client:read(4))
      srv:close()
      client:close()
    end)
  end)

  it("'full' sends many writes as one, at flush", function()
    run_task(function()
      local srv, client = pair()
      assert.equal(srv, srv:setvbuf("full"))
      local n = sends()
      for i = 1, 100 do srv:write("line ", i, "\n") end
      assert.equal(0, sends() - n)
      assert.equal(srv, srv:flush())
      assert.equal(1, sends() - n)
      for i = 1, 100 do assert.equal("line " .. i, client:read("l")) end
      srv:close()
      client:close()
    end)
  end)

  it("'full' sends the batch with the write that would pass its size",
    function()
    run_task(function()
      local srv, client = pair()
      srv:setvbuf("full", 4)
      local n = sends()
      srv:write("abc")
      assert.equal(0, sends() - n)
      srv:write("de") -- 5 > 4: batch and new data in one write, in order
      assert.equal(1, sends() - n)
      assert.equal("abcde", client:read(5))
      srv:write(string.rep("x", 10)) -- larger than the size: at once
      assert.equal(2, sends() - n)
      assert.equal(string.rep("x", 10), client:read(10))
      srv:close()
      client:close()
    end)
  end)

  it("'line' sends at each newline", function()
    run_task(function()
      local srv, client = pair()
      srv:setvbuf("line")
      local n = sends()
      srv:write("x")
      assert.equal(0, sends() - n)
      srv:write("y\n", "z")
      assert.equal(1, sends() - n)
      assert.equal("xy", client:read("l"))
      assert.equal("z", client:read(1))
      srv:close()
      client:close()
    end)
  end)

  it("a read that would wait sends the batch first (no deadlock)",
    function()
    run_task(function()
      local srv, client = pair()
      local t = task.spawn(function()
        srv:setvbuf("full")
        for line in srv:lines() do srv:write("re: ", line, "\n") end
        srv:close()
      end)
      -- (the reader flushes before it parks, not a loop iteration later)
      local srv2, client2 = pair()
      srv2:setvbuf("full")
      srv2:write("q")
      local n = sends()
      local r = task.spawn(function() return srv2:recv() end) -- parks
      assert.equal(1, sends() - n)
      assert.equal("q", client2:read(1))
      client2:write("!")
      assert.equal("!", r:join())
      srv2:close()
      client2:close()
      n = sends()
      for i = 1, 20 do
        assert(client:write("ping ", i, "\n"))
        assert.equal("re: ping " .. i, client:read("l"))
      end
      -- one send per reply on the server, one per request on the client
      assert.equal(40, sends() - n)
      client:close()
      t:join()
    end)
  end)

  it("a batch never waits past the loop iteration it was made in",
    function()
    run_task(function()
      local srv, client = pair()
      local done = task.event()
      local t = task.spawn(function()
        srv:setvbuf("full")
        srv:write("late")
        done:wait(30) -- neither reads nor flushes
        srv:close()
      end)
      assert.equal("late", client:read(4))
      done:set()
      t:join()
      client:close()
    end)
  end)

  it("close, shutdown and a switch of mode send the batch", function()
    run_task(function()
      local srv, client = pair()
      srv:setvbuf("full")
      srv:write("one ")
      srv:setvbuf("full", 8) -- a switch sends what is batched
      srv:write("two ")
      srv:shutdown()
      assert.equal("one two ", client:read("a"))
      srv:close()
      client:close()
      srv, client = pair()
      srv:setvbuf("full")
      srv:write("bye")
      srv:close()
      assert.equal("bye", client:read("a"))
      client:close()
    end)
  end)

  it("keeps order under a stream of writes of every size", function()
    run_task(function()
      local srv, client = pair()
      local rnd = 12345
      local function random(n) -- a fixed sequence: reproducible
        rnd = (rnd * 1103515245 + 12345) % 2147483648
        return rnd % n
      end
      local parts = {}
      local t = task.spawn(function()
        srv:setvbuf("full", 4096)
        for i = 1, 500 do
          local p = string.rep(string.char(65 + i % 26), random(6000))
          parts[i] = p
          assert(srv:write(p))
        end
        srv:close()
      end)
      local got = client:read("a")
      t:join()
      assert.equal(table.concat(parts), got)
      client:close()
    end)
  end)

  it("checks its arguments", function()
    run_task(function()
      local srv, client = pair()
      local ok, err = pcall(function()
        local r = srv:setvbuf("bogus")
        return r
      end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'setvbuf' %(invalid option 'bogus'%)",
        err)
      assert.matches("out of range", select(2,
        pcall(srv.setvbuf, srv, "full", 0)))
      assert.matches("number expected", select(2,
        pcall(srv.setvbuf, srv, "full", "big")))
      srv:close()
      assert.same({nil, "closed"}, {srv:setvbuf("line")})
      client:close()
    end)
  end)
end)
