-- Named socket options (bindings/sockopt.c): h:setopt(name, value) and
-- h:getopt(name) on udp, tcp and pipe handles.
local uv = require "uv"
local lfs = require "lfs"

local function raises(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, err)
end

-- The fail triple of an option the protocol does not have: Linux says
-- ENOPROTOOPT or EOPNOTSUPP (libuv's ENOTSUP) depending on the option.
local function fails(ok, msg, ename)
  assert.is_nil(ok)
  assert.is_true(ename == "ENOPROTOOPT" or ename == "ENOTSUP",
                 tostring(ename))
  assert.matches("^" .. ename .. ": ", msg)
end

-- Set then read back; check(v) decides (default: equal to the value set).
local function roundtrip(h, name, value, check)
  assert.equal(0, h:setopt(name, value), name)
  local got = h:getopt(name)
  if check then
    assert.is_true(check(got), name .. ": got " .. tostring(got))
  else
    assert.same(value, got, name)
  end
end

local function at_least(n) return function(v) return v >= n end end

-- Options every IP socket has, set to a non-default value and back.
local function common_options(h)
  for _, name in ipairs{"reuseaddr", "reuseport", "keepalive",
                        "broadcast", "dontroute", "oobinline"} do
    roundtrip(h, name, true)
    roundtrip(h, name, false)
  end
  -- Linux doubles buffer sizes for its own bookkeeping
  roundtrip(h, "rcvbuf", 65536, at_least(65536))
  roundtrip(h, "sndbuf", 65536, at_least(65536))
  roundtrip(h, "rcvlowat", 3)
  roundtrip(h, "priority", 5)
  roundtrip(h, "ttl", 42)
  roundtrip(h, "tos", 16)
  roundtrip(h, "linger", {on = true, seconds = 7})
  assert.equal(0, h:setopt("linger", {true, 2}))
  assert.same({on = true, seconds = 2}, h:getopt("linger"))
  assert.equal(0, h:setopt("linger", false))
  assert.is_false(h:getopt("linger").on)
  -- the kernel keeps timeouts in clock ticks (up to 10 ms here)
  local function near(x)
    return function(v) return math.abs(v - x) < 0.011 end
  end
  roundtrip(h, "rcvtimeo", 1.5, near(1.5))
  roundtrip(h, "sndtimeo", 0.25, near(0.25))
  roundtrip(h, "rcvtimeo", 0)
  assert.equal(0, h:getopt("error"))
end

describe("uv socket options", function()
  after_each(assert_clean)

  it("udp: every option set and read back, typed", function()
    local u = assert(uv.new_udp("inet"))
    common_options(u)
    roundtrip(u, "multicast_ttl", 9)
    roundtrip(u, "multicast_loop", false)
    roundtrip(u, "multicast_loop", true)
    assert.equal("dgram", u:getopt("type"))
    assert.equal("inet", u:getopt("family"))
    assert.equal(17, u:getopt("protocol"))
    assert.is_false(u:getopt("acceptconn"))
    -- the same names through the module functions
    assert.equal(0, uv.setopt(u, "ttl", 33))
    assert.equal(33, uv.getopt(u, "ttl"))
    u:close()
  end)

  it("udp: TCP-only and IPv6-only options fail with the OS error", function()
    local u = assert(uv.new_udp("inet"))
    for _, name in ipairs{"nodelay", "cork", "quickack"} do
      fails(u:setopt(name, true))
    end
    for _, name in ipairs{"keepidle", "keepintvl", "keepcnt",
                          "user_timeout", "maxseg"} do
      fails(u:setopt(name, 10))
      fails(u:getopt(name))
    end
    local ok, _, name = u:setopt("v6only", true)
    assert.is_nil(ok)
    assert.is_string(name)
    u:close()
  end)

  it("udp over IPv6: ttl, tos, multicast map to the IPv6 options", function()
    local u = assert(uv.new_udp("inet6"))
    roundtrip(u, "v6only", true)
    roundtrip(u, "v6only", false)
    roundtrip(u, "ttl", 12)        -- IPV6_UNICAST_HOPS
    roundtrip(u, "tos", 32)        -- IPV6_TCLASS
    roundtrip(u, "multicast_ttl", 4)
    roundtrip(u, "multicast_loop", false)
    assert.equal("inet6", u:getopt("family"))
    u:close()
  end)

  it("tcp: keepalive tuning, nodelay, user_timeout, listening", function()
    local t = assert(uv.new_tcp("inet"))
    common_options(t)
    roundtrip(t, "nodelay", true)
    roundtrip(t, "nodelay", false)
    roundtrip(t, "keepidle", 30)
    roundtrip(t, "keepintvl", 5)
    roundtrip(t, "keepcnt", 4)
    roundtrip(t, "user_timeout", 2500)
    roundtrip(t, "cork", true)
    roundtrip(t, "cork", false)
    assert.equal(0, t:setopt("quickack", true))
    assert.is_boolean(t:getopt("quickack"))
    assert.equal(0, t:setopt("maxseg", 1200))
    assert.is_number(t:getopt("maxseg"))
    assert.equal("stream", t:getopt("type"))
    assert.equal(6, t:getopt("protocol"))
    assert.is_false(t:getopt("acceptconn"))
    assert(t:bind("127.0.0.1", 0))
    assert(t:listen(1, function() end))
    assert.is_true(t:getopt("acceptconn"))
    t:close()
  end)

  it("pipe: socket options of a unix socket; IP ones fail", function()
    local dir = tmpname()
    os.remove(dir)
    assert(lfs.mkdir(dir))
    local path = dir .. "/s"
    local p = uv.new_pipe()
    assert.equal(0, p:bind(path))
    roundtrip(p, "sndbuf", 32768, at_least(32768))
    roundtrip(p, "rcvbuf", 32768, at_least(32768))
    assert.equal("stream", p:getopt("type"))
    assert.equal("unix", p:getopt("family"))
    local ok, _, name = p:setopt("ttl", 5)
    assert.is_nil(ok)
    assert.is_string(name)
    ok, _, name = p:setopt("nodelay", true)
    assert.is_nil(ok)
    assert.is_string(name)
    p:close()
    run_loop(function() return p:is_closing() end)
    os.remove(path)
    assert(os.remove(dir))
  end)

  it("a handle without a socket fails EBADF and says how to get one", function()
    local u = uv.new_udp()
    local ok, msg, name = u:getopt("ttl")
    assert.is_nil(ok)
    assert.equal("EBADF", name)
    assert.matches('^EBADF: .*uv%.new_udp%("inet"%)', msg)
    ok, msg, name = u:setopt("ttl", 5)
    assert.is_nil(ok)
    assert.equal("EBADF", name)
    -- binding makes the socket
    assert(u:bind("127.0.0.1", 0))
    assert.equal(0, u:setopt("ttl", 5))
    u:close()
    local t = uv.new_tcp()
    ok, msg, name = t:getopt("nodelay")
    assert.equal("EBADF", name)
    assert.matches('uv%.new_tcp%("inet"%)', msg)
    t:close()
    local p = uv.new_pipe()
    ok, msg, name = p:getopt("sndbuf")
    assert.is_nil(ok)
    assert.equal("EBADF", name)
    assert.matches("bind, connect or open", msg)
    p:close()
  end)

  it("an unknown name raises and lists the valid names", function()
    local u = uv.new_udp("inet")
    local ok, err = pcall(u.setopt, u, "nodelayy", true)
    assert.is_false(ok)
    assert.matches("bad argument #2 .*unknown socket option 'nodelayy'", err)
    for _, name in ipairs{"reuseaddr", "reuseport", "keepalive", "keepidle",
        "keepintvl", "keepcnt", "nodelay", "rcvbuf", "sndbuf", "linger",
        "ttl", "tos", "v6only", "broadcast", "user_timeout", "rcvlowat",
        "rcvtimeo", "sndtimeo", "type", "error", "acceptconn"} do
      assert.truthy(err:find(name, 1, true), name .. " not listed")
    end
    raises("unknown socket option 'bogus'", u.getopt, u, "bogus")
    -- even on a handle with no socket, the name is checked first
    local lazy = uv.new_udp()
    raises("unknown socket option", lazy.getopt, lazy, "bogus")
    lazy:close()
    u:close()
  end)

  it("wrong value types and ranges raise naming the argument", function()
    local u = uv.new_udp("inet")
    raises("bad argument #3 .*boolean expected, got number",
           u.setopt, u, "reuseaddr", 1)
    raises("bad argument #3 .*boolean expected, got no value",
           u.setopt, u, "broadcast")
    raises("bad argument #3 .*number expected, got boolean",
           u.setopt, u, "rcvbuf", true)
    raises("bad argument #3 .*out of range", u.setopt, u, "rcvbuf", -1)
    raises("bad argument #3 .*out of range", u.setopt, u, "ttl", 2^40)
    raises("bad argument #3 .*integer", u.setopt, u, "ttl", 1.5)
    raises("bad argument #3 .*out of range %[1, 255%]", u.setopt, u, "ttl", 0)
    raises("bad argument #3 .*out of range %[0, 255%]", u.setopt, u,
           "multicast_ttl", 256)
    raises("bad argument #3 .*seconds", u.setopt, u, "rcvtimeo", "1")
    raises("bad argument #3 .*out of range", u.setopt, u, "rcvtimeo", -1)
    raises("bad argument #3 .*out of range", u.setopt, u, "sndtimeo",
           1 / 0)
    raises("bad argument #3 .*out of range", u.setopt, u, "sndtimeo",
           0 / 0)
    raises("bad argument #3 .*table", u.setopt, u, "linger", 5)
    raises("bad argument #3 .*table", u.setopt, u, "linger", true)
    raises("bad argument #3 .*'on'", u.setopt, u, "linger", {on = "yes"})
    raises("bad argument #3 .*'seconds'", u.setopt, u, "linger",
           {on = true, seconds = -2})
    raises("bad argument #2 .*read%-only", u.setopt, u, "type", "dgram")
    raises("bad argument #2 .*read%-only", u.setopt, u, "error", 0)
    raises("bad argument #2 .*string expected", u.setopt, u)
    raises("bad argument #2 .*string expected", u.getopt, u, {})
    u:close()
  end)

  it("wrong handles raise: none, timer, closed", function()
    local t = uv.new_timer()
    local closed = uv.new_udp("inet")
    closed:close()
    for _, f in ipairs{uv.setopt, uv.getopt} do
      raises("bad argument #1 .*uv handle expected", f)
      raises("bad argument #1 .*uv handle expected", f, "ttl")
      raises("bad argument #1 .*socket", f, t, "ttl", 1)
      raises("bad argument #1 .*closed handle", f, closed, "ttl", 1)
    end
    t:close()
    -- the loop still works
    local fired
    local t2 = uv.new_timer()
    t2:start(1, 0, function() fired = true end)
    run_loop(function() return fired end)
    t2:close()
  end)
end)
