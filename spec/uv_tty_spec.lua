-- uv tty handles and guess_handle. The suite's own stdin is not a
-- terminal, so the terminal cases run a child luahost under script(1),
-- which gives it a pseudo-terminal.
local uv = require "uv"

local function have_script()
  return os.execute("command -v script >/dev/null 2>&1")
end

-- Run code in a child luahost whose stdio is a pty; returns its output.
local function in_pty(code)
  local file = tmpname()
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(("timeout -s KILL 30 script -qec %s /dev/null"
    .. " </dev/null 2>&1"):format(shell_quote(shell_quote(LUAHOST) .. " "
    .. shell_quote(file)))))
  local out = p:read("a")
  p:close()
  return (out:gsub("\r", ""))
end

describe("uv tty", function()
  after_each(assert_clean)

  it("guess_handle names a file, a pipe and a closed fd", function()
    local out = run_host({"-e", [[
      local uv = require "uv"
      io.write(uv.guess_handle(0), " ", uv.guess_handle(99))]]})
    -- run_host gives the child a regular file as stdin.
    assert.equal("file unknown", out)
    local p = assert(io.popen(shell_quote(LUAHOST) .. [[ -e '
      io.write(require("uv").guess_handle(1))']]))
    assert.equal("pipe", p:read("a"))
    p:close()
  end)

  it("new_tty on a regular file fails", function()
    local out = run_host({"-e", [[
      local uv = require "uv"
      print(uv.new_tty(0, true))]]})
    assert.equal("nil\tEINVAL: invalid argument\tEINVAL\n", out)
  end)

  it("works on a terminal: winsize, modes, reset", function()
    if not have_script() then
      pending("script(1) is not installed: no pty to test with")
      return
    end
    local out = in_pty([[
      local uv = require "uv"
      print(uv.guess_handle(0), uv.guess_handle(1))
      local t = assert(uv.new_tty(1, false))
      print(tostring(t):match("^uv_tty") ~= nil)
      local w, h = t:get_winsize()
      print(math.type(w), math.type(h), w >= 0, h >= 0)
      print(t:set_mode("raw"), uv.tty_set_mode(t, 2), t:set_mode(0),
            uv.tty_reset_mode())
      print(pcall(t.set_mode, t, 7))
      t:close()
    ]])
    assert.equal("tty\ttty\ntrue\ninteger\tinteger\ttrue\ttrue\n" ..
      "0\t0\t0\t0\nfalse\tbad argument #2 to 'uv.tty_set_mode' " ..
      "(out of range [0, 2])\n", out)
  end)

  it("raises on wrong arguments", function()
    assert.matches("bad argument #1", select(2, pcall(uv.new_tty, -1, true)))
    assert.matches("bad argument #2", select(2, pcall(uv.new_tty, 0)))
    assert.matches("bad argument #1", select(2, pcall(uv.guess_handle, "x")))
    assert.matches("bad argument #1",
      select(2, pcall(uv.tty_set_mode, uv.new_idle(), "raw")))
    assert.matches("bad argument #1",
      select(2, pcall(uv.tty_get_winsize, 1)))
    uv.walk(function(h) h:close() end)
  end)
end)
