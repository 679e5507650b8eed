-- The nginx `stream` configuration and the systemd unit of
-- docs/deploy.md, run as written there (read from the file, see
-- spec/support/deploy_doc.lua): nginx from Debian with its own prefix
-- directory on loopback ephemeral ports, sending the PROXY protocol to two
-- instances of scripts/counter_api.lua; the unit's ExecStart under
-- spec/support/sdactivate.pl, a stand-in for systemd's socket activation.
-- Every process is stopped by PID.
local proc = require "process_helper"
local doc = require "deploy_doc"

local function q(s) return shell_quote(s) end

local have = require("common").have

local free_port = require("common").free_port

local slurp = require("common").slurp

-- GET path on 127.0.0.1:port with curl from 127.0.0.7 (an address no
-- server or balancer uses); haproxy: curl sends a PROXY v1 header itself.
-- Returns status, X-Instance, body ("000" when the connect failed).
local function get(port, path, haproxy)
  local p = assert(io.popen(("curl -s --max-time 5 --interface 127.0.0.7 " ..
    "%s-D - http://127.0.0.1:%d%s"):format(haproxy and
    "--haproxy-protocol " or "", port, path)))
  local out = p:read("a")
  p:close()
  local status = out:match("^HTTP/1%.1 (%d+)") or "000"
  local inst = out:match("\r\n[Xx]%-[Ii]nstance: ([^\r\n]*)")
  local body = out:match("\r\n\r\n(.*)$") or ""
  return status, inst, body:gsub("\n$", "")
end

-- A background command whose PID is the command's own (the shell execs).
local function start_bg(cmd, errfile)
  local pidf = tmpname()
  assert(os.execute(("sh -c %s >/dev/null 2>%s </dev/null &"):format(
    q("echo $$ >" .. q(pidf) .. "; exec " .. cmd), q(errfile))))
  local pid
  proc.wait(function()
    pid = tonumber(slurp(pidf):match("%d+"))
    return pid ~= nil
  end, 5, "pid of " .. cmd)
  os.remove(pidf)
  -- (pid is `timeout`'s when cmd runs under it: its child goes first, by
  -- its PID; a KILL to timeout alone left nginx running, its parent 1)
  return {pid = pid, stop = function()
    local kids = slurp(("/proc/%d/task/%d/children"):format(pid, pid))
    for child in kids:gmatch("%d+") do
      os.execute("kill -KILL " .. child .. " 2>/dev/null")
      proc.wait(function() return not proc.alive(tonumber(child)) end, 5,
        "kill " .. child)
    end
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    proc.wait(function() return not proc.alive(pid) end, 5, "kill")
  end}
end

local NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"
local nginx_ok = have("nginx") and have("curl") and
  io.open(NGINX_STREAM) ~= nil

local describe_nginx = nginx_ok and describe or pending

describe_nginx("behind nginx stream (docs/deploy.md, PROXY v1)", function()
  local inst, ng, dir = {}, nil, nil

  after_each(function()
    for _, p in pairs(inst) do p:stop() end
    if ng then ng.stop() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("spreads connections over both instances, which see the client " ..
     "address, and routes around a dead one", function()
    local fe = free_port()
    local ports = {free_port(), free_port()}
    for i = 1, 2 do
      -- (the redis port: nothing there; /whoami does not use it)
      inst[i] = proc.start({"scripts/counter_api.lua", tostring(ports[i]),
        tostring(free_port()), "inst" .. i, "proxy"})
      inst[i]:wait_for("listening", 20)
    end
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir) .. " " .. q(dir .. "/logs")))
    -- the doc's block as written; around it only what a test instance
    -- needs (the module, foreground, its own pid and log files)
    local stream = doc.subst(doc.block("nginx-stream"), {
      {"listen 80;", "listen 127.0.0.1:" .. fe .. ";"},
      {"10.0.0.11:8080", "127.0.0.1:" .. ports[1]},
      {"10.0.0.12:8080", "127.0.0.1:" .. ports[2]}})
    proc.write(dir .. "/nginx.conf", ([[
load_module %s;
daemon off;
master_process off;
pid %s/nginx.pid;
error_log %s/error.log info;
events { worker_connections 64; }
]]):format(NGINX_STREAM, dir, dir) .. stream)
    ng = start_bg(("timeout -s KILL 120 nginx -p %s -c %s/nginx.conf " ..
      "-e %s/error.log"):format(q(dir), q(dir), q(dir)), dir .. "/stderr")
    proc.wait(function()
      if not proc.alive(ng.pid) then
        error("nginx did not start: " .. slurp(dir .. "/error.log") ..
          slurp(dir .. "/stderr"))
      end
      return get(fe, "/whoami") == "200"
    end, 10, "nginx to answer")
    local by = {}
    for _ = 1, 10 do
      local status, who, body = get(fe, "/whoami")
      assert.equal("200", status)
      -- the client's address, through nginx's PROXY v1 header
      assert.equal("127.0.0.7 via 127.0.0.1", body)
      by[who] = (by[who] or 0) + 1
    end
    assert.is_true(by.inst1 >= 3 and by.inst2 >= 3,
      ("inst1 %s, inst2 %s"):format(by.inst1, by.inst2))
    -- a dead instance: its connect is refused, nginx tries the other
    -- (proxy_next_upstream on), then leaves it out (max_fails=1)
    inst[2]:signal("KILL")
    inst[2]:wait_exit(10)
    for _ = 1, 10 do
      local status, who = get(fe, "/whoami")
      assert.equal("200", status)
      assert.equal("inst1", who)
    end
  end)
