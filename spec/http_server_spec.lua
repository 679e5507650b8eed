-- http.listen against real clients: curl, ab, python3 (http.client and
-- raw sockets), and the limits and smuggling guards seen from outside.
local proc = require "process_helper"

local function q(s) return shell_quote(s) end

local sh = require("common").sh

-- try(name, f): errors[name] = f's error as a string, or false
local function recorder(errors)
  return function(name, f)
    local ok, err = pcall(f)
    errors[name] = not ok and tostring(err) or false
  end
end

-- Send raw bytes, read until the server closes (bounded): python3 as a
-- plain socket client, so that bytes go out exactly as written.
local function raw(port, bytes, secs)
  local f = tmpname()
  proc.write(f, bytes)
  return sh(("/usr/bin/python3 -c %s %d %s"):format(q([[
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(15)
s.sendall(open(sys.argv[2], "rb").read())
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except Exception as e:
    out += b"\n<" + str(e).encode() + b">"
sys.stdout.buffer.write(out)
]]), port, f), secs or 30)
end

describe("http server with real clients", function()
  local server, port, base
  setup(function()
    server = proc.start({"spec/support/http_app.lua"},
      {env = "HTTP_HEAD_TIMEOUT=1"})
    port = tonumber(server:wait_for("listening (%d+)", 20))
    base = "http://127.0.0.1:" .. port
  end)
  teardown(function() server:stop() end)

  it("answers curl and keeps the connection alive", function()
    local out = sh(("curl -sv %s/hello %s/users/7?q=a%%20b"):format(base,
      base))
    assert.matches("hello world\n", out, 1, true)
    assert.matches("user 7 q=a b\n", out, 1, true)
    assert.matches("Re%-using existing connection", out)
    assert.matches("< X%-Middleware: 1", out)
    assert.matches("< Date: %a%a%a, %d%d %a%a%a %d%d%d%d", out)
  end)

  it("takes chunked uploads and Expect: 100-continue from curl", function()
    local file = tmpname()
    local data = {}
    for i = 1, 20000 do data[i] = ("%05d\n"):format(i) end
    proc.write(file, table.concat(data))
    local sum = sh("md5sum < " .. q(file)):match("%x+")
    local out = sh(("curl -s --data-binary @%s -H 'Transfer-Encoding: " ..
      "chunked' %s/echo | md5sum"):format(q(file), base))
    assert.are.equal(sum, out:match("%x+"))
    out = sh(("curl -sv --data-binary @%s -H 'Expect: 100-continue' " ..
      "%s/echo -o /dev/null"):format(q(file), base))
    assert.matches("HTTP/1.1 100 Continue", out)
    assert.matches("HTTP/1.1 200 OK", out)
    -- streamed past the body limit (256 KiB) by a handler that asks
    local big = tmpname()
    assert(os.execute(("head -c 3000000 /dev/zero > %s"):format(q(big))))
    out = sh(("curl -s --data-binary @%s -H 'Transfer-Encoding: chunked' " ..
      "%s/count"):format(q(big), base))
    assert.are.equal("3000000\n", out)
    -- over it for req:body(): 413, before the body is sent
    out = sh(("curl -s -o /dev/null -w '%%{http_code}' --data-binary @%s " ..
      "%s/echo"):format(q(big), base))
    assert.are.equal("413", out)
  end)

  it("answers 413 to a client that sends its whole body before it " ..
     "reads (python3 http.client): the close lingers", function()
    -- (closed at once, the upload's unread bytes made the kernel reset
    -- the connection, and the reset threw the 413 away: "broken pipe")
    local out = sh(("/usr/bin/python3 -c %s %d"):format(q([[
import http.client, sys
for i in range(5):
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=15)
    try:
        c.request("POST", "/echo", body=b"x" * (8 << 20))
        r = c.getresponse()
        print(r.status, r.getheader("Connection"), r.read().decode().strip())
    except Exception as e:
        print("ERR", repr(e))
    c.close()
]]), port), 90)
    assert.are.equal(("413 close 413 Content Too Large\n"):rep(5), out)
  end)

  it("streams responses chunked, with backpressure", function()
    assert.are.equal("line 1\nline 2\nline 3\n",
      sh(("curl -s %s/stream"):format(base)))
    local out = sh(("curl -s --limit-rate 2M %s/big | wc -c"):format(base))
    assert.are.equal(4 * 1024 * 1024, tonumber(out))
  end)

  it("speaks HTTP/1.0, with and without keep-alive", function()
    local out = sh(("curl -s -0 -i %s/hello"):format(base))
    assert.matches("^HTTP/1.1 200 OK", out)
    assert.matches("Content%-Length: 12", out)
    assert.not_matches("Transfer%-Encoding", out)
    out = raw(port, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" ..
      "GET /stream HTTP/1.0\r\n\r\n")
    assert.matches("Connection: keep%-alive", out)
    -- a 1.0 response without a length ends with the connection
    assert.matches("hello world\n.*line 1\nline 2\nline 3\n$", out)
  end)

  it("answers pipelined requests in order (python3 http.client by hand)",
    function()
    local out = sh(("/usr/bin/python3 -c %s %d"):format(q([[
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.connect()
reqs = b"".join(b"GET /users/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
                for i in range(1, 6))
c.sock.sendall(reqs)
f = c.sock.makefile("rb")
class Keep:  # every response reads from the same buffered file
    def __getattr__(self, name): return getattr(f, name)
    def close(self): pass
class Shared:
    def makefile(self, mode): return Keep()
for i in range(1, 6):
    r = http.client.HTTPResponse(Shared())
    r.begin()
    sys.stdout.write(r.read().decode())
]]), port))
    assert.are.equal("user 1 q=\nuser 2 q=\nuser 3 q=\nuser 4 q=\n" ..
      "user 5 q=\n", out)
  end)

  it("survives ab -k with every request answered", function()
    local out = sh(("ab -k -n 2000 -c 10 %s/hello"):format(base), 120)
    assert.matches("Complete requests:%s+2000", out)
    assert.matches("Failed requests:%s+0", out)
    assert.matches("Keep%-Alive requests:%s+2000", out)
  end)

  it("answers limits with their status and closes", function()
    local out = raw(port, "GET /" .. ("a"):rep(9000) .. " HTTP/1.1\r\n" ..
      "Host: a\r\n\r\n")
    assert.matches("^HTTP/1.1 414 URI Too Long\r\n", out)
    assert.matches("Connection: close", out)
    local many = {"GET /hello HTTP/1.1\r\nHost: a\r\n"}
    for i = 1, 101 do many[#many + 1] = "X-" .. i .. ": v\r\n" end
    out = raw(port, table.concat(many) .. "\r\n")
    assert.matches("^HTTP/1.1 431 ", out)
    out = raw(port, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " ..
      "999999\r\n\r\n")
    assert.matches("^HTTP/1.1 413 ", out)
    -- a head that never ends: 408 after the head timeout (1 s here)
    out = raw(port, "GET /hello HTTP/1.1\r\nHost: a\r\n")
    assert.matches("^HTTP/1.1 408 ", out)
    -- a body that stops coming: 408 after the body timeout (2 s)
    out = raw(port, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " ..
      "10\r\n\r\nabc")
    assert.matches("^HTTP/1.1 408 ", out)
  end)

  it("refuses smuggling with 400 and closes, answering nothing after",
    function()
    for _, bad in ipairs({
      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n" ..
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n" ..
        "Content-Length: 4\r\n\r\nabcd",
      "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "3\nabc\r\n0\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    }) do
      local out = raw(port, bad .. "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
      assert.matches("^HTTP/1.1 400 Bad Request\r\n", out)
      assert.not_matches("hello world", out)
      local _, n = out:gsub("HTTP/1%.1 %d%d%d", "")
      assert.are.equal(1, n, out)
    end
  end)

  it("keeps handler errors in the handler: 500, then serves on", function()
    local out = sh(("curl -s -i %s/error"):format(base))
    assert.matches("^HTTP/1.1 500 ", out)
    out = sh(("curl -s -i %s/inject"):format(base))
    assert.matches("^HTTP/1.1 500 ", out)
    assert.not_matches("injected", out)
    assert.matches("hello world", sh(("curl -s %s/hello"):format(base)))
    assert.matches("handler error: .*boom", server:err())
    assert.matches("CR, LF, NUL or control byte", server:err())
  end)

  it("routes: 404, 405 with Allow, HEAD by GET, captures decoded", function()
    local out = sh(("curl -s -i -X DELETE %s/hello"):format(base))
    assert.matches("^HTTP/1.1 405 ", out)
    assert.matches("Allow: GET, HEAD", out)
    out = sh(("curl -s -i %s/nope"):format(base))
    assert.matches("^HTTP/1.1 404 ", out)
    out = sh(("curl -s -I %s/hello"):format(base))
    assert.matches("^HTTP/1.1 200 ", out)
    assert.matches("Content%-Length: 12", out)
    assert.are.equal("user a/b q=\n",
      sh(("curl -s %s/users/a%%2Fb"):format(base)))
    assert.are.equal("x, y|127.0.0.1\n", sh(("curl -s -H 'X-Test: x' " ..
      "-H 'x-test: y' %s/headers"):format(base)))
  end)

  it("says Connection: close when it will not read the rest of a body",
    function()
    -- (the head alone: a 405 before the body, which is never read)
    for _, extra in ipairs{"Content-Length: 500000\r\n",
      "Content-Length: 10\r\nExpect: 100-continue\r\n"} do
      local out = raw(port, "POST /users/1 HTTP/1.1\r\nHost: a\r\n" ..
        extra .. "\r\n")
      assert.matches("^HTTP/1.1 405 ", out, 1, false, extra)
      local head = out:match("^(.-\r\n)\r\n") or ""
      assert.matches("\r\nConnection: close\r\n", head, 1, true, extra)
      assert.not_matches("100 Continue", out)
    end
    -- a body it skips (within limits.drain): the connection goes on
    local out = raw(port, "POST /users/1 HTTP/1.1\r\nHost: a\r\n" ..
      "Content-Length: 5\r\n\r\nhello" ..
      "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert.matches("^HTTP/1.1 405 ", out)
    assert.matches("hello world\n$", out)
    assert.equal(1, select(2, out:gsub("Connection: close", "")))
  end)

  it("writes an access log line per request (common log format)", function()
    sh(("curl -s %s/users/42"):format(base))
    assert.matches('127%.0%.0%.1 %- %- %[%d%d/%a%a%a/%d%d%d%d:%d%d:%d%d:%d%d ' ..
      '%+0000%] "GET /users/42 HTTP/1%.1" 200 %d+\n', server:err())
  end)
end)

describe("http server under --workers", function()
  it("serves from every worker on the socket the supervisor bound",
    function()
    local net = require "net"
    local s = assert(net.listen{port = 0})
    local _, port = s:sockname()
    s:close()
    local script = tmpname()
    proc.write(script, [[
local http = require "http"
local host = require "luahost"
local l = assert(host.listen_fds()[1])
assert(http.listen{fd = l.fd, handler = function(_, res)
  res:send("pid " .. require("uv").os_getpid() .. "\n")
end})
print("ready")
io.stdout:flush()
]])
    local p = proc.start({"--workers", "2", "--listen", "127.0.0.1:" .. port,
      script})
    finally(function() p:stop() end)
    local pids = {}
    for _ = 1, 200 do -- distinct connections until both answered
      local out = sh(("curl -s http://127.0.0.1:%d/"):format(port))
      local pid = out:match("^pid (%d+)\n$")
      if pid then pids[pid] = true end
      local n = 0
      for _ in pairs(pids) do n = n + 1 end
      if n == 2 then break end
    end
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.are.equal(2, n)
  end)
end)

describe("http server API", function()
  local http = require "http"
  local net = require "net"

  it("raises on bad arguments to listen", function()
    assert.has_error(function() http.listen() end)
    assert.has_error(function() http.listen{} end) -- no handler
    assert.has_error(function() http.listen{handler = 1} end)
    assert.has_error(function() http.listen{handler = print, bogus = 1} end)
    assert.has_error(function()
      http.listen{handler = print, limits = {body = -1}}
    end)
    assert.has_error(function()
      http.listen{handler = print, limits = {nope = 1}}
    end)
    assert.has_error(function()
      http.listen{handler = print, timeouts = "x"}
    end)
    assert.has_error(function() http.listen{handler = print, log = 42} end)
    assert.has_error(function() http.listen{handler = print, tls = {}} end)
  end)

  it("frames the statuses without content: 204, 304 none; 205 " ..
    "Content-Length: 0, whatever the handler sends", function()
    run_task(function()
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        local st = tonumber(req.path:sub(2))
        if req.query_string == "write" then
          res:status(st)
          res:write("some content")
          res:finish()
        else
          res:send(st, "some content")
        end
      end})
      local _, port = srv:sockname()
      for _, target in ipairs{"/204", "/304", "/205", "/205?write"} do
        local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
        c:write("GET ", target, " HTTP/1.1\r\nHost: a\r\n",
          "Connection: close\r\n\r\n")
        local all = assert(c:read("a"))
        c:close()
        local head, body = all:match("^(.-\r\n)\r\n(.*)$")
        assert.equal("", body, target)
        local code = target:sub(2, 4)
        assert.matches("^HTTP/1%.1 " .. code .. " ", head)
        if code == "205" then
          assert.matches("\r\nContent%-Length: 0\r\n", head)
          assert.matches("^HTTP/1%.1 205 Reset Content\r\n", head)
        else
          assert.not_matches("Content%-Length", head)
        end
      end
      srv:close()
    end)
  end)

  it("a Content-Length that is not the body's length is an error (500), " ..
    "never a broken framing", function()
    run_task(function()
      local errors = {}
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        res:header("Content-Length", 5)
        local ok, err = pcall(res.send, res, 200,
          req.path == "/long" and "1234567" or "")
        errors[req.path] = err
        if not ok then error(err, 0) end
      end})
      local _, port = srv:sockname()
      for _, path in ipairs{"/short", "/long"} do
        local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
        c:write("GET ", path, " HTTP/1.1\r\nHost: a\r\n\r\n")
        local all = assert(c:read("a")) -- (closed after the 500)
        c:close()
        assert.matches("^HTTP/1%.1 500 ", all)
        assert.matches("Content%-Length is 5 but the body has " ..
          (path == "/long" and 7 or 0) .. " bytes", errors[path])
      end
      srv:close()
    end)
  end)

  it("a handler's Content-Length is one decimal integer, raised at its " ..
    "line otherwise; the head has one, never with chunked", function()
    run_task(function()
      local errors = {}
      local try = recorder(errors)
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        local p = req.path
        if p == "/bad" then
          try("abc", function() res:header("Content-Length", "abc") end)
          try("hex", function() res:header("Content-Length", "0x5") end)
          try("exp", function() res:header("Content-Length", "5e0") end)
          try("blank", function() res:header("Content-Length", " 5") end)
          try("neg", function() res:header("Content-Length", -1) end)
          try("frac", function() res:header("Content-Length", 5.5) end)
          try("huge", function()
            res:header("Content-Length", "99999999999999999999")
          end)
          try("add", function() res:add_header("Content-Length", "5") end)
          try("add2", function() res:add_header("content-length", "5") end)
          res:send("hello")
        elseif p == "/two" then
          res:header("Content-Length", "3")
          res:header("Content-Length", 5) -- (replaces)
          res:send("hello")
        elseif p == "/write" then -- framed by it, not chunked
          res:header("Content-Length", "10")
          res:write("hello")
          res:write("world")
          res:finish()
        elseif p == "/over" then -- more than it: an error, answered 500
          res:header("Content-Length", "3")
          local ok, err = pcall(res.write, res, "hello")
          errors.over = err
          if not ok then error(err, 0) end
        elseif p == "/removed" then
          res:header("Content-Length", "3")
          res:header("Content-Length", nil)
          res:write("hello")
          res:finish()
        end
      end})
      local _, port = srv:sockname()
      local function get(path)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
        c:write("GET ", path, " HTTP/1.1\r\nHost: a\r\n",
          "Connection: close\r\n\r\n")
        local all = assert(c:read("a"))
        c:close()
        local _, ncl = all:gsub("\r\n[Cc]ontent%-[Ll]ength:", "")
        return all, ncl
      end
      local all, ncl = get("/bad")
      assert.matches("^HTTP/1%.1 200 OK\r\n.*\r\n\r\nhello$", all)
      assert.equal(1, ncl)
      assert.matches("\r\nContent%-Length: 5\r\n", all)
      for _, name in ipairs{"abc", "hex", "exp", "blank", "neg", "frac",
        "huge"} do
        assert.matches("^spec/http_server_spec%.lua:%d+: bad argument #2 " ..
          "to 'header' %(Content%-Length: a decimal integer >= 0 expected",
          errors[name], 1, false, name)
      end
      assert.matches('got "abc"%)', errors.abc)
      assert.matches("got 5%.5%)", errors.frac)
      for _, name in ipairs{"add", "add2"} do
        assert.matches("^spec/http_server_spec%.lua:%d+: bad argument #1 " ..
          "to 'add_header' %(.*only one, set by res:header%)", errors[name],
          1, false, name)
      end
      all, ncl = get("/two")
      assert.equal(1, ncl)
      assert.matches("\r\nContent%-Length: 5\r\n.*\r\n\r\nhello$", all)
      all, ncl = get("/write")
      assert.equal(1, ncl)
      assert.not_matches("Transfer%-Encoding", all)
      assert.matches("\r\nContent%-Length: 10\r\n.*\r\n\r\nhelloworld$",
        all)
      all = get("/over")
      assert.matches("^HTTP/1%.1 500 ", all)
      assert.not_matches("Content%-Length: 3\r\n", all)
      assert.matches("more bytes than the Content%-Length", errors.over)
      all, ncl = get("/removed")
      assert.equal(0, ncl)
      assert.matches("\r\nTransfer%-Encoding: chunked\r\n", all)
      srv:close()
    end)
  end)

  it("a response before a body it will not read says Connection: close, " ..
    "by any path (send in C, in Lua, write)", function()
    run_task(function()
      local function handler(req, res)
        if req.path == "/write" then
          res:write("w")
          res:finish()
        elseif req.path == "/read" then -- (read: the conn goes on)
          res:send(#req:body() .. "")
        else
          res:header("Content-Type", "text/plain"):send("s")
        end
      end
      for _, gzip in ipairs{false, true} do
        local srv = assert(http.listen{port = 0, handler = handler,
          gzip = gzip, limits = {drain = 100}})
        local _, port = srv:sockname()
        for _, case in ipairs{{"/send", "Content-Length: 101"},
          {"/write", "Content-Length: 101"},
          {"/send", "Content-Length: 5\r\nExpect: 100-continue"},
          {"/read", "Content-Length: 101", true}} do
          local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
          c:write("POST ", case[1], " HTTP/1.1\r\nHost: a\r\n", case[2],
            "\r\n\r\n", case[3] and ("x"):rep(101) or "")
          local head = {}
          repeat
            local l = assert(c:read("l"))
            head[#head + 1] = l
          until l == "\r"
          c:close()
          head = table.concat(head, "\n")
          local what = case[1] .. " " .. case[2] .. " gzip " ..
            tostring(gzip)
          if case[3] then
            assert.not_matches("Connection: close", head, 1, true, what)
          else
            assert.matches("\nConnection: close\r", head, 1, true, what)
          end
        end
        srv:close()
      end
    end)
  end)

  it("raises in the handler on misuse of req and res; the error is its own",
    function()
    run_task(function()
      local errors = {}
      local try = recorder(errors)
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        try("status", function() res:status(99) end)
        try("status_s", function() res:status("200") end)
        try("header_name", function() res:header("Bad Name", "x") end)
        try("header_value", function() res:header("X", "a\nb") end)
        try("header_nul", function() res:header("X", "a\0b") end)
        try("header_type", function() res:header("X", {}) end)
        try("te", function() res:header("Transfer-Encoding", "chunked") end)
        try("write", function() res:write({}) end)
        try("send", function() res:send(200, {}) end)
        try("send_status", function() res:send("x", "body") end)
        try("send_status2", function() res:send(true) end)
        -- (1xx are interim answers; 600 and up no HTTP status at all)
        try("send_1xx", function() res:send(100, "") end)
        try("status_999", function() res:status(999) end)
        try("chunks", function() req:chunks("x") end)
        res:send("fine\n")
        try("after", function() res:header("X", "late") end)
        try("status_after", function() res:status(201) end)
        try("write_after", function() res:write("more") end)
      end})
      local _, port = srv:sockname()
      local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      c:write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local all = c:read("a")
      c:close()
      srv:close()
      assert.matches("^HTTP/1.1 200 OK\r\n", all)
      assert.matches("fine\n$", all)
      for _, name in ipairs({"status", "status_s", "header_name",
        "header_value", "header_nul", "header_type", "te", "write", "send",
        "chunks", "after", "status_after", "write_after"}) do
        assert.is_string(errors[name], name)
      end
      assert.matches("bad argument #1 to 'status'", errors.status)
      -- each names the method called, at the caller's line (not lib/'s)
      for _, name in ipairs{"status", "send", "send_status", "send_status2"}
      do
        assert.matches("^spec/http_server_spec%.lua:%d+: bad argument",
          errors[name], 1, false, name)
      end
      assert.matches("#2 to 'send' %(string expected, got table%)",
        errors.send)
      assert.matches("#1 to 'send' %(a final status, integer in 200..599 " ..
        "expected, got x%)", errors.send_status)
      assert.matches("#1 to 'send' %(a final status, integer in 200..599 " ..
        "expected, got true%)", errors.send_status2)
      assert.matches("#1 to 'send' %(a final status, integer in 200..599 " ..
        "expected, got 100%)", errors.send_1xx)
      assert.matches("#1 to 'status' %(a final status, integer in 200..599 " ..
        "expected, got 999%)", errors.status_999)
      assert.matches("'header'.*CR, LF, NUL", errors.header_value)
      assert.matches("bad argument #1 to 'write'", errors.write)
      assert.matches("already sent", errors.after)
    end)
  end)
