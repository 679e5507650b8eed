-- The stream methods (bindings/stream.c) on tcp and pipe handles: request
-- lifetimes (ECANCELED on close, no callback after a failed call, never a
-- callback from inside the call), writes of string arrays, and wrong
-- arguments to every stream function.
local uv = require "uv"

-- A connected tcp pair over loopback: returns client, server-side conn,
-- and the listener (already closed).
local function tcp_pair()
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  local conn, connected
  assert(server:listen(4, function()
    conn = uv.new_tcp()
    assert(server:accept(conn))
  end))
  local client = uv.new_tcp()
  client:connect("127.0.0.1", server:getsockname().port,
                 function(err) connected = err or true end)
  run_loop(function() return conn and connected end)
  assert.is_true(connected)
  server:close()
  return client, conn
end

-- Collect everything conn reads until EOF; returns a function giving
-- (data, eof).
local function collect(conn)
  local got, eof = {}, false
  conn:read_start(function(err, data)
    assert(err == nil, err)
    if data then got[#got + 1] = data else eof = true end
  end)
  return function() return table.concat(got), eof end
end

-- The call raises an error that names a bad argument ("bad argument #n"
-- or, for a method's self, "bad self").
local function raises(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "call did not raise")
  err = tostring(err)
  assert.is_truthy(err:find("bad argument", 1, true) or
                   err:find("bad self", 1, true), err)
  return err
end

describe("uv stream", function()
  after_each(assert_clean)

  it("cancels queued write, shutdown and connect requests on close",
     function()
    local server = uv.new_tcp()
    assert(server:bind("127.0.0.1", 0))
    assert(server:listen(4, function() end))
    local client = uv.new_tcp()
    local seen = {}
    local function record(what)
      return expect(function(err) seen[#seen + 1] = what .. ":" ..
                                     tostring(err) end)
    end
    assert.equal(0, client:connect("127.0.0.1", server:getsockname().port,
                                   record("connect")))
    -- still connecting: the write is queued, not tried
    assert.equal(0, client:write("queued", record("write")))
    assert.equal(0, client:shutdown(record("shutdown")))
    client:close()
    server:close()
    run_loop(function() return #seen == 3 end)
    table.sort(seen)
    assert.same({"connect:ECANCELED", "shutdown:ECANCELED",
                 "write:ECANCELED"}, seen)
  end)

  it("never calls back after a call that failed", function()
    local t = uv.new_tcp("inet")
    -- not connected: shutdown, read_start and write fail at once
    local r = {t:shutdown(expect(nil, 0))}
    assert.same({nil, "ENOTCONN: socket is not connected", "ENOTCONN"}, r)
    assert.equal("ENOTCONN", select(3, t:read_start(expect(nil, 0))))
    assert.equal("EPIPE", select(3, t:write("x", expect(nil, 0))))
    -- an address of the wrong family for this socket
    assert.is_nil((t:connect("::1", 1, expect(nil, 0))))
    local p = uv.new_pipe(false)
    assert.equal("EINVAL", select(3, p:listen(1, expect(nil, 0))))
    local a, b = tcp_pair()
    assert.equal("EINVAL", select(3, a:write2("x", b, expect(nil, 0))))
    -- let any wrongly queued callback show itself
    local tick = uv.new_timer()
    local ticked = false
    tick:start(20, 0, function() ticked = true; tick:close() end)
    run_loop(function() return ticked end)
    t:close(); p:close(); a:close(); b:close()
  end)

  it("runs a write callback from the loop, never from inside write",
     function()
    local a, b = tcp_pair()
    local read = collect(b)
    local inside, order = true, {}
    -- fully written at once by uv_try_write, yet the callback waits
    assert.equal(0, a:write("now", function(err)
      order[#order + 1] = {err = err, inside = inside}
    end))
    assert.equal(0, a:write({}, function(err)
      order[#order + 1] = {err = err, inside = inside, empty = true}
    end))
    assert.equal(0, a:write("", expect()))
    inside = false
    run_loop(function() return #order == 2 and read() == "now" end)
    assert.same({{inside = false}, {inside = false, empty = true}}, order)
    a:close(); b:close()
  end)

  it("writes arrays of strings in order, anchored until written",
     function()
    local a, b = tcp_pair()
    local read = collect(b)
    local parts, want = {}, {}
    for i = 1, 40 do -- more than fit the C stack array
      parts[i] = ("<%d>"):format(i) .. ("."):rep(i * 997)
      want[i] = parts[i]
    end
    want = table.concat(want)
    local big = ("z"):rep(8 * 1024 * 1024) -- fills the socket: queues
    local done = 0
    a:write(big, function() done = done + 1 end)
    a:write(parts, function(err) assert(err == nil, err); done = done + 1 end)
    -- the caller's table may change at once: what was passed is written
    for i = 1, #parts do parts[i] = nil end
    collectgarbage()
    a:shutdown()
    run_loop(function() local _, eof = read(); return eof and done == 2 end)
    local data = read()
    assert.equal(#big + #want, #data)
    assert.is_true(data:sub(#big + 1) == want)
    a:close(); b:close()
  end)

  it("reports readable/writable and sets blocking mode", function()
    local a, b = tcp_pair()
    assert.is_true(a:is_readable())
    assert.is_true(uv.is_writable(a))
    assert.equal(0, a:set_blocking(false))
    assert.equal(0, uv.stream_set_blocking(a, false))
    local lone = uv.new_tcp()
    assert.is_false(lone:is_readable())
    assert.is_false(uv.is_writable(lone))
    assert.equal(0, lone:get_write_queue_size())
    a:close(); b:close(); lone:close()
  end)

  it("delivers EOF as a callback without arguments", function()
    local a, b = tcp_pair()
    local args
    b:read_start(function(...) args = table.pack(...) end)
    a:shutdown()
    run_loop(function() return args end)
    assert.equal(0, args.n)
    assert.equal(0, b:read_stop())
    assert.equal(0, uv.read_stop(b)) -- stopping twice is fine
    a:close(); b:close()
  end)

  it("raises on wrong arguments to every stream function", function()
    local timer = uv.new_timer()
    local tcp = uv.new_tcp()
    local closed = uv.new_tcp()
    closed:close()
    uv.run("nowait") -- closed, not closing: a closing stream answers as luv
    local ipc = uv.new_pipe(true)
    local fn = function() end
    -- first argument: none, nil, wrong types, another handle type, closed
    local names = {"listen", "accept", "read_start", "read_stop", "write",
                   "write2", "try_write", "try_write2", "shutdown",
                   "is_readable", "is_writable",
                   "stream_get_write_queue_size", "stream_set_blocking"}
    for _, name in ipairs(names) do
      local f = uv[name]
      assert.is_function(f, name)
      raises(f)
      raises(f, nil)
      raises(f, 42)
      raises(f, "tcp")
      raises(f, {})
      raises(f, timer)
      local msg = raises(f, closed, 1, fn)
      assert.matches("closed", msg)
    end
    -- the other arguments
    raises(uv.listen, tcp)
    raises(uv.listen, tcp, "x", fn)
    raises(uv.listen, tcp, -1, fn)
    raises(uv.listen, tcp, 2 ^ 40, fn)
    raises(uv.listen, tcp, 1.5, fn)
    raises(uv.listen, tcp, 1)
    raises(uv.listen, tcp, 1, 5)
    raises(uv.accept, tcp)
    raises(uv.accept, tcp, timer)
    raises(uv.accept, tcp, closed)
    raises(uv.read_start, tcp)
    raises(uv.read_start, tcp, "f")
    local bad = {n = 6, nil, 5, true, {1}, {"a", {}}, {"a", false}}
    for i = 1, bad.n do
      local data = bad[i]
      raises(uv.write, tcp, data)
      raises(uv.try_write, tcp, data)
      raises(uv.write2, ipc, data, tcp)
      raises(uv.try_write2, ipc, data, tcp)
    end
    raises(uv.write, tcp, "x", 5)
    raises(uv.write, tcp, "x", {})
    raises(uv.write2, ipc, "x")
    raises(uv.write2, ipc, "x", timer)
    raises(uv.write2, ipc, "x", closed)
    raises(uv.write2, ipc, "x", tcp, "cb")
    raises(uv.try_write2, ipc, "x", nil)
    raises(uv.shutdown, tcp, 5)
    raises(uv.stream_set_blocking, tcp)
    raises(uv.stream_set_blocking, tcp, 1)
    -- method forms name the argument without self
    assert.matches("bad argument #1 to 'write'",
                   raises(function() return tcp:write(5) end))
    assert.matches("bad self",
                   raises(function() return closed:write("x") end))
    raises(function() return tcp:listen(-5, fn) end)
    raises(function() return tcp:set_blocking("yes") end)
    -- nothing is broken: the loop still runs callbacks
    local fired = false
    timer:start(1, 0, function() fired = true end)
    run_loop(function() return fired end)
    timer:close(); tcp:close(); ipc:close()
  end)

  it("writes an array of more than 16 strings with no callback", function()
    -- (such an array is laid out in a buffer pushed on the stack: it must
    -- not be taken for the missing callback argument)
    local client, conn = tcp_pair()
    local got = collect(conn)
    local parts = {}
    for i = 1, 101 do parts[i] = string.char(64 + i % 26):rep(100) end
    assert.equal(0, client:write(parts))
    assert.equal(0, uv.write(client, parts))
    assert.equal(0, client:write(parts, nil))
    client:shutdown()
    local want = table.concat(parts):rep(3)
    run_loop(function() local _, eof = got(); return eof end)
    assert.equal(#want, #(got()))
    client:close(); conn:close()
  end)
end)
