-- Limits and load: many clients, over-long lines, floods, slow readers.
local net = require "net"
local task = require "task"

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- ASan's quarantine keeps freed memory resident: RSS bounds are checked
-- only in the plain build (the rest of each test still runs under ASan).
local ASAN = os.getenv("LUAHOST_ASAN") == "1"
local function assert_rss(grown, limit_kb)
  if not ASAN then
    assert.is_true(grown < limit_kb, "RSS grew by " .. grown .. " kB")
  end
end

local function stop(s)
  s:close()
  for _ = 1, 400 do
    if s:active() == 0 then break end
    task.sleep(0.005)
  end
  assert.equal(0, s:active())
  task.yield()
end

-- Clients x round trips for the load test (LUAHOST_LOAD="200x100" makes
-- it smaller on a slow machine).
local CLIENTS, ROUNDS = 1000, 100
do
  local c, r = (os.getenv("LUAHOST_LOAD") or ""):match("^(%d+)x(%d+)$")
  if c then CLIENTS, ROUNDS = tonumber(c), tonumber(r) end
end

describe("net limits", function()
  after_each(assert_clean)

  it("has named defaults", function()
    local d = net.defaults
    assert.equal(64 * 1024, d.max_line)
    assert.equal(1024 * 1024, d.max_read)
    assert.equal(60, d.idle_timeout)
    assert.equal(64 * 1024, d.write_hwm)
    assert.is_true(d.max_connections > 0)
  end)

  it(("serves %d concurrent clients x %d round trips, all correct")
    :format(CLIENTS, ROUNDS), function()
    run_task(function()
      -- (every client comes from 127.0.0.1: past max_per_address)
      local s = assert(net.listen{backlog = 4096,
        max_per_address = CLIENTS})
      local _, port = s:sockname()
      task.spawn(s.serve, s, function(c)
        while true do
          local l = c:read("l")
          if not l then break end
          c:write(l, ":", #l, "\n")
        end
      end)
      local t0 = task.now()
      local ok, bad = 0, 0
      local clients = {}
      for i = 1, CLIENTS do
        clients[i] = task.spawn(function()
          local c = assert(net.connect("127.0.0.1", port))
          c:settimeout(30)
          for j = 1, ROUNDS do
            local msg = i .. "." .. j
            c:write(msg, "\n")
            if c:read("l") == msg .. ":" .. #msg then
              ok = ok + 1
            else
              bad = bad + 1
            end
          end
          c:close()
        end)
      end
      for i = 1, CLIENTS do
        local r, err = clients[i]:join()
        assert(r ~= nil or err == nil, err)
      end
      local dt = task.now() - t0
      assert.equal(0, bad)
      assert.equal(CLIENTS * ROUNDS, ok)
      io.stderr:write(("\n[load] %d clients x %d round trips: %.2f s\n")
        :format(CLIENTS, ROUNDS, dt))
      stop(s)
    end, 120)
  end)

  it("an idle served connection parked in read costs little memory",
    function()
    if ASAN then
      pending("RSS is not meaningful under ASan (quarantine)")
      return
    end
    -- A fresh server process measures itself; the clients live in another
    -- process. Both are ours and stopped by pid.
    local N = 2000
    local server, client = tmpname(), tmpname()
    local portfile, outfile, pidfile = tmpname(), tmpname(), tmpname()
    local function write(name, text)
      local f = assert(io.open(name, "w"))
      f:write(text)
      f:close()
    end
    local function slurp(name)
      local f = io.open(name)
      if not f then return nil end
      local t = f:read("a")
      f:close()
      return t ~= "" and t or nil
    end
    write(server, ([[
      local net, task = require "net", require "task"
      local function rss()
        local f = io.open("/proc/self/status")
        local s = f:read("a"); f:close()
        return tonumber(s:match("VmRSS:%%s*(%%d+)"))
      end
      local s = assert(net.listen{backlog = 4096, max_per_address = %d})
      local n = 0
      collectgarbage(); collectgarbage()
      task.sleep(0.05)
      local r0 = rss()
      task.spawn(s.serve, s, function(c) n = n + 1; c:read() end)
      local f = io.open(%q, "w"); f:write((select(2, s:sockname()))); f:close()
      for _ = 1, 3000 do
        if n == %d then break end
        task.sleep(0.01)
      end
      task.sleep(0.1)
      collectgarbage(); collectgarbage()
      print(n, (rss() - r0) * 1024 / n)
      os.exit(0)]]):format(N, portfile, N))
    write(client, [[
      local net, task = require "net", require "task"
      local n, port = tonumber(arg[1]), tonumber(arg[2])
      print(io.open("/proc/self/stat"):read("n")); io.stdout:flush()
      local cs = {}
      for i = 1, n do cs[i] = assert(net.connect("127.0.0.1", port)) end
      task.sleep(60)]])
    local host = shell_quote(LUAHOST)
    assert(os.execute(("%s %s > %s 2>&1 &"):format(host, server, outfile)))
    run_task(function()
      local port
      for _ = 1, 1000 do
        port = tonumber(slurp(portfile))
        if port then break end
        task.sleep(0.01)
      end
      assert(port, "the server did not start")
      assert(os.execute(("%s %s %d %d > %s &"):format(host, client, N, port,
        pidfile)))
      for _ = 1, 3000 do
        if slurp(outfile) then break end
        task.sleep(0.01)
      end
    end, 60)
    local pid = tonumber(slurp(pidfile))
    if pid then os.execute("kill " .. pid) end
    local out = slurp(outfile) or ""
    local n, per = out:match("^(%d+)%s+([%d.]+)")
    assert(n, "server said: " .. out)
    assert.equal(N, tonumber(n))
    io.stderr:write(("\n[memory] %.0f bytes per idle connection\n")
      :format(tonumber(per)))
    assert.is_true(tonumber(per) < 2600, per .. " bytes per connection")
  end)

  it("refuses a 10 MB line with 'line too long', memory bounded",
    function()
    run_task(function()
      local why, after
      local s = assert(net.listen{max_line = 64 * 1024})
      local _, port = s:sockname()
      task.spawn(s.serve, s, function(c)
        local l, err = c:read("l")
        why = err
        assert.is_nil(l)
        after = c:read("l") -- the line after the long one
        c:write("ok\n")
      end)
      local rss0 = rss_kb()
      local c = assert(net.connect("127.0.0.1", port))
      local chunk = string.rep("x", 1024 * 1024)
      for _ = 1, 10 do assert(c:write(chunk)) end
      c:write("\nnext\n")
      assert.equal("ok", c:read())
      assert.equal("line too long", why)
      assert.equal("next", after)
      local grown = rss_kb() - rss0
      c:close()
      stop(s)
      -- the chunk itself is 1 MB; the server kept at most ~max_line
      assert_rss(grown, 8 * 1024)
    end)
  end)

  it("refuses read('a') past max_read (1 MiB by default) with 'too " ..
     "long', memory bounded and nothing lost", function()
    run_task(function()
      local why, again, total, small
      local s = assert(net.listen{})
      local _, port = s:sockname()
      task.spawn(s.serve, s, function(c)
        local a, err = c:read("a")
        assert.is_nil(a)
        why = err
        -- (refused again, at once: the bytes are still there)
        again = select(2, c:read("a"))
        -- and recv takes them all, in pieces, to the end
        total = 0
        while true do
          local d = c:recv()
          if not d then break end
          total = total + #d
        end
        c:write("done\n")
      end)
      local rss0 = rss_kb()
      local c = assert(net.connect("127.0.0.1", port))
      local chunk = string.rep("x", 1024 * 1024)
      for _ = 1, 10 do assert(c:write(chunk)) end
      c:shutdown()
      assert.equal("done", c:read())
      assert.equal("too long", why)
      assert.equal("too long", again)
      assert.equal(10 * 1024 * 1024, total)
      local grown = rss_kb() - rss0
      c:close()
      stop(s)
      -- (the chunk itself is 1 MB; the server kept about max_read)
      assert_rss(grown, 8 * 1024)
      -- under the limit, read("a") reads to the end as before; read(n)
      -- past it is refused at once, nothing taken
      s = assert(net.listen{max_read = 100})
      _, port = s:sockname()
      task.spawn(s.serve, s, function(sc)
        local n, err = sc:read(101)
        small = {n, err, sc:read(100), sc:read("a")}
      end)
      c = assert(net.connect("127.0.0.1", port))
      c:write(string.rep("y", 150))
      c:shutdown()
      c:read("a")
      c:close()
      stop(s)
      assert.same({nil, "too long", string.rep("y", 100),
        string.rep("y", 50)}, small)
    end)
  end)

  it("max_read is a positive integer of at most 32 bits", function()
    for _, v in ipairs({0, -1, 1.5, "10", 2 ^ 32, 0x100000000}) do
      assert.error_matches(function() net.listen{max_read = v} end,
        "bad argument #1 to 'listen' %(max_read: ", nil, "v=" .. tostring(v))
      assert.error_matches(function()
        net.connect("127.0.0.1", 1, {max_read = v})
      end, "bad argument #3 to 'connect' %(max_read: ", nil, "v=" .. tostring(v))
    end
  end)

  it("a flood with nobody reading stops reading (bounded buffer)",
    function()
    run_task(function()
      local s = assert(net.listen{})
      local _, port = s:sockname()
      local got = 0
      local go = false
      task.spawn(s.serve, s, function(c)
        c:read(1)
        while not go do task.sleep(0.01) end
        while true do
          local d = c:recv()
          if not d then break end
          got = got + #d
        end
      end)
      local rss0 = rss_kb()
      local c = assert(net.connect("127.0.0.1", port))
      c:settimeout(0.3)
      local chunk = string.rep("f", 65536)
      local sent, err = 0, nil
      for _ = 1, 1000 do -- up to 64 MB
        local ok
        ok, err = c:write(chunk)
        if not ok then break end
        sent = sent + #chunk
      end
      local grown = rss_kb() - rss0
      go = true
      c:close()
      stop(s)
      assert.equal("timeout", err) -- the server stopped taking it
      assert_rss(grown, 16 * 1024)
      assert.is_true(sent < 64 * 1024 * 1024)
      assert.is_true(got > 0)
    end)
  end)

  it("a slow reader under a fast writer keeps the writer's memory bounded",
    function()
    run_task(function()
      local s = assert(net.listen{write_hwm = 256 * 1024})
      local _, port = s:sockname()
      local written = 0
      local total = 32 * 1024 * 1024
      task.spawn(s.serve, s, function(c)
        local chunk = string.rep("s", 65536)
        while written < total do
          assert(c:write(chunk))
          written = written + #chunk
        end
      end)
      -- (a full cycle first: the collector's pace is set by the heap it
      -- last saw, and a large one left by an earlier spec would let this
      -- one's garbage grow that much before collecting)
      collectgarbage()
      local rss0 = rss_kb()
      local c = assert(net.connect("127.0.0.1", port))
      local n, peak = 0, 0
      while n < total do
        local d = assert(c:recv(16384))
        n = n + #d
        if n % (1024 * 1024) < 16384 then
          task.sleep(0.001) -- slow
          peak = math.max(peak, rss_kb() - rss0)
        end
      end
      c:close()
      stop(s)
      assert.equal(total, n)
      assert_rss(peak, 16 * 1024)
    end, 60)
  end)

  it("cancelling tasks at every kind of wait leaves nothing behind",
    function()
    run_task(function()
      local s = assert(net.listen{})
      local _, port = s:sockname()
      local serve = task.spawn(s.serve, s, function(c)
        for l in c:lines() do
          task.sleep(0.001)
          c:write(l, "\n")
        end
      end)
      local waits = {
        function() task.sleep(1) end,
        function() task.yield(); task.sleep(1) end,
        function()
          local c <close> = assert(net.connect("127.0.0.1", port))
          while c:write("x\n") and c:read() do end
        end,
        function()
          local c <close> = assert(net.connect("localhost", port))
          c:read(1000000)
        end,
        function()
          local c <close> = assert(net.connect("127.0.0.1", port))
          local big = string.rep("b", 65536)
          while c:write(big) do end -- blocks, then fails
        end,
        function()
          local u <close> = assert(net.udp{port = 0})
          u:recvfrom()
        end,
        function() net.lookup("localhost") end,
        function() task.wait_signal("SIGUSR2") end,
      }
      local ts = {}
      for round = 1, 20 do
        for i, w in ipairs(waits) do
          ts[#ts + 1] = task.spawn(w)
          if (round + i) % 3 == 0 then task.yield() end
        end
        for _ = 1, round % 4 do task.yield() end
        for _, t in ipairs(ts) do t:cancel() end
        for _, t in ipairs(ts) do
          assert.is_true(t.status == "cancelled" or t.status == "done",
            t.status .. ": " .. tostring(t.err))
        end
        ts = {}
      end
      stop(s)
      serve:join()
      for _ = 1, 200 do
        if require("net.core").stats().deadlines == 0 then break end
        task.sleep(0.01)
      end
      assert.equal(0, require("net.core").stats().deadlines)
    end, 60)
  end)
end)
