-- Fuzzing the HTTP parser (http.core) and a live http.listen server with
-- random and mutated requests: no crash (this runs under ASan in make
-- asan), no spin, the same answer whatever the split of the input, and
-- nothing accepted that a strict reader would refuse.
local core = require "http.core"
local http = require "http"
local net = require "net"

local SEED = tonumber(os.getenv("HTTP_FUZZ_SEED")) or 20261203
local CASES = tonumber(os.getenv("HTTP_FUZZ_CASES")) or 4000

local random = math.random
local char, concat = string.char, table.concat

local SEEDS = {
  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
  "GET /p?q=1&r=%20 HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n" ..
    "Connection: keep-alive\r\n\r\n",
  "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
  "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" ..
    "5\r\nhello\r\n0\r\n\r\n",
  "GET / HTTP/1.0\nUser-Agent: x\n\n",
  "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n" ..
    "Content-Length: 3\r\n\r\nabc",
}

-- Bytes that matter to a head parser.
local SPECIAL = {"\r", "\n", "\r\n", "\0", " ", "\t", ":", ",", ";", "\127",
  "\255", "0", "9", "f", "Content-Length: 1\r\n",
  "Transfer-Encoding: chunked\r\n", "Host: b\r\n", "\r\n\r\n", " chunked",
  "\r\n ", "-", "+", "HTTP/1.1", "\r\r"}

