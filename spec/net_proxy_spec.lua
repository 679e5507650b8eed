-- The PROXY protocol (v1, v2) on net.listen{proxy_protocol = ...}: real
-- clients (curl --haproxy-protocol, python3 sending v2 bytes), a strict
-- parser (bad headers close the connection, never reach the handler), and
-- the parser fuzzed in process (under ASan with make asan).
local proc = require "process_helper"
local net = require "net"
local core = require "net.core"
local task = require "task"

local function q(s) return shell_quote(s) end

local sh = require("common").sh

-- Send pieces (python bytes literals, written as Lua strings), each its
-- own send, then read until the server closes (bounded).
local function raw(port, pieces, secs)
  local f = tmpname()
  proc.write(f, table.concat(pieces, "\0\0SPLIT\0\0"))
  return sh(("/usr/bin/python3 -c %s %d %s"):format(q([[
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(15)
parts = open(sys.argv[2], "rb").read().split(b"\0\0SPLIT\0\0")
for i, p in enumerate(parts):
    if i: time.sleep(0.05)
    s.sendall(p)
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
        if out.endswith(b"\n") and b"END" in out: break
except Exception as e:
    out += b"<" + str(e).encode() + b">"
sys.stdout.buffer.write(out)
]]), port, f), secs or 30)
end

-- Closed by the server with nothing sent (a reset when input was left
-- unread).
local function refused(out)
  return out == "" or out == "<[Errno 104] Connection reset by peer>"
end

