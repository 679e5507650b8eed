-- require "socket": LuaSocket's API on tasks. The servers below run in the
-- same process as the LuaSocket clients, so a client call that blocked the
-- loop would deadlock the spec: every passing case proves it parks only
-- its task. Debian's own socket.http and socket.smtp (lua-socket) run
-- unchanged on it.
local socket = require "socket"
local net = require "net"
local task = require "task"

-- A ticker that counts loop turns while fn runs: a stalled loop stops it.
local function ticking(fn)
  local ticks = 0
  local t = task.spawn(function()
    while true do task.sleep(0.01); ticks = ticks + 1 end
  end)
  local res = table.pack(fn())
  t:cancel()
  return ticks, table.unpack(res, 1, res.n)
end

local function serve_once(handler)
  local srv = assert(net.listen{host = "127.0.0.1", port = 0})
  local _, port = srv:sockname()
  task.spawn(function()
    local c = srv:accept(10)
    if c then handler(c); c:close() end
    srv:close()
  end)
  return port
end

describe("socket (LuaSocket on tasks)", function()
  it("is the embedded one, and socket.core is its core", function()
    assert.matches("luahost", socket._VERSION)
    assert.equal(socket, require "socket.core")
  end)

  it("receive: lines (CR dropped), counts, all; prefix; partial on close",
     function()
    run_task(function()
      local port = serve_once(function(c)
        c:write("one\r\ntwo\nthree!")
        task.sleep(0.05)
        c:write("tail")
      end)
      local c = assert(socket.connect("127.0.0.1", port))
      c:settimeout(5)
      assert.equal("one", c:receive())
      assert.equal("two", c:receive("*l"))
      -- (the count includes the prefix, as in LuaSocket)
      assert.equal(">thre", c:receive(5, ">"))
      assert.equal("e!tail", c:receive("*a"))
      local data, err, partial = c:receive(1)
      assert.is_nil(data)
      assert.equal("closed", err)
      assert.equal("", partial)
      c:close()
    end)
  end)

  it("a timeout returns what came, and the loop ran meanwhile", function()
    run_task(function()
      local port = serve_once(function(c)
        c:write("par")
        c:read("a") -- until the client closes
      end)
      local c = assert(socket.connect("127.0.0.1", port))
      c:settimeout(0.3)
      local ticks, data, err, partial = ticking(function()
        return c:receive("*l")
      end)
      assert.is_nil(data)
      assert.equal("timeout", err)
      assert.equal("par", partial)
      assert.is_true(ticks >= 10, "loop stalled: " .. ticks .. " ticks")
      c:close()
    end)
  end)

  it("send returns the last byte index; i and j select a slice", function()
    run_task(function()
      local got
      local port = serve_once(function(c) got = c:read("a") end)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.equal(5, c:send("hello"))
      assert.equal(4, c:send("xyzw", 2, 4))
      c:close()
      local t0 = task.now()
      while got == nil and task.now() - t0 < 5 do task.sleep(0.01) end
      assert.equal("helloyzw", got)
    end)
  end)

  it("connect errors read as LuaSocket's", function()
    run_task(function()
      local c = socket.tcp()
      c:settimeout(2)
      local ok, err = c:connect("127.0.0.1", 1)
      assert.is_nil(ok)
      assert.equal("connection refused", err)
      -- (LuaSocket 3.0 resolves with getaddrinfo and says so)
      local ok2, err2 = socket.connect("nowhere.invalid", 80)
      assert.is_nil(ok2)
      assert.equal("host or service not provided, or not known", err2)
      -- a local address that is no address is bind's failure, returned
      -- (it raised from inside net.connect: socket.connect(host, port,
      -- family) passes the family as the local address)
      local srv = assert(socket.bind("127.0.0.1", 0))
      local _, port = srv:getsockname()
      for _, laddr in ipairs{"inet", "nowhere.invalid"} do
        local c3, err3 = socket.connect("127.0.0.1", port, laddr)
        assert.is_nil(c3)
        assert.equal("host or service not provided, or not known", err3)
      end
      local m = socket.tcp()
      assert.same({nil, "host or service not provided, or not known"},
        {m:bind("nowhere.invalid", 0)})
      local c4 = assert(socket.connect("127.0.0.1", port, "localhost"))
      assert.equal("127.0.0.1", (c4:getsockname()))
      c4:close()
      m:close()
      srv:close()
    end)
  end)

  it("a malformed numeric address is LuaSocket's getaddrinfo failure, " ..
    "returned", function()
    -- (lua5.4 with Debian's LuaSocket gives these; net raised "invalid IP
    -- address" from under each)
    run_task(function()
      local gai = "host or service not provided, or not known"
      assert.same({nil, gai}, {socket.bind("256.0.0.1", 0)})
      assert.same({nil, gai}, {socket.connect("256.1.1.1", 80)})
      assert.same({nil, gai}, {socket.tcp():connect("256.1.1.1", 80)})
      assert.same({nil, gai}, {socket.tcp():bind("256.1.1.1", 0)})
      assert.same({nil, gai}, {socket.tcp6():bind("::g", 0)})
      assert.same({nil, gai}, {socket.tcp6():bind("1::2::3", 0)})
      assert.same({nil, gai}, {socket.udp():setsockname("256.1.1.1", 0)})
      assert.same({nil, gai}, {socket.udp():setpeername("256.1.1.1", 80)})
      assert.same({nil, "Name or service not known"},
        {socket.udp():sendto("x", "256.1.1.1", 80)})
      local t = socket.tcp6()
      assert.equal(1.0, t:bind("::1", 0))
      t:close()
    end)
  end)

  it("bind binds: getsockname answers before listen, a taken port fails " ..
    "at bind", function()
    -- (LuaSocket's results; bind only noted the address, so getsockname
    -- said nil, "not bound" and a taken port failed at listen)
    run_task(function()
      -- (never bound: LuaSocket has no socket to listen on)
      assert.same({nil, "Bad file descriptor"}, {socket.tcp():listen()})
      local s = socket.tcp()
      assert.equal(1.0, s:bind("127.0.0.1", 0))
      local ip, port, family = s:getsockname()
      assert.same({"127.0.0.1", "inet"}, {ip, family})
      assert.matches("^%d+$", port)
      assert.is_true(s:getfd() >= 0)
      assert.same({nil, "Invalid argument"}, {s:bind("127.0.0.1", 0)})
      local taken = socket.tcp()
      assert.same({nil, "address already in use"},
        {taken:bind("127.0.0.1", port)})
      taken:close()
      assert.equal(1.0, s:listen())
      assert.same({"127.0.0.1", port, "inet"}, {s:getsockname()})
      -- bound, then connected: from the bound port
      local c = socket.tcp()
      assert.equal(1.0, c:bind("127.0.0.1", 0))
      local _, cport = c:getsockname()
      assert.equal(1.0, c:connect("127.0.0.1", tonumber(port)))
      assert.equal(cport, select(2, c:getsockname()))
      local a = assert(s:accept())
      assert.equal(tonumber(cport), select(2, a:getpeername()))
      a:close(); c:close(); s:close()
      local s6 = socket.tcp6()
      assert.equal(1.0, s6:bind("::1", 0))
      local ip6, _, family6 = s6:getsockname()
      assert.same({"::1", "inet6"}, {ip6, family6})
      s6:close()
      assert.same({nil, "not bound"}, {s6:getsockname()})
    end)
  end)

  it("tcp6 and udp6 are IPv6 alone, as LuaSocket's; ipv6-v6only false " ..
    "before bind takes IPv4 too", function()
    -- (LuaSocket's results, from lua5.4 in a private network namespace:
    -- its tcp6 and udp6 set IPV6_V6ONLY when they are made)
    run_task(function()
      local s = socket.tcp6()
      assert.equal(1.0, s:bind("::", 0))
      assert.equal(1.0, s:listen())
      local port = select(2, s:getsockname())
      local c = socket.tcp()
      c:settimeout(5)
      assert.same({nil, "connection refused"},
        {c:connect("127.0.0.1", port)})
      c:close()
      local c6 = socket.tcp6()
      c6:settimeout(5)
      assert.equal(1.0, c6:connect("::1", port))
      c6:close()
      s:close()
      local d = socket.tcp6()
      assert.equal(1.0, d:setoption("ipv6-v6only", false))
      assert.equal(1.0, d:bind("::", 0))
      assert.equal(1.0, d:listen())
      c = socket.tcp()
      c:settimeout(5)
      assert.equal(1.0, c:connect("127.0.0.1", select(2, d:getsockname())))
      c:close()
      d:close()
      local u = socket.udp6()
      assert.equal(1.0, u:setsockname("::", 0))
      local u4 = socket.udp()
      assert.equal(1, u4:sendto("x", "127.0.0.1", select(2, u:getsockname())))
      u:settimeout(0.3)
      assert.same({nil, "timeout"}, {u:receive()})
      local v = socket.udp6()
      assert.equal(1.0, v:setoption("ipv6-v6only", false))
      assert.equal(1.0, v:setsockname("::", 0))
      assert.equal(1, u4:sendto("y", "127.0.0.1", select(2, v:getsockname())))
      v:settimeout(5)
      assert.equal("y", (v:receive()))
      u:close(); v:close(); u4:close()
    end, 20)
  end)

  it("receive and send coerce their arguments as LuaSocket's", function()
    -- (LuaSocket's results and messages, from lua5.4; "3" was an invalid
    -- pattern, 5 a prefix that was no string, and send("x", "a") leaked
    -- "attempt to compare string with number")
    run_task(function()
      local srv = assert(socket.bind("127.0.0.1", 0))
      local _, port = srv:getsockname()
      local c = assert(socket.connect("127.0.0.1", tonumber(port)))
      local a = assert(srv:accept())
      c:settimeout(5)
      a:settimeout(5)
      assert.equal(13.0, c:send("hello world\r\n"))
      assert.equal("he", a:receive(2))
      assert.same({"llo", nil, nil}, {a:receive("3")})
      assert.same({"5 world", nil, nil}, {a:receive("*l", 5)})
      assert.same({"1.5", nil, nil}, {a:receive(" 2 ", 1.5)})
      local function err(f)
        local ok, e = pcall(f)
        assert.is_false(ok)
        return (e:gsub("^[^:]*:%d+: ", ""))
      end
      assert.equal("bad argument #2 to 'send' (number expected, got string)",
        err(function() local r = c:send("x", "a"); return r end))
      assert.equal("bad argument #3 to 'send' (number expected, got string)",
        err(function() local r = c:send("x", 1, "b"); return r end))
      assert.equal("bad argument #1 to 'send' (string expected, got table)",
        err(function() local r = c:send({}); return r end))
      assert.equal("bad argument #1 to 'receive' (invalid receive pattern)",
        err(function() local r = a:receive("2x"); return r end))
      assert.equal("bad argument #2 to 'receive' (string expected, got " ..
        "boolean)", err(function() local r = a:receive(1, true); return r end))
      -- (numeric strings are numbers, fractions cut toward 0)
      assert.same({3.0, nil, nil}, {c:send("abcdef", "0x2", " 3 ")})
      assert.same({6.0, nil, nil}, {c:send("abcdef", 2.7, -1.5)})
      assert.equal("bcbcdef", a:receive(7))
      a:close(); c:close(); srv:close()
    end)
  end)

  it("a reset reads as LuaSocket's \"closed\"", function()
    run_task(function()
      local srv = assert(net.listen{host = "127.0.0.1", port = 0})
      local _, port = srv:sockname()
      local c = assert(socket.connect("127.0.0.1", port))
      c:settimeout(5)
      local a = assert(srv:accept())
      c:send("unread\n")
      task.sleep(0.05)
      a:setopt("linger", {true, 0}) -- (a zero linger: close is a reset)
      a:close()
      srv:close()
      task.sleep(0.05)
      -- (LuaSocket's pierror.h: a reset or an abort is "closed")
      assert.same({nil, "closed", ""}, {c:receive("*l")})
      assert.same({nil, "closed", 0.0}, {c:send("x")})
      c:close()
    end)
  end)

  it("bind/accept, select on a server and a client", function()
    run_task(function()
      local srv = assert(socket.bind("127.0.0.1", 0))
      local _, port = srv:getsockname()
      srv:settimeout(5)
      local r, _, err = socket.select({srv}, nil, 0.05)
      assert.same({}, r)
      assert.equal("timeout", err)
      local client = task.spawn(function()
        local c = assert(socket.connect("127.0.0.1", tonumber(port)))
        task.sleep(0.1)
        c:send("after select\n")
        c:settimeout(5)
        c:receive("*a") -- until the server side closes
        c:close()
      end)
      r = socket.select({srv}, nil, 5)
      assert.equal(srv, r[1])
      local c = assert(srv:accept())
      c:settimeout(5)
      r = socket.select({c}, {}, 5)
      assert.equal(c, r[1])
      assert.equal("after select", c:receive())
      c:close()
      srv:close()
      client:join()
    end)
  end)

  it("udp: setsockname, sendto/receivefrom, setpeername/send/receive",
     function()
    run_task(function()
      local a, b = socket.udp(), socket.udp()
      assert(a:setsockname("127.0.0.1", 0))
      local ip, port = a:getsockname()
      assert.equal(5, b:sendto("hello", ip, port))
      a:settimeout(5)
      local data, from_ip = a:receivefrom()
      assert.equal("hello", data)
      assert.equal("127.0.0.1", from_ip)
      assert(b:setpeername(ip, port))
      assert.equal(3, b:send("abc"))
      assert.equal("ab", a:receive(2)) -- cut to size, as recv(2) does
      a:settimeout(0.05)
      assert.same({nil, "timeout"}, {a:receive()})
      a:close(); b:close()
    end)
  end)

  it("dns, gettime, sleep, try/protect, skip", function()
    run_task(function()
      local ip, info = socket.dns.toip("localhost")
      assert.equal("127.0.0.1", ip)
      assert.equal("localhost", info.name)
      assert.equal(net.hostname(), socket.dns.gethostname())
      assert.is_nil((socket.dns.toip("nowhere.invalid")))
      -- LuaSocket 3.0's answers (lua5.4 with Debian's LuaSocket gives
      -- the same): getaddrinfo's message for connect and getaddrinfo,
      -- gethostbyaddr's name for an address, {} for no host, a name
      -- given to udp:sendto is a failure, not an argument error
      assert.same({nil, "host or service not provided, or not known"},
        {socket.dns.getaddrinfo("nowhere.invalid")})
      assert.same({nil, "host or service not provided, or not known"},
        {socket.connect("nowhere.invalid", 80)})
      assert.same({nil, "host not found"}, {socket.dns.toip("")})
      assert.equal(net.reverse("127.0.0.1"),
        select(2, socket.dns.toip("127.0.0.1")).name)
      assert.same({{}, "http"}, {socket.dns.getnameinfo(nil, 80)})
      local u = socket.udp()
      assert.same({nil, "Name or service not known"},
        {u:sendto("x", "localhost", 9)})
      u:close()
      assert.is_true(math.abs(socket.gettime() - os.time()) < 2)
      local t0 = task.now()
      socket.sleep(0.05)
      assert.is_true(task.now() - t0 >= 0.04)
      local f = socket.protect(function(x)
        socket.try(x, "failed here")
        return "ok"
      end)
      assert.same({nil, "failed here"}, {f(false)})
      assert.equal("ok", f(true))
      assert.equal(3, socket.skip(2, 1, 2, 3))
    end)
  end)

  it("raises naming the function on a wrong argument", function()
    assert.has_error(function() socket.tcp():settimeout("x") end,
      "bad argument #1 to 'settimeout' (number expected)")
    assert.has_error(function() socket.select(1) end,
      "bad argument #1 to 'select' (table expected)")
    assert.has_error(function() socket.tcp().receive(42) end,
      "bad argument #1 to 'receive' (tcp{client} expected)")
  end)

  it("runs Debian's socket.http unchanged, without stalling the loop",
     function()
    run_task(function()
      local http = require "socket.http"
      local ltn12 = require "ltn12"
      local port = serve_once(function(c)
        local req = c:read("l")
        repeat local h = c:read("l") until h == "\r" or h == "" or h == nil
        task.sleep(0.2) -- the client waits meanwhile: the ticker must run
        local body = "you asked for " .. req:match("^GET (%S+)")
        c:write("HTTP/1.1 200 OK\r\nContent-Length: ", #body,
          "\r\nConnection: close\r\n\r\n", body)
      end)
      local sink = {}
      local ticks, ok, code = ticking(function()
        return http.request{url = "http://127.0.0.1:" .. port .. "/x?y=1",
          sink = ltn12.sink.table(sink)}
      end)
      assert.equal(1, ok)
      assert.equal(200, code)
      assert.equal("you asked for /x?y=1", table.concat(sink))
      assert.is_true(ticks >= 10, "loop stalled: " .. ticks .. " ticks")
    end)
  end)

  it("runs Debian's socket.smtp unchanged against a server in the same process",
     function()
    run_task(function()
      local smtp = require "socket.smtp"
      local received = {}
      local port = serve_once(function(c)
        c:settimeout(5)
        c:write("220 test ESMTP\r\n")
        while true do
          local line = c:read("l")
          if not line then break end
          line = line:gsub("\r$", "")
          received[#received + 1] = line
          if line:match("^EHLO") then
            c:write("250-test\r\n250 OK\r\n")
          elseif line == "DATA" then
            c:write("354 go on\r\n")
            repeat
              local l = c:read("l"):gsub("\r$", "")
              received[#received + 1] = l
            until l == "."
            c:write("250 queued\r\n")
          elseif line == "QUIT" then
            c:write("221 bye\r\n")
            break
          else
            c:write("250 OK\r\n")
          end
        end
      end)
      local ok, err = smtp.send{from = "<a@example.invalid>",
        rcpt = "<b@example.invalid>", server = "127.0.0.1", port = port,
        source = smtp.message{headers = {subject = "hi"}, body = "text"}}
      assert.equal(1, ok, err)
      local all = table.concat(received, "\n")
      assert.matches("MAIL FROM:<a@example.invalid>", all, 1, true)
      assert.matches("RCPT TO:<b@example.invalid>", all, 1, true)
      assert.matches("Subject: hi", all, 1, true)
      assert.matches("\ntext\n", all, 1, true)
    end)
  end)

  it("LUAHOST_SYSTEM_SOCKET=1 gives back the system LuaSocket", function()
    local out, err, code = run_host({"-e",
      "print(require('socket')._VERSION)"}, nil,
      "LUAHOST_SYSTEM_SOCKET=1")
    assert.equal(0, code, err)
    assert.matches("^LuaSocket [%d.]+\n$", out) -- not "(luahost)"
  end)
end)

describe("socket receive against LuaSocket itself", function()
  -- The same receive calls on the same bytes (arriving in the same small
  -- pieces) by lua5.4 with Debian's LuaSocket and by luahost: every
  -- result equal (patterns "*l", "*a", counts with 0, prefixes; partial
  -- results at the end of input).
  it("gives LuaSocket's results for 300 random cases", function()
    math.randomseed(20261205)
    local random = math.random
    local pieces = {"a", "b", "\n", "\r\n", "\r", "xyz", "12", " ", "\0"}
    local prefixes = {"", "pre", "\r", "0123456789abcdef"}
    local cases, hex = {"return {"}, {}
    for n = 1, 300 do
      local t = {}
      for i = 1, random(0, 30) do t[i] = pieces[random(#pieces)] end
      local calls = {}
      for i = 1, random(1, 6) do
        local r = random(1, 10)
        local pattern = r <= 5 and '"*l"' or r <= 6 and '"*a"' or
          tostring(random(0, 12))
        local prefix = random(4) == 1 and
          ("%q"):format(prefixes[random(#prefixes)]) or "nil"
        calls[i] = ("{%s, %s}"):format(pattern, prefix)
      end
      local data = table.concat(t)
      cases[#cases + 1] = ("{calls = {%s}},"):format(table.concat(calls,
        ", "))
      hex[n] = data:gsub(".", function(ch)
        return ("%02x"):format(ch:byte())
      end)
    end
    cases[#cases + 1] = "}"
    local cases_file, data_file = tmpfile(table.concat(cases, "\n")),
      tmpfile(table.concat(hex, "\n") .. "\n")
    local function run(client)
      local port_file = tmpname()
      os.remove(port_file)
      local pid_file = tmpname()
      assert(os.execute(("/usr/bin/python3 spec/support/" ..
        "socket_receive_server.py %s %s & echo $! > %s"):format(
        shell_quote(port_file), shell_quote(data_file),
        shell_quote(pid_file))))
      local pid = assert(io.open(pid_file)):read("a"):match("%d+")
      local port
      for _ = 1, 400 do -- (20 s at most)
        local f = io.open(port_file)
        port = f and f:read("a"):match("^%d+$")
        if f then f:close() end
        if port then break end
        os.execute("sleep 0.05")
      end
      assert(port, "the receive server did not start")
      local h = assert(io.popen(client .. " spec/support/" ..
        "socket_receive_client.lua " .. shell_quote(cases_file) .. " " ..
        port .. " 2>&1"))
      local out = h:read("a")
      h:close()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.remove(port_file)
      return out
    end
    -- (lua5.4 with the system's paths, not this suite's)
    local ref = run("env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_CPATH " ..
      "-u LUA_CPATH_5_4 timeout -s KILL 120 lua5.4")
    local ours = run("timeout -s KILL 120 " .. shell_quote(LUAHOST))
    assert.matches("^LuaSocket 3", ref)
    assert.matches("^LuaSocket [^\n]*luahost", ours)
    local rl, ol = {}, {}
    for line in ref:gmatch("[^\n]+") do rl[#rl + 1] = line end
    for line in ours:gmatch("[^\n]+") do ol[#ol + 1] = line end
    assert.equal(301, #rl, ref)
    for i = 2, #rl do
      assert.equal(rl[i], ol[i], "case " .. (i - 1))
    end
  end)

  it("select, send, receive, shutdown: LuaSocket's results for 3 x 300 " ..
    "random steps", function()
    -- (spec/support/socket_select_cases.lua: one process, a server, its
    -- clients and the connections it accepted, two udp sockets; select
    -- with a timeout of 0 sees what the kernel holds, a udp datagram
    -- too, and its results are as LuaSocket makes them)
    for seed = 1, 3 do
      local function run(cmd)
        local h = assert(io.popen(("%s spec/support/" ..
          "socket_select_cases.lua %d 300 2>&1"):format(cmd, seed)))
        local out = h:read("a")
        h:close()
        return out
      end
      local ref = run("env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_CPATH " ..
        "-u LUA_CPATH_5_4 timeout -s KILL 120 lua5.4")
      local ours = run("timeout -s KILL 120 " .. shell_quote(LUAHOST))
      local rl, ol = {}, {}
      for line in ref:gmatch("[^\n]+") do rl[#rl + 1] = line end
      for line in ours:gmatch("[^\n]+") do ol[#ol + 1] = line end
      assert.equal(300, #rl, ref)
      for i = 1, #rl do
        assert.equal(rl[i], ol[i], ("seed %d, step %d"):format(seed, i))
      end
    end
  end)
end)
