-- Fuzzing the HTTP client (http.request: the response head, its body's
-- framing, gzip, 1xx, redirects, the pool) with mutated responses from a
-- server written here: no crash (this runs under ASan in make asan), no
-- Lua error, every wait bounded by the request's timeout, the exact body
-- for every response left intact, and no connection poisoned for the next
-- request: after each mutated response the same origin is asked again and
-- must answer "second" (a client that misread the first response's end
-- and pooled its connection would read garbage there).
local core = require "http.core"
local http = require "http"
local net = require "net"
local task = require "task"

local SEED = tonumber(os.getenv("HTTP_CLIENT_FUZZ_SEED")) or 20261205
local CASES = tonumber(os.getenv("HTTP_CLIENT_FUZZ_CASES")) or 600

local random = math.random
local char = string.char

local function gz(data)
  local z = core.gzip()
  local out = assert(z:write(data)) .. assert(z:finish())
  z:close()
  return out
end

local ZIPPED = gz(("hello gzip "):rep(40))

-- Responses and the body the client must return for each, intact
-- (gunzipped: the body when the client asked for gzip).
local SEEDS = {
  {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello"},
  {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
    "5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n", "hello world"},
  {"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " ..
    #ZIPPED .. "\r\n\r\n" .. ZIPPED, ZIPPED, ("hello gzip "):rep(40)},
  {"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n" ..
    "Transfer-Encoding: chunked\r\n\r\n" .. ("%x"):format(#ZIPPED) ..
    "\r\n" .. ZIPPED .. "\r\n0\r\n\r\n", ZIPPED, ("hello gzip "):rep(40)},
  {"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", ""},
  {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2" ..
    "\r\n\r\nok", "ok"},
  {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", nil},
  {"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nold style", nil},
  {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"a\"\r\n\r\n",
    ""},
  {"HTTP/1.1 302 Found\r\nLocation: /second\r\nContent-Length: 0\r\n\r\n",
    "second"},
}

local SPECIAL = {"\r", "\n", "\r\n", "\0", " ", ":", ";", "0", "f",
  "Content-Length: 3\r\n", "Transfer-Encoding: chunked\r\n",
  "Content-Encoding: gzip\r\n", "\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\n",
  "ffffffffffffffff\r\n", "-1", "\255"}

local function mutate(s)
  for _ = 1, random(1, 3) do
    local op, i = random(1, 4), random(1, #s + 1)
    if op == 1 then
      s = s:sub(1, i - 1) .. char(random(0, 255)) .. s:sub(i + 1)
    elseif op == 2 then
      s = s:sub(1, i - 1) .. SPECIAL[random(#SPECIAL)] .. s:sub(i)
    elseif op == 3 then
      s = s:sub(1, i - 1) .. s:sub(i + random(1, 8))
    else
      s = s:sub(1, i - 1)
    end
  end
  return s
end

-- The server: /first/N answers cases[N].wire (then closes, when the case
-- says so, or reads on: a client may reuse the connection); anything
-- else answers "second". Each read waits at most 2 s.
local function serve(ls, cases, live)
  while true do
    local c = ls:accept()
    if not c then return end
    live.n = live.n + 1
    task.spawn(function()
      c:settimeout(2)
      for _ = 1, 50 do
        local line = c:read("l")
        if not line then break end
        repeat
          local h = c:read("l")
        until not h or h == "" or h == "\r"
        local n = tonumber(line:match("^GET /first/(%d+) "))
        if n then
          c:write(cases[n].wire)
          if cases[n].close then break end
        else
          c:write("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        end
      end
      c:close()
      live.n = live.n - 1
    end)
  end
end

describe("http client fuzz (seed " .. SEED .. ")", function()
  it(CASES .. " mutated responses: a body or an error, never a raise " ..
    "or a poisoned pool", function()
    math.randomseed(SEED)
    local cases = {}
    for n = 1, CASES do
      local seed = SEEDS[random(#SEEDS)]
      local c = {wire = seed[1], body = seed[2], gunzipped = seed[3],
        gzip = random(2) == 1, mutated = random(10) <= 7}
      if c.mutated then c.wire = mutate(c.wire) end
      -- (a response with no framing but the end must close to end)
      -- (and most mutated ones close: one whose framing wants more than
      -- it got then ends at once instead of waiting for the timeout)
      c.close = c.body == nil or random(4) <= (c.mutated and 3 or 1)
      cases[n] = c
    end
    local counts = {ok = 0, err = 0, body_err = 0}
    run_task(function()
      local ls = assert(net.listen{host = "127.0.0.1", port = 0})
      local _, port = ls:sockname()
      local live = {n = 0}
      task.spawn(serve, ls, cases, live)
      local base = ("http://127.0.0.1:%d"):format(port)
      local function request(path, c)
        return http.request{url = base .. path, timeout = 0.25,
          gzip = c and c.gzip or false, redirects = 1}
      end
      for n, c in ipairs(cases) do
        local t0 = task.now()
        local ok, res, err = pcall(request, "/first/" .. n, c)
        assert(ok, ("case %d raised: %s"):format(n, tostring(res)))
        local body, berr
        if res then
          ok, body, berr = pcall(res.body, res)
          assert(ok, ("case %d: body raised: %s"):format(n, tostring(body)))
          if body then counts.ok = counts.ok + 1
          else counts.body_err = counts.body_err + 1 end
        else
          assert.equal("string", type(err))
          counts.err = counts.err + 1
        end
        -- bounded: connect, head and body phases of 0.25 s each at most
        -- (redirect: twice), with room for a slow machine
        assert(task.now() - t0 < 8, ("case %d took %.1f s"):format(n,
          task.now() - t0))
        if not c.mutated then
          local want = c.body or (c.wire:match("\r\n\r\n(.*)$"))
          if c.gzip and c.gunzipped then want = c.gunzipped end
          assert(body, ("case %d: intact response failed: %s %s"):format(n,
            tostring(err), tostring(berr)))
          assert.equal(want, body)
        end
        -- the origin again: "second", whatever the first left behind
        local res2 = assert(request("/second"))
        assert.equal("second", (assert(res2:body())))
      end
      ls:close()
      -- (the pool's connections go, and with them the server's tasks)
      require("http.client").close_idle()
      local t0 = task.now()
      while live.n > 0 and task.now() - t0 < 10 do task.sleep(0.01) end
      assert.equal(0, live.n)
    end, 600)
    -- every kind of outcome was reached
    assert(counts.ok > 0 and counts.err > 0 and counts.body_err > 0,
      ("ok %d, head errors %d, body errors %d"):format(counts.ok,
        counts.err, counts.body_err))
  end)
end)
