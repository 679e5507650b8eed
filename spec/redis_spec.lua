-- The redis module (lib/redis.lua): its RESP2 decoder on its own (strict,
-- bounded, fuzzed with seeded garbage and mutations), then the client
-- against a real redis-server started here on a free loopback port and
-- stopped by PID: calls, pipelines, transactions, pub/sub, pools, AUTH
-- and SELECT, argument errors; and against hostile servers.
local net = require "net"
local task = require "task"
local redis = require "redis"
local H = require "hostile_helper"

local q = shell_quote

local have = require("common").have

-- {==================================================================
-- redis-server on a free port, no persistence
-- ===================================================================

local free_port = require("common").free_port

local Server = {}
Server.__index = Server

-- (extra: more redis-server arguments, e.g. "--requirepass secret")
local function start_redis(extra)
  local port = free_port()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. q(dir)))
  local errfile = tmpname()
  local cmd = ("echo $$; exec timeout -s KILL 120 redis-server --bind " ..
    "127.0.0.1 --port %d --save '' --appendonly no --dir %s %s " ..
    "</dev/null 2>%s"):format(port, q(dir), extra or "", q(errfile))
  local p = assert(io.popen("exec sh -c " .. q(cmd)))
  local s = setmetatable({pid = tonumber(p:read("l")), out = p,
    port = port, dir = dir}, Server)
  while true do
    local line = p:read("l")
    if not line then
      s:stop()
      local f = io.open(errfile)
      error("redis-server did not start: " .. (f and f:read("a") or ""))
    end
    if line:find("Ready to accept connections", 1, true) then break end
  end
  return s
end

-- Stop by PID: redis-server is the child of `timeout`, our child.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local f = io.open(("/proc/%d/task/%d/children"):format(self.pid,
    self.pid))
  local kids = f and f:read("a") or ""
  if f then f:close() end
  for pid in kids:gmatch("%d+") do
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  end
  self.out:close()
  os.execute("rm -rf " .. q(self.dir))
end

-- }==================================================================

