-- http.websocket (RFC 6455) against python3's websockets package, both
-- ways, and protocol violations sent as raw frames.
local proc = require "process_helper"
local http = require "http"
local net = require "net"
local task = require "task"

local function q(s) return shell_quote(s) end

local sh = require("common").sh

local function python(script, ...)
  local f = tmpname()
  proc.write(f, script)
  local args = {}
  for i, a in ipairs({...}) do args[i] = q(a) end
  return sh("/usr/bin/python3 " .. q(f) .. " " .. table.concat(args, " "))
end

describe("websocket server with python3 websockets as the client", function()
  local server, port
  setup(function()
    server = proc.start({"spec/support/http_app.lua"})
    port = tonumber(server:wait_for("listening (%d+)", 20))
  end)
  teardown(function() server:stop() end)

  it("echoes text, binary and fragmented messages; pings; closes", function()
    local out = python([[
import asyncio, sys, websockets
async def main():
    url = "ws://127.0.0.1:%s/ws" % sys.argv[1]
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("héllo")
        print("text", await ws.recv())
        await ws.send(bytes(range(256)) * 300)
        b = await ws.recv()
        print("binary", len(b), b == bytes(range(256)) * 300)
        await ws.send(["frag", "ment", "ed"])  # one message, 3 frames
        print("fragments", await ws.recv())
        pong = await ws.ping(b"p")
        await asyncio.wait_for(pong, 5)
        print("pong")
        await ws.close(code=4001, reason="bye")
        print("closed", ws.close_code)
asyncio.run(main())
]], port)
    assert.matches("text héllo\n", out, 1, true)
    assert.matches("binary 76800 True\n", out, 1, true)
    assert.matches("fragments fragmented\n", out, 1, true)
    assert.matches("pong\n", out, 1, true)
    assert.matches("closed 4001\n", out, 1, true)
  end)

  it("closes with 1009 past the message limit and 1007 on bad UTF-8",
    function()
    local out = python([[
import asyncio, sys, websockets
async def main():
    url = "ws://127.0.0.1:%s/ws" % sys.argv[1]
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(b"x" * 200000)
        try:
            await ws.recv()
        except websockets.ConnectionClosed as e:
            print("big", e.rcvd.code if e.rcvd else None)
asyncio.run(main())
]], port)
    assert.matches("big 1009", out, 1, true)
  end)

  it("closes with 1000 when the handler returns, 1011 when it raises",
    function()
    local out = python([[
import asyncio, sys, websockets
async def main():
    url = "ws://127.0.0.1:%s/ws_once" % sys.argv[1]
    async with websockets.connect(url) as ws:
        await ws.send("once")
        print("got", await ws.recv())
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as e:
            print("closed", e.rcvd and e.rcvd.code)
    async with websockets.connect(url) as ws:
        await ws.send("boom")
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as e:
            print("closed", e.rcvd and e.rcvd.code)
asyncio.run(main())
]], port)
    assert.equal("got once\nclosed 1000\nclosed 1011\n", out)
  end)

  it("answers a plain GET on the WebSocket route with 400", function()
    local out = sh(("curl -s -o /dev/null -w '%%{http_code}' " ..
      "http://127.0.0.1:%d/ws"):format(port))
    assert.are.equal("400", out)
    out = sh(("curl -s -i -H 'Upgrade: websocket' -H 'Connection: Upgrade' " ..
      "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' " ..
      "-H 'Sec-WebSocket-Version: 8' http://127.0.0.1:%d/ws"):format(port))
    assert.matches("^HTTP/1.1 426 ", out)
    assert.matches("Sec%-WebSocket%-Version: 13", out)
    -- (a 426 names what to upgrade to, RFC 9110 15.5.22; and Connection
    -- lists Upgrade, 7.8)
    assert.matches("\r\nUpgrade: websocket\r\n", out)
    assert.matches("\r\nConnection: Upgrade\r\n", out)
  end)

  it("logs the upgrade (101) when it happens, once", function()
    local target = "/ws?logged=" .. math.random(1e9)
    local line = '"GET ' .. target:gsub("%p", "%%%0") .. ' HTTP/1%.1" 101 %-\n'
    local c = run_task(function()
      local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      c:write("GET ", target, " HTTP/1.1\r\nHost: x\r\n",
        "Upgrade: websocket\r\nConnection: Upgrade\r\n",
        "Sec-WebSocket-Version: 13\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
      assert.matches("^HTTP/1.1 101 ", c:read("l"))
      return c
    end, 20)
    -- (logged while the WebSocket is open)
    proc.wait(function() return server:err():find(line) end, 10,
      "no access line for the upgrade")
    run_task(function() c:close() end, 10)
    local _, n = server:err():gsub(line, "")
    assert.equal(1, n)
  end)

  -- A raw client: handshake, then frames exactly as given.
  local function raw_frames(frames)
    return run_task(function()
      local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      c:write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" ..
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" ..
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
      local status = c:read("l")
      assert.matches("^HTTP/1.1 101 ", status)
      repeat local l = c:read("l") until l == "\r" or l == nil
      c:write(frames)
      local rest = c:read("a") or ""
      c:close()
      return rest
    end, 20)
  end

  local function close_code(bytes)
    -- the server's close frame: 0x88, length, code
    local i = bytes:find("\136", 1, true)
    assert(i, ("no close frame in %q"):format(bytes))
    return string.unpack(">I2", bytes, i + 2)
  end

  it("enforces masking, reserved bits, UTF-8 and control frame rules",
    function()
    local key = "\0\0\0\0" -- a zero mask leaves the payload as it is
    -- unmasked frame from a client
    assert.are.equal(1002, close_code(raw_frames("\129\2hi")))
    -- reserved bit
    assert.are.equal(1002, close_code(raw_frames("\193\130" .. key .. "hi")))
    -- invalid UTF-8 in a text message
    assert.are.equal(1007, close_code(raw_frames("\129\130" .. key ..
      "\255\254")))
    -- a fragmented ping
    assert.are.equal(1002, close_code(raw_frames("\9\128" .. key)))
    -- a continuation with nothing to continue
    assert.are.equal(1002, close_code(raw_frames("\128\130" .. key .. "hi")))
    -- an unknown opcode
    assert.are.equal(1002, close_code(raw_frames("\131\128" .. key)))
    -- a bad close code
    assert.are.equal(1002, close_code(raw_frames("\136\130" .. key ..
      "\3\237"))) -- 1005 may not be sent
    -- a good close is echoed with its code
    assert.are.equal(1000, close_code(raw_frames("\136\130" .. key ..
      "\3\232")))
  end)
end)

describe("websocket client against python3 websockets as the server",
  function()
  it("exchanges messages, pings, and completes the close handshake",
    function()
    local log = tmpname()
    local script = tmpname()
    proc.write(script, [[
import asyncio, sys, websockets
async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass  # (a code other than 1000/1001 ends the loop this way)
    with open(sys.argv[2], "w") as f:
        f.write("closed %s %s\n" % (ws.close_code, ws.close_reason))
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
]])
    local out = tmpname()
    local pidf = tmpname()
    assert(os.execute(("(/usr/bin/python3 %s x %s & echo $! > %s) > %s")
      :format(q(script), q(log), q(pidf), q(out))))
    local pid = tonumber(proc.slurp(pidf):match("%d+"))
    finally(function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.remove(out)
      os.remove(pidf)
    end)
    proc.wait(function() return proc.slurp(out):match("%d+") end, 20,
      "python websockets server")
    local port = proc.slurp(out):match("%d+")
    run_task(function()
      local ws = assert(http.websocket.connect("ws://127.0.0.1:" .. port ..
        "/"))
      assert(ws:send("hello"))
      assert.are.same({"hello", "text"}, {ws:receive()})
      local blob = ("\0\1\2\255"):rep(50000)
      assert(ws:send(blob, "binary"))
      assert.are.same({blob, "binary"}, {ws:receive()})
      assert(ws:ping("x"))
      assert(ws:send("after ping"))
      assert.are.equal("after ping", (ws:receive()))
      assert.are.equal("x", ws.last_pong)
      assert.has_error(function() ws:send("\255", "text") end)
      assert.has_error(function() ws:send("x", "nope") end)
      assert.is_true(ws:close(4000, "done"))
    end, 30)
    proc.wait(function() return proc.slurp(log) ~= "" end, 10,
      "the server's close")
    assert.are.equal("closed 4000 done\n", proc.slurp(log))
  end)

  it("refuses a server that does not upgrade", function()
    run_task(function()
      local srv = assert(http.listen{port = 0, handler = function(_, res)
        res:send(200, "no\n")
      end})
      local _, port = srv:sockname()
      local ws, err = http.websocket.connect("ws://127.0.0.1:" .. port)
      assert.is_nil(ws)
      assert.matches("handshake refused: 200", err)
      srv:close()
    end)
  end)
  it("fails a 101 with an extension or a protocol it did not offer",
    function()
    run_task(function()
      -- a server that answers every handshake with a good 101 plus the
      -- header lines its path names (the offer it got is echoed first)
      local extra = {
        ["/plain"] = "",
        ["/ext"] = "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        ["/ext2"] = "Sec-WebSocket-Extensions: x-custom; a=1\r\n",
        ["/proto"] = "Sec-WebSocket-Protocol: notoffered\r\n",
        ["/chat"] = "Sec-WebSocket-Protocol: chat\r\n",
        ["/super"] = "Sec-WebSocket-Protocol: superchat\r\n",
        ["/two"] = "Sec-WebSocket-Protocol: chat, superchat\r\n",
      }
      local ls, port = require("common").raw_server(function(c)
        local path = c:read("l"):match("^GET (%S+)")
        local key
        repeat
          local line = c:read("l")
          key = key or line:match("^[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: " ..
            "(%S+)")
        until not line or line == "\r"
        c:write("HTTP/1.1 101 Switching Protocols\r\n" ..
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Accept: " .. http.websocket.accept_key(key) ..
          "\r\n" .. extra[path] .. "\r\n")
        c:read("a") -- until the client closes
        c:close()
      end)
      local base = "ws://127.0.0.1:" .. port
      local function try(path, protocols)
        return http.websocket.connect(base .. path, {protocols = protocols,
          timeout = 5})
      end
      local ws = assert(try("/plain"))
      assert.is_nil(ws.protocol)
      ws:close()
      ws = assert(try("/super", {"chat", "superchat"}))
      assert.are.equal("superchat", ws.protocol)
      ws:close()
      for _, case in ipairs{
        {"/ext"}, {"/ext", {"chat"}}, {"/ext2"},
        {"/proto", {"chat"}}, {"/chat"}, {"/two", {"chat", "superchat"}},
      } do
        local w, err = try(case[1], case[2])
        assert.is_nil(w, case[1])
        assert.matches("^bad handshake answer: ", err)
      end
      ls:close()
    end, 30)
  end)
end)

describe("websocket options", function()
  -- Each case on its own line: the error must name that line of this file
  -- (the caller's), never a line inside lib/.
  it("are checked at once, the error at the caller's line", function()
    local ws = http.websocket
    local url = "ws://127.0.0.1:1/"
    local req, res = {headers = {}}, {_conn = {}}
    local cases = {
      {"max_message: positive number expected, got x",
        function() ws.connect(url, {max_message = "x"}) end},
      {"max_message: positive number expected, got 0",
        function() ws.connect(url, {max_message = 0}) end},
      {"timeout: non-negative number expected, got x",
        function() ws.connect(url, {timeout = "x"}) end},
      {"protocols: a list of strings expected, got string",
        function() ws.connect(url, {protocols = "chat"}) end},
      {"protocols[2]: a token string expected, got number",
        function() ws.connect(url, {protocols = {"a", 5}}) end},
      {'protocols[1]: a token string expected, got "a b"',
        function() ws.connect(url, {protocols = {"a b"}}) end},
      {"headers: table expected, got number",
        function() ws.connect(url, {headers = 5}) end},
      {"headers: name = value strings expected",
        function() ws.connect(url, {headers = {true}}) end},
      {"header X-A: CR, LF, NUL or control byte in value",
        function() ws.connect(url, {headers = {["X-A"] = "a\r\nb"}}) end},
      {"header Host is set by the handshake",
        function() ws.connect(url, {headers = {Host = "x"}}) end},
      {"tls: true, an options table or a tls.context expected, got number",
        function() ws.connect(url, {tls = 1}) end},
      {"tls: unknown option 'bogus'",
        function() ws.connect(url, {tls = {bogus = 1}}) end},
      {"unknown option 'bogus'",
        function() ws.connect(url, {bogus = 1}) end},
      {"table expected, got number",
        function() ws.connect(url, 5) end},
      {"max_message: positive number expected, got x",
        function() ws.accept(req, res, {max_message = "x"}) end},
      {"timeout: non-negative number expected, got x",
        function() ws.accept(req, res, {timeout = "x"}) end},
      {"protocols: a list of strings expected, got string",
        function() ws.accept(req, res, {protocols = "chat"}) end},
      {"unknown option 'headers'",
        function() ws.accept(req, res, {headers = {}}) end},
      {"unknown option 'bogus'",
        function() ws.accept(req, res, {bogus = 1}) end},
      {"table expected, got string",
        function() ws.accept(req, res, "x") end},
    }
    run_task(function()
      for i, c in ipairs(cases) do
        local want, f = c[1], c[2]
        local ok, err = pcall(f)
        assert.is_false(ok, "case " .. i .. " raised nothing")
        local line = debug.getinfo(f, "S").linedefined
        local fname = i <= 14 and "#2 to 'connect'" or
          "#3 to 'accept'"
        assert.are.equal(("spec/http_websocket_spec.lua:%d: bad argument " ..
          "%s (%s)"):format(line, fname, want), err, "case " .. i)
      end
    end)
  end)

  it("a receive timeout before a message leaves the WebSocket open; a " ..
    "stall within one closes it", function()
    run_task(function()
      local got = {}
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        local ws = assert(http.websocket.accept(req, res, {timeout = 0.2}))
        local m, err = ws:receive()
        got[1] = tostring(m) .. " " .. tostring(err) .. " " ..
          tostring(ws.closed)
        ws:send("still here") -- (after the timeout)
        got[2] = (ws:receive())
        -- a frame's first byte, then nothing: closed
        m, err = ws:receive()
        got[3] = tostring(m) .. " " .. tostring(err) .. " " ..
          tostring(ws.closed)
      end})
      local _, port = srv:sockname()
      local ws = assert(http.websocket.connect("ws://127.0.0.1:" .. port ..
        "/", {timeout = 5}))
      assert.are.equal("still here", (ws:receive()))
      assert(ws:send("hello"))
      -- one byte of a frame (FIN, text), then silence on the raw conn
      assert(ws.conn:write("\x81"))
      local m, err = ws:receive()
      assert.is_nil(m)
      assert.is_string(err)
      assert.are.equal("nil timeout nil", got[1]) -- (closed: nil, open)
      assert.are.equal("hello", got[2])
      assert.matches("^nil .* true$", got[3])
      srv:close()
    end, 20)
  end)

  it("offers and picks protocols, sends extra headers", function()
    run_task(function()
      local seen
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        seen = req.headers["x-token"]
        local ws = assert(http.websocket.accept(req, res,
          {protocols = {"v2", "chat"}, timeout = 5, max_message = 1e6}))
        ws:send(ws.protocol or "none")
        ws:receive()
      end})
      local _, port = srv:sockname()
      local url = "ws://127.0.0.1:" .. port .. "/"
      local ws = assert(http.websocket.connect(url, {protocols = {"chat"},
        headers = {["X-Token"] = "t1"}, timeout = 5}))
      assert.are.equal("chat", ws.protocol)
      assert.are.equal("chat", (ws:receive()))
      assert.are.equal("t1", seen)
      ws:close()
      ws = assert(http.websocket.connect(url, {protocols = {}}))
      assert.is_nil(ws.protocol)
      assert.are.equal("none", (ws:receive()))
      ws:close()
      srv:close()
    end, 20)
  end)
