-- A tested deployment (docs/deploy.md): HAProxy from Debian, its own
-- config on loopback ephemeral ports, in front of two luahost instances
-- of scripts/counter_api.lua (state in redis-server), PROXY v2 between
-- them. Shows: connections spread over both; the servers see the real
-- client address; one shared state whichever instance answers; a killed
-- instance is routed around and a drained one taken out by the health
-- check, with no failed request (with --drain-delay: out on its 503 before
-- its listener closes). The HAProxy configurations are the ones of
-- docs/deploy.md, read from there. Every process is stopped by PID.
local proc = require "process_helper"

local function q(s) return shell_quote(s) end

local have = require("common").have

local free_port = require("common").free_port

-- A background command whose PID is known (the shell execs it): popen's
-- pipe gives the PID, then lines up to `ready` (a Lua pattern).
local function start_bg(cmd, ready, errfile)
  local p = assert(io.popen("exec sh -c " .. q("echo $$; exec " .. cmd ..
    " 2>" .. q(errfile))))
  local pid = tonumber(p:read("l"))
  local bg = {pid = pid, pipe = p}
  function bg.stop()
    if bg.stopped then return end
    bg.stopped = true
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    p:close()
  end
  if ready then
    while true do
      local line = p:read("l")
      if not line then
        bg.stop()
        local f = io.open(errfile)
        error(cmd .. " did not start: " .. (f and f:read("a") or ""))
      end
      if line:find(ready) then break end
    end
  end
  return bg
end

-- The client: new connections (from 127.0.0.7, a client address neither
-- HAProxy nor the servers use) one request after the other; at request
-- `at` it sends signal sig to pid. Prints "status instance body" lines.
local CLIENT = [[
import http.client, os, signal, sys, time
port, n, at, sig, pid, method, path = sys.argv[1:8]
n, at, pid = int(n), int(at), int(pid)
for i in range(n):
    if i == at and pid > 0:
        os.kill(pid, getattr(signal, "SIG" + sig))
        # SIGKILL: wait (bounded) until the process is dead (a zombie or
        # gone); until then the kernel still queues connects on its
        # listener, and in TCP mode HAProxy cannot retry one that was
        # accepted and then reset as the process died
        for _ in range(500 if sig == "KILL" else 0):
            try:
                st = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1]
            except OSError:
                break
            if st.split()[0] in ("Z", "X"):
                break
            time.sleep(0.01)
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10,
                                       source_address=("127.0.0.7", 0))
        c.request(method, path)
        r = c.getresponse()
        body = r.read().decode().strip()
        print(r.status, r.getheader("X-Instance"), body, flush=True)
        c.close()
    except Exception as e:
        print("ERR", "-", repr(e), flush=True)
    time.sleep(0.02)
]]

