-- uv.spawn, process handles, uv.kill.
local uv = require "uv"

-- Spawn and wait for the exit; returns code, signal, pid.
local function run(path, opts)
  local code, sig
  local p, pid = uv.spawn(path, opts, function(c, s)
    code, sig = c, s
  end)
  assert.is_truthy(p, pid)
  run_loop(function() return code ~= nil end)
  p:close()
  return code, sig, pid
end

describe("uv process", function()
  after_each(assert_clean)

  it("reports the exit code", function()
    local code, sig, pid = run("/bin/sh", {args = {"-c", "exit 3"}})
    assert.equal(3, code)
    assert.equal(0, sig)
    assert.equal("number", math.type(pid) and "number")
    assert.truthy(pid > 0)
  end)

  it("kills with SIGTERM: signal 15; the handle knows its pid", function()
    local code, sig
    local p, pid = uv.spawn("/bin/sleep", {args = {"30"}}, function(c, s)
      code, sig = c, s
    end)
    assert.equal(pid, p:get_pid())
    assert.equal(pid, uv.process_get_pid(p))
    assert.equal(0, uv.process_kill(p, "sigterm"))
    run_loop(function() return sig ~= nil end)
    assert.equal(15, sig)
    assert.equal(0, code)
    -- The process is gone: a second kill fails with ESRCH.
    local ok, _, name = p:kill()
    assert.is_nil(ok)
    assert.equal("ESRCH", name)
    p:close()
  end)

  it("uv.kill takes a pid and a signal number or name", function()
    local sig
    local p, pid = uv.spawn("/bin/sleep", {args = {"30"}}, function(_, s)
      sig = s
    end)
    assert.equal(0, uv.kill(pid, 9))
    run_loop(function() return sig ~= nil end)
    assert.equal(9, sig)
    p:close()
    local ok, _, name = uv.kill(pid, "sigterm") -- reaped: no such process
    assert.is_nil(ok)
    assert.equal("ESRCH", name)
    -- signal 0, as kill(2) and luv: is it there (no signal sent)?
    assert.equal(0, uv.kill(uv.os_getpid(), 0))
    assert.same({nil, "ESRCH: no such process", "ESRCH"},
      {uv.kill(pid, 0)})
  end)

  it("passes args, env and cwd", function()
    local out = tmpname()
    local code = run("/bin/sh", {
      args = {"-c", 'printf "%s|%s|%s" "$1" "$LH_X" "$(pwd)" > "$2"',
              "sh", 42, out},
      env = {"LH_X=hello", "PATH=/usr/bin:/bin"},
      cwd = "/tmp",
    })
    assert.equal(0, code)
    local f = assert(io.open(out))
    local s = f:read("a")
    f:close()
    assert.equal("42|hello|/tmp", s)
  end)

  it("inherits integer fds in stdio; nil entries get /dev/null", function()
    local function child_fd2(stdio)
      local out = tmpname()
      local code = run("/bin/sh", {
        args = {"-c", "readlink /proc/self/fd/2 > " .. out},
        stdio = stdio,
      })
      assert.equal(0, code)
      local f = assert(io.open(out))
      local s = f:read("l")
      f:close()
      return s
    end
    local ours = io.popen("readlink /proc/" .. uv.os_getpid() .. "/fd/2")
    local mine = ours:read("l")
    ours:close()
    assert.equal(mine, child_fd2({0, 1, 2}))
    assert.equal("/dev/null", child_fd2({nil, nil, nil}))
  end)

  it("detached makes the child a session leader", function()
    local script = "test $(ps -o sid= -p $$) -eq $$"
    assert.equal(0, run("/bin/sh", {args = {"-c", script}, detached = true}))
    assert.equal(1, run("/bin/sh", {args = {"-c", script}}))
  end)

  it("runs the child as another user with uid and gid", function()
    if uv.os_get_passwd().uid ~= 0 then
      pending("needs root to change the child's uid")
      return
    end
    local out = tmpname()
    local f = assert(io.open(out, "w"))
    f:close()
    os.execute("chmod 666 " .. out)
    assert.equal(0, run("/bin/sh", {
      args = {"-c", "echo $(id -u):$(id -g) > " .. out},
      uid = 65534, gid = 65534,
    }))
    f = assert(io.open(out))
    assert.equal("65534:65534\n", f:read("a"))
    f:close()
  end)

  it("returns fail for a program that does not exist; no callback",
    function()
      local p, msg, name = uv.spawn("/nonexistent/program", {},
        expect(nil, 0))
      assert.is_nil(p)
      assert.equal("ENOENT", name)
      assert.matches("^ENOENT: ", msg)
      uv.run("nowait") -- the failed handle's close completes
    end)

  it("raises on malformed options, naming the argument", function()
    local cases = {
      {function() uv.spawn() end, "#1"},
      {function() uv.spawn("/bin/true") end, "#2"},
      {function() uv.spawn("/bin/true", {}, 5) end, "#3"},
      {function() uv.spawn("/bin/true", {args = "x"}) end, "'args'"},
      {function() uv.spawn("/bin/true", {args = {{}}}) end, "'args'"},
      {function() uv.spawn("/bin/true", {env = {true}}) end, "'env'"},
      {function() uv.spawn("/bin/true", {env = {A = "b"}}) end, "'env'"},
      {function() uv.spawn("/bin/true", {cwd = 5}) end, "'cwd'"},
      {function() uv.spawn("/bin/true", {uid = -1}) end, "'uid'"},
      {function() uv.spawn("/bin/true", {gid = "x"}) end, "'gid'"},
      {function() uv.spawn("/bin/true", {detached = 1}) end, "'detached'"},
      {function() uv.spawn("/bin/true", {stdio = {"x"}}) end, "stdio"},
      {function() uv.spawn("/bin/true", {stdio = {[100] = 1}}) end,
       "stdio"},
      {function() uv.spawn("/bin/true", {stdio = {uv.new_timer()}}) end,
       "stdio"},
      {function() uv.process_kill(uv.new_timer()) end, "#1"},
      {function() uv.kill(1, "sigbogus") end, "#2"},
      {function() uv.kill("x") end, "#1"},
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok, "case " .. i)
      assert.matches("bad argument", err, 1, true)
      assert.matches(c[2], err, 1, true)
    end
    uv.walk(function(h) h:close() end) -- the stray timers
  end)

  it("wires a child's stdout to a pipe", function()
    local pipe = uv.new_pipe(false)
    local chunks, code = {}, nil
    local eof = false
    local p = uv.spawn("/bin/sh", {args = {"-c", "echo from-child"},
                                   stdio = {nil, pipe, 2}},
      function(c) code = c end)
    assert.truthy(p)
    pipe:read_start(function(err, data)
      assert.is_nil(err)
      if data then chunks[#chunks + 1] = data else eof = true end
    end)
    run_loop(function() return eof and code ~= nil end)
    assert.equal("from-child\n", table.concat(chunks))
    assert.equal(0, code)
    pipe:close()
    p:close()
  end)
end)
