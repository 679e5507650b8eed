-- The TLS record path under hostile input (run it under ASan: make asan):
-- random bytes, and real handshake flights truncated and mutated, sent to
-- a TLS listener (server side) and answered to a TLS client (client side).
-- Nothing may crash or leak; every failure is nil, "tls: ..." or a plain
-- network error, and the listener keeps serving. Seeded (LUAHOST_FUZZ_SEED
-- replays one), bounded in count and time.
local net = require "net"
local task = require "task"
local T = require "tls_helper"

local SEED = tonumber(os.getenv("LUAHOST_FUZZ_SEED")) or 2026
local N = tonumber(os.getenv("LUAHOST_TLS_FUZZ_N")) or 150

local function mutate(s)
  local b = {s:byte(1, -1)}
  local kind = math.random(4)
  if kind == 1 then -- flip bytes
    for _ = 1, math.random(1, 8) do
      b[math.random(#b)] = math.random(0, 255)
    end
  elseif kind == 2 then -- cut
    return s:sub(1, math.random(0, #s - 1))
  elseif kind == 3 then -- a record length out of range
    b[4], b[5] = math.random(0, 255), math.random(0, 255)
  else -- random bytes
    local r = {}
    for i = 1, math.random(1, 600) do r[i] = math.random(0, 255) end
    return string.char(table.unpack(r))
  end
  return string.char(table.unpack(b))
end

local function fine(err)
  return err == nil or err == "closed" or err == "timeout" or
    err == "ECONNRESET" or err == "EPIPE" or err:match("^tls: ") ~= nil
end

describe("tls record path fuzz", function()
  local c
  setup(function() c = T.certs() end)
  after_each(assert_clean)

  it("server and client survive " .. N .. " hostile flights each",
    function()
    math.randomseed(SEED)
    local served = 0
    local s = assert(net.listen{port = 0, tls = {cert = c.server,
      key = c.server_key, handshake_timeout = 0.5}})
    local _, port = s:sockname()
    task.spawn(s.serve, s, function(conn)
      local l = conn:read("l")
      if l then
        served = served + 1
        conn:write(l, "\n")
      end
    end)
    -- record a real ClientHello (a plain server reads it) ...
    local rec = assert(net.listen{port = 0})
    local _, rport = rec:sockname()
    local hello, flight
    task.spawn(function()
      local conn = rec:accept(5)
      hello = conn:recv()
      conn:close()
    end)
    run_task(function()
      local deadline = task.now() + 60
      net.connect("localhost", rport, {tls = {ca = c.ca}, timeout = 2})
      assert.is_true(#hello > 100)
      -- ... and the server's answer to it
      local p = assert(net.connect("127.0.0.1", port, {timeout = 5}))
      p:write(hello)
      flight = assert(p:recv())
      p:close()
      assert.equal(22, flight:byte(1)) -- a handshake record
      -- server side: mutated hellos, random bytes, a hello then garbage
      for i = 1, N do
        if task.now() > deadline then break end
        local g = assert(net.connect("127.0.0.1", port, {timeout = 5}))
        local input = mutate(hello)
        if i % 10 == 0 then input = hello .. mutate(flight) end
        g:write(input)
        if i % 15 ~= 0 then g:shutdown() end
        local _, err = g:read("a")
        assert.is_true(fine(err), tostring(err))
        g:close()
      end
      -- client side: a fake server answers with a mutated flight
      local fake = assert(net.listen{port = 0})
      local _, fport = fake:sockname()
      local replies = {}
      task.spawn(fake.serve, fake, function(conn)
        conn:recv()
        conn:write(table.remove(replies, 1) or "")
      end)
      for _ = 1, N do
        if task.now() > deadline then break end
        replies[#replies + 1] = mutate(flight)
        local conn, err = net.connect("localhost", fport,
          {tls = {ca = c.ca, handshake_timeout = 0.5}, timeout = 5})
        if conn then conn:close() end
        assert.is_true(conn == nil and fine(err), tostring(err))
      end
      fake:close()
      -- the listener still serves
      local ok = assert(net.connect("localhost", port, {tls = {ca = c.ca},
        timeout = 5}))
      ok:write("still\n")
      assert.equal("still", ok:read("l"))
      ok:close()
      s:close()
      rec:close()
    end, 120)
    assert.is_true(served >= 1)
  end)
end)