local function client(port, n, method, path, at, sig, pid)
  local p = assert(io.popen(("timeout -s KILL 60 /usr/bin/python3 -c %s " ..
    "%d %d %d %s %d %s %s 2>&1"):format(q(CLIENT), port, n, at or -1,
    sig or "TERM", pid or 0, method, q(path))))
  local rows = {}
  for line in p:lines() do
    local st, inst, body = line:match("^(%S+) (%S+) ?(.*)$")
    rows[#rows + 1] = {status = st, inst = inst, body = body, line = line}
  end
  p:close()
  return rows
end

-- The HAProxy configurations of docs/deploy.md, run as written there: only
-- the addresses (loopback ports) and the check timings (quick) change.
local doc = require "deploy_doc"
local function haproxy_cfg(mode, fe, a, b)
  return doc.subst(doc.block("haproxy-" .. mode), {
    {"bind :80", "bind 127.0.0.1:" .. fe},
    {"10.0.0.11:8080", "127.0.0.1:" .. a},
    {"10.0.0.12:8080", "127.0.0.1:" .. b},
    {"inter 1s fall 2 rise 2", "inter 100ms fall 1 rise 1"}})
end

describe("the HAProxy configurations of docs/deploy.md", function()
  it("retry, in HTTP mode, a request that never reached a server",
     function()
    assert.matches("\n  retry%-on conn%-failure empty%-response\n",
      doc.block("haproxy-http"))
    for _, mode in ipairs{"http", "tcp"} do
      assert.matches("\n  retries 3\n  option redispatch 1\n",
        doc.block("haproxy-" .. mode))
    end
  end)
end)

local describe_if = (have("haproxy") and have("redis-server")) and describe
  or pending

-- HAProxy in HTTP mode (it parses requests) and in TCP mode (it passes
-- bytes): the same backends, the same checks.
for _, mode in ipairs{"http", "tcp"} do
describe_if("behind HAProxy, " .. mode .. " mode (PROXY v2, health " ..
  "checks, redis state)", function()
  local tmp = {}
  local rds, hap, inst = nil, nil, {}
  local fe, ports, rport

  local function start_instance(i, delay)
    local pidf = tmpname()
    os.remove(pidf)
    inst[i] = proc.start({"--pidfile", pidf, "--drain", "3",
      "--drain-delay", delay or "0",
      "scripts/counter_api.lua", tostring(ports[i]), tostring(rport),
      "inst" .. i, "proxy"}, {env = "RATE_LIMIT=100000"})
    inst[i]:wait_for("listening", 20)
  end

  -- wait (bounded) until the given servers answer through HAProxy
  local function wait_up(want)
    proc.wait(function()
      local seen = {}
      for _, r in ipairs(client(fe, 4, "GET", "/whoami")) do
        if r.status == "200" then seen[r.inst] = true end
      end
      for _, w in ipairs(want) do if not seen[w] then return false end end
      return true
    end, 20, "servers " .. table.concat(want, ",") .. " up")
  end

  setup(function()
    fe, rport = free_port(), free_port()
    ports = {free_port(), free_port()}
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
    tmp.dir = dir
    rds = start_bg(("timeout -s KILL 300 redis-server --bind 127.0.0.1 " ..
      "--port %d --save '' --appendonly no --dir %s"):format(rport, q(dir)),
      "Ready to accept connections", dir .. "/redis.err")
    -- redis-server is timeout's child: stop it by its own PID too
    local f = io.open(("/proc/%d/task/%d/children"):format(rds.pid, rds.pid))
    rds.child = f and tonumber(f:read("a"):match("%d+"))
    if f then f:close() end
    start_instance(1)
    start_instance(2)
    local cfg = dir .. "/haproxy.cfg"
    proc.write(cfg, haproxy_cfg(mode, fe, ports[1], ports[2]))
    hap = start_bg(("timeout -s KILL 300 haproxy -db -f %s"):format(q(cfg)),
      nil, dir .. "/haproxy.err")
    wait_up({"inst1", "inst2"})
  end)

  teardown(function()
    for _, p in pairs(inst) do p:stop() end
    if hap then
      local f = io.open(("/proc/%d/task/%d/children"):format(hap.pid,
        hap.pid))
      for pid in (f and f:read("a") or ""):gmatch("%d+") do
        os.execute("kill -KILL " .. pid .. " 2>/dev/null")
      end
      if f then f:close() end
      hap.stop()
    end
    if rds then
      if rds.child then
        os.execute("kill -KILL " .. rds.child .. " 2>/dev/null")
      end
      rds.stop()
    end
    if tmp.dir then os.execute("rm -rf " .. q(tmp.dir)) end
  end)

  it("spreads connections over both; they see the real client", function()
    local rows = client(fe, 10, "GET", "/whoami")
    local by = {}
    for _, r in ipairs(rows) do
      assert.equal("200", r.status, r.line)
      -- the client's own address, through PROXY v2; HAProxy's is the peer
      assert.equal("127.0.0.7 via 127.0.0.1", r.body)
      by[r.inst] = (by[r.inst] or 0) + 1
    end
    assert.equal(5, by.inst1)
    assert.equal(5, by.inst2)
  end)

  it("keeps one state in redis whichever instance answers", function()
    local rows = client(fe, 20, "POST", "/counter/hits")
    local by = {}
    for i, r in ipairs(rows) do
      assert.equal("200", r.status, r.line)
      assert.equal(tostring(i), r.body) -- 1, 2, 3, ... across instances
      by[r.inst] = true
    end
    assert.is_true(by.inst1 and by.inst2)
    rows = client(fe, 2, "GET", "/counter/hits")
    assert.equal("20", rows[1].body)
    assert.equal("20", rows[2].body)
  end)

  -- 60 POSTs to path in a row, signal sig sent to pid after the 10th:
  -- every one answered 200 with the next count, the last 20 by the
  -- instance named survivor alone.
  local function counted_through(path, sig, pid, survivor)
    local rows = client(fe, 60, "POST", path, 10, sig, pid)
    local last = {}
    for i, r in ipairs(rows) do
      assert.equal("200", r.status, r.line)
      assert.equal(tostring(i), r.body)
      if i > 40 then last[r.inst] = true end
    end
    assert.same({[survivor] = true}, last)
  end

  it("routes around a killed instance with no failed request", function()
    counted_through("/counter/k", "KILL", inst[2].pid, "inst1")
    -- back: a new instance on the same port rejoins after its check
    inst[2]:stop()
    start_instance(2)
    wait_up({"inst1", "inst2"})
  end)

  -- what HAProxy logged (stderr) about server name going down
  local function down_reasons(name)
    local f = io.open(tmp.dir .. "/haproxy.err")
    local text = f and f:read("a") or ""
    if f then f:close() end
    local list = {}
    for why in text:gmatch("Server %w+/" .. name .. " is DOWN, reason: " ..
      "([^,\n]+)") do
      list[#list + 1] = why
    end
    return list
  end

  it("with --drain-delay, takes a drained instance out by its health " ..
     "check before its listener closes", function()
    inst[2]:stop()
    start_instance(2, "1") -- > inter 100ms x fall 1, with a margin
    wait_up({"inst1", "inst2"})
    local before = #down_reasons("b")
    counted_through("/counter/dd", "TERM", inst[2].pid, "inst1")
    assert.equal(0, inst[2]:wait_exit(10))
    -- the measure: HAProxy took it out on the 503 of its health check
    -- (Layer7), not on a refused connect (Layer4): the listener was
    -- still open when the balancer stopped sending
    local reasons = down_reasons("b")
    assert.equal(before + 1, #reasons)
    assert.matches("Layer7 wrong status", reasons[#reasons])
    start_instance(2)
    wait_up({"inst1", "inst2"})
  end)

  it("takes a drained instance out with no failed request", function()
    counted_through("/counter/d", "TERM", inst[1].pid, "inst2")
    assert.equal(0, inst[1]:wait_exit(10))
  end)
end)
end