end)

-- The api units of docs/deploy.md: the socket's name and the service's
-- ExecStart (continuation lines joined).
local function unit_parts()
  local text = doc.block("systemd-api")
  local name = assert(text:match("\nFileDescriptorName=([^\n]+)\n"),
    "no FileDescriptorName in the unit")
  local exec = assert(text:match("\nExecStart=(.-[^\\])\n"),
    "no ExecStart in the unit"):gsub("\\\n%s*", "")
  return name, exec
end

local describe_sd = have("perl") and have("curl") and have("socat") and
  describe or pending

describe_sd("the systemd unit of docs/deploy.md (socket activation)",
            function()
  it("serves through the activated socket with PROXY, as 4 workers " ..
     "dropped to nobody; SIGTERM turns health 503 first", function()
    local name, exec = unit_parts()
    assert.equal("api,proxy", name)
    assert.is_nil(exec:find("[\"'$]"), "ExecStart needs no shell: " .. exec)
    local root = io.popen("id -u"):read("a"):match("%d+") == "0"
    if not root then
      pending("--user in the unit needs root")
      return
    end
    local here = io.popen("pwd"):read("l")
    exec = doc.subst(exec, {
      {"/usr/local/bin/luahost ", ""},
      {"/srv/api/counter_api.lua", here .. "/scripts/counter_api.lua"}})
    local args = {}
    for w in exec:gmatch("%S+") do args[#args + 1] = w end
    -- sdactivate binds 127.0.0.1:0 for ListenStream=8080, names it as
    -- FileDescriptorName says, and execs luahost with LISTEN_* set
    local portfile = tmpname()
    local p = proc.start(args, {wrapper = ("perl spec/support/" ..
      "sdactivate.pl 127.0.0.1 %s %s 0 --"):format(q(portfile), q(name))})
    finally(function() p:stop() end)
    proc.wait(function()
      return select(2, p:out():gsub("listening", "")) == 4
    end, 20, "4 workers listening")
    local port = tonumber(slurp(portfile):match("%d+"))
    -- a balancer's PROXY v1 header naming a client elsewhere
    local out = io.popen(("printf %s | socat -t 5 - TCP:127.0.0.1:%d")
      :format(q("PROXY TCP4 203.0.113.9 127.0.0.1 5555 8080\r\n" ..
        "GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        port)):read("a")
    assert.matches("^HTTP/1%.1 200 ", out)
    assert.matches("\r\n\r\n203%.0%.113%.9 via 127%.0%.0%.1\n$", out)
    assert.equal("200", (get(port, "/whoami", true))) -- curl's own header
    -- a client without the header is closed, never served
    assert.equal("000", (get(port, "/whoami")))
    -- the workers: 4, children of the supervisor, running as nobody
    local f = io.open(("/proc/%d/task/%d/children"):format(p.pid, p.pid))
    local kids = {}
    for pid in f:read("a"):gmatch("%d+") do kids[#kids + 1] = pid end
    f:close()
    assert.equal(4, #kids)
    local nobody = io.popen("id -u nobody"):read("a"):match("%d+")
    for _, pid in ipairs(kids) do
      assert.matches("\nUid:%s+" .. nobody .. "%s",
        slurp("/proc/" .. pid .. "/status"))
    end
    assert.equal("200", (get(port, "/health", true)))
    -- stop as systemd does (SIGTERM): the unit's --drain-delay keeps the
    -- socket open while the health check fails
    p:signal("TERM")
    proc.wait(function() return get(port, "/health", true) == "503" end,
      10, "health to turn 503")
    p:signal("TERM") -- (a second one cuts the delay short)
    assert.equal(128 + 15, p:wait_exit(10))
  end)
end)
