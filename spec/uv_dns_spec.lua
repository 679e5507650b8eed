-- Name look-ups: getaddrinfo/getnameinfo (bindings/dns.c) and the netdb
-- calls libuv lacks (bindings/netdb.c).
local uv = require "uv"

local function raises(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, err)
end

-- The addresses of a result list, as a set.
local function addrs(list)
  local set = {}
  for _, e in ipairs(list) do set[e.addr] = true end
  return set
end

describe("uv.getaddrinfo", function()
  after_each(assert_clean)

  it("resolves numeric hosts synchronously", function()
    local r = assert(uv.getaddrinfo("127.0.0.1", "80", {socktype = "stream"}))
    assert.equal(1, #r)
    assert.same(r, assert(uv.getaddrinfo("127.0.0.1", 80,
                                         {socktype = "stream"})))
    assert.same({addr = "127.0.0.1", port = 80, family = "inet",
                 socktype = "stream", protocol = "tcp"}, r[1])
    r = assert(uv.getaddrinfo("::1", nil, {family = "inet6",
                                           socktype = "dgram"}))
    assert.equal("::1", r[1].addr)
    assert.equal("inet6", r[1].family)
    assert.equal("udp", r[1].protocol)
    assert.is_nil(r[1].port) -- no service, no port (as luv)
  end)

  it("resolves localhost, with a service name", function()
    local r = assert(uv.getaddrinfo("localhost", "http",
                                    {socktype = "stream"}))
    assert.is_true(#r >= 1)
    local set = addrs(r)
    assert.is_true(set["127.0.0.1"] or set["::1"] or false)
    for _, e in ipairs(r) do
      assert.equal(80, e.port)
      assert.equal("stream", e.socktype)
    end
    local v4 = assert(uv.getaddrinfo("localhost", nil, {family = "inet"}))
    for _, e in ipairs(v4) do assert.equal("inet", e.family) end
  end)

  it("takes every hint flag, numbers as well as names", function()
    local r = assert(uv.getaddrinfo("127.0.0.1", "7", {
      family = 2, socktype = 2, protocol = "udp", numerichost = true,
      numericserv = true, canonname = true, addrconfig = false,
      v4mapped = false, all = false, passive = false}))
    assert.equal("dgram", r[1].socktype)
    assert.equal(7, r[1].port)
    assert.equal("127.0.0.1", r[1].canonname)
    -- passive with no host: the any-address
    r = assert(uv.getaddrinfo(nil, "9", {family = "inet", passive = true,
                                         socktype = "stream"}))
    assert.equal("0.0.0.0", r[1].addr)
    -- numerichost refuses a name without asking anyone
    local ok, msg, name = uv.getaddrinfo("localhost", nil,
                                         {numerichost = true})
    assert.is_nil(ok)
    assert.equal("EAI_NONAME", name)
    assert.matches("^EAI_NONAME: ", msg)
  end)

  it("runs asynchronously with a callback", function()
    local results = {}
    local function cb(name)
      return function(err, res) results[name] = {err = err, res = res} end
    end
    local req = uv.getaddrinfo("127.0.0.1", nil, {family = "inet"}, cb("v4"))
    assert.equal("getaddrinfo", uv.req_get_type(req))
    assert.equal("getaddrinfo",
                 uv.getaddrinfo("::1", nil, nil, cb("v6")):get_type())
    assert.equal("getaddrinfo",
                 uv.getaddrinfo("localhost", nil, nil, cb("local")):get_type())
    run_loop(function()
      return results.v4 and results.v6 and results["local"]
    end)
    assert.is_nil(results.v4.err)
    assert.equal("127.0.0.1", results.v4.res[1].addr)
    assert.is_nil(results.v6.err)
    assert.is_true(addrs(results.v6.res)["::1"])
    assert.is_nil(results["local"].err)
    assert.is_true(#results["local"].res >= 1)
  end)

  it("fails promptly for a name that cannot resolve", function()
    -- the suite runs in a private network namespace: no DNS server
    local t0 = uv.hrtime()
    local ok, msg, name = uv.getaddrinfo("nonexistent.invalid")
    local secs = (uv.hrtime() - t0) / 1e9
    assert.is_nil(ok)
    assert.is_string(name)
    assert.matches("^EAI_", name)
    assert.matches("^" .. name .. ": ", msg)
    assert.is_true(secs < 3, ("took %.2fs"):format(secs))
    -- and through the callback
    local err, res
    t0 = uv.hrtime()
    assert(uv.getaddrinfo("nonexistent.invalid", nil, nil,
                          function(e, r) err, res = e or "none", r end))
    run_loop(function() return err end, 5)
    secs = (uv.hrtime() - t0) / 1e9
    assert.matches("^EAI_", err)
    assert.is_nil(res)
    assert.is_true(secs < 3, ("took %.2fs"):format(secs))
  end)

  it("leaves a pending request to complete at shutdown", function()
    -- a separate host process exits while the look-up is in flight
    local out, err, code = run_host({"-e", [[
      local uv = require "uv"
      uv.getaddrinfo("localhost", nil, nil, function(e, r)
        print("done", e, type(r))
      end)
      uv.getnameinfo({ip = "127.0.0.1"}, function(e, h)
        print("name", e, h)
      end)]]})
    assert.equal(0, code, err)
    assert.matches("done\tnil\ttable", out)
    assert.matches("name\tnil\t", out)
  end)

  it("raises on wrong arguments", function()
    raises("bad argument #1 .*host or service", uv.getaddrinfo)
    raises("bad argument #1 .*host or service", uv.getaddrinfo, nil, nil)
    raises("bad argument #1 .*string expected", uv.getaddrinfo, {})
    raises("bad argument #2 .*string, port number or nil expected",
           uv.getaddrinfo, "x", {})
    raises("bad argument #2 .*out of range", uv.getaddrinfo, "x",
           math.mininteger)
    raises("bad argument #2 .*integer", uv.getaddrinfo, "x", 0.5)
    raises("bad argument #2 .*empty", uv.getaddrinfo, "x", "")
    raises("bad argument #3 .*table expected", uv.getaddrinfo, "x", nil, 1)
    raises("bad argument #3 .*family", uv.getaddrinfo, "x", nil,
           {family = "bogus"})
    raises("bad argument #3 .*family", uv.getaddrinfo, "x", nil,
           {family = -1})
    raises("bad argument #3 .*socktype", uv.getaddrinfo, "x", nil,
           {socktype = true})
    raises("bad argument #3 .*socktype", uv.getaddrinfo, "x", nil,
           {socktype = 2^40})
    raises("bad argument #3 .*protocol", uv.getaddrinfo, "x", nil,
           {protocol = "nope"})
    raises("bad argument #3 .*passive", uv.getaddrinfo, "x", nil,
           {passive = 1})
    raises("bad argument #4 .*function expected", uv.getaddrinfo, "x",
           nil, nil, 42)
  end)
end)

describe("uv.getnameinfo", function()
  after_each(assert_clean)

  it("with no ip and no family fails EINVAL, as luv", function()
    assert.same({nil, "EINVAL: invalid argument", "EINVAL"},
      {uv.getnameinfo({})})
  end)

  it("names 127.0.0.1 and a port, sync and async", function()
    local host, service = uv.getnameinfo({ip = "127.0.0.1", port = 80})
    assert.is_string(host)
    assert.is_true(host == "localhost" or host:match("^localhost") ~= nil
                   or host == "127.0.0.1", host)
    assert.equal("http", service)
    local got
    local req = uv.getnameinfo({ip = "127.0.0.1", port = 22,
                                family = "inet"}, function(...)
      got = table.pack(...)
    end)
    assert.equal("getnameinfo", req:get_type())
    run_loop(function() return got end)
    assert.is_nil(got[1])
    assert.equal(host, got[2])
    assert.equal("ssh", got[3])
  end)

  it("keeps an ip made by __index alive while it is read", function()
    -- made at run time: no constant holds it (short strings are interned)
    local function ip() return string.format("%d.%d.%d.%d", 999, 0, 0, 1) end
    local keep
    local addr = setmetatable({}, {__index = function(_, k)
      if k == "ip" then return ip() end
      if k == "port" then -- collect the ip string, reuse its memory
        collectgarbage(); collectgarbage()
        keep = {}
        for i = 1, 5000 do
          keep[i] = string.format("%d.%d.%d.%d", 10, 99, 8, i % 10)
        end
      end
    end})
    local ok, err = pcall(uv.getnameinfo, addr)
    assert.is_false(ok)
    assert.matches("invalid IP address '999%.0%.0%.1'", err)
    assert.equal(5000, #keep)
  end)

  -- An address /etc/hosts may not name goes to DNS, which this network
  -- namespace lacks: a name, or an EAI_ error, never a hang.
  local function name_or_eai(ok, second, third)
    if ok == nil then
      assert.matches("^EAI_", third)
      assert.matches("^" .. third .. ": ", second)
    else
      assert.is_string(ok)
      assert.is_string(second)
    end
  end

  it("names ::1 and the any-addresses, or fails with EAI_", function()
    name_or_eai(uv.getnameinfo({ip = "::1", port = 22}))
    name_or_eai(uv.getnameinfo({family = "inet"}))
    name_or_eai(uv.getnameinfo({family = "inet6", port = 0}))
    local got
    assert.equal("getnameinfo", uv.getnameinfo({ip = "::1", family = "inet6"},
                 function(...) got = table.pack(...) end):get_type())
    run_loop(function() return got end)
    if got[1] then
      assert.matches("^EAI_", got[1])
      assert.is_nil(got[2])
    else
      assert.is_string(got[2])
    end
  end)

  it("raises on wrong arguments", function()
    raises("bad argument #1 .*table expected", uv.getnameinfo)
    raises("bad argument #1 .*table expected", uv.getnameinfo, "127.0.0.1")
    raises("bad argument #1 .*'ip'", uv.getnameinfo, {ip = 1})
    raises("bad argument #1 .*invalid IP", uv.getnameinfo, {ip = "x"})
    raises("bad argument #1 .*invalid IP", uv.getnameinfo,
           {ip = "::1", family = "inet"})
    raises("bad argument #1 .*'port'", uv.getnameinfo, {port = 65536})
    raises("bad argument #1 .*'port'", uv.getnameinfo, {port = -1})
    raises("bad argument #1 .*'port'", uv.getnameinfo, {port = "80"})
    raises("bad argument #1 .*'family'", uv.getnameinfo, {family = "unix"})
    raises("bad argument #1 .*'family'", uv.getnameinfo, {family = {}})
    raises("bad argument #2 .*function expected", uv.getnameinfo,
           {ip = "127.0.0.1"}, "cb")
  end)
end)

describe("uv netdb", function()
  after_each(assert_clean)

  it("looks up services both ways", function()
    local s = assert(uv.getservbyname("http", "tcp"))
    assert.equal(80, s.port)
    assert.equal("http", s.name)
    assert.equal("tcp", s.proto)
    assert.is_table(s.aliases)
    s = assert(uv.getservbyname("domain"))
    assert.equal(53, s.port)
    s = assert(uv.getservbyport(80))
    assert.equal("http", s.name)
    s = assert(uv.getservbyport(53, "udp"))
    assert.equal("domain", s.name)
    assert.equal("udp", s.proto)
    -- an alias finds the service too
    local www = uv.getservbyname("www", "tcp")
    if www then assert.equal(80, www.port) end
  end)

  it("looks up protocols both ways", function()
    local p = assert(uv.getprotobyname("tcp"))
    assert.equal(6, p.proto)
    assert.equal("tcp", p.name)
    assert.same({"TCP"}, p.aliases)
    assert.equal("tcp", uv.getprotobynumber(6).name)
    assert.equal(17, uv.getprotobyname("udp").proto)
    assert.equal("udp", uv.getprotobynumber(17).name)
  end)

  it("returns fail for unknown services and protocols", function()
    local ok, msg, name = uv.getservbyname("no-such-service")
    assert.is_nil(ok)
    assert.equal("EAI_NONAME", name)
    assert.matches("^EAI_NONAME: ", msg)
    ok, msg, name = uv.getservbyname("http", "sctpx")
    assert.is_nil(ok)
    assert.equal("EAI_NONAME", name)
    ok, _, name = uv.getservbyport(1, "udp") -- tcpmux is tcp only
    if ok == nil then assert.equal("EAI_NONAME", name) end
    ok, msg, name = uv.getprotobyname("no-such-protocol")
    assert.is_nil(ok)
    assert.equal("EAI_PROTOCOL", name)
    assert.matches("^EAI_PROTOCOL: ", msg)
    ok, _, name = uv.getprotobynumber(254)
    assert.is_nil(ok)
    assert.equal("EAI_PROTOCOL", name)
  end)

  it("raises on wrong arguments", function()
    raises("bad argument #1 .*string expected", uv.getservbyname)
    raises("bad argument #1 .*string expected", uv.getservbyname, {})
    raises("bad argument #2 .*string expected", uv.getservbyname, "http",
           {})
    raises("bad argument #1 .*number expected", uv.getservbyport)
    raises("bad argument #1 .*number expected", uv.getservbyport, "http")
    raises("bad argument #1 .*out of range", uv.getservbyport, 65536)
    raises("bad argument #1 .*out of range", uv.getservbyport, -1)
    raises("bad argument #1 .*integer", uv.getservbyport, 80.5)
    raises("bad argument #2 .*string expected", uv.getservbyport, 80, true)
    raises("bad argument #1 .*string expected", uv.getprotobyname)
    raises("bad argument #1 .*number expected", uv.getprotobynumber)
    raises("bad argument #1 .*out of range", uv.getprotobynumber, 256)
    raises("bad argument #1 .*out of range", uv.getprotobynumber, -6)
    raises("bad argument #1 .*out of range", uv.getprotobynumber, 2^53)
  end)
end)
