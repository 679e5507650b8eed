-- net's server against one hostile address (issue 11 section 2, "all
-- servers"): a per-address connection limit, the global limit shedding
-- the connection idle the longest, and running out of file descriptors
-- (logged once per episode, accepting paused with clients left in the
-- backlog, resumed when descriptors free up). Each server runs as a child
-- luahost so that its stderr (the log lines) can be checked.
local net = require "net"
local task = require "task"
local H = require "spec.hostile_helper"

-- A line server: answers each line with "echo: line". Its listen options
-- come from its second argument (Lua table syntax).
local SERVER = [[
local net = require "net"
local opts = load("return " .. (arg[2] or "{}"))()
opts.host, opts.port = "127.0.0.1", 0
local s = assert(net.listen(opts))
print("listening on 127.0.0.1:" .. select(2, s:sockname()))
io.stdout:flush()
s:serve(function(c)
  for line in c:lines() do
    if not c:write("echo: ", line, "\n") then return end
  end
end)
]]

local function server_script()
  local path = tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(SERVER)
  f:close()
  return path
end

-- A client that says hello and expects its echo: true, or nil, err.
local function hello(port, bind)
  local c, err = net.connect("127.0.0.1", port, {timeout = 5,
    bind = bind})
  if not c then return nil, err end
  local ok
  ok, err = c:write("hello\n")
  local line
  if ok then line, err = c:read() end
  c:close()
  if line ~= "echo: hello" then return nil, err or line end
  return true
end

-- Count the occurrences of a plain string.
local function count(s, what)
  local n, i = 0, 1
  while true do
    local a, b = s:find(what, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

describe("net servers against one hostile address", function()
  local procs, files = {}, {}
  local function start(opts_src, shell)
    local path = server_script()
    files[#files + 1] = path
    local p, port = H.start_script(path, {"x", opts_src or "{}"},
      shell and {shell = shell})
    procs[#procs + 1] = p
    return p, port
  end
  after_each(function()
    for _, p in ipairs(procs) do p:stop() end
    for _, f in ipairs(files) do os.remove(f) end
    procs, files = {}, {}
  end)

  it("documents its defaults", function()
    assert.equal(256, net.defaults.max_per_address)
    assert.has_error(function() net.listen{max_per_address = 0} end,
      "bad argument #1 to 'listen' (max_per_address: positive integer " ..
      "expected, got 0)")
  end)

  it("one address gets max_per_address connections; others get in",
    function()
    local proc, port = start("{max_per_address = 10, max_connections = 30}")
    run_task(function()
      -- 60 quiet connections from 127.0.0.1: 10 are kept, the others
      -- closed at once (a read sees the end, no echo)
      local held, closed = {}, 0
      for i = 1, 60 do
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        held[i] = c
      end
      local ts = {}
      for i, c in ipairs(held) do
        ts[i] = task.spawn(function()
          c:settimeout(1)
          local line, err = c:read()
          if line == nil and err == "closed" then closed = closed + 1 end
        end)
      end
      for _, t in ipairs(ts) do t:join() end
      assert.equal(50, closed)
      -- another address is served meanwhile, and more than once
      for _ = 1, 3 do
        assert.is_true(hello(port, "127.0.0.2"))
      end
      -- 127.0.0.1 itself gets in again once its connections end
      for _, c in ipairs(held) do c:close() end
      local ok
      for _ = 1, 100 do
        ok = hello(port)
        if ok then break end
        task.sleep(0.05)
      end
      assert.is_true(ok)
    end, 40)
    local err = proc:stderr()
    -- logged, but not once per refused connection
    local lines = count(err, "127.0.0.1 has max_per_address (10) " ..
      "connections: refusing more from it")
    assert.is_true(lines >= 1 and lines <= 2, err)
    proc:stop_quiet()
  end)
end)
