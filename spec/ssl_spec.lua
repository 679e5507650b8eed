-- ssl: LuaSec's API over luahost's tls and socket (lib/ssl.lua,
-- lib/ssl/https.lua): code written for LuaSec, and Debian's socket.http
-- with https:// URLs, against real peers (openssl s_server, curl).
local task = require "task"
local http = require "http"
local T = require "tls_helper"

local c
local q = shell_quote

describe("ssl (LuaSec's API)", function()
  setup(function() c = T.certs() end)
  after_each(assert_clean)

  it("newcontext, wrap, sni, dohandshake, send, receive against " ..
     "openssl s_server", function()
    local srv, port = T.s_server(("-cert %s -key %s -www"):format(
      q(c.server), q(c.server_key)))
    finally(function() srv:stop() end)
    run_task(function()
      local socket, ssl = require "socket", require "ssl"
      local s = socket.tcp()
      s:settimeout(5)
      assert(s:connect("127.0.0.1", port))
      local ctx = assert(ssl.newcontext{mode = "client",
        protocol = "tlsv1_2", cafile = c.ca, verify = "peer",
        options = "all"})
      local conn = assert(ssl.wrap(s, ctx))
      conn:sni("localhost")
      assert.is_true(conn:dohandshake())
      assert.equal(18, conn:send("GET / HTTP/1.0\r\n\r\n"))
      assert.matches("^HTTP/1%.0 200", conn:receive("*l"))
      local rest = conn:receive("*a")
      assert.matches("</HTML>", rest)
      assert.equal("TLSv1.2", conn:info().protocol)
      assert.equal("TLSv1.2", conn:info("protocol"))
      -- (LuaSec's x509 objects: names as lists of {oid, name, value})
      assert.same({{oid = "2.5.4.3", name = "commonName",
        value = "localhost"}}, conn:getpeercertificate():subject())
      assert.matches("^%x+$", conn:getpeercertificate():digest("sha256"))
      local chain = conn:getpeerchain()
      assert.equal(conn:getpeercertificate():pem(), chain[1]:pem())
      assert.is_nil(conn:getpeercertificate(#chain + 1))
      assert.is_true(conn:getpeerverification())
      conn:close()
    end)
  end)

  it("verifies by default, the host too; verify = 'none' written out",
    function()
    local srv, port = T.s_server(("-cert %s -key %s -www"):format(
      q(c.wrong), q(c.wrong_key)))
    finally(function() srv:stop() end)
    run_task(function()
      local socket, ssl = require "socket", require "ssl"
      local s = socket.tcp()
      s:settimeout(5)
      assert(s:connect("127.0.0.1", port))
      -- no verify field: LuaSec would accept anything, this does not
      local conn = assert(ssl.wrap(s, {mode = "client", cafile = c.ca}))
      conn:sni("localhost")
      local ok, err = conn:dohandshake()
      assert.is_nil(ok)
      assert.equal("tls: certificate verify failed: hostname mismatch " ..
        "(localhost)", err)
      conn:close()
      s = socket.tcp()
      s:settimeout(5)
      assert(s:connect("127.0.0.1", port))
      conn = assert(ssl.wrap(s, {mode = "client", verify = "none"}))
      assert.is_true(conn:dohandshake())
      local v, errs = conn:getpeerverification()
      assert.is_false(v)
      assert.equal("table", type(errs))
      conn:close()
      -- TLS 1.0/1.1 are refused, by name
      local ctx, e = ssl.newcontext{mode = "client", protocol = "tlsv1"}
      assert.is_nil(ctx)
      assert.matches("refused", e)
    end)
  end)

  it("Debian's socket.http fetches https:// through ssl.https", function()
    local srv = assert(http.listen{port = 0, tls = {cert = c.server,
      key = c.server_key}, handler = function(req, res)
        res:send(200, "secure " .. req.method .. "\n")
      end})
    local _, port = srv:sockname()
    run_task(function()
      local shttp, ltn12 = require "socket.http", require "ltn12"
      local url = ("https://localhost:%d/x"):format(port)
      -- the system store does not know the test CA
      local r, err = shttp.request(url)
      assert.is_nil(r)
      assert.matches("^tls: certificate verify failed: unable to get " ..
        "local issuer certificate %(localhost%)", err)
      local t = {}
      local one, code = shttp.request{url = url, cafile = c.ca,
        sink = ltn12.sink.table(t)}
      assert.equal(1, one)
      assert.equal(200, code)
      assert.equal("secure GET\n", table.concat(t))
      local https = require "ssl.https"
      t = {}
      one, code = https.request{url = url, method = "POST", cafile = c.ca,
        source = ltn12.source.string("x"), headers = {["content-length"] =
        1}, sink = ltn12.sink.table(t)}
      assert.equal(200, code)
      assert.equal("secure POST\n", table.concat(t))
      srv:close()
    end)
  end)

  it("a LuaSec-style server: accept, wrap in server mode, curl", function()
    local served
    local socket, ssl = require "socket", require "ssl"
    local server_ctx = assert(ssl.newcontext{mode = "server",
      certificate = c.server, key = c.server_key})
    local port
    local t = task.spawn(function()
      local ls = assert(socket.bind("127.0.0.1", 0))
      local _, p = ls:getsockname()
      port = tonumber(p)
      ls:settimeout(10)
      local cl = assert(ls:accept())
      cl:settimeout(5)
      local conn = assert(ssl.wrap(cl, server_ctx))
      assert(conn:dohandshake())
      local line = conn:receive("*l")
      repeat local h = conn:receive("*l") until h == "" or h == nil
      conn:send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: " ..
        "close\r\n\r\nok\n")
      served = line
      conn:close()
      ls:close()
    end)
    run_loop(function() return port ~= nil end)
    local out, err, code = T.run(("curl -sS --cacert %s " ..
      "https://localhost:%d/luasec"):format(q(c.ca), port))
    assert.equal(0, code, err)
    assert.equal("ok\n", out)
    assert.equal("GET /luasec HTTP/1.1", served)
    run_task(function() t:join() end)
  end)

  it("socket.select waits on an ssl connection as on its socket",
    function()
    -- (LuaSec's connections have getfd and dirty: select takes them; an
    -- item that is no socket at all is an error naming select)
    local srv, port = T.s_server(("-cert %s -key %s -www"):format(
      q(c.server), q(c.server_key)))
    finally(function() srv:stop() end)
    run_task(function()
      local socket, ssl = require "socket", require "ssl"
      local s = socket.tcp()
      finally(function() s:close() end)
      s:settimeout(5)
      assert(s:connect("127.0.0.1", port))
      local conn = assert(ssl.wrap(s, {mode = "client", cafile = c.ca,
        verify = "peer"}))
      conn:sni("localhost")
      assert(conn:dohandshake())
      -- (no "nothing ready" before the request: after a TLS 1.3
      -- handshake the server's session tickets may be waiting, and the
      -- socket is readable then, as under LuaSec)
      assert(conn:send("GET / HTTP/1.0\r\n\r\n"))
      local r = socket.select({conn}, nil, 5)
      assert.equal(conn, r[1])
      assert.equal(1.0, r[conn])
      assert.matches("^HTTP/1%.0 200", conn:receive("*l"))
      conn:close()
      assert.has_error(function() socket.select({conn, 7}, nil, 0) end,
        "bad argument #1 to 'select' (socket expected at index 2, got " ..
        "number)")
    end)
  end)

  it("shutdown('send') sends close_notify before the end", function()
    -- (the socket layer's shutdown is the kernel's at once for a plain
    -- socket; under TLS the close_notify must go first: python's ssl,
    -- with ragged EOFs not suppressed, tells the two apart)
    local script = tmpfile(([[
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(%q, %q)
# (python ignores an end without close_notify by default)
ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
s.settimeout(20)
c, _ = s.accept()
t = ctx.wrap_socket(c, server_side=True, suppress_ragged_eofs=False)
data = b""
try:
    while True:
        d = t.recv(100)
        if not d:
            print("close_notify", data.decode(), flush=True)
            break
        data += d
except ssl.SSLError:
    print("no close_notify", data.decode(), flush=True)
]]):format(c.server, c.server_key), ".py")
    local out = tmpname()
    assert(os.execute(("timeout -s KILL 30 /usr/bin/python3 %s > %s &")
      :format(q(script), q(out))))
    run_task(function()
      local port
      for _ = 1, 400 do
        local f = io.open(out)
        port = f and f:read("l")
        if f then f:close() end
        if port then break end
        task.sleep(0.05)
      end
      assert(port, "the python TLS server did not start in 20 s")
      local socket, ssl = require "socket", require "ssl"
      local s = socket.tcp()
      finally(function() s:close() end)
      s:settimeout(5)
      assert(s:connect("127.0.0.1", tonumber(port)))
      local conn = assert(ssl.wrap(s, {mode = "client", cafile = c.ca,
        verify = "peer"}))
      conn:sni("localhost")
      assert(conn:dohandshake())
      assert(conn:send("hello"))
      assert.equal(1.0, conn:shutdown("send"))
      local said
      for _ = 1, 400 do
        local f = io.open(out)
        said = f and f:read("a"):match("\n(.-)\n$")
        if f then f:close() end
        if said then break end
        task.sleep(0.05)
      end
      conn:close()
      assert.equal("close_notify hello", said)
    end)
  end)

  it("certificate objects read as LuaSec's (ssl.x509, loadcertificate)",
    function()
    -- (three certificates made now: EC with every kind of alternative
    -- name, RSA with a many-part subject, a UTF-8 subject; every method
    -- through Debian's LuaSec in lua5.4 and through luahost, compared)
    if os.execute("env -u LUA_PATH -u LUA_CPATH lua5.4 -e " ..
      "'require \"ssl.x509\"' >/dev/null 2>&1") ~= true then
      pending("lua5.4 with lua-sec is not installed")
      return
    end
    local dir = tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    local function req(args)
      assert(os.execute(("cd %s && openssl req -x509 -nodes -keyout k " ..
        "%s >/dev/null 2>&1"):format(q(dir), args)))
    end
    req("-newkey ec -pkeyopt ec_paramgen_curve:P-256 -out ec.pem -days " ..
      "30 -subj /CN=localhost -addext 'subjectAltName=DNS:localhost," ..
      "IP:127.0.0.1,IP:::1,email:a@b.example,URI:https://h.example/x'")
    req("-newkey rsa:2048 -out rsa.pem -days 1 -subj " ..
      "'/C=DE/ST=Berlin/O=Example Org/OU=Unit One/OU=Unit Two/" ..
      "CN=www.example.com/emailAddress=x@example.com'")
    req("-newkey ec -pkeyopt ec_paramgen_curve:P-384 -out utf8.pem " ..
      "-days 2 -utf8 -subj '/CN=Gr\195\188\195\159e/O=\195\150l' " ..
      "-addext 'issuerAltName=DNS:issuer.example'")
    local files = ("%s/ec.pem %s/rsa.pem %s/utf8.pem"):format(q(dir),
      q(dir), q(dir))
    local function run(cmd)
      local h = assert(io.popen(cmd .. " spec/support/x509_dump.lua " ..
        files .. " 2>&1"))
      local out = h:read("a")
      h:close()
      return out
    end
    local ref = run("env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_CPATH " ..
      "-u LUA_CPATH_5_4 lua5.4")
    local ours = run(q(LUAHOST))
    assert.matches("subject\t{1={name=\"commonName\"", ref)
    assert.equal(ref, ours)
    -- loadcertificate is LuaSec's x509.load; a bad PEM is nil, err
    local ssl = require "ssl"
    local f = assert(io.open(dir .. "/ec.pem"))
    local pem = f:read("a")
    f:close()
    assert.equal(pem, assert(ssl.loadcertificate(pem)):pem())
    local none, err = ssl.loadcertificate("not a certificate")
    assert.is_nil(none)
    assert.equal("not a PEM certificate", err)
  end)

  it("info() gives LuaSec's fields (TLS 1.2 and 1.3, against " ..
    "openssl s_server)", function()
    if os.execute("env -u LUA_PATH -u LUA_CPATH lua5.4 -e " ..
      "'require \"ssl\"' >/dev/null 2>&1") ~= true then
      pending("lua5.4 with lua-sec is not installed")
      return
    end
    local srv, port = T.s_server(("-cert %s -key %s -www"):format(
      q(c.server), q(c.server_key)))
    finally(function() srv:stop() end)
    for _, protocol in ipairs{"tlsv1_2", "any"} do
      local function run(cmd)
        local out = T.run(("%s spec/support/ssl_info_client.lua %d %s")
          :format(cmd, port, protocol))
        return out
      end
      local ref = run("env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_CPATH " ..
        "-u LUA_CPATH_5_4 lua5.4")
      local ours = run(q(LUAHOST))
      assert.matches("\nencryption\t", ref)
      assert.equal(ref, ours)
    end
  end)
end)
