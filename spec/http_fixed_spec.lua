-- http.fixed: a fixed response, answered in C (lib/http_fixed.c) when a
-- request for it arrives on a connection between two requests, and by
-- its Lua handler form otherwise. The C answers must be the bytes the
-- Lua sends, for every input: a server whose fixed routes C answers is
-- checked against the same server with each fixed response wrapped in a
-- plain function (which C never answers), on fixed sequences and on
-- random and mutated ones (this runs under ASan and UBSan in make asan).
local http = require "http"
local net = require "net"
local log = require "log"
local proc = require "process_helper"
local T = require "tls_helper"
local sh = require("common").sh

local SEED = tonumber(os.getenv("HTTP_FUZZ_SEED")) or 20261206
local CASES = tonumber(os.getenv("HTTP_FIXED_CASES")) or 300
local random, char, concat = math.random, string.char, table.concat

local HELLO = http.fixed(200, "hello world\n",
  {["Content-Type"] = "text/plain"})
local GONE = http.fixed(410, "gone\n", {["Cache-Control"] = "no-store",
  ["X-Many"] = {"a", "b"}})
local DATED = http.fixed(200, "d\n", {Date = "Thu, 01 Jan 1970 00:00:00 GMT"})
local JSON = http.fixed(200, ('{"a": 1}'):rep(100),
  {["Content-Type"] = "application/json"})
local BIG = http.fixed(200, ("0123456789abcdef"):rep(1100)) -- (> 16 KiB)

