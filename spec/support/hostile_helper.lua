--[[
spec/support/hostile_helper.lua: what the hostile specs share (hostile_net_spec,
hostile_scripts_spec, fuzz_spec).

  H.prng(seed)            a reproducible generator (xorshift, independent of
                          math.random): g:int(a, b), g:bytes(n), g:chance(p)
  H.seed(name)            the seed of a test: LUAHOST_FUZZ_SEED or a fixed one
  H.garbage(g, n)         n random bytes, biased towards protocol characters
  H.mutate(g, msg)        a valid message with a few random mutations
  H.rss_kb(pid)           VmRSS of a process (kB), from /proc/PID/status
  H.start_script(s, args[, opts])
                          run scripts/s (or the path s) as a child process
                          (bounded by `timeout`; opts.shell runs first);
                          returns proc, port (read from its first line)
  proc:host_pid(), proc:alive(), proc:stop([sig])
  proc:stop_quiet()       SIGINT it, expect exit 130 and a clean stderr (no
                          error, no sanitizer report)
  H.connect(port[, t])    net.connect to 127.0.0.1 with a timeout
  H.reset(conn)           close with a reset (SO_LINGER 0)
]]
local net = require "net"
local assert = require "luassert"

local H = {}

-- {==================================================================
-- A seeded generator: xorshift64*, so a failing seed replays exactly
-- whatever else in the process uses math.random.
-- ===================================================================
local G = {}
G.__index = G

function H.prng(seed)
  local s = seed ~ 0x9E3779B97F4A7C15
  if s == 0 then s = 1 end
  return setmetatable({s = s, seed = seed}, G)
end

function G:next()
  local x = self.s
  x = x ~ (x >> 12)
  x = x ~ (x << 25)
  x = x ~ (x >> 27)
  self.s = x
  return (x * 0x2545F4914F6CDD1D) >> 11 -- 53 bits, non-negative
end

function G:int(a, b) return a + self:next() % (b - a + 1) end
function G:chance(p) return self:next() / (1 << 53) < p end
function G:pick(list) return list[self:int(1, #list)] end

function G:bytes(n)
  local t = {}
  for i = 1, n do t[i] = self:int(0, 255) end
  local parts = {}
  for i = 1, n, 4096 do
    parts[#parts + 1] = string.char(table.unpack(t, i, math.min(n, i + 4095)))
  end
  return table.concat(parts)
end

-- The seed of a test, printed by the specs on failure.
function H.seed(default)
  return tonumber(os.getenv("LUAHOST_FUZZ_SEED")) or default
end

-- Random bytes with protocol characters mixed in, so that parsers get past
-- their first check now and then.
local SPICE = {"\r\n", "\n", "\r", "\0", "*", "$", "-1", "%", "/", "..",
  ":", " ", "GET / HTTP/1.1\r\n", "Content-Length: ", "*2147483647\r\n",
  "$-1\r\n", "Transfer-Encoding: chunked\r\n", "\r\n\r\n", "9999999999"}

function H.garbage(g, n)
  local out, len = {}, 0
  while len < n do
    local piece
    if g:chance(0.3) then piece = g:pick(SPICE)
    else piece = g:bytes(g:int(1, 64)) end
    out[#out + 1] = piece
    len = len + #piece
  end
  return table.concat(out):sub(1, n)
end

-- A valid message mutated a few times: bytes flipped, inserted, deleted,
-- pieces repeated or cut, numbers replaced by extreme ones. Reaches deeper
-- into a parser than pure noise.
local NUMBERS = {"0", "-1", "1", "2147483647", "2147483648", "-2147483649",
  "9223372036854775807", "99999999999999999999999", "1e9", "0x10", "",
  " 5", "5 ", "+5", "nan", "inf"}

function H.mutate(g, msg, rounds)
  for _ = 1, rounds or g:int(1, 4) do
    local n = #msg
    local i = g:int(1, math.max(n, 1))
    local r = g:int(1, 7)
    if r == 1 then -- flip a byte
      msg = msg:sub(1, i - 1) .. string.char(g:int(0, 255)) .. msg:sub(i + 1)
    elseif r == 2 then -- insert spice
      msg = msg:sub(1, i - 1) .. g:pick(SPICE) .. msg:sub(i)
    elseif r == 3 then -- delete a run
      msg = msg:sub(1, i - 1) .. msg:sub(i + g:int(1, 16))
    elseif r == 4 then -- repeat a piece
      local j = math.min(n, i + g:int(0, 40))
      msg = msg:sub(1, j) .. msg:sub(i, j):rep(g:int(2, 50)) .. msg:sub(j + 1)
    elseif r == 5 then -- cut short
      msg = msg:sub(1, i)
    elseif r == 6 then -- a number becomes an extreme one
      local k = 0
      local target = g:int(1, 8)
      msg = msg:gsub("%d+", function(d)
        k = k + 1
        if k == target then return g:pick(NUMBERS) end
      end)
    else -- duplicate the whole message (pipelining)
      msg = msg .. msg
    end
  end
  return msg
end

-- }==================================================================

-- {==================================================================
-- Processes
-- ===================================================================

function H.rss_kb(pid)
  local f = io.open(("/proc/%d/status"):format(pid), "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local slurp = require("process_helper").slurp

local Proc = {}
Proc.__index = Proc

-- The luahost process itself: the child of `timeout`.
function Proc:host_pid()
  local kids = slurp(("/proc/%d/task/%d/children"):format(self.pid,
    self.pid))
  return tonumber(kids:match("%d+"))
end

function Proc:stderr() return slurp(self.errfile) end

function Proc:alive()
  local pid = self:host_pid()
  return pid ~= nil and H.rss_kb(pid) ~= nil
end

-- Stop by PID with `sig` (default KILL) and wait; returns the exit status.
function Proc:stop(sig)
  if self.stopped then return self.status end
  self.stopped = true
  local pid = self:host_pid()
  if pid then os.execute(("kill -%s %d 2>/dev/null"):format(sig or "KILL",
    pid)) end
  local _, _, code = self.out:close()
  self.status = code
  return code
end

-- SIGINT: the host shuts down in order and exits 130; under ASan the leak
-- check runs on the way out. Its stderr must hold no error.
function Proc:stop_quiet()
  local alive = self:alive()
  local code = self:stop("INT")
  local err = self:stderr():gsub("luahost: interrupted!\n", "")
  assert(alive, "the server died; stderr:\n" .. err)
  assert.equal(130, code, err)
  for _, bad in ipairs{"luahost:", "traceback", "runtime error",
                       "AddressSanitizer", "LeakSanitizer"} do
    assert.is_nil(err:find(bad, 1, true), err)
  end
end

-- Start scripts/<script> with args; waits for its first line (the address)
-- and returns the process and its port.
-- opts.shell: shell commands run first (e.g. "ulimit -n 64").
function H.start_script(script, args, opts)
  local q = shell_quote
  local path = script:find("/", 1, true) and script or "scripts/" .. script
  local words = {q(LUAHOST), q(path)}
  for _, a in ipairs(args or {}) do words[#words + 1] = q(a) end
  local errfile = tmpname()
  local line = ("echo $$; %s exec timeout -s KILL 120 %s </dev/null 2>%s")
    :format(opts and opts.shell and opts.shell .. ";" or "",
      table.concat(words, " "), q(errfile))
  local p = assert(io.popen("exec sh -c " .. q(line)))
  local proc = setmetatable({pid = assert(tonumber(p:read("l"))), out = p,
    errfile = errfile}, Proc)
  local first = p:read("l")
  if not first then
    local err = proc:stderr()
    proc:stop()
    error(("%s printed nothing; stderr:\n%s"):format(script, err), 2)
  end
  local port = tonumber(first:match("%]:(%d+)") or first:match(":(%d+)"))
  return proc, port
end

-- }==================================================================

-- {==================================================================
-- Clients (call from a task)
-- ===================================================================

function H.connect(port, timeout)
  -- (the specs read whole replies of up to 64 MiB: past net's max_read)
  return net.connect("127.0.0.1", port, {timeout = timeout or 5,
    max_read = 128 * 1024 * 1024})
end

-- (at once, even with output queued: net.core drops it on a linger-0 close)
function H.reset(conn)
  if not conn:is_closed() then
    conn:setopt("linger", {on = true, seconds = 0})
    conn:close()
  end
end

-- }==================================================================

return H
