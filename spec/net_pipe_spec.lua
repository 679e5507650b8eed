-- net: conn:pipe and net.splice (lib/net_pipe.c): bytes moved in C from
-- one connection to another, with write's backpressure, the conns'
-- timeouts, half-close passed on, TLS on either side. Real peers (nc,
-- socat, openssl) are started by the specs and stopped by PID.
local net = require "net"
local task = require "task"
local T = require "tls_helper"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function random_file(bytes)
  local name = tmpname()
  T.sh(("head -c %d /dev/urandom > %s"):format(bytes, q(name)))
  return name
end

local function my_rss_kb()
  local s = slurp("/proc/self/status")
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- socat echoing what it gets (PIPE), on an ephemeral port; -t: after the
-- client's end, time left for the echo to finish.
-- (-b 4096: socat echoes through one pipe of its own, and a blocking
-- write of its default 8 KiB blocks for good on a pipe select called
-- writable with less room (the pipe's reader is socat itself): seen
-- under load, 2 runs in 8, nc left waiting with half the bytes; a write
-- of at most PIPE_BUF never blocks after select)
local function socat_echo()
  local p = T.start("socat -d -d -b 4096 -t 30 " ..
    "TCP-LISTEN:0,bind=127.0.0.1,fork PIPE")
  local port = p:wait_for("listening on AF=2 127%.0%.0%.1:(%d+)", nil, "err")
  return p, tonumber(port)
end

-- A server on an ephemeral port whose handler splices each client to a
-- new connection to up_port (opts: connect options); the splices'
-- results go to results[i] = {n1, n2} or {nil, err, msg}.
local function splice_proxy(up_port, opts, listen_opts)
  local lo = {port = 0}
  for k, v in pairs(listen_opts or {}) do lo[k] = v end
  local s = assert(net.listen(lo))
  local _, port = s:sockname()
  local results = {}
  task.spawn(s.serve, s, function(c)
    local u = assert(net.connect("127.0.0.1", up_port, opts))
    local r = table.pack(net.splice(c, u))
    results[#results + 1] = r
    u:close()
  end)
  return s, port, results
end

-- Close a server and wait (bounded) until its handlers are done.
local function stop(s)
  s:close()
  for _ = 1, 400 do
    if s:active() == 0 then break end
    task.sleep(0.005)
  end
  assert.equal(0, s:active())
end

local function wait_until(cond, secs)
  local deadline = task.now() + (secs or 5)
  while not cond() do
    assert(task.now() < deadline, "condition not met in time")
    task.sleep(0.01)
  end
end

describe("net pipes", function()
  after_each(assert_clean)

  describe("wrong arguments raise naming the function", function()
    it("pipe and splice", function()
      run_task(function()
        local s = assert(net.listen{port = 0})
        local _, port = s:sockname()
        local c = assert(net.connect("127.0.0.1", port))
        local d = assert(s:accept(5))
        local function raises(pat, f)
          local ok, err = pcall(f)
          assert.is_false(ok)
          assert.matches(pat, tostring(err))
        end
        raises("bad argument #1 to 'pipe' %(net.conn expected",
          function() c:pipe(nil) end)
        raises("bad argument #1 to 'pipe' %(net.conn expected",
          function() c:pipe("x") end)
        raises("bad argument #1 to 'pipe' %(net.conn expected",
          function() c:pipe(s) end) -- a server is no stream
        raises("bad argument #1 to 'pipe' %(net.conn expected",
          function() c.pipe(s, c) end)
        raises("bad argument #2 to 'pipe' %(unknown option 'bogus'%)",
          function() c:pipe(d, {bogus = 1}) end)
        raises("eof: \"shutdown\", \"close\" or \"none\" expected",
          function() c:pipe(d, {eof = "maybe"}) end)
        raises("bad argument #2 to 'pipe' %(table expected",
          function() c:pipe(d, 5) end)
        raises("bad argument #2 to 'splice' %(net.conn expected",
          function() net.splice(c) end)
        raises("bad argument #1 to 'splice' %(net.conn expected",
          function() net.splice(1, c) end)
        raises("bad argument #2 to 'splice' %(a different connection",
          function() net.splice(c, c) end)
        -- a second pipe on a piped conn
        local t = task.spawn(c.pipe, c, d)
        task.yield()
        raises("pipe: the connection is already piped",
          function() d:pipe(c) end)
        raises("splice: the connection is already piped",
          function() net.splice(c, d) end)
        c:close()
        local r = table.pack(t:join())
        assert.same({nil, "closed", "pipe: closed reading the " ..
          "source after 0 bytes", 0, n = 4}, r)
        d:close()
        s:close()
      end)
    end)
  end)

  it("moves MBs exact both ways, a half-close passed on (nc through a " ..
    "splice to socat's echo)", function()
    local up, up_port = socat_echo()
    local s, port, results = splice_proxy(up_port)
    local src = random_file(6 * 1024 * 1024)
    local back = tmpname()
    -- nc -N shuts its output down after the file: the echo goes on and
    -- ends only once that end reached socat through the splice
    local _, err, code = T.run(("nc -N 127.0.0.1 %d < %s > %s"):format(port,
      q(src), q(back)), nil, 60)
    assert.equal(0, code, err)
    assert.is_true(slurp(back) == slurp(src), "the echo differs")
    run_task(function()
      wait_until(function() return #results == 1 end)
      stop(s)
    end)
    assert.same({6 * 1024 * 1024, 6 * 1024 * 1024, n = 2}, results[1])
    up:stop()
  end)

  it("conn:pipe: data already buffered goes first, then the rest, " ..
    "then a shutdown", function()
    run_task(function()
      local sink = assert(net.listen{port = 0})
      local _, sink_port = sink:sockname()
      local got
      local st = task.spawn(function()
        local c = assert(sink:accept(5))
        got = c:read("a")
        c:write("bye")
        c:close()
      end)
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local client = assert(net.connect("127.0.0.1", port))
      local c = assert(s:accept(5))
      client:write("HEAD\nbody-1,", ("x"):rep(100000))
      assert.equal("HEAD", c:read())
      assert.is_true(c:buffered() > 0)
      local u = assert(net.connect("127.0.0.1", sink_port))
      local t = task.spawn(function() return c:pipe(u) end)
      client:write(",body-2")
      client:shutdown()
      assert.same({100000 + 14}, {t:join()})
      st:join()
      assert.equal("body-1," .. ("x"):rep(100000) .. ",body-2", got)
      assert.equal("bye", u:read("a")) -- the reverse is untouched
      for _, x in ipairs{client, c, u, s, sink} do x:close() end
    end)
  end)

  it("eof = \"close\" closes the destination, \"none\" leaves it", function()
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local function pair()
        local a = assert(net.connect("127.0.0.1", port))
        return a, assert(s:accept(5))
      end
      local a1, b1 = pair() -- a1 -> b1 ... b2 -> a2
      local a2, b2 = pair()
      local t = task.spawn(function() return b1:pipe(b2, {eof = "close"}) end)
      a1:write("one")
      a1:shutdown()
      assert.same({3}, {t:join()})
      assert.is_true(b2:is_closed())
      assert.equal("one", a2:read("a"))
      a1:close(); b1:close(); a2:close()
      a1, b1 = pair()
      a2, b2 = pair()
      t = task.spawn(function() return b1:pipe(b2, {eof = "none"}) end)
      a1:write("two")
      a1:shutdown()
      assert.same({3}, {t:join()})
      assert.is_false(b2:is_closed())
      b2:write("!") -- still open for writing
      b2:shutdown()
      assert.equal("two!", a2:read("a"))
      for _, x in ipairs{a1, b1, a2, b2, s} do x:close() end
    end)
  end)

  it("a slow reader: the source stops being read, memory stays bounded, " ..
    "every byte arrives", function()
    -- socat floods from /dev/zero into the pipe; the sink does not read
    -- for a second, then drains
    local sink = assert(net.listen{port = 0})
    local _, sink_port = sink:sockname()
    local s = assert(net.listen{port = 0})
    local _, port = s:sockname()
    local moved, drained, reading = nil, 0, false
    task.spawn(function()
      local c = assert(s:accept(5))
      local u = assert(net.connect("127.0.0.1", sink_port))
      moved = table.pack(c:pipe(u))
      u:close()
      c:close()
    end)
    local sink_task = task.spawn(function()
      local c = assert(sink:accept(5))
      while not reading do task.sleep(0.01) end
      while true do
        local d = c:recv()
        if not d then break end
        drained = drained + #d
      end
      c:close()
    end)
    local feeder
    run_task(function()
      local before = my_rss_kb()
      feeder = T.start(("socat -u OPEN:/dev/zero TCP:127.0.0.1:%d"):format(
        port))
      task.sleep(1)
      local grew = my_rss_kb() - before
      assert.is_true(grew < 16 * 1024, ("rss grew by %d kB"):format(grew))
      assert.is_nil(moved) -- still waiting on the sink
      T.sh("kill " .. feeder.pid) -- the source ends (an end or a reset)
      reading = true
      wait_until(function() return moved ~= nil end, 10)
      sink_task:join()
      s:close()
      sink:close()
    end, 20)
    feeder:stop()
    if moved[1] then
      assert.equal(moved[1], drained)
    else -- a reset of the source: what was moved still arrived
      assert.equal("ECONNRESET", moved[2])
      assert.matches("after (%d+) bytes", moved[3])
      assert.equal(tonumber(moved[3]:match("after (%d+) bytes")), drained)
      assert.equal(moved[4], drained) -- the count as a number too
      assert.equal(4, moved.n)
    end
    assert.is_true(drained > 0)
  end)

  it("a peer's reset mid-splice ends that splice only", function()
    local up, up_port = socat_echo()
    local s, port, results = splice_proxy(up_port)
    run_task(function()
      local a = assert(net.connect("127.0.0.1", port))
      local b = assert(net.connect("127.0.0.1", port))
      local chunk = ("r"):rep(65536)
      a:write(chunk)
      assert.is_true(a:read(#chunk) == chunk, "the echo differs")
      b:write(chunk)
      assert.is_true(b:read(#chunk) == chunk, "the echo differs")
      a:setopt("linger", {on = true, seconds = 0})
      a:close() -- a reset
      wait_until(function() return #results == 1 end)
      assert.is_nil(results[1][1])
      assert.matches("^E", results[1][2])
      assert.matches("^splice: E%u+ %(.*%) reading a after 65536 bytes " ..
        "a to b, 65536 b to a$", results[1][3])
      assert.equal(65536, results[1][4])
      assert.equal(65536, results[1][5])
      assert.equal(5, results[1].n)
      -- the other splice goes on
      for _ = 1, 20 do
        b:write(chunk)
        assert.is_true(b:read(#chunk) == chunk, "the echo differs")
      end
      b:shutdown()
      assert.equal("", b:read("a"))
      b:close()
      wait_until(function() return #results == 2 end)
      assert.same({21 * 65536, 21 * 65536, n = 2}, results[2])
      stop(s)
    end, 20)
    up:stop()
  end)

  it("timeouts: the source's while waiting for input, the " ..
    "destination's while its queue does not drain", function()
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local a = assert(net.connect("127.0.0.1", port))
      local b = assert(s:accept(5))
      local c = assert(net.connect("127.0.0.1", port))
      local d = assert(s:accept(5))
      b:settimeout(0.2)
      local t0 = task.now()
      a:write("ab")
      local r = table.pack(b:pipe(d)) -- a says nothing after "ab"
      assert.same({nil, "timeout", "pipe: timeout reading the source " ..
        "after 2 bytes", 2, n = 4}, r)
      assert.is_true(task.now() - t0 >= 0.19)
      assert.equal("ab", c:read(2))
      -- both stay usable
      a:write("more\n")
      assert.equal("more", b:read())
      -- c never reads: d's queue stays above its hwm
      b:settimeout(nil)
      d:settimeout(0.3)
      local w = task.spawn(function()
        local chunk = ("w"):rep(65536)
        for _ = 1, 400 do
          if not a:write(chunk) then return end
        end
      end)
      r = table.pack(b:pipe(d))
      assert.is_nil(r[1])
      assert.equal("timeout", r[2])
      assert.matches("^pipe: timeout writing the destination after %d+ " ..
        "bytes$", r[3])
      assert.equal(tonumber(r[3]:match("after (%d+) bytes")), r[4])
      a:close()
      w:join()
      for _, x in ipairs{b, c, d, s} do x:close() end
    end, 20)
  end)

  it("a destination closed by another task ends the pipe: \"closed\"",
    function()
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local a = assert(net.connect("127.0.0.1", port))
      local b = assert(s:accept(5))
      local c = assert(net.connect("127.0.0.1", port))
      local d = assert(s:accept(5))
      local t = task.spawn(function() return b:pipe(d) end)
      a:write("x")
      assert.equal("x", c:read(1))
      d:close()
      assert.same({nil, "closed", "pipe: closed writing the " ..
        "destination after 1 bytes", 1}, {t:join()})
      -- cancelled while piping: the conns stay usable
      local e = assert(net.connect("127.0.0.1", port))
      local f = assert(s:accept(5))
      t = task.spawn(function() return b:pipe(f) end)
      task.yield()
      t:cancel()
      t:join()
      a:write("y\n")
      assert.equal("y", b:read())
      for _, x in ipairs{a, b, c, e, f, s} do x:close() end
    end)
  end)

  it("TLS on one side: nc through a splice to a luahost TLS server " ..
    "echoing with conn:pipe", function()
    local certs = T.certs()
    local tls_s = assert(net.listen{port = 0, tls = {cert = certs.server,
      key = certs.server_key}})
    local _, tls_port = tls_s:sockname()
    local echoed = {}
    task.spawn(tls_s.serve, tls_s, function(c)
      echoed[#echoed + 1] = table.pack(c:pipe(c)) -- TLS in, TLS out
    end)
    local s, port, results = splice_proxy(tls_port,
      {tls = {ca = certs.ca}})
    local src = random_file(3 * 1024 * 1024 + 17)
    local back = tmpname()
    local _, err, code = T.run(("nc -N 127.0.0.1 %d < %s > %s"):format(port,
      q(src), q(back)), nil, 60)
    assert.equal(0, code, err)
    assert.is_true(slurp(back) == slurp(src), "the echo differs")
    run_task(function()
      wait_until(function() return #results == 1 and #echoed == 1 end)
      stop(s)
      stop(tls_s)
    end)
    local n = 3 * 1024 * 1024 + 17
    assert.same({n, n, n = 2}, results[1])
    assert.same({n, n = 1}, echoed[1])
  end)

  it("a TLS destination still in its handshake (a bare accept): the " ..
    "source waits, then every byte goes once the handshake is done",
    function()
    -- before the handshake ends, TLS keeps what is written; that counts
    -- as queued: the source must stop being read, not fill memory
    local certs = T.certs()
    local tls_s = assert(net.listen{port = 0, tls = {cert = certs.server,
      key = certs.server_key}})
    local _, tls_port = tls_s:sockname()
    local s = assert(net.listen{port = 0})
    local _, port = s:sockname()
    local N, chunk = 48 * 1024 * 1024, ("p"):rep(65536)
    run_task(function()
      local a = assert(net.connect("127.0.0.1", port))
      local b = assert(s:accept(5))
      local cl = assert(net.connect("127.0.0.1", tls_port)) -- no TLS yet
      local d = assert(tls_s:accept(5)) -- its handshake waits for cl
      local fed = 0
      local feeder = task.spawn(function()
        while fed < N do
          assert(a:write(chunk))
          fed = fed + #chunk
        end
        a:shutdown()
      end)
      local piping = task.spawn(function() return b:pipe(d) end)
      -- the feeder stalls (a stays above its hwm) well before N
      local last, still = -1, 0
      for _ = 1, 500 do
        task.sleep(0.02)
        if fed == N then break end
        if fed == last then still = still + 1 else still = 0 end
        if still >= 10 then break end
        last = fed
      end
      assert.is_true(fed < N // 3, ("%d bytes fed before the handshake, " ..
        "not held back"):format(fed))
      -- the handshake: everything arrives, in order, then the end
      assert(cl:starttls{ca = certs.ca})
      local got, bad = 0, false
      while true do
        local data = cl:recv()
        if not data then break end
        got = got + #data
        if data:find("[^p]") then bad = true end
      end
      feeder:join()
      assert.same({N}, {piping:join()})
      assert.equal(N, got)
      assert.is_false(bad)
      for _, x in ipairs{a, b, cl, d, s, tls_s} do x:close() end
    end, 60)
  end)

  it("write to a TLS conn still in its handshake waits above write_hwm",
    function()
    local certs = T.certs()
    local tls_s = assert(net.listen{port = 0, tls = {cert = certs.server,
      key = certs.server_key}})
    local _, tls_port = tls_s:sockname()
    run_task(function()
      local cl = assert(net.connect("127.0.0.1", tls_port))
      local d = assert(tls_s:accept(5))
      local big = ("w"):rep(256 * 1024)
      local done = false
      local writer = task.spawn(function()
        local r = table.pack(d:write(big))
        done = true
        return table.unpack(r, 1, r.n)
      end)
      task.sleep(0.2)
      assert.is_false(done) -- held, above write_hwm: the writer waits
      assert(cl:starttls{ca = certs.ca})
      assert.equal(big, cl:read(#big))
      assert.equal(d, (writer:join()))
      -- a handshake that fails wakes a waiting writer with its error
      local cl2 = assert(net.connect("127.0.0.1", tls_port))
      local d2 = assert(tls_s:accept(5))
      writer = task.spawn(function() return d2:write(big) end)
      task.yield()
      cl2:write("GET / HTTP/1.0\r\n\r\n") -- not a ClientHello
      local r = table.pack(writer:join())
      assert.is_nil(r[1])
      assert.matches("^tls: ", r[2])
      for _, x in ipairs{cl, d, cl2, d2, tls_s} do x:close() end
    end, 20)
  end)

  it("a write held for a TLS handshake keeps the host alive until it " ..
    "goes (the script's last task writes; openssl s_client the peer)",
    function()
    -- before the fix the host ended with the writer parked: nothing
    -- printed, nothing sent
    local certs = T.certs()
    local got, script = tmpname(), tmpname()
    local f = assert(io.open(script, "wb"))
    f:write(([[
local net = require "net"
local s = assert(net.listen{port = 0, tls = {cert = %q, key = %q}})
local _, port = s:sockname()
local peer = io.popen(("exec openssl s_client -connect 127.0.0.1:%%d " ..
  "-quiet < /dev/null > %s 2>/dev/null"):format(port))
local c = assert(s:accept(10))
s:close()
c:settimeout(10)
print("write", c:write(("w"):rep(256 * 1024)) == c)
c:close()
peer:close()
]]):format(certs.server, certs.server_key, q(got)))
    f:close()
    local out, err, code = run_host({script})
    assert.equal(0, code, err)
    assert.equal("write\ttrue\n", out)
    assert.equal(("w"):rep(256 * 1024), slurp(got))
  end)
end)