end)

describe("http server keep-alive", function()
  local http = require "http"
  local net = require "net"
  local task = require "task"

  local function get(c, path)
    c:write("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n")
    local head = {}
    while true do
      local l = assert(c:read())
      if l == "\r" then break end
      head[#head + 1] = l
    end
    local n = tonumber(table.concat(head, "\n"):match(
      "Content%-Length: (%d+)"))
    return head[1], c:read(n)
  end

  -- Lua memory in use, after full collections
  local function heap()
    collectgarbage()
    collectgarbage()
    return collectgarbage("count") * 1024
  end

  it("between requests an idle conn has no task (Lua memory per conn)",
    function()
    run_task(function()
      local cos = {}
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        -- (not the idle ones: a list of every task would keep them)
        if req.path ~= "/i" then cos[#cos + 1] = coroutine.running() end
        res:send(req.path .. "\n")
      end})
      local _, port = srv:sockname()
      local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      assert.same({"HTTP/1.1 200 OK\r", "/a\n"}, {get(c, "/a")})
      assert.same({"HTTP/1.1 200 OK\r", "/b\n"}, {get(c, "/b")})
      assert.equal(2, #cos)
      -- 100 idle keep-alive conns: no task, no coroutine each (a parked
      -- coroutine alone is over 1 KB of Lua memory)
      local idle = {}
      local function open(i)
        idle[i] = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        get(idle[i], "/i")
      end
      for i = 1, 80 do open(i) end -- (warm: the pool of workers)
      local before = heap()
      for i = 81, 180 do open(i) end
      -- (each rests once timeouts.rest has passed with no new request;
      -- both sides counted: the client's conn is about 250 B)
      local per
      for _ = 1, 100 do
        task.sleep(0.05)
        per = (heap() - before) / 100
        if per < 1000 then break end
      end
      assert.is_true(per < 1000, ("%.0f bytes per conn"):format(per))
      for i = 1, 180 do idle[i]:close() end
      -- pipelined: both already buffered, answered in order
      c:write("GET /c HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
      local all = {}
      for _ = 1, 2 do
        local l
        repeat l = assert(c:read()) until l == "\r"
        all[#all + 1] = c:read(3)
      end
      assert.same({"/c\n", "/d\n"}, all)
      c:close()
      srv:close()
    end)
  end)

  it("timeouts.rest: a conn that came back keeps its task that long " ..
    "for its next request, then rests", function()
    run_task(function()
      local cos = {}
      local srv = assert(http.listen{port = 0, timeouts = {rest = 30},
        handler = function(req, res)
          cos[req.path] = coroutine.running()
          res:send(req.path .. "\n")
        end})
      local _, port = srv:sockname()
      -- a first request: the conn rests at once (a conn's first round
      -- does not wait), before its answer is even read here
      local conns = {}
      for i = 1, 21 do
        conns[i] = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        get(conns[i], "/first")
      end
      local before = heap()
      -- a second request: a new round, and its task waits for a third
      -- (twenty tasks waiting in a read: a coroutine is over 1 KB)
      for i = 2, 21 do get(conns[i], "/" .. i) end
      local per = (heap() - before) / 20
      assert.is_true(per > 1000, ("%.0f bytes per conn"):format(per))
      -- the third request on a conn is served by the task that waited
      assert.same({"HTTP/1.1 200 OK\r", "/again\n"},
        {get(conns[5], "/again")})
      assert.equal(cos["/5"], cos["/again"])
      -- server:close() closes the conns in their wait at once, as the
      -- resting ones
      srv:close()
      local t0 = task.now()
      for i = 1, 21 do
        assert.same({nil, "closed"}, {conns[i]:read()})
        conns[i]:close()
      end
      assert.is_true(task.now() - t0 < 5, tostring(task.now() - t0))
      -- 0 rests at once; a negative value is refused
      local ok, zero = pcall(http.listen, {port = 0, timeouts = {rest = 0},
        handler = function() end})
      assert.is_true(ok)
      zero:close()
      local bad, err = pcall(http.listen, {port = 0, timeouts = {rest = -1},
        handler = function() end})
      assert.is_false(bad)
      assert.matches("timeouts.rest: non%-negative number expected", err)
      assert.is_false((pcall(http.listen, {port = 0,
        timeouts = {idle = 0}, handler = function() end})))
    end)
  end)

  it("timeouts.idle closes an idle keep-alive conn; close() closes idle ones",
    function()
    run_task(function()
      local srv = assert(http.listen{port = 0, timeouts = {idle = 0.2},
        handler = function(_, res) res:send("ok\n") end})
      local _, port = srv:sockname()
      local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      assert.same({"HTTP/1.1 200 OK\r", "ok\n"}, {get(c, "/")})
      local t0 = task.now()
      assert.same({nil, "closed"}, {c:read()})
      local waited = task.now() - t0
      assert.is_true(waited > 0.1 and waited < 3, tostring(waited))
      c:close()
      -- server:close() closes a conn waiting idle between requests
      local d = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      assert.same({"HTTP/1.1 200 OK\r", "ok\n"}, {get(d, "/")})
      srv:close()
      t0 = task.now()
      assert.same({nil, "closed"}, {d:read()})
      assert.is_true(task.now() - t0 < 0.15)
      d:close()
    end)
  end)
end)

describe("a cancelled handler", function()
  it("is no handler error: its connection goes, nothing logged", function()
    -- (task:cancel() from another task: a chat drops a stuck client so)
    local out, err, code = run_host({"-e", [[
local http = require "http"
local task = require "task"
local handler
local srv = assert(http.listen{host = "127.0.0.1", port = 0,
  handler = function(req, res)
    if req.path ~= "/ws" then return res:send("ok") end
    handler = task.current()
    local ws = assert(http.websocket.accept(req, res))
    for msg in ws:messages() do print("got " .. msg) end
    print("not reached")
  end})
local _, port = srv:sockname()
local c = assert(http.websocket.connect("ws://127.0.0.1:" .. port .. "/ws"))
c:send("a")
while not handler do task.sleep(0.01) end
task.sleep(0.05)
print("cancel", handler:cancel())
print("client", c:receive())
-- a plain request is served as before
local res = assert(http.request{url = "http://127.0.0.1:" .. port .. "/"})
print("after", res.status)
srv:close()
]]})
    assert.equal(0, code, err)
    assert.equal("got a\ncancel\ttrue\nclient\tnil\tclosed\n" ..
      "after\t200\n", out)
    assert.equal("", err)
  end)
end)

describe("scripts/rproxy.lua", function()
  it("passes requests and bodies both ways over a pooled upstream",
    function()
    local app = proc.start({"spec/support/http_app.lua"})
    finally(function() app:stop() end)
    local up = tonumber(app:wait_for("listening (%d+)", 20))
    local p = proc.start({"scripts/rproxy.lua", "127.0.0.1", "0",
      "http://127.0.0.1:" .. up})
    finally(function() p:stop() end)
    local port = p:wait_for("proxying http://127%.0%.0%.1:(%d+)/", 20)
    local base = "http://127.0.0.1:" .. port
    local out = sh(("curl -s -i %s/hello"):format(base))
    assert.matches("^HTTP/1.1 200 OK\r\n", out)
    assert.matches("Content%-Length: 12\r\n", out)
    assert.matches("X%-Middleware: 1\r\n", out)
    assert.matches("hello world\n$", out)
    -- the upstream saw the same connection twice (the pool)
    local a = sh(("curl -s %s/peer"):format(base))
    local b = sh(("curl -s %s/peer"):format(base))
    assert.matches("^127%.0%.0%.1:%d+\n$", a)
    assert.are.equal(a, b)
    -- a chunked upload streamed through, a chunked answer streamed back
    local file = tmpname()
    local data = {}
    for i = 1, 30000 do data[i] = ("%05d\n"):format(i) end
    proc.write(file, table.concat(data))
    local sum = sh("md5sum < " .. q(file)):match("%x+")
    out = sh(("curl -s --data-binary @%s -H 'Transfer-Encoding: chunked' " ..
      "%s/echo | md5sum"):format(q(file), base))
    assert.are.equal(sum, out:match("%x+"))
    assert.are.equal("line 1\nline 2\nline 3\n",
      sh(("curl -s %s/stream"):format(base)))
    -- hop-by-hop fields, those a Connection header names too, stay
    -- on their hop, both ways; an absolute-form target goes to the
    -- upstream's path
    out = sh(("curl -s -i -H 'Connection: keep-alive, X-Secret' " ..
      "-H 'X-Secret: s' -H 'X-Kept: k' -H 'TE: trailers' %s/seen")
      :format(base))
    local names = out:match("\r\n\r\n([^\n]*)\n$")
    assert.matches(" x%-kept ", " " .. names .. " ")
    assert.not_matches("x%-secret", names)
    assert.not_matches("connection", names)
    assert.not_matches(" te ", " " .. names .. " ")
    assert.not_matches("X%-Private", out)
    out = sh(("curl -s -i --request-target http://elsewhere.invalid/hello " ..
      "%s/"):format(base))
    assert.matches("^HTTP/1.1 200 OK\r\n.*hello world\n$", out)
    assert.matches("^HTTP/1.1 404 ", sh(("curl -s -i %s/nope"):format(base)))
    assert.matches("^HTTP/1.1 500 ", sh(("curl -s -i %s/error"):format(base)))
    -- the upstream gone: 502
    app:stop()
    assert.matches("^HTTP/1.1 502 ", sh(("curl -s -i %s/hello"):format(base)))
  end)
end)
