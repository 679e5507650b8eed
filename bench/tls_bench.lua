--[[
bench/tls_bench.lua: TLS figures, side by side with nginx and openssl
s_server (not a test: nothing is asserted).

  usage: build/luahost bench/tls_bench.lua [seconds per run] [idle conns]
         (defaults: 3 s, 2000 connections)

Server: `scripts/echo.lua` with TLS_CERT/TLS_KEY (luahost) and nginx
(`ssl`, one process, `return 200`), each pinned to core 0 (openssl
s_server serves one connection at a time: no peer for this); the client
`openssl s_time` on core 1. For ECDSA P-256 and RSA 2048 certificates,
full handshakes (-new, TLS 1.3) and resumed ones (-reuse,
TLS 1.2: s_time never reads, so a TLS 1.3 ticket, sent after the
handshake, never reaches it and nothing resumes, with any server): the
handshakes/s s_time counted and the server's CPU time per handshake (the
utime + stime delta of /proc/PID/stat over the run, divided by the count).
Memory: N TLS connections held open, each after one round trip;
(VmRSS after - VmRSS before) / N, for luahost TLS, luahost plain and
nginx.
]]
local net = require "net"
local task = require "task"

local SECS = tonumber(arg[1]) or 3
local IDLE = tonumber(arg[2]) or 2000
local LUAHOST = arg[-1] or "build/luahost"

local function sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1"))
  local s = f:read("a")
  f:close()
  return s
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local dir = sh("mktemp -d"):gsub("%s+$", "")
local function file(name) return dir .. "/" .. name end
local function write(name, text)
  local f = assert(io.open(file(name), "w"))
  f:write(text)
  f:close()
end
local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- certificates: a CA, an ECDSA and an RSA leaf for localhost
sh(("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256" ..
  " -nodes -keyout ca.key -out ca.pem -subj /CN=bench-ca -days 2"):format(
  q(dir)))
for _, k in ipairs{{"ec", "ec -pkeyopt ec_paramgen_curve:P-256"},
  {"rsa", "rsa:2048"}} do
  sh(("cd %s && openssl req -newkey %s -nodes -keyout %s.key -out %s.csr " ..
    "-subj /CN=localhost && printf 'subjectAltName=DNS:localhost," ..
    "IP:127.0.0.1\\n' > %s.ext && openssl x509 -req -in %s.csr -CA ca.pem " ..
    "-CAkey ca.key -CAcreateserial -out %s.pem -days 2 -extfile %s.ext")
    :format(q(dir), k[2], k[1], k[1], k[1], k[1], k[1], k[1]))
end

-- a background process: its pid (the shell execs it), output in a file
local function start(cmd, name)
  local out = file(name .. ".out")
  local pidf = file(name .. ".pid")
  os.remove(out)
  os.remove(pidf)
  os.execute(("sh -c 'echo $$ > %s; exec %s' > %s 2>&1 &"):format(q(pidf),
    cmd:gsub("'", "'\\''"), q(out)))
  local pid
  for _ = 1, 500 do
    pid = tonumber((read(pidf) or ""):match("%d+"))
    if pid then break end
    task.sleep(0.01)
  end
  return {pid = pid, out = out}
end
local function wait_out(p, pat)
  for _ = 1, 1000 do
    local m = (read(p.out) or ""):match(pat)
    if m then return m end
    task.sleep(0.01)
  end
  error("no " .. pat .. " in " .. (read(p.out) or ""))
end
local function stop(p) os.execute("kill " .. p.pid .. " 2>/dev/null") end
local function cpu(pid) -- seconds of utime + stime
  local s = read("/proc/" .. pid .. "/stat") or ""
  local rest = s:match("%) (.*)$")
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  return (tonumber(f[12]) + tonumber(f[13])) / 100
end
local function rss(pid)
  return tonumber((read("/proc/" .. pid .. "/status") or "")
    :match("VmRSS:%s*(%d+)")) * 1024
end
local function free_port()
  local s = assert(net.listen{port = 0})
  local _, port = s:sockname()
  s:close()
  return port
end

local function luahost_tls(kind)
  local p = start(("taskset -c 0 env TLS_CERT=%s TLS_KEY=%s %s " ..
    "scripts/echo.lua 127.0.0.1 0"):format(file(kind .. ".pem"),
    file(kind .. ".key"), LUAHOST), "luahost-" .. kind)
  p.port = tonumber(wait_out(p, "listening on [%d.]+:(%d+)"))
  return p
