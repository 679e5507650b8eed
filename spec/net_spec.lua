-- net: servers and clients as straight-line Lua (loopback, ephemeral ports).
local net = require "net"
local task = require "task"
local uv = require "uv"

-- A server on an ephemeral loopback port served by handler; returns the
-- server, its port and the serving task.
local function echo_server(handler, opts)
  opts = opts or {}
  opts.port = 0
  local server = assert(net.listen(opts))
  local _, port = server:sockname()
  local t = task.spawn(server.serve, server, handler or function(c)
    for line in c:lines() do c:write(line, "\n") end
  end)
  return server, port, t
end

-- Open handles; call it from a task once run_loop's guard timer exists
-- (after the task's first wait).
local function open_count()
  local n = 0
  uv.walk(function(h) if not h:is_closing() then n = n + 1 end end)
  return n
end

-- Close a server and wait (bounded) until its handlers are done and their
-- connections closed, so that assert_clean sees nothing left open.
local function stop(s)
  s:close()
  for _ = 1, 200 do
    if s:active() == 0 then break end
    task.sleep(0.005)
  end
  assert.equal(0, s:active())
  task.yield()
end

-- A script the host runs with --pidfile, so that SIGTERM drains it,
-- with net, task and its own pid (to signal itself) defined.
local function run_drainable(body)
  return run_host({"--pidfile", tmpname(), "-e",
    'local net, task = require "net", require "task"\n' ..
    'local pid = io.open("/proc/self/stat"):read("n")\n' .. body})
end

describe("net", function()
  after_each(assert_clean)

  describe("listen", function()
    it("defaults to loopback, port 0 gives a port", function()
      run_task(function()
        local s = assert(net.listen{})
        local ip, port, family = s:sockname()
        assert.equal("127.0.0.1", ip)
        assert.is_true(port > 0)
        assert.equal("inet", family)
        assert.matches("^net.server %(tcp%)", tostring(s))
        s:close()
        assert.equal("net.server (closed)", tostring(s))
        assert.same({nil, "closed"}, {s:sockname()})
      end)
    end)

    it("listens on IPv6 loopback", function()
      run_task(function()
        local s, err = net.listen{host = "::1"}
        if not s then
          pending("no IPv6 loopback here: " .. tostring(err))
          return
        end
        local ip, port = s:sockname()
        assert.equal("::1", ip)
        local t = task.spawn(function()
          local c = assert(s:accept(5))
          c:write("six\n")
          c:close()
        end)
        local c = assert(net.connect("::1", port))
        assert.equal("six", c:read())
        c:close()
        t:join()
        stop(s)
      end)
    end)

    it("reports EADDRINUSE, and reuseport shares a port", function()
      run_task(function()
        local a = assert(net.listen{})
        local _, port = a:sockname()
        local b, err, msg = net.listen{port = port}
        assert.is_nil(b)
        assert.equal("EADDRINUSE", err)
        -- the message names the operation and the address
        assert.equal(("listen 127.0.0.1:%d: EADDRINUSE (address already " ..
          "in use)"):format(port), msg)
        -- http.listen gives the same three values
        assert.same({nil, err, msg}, {require("http").listen{port = port,
          handler = function() end}})
        -- net.assert raises the message, at the caller's line (assert
        -- would say "EADDRINUSE" alone)
        local line = debug.getinfo(1, "l").currentline + 1
        local ok, e = pcall(function() net.assert(net.listen{port = port}) end)
        assert.is_false(ok)
        assert.equal(("spec/net_spec.lua:%d: %s"):format(line, msg), e)
        ok, e = pcall(net.assert, nil, "EX")
        assert.same({false, "EX"}, {ok, e})
        ok, e = pcall(net.assert, false)
        assert.same({false, "assertion failed!"}, {ok, e})
        assert.same({a, 1, nil, 3}, {net.assert(a, 1, nil, 3)})
        a:close()
        local c
        c, err, msg = net.connect("127.0.0.1", port)
        assert.is_nil(c)
        assert.equal("ECONNREFUSED", err)
        assert.equal(("connect 127.0.0.1:%d: ECONNREFUSED (connection " ..
          "refused)"):format(port), msg)
        c, err, msg = net.connect("::1", port)
        assert.is_nil(c)
        assert.matches("^connect %[::1%]:" .. port .. ": E", msg)
        local r1 = assert(net.listen{reuseport = true})
        local _, p = r1:sockname()
        local r2 = assert(net.listen{port = p, reuseport = true})
        r1:close(); r2:close()
      end)
    end)

    it("adopts an inherited listening socket (fd =)", function()
      run_task(function()
        local t = uv.new_tcp()
        assert(t:bind("127.0.0.1", 0))
        local s = assert(net.listen{fd = t:fileno()})
        local ip, port = s:sockname()
        assert.equal("127.0.0.1", ip)
        local k = task.spawn(function()
          local c = assert(net.connect("127.0.0.1", port))
          c:write("via fd\n")
          c:close()
        end)
        local c = assert(s:accept(5))
        local line = c:read()
        c:close()
        k:join()
        -- both handles own the fd: close them back to back (the second
        -- close of the number is harmless when nothing reused it)
        s:close()
        t:close()
        assert.equal("via fd", line)
        assert.has_error(function() net.listen{fd = -1} end)
      end)
    end)

    it("rejects bad options", function()
      assert.has_error(function() net.listen("x") end,
        "bad argument #1 to 'listen' (table expected, got string)")
      assert.has_error(function() net.listen{prot = 80} end,
        "bad argument #1 to 'listen' (unknown option 'prot')")
      assert.has_error(function() net.listen{port = 70000} end,
        "bad argument #1 to 'listen' (port: integer in 0..65535 " ..
        "expected, got 70000)")
      run_task(function()
        assert.same({nil, "ENOTFOUND", "listen no.such.invalid:0: " ..
          "ENOTFOUND (name does not resolve)"},
          {net.listen{host = "no.such.invalid"}})
      end)
    end)

    it("accept honours its timeout and stays usable", function()
      run_task(function()
        local s = assert(net.listen{})
        local t0 = task.now()
        local c, err = s:accept(0.05)
        assert.is_nil(c)
        assert.equal("timeout", err)
        local dt = task.now() - t0
        assert.is_true(dt >= 0.04 and dt < 2, "took " .. dt)
        local _, port = s:sockname()
        local client = task.spawn(function()
          local k = assert(net.connect("127.0.0.1", port))
          k:close()
        end)
        c = assert(s:accept(5))
        local ip, p = c:peername()
        assert.equal("127.0.0.1", ip)
        assert.is_true(p > 0)
        c:close()
        client:join()
        stop(s)
      end)
    end)

    it("close makes serve return and refuses new clients", function()
      run_task(function()
        local s, port, t = echo_server()
        s:close()
        assert.is_true(t:join())
        local c, err = net.connect("127.0.0.1", port)
        assert.is_nil(c)
        assert.equal("ECONNREFUSED", err)
      end)
    end)
  end)

  describe("connect", function()
    it("talks to a server: write chains, read formats", function()
      run_task(function()
        local s, port = echo_server(function(c)
          local a, b = c:read("l", "L")
          c:write(a, "|", b)
          local n = c:read(5)
          c:write(n):write("|")
          local num, num2 = c:read("n", "n")
          c:write(num + num2, "|")
          local rest = c:read("a")
          c:write("rest=", rest)
        end)
        local c = assert(net.connect("127.0.0.1", port))
        assert.equal(c, c:write("one\n", "two\n"))
        assert.equal(c, c:write("12345"))
        c:write("  1.5 2\n")
        assert.equal("one|two\n", c:read(8))
        assert.equal("12345|", c:read(6))
        assert.equal("3.5|", c:read(4))
        assert.equal(c, c:shutdown())
        assert.equal("rest=\n", c:read("a"))
        assert.same({nil, "closed"}, {c:read("l")})
        c:close()
        stop(s)
      end)
    end)

    it("read with 200 formats makes room for 200 results", function()
      run_task(function()
        local s, port = echo_server(function(c)
          c:write(string.rep("x", 200), "y")
          c:read("a")
        end)
        local c = assert(net.connect("127.0.0.1", port))
        local f = {}
        for i = 1, 200 do f[i] = 1 end
        -- a fresh task (a small stack) reading input already buffered:
        -- every result is pushed without a wait in between
        assert.equal("x", c:read(1))
        for _ = 1, 200 do
          if c:buffered() >= 200 then break end
          task.sleep(0.005)
        end
        local r
        task.spawn(function() r = table.pack(c:read(table.unpack(f))) end)
        for _ = 1, 200 do if r then break end task.sleep(0.005) end
        assert.equal(200, r.n)
        assert.equal("x", r[1])
        assert.equal("y", r[200])
        c:close()
        stop(s)
      end)
    end)

    it("resolves localhost without blocking and tries each address",
      function()
      run_task(function()
        local s, port = echo_server()
        local addrs = assert(net.lookup("localhost"))
        assert.is_true(#addrs >= 1)
        local c = assert(net.connect("localhost", port, {timeout = 5}))
        c:write("hi\n")
        assert.equal("hi", c:read())
        c:close()
        stop(s)
      end)
    end)

    it("connect to a closed port returns ECONNREFUSED", function()
      run_task(function()
        local s = assert(net.listen{})
        local _, port = s:sockname()
        s:close()
        local c, err = net.connect("127.0.0.1", port)
        assert.is_nil(c)
        assert.equal("ECONNREFUSED", err)
      end)
    end)

    it("a name that does not exist fails fast with ENOTFOUND", function()
      run_task(function()
        local t0 = task.now()
        local c, err = net.connect("nonexistent.invalid", 80)
        assert.is_nil(c)
        assert.equal("ENOTFOUND", err)
        assert.is_true(task.now() - t0 < 5)
        local r, err2 = net.lookup("nonexistent.invalid")
        assert.is_nil(r)
        assert.equal("ENOTFOUND", err2)
      end)
    end)

    it("binds the local address and sets nodelay", function()
      run_task(function()
        local s, port = echo_server(function(c)
          c:write(select(1, c:peername()), "\n")
        end)
        local c = assert(net.connect("127.0.0.1", port,
          {bind = "127.0.0.2", nodelay = true}))
        assert.equal("127.0.0.2", c:read())
        assert.equal("127.0.0.2", (c:sockname()))
        c:close()
        stop(s)
      end)
    end)

    it("unix domain sockets", function()
      run_task(function()
        local path = tmpname()
        os.remove(path)
        local s = assert(net.listen{path = path})
        assert.equal(path, s:sockname())
        local t = task.spawn(s.serve, s, function(c)
          c:write(c:read(), "!\n")
        end)
        local c = assert(net.connect{path = path})
        c:write("pipe\n")
        assert.equal("pipe!", c:read())
        c:close()
        s:close()
        t:join()
        os.remove(path)
      end)
    end)

    it("rejects bad arguments", function()
      run_task(function()
        assert.has_error(function() net.connect(1, 2) end,
          "bad argument #1 to 'connect' (string expected, got number)")
        assert.has_error(function() net.connect("127.0.0.1", "x") end,
          "bad argument #2 to 'connect' (port: integer in 0..65535 " ..
          "expected, got x)")
        assert.has_error(function()
          net.connect("127.0.0.1", 1, {timeout = -1})
        end)
        assert.has_error(function()
          net.connect("127.0.0.1", 1, {bogus = 1})
        end, "bad argument #3 to 'connect' (unknown option 'bogus')")
      end)
    end)
  end)

  describe("conn", function()
    it("recv returns what arrives; read(0) and numbers", function()
      run_task(function()
        local s, port = echo_server(function(c)
          c:write("abc")
          task.sleep(0.02)
          c:write(42, " ", 1.5)
        end)
        local c = assert(net.connect("127.0.0.1", port))
        assert.equal("abc", c:recv())
        assert.equal("42 1.5", c:read("a"))
        assert.same({nil, "closed"}, {c:recv()})
        c:close()
        stop(s)
      end)
    end)

    it("recv(max) splits a chunk", function()
      run_task(function()
        local s, port = echo_server(function(c) c:write("abcdef") end)
        local c = assert(net.connect("127.0.0.1", port))
        assert.equal("abcdef", c:read(6) and "abcdef")
        c:close()
        c = assert(net.connect("127.0.0.1", port))
        local got = {}
        for _ = 1, 10 do
          local x = c:recv(2)
          if not x then break end
          got[#got + 1] = x
          assert.is_true(#x <= 2)
        end
        assert.equal("abcdef", table.concat(got))
        c:close()
        stop(s)
      end)
    end)

    it("read timeout fires and leaves the socket usable", function()
      run_task(function()
        local go = false
        local s, port = echo_server(function(c)
          while not go do task.sleep(0.01) end
          c:write("late\n")
          c:read()
        end)
        local c = assert(net.connect("127.0.0.1", port))
        c:settimeout(0.05)
        assert.equal(0.05, c:gettimeout())
        local t0 = task.now()
        assert.same({nil, "timeout"}, {c:read()})
        local dt = task.now() - t0
        assert.is_true(dt >= 0.04 and dt < 2, "took " .. dt)
        assert.same({nil, "timeout"}, {c:recv()})
        go = true
        c:settimeout(5)
        assert.equal("late", c:read())
        c:settimeout(nil)
        assert.is_nil(c:gettimeout())
        c:close()
        stop(s)
      end)
    end)

    it("a timeout counts from the start of each read", function()
      run_task(function()
        local s, port = echo_server(function(c)
          for i = 1, 4 do
            task.sleep(0.1)
            c:write(i, "\n")
          end
          c:read()
          task.sleep(0.02)
          c:write("5\n")
          c:read()
        end)
        local c = assert(net.connect("127.0.0.1", port))
        c:settimeout(0.3) -- longer than each gap, shorter than the sum
        for i = 1, 4 do assert.equal(tostring(i), c:read()) end
        local t0 = task.now()
        assert.same({nil, "timeout"}, {c:read()})
        local dt = task.now() - t0
        assert.is_true(dt >= 0.28 and dt < 3, "took " .. dt)
        c:settimeout(1) -- a long wait that ends early...
        c:write("go\n")
        assert.equal("5", c:read())
        c:settimeout(0.02) -- ...then a short one: must not wait 1 s
        t0 = task.now()
        assert.same({nil, "timeout"}, {c:read()})
        dt = task.now() - t0
        assert.is_true(dt >= 0.015 and dt < 0.25, "took " .. dt)
        c:close()
        stop(s)
      end)
    end)

    it("lines iterates and honours formats", function()
      run_task(function()
        local s, port = echo_server(function(c)
          c:write("a\nb\nc\n")
        end)
        local c = assert(net.connect("127.0.0.1", port))
        local got = {}
        for l in c:lines("L") do got[#got + 1] = l end
        assert.same({"a\n", "b\n", "c\n"}, got)
        c:close()
        stop(s)
      end)
    end)

    it("a blocking call from a raw uv callback raises", function()
      local s, c, a
      run_task(function()
        s = assert(net.listen{})
        local _, port = s:sockname()
        c = assert(net.connect("127.0.0.1", port))
        a = assert(s:accept()) -- none pending afterwards
      end)
      local errs = {}
      local timer = uv.new_timer()
      timer:start(0, 0, function()
        timer:close()
        errs[1] = select(2, pcall(c.read, c))
        errs[2] = select(2, pcall(s.accept, s))
        errs[3] = select(2, pcall(net.connect, "127.0.0.1", 1))
      end)
      run_loop(function() return #errs == 3 end)
      assert.matches("read must be called from a task", errs[1])
      assert.matches("accept must be called from a task", errs[2])
      assert.matches("net.connect must be called from a task", errs[3])
      c:close()
      a:close()
      s:close()
    end)

    it("closing the uv handle under a waiting task wakes it", function()
      run_task(function()
        local s = assert(net.listen{})
        local t = task.spawn(function() return s:accept() end)
        uv.walk(function(h)
          if h:get_type() == "tcp" and not h:is_closing() then h:close() end
        end)
        assert.same({nil, "closed"}, {t:join()})
        assert.is_true(s:is_closed())
      end)
    end)

    it("<close> closes on scope exit and on error", function()
      run_task(function()
        local s, port = echo_server()
        local kept
        do
          local c <close> = assert(net.connect("127.0.0.1", port))
          kept = c
          c:write("x\n")
          assert.equal("x", c:read())
        end
        assert.is_true(kept:is_closed())
        assert.same({nil, "closed"}, {kept:read()})
        assert.same({nil, "closed"}, {kept:write("y")})
        local ok = pcall(function()
          local c <close> = assert(net.connect("127.0.0.1", port))
          kept = c
          error("oops")
        end)
        assert.is_false(ok)
        assert.is_true(kept:is_closed())
        stop(s)
      end)
    end)

    it("an unreferenced conn is closed by the collector", function()
      run_task(function()
        local s, port = echo_server()
        task.yield()
        local before = open_count()
        do net.connect("127.0.0.1", port) end
        for _ = 1, 100 do
          collectgarbage(); collectgarbage()
          task.sleep(0.01)
          if open_count() <= before then break end
        end
        assert.is_true(open_count() <= before)
        stop(s)
      end)
    end)

    it("a peer that resets mid-transfer gives ECONNRESET or closed",
      function()
      run_task(function()
        local s, port = echo_server(function(c)
          c:read(10) -- the client is connected and sending
          c:write(string.rep("x", 1000))
          assert(c:setopt("linger", {on = true, seconds = 0})) -- close = RST
          local fd = c:getfd()
          assert.is_true(fd >= 0)
          -- reset: unread input at close makes the kernel send RST
        end)
        local c = assert(net.connect("127.0.0.1", port))
        c:write(string.rep("y", 100000))
        task.sleep(0.05)
        local data, err = c:read("a")
        if data then -- everything was read before the reset
          assert.equal(1000, #data)
        else
          assert.is_true(err == "ECONNRESET" or err == "closed", err)
        end
        -- the written side fails too, eventually, without raising
        local w, werr
        for _ = 1, 50 do
          w, werr = c:write(string.rep("z", 65536))
          if not w then break end
          task.sleep(0.001)
        end
        assert.is_nil(w)
        assert.is_string(werr)
        c:close()
        stop(s)
      end)
    end)

    it("close after shutdown still sends everything queued", function()
      -- shutdown waits for the queue; a close right after must not cut it
      run_task(function()
        local size, got = require("common").close_after_shutdown({},
          "127.0.0.1", {})
        assert.equal(size, #got)
        assert.equal(string.rep("q", size), got)
      end)
    end)

    it("write blocks a fast writer on a slow reader (bounded memory)",
      function()
      run_task(function()
        local s, port = echo_server(function(c)
          task.sleep(0.2)
          local n = 0
          while true do
            local d = c:recv()
            if not d then break end
            n = n + #d
          end
          c:write(n, "\n")
        end)
        local c = assert(net.connect("127.0.0.1", port))
        local chunk = string.rep("w", 65536)
        local total = 0
        for _ = 1, 200 do -- 12.5 MB
          assert(c:write(chunk))
          total = total + #chunk
        end
        assert(c:flush())
        c:shutdown()
        assert.equal(tostring(total), c:read())
        c:close()
        stop(s)
      end)
    end)

    it("a write that cannot wait is taken whole or refused whole",
      function()
      run_task(function()
        local go = task.event()
        local got
        local s, port = echo_server(function(c)
          go:wait(30) -- (not reading until the writer is done)
          got = #assert(c:read("a"))
        end, {max_read = 64 * 1024 * 1024})
        local c = assert(net.connect("127.0.0.1", port))
        local chunk = string.rep("w", 65536)
        local taken, err = 0, nil
        -- inside string.gsub's callback the task cannot yield: writes go
        -- on without waiting until the queue is past write_hwm, then one
        -- is refused before anything of it is written
        string.gsub("x", "x", function()
          for _ = 1, 10000 do
            local ok, e = pcall(c.write, c, chunk)
            if not ok then err = e break end
            taken = taken + #chunk
          end
        end)
        assert.matches("write cannot wait here", err)
        assert.is_true(taken > 0)
        go:set()
        assert(c:flush())
        c:close()
        local t0 = task.now()
        while not got and task.now() - t0 < 30 do task.sleep(0.01) end
        -- every byte of the writes that returned, none of the refused one
        assert.equal(taken, got)
        stop(s)
      end, 60)
    end)

    it("a second writer, while the first waits, is refused whole",
      function()
      run_task(function()
        local go = task.event()
        local got
        local s, port = echo_server(function(c)
          go:wait(30)
          got = #assert(c:read("a"))
        end, {max_read = 64 * 1024 * 1024})
        local c = assert(net.connect("127.0.0.1", port))
        local chunk = string.rep("w", 65536)
        local sent = 0
        -- the first writer fills the kernel and the queue, then waits
        local first = task.spawn(function()
          for _ = 1, 400 do -- (25 MiB: more than the kernel holds)
            assert(c:write(chunk))
            sent = sent + #chunk
          end
        end)
        local t0 = task.now()
        -- (wait until it is parked: its count stops moving)
        local last = -1
        while sent ~= last and task.now() - t0 < 30 do
          last = sent
          task.sleep(0.05)
        end
        local ok, err = pcall(c.write, c, "second")
        assert.is_false(ok)
        assert.matches("another task is already writing", err)
        assert.is_true(sent < 400 * #chunk)
        go:set()
        first:join()
        assert(c:flush())
        c:close()
        while not got and task.now() - t0 < 30 do task.sleep(0.01) end
        -- the first writer's bytes, none of "second"
        assert.equal(400 * #chunk, got)
        stop(s)
      end, 60)
    end)

    it("write timeout while the peer does not read", function()
      run_task(function()
        local release = false
        local s, port = echo_server(function()
          while not release do task.sleep(0.01) end
        end)
        local c = assert(net.connect("127.0.0.1", port))
        c:settimeout(0.1)
        local chunk = string.rep("w", 65536)
        local ok, err
        for _ = 1, 2000 do
          ok, err = c:write(chunk)
          if not ok then break end
        end
        assert.equal("timeout", err)
        release = true
        c:close()
        stop(s)
      end)
    end)

    it("setopt and getopt reach the socket options", function()
      run_task(function()
        local s, port = echo_server()
        local c = assert(net.connect("127.0.0.1", port))
        local r, err = c:setopt("keepalive", true)
        local ok, v = r, c:getopt("keepalive")
        c:close()
        s:close()
        assert.is_nil(err)
        assert.equal(c, ok)
        assert.is_true(v)
        assert.same({nil, "closed"}, {c:setopt("keepalive", true)})
        assert.has_error(function() c:setopt() end)
      end)
    end)
  end)

  describe("buffered", function()
    it("counts bytes received and not yet read, without waiting",
      function()
      run_task(function()
        local msg = "hello world\nsecond"
        local s, port = echo_server(function(c)
          c:write(msg)
          c:read() -- until the client closes
        end)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        assert.equal(0, c:buffered()) -- fresh: nothing read yet
        assert.equal(0, c:buffered())
        assert.equal("hello", c:read(5))
        -- one small write on loopback arrives in one piece
        assert.equal(#msg - 5, c:buffered())
        assert.equal(" world", c:read())
        assert.equal(#"second", c:buffered())
        assert.equal("sec", c:recv(3))
        assert.equal(3, c:buffered())
        assert.equal("ond", c:read(3))
        assert.equal(0, c:buffered())
        -- buffered never waits: with nothing there it returns 0 at once
        local t0 = task.now()
        assert.equal(0, c:buffered())
        assert.is_true(task.now() - t0 < 0.5)
        c:close()
        assert.equal(0, c:buffered())
        stop(s)
      end)
    end)

    it("lets a pipelining server answer a batch with one write",
      function()
      run_task(function()
        local batches = {}
        local s, port = echo_server(function(c)
          while true do
            local line = c:read()
            if not line then return end
            local out = {line:upper()}
            while c:buffered() > 0 do -- the rest of the pipeline
              line = c:read()
              if not line then break end
              out[#out + 1] = line:upper()
            end
            batches[#batches + 1] = #out
            c:write(table.concat(out, "\n"), "\n")
          end
        end)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        c:write("a\nb\nc\n")
        assert.same({"A", "B", "C"}, {c:read("l", "l", "l")})
        assert.same({3}, batches)
        c:close()
        stop(s)
      end)
    end)

    it("rejects what is not a connection, naming it", function()
      run_task(function()
        local conn_methods = require("net.core").conn_methods
        assert.has_error(function() conn_methods.buffered(42) end,
          "bad argument #1 to 'buffered' (net.conn expected, got number)")
        local u = assert(net.udp{})
        assert.has_error(function() conn_methods.buffered(u) end,
          "bad argument #1 to 'buffered' (net.conn expected, got net.udp)")
        u:close()
        -- other full userdata: a file, a server; what recv and write see
        assert.has_error(function() conn_methods.recv(io.stdout) end,
          "bad argument #1 to 'recv' (net.conn expected, got FILE*)")
        local s = assert(net.listen{})
        assert.has_error(function() conn_methods.write(s, "x") end,
          "bad argument #1 to 'write' (net.conn expected, got net.server)")
        s:close()
      end)
    end)
  end)

  describe("serve", function()
    it("open sockets nobody waits on do not keep the host alive",
      function()
      local t0 = os.time()
      local out, err, code = run_host({"-e", [[
        local net = require "net"
        local s = assert(net.listen{})
        local _, port = s:sockname()
        local c = assert(net.connect("127.0.0.1", port))
        local a = assert(s:accept())
        a:write("hi\n")
        print(c:read())]]})
      assert.equal("hi\n", out)
      assert.equal("", err)
      assert.equal(0, code)
      assert.is_true(os.time() - t0 < 10)
    end)

    it("the host exits as soon as the last connection is done", function()
      local t0 = os.time()
      local out, err, code = run_host({"-e", [[
        local net, task = require "net", require "task"
        local s = assert(net.listen{idle_timeout = 60})
        local _, port = s:sockname()
        task.spawn(s.serve, s, function(c) c:write(c:read(), "\n") end)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 60}))
        c:write("bye\n")
        print(c:read())
        c:close()
        s:close()]]})
      assert.equal("bye\n", out)
      assert.equal("", err)
      assert.equal(0, code)
      assert.is_true(os.time() - t0 < 10) -- not the 60 s deadlines
    end)


    it("a handler error is reported and does not disturb other clients",
      function()
      local out, err, code = run_host({"-e", [[
        local net, task = require "net", require "task"
        local s = assert(net.listen{})
        local _, port = s:sockname()
        task.spawn(s.serve, s, function(c)
          local l = c:read()
          if l == "die" then error("handler died") end
          c:write(l, "\n")
          c:write(c:read(), "\n")
        end)
        local a = assert(net.connect("127.0.0.1", port))
        a:write("first\n")
        assert(a:read() == "first")
        local b = assert(net.connect("127.0.0.1", port))
        b:write("die\n")
        print("b:", b:read())
        a:write("second\n")
        print("a:", a:read())
        s:close()]]})
      assert.equal("b:\tnil\tclosed\na:\tsecond\n", out)
      assert.matches("%(command line%):6: handler died", err)
      assert.matches("stack traceback", err)
      assert.equal(0, code)
    end)

    it("cancel of a task blocked in read leaks nothing", function()
      run_task(function()
        task.yield()
        local before = open_count()
        local s, port = echo_server(function(c) c:read() end)
        local reader = task.spawn(function()
          local c = assert(net.connect("127.0.0.1", port))
          c:read()
          error("not reached")
        end)
        task.sleep(0.02)
        assert.is_true(reader:cancel())
        assert.equal("cancelled", reader.status)
        s:close()
        for _ = 1, 100 do
          if open_count() <= before and
            require("net.core").stats().deadlines == 0 then break end
          task.sleep(0.01)
        end
        assert.equal(before, open_count())
        assert.equal(0, require("net.core").stats().deadlines)
      end)
    end)

    it("max_connections: further clients wait in the backlog", function()
      run_task(function()
        local release = false
        local s, port = echo_server(function(c)
          c:write("in\n")
          while not release do task.sleep(0.01) end
        end, {max_connections = 2})
        local cs = {}
        for i = 1, 3 do cs[i] = assert(net.connect("127.0.0.1", port)) end
        assert.equal("in", cs[1]:read())
        assert.equal("in", cs[2]:read())
        cs[3]:settimeout(0.1)
        assert.same({nil, "timeout"}, {cs[3]:read()})
        assert.equal(2, s:active())
        release = true
        cs[3]:settimeout(5)
        assert.equal("in", cs[3]:read())
        for i = 1, 3 do cs[i]:close() end
        stop(s)
      end)
    end)

    it("a drain (SIGTERM with --pidfile) closes servers: serve returns",
      function()
      local out, err, code = run_drainable([[
        local s = assert(net.listen{})
        local _, port = s:sockname()
        task.spawn(function()
          local c = assert(net.connect("127.0.0.1", port))
          c:write("x\n")
          print("echo", c:read())
          io.popen("kill -TERM " .. pid):close()
        end)
        print("serve", s:serve(function(c) c:write(c:read(), "\n") end))]])
      assert.equal("echo\tx\nserve\ttrue\n", out)
      assert.equal("", err)
      assert.equal(0, code)
    end)

    it("a drain closes resting connections at once; a round that ends " ..
       "during it closes its conn instead of resting", function()
      local t0 = uv.hrtime()
      local out, err, code = run_drainable([[
        local s = assert(net.listen{idle_timeout = 60})
        local _, port = s:sockname()
        local busy = false
        task.spawn(function()
          local a = assert(net.connect("127.0.0.1", port))
          a:write("x\n")
          print("a", a:read()) -- then a rests
          local b = assert(net.connect("127.0.0.1", port))
          b:write("slow\n")
          while not busy do task.sleep(0.01) end
          io.popen("kill -TERM " .. pid):close()
          print("a closed", a:read() == nil)
          print("b", b:read())
          print("b closed", b:read() == nil)
        end)
        print("serve", s:serve(function(c)
          local l = c:read()
          if not l then return end
          if l == "slow" then
            busy = true
            for _ = 1, 1000 do
              if task.exiting() then break end
              task.sleep(0.01)
            end
          end
          c:write(l, "\n")
          local rested = c:rest()
          if l == "slow" then print("rest", rested) end
        end))]])
      local secs = (uv.hrtime() - t0) / 1e9
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("a\tx\nserve\ttrue\na closed\ttrue\n" ..
        "rest\ttrue\nb\tslow\nb closed\ttrue\n", out)
      assert.is_true(secs < 5, ("exited after %.1f s"):format(secs))
    end)

    it("a drain gives a new connection that has sent nothing yet a " ..
       "second for its first request, then closes it", function()
      -- (a balancer connects, then sends: at a drain, that request may be
      -- in flight; closing the connection as idle would lose it)
      local t0 = uv.hrtime()
      local out, err, code = run_drainable([[
        local s = assert(net.listen{idle_timeout = 60})
        local _, port = s:sockname()
        local rested = 0
        task.spawn(function()
          local a = assert(net.connect("127.0.0.1", port))
          local b = assert(net.connect("127.0.0.1", port))
          while rested < 2 do task.sleep(0.01) end -- both rest, unfed
          io.popen("kill -TERM " .. pid):close()
          while not task.exiting() do task.sleep(0.01) end
          a:write("late\n") -- after the drain closed the idle ones
          print("a", a:read())
          print("a closed", a:read() == nil)
          local b0 = task.now()
          print("b closed", b:read() == nil) -- b never sends
          print("b within 3 s", task.now() - b0 < 3)
        end)
        print("serve", s:serve(function(c)
          if c:buffered() == 0 then
            rested = rested + 1
            if c:rest() then return end
          end
          local l = c:read()
          if l then c:write(l, "\n") end
        end))]])
      local secs = (uv.hrtime() - t0) / 1e9
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("serve\ttrue\na\tlate\na closed\ttrue\n" ..
        "b closed\ttrue\nb within 3 s\ttrue\n", out)
      assert.is_true(secs < 8, ("exited after %.1f s"):format(secs))
    end)

    it("a drain gives the same second to a new connection that has " ..
       "sent its PROXY header alone", function()
      -- (HAProxy in TCP mode sends the header as it connects, the
      -- client's request when it comes: the header is not a request)
      local out, err, code = run_drainable([[
        local s = assert(net.listen{idle_timeout = 60,
          proxy_protocol = true})
        local _, port = s:sockname()
        local rested = 0
        task.spawn(function()
          local a = assert(net.connect("127.0.0.1", port))
          a:write("PROXY TCP4 127.0.0.9 127.0.0.1 1111 2222\r\n")
          while rested < 1 do task.sleep(0.01) end -- a rests, header read
          io.popen("kill -TERM " .. pid):close()
          while not task.exiting() do task.sleep(0.01) end
          a:write("late\n")
          print("a", a:read())
          print("a closed", a:read() == nil)
        end)
        print("serve", s:serve(function(c)
          if c:buffered() == 0 then
            rested = rested + 1
            if c:rest() then return end
          end
          local l = c:read()
          if l then c:write(l, " from ", (c:peername()), "\n") end
        end))]])
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("serve\ttrue\na\tlate from 127.0.0.9\n" ..
        "a closed\ttrue\n", out)
    end)

    it("a close with input still coming lingers: the peer reads our " ..
       "last bytes, the socket closes after its silence", function()
      -- (closed at once, the unread upload made the kernel send a reset,
      -- which threw away "bye" before the client read it)
      local out, err, code = run_host({"-e", [[
        local net, task, uv = require "net", require "task", require "uv"
        local function fds()
          local p = io.popen("ls /proc/" .. uv.os_getpid() .. "/fd")
          local n = 0
          for _ in p:lines() do n = n + 1 end
          p:close()
          return n
        end
        local s = assert(net.listen{})
        local _, port = s:sockname()
        task.spawn(function()
          s:serve(function(c)
            c:read()
            c:write("bye\n")
          end) -- (the round closes the conn, the upload still coming)
        end)
        task.spawn(function()
          local n0 = fds()
          local c = assert(net.connect("127.0.0.1", port))
          c:write("hi\n")
          local chunk = ("x"):rep(65536)
          for _ = 1, 64 do assert(c:write(chunk)) end -- 4 MiB unread
          print("read", c:read())
          print("eof", c:read())
          print("open", fds() - n0) -- ours and the lingering one
          local t0 = task.now()
          while fds() - n0 > 1 and task.now() - t0 < 10 do
            task.sleep(0.05)
          end
          local t = task.now() - t0
          print("after its silence", fds() - n0, t > 1, t < 6)
          local seen = 0
          uv.walk(function(h) seen = seen + 1 end)
          print("walk", seen) -- (s and c: a lingering conn is not shown)
          c:close()
          s:close()
        end)]]})
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("read\tbye\neof\tnil\tclosed\nopen\t2\n" ..
        "after its silence\t1\ttrue\ttrue\nwalk\t2\n", out)
    end)

    it("a lingering close does not hold the host's exit", function()
      local t0 = uv.hrtime()
      local out, err, code = run_host({"-e", [[
        local net, task = require "net", require "task"
        local s = assert(net.listen{})
        local _, port = s:sockname()
        task.spawn(function()
          local c = s:accept()
          c:read()
          c:close() -- the upload still coming: it lingers
          s:close()
        end)
        local c = assert(net.connect("127.0.0.1", port))
        c:write("hi\n")
        c:write(("x"):rep(1 << 20)) -- 1 MiB, never read
        print("eof", c:read()) -- the server's FIN; c stays open
        -- the script ends here, with the server's side lingering (2 s
        -- of silence would end it) and c open: the host exits now]]})
      local secs = (uv.hrtime() - t0) / 1e9
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("eof\tnil\tclosed\n", out)
      assert.is_true(secs < 1.8, ("exited after %.1f s"):format(secs))
    end)

    it("a drain serves the clients queued behind a full server " ..
       "(max_connections), not resetting them", function()
      local out, err, code = run_drainable([[
        local s = assert(net.listen{max_connections = 1})
        local _, port = s:sockname()
        local busy = false
        task.spawn(function()
          local cs = {assert(net.connect("127.0.0.1", port))}
          cs[1]:write("first\n")
          while not busy do task.sleep(0.01) end
          -- one waits accepted in serve, the others in the backlog
          for i = 2, 6 do
            cs[i] = assert(net.connect("127.0.0.1", port))
            cs[i]:write(i, "\n")
          end
          task.sleep(0.1) -- (serve takes the second: either way is right)
          io.popen("kill -TERM " .. pid):close()
          for i = 1, 6 do
            cs[i]:settimeout(5)
            print(i, cs[i]:read())
          end
        end)
        print("serve", s:serve(function(c)
          local l = c:read()
          if l == "first" then
            busy = true
            for _ = 1, 1000 do
              if task.exiting() then break end
              task.sleep(0.01)
            end
          end
          c:write("re ", l, "\n")
        end))]])
      assert.equal(0, code)
      assert.matches("^net: 127.0.0.1:%d+: max_connections %(1%) reached " ..
        "and none idle: new clients wait in the backlog\n$", err)
      assert.equal("serve\ttrue\n1\tre first\n2\tre 2\n3\tre 3\n" ..
        "4\tre 4\n5\tre 5\n6\tre 6\n", out)
    end)

    it("close returns serve even while it waits for a free slot",
      function()
      run_task(function()
        local release = false
        local s, port, t = echo_server(function(c)
          c:write("in\n")
          while not release do task.sleep(0.01) end
        end, {max_connections = 1})
        local a = assert(net.connect("127.0.0.1", port))
        assert.equal("in", a:read())
        s:close()
        assert.is_true(t:join())
        release = true
        a:close()
        stop(s)
      end)
    end)

    it("idle_timeout closes a silent served connection", function()
      run_task(function()
        local why
        local s, port = echo_server(function(c)
          local _, err = c:read()
          why = err
        end, {idle_timeout = 0.05})
        local c = assert(net.connect("127.0.0.1", port))
        c:settimeout(5)
        assert.same({nil, "closed"}, {c:read()})
        assert.equal("timeout", why)
        c:close()
        stop(s)
      end)
    end)
  end)

  describe("rest", function()
    -- A line server whose handler answers one line per round, then
    -- rests the conn (no task until the next line); rounds[] records the
    -- coroutine of each round.
    local function rest_server(opts, rounds)
      return echo_server(function(c)
        rounds[#rounds + 1] = coroutine.running()
        while true do
          local l, err = c:read()
          if not l then return err end
          c:write(l, "\n")
          if c:rest() then return end
        end
      end, opts)
    end

    it("a rested conn runs its handler again, in a new round, on input",
      function()
      run_task(function()
        local rounds = {}
        local s, port = rest_server({}, rounds)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        for i = 1, 3 do
          c:write("line " .. i .. "\n")
          assert.equal("line " .. i, c:read())
        end
        assert.equal(3, #rounds)
        assert.equal(1, s:active()) -- resting: its slot is kept
        -- pipelined: the second line is buffered, rest says false and
        -- the same round answers it
        c:write("a\nb\n")
        assert.equal("a", c:read())
        assert.equal("b", c:read())
        c:close()
        stop(s)
      end)
    end)

    it("peer close, idle_timeout and close_idle end a resting conn",
      function()
      run_task(function()
        local rounds = {}
        local s, port = rest_server({idle_timeout = 0.1}, rounds)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        c:write("x\n")
        assert.equal("x", c:read())
        -- silent past idle_timeout: closed by the server, slot given back
        assert.same({nil, "closed"}, {c:read()})
        c:close()
        assert.equal(1, #rounds) -- the handler did not run for it
        for _ = 1, 100 do
          if s:active() == 0 then break end
          task.sleep(0.01)
        end
        assert.equal(0, s:active())
        -- the peer closes a resting conn: its slot goes too
        local d = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        d:write("y\n")
        assert.equal("y", d:read())
        assert.equal(1, s:active())
        d:close()
        for _ = 1, 100 do
          if s:active() == 0 then break end
          task.sleep(0.01)
        end
        assert.equal(0, s:active())
        -- close_idle closes resting conns only
        local e = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        e:write("z\n")
        assert.equal("z", e:read())
        assert.equal(1, s:close_idle())
        assert.same({nil, "closed"}, {e:read()})
        e:close()
        stop(s)
      end)
    end)

    it("resting conns hold no coroutine (Lua memory per conn)", function()
      run_task(function()
        -- (collected until it stops shrinking: objects of earlier specs
        -- whose handles close in the loop turns below would otherwise be
        -- freed inside a measurement, and count against it)
        local function heap()
          local last = math.huge
          for _ = 1, 10 do
            collectgarbage()
            local b = collectgarbage("count") * 1024
            if b >= last then return b end
            last = b
          end
          return last
        end
        -- per conn, both sides counted: conns whose handler waits in a
        -- read (a coroutine each) against resting ones
        local function per_conn(handler)
          local s, port = echo_server(handler)
          local cs, n = {}, 100
          local function open(i)
            cs[i] = assert(net.connect("127.0.0.1", port, {timeout = 5}))
            cs[i]:write("x\n")
            assert.equal("x", cs[i]:read())
          end
          -- (the first ones warm what rounds use, the pool of workers)
          for i = 1, 80 do open(i) end
          task.sleep(0.05) -- (closes pending from before run their callbacks)
          local before = heap()
          for i = 81, 80 + n do open(i) end
          task.sleep(0.02)
          local per = (heap() - before) / n
          assert.equal(80 + n, s:active())
          for i = 1, 80 + n do cs[i]:close() end
          stop(s)
          return per
        end
        local parked = per_conn(function(c)
          for l in c:lines() do c:write(l, "\n") end
        end)
        local resting = per_conn(function(c)
          while true do
            local l = c:read()
            if not l then return end
            c:write(l, "\n")
            if c:rest() then return end
          end
        end)
        -- a parked coroutine alone is over 1 KB
        assert.is_true(resting < parked - 800, ("%.0f bytes per conn " ..
          "resting, %.0f parked"):format(resting, parked))
        assert.is_true(resting < 800, ("%.0f bytes"):format(resting))
      end)
    end)

    it("at max_connections the conn resting the longest is shed",
      function()
      run_task(function()
        local rounds = {}
        local s, port = rest_server({max_connections = 2}, rounds)
        local cs = {}
        for i = 1, 2 do
          cs[i] = assert(net.connect("127.0.0.1", port, {timeout = 5}))
          cs[i]:write("x\n")
          assert.equal("x", cs[i]:read())
          task.sleep(0.05) -- (the first rests the longest)
        end
        assert.equal(2, (require("net.core").resting(s)))
        task.sleep(2.1) -- (shed only past 2 s idle: not a fresh client)
        -- a third client gets in: the oldest resting conn is closed for it
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        c:write("y\n")
        assert.equal("y", c:read())
        assert.same({nil, "closed"}, {cs[1]:read()})
        cs[2]:write("z\n") -- the other still rests, and wakes
        assert.equal("z", cs[2]:read())
        assert.equal(2, s:active())
        for _, d in ipairs({c, cs[1], cs[2]}) do d:close() end
        stop(s)
      end)
    end)

    it("a resting conn counts as idle; a conn not served cannot rest",
      function()
      run_task(function()
        local core = require "net.core"
        local held = {}
        local s, port = echo_server(function(c)
          held[#held + 1] = c
          c:write(c:read(), "\n")
          if c:rest() then return end
        end)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        c:write("x\n")
        assert.equal("x", c:read())
        task.sleep(0.02)
        -- it rests with nothing in Lua: the handler's conn object let go
        -- of it, and the server counts it as idle (shed, close_idle)
        assert.is_true(held[1]:is_closed())
        assert.is_nil(core.idle_for(held[1]))
        local n, secs = core.resting(s)
        assert.equal(1, n)
        assert.is_true(secs >= 0.01, tostring(secs))
        -- the object it let go of cannot rest again (nor read)
        assert.is_false(held[1]:rest())
        assert.same({nil, "closed"}, {held[1]:read()})
        -- the next line: a new round, with a new object, same connection
        c:write("y\n")
        assert.equal("y", c:read())
        assert.equal(2, #held)
        assert.are_not.equal(held[1], held[2])
        assert.equal(1, (core.resting(s)))
        -- a conn no server serves cannot rest; nor can a closed one
        assert.is_false(c:rest())
        assert.is_nil(core.idle_for(c))
        c:close()
        assert.is_false(c:rest())
        stop(s)
      end)
    end)
  end)

  describe("shelf (a conn resting past SHELF_MS gives its uv handle back)",
    function()
    local core = require "net.core"
    local function shelved() return core.stats().shelved end
    -- wait (bounded) until n conns are on the shelf
    local function until_shelved(n)
      for _ = 1, 500 do
        if shelved() == n then return end
        task.sleep(0.01)
      end
      assert.equal(n, shelved())
    end
    -- c sends first[1] and reads first[2], waits until its server's conn
    -- is on the shelf, then the same with second
    local function across_shelf(c, first, second)
      c:write(first[1])
      assert.equal(first[2], c:read())
      until_shelved(1)
      c:write(second[1])
      assert.equal(second[2], c:read())
    end
    -- a handler answering each line (with the peer's address after it,
    -- when with_peer) and resting between lines; rounds[] counts rounds
    local function rest_handler(rounds, with_peer)
      return function(c)
        rounds[#rounds + 1] = true
        while true do
          local l, err = c:read()
          if not l then return err end
          if with_peer then c:write(l, " ", (c:peername()), "\n")
          else c:write(l, "\n") end
          if c:rest() then return end
        end
      end
    end
    local function rest_server(opts, rounds)
      return echo_server(rest_handler(rounds, true), opts)
    end

    it("a shelved conn wakes on input, as often as it rests, and is no " ..
       "uv handle meanwhile", function()
      run_task(function()
        local rounds = {}
        local s, port = rest_server({}, rounds)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        for i = 1, 3 do
          c:write("line " .. i .. "\n")
          assert.equal("line " .. i .. " 127.0.0.1", c:read())
          until_shelved(1)
          assert.equal(1, (core.resting(s))) -- still resting, for the server
          assert.equal(1, s:active())
        end
        -- pipelined lines after a wake: one round answers both
        c:write("a\nb\n")
        assert.equal("a 127.0.0.1", c:read())
        assert.equal("b 127.0.0.1", c:read())
        assert.equal(4, #rounds)
        -- a handle a script holds (uv.walk gave it a uv object) is not
        -- shelved: it rests as before, and wakes
        local seen = 0
        uv.walk(function(h)
          if h:is_closing() then return end
          seen = seen + 1
        end)
        assert.is_true(seen >= 2, tostring(seen))
        task.sleep(0.3) -- (three times SHELF_MS: nothing to wait for)
        assert.equal(0, shelved())
        assert.equal(1, (core.resting(s)))
        c:write("z\n")
        assert.equal("z 127.0.0.1", c:read())
        c:close()
        stop(s)
        assert.equal(0, shelved())
      end)
    end)

    it("peer close, idle_timeout, close_idle and the server's close end " ..
       "a shelved conn", function()
      run_task(function()
        local rounds = {}
        local s, port = rest_server({idle_timeout = 0.4}, rounds)
        local function rested_client()
          local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
          c:write("x\n")
          assert.equal("x 127.0.0.1", c:read())
          return c
        end
        local function until_inactive()
          for _ = 1, 300 do
            if s:active() == 0 then break end
            task.sleep(0.01)
          end
          assert.equal(0, s:active())
        end
        -- the peer closes it: its slot goes
        local d = rested_client()
        until_shelved(1)
        d:close()
        until_inactive()
        assert.equal(0, shelved())
        -- silent past idle_timeout: closed by the server, slot given back
        local c = rested_client()
        until_shelved(1)
        assert.same({nil, "closed"}, {c:read()})
        c:close()
        until_inactive()
        assert.equal(0, shelved())
        -- close_idle
        local e = rested_client()
        until_shelved(1)
        assert.equal(1, s:close_idle())
        assert.same({nil, "closed"}, {e:read()})
        e:close()
        until_inactive()
        -- the server's close
        local f = rested_client()
        until_shelved(1)
        s:close()
        assert.same({nil, "closed"}, {f:read()})
        f:close()
        until_inactive()
        assert.equal(0, shelved())
        assert.equal(4, #rounds) -- no handler ran for an end
      end)
    end)

    it("a unix socket conn is shelved and woken", function()
      run_task(function()
        local path = tmpname()
        os.remove(path)
        local rounds = {}
        local s = assert(net.listen{path = path})
        task.spawn(s.serve, s, rest_handler(rounds))
        local c = assert(net.connect{path = path, timeout = 5})
        across_shelf(c, {"u\n", "u"}, {"v\n", "v"})
        assert.equal(2, #rounds)
        c:close()
        stop(s)
        os.remove(path)
        assert.equal(0, shelved())
      end)
    end)

    it("a PROXY header's client is still the peer after the shelf",
      function()
      run_task(function()
        local rounds = {}
        local s, port = rest_server({proxy_protocol = true}, rounds)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        across_shelf(c,
          {"PROXY TCP4 192.0.2.44 127.0.0.1 999 80\r\nx\n", "x 192.0.2.44"},
          {"y\n", "y 192.0.2.44"})
        assert.equal(2, #rounds)
        c:close()
        stop(s)
      end)
    end)

    it("a shelved socket closed behind the host's back: the conn's " ..
       "callback hears 'closed' at its deadline, its place given back",
      function()
      run_task(function()
        -- the descriptors of sockets, from /proc (a shelved conn's is a
        -- duplicate made when it went on the shelf)
        local function sockets()
          local t = {}
          for fd = 3, 4095 do
            local l = uv.fs_readlink("/proc/self/fd/" .. fd)
            if l and l:match("^socket:") then t[fd] = true end
          end
          return t
        end
        local rounds = {}
        local s, port = rest_server({idle_timeout = 0.5}, rounds)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        c:write("x\n")
        assert.equal("x 127.0.0.1", c:read())
        local before = sockets()
        until_shelved(1)
        local new = {}
        for fd in pairs(sockets()) do
          if not before[fd] then new[#new + 1] = fd end
        end
        assert.equal(1, #new) -- the duplicate (the handle's went)
        assert(uv.fs_close(new[1]))
        -- nothing tells the shelf (a closed descriptor leaves the epoll
        -- set silently) but the deadline: the socket is gone, so the
        -- conn cannot be made again and its callback hears "closed"
        for _ = 1, 300 do
          if s:active() == 0 then break end
          task.sleep(0.01)
        end
        assert.equal(0, s:active())
        assert.equal(0, shelved())
        assert.same({nil, "closed"}, {c:read()}) -- (the peer's FIN)
        assert.equal(1, #rounds)
        c:close()
        stop(s)
      end)
    end)

    it("a burst's handle blocks go back to the kernel once its conns are " ..
       "shelved, and come again when they wake", function()
      -- (the clients are uv handles, whose blocks are malloc's: the
      -- chunks hold the server's conns alone)
      local out, err, code = run_host({"-e", [[
        local net, task, uv = require "net", require "task", require "uv"
        local core = debug.getregistry()["luahost.private"].require(
          "net.core")
        local N = 300
        local s = assert(net.listen{port = 0, backlog = 512,
          max_per_address = 1000})
        local _, port = s:sockname()
        local lines = 0
        task.spawn(s.serve, s, function(c)
          while true do
            local l = c:read()
            if not l then return end
            lines = lines + 1
            -- "r": rest (the shelf takes the conn 100 ms later)
            if l == "r" then
              if c:rest() then return end
            end
          end
        end)
        local function until_(what, cond)
          for _ = 1, 1000 do
            if cond() then return end
            task.sleep(0.01)
          end
          error("timed out waiting for " .. what)
        end
        local function say(st)
          print(("%s blocks=%d chunks=%d shelved=%d"):format(st,
            core.stats().blocks, core.stats().block_chunks,
            core.stats().shelved))
        end
        local cs, up = {}, 0
        for i = 1, N do
          local t = uv.new_tcp()
          cs[i] = t
          t:connect("127.0.0.1", port, function(e)
            assert(not e, e)
            up = up + 1
            t:write("x\n")
          end)
        end
        local function all(msg, want)
          local before = lines
          for i = 1, N do cs[i]:write(msg) end
          until_(msg, function() return lines == before + want end)
        end
        until_("connects", function() return up == N and lines == N end)
        say("awake")
        all("r\n", N)
        -- (a shelved conn's block goes with its handle's close, a turn
        -- of the loop later)
        until_("the shelf", function()
          return core.stats().shelved == N and core.stats().blocks == 1
        end)
        say("shelved")
        all("y\n", N) -- each wakes: its block made again
        say("woken")
        for i = 1, N do cs[i]:close() end
        until_("the closes", function() return core.stats().blocks == 1 end)
        say("closed")
        s:close()
        os.exit(0, true)]]})
      assert.equal("", err)
      assert.equal(0, code)
      local function at(st)
        local b, c, sh = out:match(st .. " blocks=(%d+) chunks=(%d+) " ..
          "shelved=(%d+)")
        assert(b, "no line " .. st .. " in: " .. out)
        return tonumber(b), tonumber(c), tonumber(sh)
      end
      -- 301 blocks of ~550 bytes: three chunks of 64 KiB at least
      local b, c = at("awake")
      assert.equal(301, b)
      assert.is_true(c >= 3, out)
      -- on the shelf, the conns hold no block: one chunk for the
      -- listener's, one empty kept; the rest unmapped
      local sh
      b, c, sh = at("shelved")
      assert.equal(300, sh)
      assert.equal(1, b)
      assert.is_true(c <= 2, out)
      b, c, sh = at("woken")
      assert.equal(0, sh)
      assert.equal(301, b)
      assert.is_true(c >= 3, out)
      b, c = at("closed")
      assert.equal(1, b)
      assert.is_true(c <= 2, out)
    end)

    it("the host exits with conns on the shelf (nothing leaks: asan)",
      function()
      local out, err, code = run_host({"-e", [[
        local net, task = require "net", require "task"
        local core = debug.getregistry()["luahost.private"].require(
          "net.core")
        local s = assert(net.listen{port = 0})
        local _, port = s:sockname()
        task.spawn(s.serve, s, function(c)
          c:write(c:read(), "\n")
          c:rest()
        end)
        local cs = {}
        for i = 1, 3 do
          cs[i] = assert(net.connect("127.0.0.1", port))
          cs[i]:write("x\n")
          assert(cs[i]:read() == "x")
        end
        for _ = 1, 500 do
          if core.stats().shelved == 3 then break end
          task.sleep(0.01)
        end
        print("shelved", core.stats().shelved)
        os.exit(0, true)]]})
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("shelved\t3\n", out)
    end)
  end)

  describe("recv_wait (net.core: http's wait for a next request)",
    function()
    it("waits its own ms, leaves the conn's timeout as it was, and " ..
       "checks its arguments", function()
      run_task(function()
        local core = require "net.core"
        local s = assert(net.listen{port = 0})
        local _, port = s:sockname()
        local a = assert(net.connect("127.0.0.1", port))
        local b = assert(s:accept(5))
        b:settimeout(0.4)
        local t0 = task.now()
        assert.same({nil, "timeout"}, {core.recv_wait(b, 50)})
        local t = task.now() - t0
        assert.is_true(t >= 0.04 and t < 0.35, tostring(t))
        -- data in time: returned as recv returns it
        task.spawn(function()
          task.sleep(0.02)
          a:write("hello")
        end)
        assert.equal("hello", core.recv_wait(b, 5000))
        -- buffered input: at once, even with 0 ms
        a:write("more")
        assert.equal("more", b:read(2) .. core.recv_wait(b, 0))
        -- the conn's own timeout is untouched: 0.4 s, not 50 ms
        t0 = task.now()
        assert.same({nil, "timeout"}, {b:read()})
        t = task.now() - t0
        assert.is_true(t >= 0.35, tostring(t))
        -- arguments
        assert.has_error(function() core.recv_wait(b, -1) end,
          "bad argument #2 to 'recv_wait' (non-negative milliseconds " ..
          "expected)")
        assert.has_error(function() core.recv_wait(b) end)
        assert.has_error(function() core.recv_wait("x", 1) end)
        assert.has_error(function() core.recv_wait(s, 1) end)
        -- closed: "closed"; the peer's end: nil, "closed" too
        a:close()
        assert.same({nil, "closed"}, {core.recv_wait(b, 1000)})
        b:close()
        assert.same({nil, "closed"}, {core.recv_wait(b, 10)})
        s:close()
      end)
    end)
  end)

  describe("udp", function()
    it("sendto / recvfrom on loopback, with a timeout", function()
      run_task(function()
        local a = assert(net.udp{port = 0})
        local ip, port = a:sockname()
        assert.equal("127.0.0.1", ip)
        local b = assert(net.udp{host = "127.0.0.1"})
        local _, bport = b:sockname()
        assert.is_true(b:sendto("ping", "127.0.0.1", port))
        local data, from, fport = a:recvfrom(5)
        assert.equal("ping", data)
        assert.equal("127.0.0.1", from)
        assert.equal(bport, fport)
        assert(a:sendto("pong", from, fport))
        assert.equal("pong", (b:recvfrom(5)))
        local t0 = task.now()
        assert.same({nil, "timeout"}, {a:recvfrom(0.05)})
        assert.is_true(task.now() - t0 >= 0.04)
        -- still usable after the timeout
        assert(b:sendto("again", "127.0.0.1", port))
        assert.equal("again", (a:recvfrom(5)))
        a:close(); b:close()
        assert.same({nil, "closed"}, {a:recvfrom()})
        assert.same({nil, "closed"}, {a:sendto("x", "127.0.0.1", 1)})
      end)
    end)

    it("connect, send, recv, and the udp options", function()
      run_task(function()
        local a = assert(net.udp{port = 0, broadcast = true, ttl = 5})
        local _, port = a:sockname()
        local b = assert(net.udp{})
        assert.equal(b, b:connect("127.0.0.1", port))
        assert.equal("127.0.0.1", (b:peername()))
        assert.is_true(b:send("hello"))
        local data, _, bport = a:recvfrom(5)
        assert.equal("hello", data)
        assert(a:sendto("back", "127.0.0.1", bport))
        assert.equal("back", b:recv(5))
        assert.equal(a, a:setopt("multicast_loop", true))
        assert.equal(a, a:setopt("multicast_ttl", 2))
        -- one table of options by name (bindings/sockopt.c) for uv and net
        assert.equal(2, a:getopt("multicast_ttl"))
        assert.equal(5, a:getopt("ttl"))
        assert.equal(a, a:setopt("ttl", 64))
        assert.equal(64, a:getopt("ttl"))
        assert.is_true(a:getopt("broadcast"))
        assert.has_error(function() a:setopt("multicast_ttl", 256) end,
          "bad argument #2 to 'setopt' (out of range [0, 255])")
        assert.has_error(function() a:setopt("broadcast", 1) end)
        local ok, err = a:setopt("join", "239.1.2.3")
        assert.is_true(ok == a or type(err) == "string")
        assert.has_error(function() a:setopt("ttl", 0) end)
        -- (a name is looked up; an address that does not parse raises)
        assert.has_error(function() a:sendto("x", "1.2.3.999", 1) end,
          "bad argument #2 to 'sendto' (invalid IP address)")
        assert.has_error(function() b:connect("::zz", 1) end,
          "bad argument #1 to 'connect' (invalid IP address)")
        -- a NUL byte would cut the address short for C: not 127.0.0.1
        assert.has_error(function()
          a:setopt("multicast_interface", "127.0.0.1\0junk")
        end, "bad argument #2 to 'setopt' (invalid IP address)")
        assert.has_error(function() a:setopt("join", "239.1.2.3\0x") end,
          "bad argument #2 to 'setopt' (invalid IP address)")
        assert.has_error(function()
          a:setopt("join", {"239.1.2.3", "127.0.0.1\0x"})
        end, "bad argument #2 to 'setopt' (invalid IP address)")
        a:close(); b:close()
      end)
    end)

    it("options on a socket with no address take effect", function()
      run_task(function()
        local r = assert(net.udp{port = 0})
        local _, port = r:sockname()
        -- libuv makes the socket at the first send: an option makes it now
        for name, value in pairs({broadcast = true, ttl = 5,
          multicast_ttl = 5, multicast_loop = false}) do
          local v = assert(net.udp{[name] = value})
          assert.equal(value, v:getopt(name))
          assert.equal("inet", v:getopt("family"))
          assert.is_true(v:sendto(name, "127.0.0.1", port))
          assert.equal(name, (r:recvfrom(5)))
          v:close()
        end
        -- setopt and getopt on net.udp{}: the socket is made (inet)
        local v = assert(net.udp{})
        assert.equal(v, v:setopt("ttl", 7))
        assert.equal(7, v:getopt("ttl"))
        local w = assert(net.udp{})
        assert.equal("integer", math.type(w:getopt("ttl"))) -- the default
        assert.equal("inet", w:getopt("family"))
        assert.is_true(v:sendto("seven", "127.0.0.1", port))
        assert.equal("seven", (r:recvfrom(5)))
        -- a mistake raises, making no socket; a closed socket says so
        assert.has_error(function() w:setopt("ttl", 0) end)
        w:close()
        assert.same({nil, "closed"}, {w:getopt("ttl")})
        -- a failing option: the three values of every net.udp failure
        assert.same({nil, "EINVAL", "udp socket join: EINVAL (invalid " ..
          "argument)"}, {net.udp{join = "127.0.0.1"}})
        v:close(); r:close()
      end)
    end)

    it("sendto and connect take a host name", function()
      run_task(function()
        local r = assert(net.udp{host = "127.0.0.1", port = 0})
        local _, port = r:sockname()
        local v = assert(net.udp{})
        assert.is_true(v:sendto("by name", "localhost", port))
        local data, from = r:recvfrom(5)
        assert.equal("by name", data)
        assert.equal("127.0.0.1", from)
        local w = assert(net.udp{})
        assert.equal(w, w:connect("localhost", port))
        assert.equal("127.0.0.1", (w:peername()))
        assert.is_true(w:send("connected"))
        assert.equal("connected", (r:recvfrom(5)))
        assert.has_error(function() v:sendto("x", "localhost", -1) end,
          "bad argument #3 to 'sendto' (out of range [0, 65535])")
        v:close(); w:close()
        assert.same({nil, "closed"}, {v:sendto("x", "localhost", port)})
        r:close()
      end)
    end)

    it("sendto and connect to a name that does not resolve", function()
      run_task(function()
        local r = assert(net.udp{host = "127.0.0.1", port = 0})
        local _, port = r:sockname()
        local v = assert(net.udp{})
        -- nil, err, message, as net.connect
        assert.same({nil, "ENOTFOUND", "sendto nowhere.invalid:" .. port ..
          ": ENOTFOUND (name does not resolve)"},
          {v:sendto("x", "nowhere.invalid", port)})
        assert.same({nil, "ENOTFOUND", "connect nowhere.invalid:9: " ..
          "ENOTFOUND (name does not resolve)"},
          {v:connect("nowhere.invalid", 9)})
        -- still usable
        assert.is_true(v:sendto("again", "localhost", port))
        assert.equal("again", (r:recvfrom(5)))
        v:close(); r:close()
      end)
      -- a name needs a task to wait in (an address does not)
      local v = assert(net.udp{})
      local errs = {}
      local timer = uv.new_timer()
      timer:start(0, 0, function()
        timer:close()
        errs[1] = select(2, pcall(function()
          v:sendto("x", "localhost", 9)
        end))
        errs[2] = select(2, pcall(function() v:connect("localhost", 9) end))
        errs[3] = select(2, pcall(v.sendto, v, "x", "127.0.0.1", 9))
      end)
      run_loop(function() return errs[3] ~= nil end)
      -- (at the caller's line)
      assert.matches("^spec/net_spec.lua:%d+: sendto to a name must be " ..
        "called from a task", errs[1])
      assert.matches("^spec/net_spec.lua:%d+: connect to a name must be " ..
        "called from a task", errs[2])
      assert.is_true(errs[3])
      v:close()
    end)

    it("cancel of a task in recvfrom leaks nothing", function()
      run_task(function()
        local t = task.spawn(function()
          local u = assert(net.udp{port = 0})
          u:recvfrom()
        end)
        task.yield()
        t:cancel()
        assert.equal("cancelled", t.status)
        task.yield()
      end)
    end)
  end)

  describe("names", function()
    it("lookup of addresses and localhost", function()
      run_task(function()
        assert.same({"127.0.0.1"}, net.lookup("127.0.0.1"))
        assert.same({"::1"}, net.lookup("::1"))
        local v4 = assert(net.lookup("localhost", {family = "inet"}))
        assert.equal("127.0.0.1", v4[1])
        assert.has_error(function() net.lookup(1) end,
          "bad argument #1 to 'lookup' (string expected, got number)")
        assert.has_error(function() net.lookup("x", {family = "ipx"}) end)
      end)
    end)

    it("a look-up with a deadline answers in time and leaks nothing",
      function()
      run_task(function()
        local r, err = net.lookup("localhost", {timeout = 0})
        assert.is_true(type(r) == "table" or err == "timeout")
        r = assert(net.lookup("localhost", {timeout = 5}))
        assert.is_true(#r >= 1)
        for _ = 1, 100 do
          if require("net.core").stats().deadlines == 0 then break end
          task.sleep(0.01)
        end
        assert.equal(0, require("net.core").stats().deadlines)
      end)
    end)

    it("reverse resolves loopback from the hosts file", function()
      run_task(function()
        local name, err = net.reverse("127.0.0.1")
        assert.is_true(type(name) == "string" or type(err) == "string")
        if name then assert.is_true(#name > 0) end
        assert.has_error(function() net.reverse("not an ip") end)
      end)
    end)

    it("hostname, interfaces, service, protocol", function()
      local h = net.hostname()
      assert.is_string(h)
      assert.is_true(#h > 0)
      local ifs = net.interfaces()
      local lo
      for k, i in ipairs(ifs) do
        if i.address == "127.0.0.1" then lo = i end
        assert.is_true(k == 1 or ifs[k - 1].name <= i.name) -- by name
        assert.matches("^%x%x:%x%x:%x%x:%x%x:%x%x:%x%x$", i.mac)
      end
      assert.is_not_nil(lo)
      assert.is_true(lo.internal)
      assert.equal("inet", lo.family)
      assert.equal("255.0.0.0", lo.netmask)
      assert.equal("lo", lo.name)
      assert.equal(80, net.service("http"))
      assert.equal("ssh", net.service(22))
      assert.equal(53, net.service("domain", "udp"))
      assert.same({nil, "ENOTFOUND"}, {net.service("no-such-service")})
      assert.equal(6, net.protocol("tcp"))
      assert.equal("udp", net.protocol(17))
      assert.same({nil, "ENOTFOUND"}, {net.protocol("no-such-proto")})
      assert.has_error(function() net.service({}) end)
    end)
  end)

  it("server:accept with a bad timeout raises naming accept", function()
    local s = assert(net.listen{port = 0})
    for _, bad in ipairs{0/0, "soon", {}} do
      local ok, err = pcall(s.accept, s, bad)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'accept'", err)
    end
    s:close()
  end)
end)

describe("argument errors", function()
  after_each(assert_clean)

  -- Each case on its own line: the error must name that line of this file
  -- (the caller's), never a line inside lib/.
  it("point at the caller's line, not into lib/ (net, task, http)",
    function()
    local http = require "http"
    local cases = {
      function() net.listen{port = "x"} end,
      function() net.listen{port = 0, bogus = 1} end,
      function() net.listen{port = 0, backlog = -1} end,
      function() net.listen{port = 0, proxy_protocol = 3} end,
      function() net.listen{port = 0, proxy_protocol = {trusted = 1}} end,
      function() net.listen{port = 0, proxy_protocol = {timeout = -1}} end,
      function() net.listen{port = 0, tls = 3} end,
      function() net.listen{port = 0, tls = {bogus = 1}} end,
      function() net.connect(3, 4) end,
      function() net.connect("127.0.0.1", "x") end,
      function() net.connect("127.0.0.1", 1, {timeout = -1}) end,
      function() net.connect("127.0.0.1", 1, {tls = {verfy = 1}}) end,
      function() net.connect("127.0.0.1", 1, {tls = 1}) end,
      function() net.lookup("x", {family = "z"}) end,
      function() net.is_ip(1) end,
      function() net.udp{port = "x"} end,
      function() task.spawn(3) end,
      function() task.sleep(-1) end,
      function() task.queue(0) end,
      function() task.queue():get(-1) end,
      function() task.queue():put(nil) end,
      function() task.event():wait(-1) end,
      function() task.on_error(3) end,
      function() task.wait_signal() end,
      function() http.listen{port = "x", handler = print} end,
      function() http.listen{port = 0, handler = print, backlog = 0} end,
      function() http.listen{port = 0, handler = print, tls = 3} end,
      function() http.listen{port = 0} end,
      function() http.decode_query(1) end,
      function() http.router()(1, {}) end,
      function() http.router()({}, "x") end,
    }
    run_task(function()
      for i, f in ipairs(cases) do
        local ok, err = pcall(f)
        assert.is_false(ok, "case " .. i .. " raised nothing")
        local line = debug.getinfo(f, "S").linedefined
        assert.matches("^spec/net_spec%.lua:" .. line .. ": bad argument",
          err)
      end
    end)
  end)

  -- Misuse found in C, under a function of lib/: the error still names
  -- the caller's line (each case's own), and the right argument.
  it("of misuse point at the caller's line too", function()
    local http = require "http"
    local srv, srv2, c
    run_task(function()
      srv, srv2 = assert(net.listen{port = 0}), assert(net.listen{port = 0})
      -- (waits on srv until the end: a timeout of its own, passed on a
      -- slow machine before case 1, would leave case 1 to wait instead)
      task.spawn(function() srv:accept(120) end)
      c = assert(net.connect("127.0.0.1", (select(2, srv2:sockname()))))
      -- (the handshake waits: no TLS server answers; c runs TLS)
      task.spawn(function() c:starttls(true, {timeout = 120}) end)
    end)
    finally(function()
      c:close()
      srv:close()
      srv2:close()
      run_loop(function() return true end) -- (the closes run)
    end)
    -- {message, in a raw uv callback?, the case}
    local cases = {
      {"accept: another task is already waiting on this socket", false,
        function() srv:accept() end},
      {"starttls: the connection runs TLS already", false,
        function() c:starttls(true) end},
      {"bad argument #2 to 'on_signal' (function expected, got nil)", false,
        function() task.on_signal("SIGHUP") end},
      {"bad argument #1 to 'date' (seconds since the epoch expected, " ..
        "got string)", false,
        function() http.date("x") end},
      {"bad argument #1 to 'date' (seconds since the epoch expected, " ..
        "got 1.5)", false,
        function() http.date(1.5) end},
      {"net.connect must be called from a task", true,
        function() net.connect("127.0.0.1", 1) end},
      {"net.connect must be called from a task", true,
        function() net.connect("localhost", 1) end},
      {"net.lookup must be called from a task", true,
        function() net.lookup("localhost") end},
      {"net.reverse must be called from a task", true,
        function() net.reverse("127.0.0.1") end},
      {"task.sleep must be called from a task", true,
        function() task.sleep(1) end},
      {"task.yield must be called from a task", true,
        function() task.yield() end},
      {"accept must be called from a task", true,
        function() srv:accept() end},
      {"http.request must be called from a task", true,
        function() http.request{url = "http://127.0.0.1:1/"} end},
      {"http.get must be called from a task", true,
        function() http.get("http://127.0.0.1:1/") end},
      {"http.websocket.connect must be called from a task", true,
        function() http.websocket.connect("ws://127.0.0.1:1/") end},
      {"redis.connect must be called from a task", true,
        function() require("redis").connect("127.0.0.1", 1) end},
      {"pool:call must be called from a task", true,
        function() require("redis").pool{port = 1}:call("GET", "x") end},
      {"bad argument #1 to 'rest' (number of seconds expected, got x)", false,
        function() c:rest("x") end},
      {"bad argument #2 to 'get' (unknown option 'bogus')", false,
        function() http.get("http://127.0.0.1:1/", {bogus = 1}) end},
    }
    local got = {}
    for i, case in ipairs(cases) do
      if case[2] then
        local timer = uv.new_timer()
        timer:start(0, 0, function()
          timer:close()
          got[i] = {pcall(case[3])}
        end)
        run_loop(function() return got[i] ~= nil end)
      else
        run_task(function() got[i] = {pcall(case[3])} end)
      end
    end
    for i, case in ipairs(cases) do
      local ok, err = got[i][1], got[i][2]
      assert.is_false(ok, "case " .. i .. " raised nothing")
      local line = debug.getinfo(case[3], "S").linedefined
      assert.are.equal(("spec/net_spec.lua:%d: %s"):format(line, case[1]),
        err:sub(1, #("spec/net_spec.lua:" .. line .. ": " .. case[1])),
        "case " .. i)
    end
  end)
end)

describe("net loaded again", function()
  after_each(assert_clean)

  it("wraps its C methods once, not over the last load's wrappers",
    function()
    -- (busted reloads net for every spec file: accept went through one
    -- more Lua wrapper a load, and its misuse named a line in lib/)
    for _ = 1, 3 do
      package.loaded.net = nil
      require "net"
    end
    local again = require "net"
    run_task(function()
      local srv = assert(again.listen{port = 0})
      task.spawn(function() srv:accept(120) end)
      task.yield()
      local _, e = pcall(function() srv:accept() end)
      assert.matches("^spec/net_spec%.lua:%d+: accept: another task is " ..
        "already waiting", e)
      assert.is_true(srv:close())
    end)
  end)
end)
