-- uv UDP: luv's udp API on loopback, ephemeral ports.
local uv = require "uv"

-- A UDP socket bound to host port 0, with its port read back.
local function bound(host, family)
  local u = assert(uv.new_udp(family))
  assert(u:bind(host or "127.0.0.1", 0))
  return u, u:getsockname().port
end

-- Start receiving on u into a list of {err, data, addr, flags}.
local function collect(u)
  local got = {}
  assert(u:recv_start(function(err, data, addr, flags)
    got[#got + 1] = {err = err, data = data, addr = addr, flags = flags}
  end))
  return got
end

describe("uv udp", function()
  after_each(assert_clean)

  it("sends and receives with the sender's address", function()
    local a, aport = bound()
    local b, bport = bound()
    local got = collect(a)
    local sent
    assert.equal(0, b:send("hello", "127.0.0.1", aport, expect(function(err)
      sent = err or "ok"
    end)))
    run_loop(function() return sent and #got >= 1 end)
    assert.equal("ok", sent)
    assert.is_nil(got[1].err)
    assert.equal("hello", got[1].data)
    assert.same({ip = "127.0.0.1", port = bport, family = "inet"},
                got[1].addr)
    assert.is_nil(got[1].flags.partial)
    a:close()
    b:close()
  end)

  it("sends an array of strings as one datagram", function()
    local a, aport = bound()
    local got = collect(a)
    local parts = {"ab", "", "cd", ("x"):rep(1000)}
    assert(a:send(parts, "127.0.0.1", aport, expect()))
    parts[1] = nil -- the request holds its own anchor
    collectgarbage()
    run_loop(function() return #got >= 1 end)
    assert.equal("abcd" .. ("x"):rep(1000), got[1].data)
    a:close()
  end)

  it("sends and receives over IPv6 loopback", function()
    local a, aport = bound("::1")
    local b, bport = bound("::1")
    local got = collect(a)
    assert(uv.udp_send(b, "six", "::1", aport))
    run_loop(function() return #got >= 1 end)
    assert.equal("six", got[1].data)
    assert.same({ip = "::1", port = bport, family = "inet6"}, got[1].addr)
    a:close()
    b:close()
  end)

  it("try_send sends at once and returns the byte count", function()
    local a, aport = bound()
    local b = bound()
    local got = collect(a)
    assert.equal(5, b:try_send("quick", "127.0.0.1", aport))
    assert.equal(4, uv.udp_try_send(b, {"qu", "ik"}, "127.0.0.1", aport))
    run_loop(function() return #got >= 2 end)
    assert.equal("quick", got[1].data)
    assert.equal("quik", got[2].data)
    a:close()
    b:close()
  end)

  it("receives an empty datagram as an empty string", function()
    local a, aport = bound()
    local got = collect(a)
    assert(a:send("", "127.0.0.1", aport))
    run_loop(function() return #got >= 1 end)
    assert.equal("", got[1].data)
    a:close()
  end)

  it("receives the largest datagram whole, not partial", function()
    -- Receive slots are 64 KiB and no UDP payload exceeds 65507 bytes
    -- (IPv4), so a datagram is never truncated: check the largest.
    local a, aport = bound()
    local got = collect(a)
    local big = ("z"):rep(65507)
    local err
    assert(a:send(big, "127.0.0.1", aport, function(e) err = e or "ok" end))
    run_loop(function() return err and (#got >= 1 or err ~= "ok") end)
    assert.equal("ok", err)
    assert.equal(#big, #got[1].data)
    assert.is_nil(got[1].flags.partial)
    -- one byte more is refused by the OS, reported through the callback
    local err2
    assert(a:send(big .. "z", "127.0.0.1", aport, function(e) err2 = e end))
    run_loop(function() return err2 end)
    assert.equal("EMSGSIZE", err2)
    a:close()
  end)

  it("receives several datagrams per call with mmsgs", function()
    local a = assert(uv.new_udp({family = "inet", mmsgs = 8}))
    assert(a:bind("127.0.0.1", 0))
    local aport = a:getsockname().port
    local b = bound()
    local got = collect(a)
    for i = 1, 5 do assert(b:try_send("m" .. i, "127.0.0.1", aport)) end
    run_loop(function() return #got >= 5 end)
    local seen = {}
    for i = 1, 5 do seen[got[i].data] = true end
    for i = 1, 5 do assert.is_true(seen["m" .. i]) end
    assert.is_true(got[1].flags.mmsg_chunk) -- recvmmsg on Linux
    a:close()
    b:close()
  end)

  it("connects: send without address, getpeername, disconnect", function()
    local a, aport = bound()
    local b, bport = bound()
    local got = collect(a)
    assert.equal(0, b:connect("127.0.0.1", aport))
    assert.same({ip = "127.0.0.1", port = aport, family = "inet"},
                b:getpeername())
    local sent
    assert(b:send("via connect", nil, nil, function(err)
      sent = err or "ok"
    end))
    run_loop(function() return sent end)
    assert.equal("ok", sent)
    assert.equal(11, b:try_send("try connect"))
    run_loop(function() return #got >= 2 end)
    assert.equal("via connect", got[1].data)
    assert.equal(bport, got[1].addr.port)
    assert.equal("try connect", got[2].data)
    -- a connected socket refuses another destination
    local _, _, name = b:try_send("x", "127.0.0.1", bport)
    assert.equal("EISCONN", name)
    assert.equal(0, b:connect(nil))
    local ok, msg, ename = b:getpeername()
    assert.is_nil(ok)
    assert.equal("ENOTCONN", ename)
    assert.matches("^ENOTCONN: ", msg)
    a:close()
    b:close()
  end)

  it("recv_stop stops the callbacks", function()
    local a, aport = bound()
    local got = collect(a)
    assert.is_true(a:is_active())
    assert.equal(0, a:recv_stop())
    assert.is_false(a:is_active())
    assert(a:try_send("late", "127.0.0.1", aport))
    local t = uv.new_timer()
    local fired
    t:start(30, 0, function() fired = true end)
    run_loop(function() return fired end)
    t:close()
    assert.equal(0, #got)
    a:close()
  end)

  it("reports the send queue and cancels sends on close", function()
    local a = bound()
    assert.equal(0, a:get_send_queue_size())
    assert.equal(0, uv.udp_get_send_queue_count(a))
    local b, bport = bound()
    local errs = {}
    -- queued sends whose handle closes before the loop runs
    for i = 1, 3 do
      assert(a:send("q" .. i, "127.0.0.1", bport, function(err)
        errs[#errs + 1] = err or "ok"
      end))
    end
    a:close()
    b:close()
    run_loop(function() return #errs == 3 end)
    for i = 1, 3 do
      assert.is_true(errs[i] == "ok" or errs[i] == "ECANCELED")
    end
  end)

  it("sets broadcast, ttl, multicast ttl and loop", function()
    local a = bound()
    assert.equal(0, a:set_broadcast(true))
    assert.is_true(a:getopt("broadcast"))
    assert.equal(0, a:set_broadcast(false))
    assert.is_false(a:getopt("broadcast"))
    assert.equal(0, a:set_ttl(17))
    assert.equal(17, a:getopt("ttl"))
    assert.equal(0, a:set_multicast_ttl(3))
    assert.equal(3, a:getopt("multicast_ttl"))
    assert.equal(0, a:set_multicast_loop(false))
    assert.is_false(a:getopt("multicast_loop"))
    assert.equal(0, a:set_multicast_interface("127.0.0.1"))
    a:close()
  end)

  it("joins a multicast group on loopback and hears itself", function()
    local a = assert(uv.new_udp("inet"))
    assert(a:bind("0.0.0.0", 0, {reuseaddr = true}))
    local port = a:getsockname().port
    local group = "239.255.77.77"
    local ok, msg = a:set_membership(group, "127.0.0.1", "join")
    if not ok then
      a:close()
      pending("kernel refused a multicast join on loopback: " .. msg)
      return
    end
    assert(a:set_multicast_interface("127.0.0.1"))
    assert(a:set_multicast_loop(true))
    local got = collect(a)
    local sent
    assert(a:send("to the group", group, port, function(err)
      sent = err or "ok"
    end))
    local t = uv.new_timer()
    local timeout
    t:start(2000, 0, function() timeout = true end)
    run_loop(function() return #got >= 1 or timeout end)
    t:close()
    if #got == 0 then
      a:close()
      pending("joined, but no multicast route on loopback here (send: " ..
              tostring(sent) .. ")")
      return
    end
    assert.equal("to the group", got[1].data)
    assert.equal(0, a:set_membership(group, "127.0.0.1", "leave"))
    -- source-specific membership: join and leave again
    local sok, smsg = a:set_source_membership(group, "127.0.0.1",
                                              "127.0.0.1", "join")
    if sok then
      assert.equal(0, a:set_source_membership(group, "127.0.0.1",
                                              "127.0.0.1", "leave"))
    else
      assert.matches("^E", smsg)
    end
    a:close()
  end)

  it("creates the socket at once with a family, lazily without", function()
    local lazy = uv.new_udp()
    local _, _, name = lazy:getsockname()
    assert.equal("EBADF", name)
    local now = uv.new_udp("inet6")
    assert.equal("inet6", now:getsockname().family)
    local n = uv.new_udp({family = "inet"})
    assert.equal("inet", n:getsockname().family)
    lazy:close()
    now:close()
    n:close()
  end)

  it("binds with reuseaddr and ipv6only; reports EADDRINUSE", function()
    local a = assert(uv.new_udp())
    assert(a:bind("::1", 0, {ipv6only = true}))
    assert.is_true(a:getopt("v6only"))
    local port = a:getsockname().port
    local b = uv.new_udp()
    local ok, msg, name = b:bind("::1", port)
    assert.is_nil(ok)
    assert.equal("EADDRINUSE", name)
    assert.matches("^EADDRINUSE: ", msg)
    local c = uv.new_udp()
    assert(c:bind("127.0.0.1", 0, {reuseaddr = true}))
    assert.is_true(c:getopt("reuseaddr"))
    a:close()
    b:close()
    c:close()
  end)

  it("open refuses an fd in use or not open", function()
    local a = bound()
    collect(a) -- the fd is now watched by the loop
    local b = uv.new_udp()
    local ok, _, name = b:open(a:fileno())
    assert.is_nil(ok)
    assert.equal("EEXIST", name)
    ok, _, name = b:open(a:fileno()) -- held even while not watched
    a:recv_stop()
    ok, _, name = b:open(a:fileno())
    assert.is_nil(ok)
    assert.equal("EEXIST", name)
    ok, _, name = b:open(999999)
    assert.is_nil(ok)
    assert.equal("EBADF", name)
    a:close()
    b:close()
  end)

  it("has a __tostring and closes twice harmlessly", function()
    local u = uv.new_udp()
    assert.matches("^uv_udp: ", tostring(u))
    assert.equal("udp", u:get_type())
    u:close()
    u:close()
    run_loop(function() return not pcall(u.getsockname, u) end)
  end)
end)

describe("uv udp wrong arguments", function()
  after_each(assert_clean)

  -- pcall(f, h, ...) is not a method call: argument numbers count h.
  local function raises(pattern, f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    assert.matches(pattern, err)
  end

  it("new_udp", function()
    raises("bad argument #1 .*'unix'", uv.new_udp, "unix")
    raises("bad argument #1 .*'bogus'", uv.new_udp, "bogus")
    raises("bad argument #1 .*got boolean", uv.new_udp, true)
    raises("bad argument #1 .*mmsgs", uv.new_udp, {mmsgs = 0})
    raises("bad argument #1 .*mmsgs", uv.new_udp, {mmsgs = 1e9})
    raises("bad argument #1 .*mmsgs", uv.new_udp, {mmsgs = "2"})
    raises("bad argument #1", uv.new_udp, {family = {}})
    raises("bad argument #1", uv.new_udp, 12345)
    raises("bad argument #1", uv.new_udp, -1)
  end)

  it("every method with no handle, a timer, a closed handle", function()
    local t = uv.new_timer()
    local closed = uv.new_udp()
    closed:close()
    for _, name in ipairs{"udp_bind", "udp_connect", "udp_getsockname",
        "udp_getpeername", "udp_open", "udp_send", "udp_try_send",
        "udp_recv_start", "udp_recv_stop", "udp_set_broadcast",
        "udp_set_ttl", "udp_set_multicast_ttl", "udp_set_multicast_loop",
        "udp_set_multicast_interface", "udp_set_membership",
        "udp_set_source_membership", "udp_get_send_queue_size",
        "udp_get_send_queue_count"} do
      local f = uv[name]
      assert.is_function(f, name)
      raises("bad argument #1 .*uv handle expected", f)
      raises("bad argument #1 .*uv handle expected", f, 42)
      raises("bad argument #1 .*uv_udp expected, got uv_timer", f, t)
      raises("bad argument #1 .*closed handle", f, closed)
    end
    t:close()
  end)

  it("bind, connect, open", function()
    local u = uv.new_udp()
    raises("bad argument #2 .*string expected", u.bind, u)
    raises("bad argument #2 .*invalid IP address", u.bind, u, "nope", 0)
    raises("bad argument #3 .*number expected", u.bind, u, "127.0.0.1")
    raises("bad argument #3 .*out of range", u.bind, u, "127.0.0.1", 65536)
    raises("bad argument #3 .*out of range", u.bind, u, "127.0.0.1", -1)
    raises("bad argument #3", u.bind, u, "127.0.0.1", 2^63)
    raises("bad argument #4 .*table expected", u.bind, u, "127.0.0.1", 0, 1)
    raises("bad argument #4 .*reuseaddr", u.bind, u, "127.0.0.1", 0,
           {reuseaddr = "yes"})
    raises("bad argument #2 .*both", u.connect, u, nil, 5)
    raises("bad argument #3 .*both", u.connect, u, "127.0.0.1")
    raises("bad argument #2 .*invalid IP", u.connect, u, "localhost", 1)
    raises("bad argument #2 .*number expected", u.open, u)
    raises("bad argument #2 .*out of range", u.open, u, -1)
    raises("bad argument #2 .*out of range", u.open, u, 2^40)
    u:close()
  end)

  it("send and try_send", function()
    local u = uv.new_udp()
    raises("bad argument #2 .*string or array", u.send, u)
    raises("bad argument #2 .*string or array", u.send, u, 42,
           "127.0.0.1", 1)
    raises("bad argument #2 .*item 2", u.send, u, {"a", true},
           "127.0.0.1", 1)
    local many = {}
    for i = 1, 1025 do many[i] = "x" end
    raises("bad argument #2 .*too many", u.send, u, many, "127.0.0.1", 1)
    raises("bad argument #4 .*both", u.send, u, "x", "127.0.0.1")
    raises("bad argument #4 .*out of range", u.send, u, "x",
           "127.0.0.1", 70000)
    raises("bad argument #5 .*function expected", u.send, u, "x",
           "127.0.0.1", 1, 42)
    raises("bad argument #2 .*string or array", u.try_send, u, nil,
           "127.0.0.1", 1)
    raises("bad argument #3 .*invalid IP", u.try_send, u, "x", "::g", 1)
    -- not connected: send with no address fails, does not raise
    local ok, _, name = u:try_send("x")
    assert.is_nil(ok)
    assert.is_string(name)
    u:close()
  end)

  it("recv_start and the setters", function()
    local u = uv.new_udp("inet")
    raises("bad argument #2 .*function expected", u.recv_start, u)
    raises("bad argument #2 .*function expected", u.recv_start, u, "f")
    raises("bad argument #2 .*boolean expected", u.set_broadcast, u, 1)
    raises("bad argument #2 .*boolean expected", u.set_multicast_loop, u)
    raises("bad argument #2 .*out of range", u.set_ttl, u, 0)
    raises("bad argument #2 .*out of range", u.set_ttl, u, 256)
    raises("bad argument #2 .*number expected", u.set_ttl, u, "x")
    raises("bad argument #2 .*out of range", u.set_multicast_ttl, u, -1)
    raises("bad argument #2 .*out of range", u.set_multicast_ttl, u, 2^53)
    raises("bad argument #2 .*invalid IP", u.set_multicast_interface, u,
           "eth0")
    raises("bad argument #2 .*string expected", u.set_membership, u)
    raises("bad argument #2 .*invalid IP", u.set_membership, u, "x",
           "127.0.0.1", "join")
    raises("bad argument #3 .*invalid IP", u.set_membership, u,
           "239.1.1.1", "lo", "join")
    raises("bad argument #4 .*invalid option", u.set_membership, u,
           "239.1.1.1", nil, "enter")
    raises("bad argument #4 .*invalid IP", u.set_source_membership, u,
           "239.1.1.1", nil, "x", "join")
    raises("bad argument #5", u.set_source_membership, u,
           "239.1.1.1", nil, "127.0.0.1")
    u:close()
  end)

  it("leaves the loop usable", function()
    local fired = false
    local t = uv.new_timer()
    t:start(1, 0, function() fired = true end)
    run_loop(function() return fired end)
    t:close()
    assert.is_true(fired)
  end)
end)
