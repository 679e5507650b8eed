-- uv tcp handles (bindings/tcp.c) and the stream methods on them, over
-- loopback with ephemeral ports. Callbacks only record what they saw; the
-- assertions run after run_loop, outside any callback.
local uv = require "uv"

-- A listener on host:0 whose accepted connections are handed to on_conn.
-- Returns the server and its port.
local function listen(host, on_conn)
  local server = uv.new_tcp()
  assert(server:bind(host, 0))
  assert(server:listen(16, function(err)
    assert(err == nil, err)
    local conn = uv.new_tcp()
    assert(server:accept(conn))
    on_conn(conn)
  end))
  return server, server:getsockname().port
end

-- Echo every byte back; close at EOF. Counts the closed connections.
local echo_closed = 0
local function echo(conn)
  conn:read_start(function(err, data)
    if data then conn:write(data)
    else conn:close(function() echo_closed = echo_closed + 1 end) end
  end)
end

local function has_ipv6_loopback()
  local t = uv.new_tcp()
  local ok = t:bind("::1", 0)
  t:close()
  uv.run("nowait")
  return ok ~= nil
end

-- One round trip: send the pieces, read until `want` bytes came back.
local function round_trip(host)
  local server, port = listen(host, echo)
  local closed_before = echo_closed
  local client = uv.new_tcp()
  local got, connect_err, peer = {}, "unset", nil
  local want = "hello, world"
  client:connect(host, port, expect(function(err)
    connect_err = err
    peer = client:getpeername()
    client:write({"hello", ", ", "world"}, expect())
    client:read_start(function(_, data)
      got[#got + 1] = data
      if #table.concat(got) >= #want then client:close() end
    end)
  end))
  run_loop(function()
    return client:is_closing() and echo_closed > closed_before
  end)
  server:close()
  assert.is_nil(connect_err)
  assert.equal(want, table.concat(got))
  assert.same({ip = host, port = port,
               family = host:find(":") and "inet6" or "inet"}, peer)
end

describe("uv tcp", function()
  after_each(assert_clean)

  it("echoes a round trip over IPv4", function()
    round_trip("127.0.0.1")
  end)

  it("echoes a round trip over IPv6", function()
    if not has_ipv6_loopback() then
      pending("this machine has no ::1 (IPv6 loopback)")
    end
    round_trip("::1")
  end)

  it("creates the socket at once when given a family", function()
    for _, fam in ipairs({"inet", {family = "inet"}, 2}) do
      local t = assert(uv.new_tcp(fam))
      assert.is_number(t:fileno()) -- exists before bind
      t:close()
    end
    local lazy = uv.new_tcp()
    assert.is_nil((lazy:fileno()))
    lazy:close()
    local t6 = uv.new_tcp("inet6")
    if has_ipv6_loopback() then
      assert.equal(0, t6:bind("::1", 0, {ipv6only = true}))
      assert.equal("inet6", t6:getsockname().family)
    end
    t6:close()
    local none, msg, name = uv.new_tcp("unix")
    assert.is_nil(none)
    assert.equal("EINVAL", name)
    assert.matches("^EINVAL: ", msg)
  end)

  it("half-closes with shutdown: the peer sees EOF and can still write",
     function()
    local server_got, server_eof, client_got, client_eof = {}, false, {}, false
    local server, port = listen("127.0.0.1", function(conn)
      conn:read_start(function(err, data)
        assert(err == nil, err)
        if data then
          server_got[#server_got + 1] = data
        else
          server_eof = true
          conn:write("pong", function() conn:close() end)
        end
      end)
    end)
    local client = uv.new_tcp()
    client:connect("127.0.0.1", port, expect(function()
      client:read_start(function(_, data)
        if data then client_got[#client_got + 1] = data
        else client_eof = true; client:close() end
      end)
      client:write("ping")
      client:shutdown(expect(function(err)
        assert(err == nil, err)
        assert.is_false(client:is_writable())
      end))
    end))
    run_loop(function() return client_eof end)
    server:close()
    assert.is_true(server_eof)
    assert.equal("ping", table.concat(server_got))
    assert.equal("pong", table.concat(client_got))
  end)

  it("streams 64 MiB byte-exact, every write callback counted", function()
    local CHUNK, N = 1024 * 1024, 64
    local seed = {}
    for i = 1, 252 do seed[i] = string.char((i * 37 + 11) % 256) end
    seed = table.concat(seed)
    -- chunk i: 256-byte units that carry i, so a misplaced byte shows
    local function chunk(i)
      return (string.pack(">I4", i) .. seed):rep(CHUNK // 256)
    end
    local received, next_chunk, bad, carry = 0, 1, nil, {}
    local carry_len, eof = 0, false
    local server, port = listen("127.0.0.1", function(conn)
      conn:read_start(function(err, data)
        assert(err == nil, err)
        if not data then eof = true; conn:close(); return end
        received = received + #data
        carry[#carry + 1] = data
        carry_len = carry_len + #data
        while carry_len >= CHUNK and not bad do
          local all = table.concat(carry)
          if all:sub(1, CHUNK) ~= chunk(next_chunk) then bad = next_chunk end
          next_chunk = next_chunk + 1
          carry = {all:sub(CHUNK + 1)}
          carry_len = #carry[1]
        end
      end)
    end)
    local client = uv.new_tcp()
    local callbacks, errors = 0, 0
    client:connect("127.0.0.1", port, expect(function()
      for i = 1, N do
        -- the only reference to the string is the write itself
        assert(client:write(chunk(i), function(err)
          callbacks = callbacks + 1
          if err then errors = errors + 1 end
        end))
      end
      collectgarbage() -- anchored strings must survive this
      client:shutdown(function() client:close() end)
    end))
    run_loop(function() return eof end, 60)
    server:close()
    assert.is_nil(bad)
    assert.equal(N, callbacks)
    assert.equal(0, errors)
    assert.equal(N * CHUNK, received)
    assert.equal(N + 1, next_chunk)
  end)

  it("grows the write queue while the reader has stopped", function()
    local conn, drained = nil, 0
    local server, port = listen("127.0.0.1", function(c) conn = c end)
    local client = uv.new_tcp()
    local connected = false
    client:connect("127.0.0.1", port, function() connected = true end)
    run_loop(function() return connected and conn end)
    -- the reader reads a first message, then stops reading
    local hello
    conn:read_start(function(_, data)
      hello = data
      assert.equal(0, conn:read_stop())
    end)
    client:write("hello")
    run_loop(function() return hello end)
    assert.equal("hello", hello)
    local piece = ("q"):rep(1024 * 1024)
    local done, writes = 0, 0
    local function write()
      writes = writes + 1
      assert(client:write(piece, function(err)
        assert(err == nil, err)
        done = done + 1
      end))
      return client:get_write_queue_size()
    end
    -- the kernel buffers take the first megabytes (how many depends on
    -- the machine); then the writes must queue
    while writes < 200 and write() == 0 do end
    local sizes = {client:get_write_queue_size()}
    assert.is_true(sizes[1] > 0, "nothing queued after 200 MiB")
    for i = 2, 8 do
      sizes[i] = write()
      assert.is_true(sizes[i] > sizes[i - 1])
    end
    assert.equal(sizes[8], uv.stream_get_write_queue_size(client))
    assert.equal(sizes[8], uv.tcp_write_queue_size(client)) -- luv's old name
    assert.equal(sizes[8], client:write_queue_size())
    conn:read_start(function(_, data) drained = drained + #data end)
    run_loop(function() return done == writes end, 30)
    assert.equal(0, client:get_write_queue_size())
    run_loop(function() return drained == writes * #piece end)
    conn:close()
    client:close()
    server:close()
  end)

  it("close_reset is seen as ECONNRESET by the peer", function()
    local peer_err, reset_cb = "unset", false
    local server, port = listen("127.0.0.1", function(conn)
      conn:read_start(function(err, data)
        assert.is_nil(data)
        peer_err = err
        conn:close()
      end)
    end)
    local client = uv.new_tcp()
    client:connect("127.0.0.1", port, expect(function(err)
      assert(err == nil, err)
      assert.equal(0, client:close_reset(function() reset_cb = true end))
    end))
    run_loop(function() return peer_err ~= "unset" and reset_cb end)
    server:close()
    assert.equal("ECONNRESET", peer_err)
  end)

  it("reports ECONNREFUSED to the connect callback", function()
    local probe = uv.new_tcp()
    assert(probe:bind("127.0.0.1", 0))
    local port = probe:getsockname().port
    probe:close() -- nothing listens there now
    local client, got = uv.new_tcp(), nil
    assert.equal(0, client:connect("127.0.0.1", port, expect(function(err)
      got = err
      client:close()
    end)))
    run_loop(function() return got end)
    assert.equal("ECONNREFUSED", got)
  end)

  it("try_write writes what it can at once", function()
    local got, eof = {}, false
    local server, port = listen("127.0.0.1", function(conn)
      conn:read_start(function(_, data)
        if data then got[#got + 1] = data
        else eof = true; conn:close() end
      end)
    end)
    local client = uv.new_tcp()
    client:connect("127.0.0.1", port, expect(function()
      assert.equal(3, client:try_write("abc"))
      assert.equal(4, uv.try_write(client, {"d", "", "efg"}))
      client:shutdown(function() client:close() end)
    end))
    -- still connecting: nothing can be written yet
    local early = {client:try_write("x")}
    run_loop(function() return eof and client:is_closing() end)
    server:close()
    assert.same({nil, "EAGAIN: resource temporarily unavailable", "EAGAIN"},
                early)
    assert.equal("abcdefg", table.concat(got))
  end)

  it("returns bind and listen errors as nil, message, name", function()
    local a = uv.new_tcp()
    assert.equal(0, a:bind("127.0.0.1", 0))
    assert.equal(0, a:listen(4, function() end))
    local port = a:getsockname().port
    -- libuv reports EADDRINUSE of a TCP bind at listen (a delayed error)
    local b = uv.new_tcp()
    local r = {b:bind("127.0.0.1", port)}
    if r[1] == 0 then r = {b:listen(4, expect(nil, 0))} end
    assert.same({nil, "EADDRINUSE: address already in use", "EADDRINUSE"}, r)
    local c = uv.new_tcp()
    local ok, msg, name = c:bind("192.0.2.1", 0) -- TEST-NET-1, not ours
    assert.is_nil(ok)
    assert.equal("EADDRNOTAVAIL", name)
    assert.matches("^EADDRNOTAVAIL: ", msg)
    a:close(); b:close(); c:close()
  end)

  it("gives getsockname and getpeername as {ip, port, family}", function()
    local server_side
    local server, port = listen("127.0.0.1", function(conn)
      server_side = {sock = conn:getsockname(), peer = conn:getpeername()}
      conn:close()
    end)
    local client, names = uv.new_tcp(), nil
    client:connect("127.0.0.1", port, expect(function()
      names = {sock = client:getsockname(), peer = uv.tcp_getpeername(client)}
    end))
    run_loop(function() return names and server_side end)
    client:close()
    server:close()
    assert.same({ip = "127.0.0.1", port = port, family = "inet"}, names.peer)
    assert.same(names.sock, server_side.peer)
    assert.same(names.peer, server_side.sock)
    assert.is_true(names.sock.port > 0 and names.sock.port ~= port)
    local lone = uv.new_tcp("inet")
    assert.same({nil, "ENOTCONN: socket is not connected", "ENOTCONN"},
                {lone:getpeername()})
    lone:close()
  end)

  it("sets nodelay, keepalive and simultaneous_accepts", function()
    local t = uv.new_tcp("inet")
    assert.equal(0, t:nodelay(true))
    assert.equal(0, t:keepalive(true, 30))
    assert.equal(0, t:keepalive(true))
    assert.equal(0, uv.tcp_keepalive(t, false))
    assert.equal(0, t:simultaneous_accepts(false))
    t:close()
  end)

  it("opens a socketpair end as a tcp handle", function()
    local fds = assert(uv.socketpair("stream", 0, {nonblock = true},
                                     {nonblock = true}))
    local a, b = uv.new_tcp(), uv.new_tcp()
    assert.equal(0, a:open(fds[1]))
    assert.equal(0, uv.tcp_open(b, fds[2]))
    local got
    b:read_start(function(_, data) got = data end)
    a:write("over a socketpair")
    run_loop(function() return got end)
    assert.equal("over a socketpair", got)
    a:close(); b:close()
  end)
end)

local function raises(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "call did not raise")
  err = tostring(err)
  assert.is_truthy(err:find("bad argument", 1, true) or
                   err:find("bad self", 1, true), err)
  return err
end

describe("uv tcp arguments", function()
  after_each(assert_clean)

  it("raise on wrong arguments to every tcp function", function()
    local timer = uv.new_timer()
    local tcp = uv.new_tcp()
    local pipe = uv.new_pipe()
    local closed = uv.new_tcp()
    closed:close()
    uv.run("nowait") -- closed, not closing: a closing stream answers as luv
    local fn = function() end
    local names = {"tcp_open", "tcp_nodelay", "tcp_keepalive",
                   "tcp_simultaneous_accepts", "tcp_bind", "tcp_getsockname",
                   "tcp_getpeername", "tcp_connect", "tcp_close_reset",
                   "tcp_write_queue_size"}
    for _, name in ipairs(names) do
      local f = uv[name]
      assert.is_function(f, name)
      raises(f)
      raises(f, nil)
      raises(f, 7)
      raises(f, "tcp")
      raises(f, timer)
      raises(f, pipe)
      assert.matches("closed", raises(f, closed, true, 1, fn))
    end
    for _, fam in ipairs({"bogus", 2 ^ 40, -1, 99, true, {family = "x"},
                          {family = 2 ^ 33 + 2}}) do
      raises(uv.new_tcp, fam)
    end
    raises(uv.tcp_open, tcp)
    raises(uv.tcp_open, tcp, -1)
    raises(uv.tcp_open, tcp, 2 ^ 40)
    raises(uv.tcp_open, tcp, 1.5)
    raises(uv.tcp_nodelay, tcp)
    raises(uv.tcp_nodelay, tcp, 1)
    raises(uv.tcp_keepalive, tcp)
    raises(uv.tcp_keepalive, tcp, "on")
    raises(uv.tcp_keepalive, tcp, true, -1)
    raises(uv.tcp_keepalive, tcp, true, 2 ^ 40)
    raises(uv.tcp_keepalive, tcp, true, "ten")
    raises(uv.tcp_simultaneous_accepts, tcp, nil)
    raises(uv.tcp_bind, tcp)
    raises(uv.tcp_bind, tcp, nil, 0)
    raises(uv.tcp_bind, tcp, "not an ip", 0)
    raises(uv.tcp_bind, tcp, "localhost", 0) -- names need getaddrinfo
    raises(uv.tcp_bind, tcp, "127.0.0.1")
    raises(uv.tcp_bind, tcp, "127.0.0.1", -1)
    raises(uv.tcp_bind, tcp, "127.0.0.1", 65536)
    raises(uv.tcp_bind, tcp, "127.0.0.1", 2 ^ 53)
    raises(uv.tcp_bind, tcp, "127.0.0.1", 0, 5)
    raises(uv.tcp_bind, tcp, "127.0.0.1", 0, {ipv6only = 1})
    raises(uv.tcp_connect, tcp, "127.0.0.1", 1)
    raises(uv.tcp_connect, tcp, "127.0.0.1", 1, 5)
    raises(uv.tcp_connect, tcp, "999.0.0.1", 1, fn)
    raises(uv.tcp_connect, tcp, "127.0.0.1", 70000, fn)
    raises(uv.tcp_connect, tcp, "127.0.0.1", nil, fn)
    raises(uv.tcp_close_reset, tcp, 5)
    raises(uv.socketpair, "bogus")
    raises(uv.socketpair, 2 ^ 40)
    raises(uv.socketpair, -1)
    raises(uv.socketpair, nil, "no such protocol")
    raises(uv.socketpair, nil, -1)
    raises(uv.socketpair, nil, {})
    raises(uv.socketpair, nil, nil, 5)
    raises(uv.socketpair, nil, nil, nil, "x")
    raises(uv.socketpair, nil, nil, {nonblock = "yes"})
    assert.matches("bad argument #2 to 'bind'",
                   raises(function() return tcp:bind("127.0.0.1", -2) end))
    assert.matches("bad self",
                   raises(function() return closed:getsockname() end))
    -- OS failures are results, not errors
    assert.equal("EBADF", select(3, tcp:open(0x7ffffff0)))
    assert.equal("EBADF", select(3, tcp:getsockname()))
    assert.equal("EPROTONOSUPPORT",
                 select(3, uv.socketpair("stream", "udp")))
    local fired = false
    timer:start(1, 0, function() fired = true end)
    run_loop(function() return fired end)
    timer:close(); tcp:close(); pipe:close()
  end)
end)

describe("uv tcp lifetime", function()
  after_each(assert_clean)

  -- n sequential connect/accept/close cycles against one server
  local function cycles(n)
    local accepted, closed = 0, 0
    local server, port = listen("127.0.0.1", function(conn)
      accepted = accepted + 1
      conn:read_start(function(_, data)
        if not data then conn:close(function() closed = closed + 1 end) end
      end)
    end)
    for i = 1, n do
      local c, done = uv.new_tcp(), false
      c:connect("127.0.0.1", port, function(err)
        assert(err == nil, err)
        c:write("x" .. i, function() c:close(function() done = true end) end)
      end)
      run_loop(function() return done and closed == i end)
    end
    server:close()
    run_loop(function() return server:is_closing() end)
    uv.run("nowait")
    return accepted
  end

  it("2,000 connect/accept/close cycles leave no handle or memory",
     function()
    cycles(100) -- warm up tables, registry, the read buffer
    collectgarbage(); collectgarbage()
    local before = collectgarbage("count")
    assert.equal(2000, cycles(2000))
    collectgarbage(); collectgarbage()
    local after = collectgarbage("count")
    local open = 0
    uv.walk(function(h) if not h:is_closing() then open = open + 1 end end)
    assert.equal(0, open)
    -- a leak of one box, ref or string per cycle would show as > 100 KiB
    assert.is_true(after - before < 100,
                   ("Lua memory grew by %.1f KiB"):format(after - before))
  end)
end)
