--[[
luv's answers on a closing handle and the smaller differences from luv
(issue #12): an operation libuv refuses on a closing stream returns luv's
fail triple instead of raising (raising stays for wrong types and for
handles already closed); close_reset; fds from socketpair() and pipe()
opened as handles; os.exit(code, true) inside uv.run(); uv.constants;
getaddrinfo hints in upper case.
]]
local uv = require "uv"

-- A connected pair over loopback: calls fn(client, server_side).
local function with_pair(fn)
  local srv = uv.new_tcp()
  assert(srv:bind("127.0.0.1", 0))
  local port = srv:getsockname().port
  local peer
  assert(srv:listen(4, function(err)
    assert(not err, err)
    peer = uv.new_tcp()
    assert(srv:accept(peer))
  end))
  local client = uv.new_tcp()
  local connected = false
  client:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    connected = true
  end)
  run_loop(function() return connected and peer end)
  srv:close()
  fn(client, peer)
end

describe("uv on a closing handle", function()
  after_each(assert_clean)

  it("shutdown, writes, read_start answer with luv's fail triple", function()
    with_pair(function(client, peer)
      client:close()
      assert.is_true(client:is_closing())
      local function fails(code, ...)
        local ok, msg, name = ...
        assert.is_nil(ok)
        assert.equal(code, name)
        assert.truthy(msg:find("^" .. code .. ": "), msg)
      end
      fails("ENOTCONN", client:shutdown())
      fails("ENOTCONN", uv.shutdown(client, function() end))
      fails("EBADF", client:write("x"))
      fails("EBADF", client:write({"a", "b"}, function() end))
      fails("EBADF", client:try_write("x"))
      fails("EINVAL", client:read_start(function() end))
      fails("EBADF", client:close_reset())
      -- wrong types still raise on a closing handle
      assert.has_error(function() client:write(42) end)
      assert.has_error(function() client:read_start(42) end)
      peer:close()
      run_loop(function() return not pcall(client.shutdown, client) end)
      -- closed: raises
      local ok, err = pcall(client.shutdown, client)
      assert.is_false(ok)
      assert.truthy(err:find("attempt to use a closed handle", 1, true))
    end)
  end)

  it("close_reset after shutdown: EINVAL, the handle stays usable",
    function()
      with_pair(function(client, peer)
        local shut
        assert.equal(0, client:shutdown(function(err) shut = err or true end))
        local ok, msg, name = client:close_reset()
        assert.is_nil(ok)
        assert.equal("EINVAL", name)
        assert.equal("EINVAL: invalid argument", msg)
        assert.is_false(client:is_closing())
        run_loop(function() return shut end)
        client:close()
        peer:close()
      end)
    end)

  it("close_reset(cb): cb runs once closed, the peer reads ECONNRESET",
    function()
      with_pair(function(client, peer)
        local closed, peer_err = 0, nil
        peer:read_start(function(err) peer_err = err or "EOF" end)
        assert.equal(0, client:close_reset(function()
          closed = closed + 1
        end))
        assert.is_true(client:is_closing())
        run_loop(function() return closed == 1 and peer_err end)
        assert.equal("ECONNRESET", peer_err)
        peer:close()
        uv.run("nowait")
        assert.equal(1, closed)
      end)
    end)
end)

describe("uv fds opened as handles", function()
  after_each(assert_clean)

  local function round_trip(a_fd, b_fd)
    local a, b = uv.new_pipe(false), uv.new_pipe(false)
    assert.equal(0, a:open(a_fd))
    assert.equal(0, b:open(b_fd))
    local got, eof = {}, false
    b:read_start(function(err, data)
      assert.is_nil(err)
      if data then got[#got + 1] = data else eof = true end
    end)
    assert.equal(0, a:write("hello "))
    assert.equal(0, a:write({"over ", "fds"}))
    a:close() -- the writer goes: the reader sees EOF
    run_loop(function() return eof end)
    assert.equal("hello over fds", table.concat(got))
    b:close()
  end

  it("a socketpair: read, write, EOF", function()
    local fds = assert(uv.socketpair())
    round_trip(fds[1], fds[2])
  end)

  it("a pipe(): read, write, EOF", function()
    local fds = assert(uv.pipe())
    round_trip(fds.write, fds.read)
  end)

  it("a socketpair opened as tcp handles, with nonblocking flags",
    function()
      local fds = assert(uv.socketpair("stream", 0, {nonblock = true},
                                       {nonblock = true}))
      local a, b = uv.new_tcp(), uv.new_tcp()
      assert.equal(0, a:open(fds[1]))
      assert.equal(0, b:open(fds[2]))
      local got, eof = "", false
      b:read_start(function(_, data)
        if data then got = got .. data else eof = true end
      end)
      a:write("ping")
      a:shutdown()
      run_loop(function() return eof end)
      assert.equal("ping", got)
      a:close()
      b:close()
    end)
end)

describe("uv smaller differences from luv", function()
  it("os.exit(code, true) in a callback inside uv.run() exits with code",
    function()
      local out, err, status = run_host({"-e", [[
        local uv = require "uv"
        local t = uv.new_timer()
        t:start(5, 0, function() os.exit(7, true) end)
        uv.run()
        print("not reached")]]})
      assert.equal(7, status, out .. err)
      assert.equal("", out)
      assert.falsy(err:find("uncaught error", 1, true), err)
    end)

  it("uv.constants has luv's numbers", function()
    local c = uv.constants
    assert.equal("table", type(c))
    assert.equal(2, c.SIGINT)
    assert.equal(15, c.SIGTERM)
    assert.equal(2, c.AF_INET)
    assert.equal(10, c.AF_INET6)
    assert.equal(1, c.SOCK_STREAM)
    assert.equal(2, c.SOCK_DGRAM)
    assert.equal(0, c.O_RDONLY)
    assert.equal(64, c.O_CREAT)
    assert.equal(0, c.F_OK)
    assert.equal(1, c.TTY_MODE_RAW)
    assert.equal("number", type(c.AI_PASSIVE))
    assert.equal("number", type(c.UDP_REUSEADDR))
  end)

  it("getaddrinfo takes hints in upper case", function()
    local res = assert(uv.getaddrinfo("127.0.0.1", "80",
      {socktype = "STREAM", family = "INET", protocol = "TCP"}))
    assert.equal("inet", res[1].family)
    assert.equal("stream", res[1].socktype)
    assert.equal(80, res[1].port)
    local ok, err = pcall(uv.getaddrinfo, "127.0.0.1", nil,
                          {socktype = "STREAMS"})
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #3", 1, true), err)
  end)
end)
