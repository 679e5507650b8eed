-- Random sequences of operations on the uv and net APIs (seeded, so a
-- failure replays): close during read, write after close, close inside a
-- callback of the same handle, double close, shutdown after close, cancel
-- of tasks blocked in every kind of wait, errors raised inside callbacks.
-- Nothing may crash: misuse is a Lua error or nil, err; under ASan no
-- report. Seeds: LUAHOST_FUZZ_SEED replays one.
local uv = require "uv"
local net = require "net"
local task = require "task"
local H = require "hostile_helper"

-- An error must be a Lua error with a message (a string), never anything
-- stranger; count them by message so a spec sees what happened.
local function try(hist, fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then
    assert.equal("string", type(err), tostring(err))
    local msg = err:gsub("^[^:]*:%d+: ", ""):gsub("0x%x+", "P")
    hist[msg] = (hist[msg] or 0) + 1
  end
  return ok
end

-- Every error message the uv fuzz may see: misuse of a closed handle, or
-- a well-formed failure turned into an error by assert.
local function expected_uv_error(msg)
  return msg:find("attempt to use a closed handle", 1, true) or
    msg:find("^E%u+") or msg:find("already", 1, true)
end

describe("fuzz", function()
  after_each(assert_clean)

  it("uv: random operations on tcp handles never crash", function()
    local seed = H.seed(4242)
    local g = H.prng(seed)
    local hist = {}
    local server = uv.new_tcp()
    assert(server:bind("127.0.0.1", 0))
    local port = server:getsockname().port
    local peers = {}
    assert(server:listen(128, function(err)
      if err then return end
      local c = uv.new_tcp()
      if not server:accept(c) then c:close() return end
      peers[#peers + 1] = c
      c:read_start(function(rerr, data) -- echo, or close at the end
        if data and not c:is_closing() then
          try(hist, c.write, c, data)
          if g:chance(0.05) then c:close_reset() end
        elseif not data and not c:is_closing() then
          c:close()
        end
        _ = rerr
      end)
    end))
    local handles = {}
    local function data()
      return string.rep(string.char(g:int(0, 255)), g:int(0, 70000))
    end
    local function maybe_close(h)
      if g:chance(0.3) then try(hist, h.close, h) end
    end
    -- the operations; each gets a handle (any state)
    local ops = {
      function(h) h:read_start(function(err, d)
        if g:chance(0.2) then try(hist, h.close, h) end
        if g:chance(0.1) then try(hist, h.write, h, "x") end
        if g:chance(0.1) then try(hist, h.read_stop, h) end
        if g:chance(0.1) then try(hist, h.shutdown, h) end
        if g:chance(0.05) then try(hist, h.close_reset, h) end
        _ = err; _ = d
      end) end,
      function(h) h:read_stop() end,
      function(h) h:write(data(), function() maybe_close(h)
        if g:chance(0.3) then
          try(hist, h.write, h, "y", function() maybe_close(h) end)
        end
      end) end,
      function(h) h:write({data(), "a", data()}) end,
      function(h) h:try_write(data()) end,
      function(h) h:shutdown(function() maybe_close(h)
        try(hist, h.shutdown, h) end) end,
      function(h) h:close(function()
        try(hist, h.close, h)
        try(hist, h.write, h, "z")
      end) end,
      function(h) h:close_reset(function() try(hist, h.close_reset, h) end) end,
      function(h) h:getpeername() end,
      function(h) h:setopt("linger", {on = true, seconds = 0}) end,
      function(h) h:setopt("rcvbuf", g:int(1, 1 << 20)) end,
      function(h) h:nodelay(g:chance(0.5)) end,
      function(h) h:keepalive(true, g:int(1, 100)) end,
      function(h) h:is_active(); h:is_closing(); h:fileno() end,
      function(h) h:write("q"); h:close(); h:write("r") end,
      function(h) h:shutdown(); h:shutdown() end,
      function(h) h:read_start(function() end); h:read_start(function() end) end,
      function(h) h:connect("127.0.0.1", port, function() maybe_close(h) end) end,
      function(h) h:unref(); h:ref() end,
      function(h) h:get_write_queue_size() end,
      function() collectgarbage() end,
    }
    for i = 1, 40 do
      local c = uv.new_tcp()
      handles[i] = c
      c:connect("127.0.0.1", port, function() maybe_close(c) end)
    end
    local steps = 0
    local t = uv.new_timer()
    t:start(1, 1, function()
      steps = steps + 1
      for _ = 1, 8 do
        local h = g:pick(handles)
        try(hist, g:pick(ops), h)
        if g:chance(0.05) then -- a fresh handle replaces a closed one
          local k = g:int(1, #handles)
          if handles[k]:is_closing() then
            local c = uv.new_tcp()
            handles[k] = c
            c:connect("127.0.0.1", port, function() maybe_close(c) end)
          end
        end
      end
      if steps >= 100 then t:close() end
    end)
    local ok, err = pcall(run_loop, function() return steps >= 100 end, 20)
    for _, h in ipairs(handles) do
      if not h:is_closing() then h:close() end
    end
    for _, h in ipairs(peers) do
      if not h:is_closing() then h:close() end
    end
    server:close()
    for _ = 1, 20 do uv.run("nowait") end -- close callbacks, cancelled writes
    assert(ok, ("seed %d: %s"):format(seed, tostring(err)))
    local seen = 0
    for msg, n in pairs(hist) do
      seen = seen + n
      assert(expected_uv_error(msg), ("seed %d: unexpected error: %s")
        :format(seed, msg))
    end
    assert.is_true(seen > 0) -- misuse happened and raised
  end)

  it("uv: random operations on udp, pipe, timer and idle handles",
    function()
    local seed = H.seed(2024)
    local g = H.prng(seed)
    local R = function(a, b)
      if a == nil then return g:next() / (1 << 53) end
      if b == nil then return g:int(1, a) end
      return g:int(a, b)
    end
    local hist = {}
    local function t(f, ...) return try(hist, f, ...) end
    local srv = uv.new_udp()
    assert(srv:bind("127.0.0.1", 0))
    local port = srv:getsockname().port
    srv:recv_start(function(_, data, addr)
      if data and addr then
        t(srv.send, srv, data, addr.ip, addr.port, function() end)
      end
    end)
    local pipename = os.tmpname()
    os.remove(pipename)
    local psrv = uv.new_pipe()
    assert(psrv:bind(pipename))
    local accepted = {}
    psrv:listen(16, function()
      local c = uv.new_pipe()
      if not psrv:accept(c) then c:close() return end
      accepted[#accepted + 1] = c
      c:read_start(function(_, d)
        if d then t(c.write, c, d)
        elseif not c:is_closing() then c:close() end
      end)
    end)
    local hs = {}
    local function new()
      local k = R(4)
      local h
      if k == 1 then h = uv.new_udp()
      elseif k == 2 then
        h = uv.new_pipe()
        h:connect(pipename, function() end)
      elseif k == 3 then h = uv.new_timer()
      else h = uv.new_idle() end
      hs[#hs + 1] = h
    end
    for _ = 1, 30 do new() end
    local ops = {
      function(h) h:close() end,
      function(h) h:close(function() t(h.close, h) end) end,
      function(h) h:send(string.rep("x", R(0, 70000)), "127.0.0.1", port,
        function() if R() < .5 then t(h.close, h) end end) end,
      function(h) h:try_send("abc", "127.0.0.1", port) end,
      function(h) h:recv_start(function()
        if R() < .3 then t(h.close, h) end
        if R() < .3 then t(h.recv_stop, h) end
      end) end,
      function(h) h:recv_stop() end,
      function(h) h:bind("127.0.0.1", 0) end,
      function(h) h:connect("127.0.0.1", port) end,
      function(h) h:connect() end,
      function(h) h:write(string.rep("y", R(0, 100000)),
        function() if R() < .5 then t(h.close, h) end end) end,
      function(h) h:read_start(function()
        if R() < .3 then t(h.close, h) end
      end) end,
      function(h) h:read_stop() end,
      function(h) h:shutdown(function() t(h.shutdown, h) end) end,
      function(h) h:start(R(0, 5), R(0, 3), function()
        if R() < .3 then t(h.close, h) end
        if R() < .3 then t(h.stop, h) end
        if R() < .3 then t(h.again, h) end
      end) end,
      function(h) h:start(function()
        if R() < .5 then t(h.stop, h) end
        if R() < .2 then t(h.close, h) end
      end) end,
      function(h) h:stop() end,
      function(h) h:again() end,
      function(h) h:set_repeat(R(0, 10)) end,
      function(h) h:unref(); h:ref() end,
      function(h) h:fileno() end,
      function(h) h:getsockname() end,
      function(h) h:getpeername() end,
      function(h) h:send_buffer_size(R(1, 100000)) end,
      function(h) h:pending_instances(R(1, 10)) end,
      function() collectgarbage() end,
    }
    local steps = 0
    local tm = uv.new_timer()
    tm:start(1, 1, function()
      steps = steps + 1
      for _ = 1, 10 do
        t(ops[R(#ops)], hs[R(#hs)])
        if R() < 0.1 then new() end
      end
      if steps >= 100 then tm:close() end
    end)
    local ok, err = pcall(run_loop, function() return steps >= 100 end, 20)
    for _, h in ipairs(hs) do if not h:is_closing() then h:close() end end
    for _, h in ipairs(accepted) do
      if not h:is_closing() then h:close() end
    end
    srv:close()
    psrv:close()
    for _ = 1, 20 do uv.run("nowait") end
    os.remove(pipename)
    assert(ok, ("seed %d: %s"):format(seed, tostring(err)))
    for msg in pairs(hist) do -- misuse raised a plain Lua error
      assert(msg:find("closed handle", 1, true) or
        msg:find("attempt to call a nil value", 1, true) or
        msg:find("^calling '[%w_]+' on bad self") or
        msg:find("^bad argument #%d") or msg:find("^E%u+") or
        msg:find("already", 1, true),
        ("seed %d: unexpected error: %s"):format(seed, msg))
    end
  end)

  it("net: random reads, writes, closes and cancels never crash",
    function()
    local seed = H.seed(99)
    -- the handlers that fail on purpose: their reports are collected
    -- here (task.on_error) and checked, not printed
    local failed, reports = 0, {}
    local prev = task.on_error(function(tb) reports[#reports + 1] = tb end)
    local ok, err = pcall(run_task, function()
      local g = H.prng(seed)
      local s = assert(net.listen{port = 0, max_connections = 5,
        idle_timeout = 0.5, max_line = 100})
      local _, port = s:sockname()
      local serving = task.spawn(s.serve, s, function(c)
        local hg = H.prng(g:next())
        for _ = 1, 100 do
          local r = hg:int(1, 7)
          local d, e
          if r == 1 then d, e = c:read("l")
          elseif r == 2 then d, e = c:recv(hg:int(1, 100))
          elseif r == 3 then d, e = c:read(hg:int(0, 50))
          elseif r == 4 then d, e = c:read("n")
          elseif r == 5 then d, e = c:read("L", 3, "l")
          elseif r == 6 then d, e = c:read("a")
          else d, e = c:recv() end
          if not d and e ~= "line too long" and e ~= "not a number" then
            return
          end
          if hg:chance(0.05) then
            failed = failed + 1
            error("a handler fails")
          end
          if hg:chance(0.05) then c:close() end
          if not c:write(tostring(d)) then return end
        end
      end)
      local clients = {}
      for i = 1, 40 do
        local cg = H.prng(g:next())
        clients[i] = task.spawn(function()
          local c = net.connect("127.0.0.1", port, {timeout = 2})
          if not c then return end
          for _ = 1, cg:int(1, 20) do
            local r = cg:int(1, 10)
            if r <= 4 then c:write(H.garbage(cg, cg:int(0, 300)))
            elseif r == 5 then c:settimeout(0.05); c:recv()
            elseif r == 6 then c:settimeout(0.01); c:read("a")
            elseif r == 7 then H.reset(c)
            elseif r == 8 then c:shutdown()
            elseif r == 9 then task.sleep(cg:int(0, 20) / 1000)
            else c:close() end
            c:settimeout(2)
            if c:is_closed() then break end
          end
          c:close()
          -- use after close: nil, "closed" or a raise, never a crash
          assert.same({nil, "closed"}, {c:write("x")})
          assert.same({nil, "closed"}, {c:read("l")})
          assert.same({nil, "closed"}, {c:recv()})
          assert.same({nil, "closed"}, {c:shutdown()})
          assert.same({nil, "closed"}, {c:flush()})
          assert.is_true(c:close())
        end)
      end
      -- tasks parked in every kind of wait, cancelled at random moments
      local victims = {}
      for i = 1, 40 do
        local kind = g:int(1, 7)
        victims[i] = task.spawn(function()
          if kind == 1 then task.sleep(10)
          elseif kind == 2 then
            local c <close> = net.connect("127.0.0.1", port)
            if c then c:read("a") end
          elseif kind == 3 then
            local l <close> = assert(net.listen{port = 0})
            l:accept()
          elseif kind == 4 then -- blocked in write: the peer never reads
            local l <close> = assert(net.listen{port = 0})
            local _, p2 = l:sockname()
            local c <close> = assert(net.connect("127.0.0.1", p2))
            -- luacheck: push no unused
            local peer <close> = l:accept(2) -- accepted, never read
            -- luacheck: pop
            local big = string.rep("w", 65536)
            for _ = 1, 2000 do if not c:write(big) then break end end
          elseif kind == 5 then
            local c <close> = net.connect("127.0.0.1", port) -- luacheck: ignore
          elseif kind == 6 then
            task.yield(); task.sleep(0.001); task.sleep(10)
          else -- stubborn: swallows cancels in every kind of wait, so
            -- cancel ends up closing it by force
            local c <close> = net.connect("127.0.0.1", port)
            local l <close> = assert(net.listen{port = 0})
            local waits = {
              function() task.sleep(5) end,
              function() if c then c:read("l") end end,
              function() l:accept() end,
              function() task.wait_signal("SIGUSR2") end,
              function() net.lookup("localhost") task.sleep(5) end,
            }
            for k = 1, 40 do pcall(waits[k % #waits + 1]) end
          end
        end)
      end
      for _ = 1, 60 do
        task.sleep(g:int(0, 20) / 1000)
        g:pick(victims):cancel()
      end
      for _, t in ipairs(clients) do
        local ok2, e2 = t:join()
        assert(ok2 ~= nil or e2 == nil, tostring(e2))
      end
      for _, t in ipairs(victims) do
        t:cancel()
        assert.is_true(t.status == "cancelled" or t.status == "done",
          t.status .. ": " .. tostring(t.err))
      end
      s:close()
      assert.is_true(serving:join())
      for _ = 1, 400 do
        if s:active() == 0 then break end
        task.sleep(0.005)
      end
      assert.equal(0, s:active())
    end, 30)
    task.on_error(prev)
    assert(ok, ("seed %d: %s"):format(seed, tostring(err)))
    -- each failure reported once, with the handler's line and a traceback
    -- (and no other task failed)
    for _, tb in ipairs(reports) do
      assert.matches("^spec/fuzz_spec%.lua:%d+: a handler fails\n" ..
        "stack traceback:\n", tb)
    end
    assert.equal(failed, #reports)
  end)

  it("uv: a write's table emptied right after the call sends intact data",
    function()
    local server = uv.new_tcp()
    assert(server:bind("127.0.0.1", 0))
    local port = server:getsockname().port
    local got, eof = {}, false
    server:listen(8, function()
      local c = uv.new_tcp()
      server:accept(c)
      c:read_start(function(_, d)
        if d then got[#got + 1] = d else eof = true; c:close() end
      end)
    end)
    local function piece(i)
      return string.rep(string.char(65 + i % 26), 50000) .. i
    end
    local cl = uv.new_tcp()
    cl:connect("127.0.0.1", port, function()
      local t = {}
      for i = 1, 40 do t[i] = piece(i) end
      cl:write(t, function() cl:close() end)
      for i = 1, 40 do t[i] = nil end -- the only references, gone
      collectgarbage()
      collectgarbage()
      local junk = {} -- luacheck: ignore (churns the allocator)
      for i = 1, 500 do junk[i] = string.rep("Z", 5000) .. i end
    end)
    run_loop(function() return eof end)
    server:close()
    local want = {}
    for i = 1, 40 do want[i] = piece(i) end
    assert.is_true(table.concat(got) == table.concat(want))
  end)

  it("net: closing a socket from another task wakes its waiters",
    function()
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local c = assert(net.connect("127.0.0.1", port))
      local peer = assert(s:accept(2))
      local results = {}
      local reader = task.spawn(function()
        results.read = table.pack(c:read("l"))
      end)
      local writer = task.spawn(function()
        local big = string.rep("w", 65536)
        for _ = 1, 2000 do
          local ok, err = c:write(big)
          if not ok then results.write = err return end
        end
      end)
      local acceptor = task.spawn(function()
        results.accept = table.pack(s:accept())
      end)
      task.sleep(0.05)
      c:close()
      c:close() -- twice is harmless
      s:close()
      reader:join()
      writer:join()
      acceptor:join()
      assert.same({nil, "closed", n = 2}, results.read)
      assert.equal("closed", results.write)
      assert.same({nil, "closed", n = 2}, results.accept)
      peer:close()
    end)
  end)

  it("errors raised in uv callbacks are reported, the host shuts down "
    .. "cleanly", function()
    local script = tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local uv = require "uv"
local which = arg[1]
local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
local port = server:getsockname().port
server:listen(8, function()
  local c = uv.new_tcp()
  server:accept(c)
  c:read_start(function(err, data)
    if which == "read" then error("boom in read") end
    c:write(data or "", function()
      if which == "write" then error("boom in write") end
    end)
  end)
end)
local client = uv.new_tcp()
client:connect("127.0.0.1", port, function(err)
  if which == "connect" then error("boom in connect") end
  client:write("x")
  client:read_start(function(_, data)
    if which == "close" then
      client:close(function() error("boom in close") end)
    end
  end)
end)
]])
    f:close()
    for _, which in ipairs{"connect", "read", "write", "close"} do
      local out, err, code = run_host({script, which})
      assert.equal(1, code, which .. ": " .. err)
      assert.matches("boom in " .. which, err)
      assert.is_nil(err:find("Sanitizer", 1, true), err)
      assert.is_nil(err:find("runtime error", 1, true), err)
      _ = out
    end
  end)

  it("a task that swallows cancels and is closed by force leaves no " ..
    "stale wait behind", function()
    -- task:cancel() closes by force a task that catches the marker and
    -- waits again; its wait (deadline, slot) is left on the socket, and
    -- the next waiter there must not queue the same deadline twice (the
    -- heap would keep it forever: a spin, and a use after free)
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local c = assert(net.connect("127.0.0.1", port))
      local peer = assert(s:accept(2))
      local big = string.rep("w", 65536)
      local stubborn = {
        function() c:settimeout(0.2); c:read("l") end,
        function()
          c:settimeout(0.2)
          for _ = 1, 2000 do if not c:write(big) then break end end
        end,
      }
      for _, wait in ipairs(stubborn) do
        local t = task.spawn(function()
          while true do pcall(wait) end
        end)
        assert.is_true(t:cancel())
        assert.equal("cancelled", t.status)
      end
      c:settimeout(0.05) -- the same socket, waited on again
      assert.same({nil, "timeout"}, {c:read("l")})
      assert.same({nil, "timeout"}, {c:flush()})
      peer:close() -- (so that c's queued output fails and c closes now)
      c:close()
      collectgarbage()
      local t0 = task.now()
      task.sleep(0.3) -- the stale deadlines pass: nothing spins
      assert.is_true(task.now() - t0 < 2)
      s:close()
    end, 5)
  end)

  it("a task closed by force does not keep the host alive", function()
    -- task:cancel closes by force a task that swallows 8 cancels; the
    -- wait it was parked in must go with it (else its socket stays ref'd,
    -- its sleep or signal watcher alive, and the host never exits)
    local script = tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local net = require "net"
local task = require "task"
local which = arg[1]
local s = assert(net.listen{port = 0})
local _, port = s:sockname()
local c = assert(net.connect("127.0.0.1", port))
local peer = assert(s:accept(1))
local waits = { -- (not write: queued output keeps the host alive anyway)
  read = function() c:read("l") end,
  sleep = function() task.sleep(1000) end,
  signal = function() task.wait_signal("SIGUSR2") end,
  accept = function() s:accept() end,
}
local t = task.spawn(function()
  while true do pcall(waits[which]) end -- swallows every cancel
end)
task.sleep(0.01)
assert(t:cancel())
print(t.status)
s:close() -- c and peer are left open, as a careless script would
]])
    f:close()
    for _, which in ipairs{"read", "sleep", "signal", "accept"} do
      local out, err, code = run_host({script, which}, nil,
        "timeout -s KILL 5") -- a host that does not exit is killed (137)
      assert.equal(0, code, which .. ": " .. err)
      assert.equal("cancelled\n", out, which)
    end
  end)

  it("uv: a NUL byte never cuts a name or an address short", function()
    -- C sees a Lua string only up to its first NUL: "localhost\0.x" must
    -- not resolve localhost, "127.0.0.1\0junk" must not bind 127.0.0.1.
    -- Names that cannot exist fail as unknown names; addresses raise.
    local ok, _, name = uv.getaddrinfo("localhost\0.example.com")
    assert.is_nil(ok)
    assert.equal("EAI_NONAME", name)
    ok, _, name = uv.getaddrinfo("localhost", "http\0junk")
    assert.is_nil(ok)
    assert.equal("EAI_NONAME", name)
    ok, _, name = uv.getservbyname("http\0x", "tcp")
    assert.is_nil(ok)
    assert.equal("EAI_NONAME", name)
    ok, _, name = uv.getprotobyname("tcp\0x")
    assert.is_nil(ok)
    assert.equal("EAI_PROTOCOL", name)
    local t = uv.new_tcp()
    local ok2, err = pcall(t.bind, t, "127.0.0.1\0junk", 0)
    assert.is_false(ok2)
    assert.matches("NUL byte", err)
    ok2, err = pcall(t.connect, t, "127.0.0.1\0junk", 1, function() end)
    assert.is_false(ok2)
    assert.matches("NUL byte", err)
    t:close()
    local u = uv.new_udp()
    ok2, err = pcall(u.send, u, "x", "127.0.0.1\0junk", 9, function() end)
    assert.is_false(ok2)
    assert.matches("NUL byte", err)
    u:close()
    ok2, err = pcall(uv.getnameinfo, {ip = "127.0.0.1\0x"})
    assert.is_false(ok2)
    assert.matches("NUL byte", err)
    ok2, err = pcall(uv.os_setenv, "LUAHOST_X\0Y", "1")
    assert.is_false(ok2)
    assert.matches("NUL byte", err)
    assert.is_nil(uv.os_getenv("LUAHOST_X"))
    for _, opts in ipairs{{args = {"a\0b"}}, {env = {"A=1\0B=2"}},
                          {cwd = "/\0tmp"}} do
      ok2, err = pcall(uv.spawn, "/bin/true", opts)
      assert.is_false(ok2)
      assert.matches("NUL", err)
    end
    ok2, err = pcall(uv.spawn, "/bin/true\0x", {})
    assert.is_false(ok2)
    assert.matches("NUL byte", err)
  end)
end)
