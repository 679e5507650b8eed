-- net.buffer, conn:recv_into and conn:write(buf): bytes that pass through
-- without a Lua string (loopback only).
local net = require "net"
local task = require "task"
local core = require "net.core"
local T = require "tls_helper"

-- reads that landed in a buffer where the kernel put them
local function in_place() return core.stats().reads_in_place end

-- A connected pair: the server side (accepted) and the client side.
local function pair(sopts, host, copts)
  local o = {host = "127.0.0.1", port = 0}
  for k, v in pairs(sopts or {}) do o[k] = v end
  local s = assert(net.listen(o))
  local _, port = s:sockname()
  local client, srv
  local t = task.spawn(function() srv = assert(s:accept(10)) end)
  client = assert(net.connect(host or "127.0.0.1", port,
    copts or {timeout = 10}))
  t:join()
  s:close()
  client:settimeout(10)
  srv:settimeout(10)
  return srv, client
end

local function random_bytes(n, seed)
  math.randomseed(seed)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

describe("net.buffer", function()
  after_each(assert_clean)

  it("is empty when made, of the size asked", function()
    local b = net.buffer(100)
    assert.equal(0, #b)
    assert.equal(100, b:capacity())
    assert.equal("", b:tostring())
    assert.matches("^net%.buffer %(0 of 100 bytes%): 0x", tostring(b))
    assert.equal(b, b:clear())
  end)

  it("names a bad size, a bad argument and an extra one", function()
    for _, bad in ipairs({0, -1, (1 << 30) + 1, 1.5}) do
      local ok, err = pcall(net.buffer, bad)
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w.]*buffer'", err)
    end
    assert.error_matches(function() net.buffer("x") end,
      "bad argument #1 to '[%w.]*buffer' %(number expected")
    assert.error_matches(function() net.buffer() end, "bad argument #1")
    assert.error_matches(function() net.buffer(4, 5) end,
      "bad argument #2 to '[%w.]*buffer' %(no value expected%)")
    local b = net.buffer(4)
    assert.error_matches(function() b:capacity(1) end,
      "bad argument #1 to 'capacity' %(no value expected%)")
    assert.error_matches(function() b:tostring(1, 2, 3) end,
      "bad argument #3 to 'tostring' %(no value expected%)")
    assert.error_matches(function() b.tostring({}) end,
      "bad argument #1 to 'tostring' %(net.buffer expected")
    assert.error_matches(function() b:tostring("x") end,
      "bad argument #1 to 'tostring'")
  end)

  it("recv_into fills it with what arrived, where the kernel put it",
    function()
    run_task(function()
      local srv, client = pair()
      local b = net.buffer(64)
      local before = in_place()
      client:write("hello")
      assert.equal(5, srv:recv_into(b))
      assert.equal(5, #b)
      assert.equal("hello", b:tostring())
      assert.is_true(in_place() > before)
      -- string.sub's positions, on 200 random contents
      for round = 1, 200 do
        local s = random_bytes(round % 64 + 1, round)
        client:write(s)
        local got = {}
        local n = 0
        while n < #s do
          local k = assert(srv:recv_into(b))
          got[#got + 1] = b:tostring()
          n = n + k
        end
        assert.equal(s, table.concat(got))
        if #got == 1 then
          for _ = 1, 5 do
            local i, j = math.random(-70, 70), math.random(-70, 70)
            assert.equal(s:sub(i, j), b:tostring(i, j))
          end
          assert.equal(s:sub(3), b:tostring(3))
        end
      end
      srv:close()
      client:close()
    end)
  end)

  it("takes at most its capacity a call: a megabyte in order", function()
    run_task(function()
      local srv, client = pair()
      local data = random_bytes(1 << 20, 7)
      local b = net.buffer(1000)
      task.spawn(function()
        client:write(data)
        client:shutdown()
      end)
      local got, calls = {}, 0
      while true do
        local n, err = srv:recv_into(b)
        if not n then
          assert.equal("closed", err)
          break
        end
        assert.is_true(n >= 1 and n <= 1000)
        assert.equal(n, #b)
        got[#got + 1] = b:tostring()
        calls = calls + 1
      end
      assert.equal(#data, #table.concat(got))
      assert.equal(data, table.concat(got))
      assert.is_true(calls >= 1049)
      srv:close()
      client:close()
    end)
  end)

  it("takes input buffered by an earlier read, then reads in place",
    function()
    run_task(function()
      local srv, client = pair()
      client:write("line\nrest of it")
      assert.equal("line", srv:read("l"))
      local b = net.buffer(8)
      assert.equal(8, srv:recv_into(b)) -- (copied from what read kept)
      assert.equal("rest of ", b:tostring())
      assert.equal(2, srv:recv_into(b))
      assert.equal("it", b:tostring())
      local before = in_place()
      client:write("next")
      assert.equal(4, srv:recv_into(b))
      assert.equal("next", b:tostring())
      assert.is_true(in_place() > before)
      srv:close()
      client:close()
    end)
  end)

  it("is left as it was by a timeout, a close and the peer's end",
    function()
    run_task(function()
      local srv, client = pair()
      local b = net.buffer(16)
      client:write("keep")
      assert.equal(4, srv:recv_into(b))
      srv:settimeout(0.05)
      assert.same({nil, "timeout"}, {srv:recv_into(b)})
      assert.equal("keep", b:tostring())
      srv:settimeout(10)
      client:close()
      assert.same({nil, "closed"}, {srv:recv_into(b)})
      assert.equal("keep", b:tostring())
      srv:close()
      assert.same({nil, "closed"}, {srv:recv_into(b)})
      assert.equal("keep", b:tostring())
    end)
  end)

  it("names a wrong argument of recv_into", function()
    run_task(function()
      local srv, client = pair()
      -- (a method's arguments are counted after self, as Lua's are)
      assert.error_matches(function() srv:recv_into() end,
        "bad argument #1 to 'recv_into' %(net.buffer expected")
      assert.error_matches(function() srv:recv_into("x") end,
        "bad argument #1 to 'recv_into' %(net.buffer expected")
      assert.error_matches(function() srv:recv_into(io.stdout) end,
        "bad argument #1 to 'recv_into' %(net.buffer expected")
      assert.error_matches(function() srv:recv_into(net.buffer(1), 5) end,
        "bad argument #2 to 'recv_into' %(no value expected%)")
      srv:close()
      client:close()
    end)
  end)

  it("write sends a buffer's bytes, among strings and numbers", function()
    run_task(function()
      local srv, client = pair()
      local b = net.buffer(16)
      client:write("abc")
      assert.equal(3, srv:recv_into(b))
      assert.equal(srv, srv:write(b))
      assert.equal(srv, srv:write("<", b, 1, ">"))
      -- more than 16 values: joined first
      local args = {}
      for i = 1, 20 do args[i] = i % 2 == 0 and b or "-" end
      assert.equal(srv, srv:write(table.unpack(args)))
      b:clear()
      assert.equal(srv, srv:write(b, "!")) -- (empty: nothing of it)
      assert.equal("abc<abc1>" .. ("-abc"):rep(10) .. "!",
        client:read(9 + 40 + 1))
      assert.error_matches(function() srv:write(io.stdout) end,
        "bad argument #1 to 'write' %(string or net.buffer expected")
      local many = {}
      for i = 1, 17 do many[i] = "x" end
      many[18] = {}
      assert.error_matches(function() srv:write(table.unpack(many)) end,
        "string or net.buffer expected")
      srv:close()
      client:close()
    end)
  end)

  it("can be filled again at once after a write the kernel did not take " ..
     "whole: what waits to go is a copy", function()
    run_task(function()
      local srv, client = pair()
      -- small kernel buffers: most of a 60,000-byte write waits in C
      srv:setopt("sndbuf", 4096)
      client:setopt("rcvbuf", 4096)
      local data = random_bytes(60000, 11)
      local b = net.buffer(65536)
      client:write(data)
      local n = assert(srv:recv_into(b))
      local piece = b:tostring()
      assert.equal(data:sub(1, n), piece)
      assert.equal(srv, srv:write(b, "|end"))
      -- b is filled again while its bytes may still wait to go
      local rest = #data - n
      local got = {}
      while rest > 0 do
        rest = rest - assert(srv:recv_into(b))
        got[#got + 1] = b:tostring()
      end
      assert.equal(data:sub(n + 1), table.concat(got))
      assert.equal(piece .. "|end", client:read(n + 4))
      srv:close()
      client:close()
    end)
  end)

  it("serves every connection of an echo server, one buffer for all",
    function()
    local s = assert(net.listen{port = 0})
    local _, port = s:sockname()
    local buf = net.buffer(4096)
    local served = task.spawn(function()
      s:serve(function(conn)
        while true do
          local n = conn:recv_into(buf)
          if not n then break end
          if not conn:write(buf) then break end
        end
      end)
    end)
    local clients, results = {}, {}
    for i = 1, 20 do
      clients[i] = task.spawn(function()
        local data = random_bytes(50000 + i * 977, 100 + i)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
        task.spawn(function()
          for off = 1, #data, 3000 do c:write(data:sub(off, off + 2999)) end
        end)
        results[i] = c:read(#data) == data
        c:close()
      end)
    end
    run_task(function()
      for i = 1, 20 do clients[i]:join() end
      s:close()
      served:join()
    end, 30)
    for i = 1, 20 do assert.is_true(results[i], "client " .. i) end
  end)

  it("does not catch a read for a task that waits after a cancelled " ..
     "recv_into", function()
    run_task(function()
      local srv, client = pair()
      local b = net.buffer(16)
      client:write("one")
      assert.equal(3, srv:recv_into(b))
      local t = task.spawn(function() srv:recv_into(b) end)
      task.yield()
      t:cancel()
      task.yield()
      local before = in_place()
      local got
      local r = task.spawn(function() got = srv:recv() end)
      task.yield()
      client:write("two")
      r:join()
      assert.equal("two", got)
      assert.equal("one", b:tostring())
      assert.equal(before, in_place())
      srv:close()
      client:close()
    end)
  end)

  it("is filled over TLS too (the plaintext, copied)", function()
    local c = T.certs()
    run_task(function()
      local srv, client = pair({tls = {cert = c.server, key = c.server_key}},
        "localhost", {tls = {ca = c.ca}, timeout = 10})
      local b = net.buffer(100)
      local data = random_bytes(5000, 3)
      local before = in_place()
      task.spawn(function() client:write(data) end)
      local got = {}
      local n = 0
      while n < #data do
        n = n + assert(srv:recv_into(b))
        got[#got + 1] = b:tostring()
      end
      assert.equal(data, table.concat(got))
      assert.equal(before, in_place())
      assert(srv:write(b))
      assert.equal(b:tostring(), client:read(#b))
      srv:close()
      client:close()
    end)
  end)

  it("keeps the stream whole under mixed reads, timeouts and cancels",
    function()
    run_task(function()
      local srv, client = pair()
      math.randomseed(20261205)
      local bufs = {net.buffer(1), net.buffer(7), net.buffer(4096)}
      local sent, got = {}, {}
      local nsent, ngot = 0, 0
      for step = 1, 400 do
        local op = math.random(6)
        if op <= 2 or ngot == nsent then -- more input
          local s = random_bytes(math.random(1, 3000), step)
          client:write(s)
          sent[#sent + 1] = s
          nsent = nsent + #s
        elseif op == 3 then
          local b = bufs[math.random(#bufs)]
          local n = assert(srv:recv_into(b))
          assert.equal(n, #b)
          got[#got + 1] = b:tostring()
          ngot = ngot + n
        elseif op == 4 then
          local d = assert(srv:recv(math.random(1, 500)))
          got[#got + 1] = d
          ngot = ngot + #d
        elseif op == 5 then
          local k = math.random(1, nsent - ngot)
          local d = assert(srv:read(k))
          got[#got + 1] = d
          ngot = ngot + #d
        elseif srv:buffered() == 0 then
          -- a recv_into in another task, cancelled (or served first, when
          -- bytes still on their way arrive: they are its own)
          local b = bufs[math.random(#bufs)]
          local t = task.spawn(function()
            local n = srv:recv_into(b)
            if n then
              got[#got + 1] = b:tostring()
              ngot = ngot + n
            end
          end)
          task.yield()
          t:cancel()
          task.yield()
        end
      end
      while ngot < nsent do
        local b = bufs[3]
        ngot = ngot + assert(srv:recv_into(b))
        got[#got + 1] = b:tostring()
      end
      assert.equal(table.concat(sent), table.concat(got))
      srv:settimeout(0.01)
      assert.same({nil, "timeout"}, {srv:recv_into(bufs[2])})
      srv:close()
      client:close()
    end, 60)
  end)

  it("write of another userdata raises after the last buffer is collected",
    function()
    run_task(function()
      local srv, client = pair()
      for _ = 1, 50 do
        local b = net.buffer(16)
        srv:write(b) -- (remembered as the last buffer seen)
        b = nil -- luacheck: ignore
        collectgarbage()
        collectgarbage()
        local f = io.tmpfile()
        assert.is_false(pcall(srv.write, srv, f))
        f:close()
      end
      srv:close()
      client:close()
    end)
  end)

  it("is not taken for another userdata that reuses its block after a " ..
    "finalizer passed it to write once its own __gc had run", function()
    run_task(function()
      local hcore = require "http.core"
      local srv, client = pair()
      local wrote = {}
      for _ = 1, 20 do
        -- (finalizers run in the reverse order of their objects' marks:
        -- the buffer's __gc first, then the holder's, which writes it)
        (function()
          local b
          setmetatable({}, {__gc = function()
            wrote[#wrote + 1] = (pcall(srv.write, srv, b))
          end})
          b = net.buffer(32) -- (a userdata of an http.chunked's size)
          b:clear()
        end)()
        collectgarbage()
        collectgarbage() -- (the buffer's block is freed)
        -- (the allocator gives a freed block to one of the next of its
        -- size, among the blocks the collection freed)
        local keep = {}
        for i = 1, 1000 do keep[i] = hcore.chunked() end
        for i = 1, 1000 do
          local ok, err = pcall(srv.write, srv, keep[i])
          assert.is_false(ok)
          assert.matches("string or net%.buffer expected, got http%.chunked",
            err)
        end
      end
      assert.equal(20, #wrote)
      for i = 1, 20 do assert.is_true(wrote[i]) end
      srv:close()
      client:close()
    end)
  end)

  it("<close> empties a buffer (and zeroes the bytes it held)", function()
    local seen
    run_task(function()
      local srv, client = pair()
      do
        local b <close> = net.buffer(8)
        seen = b
        client:write("secret")
        assert.equal(6, srv:recv_into(b))
        assert.equal("secret", b:tostring())
      end
      srv:close()
      client:close()
    end)
    assert.equal(0, #seen)
    assert.equal("", seen:tostring())
    assert.equal(8, seen:capacity())
    assert.matches("^net%.buffer %(0 of 8 bytes%)", tostring(seen))
  end)
end)