-- The app, with its fixed responses as they are (C answers them) or
-- each wrapped in a function (the Lua answers them all).
local function app(wrap)
  local function f(x)
    if not wrap then return x end
    return function(req, res) return x(req, res) end
  end
  local r = http.router()
  r:get("/hello", f(HELLO))
  r:route("*", "/gone", f(GONE))
  r:get("/big", f(BIG))
  r:get("/dated", f(DATED))
  r:get("/json", f(JSON))
  r:get("/lua", function(req, res)
    res:header("Content-Type", "text/plain")
    res:send(req.method .. " " .. req.target .. "\n")
  end)
  r:post("/hello", function(req, res) res:send(201, "post " ..
    #req:body() .. "\n") end)
  r:get("/users/:id", function(req, res) res:send(req.params.id) end)
  return r
end

local function listen(handler, opts)
  opts = opts or {}
  local srv = assert(http.listen{host = "127.0.0.1", port = 0,
    handler = handler, log = opts.log, gzip = opts.gzip, tls = opts.tls,
    limits = opts.limits, timeouts = {head = 1, body = 1}})
  return srv, select(2, srv:sockname())
end

local function answered(srv) return select(3, srv._answers:count()) end

local function normal(s)
  return (s:gsub("Date: [^\r\n]*\r\n", "Date: -\r\n"))
end

-- Write req on c and read its whole response (a Content-Length body,
-- none for HEAD).
local function round_trip(c, req)
  assert(c:write(req))
  local head = {}
  repeat
    local line = assert(c:read("L"))
    head[#head + 1] = line
  until line == "\r\n"
  head = concat(head)
  local len = tonumber(head:match("Content%-Length: (%d+)")) or 0
  if len > 0 and not req:find("^HEAD") then return head .. c:read(len) end
  return head
end

-- One connection: first (a whole request) and its response, then rest
-- in one write with a last request that closes; everything the server
-- sent, Date lines made equal.
local function exchange(port, first, rest)
  local c = assert(net.connect("127.0.0.1", port, {timeout = 10,
    max_read = 1 << 24}))
  local out = {}
  if first then out[1] = round_trip(c, first) end
  c:write(rest, "GET /lua?last HTTP/1.1\r\nHost: a\r\n",
    "Connection: close\r\n\r\n")
  out[#out + 1] = c:read("a") or ""
  c:close()
  return normal(concat(out))
end

local GET = "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"

describe("http.fixed", function()
  it("answers with the same bytes as its Lua form, on kept-alive " ..
    "connections, pipelined, in order, with gzip on and off", function()
    run_task(function()
     for _, gzip in ipairs{false, {min_size = 256}} do
      local a, pa = listen(app(false), {gzip = gzip})
      local b, pb = listen(app(true), {gzip = gzip})
      local AE = "Accept-Encoding: gzip\r\n"
      local cases = {
        "GET /hello HTTP/1.1\r\nHost: a\r\n" .. AE .. "\r\n" .. GET,
        "GET /json HTTP/1.1\r\nHost: a\r\n" .. AE .. "\r\n" ..
          "GET /json HTTP/1.1\r\nHost: a\r\n\r\n" ..
          "HEAD /json HTTP/1.1\r\nHost: a\r\n" .. AE .. "\r\n",
        GET,
        "HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n",
        GET .. GET .. GET,
        "GET /hello?x=1&y HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a/hello HTTP/1.1\r\nHost: a\r\n\r\n",
        "DELETE /gone HTTP/1.1\r\nHost: a\r\n\r\nGET /gone HTTP/1.1\r\n" ..
          "Host: a\r\n\r\n",
        "GET /big HTTP/1.1\r\nHost: a\r\n\r\nHEAD /big HTTP/1.1\r\n" ..
          "Host: a\r\n\r\n",
        GET .. "GET /lua HTTP/1.1\r\nHost: a\r\n\r\n" .. GET,
        "POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" ..
          GET,
        "GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "GET /hello HTTP/1.0\r\n\r\n",
        "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" .. GET,
        "GET /dated HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" ..
          "HEAD /dated HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" ..
          "GET /dated HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD /hello HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" ..
          GET,
        "\r\n\r\nGET /hello HTTP/1.1\nHost: a\n\n",
        "GET /hello HTTP/1.1\r\nHost: a\r\nX: 1\r\nX: 2\r\n\r\n",
        "GET /Hello HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /hello/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /users/7 HTTP/1.1\r\nHost: a\r\n\r\n" .. GET,
        "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" .. GET,
        "GET /hello HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked" ..
          "\r\n\r\n0\r\n\r\n" .. GET,
        "get /hello HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: a\r\n", -- (whole only with the last)
      }
      for i, rest in ipairs(cases) do
        for _, first in ipairs{GET, "GET /lua HTTP/1.1\r\nHost: a\r\n\r\n"}
        do
          local x, y = exchange(pa, first, rest), exchange(pb, first, rest)
          assert.are.equal(y, x, "case " .. i .. ": " .. rest)
        end
      end
      -- C answered on a, never on b
      assert.is_true(answered(a) >= 20, "answered in C: " .. answered(a))
      assert.are.equal(0, answered(b))
      a:close()
      b:close()
     end
    end, 60)
  end)

  it("answers in C also while the round waits for a next request " ..
    "(recv_wait), and the connection goes on in Lua after", function()
    run_task(function()
      local a, pa = listen(app(false))
      local c = assert(net.connect("127.0.0.1", pa, {timeout = 10}))
      local function one(req, want)
        assert.matches(want, round_trip(c, req))
      end
      one(GET, "hello world\n$")         -- Lua: the conn's first round
      one("GET /lua HTTP/1.1\r\nHost: a\r\n\r\n", "GET /lua\n$") -- rests
      local before = answered(a)
      -- (a conn that rested before waits timeouts.rest in recv_wait)
      for _ = 1, 5 do one(GET, "^HTTP/1%.1 200 OK\r\n.*hello world\n$") end
      one("GET /lua?2 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /lua%?2\n$")
      assert.are.equal(before + 5, answered(a))
      c:close()
      a:close()
    end, 30)
  end)

  it("matches its Lua form on random and mutated requests", function()
    math.randomseed(SEED)
    local pieces = {
      GET, "HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /gone HTTP/1.1\r\nHost: x:80\r\n\r\n",
      "GET /lua HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok",
      "GET /hello HTTP/1.1\r\nHost: a\r\nX-Request-Id: 17\r\n\r\n",
      "GET /big HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
      "GET /dated HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "HEAD /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    }
    local junk = {"\r", "\n", "\0", " ", ":", "\t", "\r\n", "/", "%00",
      "Host: b\r\n", "Transfer-Encoding: x\r\n",
      "\r\n\r\n", char(200), "HTTP/1.1", "?"}
    local function mutate(s)
      local n = random(1, 3)
      for _ = 1, n do
        local k = random(1, #s + 1)
        local how = random(1, 3)
        if how == 1 then -- insert
          s = s:sub(1, k - 1) .. junk[random(#junk)] .. s:sub(k)
        elseif how == 2 and #s > 0 then -- delete
          s = s:sub(1, k - 1) .. s:sub(k + 1)
        else -- replace a byte
          s = s:sub(1, k - 1) .. char(random(0, 255)) .. s:sub(k + 1)
        end
      end
      return s
    end
    run_task(function()
      local a, pa = listen(app(false), {limits = {line = 200, head = 400,
        fields = 4}})
      local b, pb = listen(app(true), {limits = {line = 200, head = 400,
        fields = 4}})
      for i = 1, CASES do
        local parts = {}
        for j = 1, random(1, 4) do
          local p = pieces[random(#pieces)]
          if random(3) == 1 then p = mutate(p) end
          parts[j] = p
        end
        if random(10) == 1 then parts[#parts + 1] = ("X: y\r\n"):rep(6) end
        local rest = concat(parts)
        local x, y = exchange(pa, GET, rest), exchange(pb, GET, rest)
        if x ~= y then
          error(("case %d differs: %q\nC: %q\nLua: %q"):format(i, rest, x,
            y))
        end
      end
      assert.is_true(answered(a) > CASES / 2, "C answered " .. answered(a))
      assert.are.equal(0, answered(b))
      a:close()
      b:close()
    end, 300)
  end)

  it("follows the router: routes and middleware added later, the " ..
    "first route of a path first", function()
    run_task(function()
      local r = http.router()
      r:get("/a", function(_, res) res:send("lua a\n") end)
      r:get("/a", HELLO) -- (never reached: the first /a answers)
      local srv, port = listen(r)
      local function body(target)
        local s = exchange(port, GET, "GET " .. target ..
          " HTTP/1.1\r\nHost: a\r\n\r\n")
        return s
      end
      assert.matches("lua a\n", body("/a"), 1, true)
      local n0 = answered(srv)
      r:get("/b", HELLO) -- after listen: C knows it at once
      assert.matches("hello world\n", body("/b"), 1, true)
      assert.are.equal(n0 + 1, answered(srv)) -- (/b; the first is Lua's)
      local seen = 0
      r:use(function(_, res, nxt)
        seen = seen + 1
        res:header("X-Mw", "1")
        return nxt()
      end)
      local n1 = answered(srv)
      local s = body("/b")
      assert.matches("X%-Mw: 1", s)
      assert.are.equal(n1, answered(srv)) -- middleware: the Lua does all
      assert.is_true(seen >= 2)
      srv:close()
    end, 30)
  end)

  it("writes the log module's access line the Lua writes, in text and " ..
    "JSON; leaves to the Lua what gzip decides, and a closed server",
    function()
    local function lines(path)
      local t = {}
      for l in io.lines(path) do
        -- (the time, the process and the milliseconds differ)
        l = l:gsub("^%S+ ", ""):gsub("luahost%[%d+%]", "luahost[-]")
          :gsub('"time":"[^"]*"', ""):gsub('"pid":%d+', "")
          :gsub("ms=[%d.]+", "ms=-"):gsub('"ms":[%d.]+', '"ms":-')
        t[#t + 1] = l
      end
      return t
    end
    run_task(function()
      local prev = log.setup{level = "info"}
      local a, pa = listen(app(false), {log = log})
      local b, pb = listen(app(true), {log = log})
      local rest = GET .. "HEAD /hello?q=%22 HTTP/1.1\r\nHost: a\r\n\r\n" ..
        "GET /gone HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" ..
        "GET /hello?" .. ("x"):rep(1100) .. " HTTP/1.1\r\nHost: a\r\n\r\n" ..
        "GET /hello?" .. ("y"):rep(7900) .. " HTTP/1.1\r\nHost: a\r\n\r\n"
      for _, format in ipairs{"text", "json"} do
        local fa, fb = tmpname(), tmpname()
        log.setup{format = format, file = fa}
        exchange(pa, GET, rest)
        log.setup{file = fb}
        exchange(pb, GET, rest)
        log.setup{file = false}
        local la, lb = lines(fa), lines(fb)
        assert.are.equal(7, #lb)
        assert.are.same(lb, la)
      end
      assert.is_true(answered(a) >= 6, "in C: " .. answered(a))
      assert.are.equal(0, answered(b))
      log.setup{level = prev.level, format = prev.format,
        file = prev.file or false}
      a:close()
      b:close()
      -- gzip: a body it compresses for some clients is the Lua's; a small
      -- one is the same for all (with its Vary: Accept-Encoding)
      local gz, pg = listen(app(false), {gzip = {min_size = 256}})
      local n0 = answered(gz)
      local LUA = "GET /lua HTTP/1.1\r\nHost: a\r\n\r\n"
      local out = exchange(pg, LUA, "GET /json HTTP/1.1\r\nHost: a\r\n" ..
        "Accept-Encoding: gzip\r\n\r\n")
      assert.matches("Content%-Encoding: gzip", out)
      assert.are.equal(n0, answered(gz))
      out = exchange(pg, LUA, GET)
      -- (each of the three: /lua, /hello from C, /lua?last)
      assert.are.equal(3, select(2, out:gsub("Vary: Accept%-Encoding\r\n",
        "")))
      assert.are.equal(n0 + 1, answered(gz))
      gz:close()
      -- a closed server: the conns it keeps answer in Lua (and close)
      local s2, p2 = listen(app(false))
      local c = assert(net.connect("127.0.0.1", p2, {timeout = 10}))
      assert.matches("\r\n\r\nhello world\n$", round_trip(c, GET))
      local n2 = answered(s2)
      s2:close()
      c:write(GET)
      local after = c:read("a") or ""
      c:close()
      -- (closed with the server, or answered by the Lua as the last)
      assert.is_true(after == "" or after:find("Connection: close", 1,
        true) ~= nil, after)
      assert.are.equal(n2, answered(s2))
    end, 30)
  end)

  it("answers over TLS, through the http client's pooled connection",
    function()
    local certs = T.certs()
    run_task(function()
      local srv, port = listen(app(false), {tls = {cert = certs.server,
        key = certs.server_key}})
      local url = "https://127.0.0.1:" .. port .. "/hello"
      for _ = 1, 5 do
        local res = assert(http.request{url = url, tls = {ca = certs.ca}})
        assert.are.equal(200, res.status)
        assert.are.equal("hello world\n", res:body())
        assert.are.equal("text/plain", res.headers["content-type"])
      end
      assert.is_true(answered(srv) >= 3, "answered " .. answered(srv))
      require("http.client").close_idle()
      srv:close()
    end, 30)
  end)

  it("a peer that resets while its requests are answered in C harms no " ..
    "one else", function()
    run_task(function()
      local srv, port = listen(app(false))
      for _ = 1, 20 do
        local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
        assert.matches("hello world\n$", round_trip(c, GET))
        -- a flood of requests, then a reset (SO_LINGER 0) unread: C's
        -- writes meet a closed peer
        assert(c:setopt("linger", {on = true, seconds = 0}))
        c:write((GET):rep(500))
        c:close()
      end
      local before = answered(srv)
      local x = exchange(port, GET, GET .. GET)
      -- (the first, two from C, the last from the Lua)
      assert.are.equal(4, select(2, x:gsub("HTTP/1%.1 200 OK", "")))
      assert.is_true(answered(srv) >= before + 2)
      srv:close()
    end, 60)
  end)

  it("raises on bad arguments, naming them", function()
    assert.has_error(function() http.fixed("200", "x") end,
      "bad argument #1 to 'fixed' (a final status, integer in 200..599 " ..
      "expected, got 200)")
    assert.has_error(function() http.fixed(100, "x") end)
    assert.has_error(function() http.fixed(200) end,
      "bad argument #2 to 'fixed' (string expected, got nil)")
    assert.has_error(function() http.fixed(200, "x", "h") end,
      "bad argument #3 to 'fixed' (table of fields expected, got string)")
    assert.has_error(function()
      http.fixed(200, "x", {["Content-Length"] = "1"})
    end, "bad argument #3 to 'fixed' (Content-Length is set by the server)")
    assert.has_error(function()
      http.fixed(200, "x", {Connection = "close"})
    end, "bad argument #3 to 'fixed' (Connection is set by the server)")
    assert.has_error(function() http.fixed(200, "x", {["A"] = "a\r\nb"}) end)
    assert.has_error(function() http.fixed(200, "x", {["a b"] = "1"}) end)
    assert.has_error(function()
      http.fixed(200, "x", {["X"] = "1", ["x"] = "2"})
    end)
    assert.has_error(function() http.fixed(200, "x", {X = {}}) end)
    assert.has_error(function() http.fixed(200, "x", {X = true}) end)
  end)
end)

describe("http.fixed with real clients", function()
  local server, base
  setup(function()
    server = proc.start({"spec/support/fixed_app.lua"},
      {env = ""})
    base = "http://127.0.0.1:" .. server:wait_for("listening (%d+)", 20)
  end)
  teardown(function() server:stop() end)

  local function count()
    return tonumber((sh(("curl -s %s/count"):format(base))))
  end

  it("serves ab -k, every answer right, most of them in C", function()
    local before = count()
    local out = sh(("ab -k -n 4000 -c 8 %s/hello 2>&1"):format(base), 60)
    assert.matches("Complete requests:%s+4000", out)
    assert.matches("Failed requests:%s+0", out)
    -- (a "Non-2xx responses" line only when some were not 2xx)
    assert.not_matches("Non%-2xx responses:%s+[1-9]", out)
    assert.matches("Keep%-Alive requests:%s+4000", out)
    assert.is_true(count() - before >= 3000, "in C: " .. count() - before)
  end)

  it("answers curl's requests on one connection, and its uploads in Lua",
    function()
    local out = sh(("curl -sv %s/hello %s/hello %s/hello 2>&1"):format(base,
      base, base))
    local _, n = out:gsub("hello world\n", "")
    assert.are.equal(3, n)
    assert.matches("Re%-using existing connection", out)
    out = sh(("curl -s --data-binary abc %s/echo"):format(base))
    assert.are.equal("abc", out)
  end)
end)
