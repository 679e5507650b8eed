-- scripts/http_server.lua against one hostile client at a time (issue 11
-- section 2): bodies dripped a byte at a time, chunked bodies of tiny
-- chunks, control characters in header values reflected into responses,
-- a repeated Host, chunked framing in HTTP/1.0, a head timeout in the
-- middle of a line. Bounds (time, memory, CPU) are loose enough for a
-- loaded 2-core machine and tight enough to catch the blow-ups seen
-- before (1 MiB of 1-byte chunks: 22 MB and 0.7 s of CPU each).
local task = require "task"
local H = require "hostile_helper"

local has_lfs, lfs = pcall(require, "lfs")
local ASAN = os.getenv("LUAHOST_ASAN") == "1"

-- CPU seconds (user + system) a process used so far.
local function cpu(pid)
  local f = assert(io.open(("/proc/%d/stat"):format(pid)))
  local s = f:read("a")
  f:close()
  local fields = {}
  for w in s:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = w end
  -- (utime and stime are fields 14 and 15, 12 and 13 after the name)
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

-- Send raw bytes, half-close, read the whole answer.
local function ask(port, raw, secs)
  local c = assert(H.connect(port, secs or 5))
  assert(c:write(raw))
  c:shutdown()
  local r = c:read("a") or ""
  c:close()
  return r
end

local function status(resp)
  return tonumber(resp:match("^HTTP/1%.1 (%d+)"))
end

