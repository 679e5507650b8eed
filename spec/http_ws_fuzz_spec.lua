-- Fuzzing the WebSocket frame reader (http.websocket, both ends) and the
-- C helpers under it (http.core's mask, b64decode, gunzip) with random and
-- mutated input: no crash (this runs under ASan in make asan), no Lua
-- error out of ws:receive, no hang, and, for the frame reader, exactly
-- the answer of a reference reader written here from RFC 6455: what the
-- server echoes, pongs and closes with, byte for byte, and what a client's
-- receive() returns.
local core = require "http.core"
local http = require "http"
local net = require "net"
local task = require "task"
local websocket = require "http.websocket"

local SEED = tonumber(os.getenv("WS_FUZZ_SEED")) or 20261205
local CASES = tonumber(os.getenv("WS_FUZZ_CASES")) or 2000
local MAX = 1000 -- max_message of both ends: 1009 past it

local random = math.random
local char, byte, concat = string.char, string.byte, table.concat
local spack, sunpack = string.pack, string.unpack

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = char(random(0, 255)) end
  return concat(t)
end

-- RFC 6455 5.2: one frame; key: 4 bytes (masked) or nil.
local function frame(fin, op, payload, key, rsv)
  local len = #payload
  local b1 = (fin and 0x80 or 0) | (rsv or 0) | op
  local m = key and 0x80 or 0
  local head
  if len < 126 then head = char(b1, m | len)
  elseif len < 65536 then head = spack(">BBI2", b1, m | 126, len)
  else head = spack(">BBI8", b1, m | 127, len) end
  if key then return head .. key .. core.mask(payload, key) end
  return head .. payload
end

-- Frames a peer might send (key: mask them or not), one to a few.
local function seed_frames(key)
  local function k() return key and random_bytes(4) or nil end
  local pick = random(1, 12)
  if pick == 1 then return frame(true, 1, "hello", k())
  elseif pick == 2 then return frame(true, 2, random_bytes(random(0, 200)),
    k())
  elseif pick == 3 then -- a text message in three frames, "é" split
    return frame(false, 1, "frag\xc3", k()) .. frame(false, 0, "\xa9", k()) ..
      frame(true, 0, "ment", k())
  elseif pick == 4 then -- a ping between two fragments
    return frame(false, 2, "ab", k()) .. frame(true, 9, "p", k()) ..
      frame(true, 0, "cd", k())
  elseif pick == 5 then return frame(true, 9, random_bytes(random(0, 125)),
    k())
  elseif pick == 6 then return frame(true, 10, "pong", k())
  elseif pick == 7 then
    return frame(true, 8, spack(">I2", ({1000, 1001, 3000, 4999, 999, 1004,
      1005, 5000})[random(8)]) .. ({"", "bye", "\xff"})[random(3)], k())
  elseif pick == 8 then return frame(true, 2, random_bytes(random(126, 300)),
    k())
  elseif pick == 9 then return frame(true, 1, "\xed\xa0\x80", k()) -- UTF-16
  elseif pick == 10 then return frame(true, 2, random_bytes(MAX + 1), k())
  elseif pick == 11 then return frame(true, random(3, 7), "x", k())
  else return frame(true, 1, ("é"):rep(random(1, 60)), k()) end
end

local SPECIAL = {"\x81", "\x82", "\x80", "\x00", "\x88", "\x89", "\x8a",
  "\x7e", "\x7f", "\xfe", "\xff", "\x01", "\x09", "\xc3", "\xed"}

local function mutate(s)
  for _ = 1, random(1, 4) do
    local op, i = random(1, 5), random(1, #s + 1)
    if op == 1 then -- flip a byte
      s = s:sub(1, i - 1) .. char(random(0, 255)) .. s:sub(i + 1)
    elseif op == 2 then -- insert a byte that matters in a frame head
      s = s:sub(1, i - 1) .. SPECIAL[random(#SPECIAL)] .. s:sub(i)
    elseif op == 3 then -- delete a run
      s = s:sub(1, i - 1) .. s:sub(i + random(1, 8))
    elseif op == 4 then -- truncate
      s = s:sub(1, i - 1)
    elseif #s > 0 then -- flip a bit of the first bytes (fin, opcode, len)
      local j = random(1, math.min(#s, 2))
      do
        s = s:sub(1, j - 1) .. char(byte(s, j) ~ (1 << random(0, 7))) ..
          s:sub(j + 1)
      end
    end
  end
  return s
end

local function stream(key)
  local t = {}
  for i = 1, random(1, 5) do t[i] = seed_frames(key) end
  local s = concat(t)
  if random(10) <= 7 then s = mutate(s) end
  return s
end

local function valid_code(c)
  return (c >= 1000 and c <= 1003) or (c >= 1007 and c <= 1011) or
    (c >= 3000 and c <= 4999)
end

-- The reference reader: what an endpoint that reads s (then the end of
-- the stream) must do, as a list of events: {"msg", kind, data},
-- {"pong", data}, then one of {"fail", code}, {"close", code, reason}
-- (a close frame received) or {"eof"} (the stream ended between frames).
-- masked: frames from this peer must be masked (the reader is a server).
local function reference(s, masked)
  local ev, pos = {}, 1
  local first_op, parts, size = nil, nil, 0
  local function need(n)
    if pos + n - 1 > #s then return nil end
    local v = s:sub(pos, pos + n - 1)
    pos = pos + n
    return v
  end
  while true do
    local h = need(2)
    if not h then ev[#ev + 1] = {"eof"} return ev end
    local b1, b2 = byte(h, 1, 2)
    local fin, op = b1 >= 0x80, b1 & 15
    local m, len = b2 >= 0x80, b2 & 0x7f
    local function fail(code) ev[#ev + 1] = {"fail", code} return ev end
    if b1 & 0x70 ~= 0 then return fail(1002) end
    if m ~= masked then return fail(1002) end
    if len == 126 then
      local e = need(2)
      if not e then return fail(1002) end
      len = sunpack(">I2", e)
    elseif len == 127 then
      local e = need(8)
      if not e then return fail(1002) end
      len = sunpack(">i8", e)
      if len < 0 then return fail(1002) end
    end
    if op >= 8 then
      if not fin or len > 125 then return fail(1002) end
    elseif size + len > MAX then
      return fail(1009)
    end
    local key = m and need(4)
    if m and not key then return fail(1002) end
    local payload = need(len)
    if not payload then return fail(1002) end
    if key then payload = core.mask(payload, key) end
    if op == 8 then
      if #payload == 1 then return fail(1002) end
      local code, reason = 1005, ""
      if #payload >= 2 then
        code, reason = sunpack(">I2", payload), payload:sub(3)
        if not valid_code(code) then return fail(1002) end
        if not utf8.len(reason) then return fail(1007) end
      end
      ev[#ev + 1] = {"close", code, reason}
      return ev
    elseif op == 9 then
      ev[#ev + 1] = {"pong", payload}
    elseif op == 10 then -- luacheck: ignore 542
    elseif op == 0 then
      if not first_op then return fail(1002) end
      parts[#parts + 1], size = payload, size + len
      if fin then
        local msg = concat(parts)
        if first_op == 1 and not utf8.len(msg) then return fail(1007) end
        ev[#ev + 1] = {"msg", first_op == 1 and "text" or "binary", msg}
        first_op, parts, size = nil, nil, 0
      end
    elseif op == 1 or op == 2 then
      if first_op then return fail(1002) end
      if fin then
        if op == 1 and not utf8.len(payload) then return fail(1007) end
        ev[#ev + 1] = {"msg", op == 1 and "text" or "binary", payload}
      else
        first_op, parts, size = op, {payload}, len
      end
    else
      return fail(1002)
    end
  end
end

-- What a server that echoes every message must send back for events.
local function server_bytes(ev)
  local t = {}
  for _, e in ipairs(ev) do
    if e[1] == "msg" then
      t[#t + 1] = frame(true, e[2] == "text" and 1 or 2, e[3])
    elseif e[1] == "pong" then
      t[#t + 1] = frame(true, 10, e[2])
    elseif e[1] == "fail" then
      t[#t + 1] = frame(true, 8, spack(">I2", e[2]))
    elseif e[1] == "close" then
      t[#t + 1] = frame(true, 8, e[2] ~= 1005 and spack(">I2", e[2]) or "")
    end
  end
  return concat(t)
end

local HANDSHAKE = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n" ..
  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" ..
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

describe("websocket fuzz (seed " .. SEED .. ")", function()
  it("the reference reader agrees with the RFC's own examples", function()
    -- RFC 6455 5.7, with the server and the client reading
    local ev = reference("\x81\x05\x48\x65\x6c\x6c\x6f", false)
    assert.same({{"msg", "text", "Hello"}, {"eof"}}, ev)
    ev = reference("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", true)
    assert.same({{"msg", "text", "Hello"}, {"eof"}}, ev)
    ev = reference("\x01\x03\x48\x65\x6c\x80\x02\x6c\x6f", false)
    assert.same({{"msg", "text", "Hello"}, {"eof"}}, ev)
    ev = reference("\x89\x05\x48\x65\x6c\x6c\x6f", false)
    assert.same({{"pong", "Hello"}, {"eof"}}, ev)
    assert.same({{"fail", 1002}}, reference("\x81\x05Hello", true))
    assert.same({{"fail", 1009}}, reference(frame(true, 2,
      ("x"):rep(MAX + 1)), false))
  end)

  it("a frame cut short by the end of the stream fails with 1002 (it " ..
    "was once read as an empty payload)", function()
    run_task(function()
      local got = {}
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        local ws = assert(websocket.accept(req, res))
        got = {ws:receive()}
      end})
      local _, port = srv:sockname()
      local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
      local cut = frame(true, 0, "ment", "abcd")
      assert(c:write(HANDSHAKE, frame(false, 1, "frag", "efgh"),
        cut:sub(1, -2)))
      c:shutdown()
      repeat local line = assert(c:read("l")) until line == "\r"
      assert.equal(frame(true, 8, spack(">I2", 1002)), c:read("a"))
      c:close()
      srv:close()
      assert.same({nil, "closed in a frame", 1002}, got)
    end, 20)
  end)

  it(CASES .. " mutated frame streams: the server answers exactly as " ..
    "the reference reader says and keeps serving", function()
    math.randomseed(SEED)
    local errors, handled = {}, 0
    run_task(function()
      local srv = assert(http.listen{port = 0, handler = function(req, res)
        local ws = assert(websocket.accept(req, res, {max_message = MAX}))
        for _ = 1, 100 do
          local ok, msg, kind = pcall(ws.receive, ws)
          if not ok then errors[#errors + 1] = msg break end
          if not msg then break end
          local sok, serr = pcall(ws.send, ws, msg, kind)
          if not sok then errors[#errors + 1] = serr break end
        end
        handled = handled + 1
      end})
      local _, port = srv:sockname()
      local seen = {}
      for n = 1, CASES do
        local s = stream(true)
        local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
        assert(c:write(HANDSHAKE .. s))
        c:shutdown()
        local head = {}
        repeat
          local line = assert(c:read("l"))
          head[#head + 1] = line
        until line == "" or line == "\r"
        assert.matches("^HTTP/1.1 101 ", head[1])
        local got = c:read("a") or ""
        c:close()
        local ev = reference(s, true)
        local want = server_bytes(ev)
        if got ~= want then
          local function hex(x) return (x:gsub(".", function(ch)
            return ("%02x"):format(byte(ch)) end)) end
          error(("case %d: stream %s\nexpected %s\ngot      %s"):format(n,
            hex(s), hex(want), hex(got)))
        end
        seen[ev[#ev][1] .. (ev[#ev][2] and tostring(ev[#ev][2]) or "")] = true
      end
      -- every ending was reached
      for _, k in ipairs{"eof", "fail1002", "fail1009", "fail1007"} do
        assert(seen[k], "no case ended in " .. k)
      end
      assert(next(seen, nil))
      -- still serving
      local c = assert(net.connect("127.0.0.1", port, {timeout = 10}))
      assert(c:write(HANDSHAKE .. frame(true, 1, "still", "abcd")))
      c:shutdown()
      assert(c:read("a"):find(frame(true, 1, "still"), 1, true))
      c:close()
      srv:close()
      local t0 = task.now()
      while handled < CASES + 1 and task.now() - t0 < 10 do task.sleep(0.01) end
    end, 240)
    assert.same({}, errors)
    assert.equal(CASES + 1, handled)
  end)

  it(CASES .. " mutated streams from a server: the client's receive " ..
    "returns what the reference reader says, never raises", function()
    math.randomseed(SEED + 1)
    run_task(function()
      local streams = {}
      local ls = assert(net.listen{host = "127.0.0.1", port = 0})
      local _, port = ls:sockname()
      local server = task.spawn(function()
        for n = 1, CASES do
          local c = ls:accept()
          if not c then return end
          c:settimeout(10)
          local key
          repeat
            local line = c:read("l")
            if not line then break end
            key = key or line:match("^[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: *(%S+)")
          until line == "" or line == "\r"
          c:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
            "Connection: Upgrade\r\nSec-WebSocket-Accept: ",
            websocket.accept_key(key), "\r\n\r\n", streams[n])
          c:shutdown()
          -- (the client's close frame, if any; then the end)
          c:read("a")
          c:close()
        end
      end)
      local url = ("ws://127.0.0.1:%d/"):format(port)
      for n = 1, CASES do
        local s = stream(false)
        streams[n] = s
        local ws = assert(websocket.connect(url, {max_message = MAX,
          timeout = 10}))
        local got = {}
        for _ = 1, 100 do
          local ok, msg, kind, code, reason = pcall(ws.receive, ws)
          if not ok then error(("case %d: raised %s"):format(n, msg)) end
          if msg then
            got[#got + 1] = {"msg", kind, msg}
          else
            if kind == "closed" and code then
              got[#got + 1] = {"close", code, reason}
            elseif code then
              got[#got + 1] = {"fail", code}
            else
              got[#got + 1] = {"eof"}
            end
            break
          end
        end
        local want = {}
        for _, e in ipairs(reference(s, false)) do
          if e[1] ~= "pong" then want[#want + 1] = e end
        end
        if not pcall(assert.same, want, got) then
          error(("case %d: stream %q\nexpected %s\ngot      %s"):format(n, s,
            require("pl.pretty").write(want, ""),
            require("pl.pretty").write(got, "")))
        end
      end
      server:join() -- (its last connection closed: nothing left open)
      ls:close()
    end, 240)
  end)
end)

describe("http.core helpers fuzz (seed " .. SEED .. ")", function()
  it("mask is its own inverse for any length and refuses other keys",
    function()
    math.randomseed(SEED + 2)
    for _ = 1, 2000 do
      local data, key = random_bytes(random(0, 300)), random_bytes(4)
      local m = core.mask(data, key)
      assert.equal(#data, #m)
      assert.equal(data, core.mask(m, key))
    end
    for _, bad in ipairs{"", "abc", "abcde", 4, {}} do
      assert.is_false(pcall(core.mask, "data", bad))
    end
  end)

  it("b64decode takes what b64encode makes and refuses the rest cleanly",
    function()
    math.randomseed(SEED + 3)
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" ..
      "0123456789+/"
    for _ = 1, 3000 do
      local data = random_bytes(random(0, 64))
      local e = core.b64encode(data)
      assert.equal(data, core.b64decode(e))
      -- random text: a string that encodes back to itself, or nil
      local t = {}
      for i = 1, random(0, 24) do
        local r = random(1, 80)
        t[i] = r <= 64 and alphabet:sub(r, r) or r <= 72 and "=" or
          char(random(0, 255))
      end
      local s = concat(t)
      local d = core.b64decode(s)
      if d ~= nil then
        assert.equal("string", type(d))
        assert.equal(s, core.b64encode(d))
      end
    end
  end)

  it("gunzip: mutated and split streams give the same answer whole or " ..
    "in pieces, within the bound, or an error", function()
    math.randomseed(SEED + 4)
    local function gz(data)
      local z = core.gzip(random(1, 9))
      local out = assert(z:write(data)) .. assert(z:finish())
      z:close()
      return out
    end
    -- the whole stream at once, then in random pieces: output or error
    local function inflate(s, pieces, max)
      local z = core.gunzip()
      local out, i, total = {}, 1, 0
      while i <= #s do
        local n = pieces and random(1, 64) or #s
        local piece, err = z:write(s:sub(i, i + n - 1), max - total)
        if not piece then z:close() return nil, err end
        assert(#piece - 16384 <= max - total, "past the bound")
        out[#out + 1], total = piece, total + #piece
        i = i + n
      end
      local rest, err = z:finish()
      local done = z:done()
      z:close()
      if not rest then return nil, err end
      out[#out + 1] = rest
      return concat(out), done
    end
    local errors, oks = 0, 0
    for n = 1, 3000 do
      local data = random(3) == 1 and random_bytes(random(0, 400)) or
        ("abc"):rep(random(0, 300))
      local s = gz(data)
      local mutated = random(10) <= 7
      if mutated then
        s = mutate(s)
        if random(4) == 1 then s = s .. random_bytes(random(1, 8)) end
      end
      local max = random(3) == 1 and random(0, 2000) or math.maxinteger
      local a, ad = inflate(s, false, max)
      local b, bd = inflate(s, true, max)
      if max == math.maxinteger then
        assert((a == nil) == (b == nil), ("case %d: whole %s, pieces %s")
          :format(n, tostring(ad), tostring(bd)))
        if a then
          assert.equal(a, b)
          assert.equal(ad, bd)
        end
      end
      if a then oks = oks + 1 else errors = errors + 1 end
      if not mutated and a and max == math.maxinteger then
        assert.equal(data, a)
        assert.is_true(ad)
      end
    end
    assert(oks > 500 and errors > 500, oks .. " ok, " .. errors .. " errors")
    -- random bytes and the bomb's bound
    for _ = 1, 500 do
      local z = core.gunzip()
      local piece, err = z:write(random_bytes(random(0, 100)))
      assert(piece or err)
      z:close()
    end
    local bomb = gz(("\0"):rep(1024 * 1024))
    local z = core.gunzip()
    local piece, err = z:write(bomb, 100000)
    assert.is_nil(piece)
    assert.equal("too large", err)
    z:close()
  end)
end)