end
local function luahost_plain()
  local p = start(("taskset -c 0 %s scripts/echo.lua 127.0.0.1 0"):format(
    LUAHOST), "luahost-plain")
  p.port = tonumber(wait_out(p, "listening on [%d.]+:(%d+)"))
  return p
end
local function nginx(kind)
  local port = free_port()
  local prefix = file("nginx-" .. kind)
  os.execute("mkdir -p " .. q(prefix .. "/logs"))
  write("nginx-" .. kind .. "/nginx.conf", ([[
daemon off; master_process off; worker_processes 1;
error_log %s/logs/error.log; pid %s/nginx.pid;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_timeout 600s; keepalive_requests 1000000;
  ssl_session_cache shared:SSL:10m;
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    location / { return 200 "hello world\n"; }
  }
}
]]):format(prefix, prefix, port, file(kind .. ".pem"), file(kind .. ".key")))
  local p = start(("taskset -c 0 nginx -p %s -c nginx.conf"):format(
    q(prefix)), "nginx-" .. kind)
  p.port = port
  for _ = 1, 300 do
    local c = net.connect("127.0.0.1", port)
    if c then c:close() break end
    task.sleep(0.02)
  end
  return p
end

-- openssl s_time against p: handshakes/s and server CPU ms per handshake
local function s_time(p, mode)
  local c0 = cpu(p.pid)
  local out = sh(("taskset -c 1 openssl s_time -connect 127.0.0.1:%d " ..
    "-%s -time %d -CAfile %s%s"):format(p.port, mode, SECS, file("ca.pem"),
    mode == "reuse" and " -tls1_2" or ""))
  local c1 = cpu(p.pid)
  local n, t = out:match("(%d+) connections in ([%d.]+)s")
  n, t = tonumber(n), tonumber(t)
  if not n or n == 0 then return "n/a", "n/a" end
  return ("%.0f"):format(n / t), ("%.3f"):format((c1 - c0) * 1000 / n)
end

local rows = {}
for _, kind in ipairs{"ec", "rsa"} do
  for _, srv in ipairs{{"luahost", luahost_tls}, {"nginx", nginx}} do
    local p = srv[2](kind)
    task.sleep(0.2)
    local hn, cn = s_time(p, "new")
    local hr, cr = s_time(p, "reuse")
    rows[#rows + 1] = ("| %s | %s | %s | %s | %s | %s |"):format(srv[1],
      kind == "ec" and "ECDSA P-256" or "RSA 2048", hn, cn, hr, cr)
    stop(p)
  end
end
print("| server | certificate | full handshakes/s | server CPU ms/full " ..
  "| resumed/s | server CPU ms/resumed |")
print("|---|---|---|---|---|---|")
for _, r in ipairs(rows) do print(r) end

-- memory per idle connection
local function hold(p, n, tls, payload)
  task.sleep(0.3)
  local before = rss(p.pid)
  local conns, done = {}, 0
  local ctx = tls and {ca = file("ca.pem")} or nil
  for i = 1, n do
    task.spawn(function()
      -- (from 200 source addresses: net.listen's max_per_address is 256)
      local c = assert(net.connect("127.0.0.1", p.port, {tls = ctx,
        timeout = 30, bind = "127.0.0." .. (i % 200 + 2)}))
      c:write(payload)
      assert(c:read("l"))
      conns[i] = c
      done = done + 1
    end)
    -- ten at a time: what stays is measured, not the peak of a burst of
    -- handshakes (freed buffers are reused, but RSS keeps the peak)
    while i - done >= 10 do task.sleep(0.001) end
  end
  for _ = 1, 6000 do
    if done == n then break end
    task.sleep(0.01)
  end
  task.sleep(0.5)
  local after = rss(p.pid)
  for _, c in pairs(conns) do c:close() end
  return (after - before) / n
end

print()
print(("| server (%d idle connections) | bytes per connection |"):format(
  IDLE))
print("|---|---|")
local p = luahost_plain()
print(("| luahost net, plain | %.0f |"):format(hold(p, IDLE, false, "x\n")))
stop(p)
p = luahost_tls("ec")
print(("| luahost net, TLS (ECDSA) | %.0f |"):format(hold(p, IDLE, true,
  "x\n")))
stop(p)
p = nginx("ec")
print(("| nginx, TLS (ECDSA), keep-alive after one request | %.0f |")
  :format(hold(p, IDLE, true, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")))
stop(p)
os.execute("rm -rf " .. q(dir))
