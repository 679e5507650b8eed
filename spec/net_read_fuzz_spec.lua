-- conn:read is io.read over a socket (docs/net.md): fuzzed against io.read
-- itself. Random input (lines, CRLF, numerals and near-numerals, NULs)
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

describe("net read fuzz (seed " .. SEED .. ")", function()
  it(CASES .. " inputs in random pieces: every read as io.read gives it",
    function()
    math.randomseed(SEED)
    local path = tmpname()
    local sock = tmpname()
    os.remove(sock)
    run_task(function()
      local tcp = assert(net.listen{host = "127.0.0.1", port = 0})
      local unix = assert(net.listen{path = sock})
      local _, port = tcp:sockname()
      for n = 1, CASES do
        local data, calls = input(), {}
        for i = 1, random(1, 8) do calls[i] = call() end
        local over_unix = random(4) == 1
        task.spawn(function()
          local c = over_unix and assert(net.connect{path = sock}) or
            assert(net.connect("127.0.0.1", port))
          local i = 1
          while i <= #data do
            local k = random(1, 8)
            -- (the reader may close before it took everything: EPIPE)
            if not c:write(data:sub(i, i + k - 1)) then break end
            i = i + k
            local r = random(20)
            if r == 1 then task.sleep(0.001) elseif r <= 8 then task.sleep(0) end
          end
          c:shutdown()
          c:read("a") -- (until the reader closes)
          c:close()
        end)
        local s = assert((over_unix and unix or tcp):accept())
        s:settimeout(10)
        local f = assert(io.open(path, "wb"))
        f:write(data)
        f:close()
        f = assert(io.open(path, "rb"))
        for ci, fm in ipairs(calls) do
          local a, an, b, bn
          if fm[1] == "recv" then
            local got, err = s:recv(fm[2])
            assert(got or err == "closed", err)
            a, an = {got}, 1
            -- what arrived is the next bytes, at most max of them
            b, bn = {f:read(got and #got or 1)}, 1
            assert(not got or #got <= fm[2])
          else
            a, an = upto_nil(table.pack(s:read(table.unpack(fm))))
            b, bn = upto_nil(table.pack(f:read(table.unpack(fm))))
          end
          local sa, sb = show(a, an), show(b, bn)
          if sa ~= sb then
            error(("case %d, call %d (%s) on %q:\nnet %s\nio  %s"):format(n,
              ci, show(fm, #fm), data, sa, sb))
          end
        end
        f:close()
        s:close()
      end
      tcp:close()
      unix:close()
    end, 300)
    os.remove(path)
    os.remove(sock)
  end)
end)
