-- http.files: validators, ranges, HEAD, directories, and no way out of
-- the directory (.., encoded forms, NUL, symbolic links pointing out).
local http = require "http"
local net = require "net"
local lfs = require "lfs"

local function q(s) return shell_quote(s) end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Raw request -> status, head, body (Connection: close is added).
local function ask(port, method, target, headers)
  local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
  c:write(method, " ", target, " HTTP/1.1\r\nHost: x\r\n", headers or "",
    "Connection: close\r\n\r\n")
  local all = c:read("a") or ""
  c:close()
  local head, body = all:match("^(.-\r\n)\r\n(.*)$")
  return tonumber(all:match("^HTTP/1%.1 (%d+)")), head or all, body
end

describe("http.files", function()
  local base, root, data
  setup(function()
    base = os.tmpname()
    os.remove(base)
    assert(lfs.mkdir(base))
    root = base .. "/www"
    assert(lfs.mkdir(root))
    data = ("0123456789"):rep(10)
    write(root .. "/f.txt", data)
    write(root .. "/page.html", "<p>x</p>")
    write(base .. "/secret", "outside\n")
    assert(lfs.mkdir(root .. "/dir"))
    write(root .. "/dir/index.html", "index\n")
    assert(lfs.link("f.txt", root .. "/in.txt", true))
    assert(lfs.link("../secret", root .. "/out.txt", true))
    assert(lfs.link(base, root .. "/up", true))
  end)
  teardown(function() os.execute("rm -rf " .. q(base)) end)

  -- (lopts: gzip = the server's gzip option; direct = http.files is the
  -- whole handler, not mounted at /static)
  local function with_server(opts, fn, lopts)
    lopts = lopts or {}
    run_task(function()
      local app = http.router()
      app:get("/api", function(_, res) res:send("api\n") end)
      app:get("/sendfile", function(_, res)
        assert(res:sendfile(root .. "/f.txt", "text/x-test"))
      end)
      app:get("/sendfile-missing", function(_, res)
        local ok, err = res:sendfile(root .. "/nope")
        res:send(404, tostring(ok) .. " " .. err)
      end)
      app:mount("/static", http.files(root, opts))
      local srv = assert(http.listen{port = 0, gzip = lopts.gzip,
        handler = lopts.direct and http.files(root, opts) or app})
      local _, port = srv:sockname()
      local ok, err = pcall(fn, port)
      srv:close()
      assert(ok, err)
    end, 20)
  end

  it("serves a file with type, validators and a length; HEAD too",
    function()
    with_server(nil, function(port)
      local st, head, body = ask(port, "GET", "/static/f.txt")
      assert.are.equal(200, st)
      assert.are.equal(data, body)
      assert.matches("Content%-Type: text/plain; charset=utf%-8\r\n", head)
      assert.matches("Content%-Length: 100\r\n", head)
      assert.matches('ETag: "%x+%-%x+%-%x+"\r\n', head) -- (strong)
      assert.matches("Last%-Modified: %a%a%a, ", head)
      assert.matches("Accept%-Ranges: bytes\r\n", head)
      local etag = head:match("ETag: ([^\r]+)")
      local lm = head:match("Last%-Modified: ([^\r]+)")
      st, head, body = ask(port, "HEAD", "/static/f.txt")
      assert.are.equal(200, st)
      assert.matches("Content%-Length: 100\r\n", head)
      assert.are.equal("", body)
      st, _, body = ask(port, "GET", "/static/f.txt",
        "If-None-Match: " .. etag .. "\r\n")
      assert.are.equal(304, st)
      assert.are.equal("", body)
      st = ask(port, "GET", "/static/f.txt",
        "If-None-Match: \"other\"\r\n")
      assert.are.equal(200, st)
      st = ask(port, "GET", "/static/f.txt", "If-Modified-Since: " .. lm ..
        "\r\n")
      assert.are.equal(304, st)
      assert.are.equal("text/html; charset=utf-8", select(2,
        ask(port, "GET", "/static/page.html")):match(
        "Content%-Type: ([^\r]+)"))
      assert.are.equal(data, select(3, ask(port, "GET", "/static/in.txt")))
      assert.are.equal("api\n", select(3, ask(port, "GET", "/api")))
      st, head, body = ask(port, "GET", "/sendfile")
      assert.are.equal(200, st)
      assert.are.equal(data, body)
      assert.matches("Content%-Type: text/x%-test\r\n", head)
      assert.matches("Content%-Length: 100\r\n", head)
      st, _, body = ask(port, "GET", "/sendfile-missing")
      assert.are.equal(404, st)
      assert.matches("^nil ENOENT", body)
    end)
  end)

  it("answers If-Match and If-Unmodified-Since with 412, in RFC 9110's " ..
    "order", function()
    with_server(nil, function(port)
      local function status(hdrs)
        return (ask(port, "GET", "/static/f.txt", hdrs))
      end
      local _, head = ask(port, "GET", "/static/f.txt")
      local etag = head:match("ETag: ([^\r]+)")
      local lm = head:match("Last%-Modified: ([^\r]+)")
      assert.equal(200, status("If-Match: *\r\n"))
      assert.equal(412, status('If-Match: "other"\r\n'))
      assert.equal(200, status("If-Match: " .. etag .. "\r\n"))
      assert.equal(200, status('If-Match: "x", ' .. etag .. "\r\n"))
      -- (strong comparison: a weak tag never matches, even of its own)
      assert.equal(412, status("If-Match: W/" .. etag .. "\r\n"))
      -- (If-None-Match compares weakly: the weak form is a match)
      assert.equal(304, status("If-None-Match: W/" .. etag .. "\r\n"))
      assert.equal(200, status("If-Unmodified-Since: " .. lm .. "\r\n"))
      assert.equal(412, status("If-Unmodified-Since: Mon, 01 Jan 1990 " ..
        "00:00:00 GMT\r\n"))
      -- not a date: ignored
      assert.equal(200, status("If-Unmodified-Since: yesterday\r\n"))
      -- If-Match decides before If-None-Match, which decides before the
      -- dates
      assert.equal(412, status('If-Match: "other"\r\nIf-None-Match: *\r\n'))
      assert.equal(304, status("If-None-Match: *\r\nIf-Unmodified-Since: " ..
        "Mon, 01 Jan 1990 00:00:00 GMT\r\nIf-Match: *\r\n"))
      assert.equal(304, status("If-None-Match: " .. etag ..
        "\r\nIf-Modified-Since: Mon, 01 Jan 1990 00:00:00 GMT\r\n"))
      -- a date in the future is no date
      assert.equal(200, status("If-Modified-Since: Fri, 01 Jan 2100 " ..
        "00:00:00 GMT\r\n"))
    end)
  end)

  it("reads HTTP-dates in all three formats, and no impossible one",
    function()
    local common = require "http.common"
    math.randomseed(20261205)
    local this_year = tonumber(os.date("!%Y"))
    for _ = 1, 2000 do
      local t = math.random(0, 4102444800) -- 1970 to 2100
      assert.equal(t, common.parse_date(common.date(t)))
      assert.equal(t, common.parse_date(os.date("!%a, %d %b %Y %H:%M:%S GMT",
        t)))
      assert.equal(t, common.parse_date(os.date("!%a %b %e %H:%M:%S %Y", t)))
      -- RFC 850's two-digit year: within 50 years from now, else a
      -- century earlier
      local y = tonumber(os.date("!%Y", t))
      local rfc850 = common.parse_date(os.date("!%A, %d-%b-%y %H:%M:%S GMT",
        t))
      if y >= this_year - 49 and y <= this_year + 50 then
        assert.equal(t, rfc850)
      end
    end
    for _, bad in ipairs{"Fri, 29 Feb 2019 00:00:00 GMT",
      "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:37 UTC",
      "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMT ", "Sunday, 06-Nov-1994 08:49:37 GMT",
      "Sun Nov 6 08:49:37 1994", "", "1994"} do
      assert.is_nil(common.parse_date(bad), bad)
    end
    assert.equal(951782400, common.parse_date("Tue, 29 Feb 2000 00:00:00 GMT"))
  end)

  it("answers ranges with 206, 416, and ignores a stale If-Range",
    function()
    with_server(nil, function(port)
      local st, head, body = ask(port, "GET", "/static/f.txt",
        "Range: bytes=10-19\r\n")
      assert.are.equal(206, st)
      assert.are.equal("0123456789", body)
      assert.matches("Content%-Range: bytes 10%-19/100\r\n", head)
      st, _, body = ask(port, "GET", "/static/f.txt", "Range: bytes=-5\r\n")
      assert.are.equal(206, st)
      assert.are.equal("56789", body)
      st, _, body = ask(port, "GET", "/static/f.txt", "Range: bytes=95-\r\n")
      assert.are.equal("56789", body)
      st, _, body = ask(port, "GET", "/static/f.txt",
        "Range: bytes=90-1000\r\n")
      assert.are.equal("0123456789", body)
      st, head = ask(port, "GET", "/static/f.txt", "Range: bytes=100-\r\n")
      assert.are.equal(416, st)
      assert.matches("Content%-Range: bytes %*/100\r\n", head)
      st, _, body = ask(port, "GET", "/static/f.txt",
        "Range: bytes=0-1\r\nIf-Range: \"stale\"\r\n")
      assert.are.equal(200, st)
      assert.are.equal(data, body)
      -- the current tag: the range; its weak form: the whole file (If-Range
      -- compares strongly, RFC 9110 13.1.5)
      local etag = select(2, ask(port, "HEAD", "/static/f.txt")):match(
        "ETag: ([^\r]+)")
      st, _, body = ask(port, "GET", "/static/f.txt",
        "Range: bytes=0-1\r\nIf-Range: " .. etag .. "\r\n")
      assert.are.equal(206, st)
      assert.are.equal(data:sub(1, 2), body)
      st = ask(port, "GET", "/static/f.txt",
        "Range: bytes=0-1\r\nIf-Range: W/" .. etag .. "\r\n")
      assert.are.equal(200, st)
      -- the unit in any case, blanks around the range (RFC 9110 14.1)
      st, _, body = ask(port, "GET", "/static/f.txt",
        "Range: Bytes= 10-11\r\n")
      assert.are.equal(206, st)
      assert.are.equal("01", body)
      -- malformed or multiple ranges: the whole file
      assert.are.equal(200, (ask(port, "GET", "/static/f.txt",
        "Range: bytes=5-1\r\n")))
      assert.are.equal(200, (ask(port, "GET", "/static/f.txt",
        "Range: bytes=0-1,5-6\r\n")))
    end)
  end)

  it("lists no directory by default; index and 301 when asked", function()
    with_server(nil, function(port)
      assert.are.equal(404, (ask(port, "GET", "/static/dir/")))
      assert.are.equal(404, (ask(port, "GET", "/static/dir")))
    end)
    with_server({index = "index.html"}, function(port)
      local st, head = ask(port, "GET", "/static/dir")
      assert.are.equal(301, st)
      assert.matches("Location: /static/dir/\r\n", head)
      assert.are.equal("index\n", select(3, ask(port, "GET",
        "/static/dir/")))
      -- "." segments go (RFC 3986 5.2.4): "/dir/." is "/dir/", not a
      -- directory "." to redirect to "/dir/./"; "/./f.txt" is "/f.txt"
      assert.are.equal("index\n", select(3, ask(port, "GET",
        "/static/dir/.")))
      assert.are.equal("index\n", select(3, ask(port, "GET",
        "/static/dir/%2e")))
      assert.are.equal(data, select(3, ask(port, "GET",
        "/static/./././f.txt")))
      st, head = ask(port, "GET", "/static/./dir")
      assert.are.equal(301, st)
      assert.matches("Location: /static/dir/\r\n", head)
    end)
  end)

  it("serves what nginx serves from the same tree, and never more " ..
    "(2 x 1,500 random targets)", function()
    if os.execute("command -v nginx >/dev/null 2>&1") ~= true then
      pending("nginx is not installed")
      return
    end
    for seed = 1, 2 do
      local work = tmpname()
      os.remove(work)
      assert(lfs.mkdir(work))
      local h = assert(io.popen(("timeout -s KILL 600 /usr/bin/python3 " ..
        "spec/support/files_nginx_diff.py %s %s %d 1500 2>&1"):format(
        q(LUAHOST), q(work), seed)))
      local out = h:read("a")
      h:close()
      os.execute("rm -rf " .. q(work))
      local alike, differ = out:match(
        "checked %d+, served alike (%d+), differ (%d+)\n$")
      assert.truthy(alike, out)
      assert.equal("0", differ, out)
      assert.truthy(tonumber(alike) > 250, out)
    end
  end)

  it("never leaves its directory", function()
    with_server({index = "index.html", listing = true}, function(port)
      for target, want in pairs({
        ["/static/../secret"] = 403,
        ["/static/%2e%2e/secret"] = 403,
        ["/static/%2E%2E/secret"] = 403,
        ["/static/dir/../../secret"] = 403,
        ["/static/..%2fsecret"] = 400,
        ["/static/a%00b"] = 400,
        ["/static/%zz"] = 400,
        ["/static/out.txt"] = 403,
        ["/static/up/secret"] = 403,
        ["/static/nothere"] = 404,
      }) do
        local st, _, body = ask(port, "GET", target)
        assert.are.equal(want, st, target)
        assert.is_nil(body:find("outside", 1, true), target)
      end
      assert.are.equal(405, (ask(port, "POST", "/static/f.txt")))
    end)
  end)

  it("serves an index only when it stays inside too", function()
    assert(lfs.mkdir(root .. "/esc"))
    assert(lfs.link("../../secret", root .. "/esc/index.html", true))
    assert(lfs.mkdir(root .. "/inl"))
    assert(lfs.link("../f.txt", root .. "/inl/index.html", true))
    for _, direct in ipairs({false, true}) do
      local pre = direct and "" or "/static"
      for _, listing in ipairs({false, true}) do
        with_server({index = "index.html", listing = listing},
          function(port)
          for _, target in ipairs({"/esc/", "/esc/index.html", "/esc/.",
            "//esc/", "/inl/../esc/"}) do
            local st, _, body = ask(port, "GET", pre .. target)
            assert.are.equal(403, st, target)
            assert.is_nil(body:find("outside", 1, true), target)
            st, _, body = ask(port, "HEAD", pre .. target)
            assert.are.equal(403, st, target)
          end
          -- (a link that stays inside is served, as by name)
          assert.are.equal(data, select(3, ask(port, "GET",
            pre .. "/inl/")))
          assert.are.equal(data, select(3, ask(port, "GET",
            pre .. "/inl/index.html")))
        end, {direct = direct})
      end
    end
    os.remove(root .. "/esc/index.html")
    os.remove(root .. "/inl/index.html")
    lfs.rmdir(root .. "/esc")
    lfs.rmdir(root .. "/inl")
  end)

  it("never redirects to a protocol-relative //host/ Location",
    function()
    -- (directly as the handler: no mount prefix before the path)
    with_server({index = "index.html"}, function(port)
      for target, want in pairs({
        ["//dir"] = "/dir/",
        ["///dir"] = "/dir/",
        ["//./dir"] = "/dir/",
        ["/.//dir"] = "/dir/",
        ["//%2e/dir"] = "/dir/",
      }) do
        local st, head = ask(port, "GET", target)
        assert.are.equal(301, st, target)
        assert.are.equal(want, head:match("\r\nLocation: ([^\r]*)"),
          target)
      end
      -- runs of "/" are one (as nginx's merge_slashes): the same files
      assert.are.equal("index\n", select(3, ask(port, "GET", "//dir/")))
      assert.are.equal("index\n", select(3, ask(port, "GET",
        "//dir//index.html")))
      assert.are.equal(data, select(3, ask(port, "GET", "//f.txt")))
    end, {direct = true})
    with_server({index = "index.html", listing = true}, function(port)
      local st, head = ask(port, "GET", "//dir")
      assert.are.equal(301, st)
      assert.matches("\r\nLocation: /dir/\r\n", head)
    end, {direct = true})
    with_server({listing = true}, function(port)
      local st, head = ask(port, "GET", "/static//dir")
      assert.are.equal(301, st)
      assert.matches("\r\nLocation: /static/dir/\r\n", head)
    end)
  end)

  -- RFC 9110: a distinct strong tag per representation (8.8.3), the 304
  -- with the 200's Vary (15.4.5), HEAD with GET's fields (9.3.2).
  it("gives the gzip representation its own ETag, Vary on 304, and HEAD " ..
    "GET's head", function()
    local text = {}
    for i = 1, 500 do text[i] = ("line %d of a text\n"):format(i) end
    text = table.concat(text)
    write(root .. "/big.txt", text)
    write(root .. "/img.png", text)
    local GZ = "Accept-Encoding: gzip\r\n"
    -- the head without its Date
    local function fields(head)
      return (head:gsub("\r\nDate: [^\r]*", ""))
    end
    with_server(nil, function(port)
      local st, head = ask(port, "GET", "/big.txt", GZ)
      assert.are.equal(200, st)
      assert.matches("\r\nContent%-Encoding: gzip\r\n", head)
      assert.matches("\r\nVary: Accept%-Encoding\r\n", head)
      local egz = head:match("\r\nETag: ([^\r]*)")
      st, head = ask(port, "GET", "/big.txt")
      assert.are.equal(200, st)
      assert.not_matches("Content%-Encoding", head)
      assert.matches("\r\nVary: Accept%-Encoding\r\n", head)
      assert.matches("\r\nContent%-Length: " .. #text .. "\r\n", head)
      local eid = head:match("\r\nETag: ([^\r]*)")
      assert.matches('^"%x+%-%x+%-%x+"$', eid)
      assert.are.equal(eid:sub(1, -2) .. '-gzip"', egz)
      -- each tag validates its own representation only
      for _, c in ipairs({{GZ, egz, 304}, {GZ, eid, 200}, {"", eid, 304},
        {"", egz, 200}, {GZ, "W/" .. egz, 304}, {GZ, '"x", ' .. egz, 304}})
        do
        st, head = ask(port, "GET", "/big.txt", c[1] .. "If-None-Match: " ..
          c[2] .. "\r\n")
        assert.are.equal(c[3], st, c[1] .. c[2])
        assert.matches("\r\nVary: Accept%-Encoding\r\n", head)
        assert.are.equal(c[1] == "" and eid or egz,
          head:match("\r\nETag: ([^\r]*)"))
      end
      -- (a 304 from If-Modified-Since carries the Vary as well)
      local lm = head:match("\r\nLast%-Modified: ([^\r]*)")
      st, head = ask(port, "GET", "/big.txt", GZ .. "If-Modified-Since: " ..
        lm .. "\r\n")
      assert.are.equal(304, st)
      assert.matches("\r\nVary: Accept%-Encoding\r\n", head)
      assert.are.equal(egz, head:match("\r\nETag: ([^\r]*)"))
      assert.are.equal(412, (ask(port, "GET", "/big.txt", GZ ..
        "If-Match: " .. eid .. "\r\n")))
      assert.are.equal(200, (ask(port, "GET", "/big.txt", GZ ..
        "If-Match: " .. egz .. "\r\n")))
      -- a range is of the identity bytes, with the identity tag; If-Range
      -- with the gzip tag gets the whole (gzipped) 200
      local body
      st, head, body = ask(port, "GET", "/big.txt", GZ ..
        "Range: bytes=0-9\r\n")
      assert.are.equal(206, st)
      assert.are.equal(text:sub(1, 10), body)
      assert.are.equal(eid, head:match("\r\nETag: ([^\r]*)"))
      st, _, body = ask(port, "GET", "/big.txt", GZ ..
        "Range: bytes=0-9\r\nIf-Range: " .. eid .. "\r\n")
      assert.are.equal(206, st)
      assert.are.equal(text:sub(1, 10), body)
      st, head = ask(port, "GET", "/big.txt", GZ ..
        "Range: bytes=0-9\r\nIf-Range: " .. egz .. "\r\n")
      assert.are.equal(200, st)
      assert.matches("\r\nContent%-Encoding: gzip\r\n", head)
      -- HEAD: GET's fields, gzip or not
      for _, ae in ipairs({GZ, "", "Accept-Encoding: gzip;q=0\r\n"}) do
        local _, ghead = ask(port, "GET", "/big.txt", ae)
        st, head, body = ask(port, "HEAD", "/big.txt", ae)
        assert.are.equal(200, st)
        assert.are.equal("", body)
        assert.are.equal(fields(ghead), fields(head), ae)
      end
      st, head = ask(port, "HEAD", "/big.txt", GZ)
      assert.matches("\r\nContent%-Encoding: gzip\r\n", head)
      assert.not_matches("Content%-Length", head)
      -- an image is one representation: no Vary, one tag
      local _, h1 = ask(port, "GET", "/img.png", GZ)
      local _, h2 = ask(port, "HEAD", "/img.png", GZ)
      assert.not_matches("Vary", h1)
      assert.not_matches("Content%-Encoding", h1)
      assert.are.equal(fields(h1), fields(h2))
      assert.matches('\r\nETag: "%x+%-%x+%-%x+"\r\n', h1)
      st, head = ask(port, "GET", "/img.png", GZ .. "If-None-Match: " ..
        h1:match("\r\nETag: ([^\r]*)") .. "\r\n")
      assert.are.equal(304, st)
      assert.not_matches("Vary", head)
    end, {direct = true, gzip = true})
    -- without gzip on the server: one representation, as before
    with_server(nil, function(port)
      local _, head = ask(port, "GET", "/big.txt", GZ)
      assert.not_matches("Vary", head)
      assert.not_matches("Content%-Encoding", head)
      assert.not_matches("%-gzip", head)
      local _, h2 = ask(port, "HEAD", "/big.txt", GZ)
      assert.are.equal(fields(head), fields(h2))
    end, {direct = true})
    os.remove(root .. "/big.txt")
    os.remove(root .. "/img.png")
  end)

  it("raises on a bad directory or options", function()
    assert.has_error(function() http.files(base .. "/nope") end)
    assert.has_error(function() http.files(root, {bogus = 1}) end)
    assert.has_error(function() http.files(42) end)
  end)

  it("adds types (extensions in any case) and Cache-Control", function()
    with_server({types = {TXT = "text/x-mine", html = "text/x-page"},
      max_age = 60.5}, function(port)
      local st, head = ask(port, "GET", "/static/f.txt")
      assert.are.equal(200, st)
      assert.matches("Content%-Type: text/x%-mine\r\n", head)
      assert.matches("Cache%-Control: max%-age=60\r\n", head)
      st, head = ask(port, "GET", "/static/page.html")
      assert.are.equal(200, st)
      assert.matches("Content%-Type: text/x%-page\r\n", head)
    end)
  end)

  -- Each case on its own line: the error must name that line of this file
  -- (the caller's), never a line inside lib/; and at http.files() time,
  -- not as a 500 on every request.
  it("checks its options' types at once, at the caller's line", function()
    local cases = {
      {"max_age: non-negative number expected, got x",
        function() http.files(root, {max_age = "x"}) end},
      {"max_age: non-negative number expected, got -1",
        function() http.files(root, {max_age = -1}) end},
      {"types: table expected, got number",
        function() http.files(root, {types = 5}) end},
      {"types: extension = Content-Type strings expected",
        function() http.files(root, {types = {txt = 5}}) end},
      {"types.txt: CR, LF, NUL or control byte in value",
        function() http.files(root, {types = {txt = "a\nb"}}) end},
      {"index: a file name expected, got number",
        function() http.files(root, {index = 5}) end},
      {'index: a file name expected, got "../x"',
        function() http.files(root, {index = "../x"}) end},
      {"listing: boolean expected, got string",
        function() http.files(root, {listing = "yes"}) end},
      {"unknown option 'bogus'",
        function() http.files(root, {bogus = 1}) end},
      {"table expected, got number",
        function() http.files(root, 5) end},
    }
    for i, c in ipairs(cases) do
      local want, f = c[1], c[2]
      local ok, err = pcall(f)
      assert.is_false(ok, "case " .. i .. " raised nothing")
      local line = debug.getinfo(f, "S").linedefined
      assert.are.equal(("spec/http_files_spec.lua:%d: bad argument #2 " ..
        "to 'files' (%s)"):format(line, want), err, "case " .. i)
    end
  end)
end)
