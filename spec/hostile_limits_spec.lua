-- net's server against one hostile address (issue 11 section 2, "all
-- servers"): a per-address connection limit, the global limit shedding
-- the connection idle the longest, and running out of file descriptors
-- (logged once per episode, accepting paused with clients left in the
-- backlog, resumed when descriptors free up). Each server runs as a child
-- luahost so that its stderr (the log lines) can be checked.
local net = require "net"
local task = require "task"
local H = require "hostile_helper"

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
  it("at max_connections the connection idle the longest is shed",
    function()
    local proc, port = start("{max_connections = 10, max_per_address = 100}")
    run_task(function()
      -- 10 silent clients: each handler waits in a read, nothing unread
      local quiet = {}
      for i = 1, 10 do
        quiet[i] = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        task.sleep(0.02) -- (accepted in this order)
      end
      task.sleep(2.5) -- (idle for 2 s at least: quiet, not just arrived)
      -- a new client gets in: the oldest silent one is closed for it
      local t0 = task.now()
      assert.is_true(hello(port))
      assert.is_true(task.now() - t0 < 3)
      quiet[1]:settimeout(5)
      assert.same({nil, "closed"}, {quiet[1]:read()})
      -- the others are still there
      assert(quiet[10]:write("still\n"))
      assert.equal("echo: still", quiet[10]:read())
      for _, c in ipairs(quiet) do c:close() end
      task.sleep(0.3)
      -- none idle (each sent half a line): new clients wait in the
      -- backlog until one of them ends
      local busy = {}
      for i = 1, 10 do
        busy[i] = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        assert(busy[i]:write("half"))
      end
      task.sleep(0.3)
      local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      assert(c:write("hello\n"))
      c:settimeout(0.5)
      assert.same({nil, "timeout"}, {c:read()})
      busy[1]:close()
      c:settimeout(5)
      assert.equal("echo: hello", c:read())
      c:close()
      for _, b in ipairs(busy) do b:close() end
    end, 40)
    local err = proc:stderr()
    assert.matches("max_connections %(10%) reached: closing the " ..
      "connection idle the longest %(%d s%)", err)
    assert.matches("max_connections %(10%) reached and none idle: new " ..
      "clients wait in the backlog", err)
    proc:stop_quiet()
  end)

  it("out of file descriptors: clients wait in the backlog, then get in",
    function()
    -- 64 descriptors for the server; 150 clients each send a line at
    -- once. Those it cannot take yet must stay connected (libuv's own
    -- way out, accepting and closing the whole backlog, dropped them
    -- silently), and all are served as the first ones leave. The log
    -- says so once per episode, not once per try.
    local proc, port = start("{max_per_address = 1000}", "ulimit -n 64")
    run_task(function()
      local N = 150
      local cs, served, lost = {}, {}, {}
      for i = 1, N do
        cs[i] = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        assert(cs[i]:write("hello\n"))
      end
      local rounds = 0
      while true do
        rounds = rounds + 1
        assert.is_true(rounds <= 30, "not all were served")
        -- who gets an answer now
        local ts, got = {}, 0
        for i = 1, N do
          if not served[i] and not lost[i] then
            ts[#ts + 1] = task.spawn(function()
              cs[i]:settimeout(1)
              local line, err = cs[i]:read()
              if line == "echo: hello" then
                served[i] = true
                got = got + 1
              elseif err ~= "timeout" then
                lost[i] = err or line
              end
            end)
          end
        end
        for _, t in ipairs(ts) do t:join() end
        local left = 0
        for i = 1, N do
          if not served[i] and not lost[i] then left = left + 1 end
        end
        if left == 0 then break end
        -- the ones served leave: descriptors free up
        for i = 1, N do
          if served[i] and not cs[i]:is_closed() then cs[i]:close() end
        end
      end
      for i = 1, N do
        assert.is_nil(lost[i], ("client %d: %s"):format(i,
          tostring(lost[i])))
      end
      assert.is_true(rounds >= 2, "the server never ran short")
      for i = 1, N do cs[i]:close() end
    end, 90)
    local err = proc:stderr()
    local short = count(err, "out of file descriptors (EMFILE): not " ..
      "accepting for now")
    assert.is_true(short >= 1 and short <= 15, err)
    assert.is_true(count(err, "accepting again after") >= 1, err)
    proc:stop_quiet()
  end)
end)
