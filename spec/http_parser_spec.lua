-- http.core: the strict head parser and the chunked decoder (RFC 9112).
local core = require "http.core"

local function req(s) return core.parse_request(s) end

local function refused(s, status)
  local ok, st, why = core.parse_request(s)
  assert.are.equal(false, ok, "accepted: " .. ("%q"):format(s))
  assert.are.equal(status or 400, st, why)
  return why
end

describe("http.core.parse_request", function()
  it("parses a request head and says where the body starts", function()
    local s = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a:  2 \r\n\r\nBODY"
    local t, nxt = req(s)
    assert.are.equal("GET", t.method)
    assert.are.equal("/a?b=1", t.target)
    assert.are.equal("HTTP/1.1", t.version)
    assert.are.equal("1, 2", t.headers["x-a"])
    assert.are.same({"Host", "x", "X-A", "1", "x-a", "2"}, t.fields)
    assert.are.equal(0, t.length)
    assert.is_false(t.close)
    assert.are.equal("BODY", s:sub(nxt))
  end)

  it("accepts bare LF line ends and skips empty lines before the request",
    function()
    local t, nxt = req("\r\n\nGET / HTTP/1.0\nA: b\n\nX")
    assert.are.equal("HTTP/1.0", t.version)
    assert.is_true(t.close) -- 1.0 without keep-alive
    assert.are.equal(#"\r\n\nGET / HTTP/1.0\nA: b\n\n" + 1, nxt)
  end)

  it("returns nil until the head is complete, in any split", function()
    local s = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    local head_end = s:find("\r\n\r\n", 1, true) + 3
    for cut = 1, head_end - 1 do
      assert.is_nil(core.parse_request(s:sub(1, cut), 1, 1),
        "cut at " .. cut)
    end
    -- incremental: from = the first byte not searched before
    local from = 1
    for cut = 1, #s do
      local t, nxt = core.parse_request(s:sub(1, cut), 1, from)
      if cut < head_end then
        assert.is_nil(t)
      else
        assert.are.equal(3, t.length)
        assert.are.equal(head_end + 1, nxt)
        break
      end
      from = cut + 1
    end
  end)

  it("makes one framing decision", function()
    assert.are.equal(12, req("PUT / HTTP/1.1\r\nHost: a\r\n" ..
      "Content-Length: 12\r\n\r\n").length)
    local t = req("PUT / HTTP/1.1\r\nHost: a\r\n" ..
      "Transfer-Encoding: Chunked\r\n\r\n")
    assert.is_true(t.chunked)
    assert.is_nil(t.length)
  end)

  it("refuses every smuggling shape with 400", function()
    local H = "POST / HTTP/1.1\r\nHost: a\r\n"
    refused(H .. "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
    refused(H .. "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
    refused(H .. "Content-Length: 3\r\nContent-Length: 3\r\n\r\n")
    refused(H .. "Content-Length: 3, 3\r\n\r\n")
    refused(H .. "Content-Length: +3\r\n\r\n")
    refused(H .. "Content-Length: 0x3\r\n\r\n")
    refused(H .. "Content-Length : 3\r\n\r\n")
    refused(H .. " Content-Length: 3\r\n\r\n")
    refused(H .. "Transfer-Encoding: chunked, identity\r\n\r\n")
    refused(H .. "Transfer-Encoding: identity\r\n\r\n")
    refused(H .. "Transfer-Encoding: chunked\r\n" ..
      "Transfer-Encoding: x\r\n\r\n")
    refused(H .. "Transfer-Encoding: chunked, chunked\r\n\r\n")
    refused(H .. "Transfer-Encoding: \"chunked\"\r\n\r\n")
    refused(H .. "Transfer-Encoding:\tchunked\x0b\r\n\r\n")
    refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
    refused(H .. "X: a\r\n b\r\n\r\n")             -- obs-fold
    refused(H .. "X: a\rb\r\n\r\n")                -- bare CR
    refused(H .. "X: a\r\r\n\r\n")
    refused("GET / HTTP/1.1\rHost: a\r\n\r\n")
    refused(H .. "X: a\0b\r\n\r\n")                -- NUL
    refused(H .. "X\0: a\r\n\r\n")
    refused(H .. "X: a\x7fb\r\n\r\n")              -- DEL
    refused(H .. "X: \x01\r\n\r\n")
    refused(H .. "[X]: a\r\n\r\n")
    refused(H .. ": a\r\n\r\n")
    refused(H .. "X a\r\n\r\n")
    refused("GET / HTTP/1.1\r\n\r\n")              -- no Host
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
  end)

  it("reads a Content-Length past any limit as 2^53 (413, not 400)",
    function()
    local t = req("POST / HTTP/1.1\r\nHost: a\r\n" ..
      "Content-Length: 99999999999999999999999\r\n\r\n")
    assert.are.equal(1 << 53, t.length)
  end)

  it("takes upper-case methods only", function()
    refused("get / HTTP/1.1\r\nHost: a\r\n\r\n")
    refused("Get / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert.are.equal("VERSION-CONTROL", req("VERSION-CONTROL / HTTP/1.1\r\n" ..
      "Host: a\r\n\r\n").method)
  end)

  it("refuses a transfer coding it does not implement with 501", function()
    refused("POST / HTTP/1.1\r\nHost: a\r\n" ..
      "Transfer-Encoding: gzip, chunked\r\n\r\n", 501)
  end)

  it("checks the request line", function()
    refused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n")
    refused("GET / HTTP/1.1 \r\nHost: a\r\n\r\n")
    refused("G@T / HTTP/1.1\r\nHost: a\r\n\r\n")
    refused("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n")
    refused("GET / HTTP/1.x\r\nHost: a\r\n\r\n")
    refused("GET / http/1.1\r\nHost: a\r\n\r\n")
    refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505)
    refused("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505)
    refused("GET / HTTP/1.10\r\nHost: a\r\n\r\n")
    -- a higher 1.x is read as 1.1 (RFC 9110 2.5)
    assert.equal("HTTP/1.1", (core.parse_request(
      "GET / HTTP/1.2\r\nHost: a\r\n\r\n")).version)
    -- the asterisk-form is for OPTIONS only; no fragment in a target
    refused("GET * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert.equal("*", (core.parse_request(
      "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")).target)
    refused("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n")
    -- a target of none of RFC 9112 3.2's forms; authority-form for
    -- CONNECT only
    refused("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n")
    refused("GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert.equal("a:443", (core.parse_request(
      "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n")).target)
    assert.equal("/x", (core.parse_request(
      "GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n")).path)
  end)

  it("checks the Host value: host[:port], or empty", function()
    for _, ok in ipairs{"a", "a:80", "a:", "127.0.0.1:8080", "[::1]",
      "[::1]:80", "xn--bcher-kva.example", "a%41b", "a_b~c!$&'()*+,;=", ""} do
      local t = core.parse_request("GET / HTTP/1.1\r\nHost: " .. ok ..
        "\r\n\r\n")
      assert.is_table(t, ok)
    end
    for _, bad in ipairs{"a b", "a@b", "a/b", "a:b", "a:80:80", "[::1",
      "[]", "[::g]", "a%4", "a%zz", "a\"b", "a{b}", "a\\b"} do
      refused("GET / HTTP/1.1\r\nHost: " .. bad .. "\r\n\r\n")
      refused("GET / HTTP/1.0\r\nHost: " .. bad .. "\r\n\r\n")
    end
  end)

  it("answers limits with 414 and 431, also before the head is complete",
    function()
    local long = "GET /" .. ("a"):rep(9000)
    refused(long, 414) -- no line end yet
    refused(long .. " HTTP/1.1\r\nHost: a\r\n\r\n", 414)
    local many = {"GET / HTTP/1.1\r\nHost: a\r\n"}
    for i = 1, 100 do many[#many + 1] = "X" .. i .. ": v\r\n" end
    refused(table.concat(many) .. "\r\n", 431)
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: " .. ("v"):rep(17000), 431)
    -- one field line longer than the line limit (8 KiB)
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: " .. ("v"):rep(9000) ..
      "\r\n\r\n", 431)
    refused("GET / HTTP/1.1\r\nHost: a\r\n" ..
      (("X: " .. ("v"):rep(1000) .. "\r\n"):rep(17)) .. "\r\n", 431)
    -- limits are arguments
    assert.are.equal(false, core.parse_request(
      "GET /abcdef HTTP/1.1\r\nHost: a\r\n\r\n", 1, 1, 10))
  end)

  it("parses from an offset (pipelined requests)", function()
    local one = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
    local s = one .. one:gsub("/1 ", "/2 ")
    local t1, n1 = req(s)
    local t2, n2 = core.parse_request(s, n1)
    assert.are.equal("/1", t1.target)
    assert.are.equal("/2", t2.target)
    assert.are.equal(#s + 1, n2)
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() core.parse_request() end)
    assert.has_error(function() core.parse_request("x", 5) end)
    assert.has_error(function() core.parse_request("x", 1, 1, 0) end)
  end)