end)

describe("scripts/ws_chat.lua", function()
  it("relays messages to everyone in the room, python3 and luahost alike",
    function()
    local p = proc.start({"scripts/ws_chat.lua", "127.0.0.1", "0"})
    finally(function() p:stop() end)
    local port = p:wait_for("chat on http://127%.0%.0%.1:(%d+)/", 20)
    local page = sh(("curl -s http://127.0.0.1:%s/"):format(port))
    assert.matches('new WebSocket', page, 1, true)
    run_task(function()
      local a = assert(http.websocket.connect("ws://127.0.0.1:" .. port ..
        "/ws"))
      assert.are.equal("1 joined", (a:receive()))
      local b = assert(http.websocket.connect("ws://127.0.0.1:" .. port ..
        "/ws"))
      assert.are.equal("2 joined", (a:receive()))
      assert.are.equal("2 joined", (b:receive()))
      assert(a:send("hello"))
      assert.are.equal("1: hello", (a:receive()))
      assert.are.equal("1: hello", (b:receive()))
      b:close()
      assert.are.equal("2 left", (a:receive()))
      a:close()
    end, 20)
    -- a python3 websockets client joins, talks and leaves
    local out = python([[
import asyncio, sys, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%s/ws" % sys.argv[1]) as ws:
        print(await ws.recv())
        await ws.send("hi from python")
        print(await ws.recv())
asyncio.run(main())
]], port)
    assert.matches("^3 joined\n3: hi from python\n$", out)
  end)

  it("drops a client that does not read, at once, and goes on", function()
    local p = proc.start({"scripts/ws_chat.lua", "127.0.0.1", "0"})
    finally(function() p:stop() end)
    local port = p:wait_for("chat on http://127%.0%.0%.1:(%d+)/", 20)
    local url = "ws://127.0.0.1:" .. port .. "/ws"
    run_task(function()
      local a = assert(http.websocket.connect(url))
      assert.are.equal("1 joined", (a:receive()))
      -- (never reads: once its socket buffers are full, its messages queue)
      local stuck = assert(http.websocket.connect(url))
      assert.are.equal("2 joined", (a:receive()))
      local seen, mine = {}, 0
      local reader = task.spawn(function()
        for msg in a:messages() do
          if msg:sub(1, 3) == "1: " then mine = mine + 1
          else seen[#seen + 1] = msg end
        end
      end)
      local line = ("x"):rep(4000)
      for _ = 1, 5000 do -- (20 MB at most: past any socket buffer)
        if seen[1] then break end
        assert(a:send(line))
        task.yield()
      end
      assert.same({"2 dropped (too slow)"}, seen)
      -- the stuck client's connection is gone: what it has not read yet,
      -- then the end
      local n, err = 0, nil
      for _ = 1, 10000 do
        local m, e = stuck:receive()
        if not m then err = e break end
        n = n + 1
      end
      assert.is_truthy(err)
      -- the room goes on for the others
      local before = mine
      assert(a:send("still here"))
      for _ = 1, 500 do
        if mine > before then break end
        task.sleep(0.01)
      end
      assert.is_true(mine > before)
      reader:cancel() -- (it waits in a:receive; close receives too)
      a:close()
    end, 60)
  end)
end)
