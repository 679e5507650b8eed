-- uv pipe handles (bindings/pipe.c): unix domain sockets in a temporary
-- directory, socketpair and uv.pipe descriptors, chmod, handle passing over
-- an ipc pipe, and wrong arguments.
local uv = require "uv"
local lfs = require "lfs"

-- A fresh temporary directory; returns its path and a remover that deletes
-- the files named in it, then the directory.
local function tempdir()
  local dir = tmpname()
  os.remove(dir)
  assert(lfs.mkdir(dir))
  return dir, function(...)
    for _, name in ipairs({...}) do os.remove(dir .. "/" .. name) end
    assert(os.remove(dir))
  end
end

local function raises(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "call did not raise")
  err = tostring(err)
  assert.is_truthy(err:find("bad argument", 1, true) or
                   err:find("bad self", 1, true), err)
  return err
end

-- Two pipe handles over the two ends of a socketpair.
local function pipe_pair(ipc)
  local fds = assert(uv.socketpair("stream", 0, {nonblock = true},
                                   {nonblock = true}))
  local a, b = uv.new_pipe(ipc), uv.new_pipe(ipc)
  assert.equal(0, a:open(fds[1]))
  assert.equal(0, uv.pipe_open(b, fds[2]))
  return a, b
end

describe("uv pipe", function()
  after_each(assert_clean)

  it("echoes over a unix socket path", function()
    local dir, cleanup = tempdir()
    finally(function() cleanup("sock") end)
    local path = dir .. "/sock"
    local server = uv.new_pipe(false)
    assert.equal(0, server:bind(path))
    assert.equal(path, server:getsockname())
    local server_peer, conn_closed = nil, false
    assert.equal(0, server:listen(4, function(err)
      assert(err == nil, err)
      local conn = uv.new_pipe(false)
      assert(server:accept(conn))
      server_peer = {conn:getsockname()}
      conn:read_start(function(_, data)
        if data then conn:write(data)
        else conn:close(function() conn_closed = true end) end
      end)
    end))
    local client, got, peer = uv.new_pipe(false), {}, nil
    assert.equal(0, client:connect(path, expect(function(err)
      assert(err == nil, err)
      peer = client:getpeername()
      client:write({"over ", "a ", "path"})
      client:read_start(function(_, data)
        got[#got + 1] = data
        if table.concat(got) == "over a path" then client:close() end
      end)
    end)))
    run_loop(function() return client:is_closing() and conn_closed end)
    server:close()
    assert.equal("over a path", table.concat(got))
    assert.equal(path, peer)
    assert.same({path}, server_peer)
  end)

  it("returns bind and connect errors", function()
    local dir, cleanup = tempdir()
    finally(function() cleanup("sock") end)
    local a, b = uv.new_pipe(), uv.new_pipe()
    assert.equal(0, a:bind(dir .. "/sock"))
    assert.same({nil, "EADDRINUSE: address already in use", "EADDRINUSE"},
                {b:bind(dir .. "/sock")})
    local long = dir .. "/" .. ("x"):rep(200)
    assert.equal("ENAMETOOLONG", select(3, b:bind(long)))
    assert.equal("ENAMETOOLONG", select(3, b:connect(long, expect(nil, 0))))
    local c, err = uv.new_pipe(), nil
    assert.equal(0, c:connect(dir .. "/nobody", expect(function(e)
      err = e
    end)))
    run_loop(function() return err end)
    assert.equal("ENOENT", err)
    local d = uv.new_pipe()
    assert.equal("EBADF", select(3, d:getsockname()))
    assert.equal("EBADF", select(3, d:getpeername()))
    a:close(); b:close(); c:close(); d:close()
  end)

  -- libuv's chmod only adds permission bits (for everyone), so start
  -- from a mode without any
  it("adds read/write permission for everyone with chmod", function()
    local dir, cleanup = tempdir()
    finally(function() cleanup("sock") end)
    local path = dir .. "/sock"
    local p = uv.new_pipe()
    assert.equal("EBADF", select(3, p:chmod("rw"))) -- not bound yet
    assert.equal(0, p:bind(path))
    local function reset()
      assert.is_true(os.execute("chmod 000 " .. shell_quote(path)))
      assert.equal("---------", lfs.attributes(path, "permissions"))
    end
    reset()
    assert.equal(0, p:chmod("r"))
    assert.equal("r--r--r--", lfs.attributes(path, "permissions"))
    reset()
    assert.equal(0, p:chmod("w"))
    assert.equal("-w--w--w-", lfs.attributes(path, "permissions"))
    reset()
    assert.equal(0, uv.pipe_chmod(p, "rw"))
    assert.equal("rw-rw-rw-", lfs.attributes(path, "permissions"))
    p:close()
  end)

  it("echoes over a socketpair opened as pipes", function()
    local a, b = pipe_pair(false)
    b:read_start(function(_, data) if data then b:write(data) end end)
    local got
    a:read_start(function(_, data) got = data end)
    assert.equal(0, a:write("ping"))
    run_loop(function() return got end)
    assert.equal("ping", got)
    a:close(); b:close()
  end)

  it("reads from uv.pipe() descriptors", function()
    local fds = assert(uv.pipe({nonblock = true}, {nonblock = true}))
    local r, w = uv.new_pipe(), uv.new_pipe()
    assert.equal(0, r:open(fds.read))
    assert.equal(0, w:open(fds.write))
    assert.is_false(r:is_writable())
    local got, eof = {}, false
    r:read_start(function(_, data)
      if data then got[#got + 1] = data else eof = true end
    end)
    w:write("one way", function() w:close() end)
    run_loop(function() return eof end)
    assert.equal("one way", table.concat(got))
    r:close()
  end)

  it("passes a tcp handle over an ipc pipe with write2", function()
    local a, b = pipe_pair(true)
    local listener = uv.new_tcp()
    assert(listener:bind("127.0.0.1", 0))
    local port = listener:getsockname().port
    local received, info
    b:read_start(function(err, data)
      assert(err == nil, err)
      if not data then return end
      info = {data = data, count = b:pending_count(),
              type = b:pending_type()}
      received = uv.new_tcp()
      assert(b:accept(received))
    end)
    local sent
    assert.equal(0, a:write2("h", listener, function(err)
      sent = err or true
    end))
    run_loop(function() return received and sent end)
    assert.is_true(sent)
    assert.same({data = "h", count = 1, type = "tcp"}, info)
    assert.equal(0, b:pending_count())
    assert.is_nil(b:pending_type())
    -- the same socket: it has the listener's address
    assert.equal(port, received:getsockname().port)
    a:close(); b:close(); listener:close(); received:close()
  end)

  it("fails a queued write2 whose handle was closed with EBADF", function()
    local a, b = pipe_pair(true)
    local t = uv.new_tcp()
    assert(t:bind("127.0.0.1", 0))
    -- fill the pipe so that the write2 has to wait in the queue
    local big, sent = ("z"):rep(8 * 1024 * 1024), 0
    a:write(big, function() sent = sent + 1 end)
    assert.is_true(a:get_write_queue_size() > 0)
    local result
    assert.equal(0, a:write2("h", t, function(err) result = err or "ok" end))
    local t_closed = false
    t:close(function() t_closed = true end)
    run_loop(function() return t_closed end) -- its memory is released now
    collectgarbage()
    local got = 0
    b:read_start(function(_, data) got = got + #(data or "") end)
    run_loop(function() return result end)
    assert.equal("EBADF", result)
    assert.equal(1, sent)
    a:close(); b:close()
  end)

  it("accepts pending_instances and counts nothing pending", function()
    local p = uv.new_pipe(true)
    assert.equal(0, select("#", p:pending_instances(4)))
    assert.equal(0, uv.pipe_pending_count(p))
    assert.is_nil(uv.pipe_pending_type(p))
    p:close()
  end)

  it("raises on wrong arguments to every pipe function", function()
    local timer = uv.new_timer()
    local pipe = uv.new_pipe()
    local tcp = uv.new_tcp()
    local closed = uv.new_pipe()
    closed:close()
    local fn = function() end
    local names = {"pipe_open", "pipe_bind", "pipe_connect",
                   "pipe_getsockname", "pipe_getpeername", "pipe_chmod",
                   "pipe_pending_instances", "pipe_pending_count",
                   "pipe_pending_type"}
    for _, name in ipairs(names) do
      local f = uv[name]
      assert.is_function(f, name)
      raises(f)
      raises(f, nil)
      raises(f, 3)
      raises(f, "pipe")
      raises(f, timer)
      raises(f, tcp)
      assert.matches("closed", raises(f, closed, "rw", fn))
    end
    raises(uv.new_pipe, "yes")
    raises(uv.new_pipe, 1)
    raises(uv.pipe_open, pipe)
    raises(uv.pipe_open, pipe, -1)
    raises(uv.pipe_open, pipe, 2 ^ 40)
    raises(uv.pipe_open, pipe, "zero")
    raises(uv.pipe_bind, pipe)
    raises(uv.pipe_bind, pipe, {})
    raises(uv.pipe_bind, pipe, "")
    raises(uv.pipe_bind, pipe, "a\0b")
    raises(uv.pipe_connect, pipe, "x")
    raises(uv.pipe_connect, pipe, "x", 5)
    raises(uv.pipe_connect, pipe, nil, fn)
    raises(uv.pipe_connect, pipe, "a\0b", fn)
    raises(uv.pipe_chmod, pipe)
    raises(uv.pipe_chmod, pipe, "x")
    raises(uv.pipe_chmod, pipe, 1)
    raises(uv.pipe_pending_instances, pipe)
    raises(uv.pipe_pending_instances, pipe, -1)
    raises(uv.pipe_pending_instances, pipe, 2 ^ 40)
    raises(uv.pipe, "x")
    raises(uv.pipe, {nonblock = 1})
    raises(uv.pipe, nil, 5)
    assert.matches("bad argument #1 to 'chmod'",
                   raises(function() return pipe:chmod("rwx") end))
    -- a descriptor that is not open is an OS failure, not a raise
    assert.equal("EBADF", select(3, pipe:open(0x7ffffff0)))
    local fired = false
    timer:start(1, 0, function() fired = true end)
    run_loop(function() return fired end)
    timer:close(); pipe:close(); tcp:close()
  end)
end)
