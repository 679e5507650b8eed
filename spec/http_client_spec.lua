-- http.request / http.get: against http.listen in the same process and
-- against nginx (started here, own prefix, stopped by PID).
local http = require "http"
local net = require "net"
local task = require "task"
local client = require "http.client"
local proc = require "process_helper"

local function q(s) return shell_quote(s) end
local raw_server = require("common").raw_server

-- A server in this process: returns its base URL and the server.
local function serve(handler)
  local srv = assert(http.listen{port = 0, handler = handler})
  local _, port = srv:sockname()
  return "http://127.0.0.1:" .. port, srv
end

describe("http client", function()
  after_each(function() client.close_idle() end)

  it("gives a response its headers and fields when read, as sent",
    function()
    run_task(function()
      local base, srv = serve(function(_, res)
        res:header("X-Twice", "a")
        res:add_header("x-twice", "b")
        res:header("Content-Type", "text/plain")
        res:send("body")
      end)
      for _ = 1, 2 do -- (a new connection, then a pooled one)
        local res = assert(http.request{url = base .. "/"})
        -- made from the head's bytes on first read, once
        assert.is_nil(rawget(res, "headers"))
        assert.is_nil(rawget(res, "fields"))
        assert.are.equal("a, b", res.headers["X-TWICE"])
        assert.are.equal(res.headers, res.headers)
        assert.are.equal("text/plain", res.headers["content-type"])
        local f = res.fields
        assert.are.same({"X-Twice", "a", "x-twice", "b", "Content-Type",
          "text/plain"}, {f[1], f[2], f[3], f[4], f[5], f[6]})
        assert.are.equal(0, #f % 2)
        assert.are.equal("body", res:body())
        assert.is_nil(res.error)
        assert.are.equal("function", type(res.close))
      end
      srv:close()
    end)
  end)

  it("parses the same URL once, and any number of them right", function()
    run_task(function()
      local base, srv = serve(function(req, res)
        res:header("X-Method", req.method)
        res:header("X-Seen", req.headers["x-a"] or "-")
        res:send(req.target)
      end)
      -- more URLs than the cache holds: each still goes where it says
      for i = 1, 300 do
        local url = base .. "/u" .. (i % 280)
        local res = assert(http.get(url))
        assert.are.equal("/u" .. (i % 280), res:body())
        assert.are.equal(url, res.url)
      end
      -- one URL, its plain head made once per method: each request still
      -- says its own method, and one with headers sends them
      for i = 1, 6 do
        local method = ({"GET", "HEAD", "DELETE"})[i % 3 + 1]
        local res = assert(http.request{url = base .. "/m", method = method,
          headers = i > 3 and {["X-A"] = "h" .. i} or nil})
        assert.are.equal(method, res.headers["x-method"])
        assert.are.equal(i > 3 and "h" .. i or "-", res.headers["x-seen"])
        assert.are.equal(method == "HEAD" and "" or "/m", res:body())
      end
      srv:close()
    end, 60)
  end)

  it("gets, posts, and pools one connection per origin", function()
    run_task(function()
      local peers = {}
      local base, srv = serve(function(req, res)
        peers[#peers + 1] = req.peer
        if req.method == "POST" then
          res:send(201, req.method .. " " .. req:body())
        else
          res:header("Content-Type", "text/plain")
          res:send("got " .. req.target)
        end
      end)
      local res = assert(http.get(base .. "/a?x=1"))
      assert.are.equal(200, res.status)
      assert.are.equal("OK", res.reason)
      assert.are.equal("text/plain", res.headers["Content-Type"])
      assert.are.equal("got /a?x=1", res:body())
      assert.are.equal(1, client.pool_size())
      res = assert(http.request{method = "POST", url = base .. "/p",
        body = "data", headers = {["X-A"] = "1"}})
      assert.are.equal(201, res.status)
      assert.are.equal("POST data", res:body())
      assert.are.equal(peers[1], peers[2]) -- the same connection
      srv:close()
    end)
  end)

  it("sends a request again when the pooled connection was closed",
    function()
    run_task(function()
      local n = 0
      local srv = assert(http.listen{port = 0, timeouts = {idle = 0.2},
        handler = function(req, res)
          n = n + 1
          res:send(req.method .. " " .. n)
        end})
      local base = "http://127.0.0.1:" .. select(2, srv:sockname())
      assert.are.equal("GET 1", assert(http.get(base)):body())
      assert.are.equal(1, client.pool_size())
      task.sleep(0.6) -- the server drops the idle connection
      assert.are.equal("GET 2", assert(http.get(base)):body())
      task.sleep(0.6)
      local res = assert(http.request{method = "POST", url = base,
        body = "x"})
      assert.are.equal("POST 3", res:body())
      srv:close()
    end)
  end)

  it("sends it again on a new connection, not on another pooled one",
    function()
    run_task(function()
      -- a server that answers one request a connection and drops the
      -- connection at the next one, unanswered (an idle timeout that
      -- races the request)
      local accepted = 0
      local ls, port = raw_server(function(c)
        accepted = accepted + 1
        for i = 1, 2 do
          repeat
            local line = c:read("l")
          until not line or line == "" or line == "\r"
          if i == 2 then break end
          c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        end
        c:close()
      end)
      local base = "http://127.0.0.1:" .. port
      -- two at once: two connections in the pool
      local a, b = task.spawn(http.request, {url = base}),
        task.spawn(http.request, {url = base})
      local ra, rb = assert(a:join()), assert(b:join())
      assert.are.equal("ok", ra:body())
      assert.are.equal("ok", rb:body())
      assert.are.equal(2, client.pool_size())
      -- a pooled one is dropped at the request: sent again, on a third
      local res = assert(http.request{url = base})
      assert.are.equal("ok", res:body())
      assert.are.equal(3, accepted)
      ls:close()
    end)
  end)

  it("sends chunked (source) and reads chunked and close-delimited bodies",
    function()
    run_task(function()
      local base, srv = serve(function(req, res)
        local n = 0
        for piece in req:chunks() do
          n = n + #piece
          res:write(piece:upper())
        end
        res:write(" ", n)
      end)
      local pieces = {"abc", "", "def", ("x"):rep(100000)}
      local i = 0
      local res = assert(http.request{method = "PUT", url = base,
        source = function() i = i + 1 return pieces[i] end})
      assert.are.equal("chunked", res.headers["transfer-encoding"])
      local body = assert(res:body())
      assert.are.equal("ABCDEF" .. ("X"):rep(100000) .. " 100006", body)
      srv:close()
      -- a close-delimited answer from a raw server
      local raw = assert(net.listen{port = 0})
      local _, port = raw:sockname()
      task.spawn(function()
        local c = raw:accept()
        repeat local l = c:read("l") until l == "\r" or not l
        c:write("HTTP/1.1 200 OK\r\n\r\nuntil the end")
        c:close()
      end)
      res = assert(http.get("http://127.0.0.1:" .. port .. "/"))
      assert.are.equal("until the end", res:body())
      raw:close()
    end)
  end)

  it("follows redirects (bounded), 303 turns POST into GET", function()
    run_task(function()
      local base, srv = serve(function(req, res)
        if req.path == "/loop" then
          res:header("Location", "/loop")
          return res:send(302, "")
        elseif req.path == "/see" then
          res:header("Location", "http://127.0.0.1:" ..
            select(2, req._conn:sockname()) .. "/end")
          return res:send(303, "moved")
        end
        res:send(req.method .. " " .. req.path)
      end)
      local res = assert(http.request{method = "POST", url = base .. "/see",
        body = "x"})
      assert.are.equal(200, res.status)
      assert.are.equal("GET /end", res:body())
      res = assert(http.request{url = base .. "/loop", redirects = 3})
      assert.are.equal(302, res.status)
      res = assert(http.request{url = base .. "/see", redirects = 0})
      assert.are.equal(303, res.status)
      assert.are.equal("moved", res:body())
      srv:close()
    end)
  end)

  it("resolves a Location as RFC 3986 5.2 does (its 5.4 examples)",
    function()
    local base = "http://a/b/c/d;p?q"
    local examples = {
      g = "http://a/b/c/g", ["./g"] = "http://a/b/c/g",
      ["g/"] = "http://a/b/c/g/", ["/g"] = "http://a/g",
      ["//g"] = "http://g", ["?y"] = "http://a/b/c/d;p?y",
      ["g?y"] = "http://a/b/c/g?y", ["#s"] = "http://a/b/c/d;p?q",
      ["g#s"] = "http://a/b/c/g", [";x"] = "http://a/b/c/;x",
      ["g;x?y#s"] = "http://a/b/c/g;x?y", [""] = "http://a/b/c/d;p?q",
      ["."] = "http://a/b/c/", ["./"] = "http://a/b/c/",
      [".."] = "http://a/b/", ["../g"] = "http://a/b/g",
      ["../.."] = "http://a/", ["../../g"] = "http://a/g",
      ["../../../../g"] = "http://a/g", ["/./g"] = "http://a/g",
      ["/../g"] = "http://a/g", ["g."] = "http://a/b/c/g.",
      ["..g"] = "http://a/b/c/..g", ["./../g"] = "http://a/b/g",
      ["./g/."] = "http://a/b/c/g/", ["g/./h"] = "http://a/b/c/g/h",
      ["g/../h"] = "http://a/b/c/h", ["g;x=1/../y"] = "http://a/b/c/y",
      ["g?y/../x"] = "http://a/b/c/g?y/../x",
      ["http://o/p/../q"] = "http://o/q",
    }
    for ref, want in pairs(examples) do
      assert.equal(want, client.resolve(base, ref), ref)
    end
    assert.equal("http://h/", client.resolve("http://h", "/"))
    assert.equal("http://h/g", client.resolve("http://h", "g"))
  end)

  it("keeps credentials from a redirect to another origin", function()
    run_task(function()
      local seen = {}
      local other, osrv = serve(function(req, res)
        seen[#seen + 1] = {auth = req.headers.authorization,
          cookie = req.headers.cookie, keep = req.headers["x-keep"]}
        res:send("there")
      end)
      local base, srv = serve(function(req, res)
        if req.path == "/away" then
          res:header("Location", other .. "/landed")
          res:send(302, "")
        elseif req.path == "/near" then
          res:header("Location", "/here")
          res:send(307, "")
        else
          seen[#seen + 1] = {auth = req.headers.authorization,
            cookie = req.headers.cookie, keep = req.headers["x-keep"]}
          res:send("here")
        end
      end)
      local headers = {Authorization = "Bearer secret", Cookie = "s=1",
        ["X-Keep"] = "yes"}
      -- same origin: all of them
      local res = assert(http.request{url = base .. "/near",
        headers = headers})
      assert.equal("here", res:body())
      assert.same({auth = "Bearer secret", cookie = "s=1", keep = "yes"},
        seen[1])
      -- another origin (another port): not the credentials
      res = assert(http.request{url = base .. "/away", headers = headers})
      assert.equal("there", res:body())
      assert.same({keep = "yes"}, seen[2])
      assert.equal("Bearer secret", headers.Authorization) -- (untouched)
      srv:close()
      osrv:close()
    end)
  end)

  it("times out, and refuses bad answers and bad URLs", function()
    run_task(function()
      local finished = task.event()
      local base, srv = serve(function(_, res)
        task.sleep(1.5)
        pcall(res.send, res, "late") -- (the client is gone by now)
        finished:set()
      end)
      local t0 = task.now()
      local res, err = http.request{url = base, timeout = 0.3}
      assert.is_nil(res)
      assert.are.equal("timeout", err)
      assert.is_true(task.now() - t0 < 1.4)
      assert.is_true(finished:wait(10))
      srv:close()
      -- a smuggling-shaped answer
      local raw = assert(net.listen{port = 0})
      local _, port = raw:sockname()
      task.spawn(function()
        local c = raw:accept()
        repeat local l = c:read("l") until l == "\r" or not l
        c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" ..
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        c:close()
      end)
      res, err = http.get("http://127.0.0.1:" .. port .. "/")
      assert.is_nil(res)
      assert.matches("bad response", err)
      raw:close()
      assert.matches("not a URL", select(2, http.get("nope")))
      assert.matches("unsupported scheme", select(2, http.get("ftp://x/")))
      assert.matches("user info", select(2, http.get("http://u@h/")))
      -- (a URL in a message has its control bytes escaped: logs)
      assert.equal("bad host in URL: http://h\\013\\010X: y/",
        select(2, http.get("http://h\r\nX: y/")))
      -- an empty port is the default one, and the Host header says so
      local u = client.parse_url("http://h:/p")
      assert.same({"h", 80, "h"}, {u.host, u.port, u.authority})
      res, err = http.get("http://nothing.invalid/", {timeout = 5})
      assert.is_nil(res)
      assert.is_string(err)
    end)
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() http.request() end)
    assert.has_error(function() http.request{} end)
    assert.has_error(function() http.request{url = "http://x/", bogus = 1} end)
    assert.has_error(function()
      http.request{url = "http://x/", headers = {X = "a\r\nb"}}
    end)
    assert.has_error(function()
      http.request{url = "http://x/", headers = {["Content-Length"] = "1"}}
    end)
    assert.has_error(function()
      http.request{url = "http://x/", body = "a", source = print}
    end)
    assert.has_error(function() http.get(42) end)
    -- methods are case-sensitive: the message says what is wanted, and
    -- shows what came (escaped)
    assert.has_error(function()
      http.request{url = "http://x/", method = "get"}
    end, "bad argument #1 to 'request' (method: an upper-case token such " ..
      "as GET expected, got \"get\")")
    assert.has_error(function()
      http.request{url = "http://x/", method = "A\nB"}
    end, "bad argument #1 to 'request' (method: an upper-case token such " ..
      "as GET expected, got \"A\\nB\")")
    assert.has_error(function()
      http.request{url = "http://x/", method = true}
    end, "bad argument #1 to 'request' (method: an upper-case token such " ..
      "as GET expected, got boolean)")
  end)

  -- Each case on its own line: the error must name that line of this file
  -- (the caller's), never a line inside lib/, and the function called.
  it("checks every option at once, at the caller's line", function()
    local u = "https://127.0.0.1:1/"
    local cases = {
      {"#1 to 'request' (tls: unknown option 'bogus')",
        function() http.request{url = u, tls = {bogus = 1}} end},
      {"#1 to 'request' (tls: true, an options table or a tls.context " ..
        "expected, got number)",
        function() http.request{url = u, tls = 5} end},
      {"#2 to 'get' (tls: unknown option 'bogus')",
        function() http.get(u, {tls = {bogus = 1}}) end},
      {"#1 to 'request' (gzip: boolean expected, got number)",
        function() http.request{url = u, gzip = 5} end},
      {"#1 to 'request' (max_body: non-negative number expected, got x)",
        function() http.request{url = u, max_body = "x"} end},
      {"#2 to 'get' (max_body: non-negative number expected, got x)",
        function() http.get(u, {max_body = "x"}) end},
      {"#2 to 'get' (unknown option 'bogus')",
        function() http.get(u, {bogus = 1}) end},
      {"#2 to 'get' (table expected, got number)",
        function() http.get(u, 5) end},
    }
    run_task(function()
      for i, c in ipairs(cases) do
        local ok, err = pcall(c[2])
        assert.is_false(ok, "case " .. i .. " raised nothing")
        local line = debug.getinfo(c[2], "S").linedefined
        assert.are.equal(("spec/http_client_spec.lua:%d: bad argument %s")
          :format(line, c[1]), err, "case " .. i)
      end
      local url, srv = serve(function(_, res) res:send("hello\n") end)
      local res = assert(http.request{url = url})
      local f = function() local _ = res:body("x") end
      local ok, err = pcall(f)
      local line = debug.getinfo(f, "S").linedefined
      srv:close()
      assert.is_false(ok)
      assert.are.equal(("spec/http_client_spec.lua:%d: bad argument #1 " ..
        "to 'body' (non-negative number expected, got x)"):format(line), err)
    end)
  end)

  it("takes a new connection for a pooled one the server closed, even " ..
    "for a source body", function()
    run_task(function()
      local n = 0
      local srv = assert(http.listen{port = 0, timeouts = {idle = 0.2},
        handler = function(req, res)
          n = n + 1
          res:send(req.method .. " " .. n .. " " .. req:body())
        end})
      local base = "http://127.0.0.1:" .. select(2, srv:sockname())
      local function once(s)
        local done = false
        return function()
          if done then return nil end
          done = true
          return s
        end
      end
      local res = assert(http.request{method = "POST", url = base,
        source = once("a")})
      assert.are.equal("POST 1 a", res:body())
      assert.are.equal(1, client.pool_size())
      task.sleep(0.6) -- the server drops the idle connection
      res = assert(http.request{method = "POST", url = base,
        source = once("b")})
      assert.are.equal("POST 2 b", res:body())
      srv:close()
    end)
  end)

  it("sends an idempotent request again when a reused connection drops " ..
    "it unanswered, a POST never", function()
    run_task(function()
      -- a server that answers one request a connection, then reads the
      -- next one whole and drops the connection unanswered
      local seen = {}
      local ls, port = raw_server(function(c)
        for i = 1, 2 do
          local first = c:read("l")
          if not first then break end
          local len = 0
          repeat
            local line = c:read("l")
            local l = line and line:match("^[Cc]ontent%-[Ll]ength: (%d+)")
            if l then len = tonumber(l) end
          until not line or line == "" or line == "\r"
          if len > 0 then c:read(len) end
          seen[#seen + 1] = first:match("^%u+")
          if i == 2 then break end
          c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        end
        c:close()
      end)
      local base = "http://127.0.0.1:" .. port
      assert.are.equal("ok", assert(http.get(base)):body())
      -- PUT (idempotent, a string body): sent again on a new connection
      local res = assert(http.request{method = "PUT", url = base,
        body = "x"})
      assert.are.equal("ok", res:body())
      assert.are.same({"GET", "PUT", "PUT"}, seen)
      -- POST: the server may have acted on it; the caller is told
      local r, err = http.request{method = "POST", url = base, body = "x"}
      assert.is_nil(r)
      assert.is_string(err)
      assert.are.same({"GET", "PUT", "PUT", "POST"}, seen)
      ls:close()
    end)
  end)

  it("returns a 307/308 to a source body, follows it with a string body",
    function()
    run_task(function()
      local seen = {}
      local base, srv = serve(function(req, res)
        local body = req:body()
        seen[#seen + 1] = req.method .. " " .. req.path .. " " .. body
        if req.path == "/a" or req.path == "/p" then
          res:header("Location", "/b")
          return res:send(req.path == "/a" and 307 or 308, "moved")
        end
        res:send(req.method .. " " .. body)
      end)
      for _, path in ipairs{"/a", "/p"} do
        seen = {}
        local parts, i = {"hello ", "world"}, 0
        local res = assert(http.request{method = "POST", url = base .. path,
          source = function() i = i + 1 return parts[i] end})
        assert.are.equal(path == "/a" and 307 or 308, res.status)
        assert.are.equal("/b", res.headers.location)
        assert.are.equal("moved", res:body())
        assert.are.same({"POST " .. path .. " hello world"}, seen)
        seen = {}
        res = assert(http.request{method = "POST", url = base .. path,
          body = "hello world"})
        assert.are.equal(200, res.status)
        assert.are.equal("POST hello world", res:body())
        assert.are.same({"POST " .. path .. " hello world",
          "POST /b hello world"}, seen)
      end
      srv:close()
    end)
  end)

  it("closes idle pooled connections when timeouts.pool passes", function()
    local common = require "http.common"
    local old = common.defaults.timeouts.pool
    finally(function() common.defaults.timeouts.pool = old end)
    common.defaults.timeouts.pool = 0.3
    run_task(function()
      local ended = task.event()
      local ls = assert(net.listen{host = "127.0.0.1", port = 0})
      task.spawn(function()
        local c = ls:accept()
        c:settimeout(10)
        repeat local l = c:read("l") until not l or l == "\r"
        c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        local more, err = c:read("l") -- the client's close: the end
        if not more and err == "closed" then ended:set() end
        c:close()
      end)
      local base = "http://127.0.0.1:" .. select(2, ls:sockname())
      local t0 = task.now()
      assert.are.equal("ok", assert(http.get(base)):body())
      assert.are.equal(1, client.pool_size())
      assert.is_true(ended:wait(5))
      assert.is_true(task.now() - t0 >= 0.25)
      assert.are.equal(0, client.pool_size())
      ls:close()
    end)
    -- a pooled connection does not keep a finished script alive
    local script = tmpfile([[
local http, task = require "http", require "task"
task.spawn(function()
  local srv = assert(http.listen{port = 0, handler = function(_, res)
    res:send("ok") end})
  local url = "http://127.0.0.1:" .. select(2, srv:sockname())
  print(assert(http.get(url)):body(), require("http.client").pool_size())
  srv:close()
end)
]], ".lua")
    local t0 = os.time()
    local out, err, code = run_host({script})
    assert.are.equal("ok\t1\n", out, err)
    assert.are.equal(0, code)
    assert.is_true(os.time() - t0 < 10)
  end)

  it("reads no body of a HEAD response, gzip or not", function()
    run_task(function()
      local base, srv = serve(function(_, res)
        res:header("Content-Encoding", "gzip")
        res:send("\31\139 not really gzip")
      end)
      local res = assert(http.request{method = "HEAD", url = base,
        gzip = true})
      assert.are.equal(200, res.status)
      assert.are.equal("", res:body())
      assert.is_nil(res.error)
      res = assert(http.request{method = "HEAD", url = base, gzip = true})
      local n = 0
      for _ in res:chunks() do n = n + 1 end
      assert.are.equal(0, n)
      assert.is_nil(res.error)
      srv:close()
    end)
  end)
end)

describe("http client against nginx", function()
  it("keeps the connection alive, follows its redirect, reads its files",
    function()
    local prefix = os.tmpname()
    os.remove(prefix)
    assert(os.execute("mkdir -p " .. q(prefix .. "/root")))
    finally(function() os.execute("rm -rf " .. q(prefix)) end)
    local big = ("0123456789"):rep(200000)
    proc.write(prefix .. "/root/a.txt", "file a\n")
    proc.write(prefix .. "/root/big.bin", big)
    local s = assert(net.listen{port = 0})
    local _, port = s:sockname()
    s:close()
    proc.write(prefix .. "/nginx.conf", ([[
daemon off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log notice;
events { worker_connections 64; }
http {
  log_format conn "$connection $request";
  access_log %s/access.log conn;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  server {
    listen 127.0.0.1:%d;
    root %s/root;
    location = /go { return 302 /a.txt; }
  }
}
]]):format(prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix,
      port, prefix))
    local pidf = prefix .. "/shell.pid"
    assert(os.execute(("nginx -p %s -c %s/nginx.conf >/dev/null 2>&1 & " ..
      "echo $! > %s"):format(q(prefix), q(prefix), q(pidf))))
    local pid = tonumber(proc.slurp(pidf):match("%d+"))
    finally(function() os.execute("kill -TERM " .. pid .. " 2>/dev/null") end)
    run_task(function()
      local base = "http://127.0.0.1:" .. port
      local res
      for _ = 1, 200 do -- until nginx listens
        res = http.get(base .. "/a.txt")
        if res then break end
        task.sleep(0.05)
      end
      assert(res, "nginx did not answer")
      assert.are.equal("file a\n", res:body())
      res = assert(http.get(base .. "/go"))
      assert.are.equal("file a\n", res:body())
      res = assert(http.request{url = base .. "/big.bin"})
      local n = 0
      for piece in res:chunks() do n = n + #piece end
      assert.is_nil(res.error)
      assert.are.equal(#big, n)
      res = assert(http.get(base .. "/missing"))
      assert.are.equal(404, res.status)
      assert.are.equal(1, client.pool_size())
    end, 30)
    -- nginx saw one connection for all the requests ($connection)
    local log = prefix .. "/access.log"
    proc.wait(function()
      return select(2, proc.slurp(log):gsub("\n", "")) >= 5
    end, 10, "nginx's access log")
    local conns = {}
    for c in proc.slurp(log):gmatch("(%d+) GET") do conns[c] = true end
    assert.are.equal(1, #(function()
      local l = {}
      for c in pairs(conns) do l[#l + 1] = c end
      return l
    end)())
    client.close_idle()
  end)
end)
