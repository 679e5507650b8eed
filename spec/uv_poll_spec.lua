-- uv poll handles on descriptors made by other means. The suite cannot
-- open a pipe fd from Lua, so the readiness cases run a child luahost
-- whose stdin or stdout is a pipe.
local uv = require "uv"

local function child(code, stdin)
  local file = tmpname()
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  local cmd = ("timeout -s KILL 30 %s %s 2>&1"):format(
    shell_quote(LUAHOST), shell_quote(file))
  if stdin then cmd = ("printf %%s %s | %s"):format(shell_quote(stdin), cmd) end
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

describe("uv poll", function()
  after_each(assert_clean)

  it("reports a readable pipe with its events", function()
    local out = child([[
      local uv = require "uv"
      local p = assert(uv.new_poll(0))
      assert(uv.poll_start(p, "r", function(err, events)
        -- new_poll made fd 0 non-blocking: read only what is there (the
        -- writer may not have closed its end yet; "a" would get EAGAIN)
        io.write(tostring(err), " ", events, " ", io.read(4))
        p:close()
      end))]], "data")
    assert.equal("nil r data", out)
  end)

  it("reports a writable socket-style poll on a pipe", function()
    local out = child([[
      local uv = require "uv"
      local p = assert(uv.new_socket_poll(1))
      p:start("rw", function(err, events)
        p:stop()
        io.stderr:write(tostring(err), " ", events, " ",
                        tostring(p:is_active()))
        p:close()
      end)]])
    assert.equal("nil w false", out)
  end)

  it("polls one end of a socketpair written through the other", function()
    local fds = assert(uv.socketpair())
    local p = assert(uv.new_socket_poll(fds[1]))
    local writer = uv.new_pipe(false)
    assert.equal(0, writer:open(fds[2]))
    local got
    assert.equal(0, p:start("r", expect(function(err, events)
      got = {err, events}
      p:stop()
    end)))
    assert.is_true(p:is_active())
    writer:write("x")
    run_loop(function() return got ~= nil end)
    assert.same({nil, "r"}, got)
    p:close()
    -- The poll handle does not own the fd: close it through a pipe.
    local reader = uv.new_pipe(false)
    assert.equal(0, reader:open(fds[1]))
    reader:close()
    writer:close()
  end)

  it("fails on a regular file (EPERM) and on a closed fd", function()
    local out = run_host({"-e", [[
      local uv = require "uv"
      print(uv.new_poll(0))
      print(uv.new_poll(99))]]})
    assert.equal("nil\tEPERM: fd 0 is a regular file, which the event " ..
                 "loop cannot watch\tEPERM\n" ..
                 "nil\tEBADF: fd 99 is not open\tEBADF\n", out)
  end)

  it("raises on wrong arguments, naming them", function()
    assert.matches("bad argument #1", select(2, pcall(uv.new_poll)))
    assert.matches("bad argument #1", select(2, pcall(uv.new_poll, -1)))
    assert.matches("bad argument #1",
      select(2, pcall(uv.new_socket_poll, "x")))
    assert.matches("bad argument #1",
      select(2, pcall(uv.poll_start, uv.new_idle(), "r", print)))
    assert.matches("bad argument #1",
      select(2, pcall(uv.poll_stop, {})))
    uv.walk(function(h) h:close() end)
  end)

  it("raises on bad events in a child with a real poll handle", function()
    local out = child([[
      local uv = require "uv"
      local p = assert(uv.new_poll(0))
      print(pcall(function() return p:start("x", print) end))
      print(pcall(function() return p:start("r", 5) end))
      p:close()]], "")
    assert.matches("bad argument #1 to 'start' %(invalid poll events 'x'",
                   out)
    assert.matches("bad argument #2 to 'start' %(function expected", out)
  end)
end)