local SIG = "\r\n\r\n\0\r\nQUIT\n"
local function v2(cmd, fam, body)
  return SIG .. string.char(0x20 | cmd, fam) .. string.pack(">I2", #body)
    .. body
end
local function v4body(a, b, sp, dp)
  local function ip(s)
    local t = {}
    for x in s:gmatch("%d+") do t[#t + 1] = string.char(tonumber(x)) end
    return table.concat(t)
  end
  return ip(a) .. ip(b) .. string.pack(">I2I2", sp, dp)
end

describe("PROXY protocol with real clients", function()
  local server, port
  setup(function()
    server = proc.start({"spec/support/proxy_app.lua"},
      {env = "PROXY_TIMEOUT=1"})
    port = tonumber(server:wait_for("listening (%d+)", 20))
  end)
  teardown(function() server:stop() end)

  it("curl --haproxy-protocol (v1): peername is the client", function()
    local out = sh(("curl -s --haproxy-protocol http://127.0.0.1:%d/"):format(
      port))
    -- curl sends its own connection's addresses: the client is 127.0.0.1
    -- with curl's port, proxyname the socket's peer (same host here)
    assert.matches("^peer 127%.0%.0%.1 %d+ proxy 127%.0%.0%.1\n$", out)
  end)

  it("a v1 header names another client; data after it is kept", function()
    local out = raw(port, {"PROXY TCP4 203.0.113.7 127.0.0.1 4711 80\r\n" ..
      "hello\nEND\n"})
    assert.equal("peer 203.0.113.7 4711 proxy 127.0.0.1 hello\n" ..
      "peer 203.0.113.7 4711 proxy 127.0.0.1 END\n", out)
    out = raw(port, {"PROXY TCP6 2001:db8::1 ::1 65535 443\r\nEND\n"})
    assert.equal("peer 2001:db8::1 65535 proxy 127.0.0.1 END\n", out)
  end)

  it("a v2 header (TCP4, TCP6, TLVs), even split byte by byte", function()
    local h = v2(1, 0x11, v4body("198.51.100.9", "127.0.0.1", 5555, 80))
    assert.equal("peer 198.51.100.9 5555 proxy 127.0.0.1 END\n",
      raw(port, {h .. "END\n"}))
    local six = ("\32\1\13\184" .. ("\0"):rep(11) .. "\5"):rep(1) ..
      ("\0"):rep(15) .. "\1" .. string.pack(">I2I2", 1234, 443)
    assert.equal("peer 2001:db8::5 1234 proxy 127.0.0.1 END\n",
      raw(port, {v2(1, 0x21, six) .. "END\n"}))
    -- a TLV (type 0x04 NOOP) after the addresses is skipped
    local tlv = v4body("192.0.2.1", "127.0.0.1", 1, 2) .. "\4\0\3abc"
    assert.equal("peer 192.0.2.1 1 proxy 127.0.0.1 END\n",
      raw(port, {v2(1, 0x11, tlv) .. "END\n"}))
    -- split inside the signature, the version, the length, the addresses
    local pieces, from = {}, 1
    for _, to in ipairs{1, 6, 12, 13, 15, 16, 21, #h} do
      pieces[#pieces + 1] = h:sub(from, to)
      from = to + 1
    end
    pieces[#pieces + 1] = "END\n"
    assert.equal("peer 198.51.100.9 5555 proxy 127.0.0.1 END\n",
      raw(port, pieces))
  end)

  it("LOCAL (a health check) keeps the socket's own peer", function()
    local out = raw(port, {v2(0, 0x00, "") .. "END\n"})
    assert.matches("^peer 127%.0%.0%.1 %d+ proxy %- END\n$", out)
    out = raw(port, {"PROXY UNKNOWN\r\nEND\n"})
    assert.matches("^peer 127%.0%.0%.1 %d+ proxy %- END\n$", out)
  end)

  it("no header or a bad one: closed, never data for the handler",
    function()
    for _, bad in ipairs{
      "END\n",                                         -- no header
      "GET / HTTP/1.0\r\n\r\nEND\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nEND\n",         -- no CR
      "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\nEND\n",      -- two spaces
      "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\nEND\n",     -- bad address
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\nEND\n",   -- bad port
      "PROXY TCP4 ::1 ::1 1 2\r\nEND\n",               -- wrong family
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\nEND\n",
      "PROXY " .. ("9"):rep(120) .. "\r\nEND\n",       -- oversized v1
      v2(1, 0x12, v4body("1.2.3.4", "5.6.7.8", 1, 2)) .. "END\n", -- UDP
      v2(1, 0x55, "") .. "END\n",                      -- unknown family
      v2(1, 0x11, "\1\2\3") .. "END\n",                -- short addresses
      v2(2, 0x11, v4body("1.2.3.4", "5.6.7.8", 1, 2)) .. "END\n", -- cmd
      SIG .. "\x31\x11\0\12" .. v4body("1.2.3.4", "5.6.7.8", 1, 2) ..
        "END\n",                                       -- version 3
      SIG .. "\x21\x11\x20\0" .. "END\n",              -- oversized v2
      "\r\n\r\n\0\r\nQUIx\n\x21\x11\0\12END\n",        -- bad signature
    } do
      assert.is_true(refused(raw(port, {bad})), bad)
    end
    assert.matches("invalid PROXY header", server:err())
  end)

  it("a client that sends half a header is closed at the deadline",
    function()
    local t0 = os.time()
    local out = sh(("/usr/bin/python3 -c %s %d"):format(q([[
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(20)
s.sendall(b"PROXY TCP4 1.2.3.4")
print(repr(s.recv(10)))
]]), port))
    assert.equal("b''\n", out)
    assert.is_true(os.time() - t0 <= 10)
    assert.matches("timeout", server:err())
  end)

  it("the deadline bounds the whole header, not each piece", function()
    -- a byte every 0.2 s: each piece is in time, the header is not (1 s)
    local out = sh(("/usr/bin/python3 -c %s %d"):format(q([[
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t0 = time.monotonic()
try:
    for b in b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n":
        s.sendall(bytes([b]))
        time.sleep(0.2)
        # the server's close: its FIN (it lingers, dropping the rest)
        s.setblocking(False)
        try:
            if s.recv(10) == b"":
                print("closed after", round(time.monotonic() - t0))
                break
        except BlockingIOError:
            pass
        s.setblocking(True)
    else:
        print("sent all")
except OSError:
    print("closed after", round(time.monotonic() - t0))
]]), port))
    assert.matches("^closed after [12]\n$", out)
  end)
end)

describe("PROXY protocol against nginx", function()
  it("names the client nginx names, and refuses no more than the " ..
    "protocol's rules (2 x 1,500 random headers)", function()
    if os.execute("command -v nginx >/dev/null 2>&1") ~= true then
      pending("nginx is not installed")
      return
    end
    for seed = 1, 2 do
      local work = tmpname()
      os.remove(work)
      assert(os.execute("mkdir " .. q(work)))
      local out = sh(("timeout -s KILL 600 /usr/bin/python3 " ..
        "spec/support/proxy_nginx_diff.py %s %s %d 1500 2>&1"):format(
        q(LUAHOST), q(work), seed), 700)
      os.execute("rm -rf " .. q(work))
      local alike, differ = out:match(
        "checked %d+, accepted alike (%d+), differ (%d+)\n$")
      assert.truthy(alike, out)
      assert.equal("0", differ, out)
      assert.truthy(tonumber(alike) > 600, out)
    end
  end)
end)

describe("PROXY protocol trusted senders", function()
  it("refuses a header from a peer outside trusted", function()
    local s = proc.start({"spec/support/proxy_app.lua"},
      {env = "PROXY_TRUSTED=10.0.0.0/8,fd00::/8"})
    finally(function() s:stop() end)
    local port = tonumber(s:wait_for("listening (%d+)", 20))
    assert.is_true(refused(raw(port,
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nEND\n"})))
    assert.matches("untrusted", s:err())
  end)

  it("accepts it from a trusted one", function()
    local s = proc.start({"spec/support/proxy_app.lua"},
      {env = "PROXY_TRUSTED=10.0.0.0/8,127.0.0.0/8"})
    finally(function() s:stop() end)
    local port = tonumber(s:wait_for("listening (%d+)", 20))
    local out = raw(port, {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nEND\n"})
    assert.equal("peer 1.2.3.4 1 proxy 127.0.0.1 END\n", out)
  end)

  it("checks its options", function()
    local function e(pp)
      local ok, err = pcall(net.listen, {proxy_protocol = pp})
      assert.is_false(ok)
      assert.matches("listen", err)
    end
    e("yes")
    e{trusted = {"10.0.0.0/33"}}
    e{trusted = {"nonsense"}}
    e{trusted = "10.0.0.0/8"}
    e{timeout = -1}
    e{other = 1}
  end)
end)

describe("PROXY header parser fuzz", function()
  local parse = core.proxy_parse
  local goods = {
    "PROXY TCP4 203.0.113.7 127.0.0.1 4711 80\r\n",
    "PROXY TCP6 2001:db8::1 ::1 65535 443\r\n",
    "PROXY UNKNOWN ffff::1 ::1 1 2\r\n",
    v2(1, 0x11, v4body("198.51.100.9", "127.0.0.1", 5555, 80)),
    v2(1, 0x21, ("\1"):rep(36)),
    v2(0, 0x00, ""),
    v2(1, 0x11, v4body("1.2.3.4", "5.6.7.8", 1, 2) .. ("\4\0\1x"):rep(50)),
  }

  it("parses every prefix as incomplete, the whole as its length",
    function()
    for _, g in ipairs(goods) do
      for i = 1, #g - 1 do
        assert.equal(0, parse(g:sub(1, i)), g)
      end
      assert.equal(#g, parse(g))
      assert.equal(#g, parse(g .. "trailing data"))
    end
  end)

  it("never reads past its input nor crashes on mutations", function()
    local rnd = math.random
    math.randomseed(18)
    local n = 0
    local deadline = os.clock() + 5
    for i = 1, 60000 do
      if os.clock() > deadline then break end
      local g = goods[i % #goods + 1]
      local b = {g:byte(1, -1)}
      for _ = 1, rnd(1, 4) do
        local k = rnd(1, 4)
        if k == 1 then b[rnd(1, #b)] = rnd(0, 255)          -- flip
        elseif k == 2 then table.remove(b, rnd(1, #b))      -- truncate
        elseif k == 3 then table.insert(b, rnd(1, #b + 1), rnd(0, 255))
        else for _ = 1, rnd(1, 200) do b[#b + 1] = rnd(0, 255) end end
        if #b == 0 then b[1] = 0 end
      end
      local s = string.char(table.unpack(b))
      local r, ip = parse(s)
      assert.is_true(r == nil or (r >= 0 and r <= #s), s)
      if r and r > 0 and ip then
        assert.is_true(net.lookup ~= nil and type(ip) == "string")
      end
      n = n + 1
    end
    assert.is_true(n >= 1000)
    -- oversized and wrong signatures, random garbage
    assert.is_nil(parse(SIG .. "\x21\x11\xff\xff" .. ("x"):rep(100)))
    assert.is_nil(parse("PROXY " .. ("1"):rep(200)))
    assert.is_nil(parse("XPROXY"))
    assert.equal(0, parse("PROX"))
    assert.equal(0, parse("\r\n\r\n\0"))
  end)
end)

describe("--listen ADDR,proxy", function()
  local free_port = require("common").free_port

  for _, workers in ipairs{false, true} do
    it("turns the PROXY protocol on" .. (workers and " under --workers"
      or ""), function()
      local port = free_port()
      local args = {"--listen", "127.0.0.1:" .. port .. ",proxy",
        "spec/support/proxy_fd_app.lua", tostring(port),
        not workers and "fd" or nil}
      if workers then
        table.insert(args, 1, "2")
        table.insert(args, 1, "--workers")
      end
      local s = proc.start(args)
      finally(function() s:stop() end)
      s:wait_for("listening", 20)
      assert.equal("peer 203.0.113.9\n", raw(port,
        {"PROXY TCP4 203.0.113.9 127.0.0.1 1000 80\r\n"}))
      assert.is_true(refused(raw(port, {"plain\n"})))
      proc.wait(function() return s:err():find("invalid PROXY") end, 10,
        "the refusal logged")
    end)
  end
end)

describe("http behind proxies", function()
  local http = require "http"
  after_each(assert_clean)

  -- One request on a new connection; the whole answer (the server
  -- closes: Connection: close).
  local function get(port, head, pre)
    local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
    c:write(pre or "", head, "Connection: close\r\n\r\n")
    local out = c:read("a")
    c:close()
    return out
  end

  it("believes X-Forwarded-For from trusted proxies only", function()
    run_task(function()
      local lines = {}
      local function serve(trusted)
        return assert(http.listen{port = 0, trusted_proxies = trusted,
          log = function(l) lines[#lines + 1] = l end,
          handler = function(req, res)
            res:send(("%s %s\n"):format(req.peer_ip, req.proxy_ip or "-"))
          end})
      end
      local s1 = serve({"127.0.0.0/8"})
      local _, p1 = s1:sockname()
      local xff = "X-Forwarded-For: 6.6.6.6, 198.51.100.1, 127.0.0.5\r\n"
      assert.matches("\r\n\r\n198%.51%.100%.1 127%.0%.0%.1\n$",
        get(p1, "GET / HTTP/1.1\r\nHost: x\r\n" .. xff))
      assert.matches("198%.51%.100%.1 %- %- %[", lines[1])
      assert.matches("\r\n\r\n127%.0%.0%.1 %-\n$",
        get(p1, "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: junk\r\n"))
      local s2 = serve({"10.0.0.0/8"}) -- the peer is not trusted
      local _, p2 = s2:sockname()
      assert.matches("\r\n\r\n127%.0%.0%.1 %-\n$",
        get(p2, "GET / HTTP/1.1\r\nHost: x\r\n" .. xff))
      local s3 = assert(http.listen{port = 0, proxy_protocol = true,
        handler = function(req, res)
          res:send(("%s %s\n"):format(req.peer_ip, req.proxy_ip or "-"))
        end})
      local _, p3 = s3:sockname()
      assert.matches("\r\n\r\n192%.0%.2%.44 127%.0%.0%.1\n$",
        get(p3, "GET / HTTP/1.1\r\nHost: x\r\n",
          "PROXY TCP4 192.0.2.44 127.0.0.1 999 80\r\n"))
      s1:close(); s2:close(); s3:close()
      task.sleep(0.05)
    end)
    assert.has_error(function()
      http.listen{handler = function() end, trusted_proxies = {"x/99"}}
    end)
  end)

  it("http.health answers 200, then 503 after fail()", function()
    run_task(function()
      local h = http.health("/hz")
      local app = http.router()
      app:use(h)
      app:get("/", function(_, res) res:send("root\n") end)
      local s = assert(http.listen{port = 0, handler = app})
      local _, p = s:sockname()
      assert.matches("^HTTP/1.1 200.*\r\n\r\nok\n$",
        get(p, "GET /hz HTTP/1.1\r\nHost: x\r\n"))
      assert.matches("root\n$", get(p, "GET / HTTP/1.1\r\nHost: x\r\n"))
      h.fail()
      assert.matches("^HTTP/1.1 503.*\r\n\r\ndraining\n$",
        get(p, "GET /hz HTTP/1.1\r\nHost: x\r\n"))
      h.ok()
      assert.matches("^HTTP/1.1 200",
        get(p, "HEAD /hz HTTP/1.1\r\nHost: x\r\n"))
      s:close()
      task.sleep(0.05)
    end)
    assert.has_error(function() http.health("nope") end)
  end)
end)

describe("http.health in a drain", function()
  it("turns 503 on a kept-alive connection once SIGTERM drains", function()
    local pidf = tmpname()
    os.remove(pidf)
    -- (--drain-delay: the listeners, and the kept-alive connections
    -- resting between requests, stay until the delay ends; without it
    -- the drain closes an idle keep-alive connection at once)
    local s = proc.start({"--pidfile", pidf, "--drain", "5",
      "--drain-delay", "3", "spec/support/health_app.lua"})
    finally(function() s:stop() end)
    local port = tonumber(s:wait_for("listening (%d+)", 20))
    -- (the event: the app prints "draining true" once SIGTERM arrived)
    local out = sh(("/usr/bin/python3 -c %s %d %d %s"):format(q([[
import http.client, os, signal, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/health")
r = c.getresponse()
print(r.status, r.read().decode().strip())
os.kill(int(sys.argv[2]), signal.SIGTERM)
for _ in range(1000):
    if "draining true" in open(sys.argv[3]).read():
        break
    time.sleep(0.01)
c.request("GET", "/health")
r = c.getresponse()
print(r.status, r.read().decode().strip(), r.getheader("Connection"))
]]), port, s.pid, q(s.outf)))
    assert.equal("200 ok\n503 draining close\n", out)
    assert.equal(0, s:wait_exit(10))
  end)
end)