describe("redis.decode", function()
  local function dec(s, opts)
    return redis.decode(s, 1, opts)
  end

  it("decodes every RESP2 type", function()
    assert.equal("OK", dec("+OK\r\n"))
    assert.equal("", dec("+\r\n"))
    assert.equal(42, dec(":42\r\n"))
    assert.equal(-9223372036854775807 - 1, dec(":-9223372036854775808\r\n"))
    assert.equal("a\r\nb\0", dec("$5\r\na\r\nb\0\r\n"))
    assert.equal("", dec("$0\r\n\r\n"))
    assert.equal(redis.null, dec("$-1\r\n"))
    assert.equal(redis.null, dec("*-1\r\n"))
    assert.same({}, dec("*0\r\n"))
    local v = dec("*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n-ERR no\r\n")
    assert.equal(1, v[1])
    assert.equal("a", v[2][1])
    assert.equal(redis.null, v[2][2])
    assert.is_true(redis.is_error(v[3]))
    assert.equal("ERR no", v[3].err)
    local e = dec("-WRONGTYPE Operation\r\n")
    assert.is_true(redis.is_error(e))
    assert.equal("WRONGTYPE Operation", e.err)
    -- the next reply's position
    local s = "+a\r\n:2\r\n"
    local a, pos = redis.decode(s)
    assert.equal("a", a)
    assert.equal(2, (redis.decode(s, pos)))
  end)

  it("refuses what breaks the protocol, within bounds", function()
    local bad = {
      {"+OK\n", "line without CR LF"}, {"+OK", "closed"},
      {":12a\r\n", "bad integer"}, {": 1\r\n", "bad integer"},
      {":+1\r\n", "bad integer"}, {":1e3\r\n", "bad integer"},
      {":9223372036854775808\r\n", "bad integer"},
      {":99999999999999999999999\r\n", "bad integer"},
      {"$-2\r\n", "bad bulk length"}, {"$abc\r\n", "bad bulk length"},
      {"$9223372036854775807\r\nabc\r\n", "bad bulk length"},
      {"$3\r\nabcde", "without CR LF"}, {"$3\r\nab", "closed"},
      {"*-2\r\n", "bad array length"}, {"*x\r\n", "bad array length"},
      {"*2\r\n:1\r\n", "closed"}, {"?what\r\n", "unexpected byte"},
      {"\r\n", "line without CR LF"}, {"", "closed"},
      {("*1\r\n"):rep(40) .. ":1\r\n", "nested too deep"},
    }
    for _, case in ipairs(bad) do
      local v, err = dec(case[1])
      assert.is_nil(v, ("%q"):format(case[1]))
      assert.matches(case[2], err, 1, true, ("%q"):format(case[1]))
    end
    -- limits: each checked before anything is read for it
    assert.matches("bad bulk length", select(2, dec("$11\r\n",
      {max_bulk = 10})))
    assert.equal("0123456789", dec("$10\r\n0123456789\r\n", {max_bulk = 10}))
    assert.matches("bad array length", select(2, dec("*4\r\n",
      {max_elements = 3})))
    assert.matches("nested too deep", select(2, dec("*1\r\n*1\r\n:1\r\n",
      {max_depth = 1})))
    assert.matches("line too long", select(2, dec("+" .. ("x"):rep(100) ..
      "\r\n", {max_line = 50})))
    -- a huge array announced, nothing behind it: no allocation for it
    assert.matches("closed", select(2, dec("*16777216\r\n")))
    assert.has_error(function() redis.decode(1) end,
      "bad argument #1 to 'decode' (string expected)")
    assert.has_error(function() dec("+a\r\n", {max_bulk = -1}) end)
  end)

  -- A random reply (values and their encoding).
  local function random_reply(g, depth)
    local k = g:int(1, depth < 3 and 6 or 4)
    if k == 1 then
      local s = g:bytes(g:int(0, 20)):gsub("[\r\n]", "x")
      return s, "+" .. s .. "\r\n"
    elseif k == 2 then
      local n = g:int(-1000000, 1000000) * (g:chance(0.1) and 1 << 40 or 1)
      return n, ":" .. n .. "\r\n"
    elseif k == 3 then
      local s = g:bytes(g:int(0, 300))
      return s, "$" .. #s .. "\r\n" .. s .. "\r\n"
    elseif k == 4 then
      return redis.null, g:chance(0.5) and "$-1\r\n" or "*-1\r\n"
    else
      local n, list, out = g:int(0, 6), {}, {}
      for i = 1, n do list[i], out[i] = random_reply(g, depth + 1) end
      return list, "*" .. n .. "\r\n" .. table.concat(out)
    end
  end

  it("round-trips random replies, and survives seeded garbage", function()
    local seed = H.seed(4242)
    local g = H.prng(seed)
    local ok, err = pcall(function()
      for _ = 1, 3000 do
        local v, wire = random_reply(g, 0)
        local got, pos = redis.decode(wire)
        assert.same(v, got)
        assert.equal(#wire + 1, pos)
        -- mutated: a value or nil, err; never a Lua error
        local m = H.mutate(g, wire)
        local r, e = redis.decode(m, 1, {max_bulk = 1 << 20,
          max_elements = 1000})
        assert.is_true(r ~= nil or type(e) == "string", ("%q"):format(m))
        if r ~= nil then assert.is_true(e >= 1 and e <= #m + 1) end
      end
      for _ = 1, 3000 do
        local m = H.garbage(g, g:int(0, 200))
        local r, e = redis.decode(m)
        assert.is_true(r ~= nil or type(e) == "string", ("%q"):format(m))
      end
    end)
    assert(ok, ("seed %d: %s"):format(seed, tostring(err)))
  end)

  it("encodes commands as arrays of bulk strings", function()
    assert.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n42\r\n",
      redis.encode("SET", "k", 42))
    assert.equal("*1\r\n$19\r\n0.10000000000000001\r\n", redis.encode(0.1))
    assert.has_error(function() redis.encode("SET", {}) end,
      "bad argument #2 to 'encode' (string or number expected, got table)")
    assert.has_error(function() redis.encode("SET", nil, "v") end,
      "bad argument #2 to 'encode' (string or number expected, got nil)")
    assert.has_error(function() redis.encode() end,
      "bad argument #1 to 'encode' (command expected)")
  end)
end)

describe("redis client against redis-server", function()
  if not have("redis-server") then
    it("needs redis-server", function()
      pending("redis-server is not installed (vendor/packages.txt)")
    end)
    return
  end

  local servers = {}
  local function server(extra)
    local s = start_redis(extra)
    servers[#servers + 1] = s
    return s
  end
  after_each(function()
    for _, s in ipairs(servers) do s:stop() end
    servers = {}
  end)

  it("calls: strings, integers, arrays, null, errors, binary values",
    function()
    local s = server()
    run_task(function()
      local db <close> = assert(redis.connect("127.0.0.1", s.port))
      assert.equal("OK", db:call("SET", "k", "v"))
      assert.equal("v", db:get("k"))
      assert.equal(redis.null, db:get("missing"))
      assert.equal(3, db:rpush("list", "a", "b", "c"))
      assert.same({"a", "b", "c"}, db:lrange("list", 0, -1))
      assert.same({}, db:lrange("nolist", 0, -1))
      local v, err = db:incr("k")
      assert.is_nil(v)
      assert.matches("^ERR value is not an integer", err)
      v, err = db:call("NOSUCH", "x")
      assert.is_nil(v)
      assert.matches("^ERR unknown command", err)
      assert.is_false(db:is_closed()) -- an error reply breaks nothing
      -- floats keep their digits; binary values pass unchanged
      assert.equal("OK", db:set("f", 0.1))
      assert.equal(0.1, tonumber(db:get("f")))
      local bin = "\0\r\n\255" .. ("x\r\n"):rep(1000)
      assert.equal("OK", db:set("bin", bin))
      assert.equal(bin, db:get("bin"))
      local big = ("big"):rep(2 * 1024 * 1024) -- 6 MiB
      assert.equal("OK", db:set("big", big))
      assert.is_true(db:get("big") == big)
      assert.equal(1, db:hset("h", "field", "value"))
      assert.same({"field", "value"}, db:hgetall("h"))
      assert.equal("PONG", db:ping())
    end, 30)
  end)

  it("pipelines: one write, replies in order, errors in place",
    function()
    local s = server()
    run_task(function()
      local db <close> = assert(redis.connect("127.0.0.1", s.port))
      local r = assert(db:pipeline(function(p)
        for _ = 1, 1000 do p:incr("n") end
        p:call("SET", "s", "x")
        p:incr("s")
        p:get("n")
      end))
      assert.equal(1003, #r)
      assert.equal(1, r[1])
      assert.equal(1000, r[1000])
      assert.equal("OK", r[1001])
      assert.is_true(redis.is_error(r[1002]))
      assert.matches("^ERR value is not an integer", r[1002].err)
      assert.equal("1000", r[1003])
      -- the table form, and an empty pipeline
      r = assert(db:pipeline{{"INCR", "n"}, {"GET", "missing"}})
      assert.same({1001, redis.null}, r)
      assert.same({}, db:pipeline(function() end))
      -- a transaction: MULTI/EXEC with an error inside its results
      r = assert(db:pipeline(function(p)
        p:multi() p:incr("t") p:incr("s") p:incr("t") p:exec()
      end))
      assert.equal("OK", r[1])
      assert.equal("QUEUED", r[2])
      local exec = r[5]
      assert.equal(1, exec[1])
      assert.is_true(redis.is_error(exec[2]))
      assert.equal(2, exec[3])
      assert.has_error(function() db:pipeline(42) end,
        "bad argument #2 to 'pipeline' (function or table expected, " ..
        "got number)")
    end, 30)
  end)

  it("pub/sub: subscribe, psubscribe, messages, ping, unsubscribe",
    function()
    local s = server()
    run_task(function()
      local sub <close> = assert(redis.connect("127.0.0.1", s.port))
      local pub <close> = assert(redis.connect("127.0.0.1", s.port))
      assert.equal(2, sub:subscribe("a", "b"))
      assert.equal(3, sub:psubscribe("news.*"))
      local v, err = sub:get("k")
      assert.is_nil(v)
      assert.matches("in subscribe mode", err)
      assert.equal(1, pub:publish("a", "one"))
      assert.equal(1, pub:publish("news.today", "two"))
      assert.equal(1, pub:publish("b", "three"))
      -- a message already on the way when PING is answered is kept
      assert.equal("PONG", sub:ping())
      local got = {}
      for kind, channel, msg, pattern in sub:messages(5) do
        got[#got + 1] = table.concat({kind, channel, msg, pattern}, " ")
        if #got == 3 then break end
      end
      assert.same({"message a one", "pmessage news.today two news.*",
                   "message b three"}, got)
      -- nothing more: a timeout, and the client stays usable
      local kind
      kind, err = sub:next_message(0.2)
      assert.is_nil(kind)
      assert.equal("timeout", err)
      assert.equal(1, pub:publish("b", "four"))
      assert.same({"message", "b", "four"}, {sub:next_message(5)})
      -- leaving the channels, then the patterns: back to normal mode
      assert.equal(1, sub:unsubscribe())
      assert.equal(0, sub:punsubscribe())
      assert.equal(0, pub:publish("a", "nobody"))
      assert.equal("OK", sub:set("k", "v"))
      kind, err = sub:next_message(0.1)
      assert.equal("not subscribed", err)
      assert.has_error(function() sub:subscribe() end,
        "bad argument #2 to 'subscribe' (channel expected)")
    end, 30)
  end)

  it("a pool bounds its connections, waits, retries a dead one",
    function()
    local s = server()
    run_task(function()
      local admin <close> = assert(redis.connect("127.0.0.1", s.port))
      local pool = redis.pool{host = "127.0.0.1", port = s.port, size = 3}
      local most, ts = 0, {}
      for i = 1, 20 do
        ts[i] = task.spawn(function()
          pool:with(function(c)
            assert(c:incr("hits"))
            local open = pool:stats()
            most = math.max(most, open)
            task.sleep(0.01)
          end)
          assert(pool:call("INCR", "calls"))
          return true
        end)
      end
      for _, t in ipairs(ts) do assert(t:join()) end
      assert.equal("20", admin:get("hits"))
      assert.equal("20", admin:get("calls"))
      assert.equal(3, most)
      local open, idle = pool:stats()
      assert.equal(3, open)
      assert.equal(3, idle)
      -- what the server sees: 3 pooled connections and admin
      local list = assert(admin:client("LIST"))
      assert.equal(4, select(2, list:gsub("\n", "")))
      -- the server closes every idle connection: the next call is sent
      -- again on a new one
      assert.is_true(admin:client("KILL", "TYPE", "normal", "SKIPME",
        "yes") >= 3)
      assert.equal(21, pool:call("INCR", "calls"))
      -- all lent out: get waits `wait` seconds, then "timeout"
      local small = redis.pool{host = "127.0.0.1", port = s.port, size = 1,
        wait = 0.2}
      local held = assert(small:get())
      local c, err = small:get()
      assert.is_nil(c)
      assert.equal("timeout", err)
      task.spawn(function()
        task.sleep(0.1)
        small:put(held)
      end)
      c = assert(small:get()) -- given back meanwhile
      assert.equal(held, c)
      -- an error in with() closes the client (a reply may be on its way)
      -- and frees its slot, then raises
      small:put(c)
      assert.has_error(function()
        small:with(function(db)
          assert(db:pipeline{{"PING"}})
          error("boom", 0)
        end)
      end, "boom")
      assert.same({0, 0}, {small:stats()})
      assert.is_true(c:is_closed())
      assert.equal("PONG", small:call("PING")) -- (a new connection)
      -- a wrong argument raises, and the client goes back
      assert.has_error(function() small:call("SET", {}) end,
        "bad argument #2 to 'call' (string or number expected, got table)")
      assert.same({1, 1}, {small:stats()})
      small:close()
      assert.same({nil, "closed"}, {small:get()})
      pool:close()
      assert.has_error(function() redis.pool{size = 0} end,
        "bad argument #1 to 'pool' (size: positive integer expected)")
      assert.has_error(function() redis.pool{colour = 1} end,
        "bad argument #1 to 'pool' (unknown option 'colour')")
    end, 30)
  end)

  it("AUTH and SELECT at connect", function()
    local s = server("--requirepass s3cret")
    run_task(function()
      local db = assert(redis.connect("127.0.0.1", s.port))
      local v, err = db:get("k")
      assert.is_nil(v)
      assert.matches("^NOAUTH", err)
      db:close()
      v, err = redis.connect("127.0.0.1", s.port, {password = "wrong"})
      assert.is_nil(v)
      assert.matches("^WRONGPASS", err)
      local one <close> = assert(redis.connect{host = "127.0.0.1",
        port = s.port, password = "s3cret", db = 1})
      assert.equal("OK", one:set("k", "in db 1"))
      local zero <close> = assert(redis.connect("127.0.0.1", s.port,
        {password = "s3cret", username = "default"}))
      assert.equal(redis.null, zero:get("k"))
      assert.equal("OK", zero:select(1))
      assert.equal("in db 1", zero:get("k"))
    end, 30)
  end)

  it("raises on wrong arguments, naming them", function()
    run_task(function()
      assert.has_error(function()
        redis.connect("127.0.0.1", 1, {colour = "red"})
      end, "bad argument #3 to 'connect' (unknown option 'colour')")
      assert.has_error(function() redis.connect("127.0.0.1", "x") end,
        "bad argument #2 to 'connect' (integer expected)")
      local v, err = redis.connect("127.0.0.1", free_port())
      assert.is_nil(v)
      assert.equal("ECONNREFUSED", err)
    end)
  end)
end)

describe("redis client against hostile servers", function()
  -- A server answering every request with `reply`; returns its port.
  local function evil(reply)
    local s = assert(net.listen{port = 0})
    task.spawn(s.serve, s, function(c)
      while c:recv() do
        if not c:write(reply) then return end
      end
    end)
    return s, select(2, s:sockname())
  end

  it("a broken reply is an error and closes the client", function()
    run_task(function()
      for _, case in ipairs{
        {"$9223372036854775807\r\nabc\r\n", "bad bulk length"},
        {"$600000000\r\n", "bad bulk length"},
        {("*1\r\n"):rep(100) .. ":1\r\n", "nested too deep"},
        {":99999999999999999999\r\n", "bad integer"},
        {"?what\r\n", "unexpected byte"},
        {"+OK\n", "line without CR LF"},
        {"$3\r\nabcde\r\n", "without CR LF"},
        {"+" .. ("x"):rep(70000) .. "\r\n", "line too long"},
      } do
        local s, port = evil(case[1])
        local db = assert(redis.connect("127.0.0.1", port, {timeout = 2}))
        local v, err = db:call("GET", "k")
        assert.is_nil(v, case[2])
        assert.matches(case[2], err, 1, true)
        assert.is_true(db:is_closed())
        v, err = db:call("GET", "k")
        assert.is_nil(v)
        assert.matches(case[2], err, 1, true) -- (stays broken)
        db:close()
        s:close()
      end
      -- a server that never answers: "timeout", and the client is closed
      -- (a late reply would answer the next command)
      local s = assert(net.listen{port = 0})
      task.spawn(s.serve, s, function(c) c:read("a") end)
      local db = assert(redis.connect("127.0.0.1", select(2, s:sockname()),
        {timeout = 0.2}))
      local v, err = db:ping()
      assert.is_nil(v)
      assert.equal("timeout", err)
      assert.is_true(db:is_closed())
      s:close()
    end, 30)
  end)
end)
