-- The REPL at a terminal (a pseudo-terminal driven by spec/pty_drive.py):
-- line editing and history through libedit, Ctrl-C cancels the running
-- statement and returns to the prompt, servers started before keep going.
local PY = "/usr/bin/python3"

local function have_python()
  local f = io.open(PY)
  if f then f:close() end
  return f ~= nil
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ("\\u%04x"):format(c:byte())
  end) .. '"'
end

-- steps: {{send, expect}, ...}; returns the driver's output and status
local function drive(steps)
  local parts = {}
  for i, st in ipairs(steps) do
    parts[i] = "[" .. json_string(st[1]) .. "," .. json_string(st[2]) .. "]"
  end
  local cmd = ("%s spec/pty_drive.py %s %s 2>&1"):format(PY,
    shell_quote(LUAHOST), shell_quote("[" .. table.concat(parts, ",") .. "]"))
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

describe("the REPL on a terminal", function()
  it("edits lines: the up arrow recalls the last statement", function()
    assert.is_true(have_python(), PY .. " is needed (vendor/packages.txt)")
    local out, ok = drive({
      {"x = 41\r", "> $"},
      {"print(x + 1)\r", "42\r\n> $"},
      {"x = 1\r", "> $"},
      {"\27[A\27[A\r", "print\\(x \\+ 1\\)\r\n2\r\n> $"}, -- up twice
      {"\4", "\n"},                          -- Ctrl-D ends the session
    })
    assert.is_true(ok, out)
    assert.matches("exit 0", out)
  end)

  it("Ctrl-C cancels the running statement, not the session", function()
    local out, ok = drive({
      -- a server started at the prompt, in a task of its own
      {"net = require 'net'; s = assert(net.listen{host = '127.0.0.1', " ..
       "port = 0}); port = select(2, s:sockname()); " ..
       "require('task').spawn(function() s:serve(function(c) " ..
       "c:write(c:read('l'), '\\n') end) end)\r", "> $"},
      {"require('task').sleep(60)\r", "sleep\\(60\\)\r\n"},
      {"\3", "interrupted!.*> $"},
      -- the server still answers, from a statement at the prompt
      {"c = net.connect('127.0.0.1', port); c:write('hi\\n'); " ..
       "print('echo:', c:read('l'))\r", "echo:\thi\r\n> $"},
      {"os.exit(0, true)\r", "\n"}, -- the server would keep it alive
    })
    assert.is_true(ok, out)
    assert.matches("exit 0", out)
  end)

  it("Ctrl-C at the prompt drops an unfinished statement", function()
    local out, ok = drive({
      {"for i = 1, 2 do\r", ">> $"},
      {"\3", "\r\n> $"},
      {"print('fresh')\r", "fresh\r\n> $"},
      {"\4", "\n"},
    })
    assert.is_true(ok, out)
    assert.matches("exit 0", out)
  end)
end)
