-- Hostile peers against net servers written inline (loopback, ephemeral
-- ports): garbage, resets, silence, trickles, floods, connection storms.
-- After each attack the server must still answer a normal client, other
-- clients must not have noticed, and nothing may be left open.
-- Seeds: LUAHOST_FUZZ_SEED replays one; a failure message names its seed.
local net = require "net"
local task = require "task"
local uv = require "uv"
local H = require "hostile_helper"

-- A line server: answers every line with "<n>:<line>\n" (n = its length),
-- a too-long line with "E:line too long" (the rest of it dropped).
-- resting: its conns rest after each answer (then the shelf takes them).
local function line_server(opts, resting)
  opts = opts or {}
  opts.port = 0
  local s = assert(net.listen(opts))
  local _, port = s:sockname()
  task.spawn(s.serve, s, function(c)
    while true do
      local line, err = c:read("l")
      if line then
        if not c:write(#line, ":", line, "\n") then return end
      elseif err == "line too long" then
        if not c:write("E:line too long\n") then return end
      else
        return
      end
      if resting and c:rest() then return end
    end
  end)
  return s, port
end

local function stop(s)
  s:close()
  for _ = 1, 400 do
    if s:active() == 0 then break end
    task.sleep(0.005)
  end
  assert.equal(0, s:active())
  task.yield()
end

-- A normal client's exchange; true if every answer was right.
local function normal_client(port, rounds)
  local c = assert(H.connect(port))
  for i = 1, rounds or 3 do
    local msg = "hello " .. i
    assert(c:write(msg, "\n"))
    assert.equal(#msg .. ":" .. msg, c:read("l"))
  end
  c:close()
  return true
end

local function my_rss()
  return H.rss_kb(uv.os_getpid())
end

describe("hostile peers (inline net servers)", function()
  after_each(assert_clean)

  it("read('n') at the end of input fails cleanly; blanks stay bounded",
    function()
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local got = {}
      local t = task.spawn(function()
        local c = assert(s:accept(5))
        got[1] = table.pack(c:read("n")) -- after a flood of blanks
        got[2] = table.pack(c:read("n")) -- at the end of input
        c:close()
      end)
      local c = assert(H.connect(port))
      local before = my_rss()
      local blanks = string.rep(" \t\r\n", 1 << 16) -- 256 KiB
      for _ = 1, 64 do assert(c:write(blanks)) end   -- 16 MiB of blanks
      assert(c:write("42 "))
      c:shutdown()
      t:join()
      c:close()
      assert.same({42, n = 1}, got[1])
      assert.same({nil, "closed", n = 2}, got[2])
      -- the blanks were dropped as they came, not buffered (16 MiB)
      assert.is_true(my_rss() - before < 8 * 1024,
        ("rss grew by %d kB"):format(my_rss() - before))
      s:close()
    end)
  end)

  it("survives seeded garbage, split writes and resets; others unharmed",
    function()
    local seed = H.seed(20261124)
    local ok, err = pcall(run_task, function()
      local g = H.prng(seed)
      local s, port = line_server{max_line = 200, idle_timeout = 2}
      -- a well-behaved client talks all along
      local steady_done = false
      local steady = task.spawn(function()
        local c = assert(H.connect(port))
        for i = 1, 200 do
          if steady_done then break end
          assert(c:write("steady ", i, "\n"))
          assert.equal(#("steady " .. i) .. ":steady " .. i, c:read("l"))
          task.sleep(0.002)
        end
        c:close()
      end)
      local attackers = {}
      for a = 1, 40 do
        local sub = H.prng(g:next())
        attackers[a] = task.spawn(function()
          local c = H.connect(port)
          if not c then return end
          local data = H.garbage(sub, sub:int(0, 4000))
          local i = 1
          while i <= #data do -- split at random points
            local n = sub:int(1, 700)
            if not c:write(data:sub(i, i + n - 1)) then break end
            i = i + n
            if sub:chance(0.3) then task.yield() end
            if sub:chance(0.2) then c:settimeout(0); c:recv(); c:settimeout(5) end
          end
          local r = sub:int(1, 4)
          if r == 1 then H.reset(c)
          elseif r == 2 then c:close()
          elseif r == 3 then c:shutdown(); c:settimeout(1); c:read("a")
          else c:settimeout(0.05); c:read("a") end
          c:close()
        end)
      end
      for _, t in ipairs(attackers) do t:join() end
      steady_done = true
      assert.same({}, {steady:join()}) -- no error in the steady client
      assert.is_true(normal_client(port))
      stop(s)
    end, 30)
    assert(ok, ("seed %d: %s"):format(seed, tostring(err)))
  end)

  it("peers of resting conns on the shelf: split lines, resets, " ..
     "half-closes, floods, silence; others unharmed", function()
    local seed = H.seed(20261206)
    local core = debug.getregistry()["luahost.private"].require("net.core")
    local ok, err = pcall(run_task, function()
      local g = H.prng(seed)
      local s, port = line_server({max_line = 200, idle_timeout = 4}, true)
      local n = 40
      local cs = {}
      for i = 1, n do
        cs[i] = assert(H.connect(port))
        assert(cs[i]:write("first ", i, "\n"))
        assert.equal(#("first " .. i) .. ":first " .. i, cs[i]:read("l"))
      end
      for _ = 1, 500 do -- (bounded: all of them on the shelf)
        if core.stats().shelved == n then break end
        task.sleep(0.01)
      end
      assert.equal(n, core.stats().shelved)
      local peers = {}
      for i = 1, n do
        local sub, c = H.prng(g:next()), cs[i]
        peers[i] = task.spawn(function()
          local r = sub:int(1, 7)
          if r == 1 then -- a line in pieces: the first wakes it
            local msg = "split " .. i
            for k = 1, #msg do
              assert(c:write(msg:sub(k, k)))
              if sub:chance(0.3) then task.sleep(0.01) end
            end
            assert(c:write("\n"))
            assert.equal(#msg .. ":" .. msg, c:read("l"))
          elseif r == 2 then H.reset(c)
          elseif r == 3 then c:close()
          elseif r == 4 then -- half-close with a line: answered, then closed
            assert(c:write("half ", i, "\n"))
            c:shutdown()
            c:settimeout(5)
            assert.equal(#("half " .. i) .. ":half " .. i .. "\n",
              c:read("a"))
          elseif r == 5 then -- past max_line
            assert(c:write((H.garbage(sub, 300):gsub("\n", "x"))))
            c:settimeout(5)
            local l = c:read("l")
            assert.is_true(l == nil or l == "E:line too long", tostring(l))
          elseif r == 6 then -- silent past idle_timeout: closed
            c:settimeout(5)
            assert.same({nil, "closed"}, {c:read("l")})
          else -- lines pipelined in one write
            local k = sub:int(2, 20)
            local out = {}
            for j = 1, k do out[j] = "p" .. j .. "\n" end
            assert(c:write(table.concat(out)))
            for j = 1, k do
              assert.equal(#("p" .. j) .. ":p" .. j, c:read("l"))
            end
          end
          c:close()
        end)
      end
      for _, t in ipairs(peers) do
        assert.same({}, {t:join()})
      end
      assert.is_true(normal_client(port)) -- (its conn never rests long)
      stop(s)
      assert.equal(0, core.stats().shelved)
    end, 30)
    assert(ok, ("seed %d: %s"):format(seed, tostring(err)))
  end)

  it("conns made, closed, shelved and woken in a random order: every " ..
     "handle block comes back (bindings/blocks.c)", function()
    local seed = H.seed(20261207)
    local core = debug.getregistry()["luahost.private"].require("net.core")
    local stats = core.stats
    local ok, err = pcall(run_task, function()
      local g = H.prng(seed)
      local blocks0, chunks0 = stats().blocks, stats().block_chunks
      local s = assert(net.listen{port = 0, max_per_address = 1000,
                                  backlog = 512})
      local _, port = s:sockname()
      -- each line answered; after "r" the conn rests (the shelf takes it
      -- 100 ms later, and the next line wakes it)
      task.spawn(s.serve, s, function(c)
        while true do
          local l = c:read("l")
          if not l or not c:write(l, "\n") then return end
          if l == "r" and c:rest() then return end
        end
      end)
      local open = {}
      local function ask(c, l)
        assert(c:write(l, "\n"))
        assert.equal(l, c:read("l"))
      end
      -- (conns mostly made in the first half, mostly closed in the
      -- second: the count crosses chunks both ways)
      for step = 1, 600 do
        local r, up = g:int(1, 10), step <= 300
        if #open < 250 and r <= (up and 6 or 1) then
          local c = assert(H.connect(port))
          ask(c, "x")
          open[#open + 1] = c
        elseif #open > 0 and r <= 7 then -- (whatever its state)
          local i = g:int(1, #open)
          open[i]:close()
          open[i] = open[#open]
          open[#open] = nil
        elseif #open > 0 then
          ask(open[g:int(1, #open)], g:chance(0.5) and "r" or "y")
        end
        -- now and then long enough for the shelf to take the rested
        if g:chance(0.02) then task.sleep(0.12) end
      end
      for _, c in ipairs(open) do ask(c, "z") end
      for _, c in ipairs(open) do c:close() end
      stop(s)
      -- (a block goes with its handle's close, a turn of the loop later)
      for _ = 1, 500 do
        if stats().blocks == blocks0 then break end
        task.sleep(0.01)
      end
      assert.equal(blocks0, stats().blocks)
      assert.equal(0, stats().shelved)
      -- the emptied chunks went back, but for one kept
      assert.is_true(stats().block_chunks <= chunks0 + 1,
        ("%d chunks, %d before"):format(stats().block_chunks, chunks0))
    end, 60)
    assert(ok, ("seed %d: %s"):format(seed, tostring(err)))
  end)

  it("closes a silent peer after the idle timeout", function()
    run_task(function()
      local s, port = line_server{idle_timeout = 0.2}
      local c = assert(H.connect(port))
      local t0 = task.now()
      c:settimeout(5)
      local d, err = c:read("a") -- the server closes: "a" ends
      local took = task.now() - t0
      assert.equal("", d, err)
      assert.is_true(took >= 0.15 and took < 2, "closed after " .. took)
      c:close()
      assert.is_true(normal_client(port))
      stop(s)
    end)
  end)

  it("the default idle timeout is 60 s and is what accepted conns get",
    function()
    run_task(function()
      assert.equal(60, net.defaults.idle_timeout)
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local t = task.spawn(function()
        local c = assert(s:accept(5))
        local tmo = c:gettimeout()
        c:close()
        return tmo
      end)
      local c = assert(H.connect(port))
      assert.equal(60, t:join())
      c:close()
      s:close()
    end)
  end)

  it("a slow trickle cannot grow a line past max_line", function()
    run_task(function()
      local s, port = line_server{max_line = 64, idle_timeout = 1}
      local c = assert(H.connect(port))
      c:settimeout(3)
      for _ = 1, 30 do -- 150 bytes, 5 at a time, no newline
        assert(c:write("aaaaa"))
        task.sleep(0.01)
      end
      assert.equal("E:line too long", c:read("l"))
      assert(c:write("\nok\n")) -- the rest of the long line, then a line
      assert.equal("2:ok", c:read("l"))
      c:close()
      stop(s)
    end)
  end)

  it("a peer that floods and never reads leaves memory bounded", function()
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      task.spawn(s.serve, s, function(c) -- echo
        while true do
          local d = c:recv()
          if not d or not c:write(d) then return end
        end
      end)
      -- a raw uv client: keeps up to 4 MiB queued, offers up to 64 MiB,
      -- stops once nothing moved for 0.3 s (the server pushed back)
      local h = uv.new_tcp()
      local connected
      h:connect("127.0.0.1", port, function(err) connected = err or true end)
      for _ = 1, 500 do
        if connected then break end
        task.sleep(0.01)
      end
      assert.is_true(connected)
      local before = my_rss()
      local chunk = string.rep("x", 65536)
      local offered, stuck, last_q = 0, 0, -1
      for _ = 1, 2000 do
        while offered < 64 << 20 and h:write_queue_size() < 4 << 20 do
          h:write(chunk)
          offered = offered + #chunk
        end
        local q = h:write_queue_size()
        if q == last_q then stuck = stuck + 1 else stuck = 0 end
        last_q = q
        if stuck >= 30 or offered >= 64 << 20 then break end
        task.sleep(0.01)
      end
      local taken = offered - h:write_queue_size()
      local grew = my_rss() - before
      assert.is_true(offered < 64 << 20, "no backpressure: all was taken")
      assert.is_true(grew < 16 * 1024, ("rss grew by %d kB"):format(grew))
      assert.is_true(taken < 16 << 20, ("the peer took %d bytes"):format(taken))
      h:close_reset()
      local c2 = assert(H.connect(port))
      assert(c2:write("still here"))
      assert.equal("still here", c2:read(10))
      c2:close()
      stop(s)
    end)
  end)

  it("a storm of connections past max_connections, then a normal client",
    function()
    local seed = H.seed(7)
    run_task(function()
      local g = H.prng(seed)
      local s, port = line_server{max_connections = 20, idle_timeout = 1}
      local raw = {}
      local done = 0
      for i = 1, 500 do -- raw uv sockets: open, maybe send, drop or reset
        local h = uv.new_tcp()
        raw[i] = h
        h:connect("127.0.0.1", port, function(err)
          done = done + 1
          if err or h:is_closing() then return end
          if g:chance(0.5) then h:write("x\n") end
          if g:chance(0.5) then h:close_reset() else h:close() end
        end)
      end
      for _ = 1, 1000 do
        if done == 500 then break end
        task.sleep(0.01)
      end
      assert.equal(500, done)
      for _, h in ipairs(raw) do if not h:is_closing() then h:close() end end
      assert.is_true(s:active() <= 20)
      assert.is_true(normal_client(port))
      for _ = 1, 400 do
        if s:active() == 0 then break end
        task.sleep(0.01)
      end
      assert.equal(0, s:active())
      stop(s)
    end, 20)
  end)

  it("an error in one handler stays in it", function()
    local reports = {}
    local prev = task.on_error(function(tb, t)
      reports[#reports + 1] = {tb, t}
    end)
    finally(function() task.on_error(prev) end)
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      task.spawn(s.serve, s, function(c)
        local line = c:read("l")
        if line == "boom" then
          local x = nil
          return x.field -- a runtime error in this handler only
        end
        c:write("fine\n")
        c:read("l")
      end)
      local good = assert(H.connect(port))
      local bad = assert(H.connect(port))
      assert(bad:write("boom\n"))
      bad:settimeout(2)
      assert.equal("", bad:read("a")) -- the failing handler's conn closed
      bad:close()
      assert(good:write("x\n"))
      assert.equal("fine", good:read("l"))
      good:close()
      assert.is_true(s:active() <= 1)
      stop(s)
    end)
    -- reported once (not printed here), where it failed, with the stack
    assert.equal(1, #reports)
    assert.matches("^spec/hostile_net_spec%.lua:%d+: attempt to index a " ..
      "nil value %(local 'x'%)\nstack traceback:\n.*in local 'handler'",
      reports[1][1])
    assert.is_nil(reports[1][2]) -- a handler: no task record
  end)

  it("a task still asleep when the host exits leaks nothing", function()
    -- (under ASan the leak check at exit is what this spec looks at)
    local script = tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local task = require "task"
local uv = require "uv"
task.spawn(function() task.sleep(100) end)
task.spawn(function() task.sleep(0.001); task.sleep(50) end)
if arg[1] == "error" then error("bye") end
if arg[1] == "exit" then os.exit(3, true) end
task.sleep(0.05)
uv.kill(uv.os_getpid(), "sigint")
task.sleep(5)
]])
    f:close()
    for mode, want in pairs{error = 1, exit = 3, int = 130} do
      local _, err, code = run_host({script, mode})
      assert.equal(want, code, mode .. ": " .. err)
      assert.is_nil(err:find("Sanitizer", 1, true), err)
    end
  end)

  it("a timeout past 24.8 days is long, not none", function()
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local c = assert(H.connect(port))
      local peer = assert(s:accept(2))
      for _, secs in ipairs{2147484, 3e6, 1e7, 9.99e8} do
        c:settimeout(secs)
        local got = c:gettimeout()
        assert.is_true(got ~= nil and got >= 2147483, tostring(secs) ..
          " gave " .. tostring(got))
      end
      c:settimeout(1e7)
      c:settimeout(0.05) -- still usable, and short ones still short
      assert.same({nil, "timeout"}, {c:read("l")})
      assert.same({nil, "timeout"}, {s:accept(0.05)})
      -- accept(1e7) waits (is not "no timeout, return now" either)
      local t = task.spawn(function() return s:accept(1e7) end)
      task.sleep(0.05)
      assert.equal("running", t.status)
      t:cancel()
      c:close()
      peer:close()
      s:close()
    end)
  end)

  it("a udp receive with the longest timeout works", function()
    run_task(function()
      local u = assert(net.udp{port = 0})
      local _, port = u:sockname()
      local v = assert(net.udp{})
      local t = task.spawn(function() return u:recvfrom(1e7) end)
      assert(v:sendto("hi", "127.0.0.1", port))
      assert.equal("hi", (t:join()))
      u:settimeout(2147483.647) -- exactly INT_MAX ms
      assert(v:sendto("again", "127.0.0.1", port))
      assert.equal("again", u:recv())
      u:close()
      v:close()
    end)
  end)

  it("task.sleep(math.huge) sleeps, it does not return at once", function()
    run_task(function()
      local ts = {}
      for i, secs in ipairs{math.huge, 1e300, 1e19, 1e16} do
        ts[i] = task.spawn(function() task.sleep(secs) return "woke" end)
      end
      task.sleep(0.05)
      for i, t in ipairs(ts) do
        assert.equal("running", t.status, "sleep #" .. i)
        t:cancel()
        assert.equal("cancelled", t.status)
      end
    end)
  end)

  it("net options take huge timeouts (math.huge is forever)", function()
    run_task(function()
      for _, secs in ipairs{1e7, math.huge} do
        local s = assert(net.listen{port = 0, idle_timeout = secs})
        local _, port = s:sockname()
        local c = assert(net.connect("127.0.0.1", port, {timeout = secs}))
        local peer = assert(s:accept(2))
        assert.is_true(peer:gettimeout() > 1e6)
        assert.is_true(c:gettimeout() > 1e6)
        assert.is_table(net.lookup("localhost", {timeout = secs}))
        c:close()
        peer:close()
        s:close()
      end
    end)
  end)

  it("a udp socket nobody reads keeps at most a bounded queue", function()
    run_task(function()
      local u = assert(net.udp{port = 0})
      local _, port = u:sockname()
      u:settimeout(0.01)
      assert.same({nil, "timeout"}, {u:recvfrom()}) -- now it is receiving
      local v = assert(net.udp{})
      local big = string.rep("u", 60000)
      local before = my_rss()
      for _ = 1, 20 do -- 2000 datagrams of 60 kB (120 MB) in bursts
        for _ = 1, 100 do v:sendto(big, "127.0.0.1", port) end
        task.yield()
      end
      local grew = my_rss() - before
      assert.is_true(grew < 16 * 1024, ("rss grew by %d kB"):format(grew))
      local n = 0
      while u:recvfrom(0.05) do n = n + 1 end
      assert.is_true(n >= 1 and n <= 64 + 200, "queued: " .. n)
      -- empty and maximal datagrams still go through
      assert(v:sendto("", "127.0.0.1", port))
      assert.equal("", (u:recvfrom(2)))
      local max = string.rep("m", 65507)
      assert(v:sendto(max, "127.0.0.1", port))
      assert.equal(max, (u:recvfrom(2)))
      assert.same({nil, "EMSGSIZE"}, {v:sendto(max .. "x", "127.0.0.1", port)})
      u:close()
      v:close()
    end)
  end)

  it("handlers failing by the dozen release their slots; helpers of a " ..
    "failed handler see its conn closed", function()
    local script = tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local net = require "net"
local task = require "task"
local s = assert(net.listen{port = 0, max_connections = 5})
local _, port = s:sockname()
local helper_saw
task.spawn(s.serve, s, function(c)
  local line = c:read("l")
  if line == "helper" then -- a helper task waits on the same conn
    task.spawn(function() helper_saw = select(2, c:read("l")) end)
    task.yield()
    error("handler with a helper fails")
  elseif line == "boom" then
    error("handler fails")
  end
  c:write("ok\n")
end)
local ts = {}
for i = 1, 50 do
  ts[i] = task.spawn(function()
    local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
    c:write(i == 1 and "helper\n" or "boom\n")
    local rest = c:read("a")
    c:close()
    assert(rest == "", "a failed handler's conn must close")
  end)
end
for _, t in ipairs(ts) do assert(t:join() == nil) end
local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
c:write("hi\n")
print(c:read("l"), s:active(), helper_saw)
c:close()
s:close()
]])
    f:close()
    local out, err, code = run_host({script})
    assert.equal(0, code, err)
    assert.equal("ok\t0\tclosed\n", out)
    local _, n = err:gsub("handler fails", "")
    local _, m = err:gsub("handler with a helper fails", "")
    assert.equal(49, n)
    assert.equal(1, m)
    assert.is_nil(err:find("Sanitizer", 1, true), err)
  end)

  it("a unix socket path is never cut short (too long, or a NUL byte)",
    function()
    run_task(function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. shell_quote(dir)))
      local long = dir .. "/" .. string.rep("a", 300)
      local cut = long:sub(1, 107) -- what sun_path would have kept
      local r = {net.listen{path = long}}
      assert.same({nil, "ENAMETOOLONG"}, {r[1], r[2]})
      -- the message names the path, cut to 200 bytes
      assert.equal("listen " .. long:sub(1, 200) .. "...: ENAMETOOLONG " ..
        "(name too long)", r[3])
      r = {net.connect{path = long}}
      assert.same({nil, "ENAMETOOLONG"}, {r[1], r[2]})
      assert.matches("^connect /.*%.%.%.: ENAMETOOLONG", r[3])
      assert.is_nil(io.open(cut, "r"), "a socket at the cut path")
      local nul = dir .. "/x\0y"
      assert.matches("path contains a NUL byte", select(2,
        pcall(net.listen, {path = nul})))
      assert.matches("path contains a NUL byte", select(2,
        pcall(net.connect, {path = nul})))
      assert.is_nil(io.open(dir .. "/x", "r"), "a socket at the cut path")
      -- the same checks as uv's pipe_bind (one helper: bindings/sock.c)
      assert.matches("empty path", select(2, pcall(net.listen, {path = ""})))
      assert.matches("empty path", select(2,
        pcall(net.connect, {path = ""})))
      local p = uv.new_pipe()
      assert.matches("empty path", select(2, pcall(uv.pipe_bind, p, "")))
      assert.same("ENAMETOOLONG", select(3, uv.pipe_bind(p, long)))
      uv.close(p)
      os.execute("rm -rf " .. shell_quote(dir))
    end)
  end)

  it("a NUL byte never cuts a name or an address short", function()
    -- a name checked as a Lua string ("ends in .example.com") must not
    -- resolve as what precedes the NUL ("localhost")
    run_task(function()
      local evil = "localhost\0.example.com"
      assert.same({nil, "ENOTFOUND"}, {net.lookup(evil)})
      -- (the third value, the message, shows the NUL byte escaped)
      local bad = "localhost\\x00.example.com"
      assert.same({nil, "ENOTFOUND", "connect " .. bad .. ":9: ENOTFOUND " ..
        "(name does not resolve)"}, {net.connect(evil, 9, {timeout = 2})})
      assert.same({nil, "ENOTFOUND", "listen " .. bad .. ":0: ENOTFOUND " ..
        "(name does not resolve)"}, {net.listen{host = evil}})
      assert.same({nil, "ENOTFOUND", "listen 127.0.0.1\\x00x:0: " ..
        "ENOTFOUND (name does not resolve)"},
        {net.listen{host = "127.0.0.1\0x"}})
      assert.same({nil, "ENOTFOUND", "udp 127.0.0.1\\x00x:0: ENOTFOUND " ..
        "(name does not resolve)"}, {net.udp{host = "127.0.0.1\0x",
        port = 0}})
      assert.same({nil, "ENOTFOUND"}, {net.service("http\0x")})
      assert.same({nil, "ENOTFOUND"}, {net.service("http", "tcp\0x")})
      assert.same({nil, "ENOTFOUND"}, {net.protocol("tcp\0x")})
      local u = assert(net.udp{})
      assert.matches("invalid IP address", select(2,
        pcall(u.sendto, u, "x", "127.0.0.1\0x", 9)))
      assert.matches("invalid IP address", select(2,
        pcall(u.connect, u, "127.0.0.1\0x", 9)))
      u:close()
      local core = require "net.core"
      assert.matches("invalid IP address", select(2,
        pcall(core.connect, "127.0.0.1\0x", 9)))
      -- still fine without one
      assert.equal(80, net.service("http"))
      assert.equal("http", net.service(80))
      assert.is_table(net.lookup("localhost"))
    end)
  end)

  it("close with linger 0 resets at once, queued output or not", function()
    run_task(function()
      local s = assert(net.listen{port = 0})
      local _, port = s:sockname()
      local server_err
      local t = task.spawn(function()
        local c = assert(s:accept(2))
        c:settimeout(5)
        local big = string.rep("s", 65536)
        while true do -- the echo of a client that never reads
          local d, err = c:recv()
          if not d then server_err = err break end
          local ok, werr = c:write(d, big)
          if not ok then server_err = werr break end
        end
        c:close()
      end)
      local c = assert(H.connect(port))
      c:settimeout(0.3)
      local chunk = string.rep("c", 65536)
      for _ = 1, 1000 do if not c:write(chunk) then break end end
      local t0 = task.now()
      H.reset(c) -- output is queued: a reset must not wait for it
      t:join()
      assert.is_true(task.now() - t0 < 2, "reset after " .. task.now() - t0)
      assert.is_true(server_err == "ECONNRESET" or server_err == "EPIPE",
        tostring(server_err))
      s:close()
    end)
  end)
end)