end)

describe("http.core.parse_response", function()
  it("parses status lines and framing", function()
    local t = core.parse_response("HTTP/1.1 404 Not Found\r\n" ..
      "Content-Length: 5\r\n\r\nhello")
    assert.are.equal(404, t.status)
    assert.are.equal("Not Found", t.reason)
    assert.are.equal(5, t.length)
    t = core.parse_response("HTTP/1.0 200\r\n\r\n")
    assert.are.equal(200, t.status)
    assert.is_true(t.until_close)
    t = core.parse_response("HTTP/1.1 200 OK\r\n" ..
      "Transfer-Encoding: gzip\r\n\r\n")
    assert.is_true(t.until_close)
    -- chunked last frames the body (RFC 9112 6.3) but its data is still
    -- gzip: refused, not read to the close with the chunks' framing in it
    local ok, status, why = core.parse_response("HTTP/1.1 200 OK\r\n" ..
      "Transfer-Encoding: gzip, chunked\r\n\r\n")
    assert.are.same({false, 501, "transfer coding not implemented"},
      {ok, status, why})
    t = core.parse_response("HTTP/1.1 200 OK\r\n" ..
      "Transfer-Encoding: chunked, gzip\r\n\r\n")
    assert.is_true(t.until_close)
    assert.are.equal(false, core.parse_response("HTTP/1.1 20 OK\r\n\r\n"))
    assert.are.equal(false, core.parse_response("HTTP/1.1 200 OK\r\n" ..
      "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
  end)
end)

describe("http.core.check_field", function()
  it("raises on header injection", function()
    core.check_field("X-Ok", "a value\twith tab")
    assert.has_error(function() core.check_field("X", "a\r\nSet: 1") end)
    assert.has_error(function() core.check_field("X", "a\nb") end)
    assert.has_error(function() core.check_field("X", "a\0b") end)
    assert.has_error(function() core.check_field("X Y", "a") end)
    assert.has_error(function() core.check_field("", "a") end)
  end)
end)

describe("http.core.chunked", function()
  local function decode_all(s)
    local d = core.chunked()
    return d:decode(s)
  end

  it("decodes, with extensions and trailers, and says where it ended",
    function()
    local s = "5;a=b\r\nhello\r\n6 ; x\r\n world\r\n0\r\nT: v\r\n\r\nNEXT"
    local data, nxt = decode_all(s)
    assert.are.equal("hello world", data)
    assert.are.equal("NEXT", s:sub(nxt))
  end)

  it("gives the same bytes for every split of its input", function()
    local s = "3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"
    for cut = 0, #s do
      local d = core.chunked()
      local a, n1 = d:decode(s:sub(1, cut))
      assert.is_false(cut < #s and n1 or false)
      local b, n2 = d:decode(s:sub(cut + 1))
      if cut == #s then
        assert.are.equal(#s + 1, n1)
        assert.are.equal("abc0123456789abcdef", a)
      else
        assert.are.equal("abc0123456789abcdef", a .. b)
        assert.are.equal(#s - cut + 1, n2)
      end
    end
  end)

  it("refuses bad framing", function()
    for _, bad in ipairs({
      "5\nhello\r\n0\r\n\r\n",        -- bare LF
      "5\r\nhello\n0\r\n\r\n",
      "5\r\nhelloX\r\n",               -- data longer than its size
      "x\r\n", "\r\n", ";a\r\n",      -- no size
      "-5\r\n", "+5\r\n", "0x5\r\n",
      "00000000000000001\r\n",         -- 17 digits
      "123456789\r\n",                  -- 9 significant digits
      "5 x\r\n",                       -- not an extension
      "5;a\0\r\n", "5;a\n",
      "5\r\x00",
      "0\r\n b: c\r\n\r\n",            -- folded trailer
      "0\r\nb\r\n\r\n",
      "0\r\nb: \1\r\n\r\n",
      "0\r\n\rX",
    }) do
      local data, err = decode_all(bad)
      assert.is_nil(data, ("%q"):format(bad))
      assert.is_string(err)
    end
  end)

  it("tells how much of a chunk is still announced", function()
    local d = core.chunked()
    assert.are.equal("abc", (d:decode("ffffffff\r\nabc")))
    assert.are.equal(0xffffffff - 3, d:pending())
    assert.are.equal("x", (core.chunked():decode("0000000000000001\r\nx")))
  end)

  it("bounds extensions and trailers", function()
    assert.is_nil(decode_all("1;" .. ("a"):rep(5000)))
    assert.is_nil(decode_all("0\r\n" .. ("a: b\r\n"):rep(101)))
    assert.is_nil(decode_all("0\r\nA: " .. ("v"):rep(17000)))
  end)

  it("refuses input after the end, and after an error", function()
    local d = core.chunked()
    assert.are.equal("", (d:decode("0\r\n\r\n")))
    assert.is_true(d:done())
    assert.is_nil(d:decode("0\r\n\r\n"))
    d = core.chunked()
    assert.is_nil(d:decode("z"))
    assert.is_nil(d:decode("0\r\n\r\n"))
  end)
end)

describe("http.core websocket helpers", function()
  it("computes the RFC 6455 accept key (SHA-1 + base64)", function()
    local key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", core.b64encode(
      core.sha1(key .. "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")))
    -- FIPS 180 examples, including the two-block padding case
    local function hex(s)
      return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
    end
    assert.are.equal("a9993e364706816aba3e25717850c26c9cd0d89d",
      hex(core.sha1("abc")))
    assert.are.equal("84983e441c3bd26ebaae4aa1f95129e5e54670f1", hex(core.sha1(
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
    assert.are.equal("da39a3ee5e6b4b0d3255bfef95601890afd80709",
      hex(core.sha1("")))
  end)

  it("base64 round-trips and refuses what is not canonical", function()
    for n = 0, 20 do
      local s = ("\0\255x"):rep(7):sub(1, n)
      assert.are.equal(s, core.b64decode(core.b64encode(s)))
    end
    assert.is_nil(core.b64decode("abc"))
    assert.is_nil(core.b64decode("a=bc"))
    assert.is_nil(core.b64decode("ab!c"))
  end)

  it("masks in pieces as in one go", function()
    local key, data = "\1\2\3\4", ("hello world"):rep(3)
    local whole = core.mask(data, key)
    assert.are.equal(core.mask(data:sub(1, 5), key) ..
      core.mask(data:sub(6), key, 5), whole)
    assert.are.equal(data, core.mask(whole, key))
    assert.has_error(function() core.mask("x", "abc") end)
  end)
end)

describe("http.decode_query", function()
  local http = require "http"
  it("decodes a query string; the last of a repeated name wins", function()
    assert.same({a = "1", b = "x y", c = "", ["k&"] = "v=w"},
      http.decode_query("a=0&a=1&b=x%20y&&c&k%26=v=w"))
    assert.same({}, http.decode_query(""))
    assert.same({}, http.decode_query(nil))
  end)
  it("raises, naming itself, on anything but a string", function()
    for _, v in ipairs{true, 1, {}, print} do
      assert.has_error(function() http.decode_query(v) end,
        "bad argument #1 to 'decode_query' (string expected, got " ..
        type(v) .. ")")
    end
  end)
end)
