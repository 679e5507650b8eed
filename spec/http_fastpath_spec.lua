-- http's per-request fast paths in C (http_resp.c build_head and
-- header_set, parse_request given the server's metatables) and the
-- router's plain-path look-up, each checked against the Lua it replaced
-- (kept here as the reference) on fixed and random inputs: this runs
-- under ASan and UBSan in make asan.
local core = require "http.core"
local common = require "http.common"
local http = require "http"

local SEED = tonumber(os.getenv("HTTP_FUZZ_SEED")) or 20261204
local CASES = tonumber(os.getenv("HTTP_FUZZ_CASES")) or 3000
local random, char, concat = math.random, string.char, table.concat
local lower, tointeger = string.lower, math.tointeger

-- {{{ the Lua reference: http.server's build_head and set_header before
-- they moved to C

local function no_body_status(s)
  return s < 200 or s == 204 or s == 304
end

local function get_header(list, name)
  for i = 3, #list, 3 do
    if list[i] == name then return list[i - 1] end
  end
end

local function ref_head(res, length, req, reason)
  local out, status = {}, res._status
  out[1] = "HTTP/1.1 " .. status .. " " .. (reason or "Unknown") .. "\r\n"
  local has_date, cl = false, nil
  local list = res._headers
  -- (1xx, 204 and 205 send no Content-Length of the handler's)
  local no_cl = status < 200 or status == 204 or status == 205
  for i = 1, #list, 3 do
    local key = list[i + 2]
    if key == "date" then has_date = true
    elseif key == "content-length" then
      -- (one, of digits: res:header lets no other through)
      local v = list[i + 1]
      if cl or not v:find("^%d+$") or not tointeger(tonumber(v)) then
        error("build_head: " .. (cl and "a second" or "a bad") ..
          " Content-Length")
      end
      cl = tointeger(tonumber(v))
    elseif key == "connection" and common.has_token(list[i + 1], "close")
    then
      res._close = true
    end
    if not (no_cl and key == "content-length") then
      out[#out + 1] = list[i] .. ": " .. list[i + 1] .. "\r\n"
    end
  end
  -- a whole body the handler's Content-Length disagrees with: an error
  if cl and length and cl ~= length and req.method ~= "HEAD" and
    not no_body_status(status) and status ~= 205 then
    error("send: Content-Length is " .. cl .. " but the body has " ..
      length .. " bytes")
  end
  if not has_date then out[#out + 1] = "Date: " .. common.date() .. "\r\n" end
  if no_body_status(status) then res._length = 0
  elseif cl then res._length = cl
  elseif length then
    res._length = length
    out[#out + 1] = "Content-Length: " .. length .. "\r\n"
  elseif req.version == "HTTP/1.1" then
    res._chunked = true
    out[#out + 1] = "Transfer-Encoding: chunked\r\n"
  else
    res._close = true
  end
  if req.close or res._close then
    res._close = true
    if req.version == "HTTP/1.1" and not common.has_token(
      get_header(list, "connection"), "close") then
      out[#out + 1] = "Connection: close\r\n"
    end
  elseif req.version == "HTTP/1.0" then
    out[#out + 1] = "Connection: keep-alive\r\n"
  end
  out[#out + 1] = "\r\n"
  res.head_sent = true
  return concat(out)
end

local function ref_set(list, name, value, add)
  local key = lower(name)
  -- (Content-Length: Lua checks it, digits only)
  if key == "transfer-encoding" or key == "content-length" or
    not core.field_ok(name, value or "") then
    return false
  end
  if not add then
    local n = #list
    for i = n - 2, 1, -3 do
      if list[i + 2] == key then
        table.move(list, i + 3, n + 3, i)
        n = n - 3
      end
    end
  end
  if value ~= nil then
    local n = #list
    list[n + 1], list[n + 2], list[n + 3] = name, value, key
  end
  return true
end

-- "/a?b" -> path, query_string as new_request made them in Lua.
local function ref_target(target)
  local path, query = target, ""
  local q = target:find("?", 1, true)
  if q then path, query = target:sub(1, q - 1), target:sub(q + 1) end
  if path:byte(1) ~= 47 and path:find("^%a[%w+.-]*://") then
    path = path:match("^%a[%w+.-]*://[^/]*(.*)$")
    if path == "" then path = "/" end
  end
  return path, query
end

-- }}}

local function pick(t) return t[random(#t)] end

local NAMES = {"Content-Type", "content-length", "Content-Length", "Date",
  "Connection", "connection", "X-A", "x-a", "Vary", "Set-Cookie",
  "Transfer-Encoding", "Bad Name", "", "X:Y", "ETag"}
local VALUES = {"text/plain", "12", "0x10", " 7 ", "1e2", "12.5", "abc",
  "close", "keep-alive, Close", "upgrade", "", "a\r\nb", "\0", "x\127",
  "Mon, 01 Jan 2024 00:00:00 GMT", ("v"):rep(300), "close ,x", "\tclose"}
local STATUSES = {100, 101, 200, 201, 204, 206, 301, 304, 404, 500, 599,
  999}

local function random_list()
  local list = {}
  for _ = 1, random(0, 5) do
    local name, value = pick(NAMES), pick(VALUES)
    if core.field_ok(name, value) and lower(name) ~= "transfer-encoding"
    then
      local n = #list
      list[n + 1], list[n + 2], list[n + 3] = name, value, lower(name)
    end
  end
  return list
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Strip the Date field (the clock may turn between two calls).
local function dateless(s)
  return (s:gsub("Date: [^\r]*\r\n", "Date: -\r\n"))
end

describe("http_resp.c build_head", function()
  it("writes what the Lua build_head wrote, on random responses",
    function()
    math.randomseed(SEED)
    for n = 1, CASES do
      local res = {_status = pick(STATUSES), _headers = random_list(),
        _close = random(4) == 1}
      local req = {version = random(3) == 1 and "HTTP/1.0" or "HTTP/1.1",
        close = random(4) == 1, method = random(5) == 1 and "HEAD" or "GET"}
      local length = random(3) > 1 and random(0, 100000) or nil
      local reason = random(5) > 1 and "Some Reason" or nil
      local r1, r2 = copy(res), copy(res)
      local wok, want = pcall(ref_head, r1, length, req, reason)
      local gok, got, apart = pcall(core.build_head, r2, length, req, reason)
      assert.are.equal(wok, gok, "case " .. n)
      if not wok then -- (the same error, both)
        assert.matches(want:match("send: .*$") or
          want:match("build_head: .*$"), got, 1, true)
        goto next_case
      end
      assert.are.equal(dateless(want), dateless(got), "case " .. n)
      assert.is_false(apart)
      for _, k in ipairs({"_length", "_chunked", "_close", "head_sent"}) do
        assert.are.equal(r1[k], r2[k], k .. " case " .. n)
      end
      ::next_case::
    end
  end)

  it("puts a small body after the head, never for HEAD or a 204/304",
    function()
    local function head(status, method, body)
      local res = {_status = status, _headers = {}}
      return core.build_head(res, #body, {version = "HTTP/1.1",
        method = method}, "R", body)
    end
    local s, apart = head(200, "GET", "hello")
    assert.matches("^HTTP/1.1 200 R\r\nDate: [^\r]+ GMT\r\n" ..
      "Content%-Length: 5\r\n\r\nhello$", s)
    assert.is_false(apart)
    s, apart = head(200, "HEAD", "hello")
    assert.matches("Content%-Length: 5\r\n\r\n$", s)
    assert.is_false(apart)
    s = head(204, "GET", "hello")
    assert.matches("\r\n\r\n$", s)
    assert.is_nil(s:find("Content-Length", 1, true))
    -- a large one goes apart (written after the head, not copied)
    local big = ("x"):rep(16385)
    s, apart = head(200, "GET", big)
    assert.matches("Content%-Length: 16385\r\n\r\n$", s)
    assert.is_true(apart)
    s, apart = head(200, "HEAD", big)
    assert.is_false(apart)
  end)

  it("makes the Date field of the clock's second, as common.date",
    function()
    local s
    for _ = 1, 3 do -- (the clock may turn between the two reads)
      local want = "Date: " .. common.date() .. "\r\n"
      s = core.build_head({_status = 200, _headers = {}}, 0,
        {version = "HTTP/1.1"})
      if s:find(want, 1, true) then return end
    end
    error("no matching Date in " .. s)
  end)

  it("refuses a broken header list or status, naming itself", function()
    local req = {version = "HTTP/1.1"}
    assert.has_error(function()
      core.build_head({_status = 200, _headers = {"A", 1, "a"}}, 0, req)
    end)
    assert.has_error(function()
      core.build_head({_status = 42, _headers = {}}, 0, req)
    end)
    assert.has_error(function()
      core.build_head({_status = 200}, 0, req)
    end)
    assert.has_error(function() core.build_head() end)
    -- (a Content-Length: one, of digits, or the framing is not the
    -- server's; res:header lets no other through)
    local CL = "Content-Length"
    for _, l in ipairs{{CL, "3", "content-length", CL, "3", "content-length"},
      {CL, "0x3", "content-length"}, {CL, "3e0", "content-length"},
      {CL, "", "content-length"}, {CL, "-3", "content-length"},
      {CL, "99999999999999999999", "content-length"}} do
      assert.has_error(function()
        core.build_head({_status = 200, _headers = l}, 3, req, "OK", "abc")
      end, #l > 3 and "build_head: a second Content-Length" or
        "build_head: a bad Content-Length")
    end
  end)
end)

describe("http_resp.c header_set", function()
  it("sets, adds and removes as the Lua set_header did; false for the rest",
    function()
    math.randomseed(SEED + 1)
    for n = 1, CASES do
      local list = random_list()
      local name = random(8) == 1 and 42 or pick(NAMES)
      local value = random(6) == 1 and nil or pick(VALUES)
      if random(10) == 1 then value = 7 end
      local add = random(2) == 1
      local l1, l2 = copy(list), copy(list)
      local ok2 = core.header_set(l2, name, value, add)
      local ok1 = type(name) == "string" and (value == nil or
        type(value) == "string") and ref_set(l1, name, value, add)
      assert.are.equal(ok1, ok2, "case " .. n)
      if ok2 then
        assert.are.same(l1, l2, "case " .. n)
      else
        assert.are.same(list, l2, "untouched, case " .. n)
      end
    end
  end)
end)

describe("parse_request for the server", function()
  local Req, Hdr = {__name = "test.req"}, {__name = "test.headers"}

  it("splits the target as the Lua did, on random targets", function()
    math.randomseed(SEED + 2)
    local bits = {"/", "a", "?", "://", "http", "h1+.-", "x", "%2F", "?",
      "&", "=", "*", "://h/", "9", "A:"}
    for n = 1, CASES do
      local parts = {}
      for i = 1, random(1, 6) do parts[i] = pick(bits) end
      local target = concat(parts)
      -- (the asterisk-form is OPTIONS's alone)
      local method = target == "*" and "OPTIONS " or "GET "
      local t = core.parse_request(method .. target ..
        " HTTP/1.1\r\nHost: a\r\n\r\n", 1, 1, 8192, 16384, 100, Req, Hdr)
      -- (a target of none of RFC 9112's forms is refused)
      if target:byte(1) ~= 47 and target ~= "*" and
        not target:find("^%a[%w+.-]*://") then
        assert.are.equal(false, t, target)
      else
        local path, query = ref_target(target)
        assert.are.equal(path, t.path, ("%q case %d"):format(target, n))
        assert.are.equal(query, t.query_string, target)
      end
    end
  end)

  it("sets the metatables and the body's state", function()
    local function parse(s)
      return core.parse_request(s, 1, 1, 8192, 16384, 100, Req, Hdr)
    end
    local t = parse("GET /a?b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert.are.equal(Req, getmetatable(t))
    -- (req.headers is made when read, from the head's bytes: see
    -- head_headers; the server gives it the headers metatable then)
    assert.is_nil(rawget(t, "headers"))
    assert.are.same({host = "a"}, core.head_headers(t._hbuf, t._hb))
    -- (no body: _done alone, and no length field of any kind)
    assert.is_nil(rawget(t, "has_body"))
    assert.is_nil(rawget(t, "_left"))
    assert.is_nil(rawget(t, "_length"))
    assert.is_nil(rawget(t, "length"))
    assert.is_true(t._done)
    t = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
    assert.is_true(t.has_body)
    assert.are.equal(5, t._left)
    assert.are.equal(5, t._length)
    assert.is_nil(rawget(t, "length"))
    assert.is_nil(t._done)
    assert.are.same({"Host", "a", "Content-Length", "5"},
      core.head_fields(t._hbuf, t._hb))
    t = parse("POST / HTTP/1.1\r\nHost: a\r\n" ..
      "Transfer-Encoding: chunked\r\n\r\n")
    assert.is_true(t.has_body)
    assert.is_true(t.chunked)
    assert.is_nil(t._left)
    -- close: set only when true (false is the server's default)
    assert.is_nil(rawget(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
      "close"))
    assert.is_true(parse("GET / HTTP/1.1\r\nHost: a\r\n" ..
      "Connection: close\r\n\r\n").close)
    assert.is_true(parse("GET / HTTP/1.0\r\n\r\n").close)
    assert.is_nil(rawget(parse("GET / HTTP/1.0\r\n" ..
      "Connection: keep-alive\r\n\r\n"), "close"))
    assert.is_false(core.parse_request("GET / HTTP/1.1\r\nHost: a\r\n" ..
      "\r\n").close)
    -- without them, the head as before: no metatable, no body state
    t = core.parse_request("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert.is_nil(getmetatable(t))
    assert.is_nil(t.has_body)
    assert.are.equal("/", t.path)
    assert.has_error(function()
      core.parse_request("GET / HTTP/1.1\r\n\r\n", 1, 1, 1, 1, 1, Req, 5)
    end)
  end)

  it("gives the same verdict with and without them on mutated heads",
    function()
    math.randomseed(SEED + 3)
    local bound = core.request_parser(8192, 16384, 100, Req)
    local tight = core.request_parser(12, 40, 2, Req)
    local seeds = {"GET /p?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST http://h/x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
      "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET * HTTP/1.0\r\n\r\n"}
    for n = 1, CASES do
      local s = pick(seeds)
      for _ = 1, random(1, 3) do
        local i = random(1, #s + 1)
        if random(2) == 1 then
          s = s:sub(1, i - 1) .. char(random(0, 255)) .. s:sub(i + 1)
        else
          s = s:sub(1, i - 1) .. pick({"?", "/", " ", "\r\n", ":"}) ..
            s:sub(i)
        end
      end
      local a1, b1, c1 = core.parse_request(s)
      local a2, b2, c2 = core.parse_request(s, 1, 1, 8192, 16384, 100, Req,
        Hdr)
      -- a server's parser, its limits bound: the same as a2, b2, c2
      local a3, b3, c3 = bound(s, 1, 1)
      assert.are.equal(type(a2), type(a3), ("%q"):format(s))
      assert.are.equal(b2, b3, ("%q"):format(s))
      assert.are.equal(c2, c3, ("%q"):format(s))
      if a3 then
        assert.are.equal(Req, getmetatable(a3))
        assert.are.same(a2, a3, ("%q"):format(s))
      end
      -- small limits bound, against the same given
      local a4, b4, c4 = tight(s)
      local a5, b5, c5 = core.parse_request(s, 1, 1, 12, 40, 2, Req, Hdr)
      assert.are.equal(type(a5), type(a4), ("%q"):format(s))
      assert.are.equal(b5, b4, ("%q"):format(s))
      assert.are.equal(c5, c4, ("%q"):format(s))
      assert.are.equal(type(a1), type(a2), ("%q case %d"):format(s, n))
      assert.are.equal(b1, b2, ("%q"):format(s))
      if a1 then
        assert.are.equal(a1.path, a2.path)
        -- the fields list, made later from the head's bytes
        assert.is_nil(rawget(a2, "fields"))
        assert.are.same(a1.fields, core.head_fields(a2._hbuf, a2._hb),
          ("%q"):format(s))
        assert.is_nil(rawget(a2, "headers"))
        assert.are.same(a1.headers, core.head_headers(a2._hbuf, a2._hb),
          ("%q"):format(s))
        local body = a1.length ~= nil and a1.length ~= 0 or
          a1.chunked == true
        assert.are.equal(body, a2.has_body == true)
        assert.are.equal(not body, a2._done == true)
        -- (version: only when not HTTP/1.1, the server's default)
        assert.are.equal(a1.version, rawget(a2, "version") or "HTTP/1.1")
        assert.are.equal(a1.version == "HTTP/1.1",
          rawget(a2, "version") == nil)
      else
        assert.are.equal(c1, c2)
      end
    end
  end)
end)

describe("parse_response with a metatable", function()
  it("gives the eager head's verdict, headers and fields, on mutated heads",
    function()
    math.randomseed(SEED + 4)
    local Res = {__name = "test.res"}
    local seeds = {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\n" ..
      "x-a: 2\r\n\r\nabc", "HTTP/1.0 404 Not Found\r\nServer: s\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"}
    for n = 1, CASES do
      local s = pick(seeds)
      for _ = 1, random(0, 3) do
        local i = random(1, #s + 1)
        if random(2) == 1 then
          s = s:sub(1, i - 1) .. char(random(0, 255)) .. s:sub(i + 1)
        else
          s = s:sub(1, i - 1) .. pick({":", " ", "\r\n", "0", ","}) ..
            s:sub(i)
        end
      end
      local a1, b1, c1 = core.parse_response(s)
      local a2, b2, c2 = core.parse_response(s, 1, 1, 8192, 16384, 100, Res)
      assert.are.equal(type(a1), type(a2), ("%q case %d"):format(s, n))
      assert.are.equal(b1, b2, ("%q"):format(s))
      assert.are.equal(c1, c2, ("%q"):format(s))
      if a1 then
        assert.are.equal(Res, getmetatable(a2))
        assert.is_nil(rawget(a2, "headers"))
        assert.are.same(a1.headers, core.head_headers(a2._hbuf, a2._hb),
          ("%q"):format(s))
        assert.are.same(a1.fields, core.head_fields(a2._hbuf, a2._hb),
          ("%q"):format(s))
        for _, k in ipairs{"status", "reason", "version", "close", "length",
          "chunked", "until_close"} do
          assert.are.equal(a1[k], rawget(a2, k), k)
        end
      end
    end
    assert.has_error(function()
      core.parse_response("HTTP/1.1 200 OK\r\n\r\n", 1, 1, 1, 1, 1, 5)
    end)
  end)
end)

describe("request_parser", function()
  it("refuses limits that are not positive integers, naming them",
    function()
    local Req = {}
    assert.has_error(function() core.request_parser(0, 1, 1, Req) end,
      "bad argument #1 to 'request_parser' (must be positive)")
    assert.has_error(function() core.request_parser(1, 1.5, 1, Req) end)
    assert.has_error(function() core.request_parser(1, 1, -1, Req) end,
      "bad argument #3 to 'request_parser' (must be positive)")
    assert.has_error(function() core.request_parser(1, 1, 1, "x") end)
    local p = core.request_parser(1, 1, 1, Req)
    assert.has_error(function() p() end)
    assert.has_error(function() p("GET", 0) end)
  end)

  it("serves under limits given as any numbers (whole, huge)", function()
    local net = require "net"
    local srv = assert(http.listen{host = "127.0.0.1", port = 0,
      limits = {line = 20.7, fields = math.huge},
      handler = function(_, res) res:send("ok") end})
    local _, port = srv:sockname()
    local function ask(target)
      local c = assert(net.connect("127.0.0.1", port))
      c:write("GET " .. target .. " HTTP/1.1\r\nHost: a\r\n" ..
        "Connection: close\r\n\r\n")
      local parts = {}
      while true do
        local d = c:recv()
        if not d then break end
        parts[#parts + 1] = d
      end
      return table.concat(parts)
    end
    local short, long
    run_task(function()
      short, long = ask("/a"), ask("/" .. ("x"):rep(30))
    end, 20)
    srv:close()
    assert.matches("^HTTP/1.1 200 ", short)
    assert.matches("^HTTP/1.1 414 ", long)
  end)
end)

describe("head_headers", function()
  it("lower-cases names and joins repeated fields, as parse_request",
    function()
    local s = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a:\t2 \r\n" ..
      "Accept:\r\n\r\nC: 3"
    local t = core.parse_request(s)
    assert.are.same({host = "a", ["x-a"] = "1, 2", accept = ""}, t.headers)
    assert.are.same(t.headers, core.head_headers(s, 17))
    assert.are.same({}, core.head_headers("x", 2))
    assert.has_error(function() core.head_headers("x", 3) end)
  end)
end)

describe("head_fields", function()
  it("stops at the empty line, a line without ':' or the end", function()
    assert.are.same({"A", "1", "b", "x y"},
      core.head_fields("GET / HTTP/1.1\r\nA: 1\r\nb:\tx y \r\n\r\nC: 2", 17))
    assert.are.same({"A", ""}, core.head_fields("A:", 1))
    assert.are.same({}, core.head_fields("nocolon\r\nA: 1\r\n", 1))
    assert.are.same({}, core.head_fields("", 1))
    assert.has_error(function() core.head_fields("abc", 5) end)
    assert.has_error(function() core.head_fields("abc", 0) end)
  end)

  it("gives a served request its fields when read", function()
    local net = require "net"
    local srv = assert(http.listen{host = "127.0.0.1", port = 0,
      handler = function(req, res)
        local f = req.fields
        res:send(#f .. " " .. f[3] .. "=" .. f[4])
      end})
    local _, port = srv:sockname()
    local got
    run_task(function()
      local c = assert(net.connect("127.0.0.1", port))
      c:write("GET / HTTP/1.1\r\nHost: a\r\nX-Y:  z \r\n" ..
        "Connection: close\r\n\r\n")
      local parts = {}
      while true do
        local d = c:recv()
        if not d then break end
        parts[#parts + 1] = d
      end
      got = table.concat(parts)
    end)
    srv:close()
    assert.matches("\r\n\r\n6 X%-Y=z$", got)
  end)
end)

describe("http.router plain paths", function()
  local function call(app, method, path)
    local req = {method = method, path = path}
    local res = {sent = nil, headers = {}}
    function res.send(_, st, body) res.sent = {st, body} end
    function res.header(_, k, v) res.headers[k] = v end
    local r = app(req, res)
    return r, res, req
  end

  it("finds the first route in order, as the pattern loop did", function()
    local app = http.router()
    app:get("/a", function() return "a1" end)
    app:post("/a", function() return "a2" end)
    app:get("/u/:id", function() return "cap" end)
    app:get("/u/me", function() return "me" end) -- after a capture: loop
    app:all("/any", function() return "any" end)
    assert.are.equal("a1", (call(app, "GET", "/a")))
    assert.are.equal("a1", (call(app, "HEAD", "/a")))
    assert.are.equal("a2", (call(app, "POST", "/a")))
    assert.are.equal("cap", (call(app, "GET", "/u/me")))
    assert.are.equal("any", (call(app, "DELETE", "/any")))
    local _, res = call(app, "PUT", "/a")
    assert.are.same({405, "405 Method Not Allowed\n"}, res.sent)
    assert.are.equal("GET, HEAD, POST", res.headers.Allow)
    _, res = call(app, "GET", "/nothing")
    assert.are.same({404, "404 Not Found\n"}, res.sent)
    -- a route added later is seen
    app:get("/late", function() return "late" end)
    assert.are.equal("late", (call(app, "GET", "/late")))
  end)

  it("gives a plain route fresh params; captures still decoded",
    function()
    local app = http.router()
    app:get("/p", function(req) return req.params end)
    app:get("/c/:x", function(req) return req.params.x end)
    local req = {method = "GET", path = "/p", params = {x = "old"}}
    local p = app(req, {})
    assert.are.same({}, p)
    assert.are.equal("a b", (call(app, "GET", "/c/a%20b")))
  end)
end)

-- res:send's common case runs whole in C (http_resp.c send_fast); a
-- server with gzip on takes res:send's Lua for every response (the C
-- path declines it), so the same handler on both servers must answer
-- byte for byte alike (the Date field aside), errors included.
describe("res:send in C", function()
  local net = require "net"
  local big = ("0123456789abcdef"):rep(1250) -- 20,000 B: sent apart
  local FORMS = {
    function(_, res) res:send("plain") end,
    function(_, res) res:send(201) end,
    function(_, res) res:send(204, "dropped: no body") end,
    function(_, res) res:send(404, "nf") end,
    function(_, res) res:send() end,
    function(_, res) res:status(202):send("after status") end,
    function(_, res) res:send(200, big) end,
    function(_, res) res:header("Content-Length", "3"):send("abc") end,
    function(_, res) res:header("Connection", "close"):send("c") end,
    function(_, res) res:write("w1"); res:send("w2") end,
    function(_, res)
      local ok, err = pcall(res.send, res, 200.5, "x")
      res:send(tostring(ok) .. " " .. err)
    end,
    function(_, res)
      local ok, err = pcall(res.send, res, 200, {})
      res:send(tostring(ok) .. " " .. err)
    end,
    function(_, res)
      local ok, err = pcall(res.send, res, 9999)
      res:send(tostring(ok) .. " " .. err)
    end,
    function(_, res)
      res:send("once")
      local ok = pcall(res.send, res, 500, "twice")
      assert(not ok, "a second send must raise")
    end,
  }
  local function handler(req, res)
    return FORMS[tonumber(req.path:sub(2))](req, res)
  end
  local function fetch(port, head)
    local c = assert(net.connect("127.0.0.1", port))
    c:write(head)
    local parts = {}
    while true do
      local d = c:recv()
      if not d then break end
      parts[#parts + 1] = d
    end
    c:close()
    return (table.concat(parts):gsub("Date: [^\r]*\r\n", "Date: -\r\n"))
  end

  it("answers every form of res:send as res:send's Lua does", function()
    local fast = assert(http.listen{host = "127.0.0.1", port = 0,
      handler = handler})
    local slow = assert(http.listen{host = "127.0.0.1", port = 0,
      handler = handler, gzip = true})
    local _, fp = fast:sockname()
    local _, sp = slow:sockname()
    run_task(function()
      for i = 1, #FORMS do
        for _, form in ipairs{
          "GET /%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
          "HEAD /%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
          "GET /%d HTTP/1.0\r\n\r\n"} do
          local head = form:format(i)
          local a, b = fetch(fp, head), fetch(sp, head)
          assert.are.equal(b, a, ("form %d: %q"):format(i, head))
          assert.matches("^HTTP/1.1 %d%d%d ", a)
        end
      end
    end, 30)
    fast:close()
    slow:close()
  end)

  it("waits for a slow reader in the middle of a send (the write parks)",
    function()
    -- (more than loopback socket buffers hold, send and receive together)
    local huge = ("x"):rep(16 * 1024 * 1024)
    local after
    local srv = assert(http.listen{host = "127.0.0.1", port = 0,
      handler = function(req, res)
        if req.path == "/big" then
          res:send(huge)
          after = res.finished -- (set once the write came back)
        else
          res:send("small")
        end
      end})
    local _, port = srv:sockname()
    local got, other
    run_task(function()
      local c = assert(net.connect("127.0.0.1", port))
      c:write("GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      require("task").sleep(0.3) -- the send waits on a full socket
      -- another connection is served while that handler waits
      other = fetch(port, "GET / HTTP/1.1\r\nHost: a\r\n" ..
        "Connection: close\r\n\r\n")
      assert.is_nil(after)
      local n, parts = 0, {}
      for _ = 1, 100000 do
        local d = c:recv()
        if not d then break end
        n = n + #d
        if #parts < 1 then parts[1] = d end
      end
      c:close()
      got = {n = n, head = parts[1]}
    end, 60)
    srv:close()
    assert.matches("small$", other)
    assert.matches("^HTTP/1.1 200 OK\r\n.-Content%-Length: 16777216\r\n",
      got.head)
    local head_len = #got.head:match("^(.-\r\n\r\n)")
    assert.are.equal(16 * 1024 * 1024 + head_len, got.n)
    assert.is_true(after)
    -- (a 16 MiB string left to the collector paces it for the specs
    -- after this one: their garbage would grow that much before a cycle)
    huge = nil -- luacheck: ignore
    collectgarbage()
  end)

  it("raises a write error when the peer leaves in the middle of a send",
    function()
    local huge = ("y"):rep(16 * 1024 * 1024)
    local failed
    local srv = assert(http.listen{host = "127.0.0.1", port = 0,
      handler = function(req, res)
        if req.path == "/big" then
          local ok, err = pcall(res.send, res, huge)
          failed = {ok = ok, message = type(err) == "table" and err.message,
            close = res._close}
        else
          res:send("still here")
        end
      end})
    local _, port = srv:sockname()
    local other
    run_task(function()
      local c = assert(net.connect("127.0.0.1", port))
      c:write("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
      assert(c:recv())
      -- (a reset, not net's lingering close, which would read the rest)
      c:setopt("linger", {true, 0})
      c:close()
      for _ = 1, 500 do
        if failed then break end
        require("task").sleep(0.01)
      end
      other = fetch(port, "GET / HTTP/1.1\r\nHost: a\r\n" ..
        "Connection: close\r\n\r\n")
    end, 30)
    srv:close()
    assert.is_table(failed, "the send never came back")
    assert.is_false(failed.ok)
    assert.matches("^write: ", failed.message)
    assert.is_true(failed.close)
    assert.matches("still here$", other)
    huge = nil -- luacheck: ignore (as above)
    collectgarbage()
  end)

  it("tells the handler req.close, true or false", function()
    local srv = assert(http.listen{host = "127.0.0.1", port = 0,
      handler = function(req, res) res:send(tostring(req.close)) end})
    local _, port = srv:sockname()
    local got
    run_task(function()
      got = fetch(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n" ..
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    end, 30)
    srv:close()
    assert.matches("\r\n\r\nfalseHTTP/1.1 200 OK\r\n.-" ..
      "Connection: close\r\n\r\ntrue$", got)
  end)

  it("keeps a kept-alive connection's answers in order", function()
    local srv = assert(http.listen{host = "127.0.0.1", port = 0,
      handler = handler})
    local _, port = srv:sockname()
    local got
    run_task(function()
      got = fetch(port, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" ..
        "GET /4 HTTP/1.1\r\nHost: a\r\n\r\n" ..
        "GET /5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    end, 30)
    srv:close()
    local _, n = got:gsub("HTTP/1.1 ", "")
    assert.are.equal(3, n)
    assert.matches("^HTTP/1.1 200 OK\r\n.-\r\n\r\nplain" ..
      "HTTP/1.1 404 Not Found\r\n.-\r\n\r\nnf" ..
      "HTTP/1.1 200 OK\r\n.-Content%-Length: 0\r\n.-\r\n\r\n$", got)
  end)
end)
