-- conn:read is io.read over a socket (docs/net.md): fuzzed against io.read
-- itself (and, for lines longer than a conn's max_line, against the rule
-- docs/net.md gives: "line too long", and the next read of any kind
-- starts after that line). Random input (lines, CRLF, numerals and near-numerals, NULs)
-- arrives in random pieces at random times over TCP or a unix socket; a
-- random sequence of read calls (one to three formats each: "l", "L",
-- "n", "a", counts including 0, and recv) runs on the conn and, on the
-- same bytes, on a file opened by io.open. Every result must be the
-- file's (net adds an error string after a nil: "closed", "not a
-- number"; io gives the nil alone).
local net = require "net"
local task = require "task"

local SEED = tonumber(os.getenv("NET_READ_FUZZ_SEED")) or 20261205
local CASES = tonumber(os.getenv("NET_READ_FUZZ_CASES")) or 600

local random = math.random

local PIECES = {"a", "b", "\n", "\r\n", "\r", "1", "2", "5", "9", "-", "+",
  ".", "e", "E", "p", "0x", "0X", " ", "\t", "\f", "inf", "nan", "\0",
  "1e5", "0x1p4", "0x1.8P-1", "12345678901234567890", ("7"):rep(210)}

local function input()
  local t = {}
  for i = 1, random(0, 60) do t[i] = PIECES[random(#PIECES)] end
  return table.concat(t)
end

-- One call: {"recv", max} or a list of formats.
local function call()
  if random(8) == 1 then return {"recv", random(1, 16)} end
  local f = {}
  for i = 1, random(1, 3) do
    local r = random(1, 12)
    f[i] = r <= 3 and "l" or r <= 5 and "L" or r <= 8 and "n" or
      r == 9 and "a" or random(0, 9)
  end
  return f
end

-- The results up to the first nil (what net adds after it dropped).
local function upto_nil(p)
  local t = {}
  for i = 1, p.n do
    t[i] = p[i]
    if p[i] == nil then return t, i end
  end
  return t, p.n
end

local function show(t, n)
  local s = {}
  for i = 1, n do
    s[i] = type(t[i]) == "string" and ("%q"):format(t[i]) or
      math.type(t[i]) and (math.type(t[i]) .. " " .. tostring(t[i])) or
      tostring(t[i])
  end
  return "{" .. table.concat(s, ", ") .. "}"
end

-- The reference: io.read on a file of the same bytes, at state.pos; lines
-- by hand, which is io.read's "l"/"L" as long as a line fits in max and
-- net's rule past it. Returns the results up to the first nil, their
-- count, and whether that nil was "line too long".
local function reference(f, data, state, fm, max)
  local out = {}
  for i, x in ipairs(fm) do
    local v, long
    if x == "l" or x == "L" then
      local pos = state.pos
      local nl = data:find("\n", pos, true)
      if nl then
        if nl - pos > max then long = true
        else v = data:sub(pos, x == "L" and nl or nl - 1) end
        state.pos = nl + 1
      elseif #data - pos + 1 > max then
        long, state.pos = true, #data + 1
      elseif pos <= #data then
        v, state.pos = data:sub(pos), #data + 1
      end
    else
      f:seek("set", state.pos - 1)
      v = f:read(x)
      state.pos = f:seek() + 1
    end
    out[i] = v
    if v == nil then return out, i, long or false end
  end
  return out, #fm, false
end

describe("net read fuzz (seed " .. SEED .. ")", function()
  it(CASES .. " inputs in random pieces: every read as io.read gives it",
    function()
    math.randomseed(SEED)
    local path = tmpname()
    local sock = tmpname()
    os.remove(sock)
    run_task(function()
      local tcp = assert(net.listen{host = "127.0.0.1", port = 0})
      local short = assert(net.listen{host = "127.0.0.1", port = 0,
        max_line = 8})
      local unix = assert(net.listen{path = sock})
      local listeners = {tcp, tcp, short, unix}
      local writers = 0 -- (waited for at the end: no socket left open)
      for n = 1, CASES do
        local data, calls = input(), {}
        for i = 1, random(1, 8) do calls[i] = call() end
        local ls = listeners[random(#listeners)]
        local max = ls == short and 8 or 65536
        writers = writers + 1
        task.spawn(function()
          local c
          if ls == unix then c = assert(net.connect{path = sock})
          else c = assert(net.connect("127.0.0.1", (select(2, ls:sockname()))))
          end
          local i = 1
          while i <= #data do
            local k = random(1, 8)
            -- (the reader may close before it took everything: EPIPE)
            if not c:write(data:sub(i, i + k - 1)) then break end
            i = i + k
            local r = random(20)
            if r == 1 then task.sleep(0.001)
            elseif r <= 8 then task.sleep(0) end
          end
          c:shutdown()
          c:read("a") -- (until the reader closes)
          c:close()
          writers = writers - 1
        end)
        local s = assert(ls:accept())
        s:settimeout(10)
        local f = assert(io.open(path, "wb"))
        f:write(data)
        f:close()
        f = assert(io.open(path, "rb"))
        local state = {pos = 1}
        for ci, fm in ipairs(calls) do
          local a, an, b, bn, along, blong
          if fm[1] == "recv" then
            local got, err = s:recv(fm[2])
            assert(got or err == "closed", err)
            assert(not got or #got <= fm[2])
            a, an, along = {got}, 1, false
            -- what arrived is the next bytes, at most max of them
            b, bn, blong = reference(f, data, state, {got and #got or 1},
              max)
          else
            local r = table.pack(s:read(table.unpack(fm)))
            a, an = upto_nil(r)
            along = a[an] == nil and r[an + 1] == "line too long"
            b, bn, blong = reference(f, data, state, fm, max)
          end
          local sa, sb = show(a, an) .. tostring(along),
            show(b, bn) .. tostring(blong)
          if sa ~= sb then
            error(("case %d, call %d (%s, max_line %d) on %q:\nnet %s\n" ..
              "ref %s"):format(n, ci, show(fm, #fm), max, data, sa, sb))
          end
        end
        f:close()
        s:close()
      end
      tcp:close()
      short:close()
      unix:close()
      local t0 = task.now()
      while writers > 0 and task.now() - t0 < 30 do task.sleep(0.01) end
      assert.equal(0, writers)
    end, 300)
    os.remove(path)
    os.remove(sock)
  end)
end)