local function mutate(s)
  for _ = 1, random(1, 4) do
    local op, i = random(1, 5), random(1, #s + 1)
    if op == 1 then -- flip a byte
      s = s:sub(1, i - 1) .. char(random(0, 255)) .. s:sub(i + 1)
    elseif op == 2 then -- insert something special
      s = s:sub(1, i - 1) .. SPECIAL[random(#SPECIAL)] .. s:sub(i)
    elseif op == 3 then -- delete a run
      s = s:sub(1, i - 1) .. s:sub(i + random(1, 8))
    elseif op == 4 then -- repeat a run
      local j = math.min(#s, i + random(0, 30))
      s = s:sub(1, j) .. s:sub(i, j) .. s:sub(j + 1)
    else -- random printable garbage
      local t = {}
      for k = 1, random(1, 20) do t[k] = char(random(32, 126)) end
      s = s:sub(1, i - 1) .. concat(t) .. s:sub(i)
    end
  end
  return s
end

local function random_bytes(n)
  local t = {}
  for i = 1, n do
    t[i] = random(4) == 1 and SPECIAL[random(#SPECIAL)] or
      char(random(0, 255))
  end
  return concat(t)
end

local function tchar(s) return s:find("^[!#$%%&'*+%-.^_`|~%w]+$") ~= nil end

-- What a strict parser may accept: check every field of an accepted head.
local function check_accepted(s, t, nxt)
  assert(nxt >= 2 and nxt <= #s + 1, "next out of range")
  assert(tchar(t.method), "method not a token")
  assert(not t.target:find("[%z\1-\32\127-\255]"), "bad byte in target")
  assert(t.version == "HTTP/1.1" or t.version == "HTTP/1.0")
  assert((t.length ~= nil) ~= (t.chunked == true),
    "exactly one framing expected")
  assert(#t.fields % 2 == 0)
  for i = 1, #t.fields, 2 do
    assert(tchar(t.fields[i]), "field name not a token")
    assert(not t.fields[i + 1]:find("[%z\1-\8\10-\31\127]"),
      "control byte in a value")
  end
  local host = 0
  for k, v in pairs(t.headers) do
    assert(k == k:lower())
    assert(type(v) == "string")
  end
  for i = 1, #t.fields, 2 do
    if t.fields[i]:lower() == "host" then host = host + 1 end
  end
  if t.version == "HTTP/1.1" then assert(host == 1, "Host count") end
  if t.chunked then
    assert(not t.headers["content-length"], "TE and CL both accepted")
  end
end

-- One outcome, comparable: "more", "err:STATUS", or "ok:NEXT:framing".
local function outcome(t, a)
  if t == nil then return "more" end
  if t == false then return "err:" .. a end
  return ("ok:%d:%s:%s"):format(a, tostring(t.length), tostring(t.chunked))
end

describe("http parser fuzz (seed " .. SEED .. ")", function()
  it(CASES .. " mutated and random heads: valid results, split-invariant",
    function()
    math.randomseed(SEED)
    local accepted, refused = 0, 0
    for n = 1, CASES do
      local s
      if n % 5 == 0 then s = random_bytes(random(1, 300))
      else s = mutate(SEEDS[random(#SEEDS)]) end
      local t, a = core.parse_request(s)
      local whole = outcome(t, a)
      if t then
        accepted = accepted + 1
        local ok, err = pcall(check_accepted, s, t, a)
        assert(ok, ("%s for %q"):format(tostring(err), s))
      elseif t == false then
        refused = refused + 1
        assert(({[400] = 1, [414] = 1, [431] = 1, [501] = 1, [505] = 1})[a],
          "status " .. tostring(a))
      end
      -- the same input in two pieces: the first gives nothing or the same
      local cut = random(0, #s)
      local t1, a1 = core.parse_request(s:sub(1, cut))
      if t1 ~= nil then
        assert.are.equal(whole, outcome(t1, a1), ("%q cut %d"):format(s, cut))
      else
        local t2, a2 = core.parse_request(s, 1, cut + 1)
        assert.are.equal(whole, outcome(t2, a2), ("%q cut %d"):format(s, cut))
      end
    end
    -- both kinds of outcome happened (the mutations are not all fatal)
    assert.is_true(accepted > CASES / 20, "accepted " .. accepted)
    assert.is_true(refused > CASES / 5, "refused " .. refused)
  end)

  it("mutated responses never crash the response parser", function()
    math.randomseed(SEED + 1)
    local base = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: y\r\n\r\nabc"
    for _ = 1, CASES // 2 do
      local s = mutate(base)
      local t, a = core.parse_response(s)
      if t then
        assert.is_true(t.status >= 100 and t.status <= 999)
        assert.is_true(a >= 2 and a <= #s + 1)
      end
    end
  end)

  local function encode_chunked(data)
    local out, i = {}, 1
    while i <= #data do
      local n = random(1, 40)
      local piece = data:sub(i, i + n - 1)
      out[#out + 1] = ("%x"):format(#piece) ..
        (random(3) == 1 and ";ext=" .. random(99) or "") .. "\r\n" ..
        piece .. "\r\n"
      i = i + n
    end
    out[#out + 1] = "0\r\n" .. (random(2) == 1 and "T: v\r\n" or "") ..
      "\r\n"
    return concat(out)
  end

  it(CASES .. " chunked bodies: round trip in random pieces; mutations " ..
    "decode or fail, never over-read", function()
    math.randomseed(SEED + 2)
    for n = 1, CASES do
      local data = random_bytes(random(0, 200))
      local enc = encode_chunked(data)
      if n % 2 == 0 then enc = mutate(enc) end
      -- whole
      local d = core.chunked()
      local whole, nxt = d:decode(enc)
      -- in random pieces
      local d2, parts, pos, res2, nxt2 = core.chunked(), {}, 1, nil, nil
      while pos <= #enc do
        local last = math.min(#enc, pos + random(0, 50))
        local piece = enc:sub(pos, last)
        local out, st = d2:decode(piece)
        if not out then res2 = "err"; break end
        parts[#parts + 1] = out
        if st then nxt2 = pos + st - 1; break end
        pos = last + 1
      end
      if whole == nil then
        assert.are.equal("err", res2, ("%q"):format(enc))
      else
        assert.is_nil(res2, ("%q"):format(enc))
        assert.are.equal(whole, concat(parts))
        assert.is_true(#whole <= #enc)
        if nxt then
          assert.are.equal(nxt, nxt2)
        end
        if n % 2 == 1 then -- unmutated: exact round trip
          assert.are.equal(data, whole)
          assert.are.equal(#enc + 1, nxt)
        end
      end
    end
  end)
end)

describe("http server fuzz", function()
  it("answers or closes every mutated request and keeps serving", function()
    math.randomseed(SEED + 3)
    run_task(function()
      local srv = assert(http.listen{port = 0, timeouts = {head = 2,
        body = 2, idle = 2}, handler = function(req, res)
          res:send(200, req:body())
        end})
      local _, port = srv:sockname()
      local statuses = {}
      for _ = 1, 300 do
        local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        local s = mutate(SEEDS[random(#SEEDS)])
        c:write(s)
        c:shutdown()
        local line = c:read("l")
        if line then
          local st = line:match("^HTTP/1%.1 (%d%d%d) ")
          assert(st, ("bad answer %q to %q"):format(line, s))
          statuses[st] = true
          assert(c:read("a")) -- the rest, up to the close
        end
        c:close()
      end
      assert.is_true(statuses["200"] and statuses["400"] and true)
      -- still serving
      local c = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      c:write("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.are.equal("HTTP/1.1 200 OK", c:read("l"):gsub("\r$", ""))
      c:close()
      srv:close()
    end, 120)
  end)
end)