describe("http_server.lua against one hostile client", function()
  if not has_lfs then
    it("needs lfs (lua-filesystem)", function()
      pending("http_server.lua needs lfs (lua-filesystem)")
    end)
    return
  end

  local procs = {}
  local function start(opts, root)
    local p, port = H.start_script("http_server.lua",
      {"127.0.0.1", "0", root or "spec"}, opts)
    procs[#procs + 1] = p
    return p, port
  end
  after_each(function()
    for _, p in ipairs(procs) do p:stop() end
    procs = {}
  end)

  it("drops bodies dripped a byte at a time (408)", function()
    -- 30 clients each send a head, then drip its body one byte every
    -- 0.2 s (Content-Length or chunked); with HTTP_BODY_TIMEOUT=1 each
    -- gets 408 and a close within seconds, while /hello is served
    local proc, port = start{shell = "export HTTP_BODY_TIMEOUT=1"}
    run_task(function()
      local heads = {
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked" ..
          "\r\n\r\n64\r\n"}
      local answers, ts = {}, {}
      local t0 = task.now()
      for i = 1, 30 do
        ts[i] = task.spawn(function()
          local c = assert(H.connect(port, 30))
          assert(c:write(heads[i % 2 + 1]))
          local answer
          task.spawn(function() answer = c:read("a") or "" end)
          for _ = 1, 99 do
            if answer then break end
            if not c:write("b") then break end
            task.sleep(0.2)
          end
          for _ = 1, 200 do
            if answer then break end
            task.sleep(0.05)
          end
          answers[i] = {answer, task.now() - t0}
          c:close()
        end)
      end
      local served = 0
      for _ = 1, 10 do
        assert.matches("hello world\n$", ask(port,
          "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"))
        served = served + 1
        task.sleep(0.1)
      end
      for _, t in ipairs(ts) do t:join() end
      for i = 1, 30 do
        local answer, took = answers[i][1], answers[i][2]
        assert.is_truthy(answer, "client " .. i .. " was never answered")
        assert.equal(408, status(answer), ("client %d: %q"):format(i,
          answer:sub(1, 60)))
        assert.matches("Connection: close\r\n", answer)
        assert.is_true(took < 8, ("client %d answered after %.1f s")
          :format(i, took))
      end
      assert.equal(10, served)
    end, 60)
    proc:stop_quiet()
  end)

  it("chunked bodies of tiny chunks cost little (413)", function()
    local proc, port = start()
    local pid = assert(proc:host_pid())
    run_task(function()
      -- 10 clients at once, each 1 MiB of 1-byte chunks
      local before_rss, before_cpu = H.rss_kb(pid), cpu(pid)
      local body = ("1\r\nx\r\n"):rep(1024 * 1024)
      local results, ts = {}, {}
      for i = 1, 10 do
        ts[i] = task.spawn(function()
          local c = assert(H.connect(port, 30))
          local got
          task.spawn(function() got = c:read("a") or "" end)
          c:write("POST /echo HTTP/1.1\r\nHost: x\r\n" ..
            "Transfer-Encoding: chunked\r\n\r\n")
          for k = 1, #body, 65536 do -- (fails once the server closes)
            if got or not c:write(body:sub(k, k + 65535)) then break end
          end
          for _ = 1, 600 do
            if got then break end
            task.sleep(0.05)
          end
          results[i] = got
          H.reset(c)
        end)
      end
      for _, t in ipairs(ts) do t:join() end
      local grew, spent = H.rss_kb(pid) - before_rss, cpu(pid) - before_cpu
      if os.getenv("HOSTILE_DEBUG") then
        io.stderr:write(("tiny chunks: rss +%d kB, cpu %.2f s\n"):format(
          grew, spent))
      end
      for i = 1, 10 do
        assert.equal(413, status(results[i] or ""), "client " .. i)
      end
      assert.is_true(spent < 2, ("%.2f s of CPU"):format(spent))
      if not ASAN then
        assert.is_true(grew < 32 * 1024, ("rss grew by %d kB"):format(grew))
      end
      -- chunks of a sensible size still make a body
      local parts = {}
      for i = 1, 1000 do parts[i] = ("64\r\n%s\r\n"):format(("z"):rep(100)) end
      local r = ask(port, "POST /echo HTTP/1.1\r\nHost: x\r\n" ..
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" ..
        table.concat(parts) .. "0\r\n\r\n", 20)
      assert.equal(200, status(r))
      assert.matches("Content%-Length: 100000\r\n", r)
    end, 90)
    proc:stop_quiet()
  end)

  it("refuses control characters in header values, never reflects them",
    function()
    local proc, port = start()
    run_task(function()
      local cases = {
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r" ..
          "Set-Cookie: injected=1\r\nContent-Length: 2\r\n\r\nhi",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: a\0b\r\n" ..
          "Content-Length: 2\r\n\r\nhi",
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\0y\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: \27[31m\r\n\r\n",
      }
      for _, raw in ipairs(cases) do
        local r = ask(port, raw)
        assert.equal(400, status(r), ("%q"):format(raw))
        assert.is_nil(r:find("injected", 1, true))
        assert.matches("Connection: close\r\n", r)
      end
      -- a tab is fine, and an ordinary type is reflected
      local r = ask(port, "POST /echo HTTP/1.1\r\nHost: x\r\n" ..
        "Content-Type: text/plain;\tcharset=utf-8\r\nContent-Length: 2" ..
        "\r\nConnection: close\r\n\r\nhi")
      assert.equal(200, status(r))
      assert.matches("Content%-Type: text/plain;\tcharset=utf%-8\r\n", r)
    end)
    proc:stop_quiet()
  end)

  it("a Location made of a path holds no raw control character",
    function()
    -- a directory whose name holds CR LF: its redirect (301 to the
    -- name with a slash) must not split the response's head
    local root = os.tmpname()
    os.remove(root)
    assert(lfs.mkdir(root))
    local evil = "d\r\nSet-Cookie: injected=1"
    assert(lfs.mkdir(root .. "/" .. evil))
    local ok, err = pcall(function()
      local proc, port = start(nil, root)
      run_task(function()
        local r = ask(port, "GET /d%0D%0ASet-Cookie:%20injected=1 " ..
          "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert.equal(301, status(r))
        assert.is_nil(r:find("\r\nSet-Cookie", 1, true), r)
        -- %-encoded (how much is encoded is the encoder's choice), and
        -- naming the directory once decoded
        local loc = r:match("\r\nLocation: ([^\r\n]*)\r\n")
        assert.truthy(loc, r)
        assert.is_nil(loc:find("[%c]"))
        assert.equal("/" .. evil .. "/", (loc:gsub("%%(%x%x)", function(h)
          return string.char(tonumber(h, 16))
        end)))
      end)
      proc:stop_quiet()
    end)
    lfs.rmdir(root .. "/" .. evil)
    lfs.rmdir(root)
    assert(ok, err)
  end)

  it("a repeated Host and chunked HTTP/1.0 get 400 and a close", function()
    local proc, port = start()
    run_task(function()
      local r = ask(port, "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
      assert.equal(400, status(r))
      -- HTTP/1.0 with Transfer-Encoding: the framing cannot be trusted
      -- (RFC 9112 6.1); what follows must not be read as a request
      local c = assert(H.connect(port))
      assert(c:write("POST /echo HTTP/1.0\r\nConnection: keep-alive\r\n" ..
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" ..
        "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"))
      local all = c:read("a") -- the server closes without our shutdown
      c:close()
      assert.equal(400, status(all))
      assert.matches("Connection: close\r\n", all)
      assert.is_nil(all:find("hello world", 1, true))
    end)
    proc:stop_quiet()
  end)

  it("a head timeout in the middle of a line answers 408", function()
    local proc, port = start{shell = "export HTTP_HEAD_TIMEOUT=1"}
    run_task(function()
      for _, partial in ipairs{
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Partial: abc",
        "GET /hel",
        "GET /hello HTTP/1.1\r\nHo"} do
        local c = assert(H.connect(port, 10))
        assert(c:write(partial))
        local t0 = task.now()
        local r = c:read("a") or "" -- until the server closes
        c:close()
        assert.equal(408, status(r), ("%q"):format(partial))
        assert.is_true(task.now() - t0 < 6)
      end
    end, 40)
    proc:stop_quiet()
  end)
end)
