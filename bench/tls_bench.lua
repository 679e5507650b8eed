--[[
bench/tls_bench.lua: TLS figures, side by side with nginx (not a test:
nothing about speed is asserted). Run by `make bench` (bench/run.sh, case
"tls"), which puts its output in the report; by hand:

  usage: build/luahost bench/tls_bench.lua [seconds per run] [idle conns]
  environment: BENCH_DURATION (seconds per s_time run, default 3),
    BENCH_RUNS (default 3), BENCH_TLS_IDLE (idle connections, default
    2000), BENCH_TLS_BULK (MiB downloaded per bulk run, default 512, in
    files of 64 MiB)

Servers, each pinned to core 0, clients on core 1: luahost
`scripts/echo.lua` (handshakes, idle memory) and `scripts/http_server.lua`
(bulk) with TLS_CERT/TLS_KEY; nginx (`ssl`, one process, TLS 1.2 and 1.3:
nginx 1.22 offers only up to TLS 1.2 unless told, which made its full
handshakes cheaper than ours in earlier runs). Both leave the key
exchange groups to OpenSSL's default (X25519 first) and use the same
certificate and key.

- Handshakes, for ECDSA P-256 and RSA 2048: `openssl s_time -new` (full,
  TLS 1.3) and `-reuse` (resumed, TLS 1.2: s_time never reads, so a
  TLS 1.3 ticket, sent after the handshake, never reaches it and nothing
  resumes, with any server). Handshakes/s over the wall time s_time
  reports; the server's CPU time per handshake (utime + stime delta of
  /proc/PID/stat, all threads, over the run, divided by the count).
- Bulk: `curl` downloads a 64 MiB file of random bytes over TLS (one
  keep-alive connection, BENCH_TLS_BULK MiB per run), every byte counted;
  the server's CPU time per MiB (luahost: http.files reading the file in
  64 KiB pieces; nginx: its default buffers, no sendfile under TLS).
- Memory: N TLS connections held open, each after one round trip;
  (VmRSS after - VmRSS before) / N, for luahost TLS, plain and nginx.

Every case runs BENCH_RUNS times, interleaved (run r of every server, then
run r + 1), and each figure is the median; "±N%" is half the range of the
runs. Prints Markdown; exits 1 on a correctness failure (a server that does
not start, no handshake counted, a download of the wrong size).
]]
local net = require "net"
local task = require "task"

local SECS = tonumber(arg[1] or os.getenv("BENCH_DURATION")) or 3
local IDLE = tonumber(arg[2] or os.getenv("BENCH_TLS_IDLE")) or 2000
local RUNS = tonumber(os.getenv("BENCH_RUNS")) or 3
local FILE_MB = 64
local BULK_FILES = math.max(1, (tonumber(os.getenv("BENCH_TLS_BULK")) or 512)
  // FILE_MB)
local LUAHOST = arg[-1] or "build/luahost"
local TARGET = 1.10 -- CPU vs nginx, every case (issue 13)
local TARGET_IDLE = 20000 -- bytes per idle TLS connection

local failed = false
local function fail(msg)
  io.stderr:write("tls_bench: FAIL: ", msg, "\n")
  failed = true
end
local function say(msg) io.stderr:write("tls_bench: ", msg, "\n") end

local function sh(cmd)
  local f = assert(io.popen("(" .. cmd .. ") 2>&1"))
  local s = f:read("a")
  f:close()
  return s
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local dir = sh("mktemp -d /tmp/luahost-tlsbench.XXXXXX"):gsub("%s+$", "")
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
-- the bulk file: random bytes (nothing compresses or repeats)
os.execute("mkdir -p " .. q(file("www")))
sh(("head -c %d /dev/urandom > %s"):format(FILE_MB << 20,
  q(file("www/big.bin"))))

-- a background process: its pid (the shell execs it), output in a file
local procs = {}
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
  local p = {pid = pid, out = out, name = name}
  procs[#procs + 1] = p
  return p
end
local function wait_out(p, pat)
  for _ = 1, 1000 do
    local m = (read(p.out) or ""):match(pat)
    if m then return m end
    task.sleep(0.01)
  end
  fail(p.name .. " did not start: " .. (read(p.out) or ""))
end
local function stop(p)
  if p.pid and not p.stopped then
    os.execute("kill " .. p.pid .. " 2>/dev/null")
    p.stopped = true
  end
end
local function cpu(pid) -- seconds of utime + stime (all threads)
  local s = read("/proc/" .. pid .. "/stat") or ""
  local rest = s:match("%) (.*)$")
  if not rest then return 0 end
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  return (tonumber(f[12]) + tonumber(f[13])) / 100
end
local function rss(pid)
  return tonumber((read("/proc/" .. pid .. "/status") or "")
    :match("VmRSS:%s*(%d+)") or 0) * 1024
end
local function free_port()
  local s = assert(net.listen{port = 0})
  local _, port = s:sockname()
  s:close()
  return port
end

local function luahost(script, kind, pat, extra)
  local env = kind and ("env TLS_CERT=%s TLS_KEY=%s "):format(
    file(kind .. ".pem"), file(kind .. ".key")) or ""
  -- --log-level warn: no line per connection or request (the example
  -- scripts log one at info), as nginx runs here with access_log off
  local p = start(("taskset -c 0 %s%s --log-level warn %s 127.0.0.1 0%s")
    :format(env, LUAHOST, script, extra or ""),
    "luahost-" .. (kind or "plain") .. "-" .. script:match("(%w+)%.lua$"))
  p.port = tonumber(wait_out(p, pat))
  return p
end
local function lh_echo(kind)
  return luahost("scripts/echo.lua", kind, "listening on [%d.]+:(%d+)")
end
local function lh_files(kind)
  return luahost("scripts/http_server.lua", kind,
    "serving .- on https?://[%d.]+:(%d+)/", " " .. q(file("www")))
end
local nginx_n = 0
local function nginx(kind)
  local port = free_port()
  nginx_n = nginx_n + 1
  local name = "nginx-" .. kind .. nginx_n
  local prefix = file(name)
  os.execute("mkdir -p " .. q(prefix .. "/logs"))
  write(name .. "/nginx.conf", ([[
daemon off; master_process off; worker_processes 1;
error_log %s/logs/error.log; pid %s/nginx.pid;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_timeout 600s; keepalive_requests 1000000;
  client_body_temp_path %s/body; proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi; uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    location /hello { return 200 "hello world\n"; }
    location / { root %s; }
  }
}
]]):format(prefix, prefix, prefix, prefix, prefix, prefix, prefix, port,
    file(kind .. ".pem"), file(kind .. ".key"), file("www")))
  local p = start(("taskset -c 0 nginx -p %s -c nginx.conf"):format(
    q(prefix)), name)
  p.port = port
  for _ = 1, 300 do
    local c = net.connect("127.0.0.1", port)
    if c then
      c:close()
      return p
    end
    task.sleep(0.02)
  end
  fail(name .. " did not start: " .. (read(p.out) or ""))
  return p
end

-- statistics over the runs
local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  if #s == 0 then return nil end
  table.sort(s)
  return #s % 2 == 1 and s[(#s + 1) // 2] or (s[#s // 2] + s[#s // 2 + 1]) / 2
end
local function spread(t)
  local m = median(t)
  if not m or m == 0 or #t < 2 then return "" end
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(t) do
    lo, hi = math.min(lo, v), math.max(hi, v)
  end
  return (" ±%.0f%%"):format((hi - lo) / 2 / m * 100)
end
local function fmt(t, f)
  local m = median(t)
  if not m then return "n/a" end
  return f:format(m) .. spread(t)
end
local function verdict(r, target)
  if not r then return "" end
  return ("≤ %.2f %s"):format(target, r <= target and "met" or "MISSED")
end

-- openssl s_time against p: handshakes/s and server CPU ms per handshake
local function s_time(p, mode)
  local c0 = cpu(p.pid)
  local out = sh(("taskset -c 1 openssl s_time -connect 127.0.0.1:%d " ..
    "-%s -time %d -CAfile %s%s"):format(p.port, mode, SECS, file("ca.pem"),
    mode == "reuse" and " -tls1_2" or ""))
  local c1 = cpu(p.pid)
  local n, t = out:match("(%d+) connections in (%d+) real seconds")
  n, t = tonumber(n), tonumber(t)
  if not n or n == 0 or t == 0 then
    fail(("%s: s_time -%s counted no handshake: %s"):format(p.name, mode,
      out))
    return nil
  end
  return n / t, (c1 - c0) * 1000 / n
end

-- curl downloads BULK_FILES x 64 MiB from p over one TLS connection:
-- MiB/s and server CPU ms per MiB
local function bulk(p)
  local url = ("https://127.0.0.1:%d/big.bin"):format(p.port)
  local args = {}
  for i = 1, BULK_FILES do args[i] = "-o /dev/null " .. url end
  local c0 = cpu(p.pid)
  local out = sh(("taskset -c 1 curl -sS --http1.1 --cacert %s " ..
    "-w '%%{size_download} %%{time_total}\\n' %s"):format(
    q(file("ca.pem")), table.concat(args, " ")))
  local c1 = cpu(p.pid)
  local bytes, secs, n = 0, 0, 0
  for b, s in out:gmatch("(%d+) ([%d.]+)") do
    bytes, secs, n = bytes + tonumber(b), secs + tonumber(s), n + 1
  end
  local want = BULK_FILES * (FILE_MB << 20)
  if n ~= BULK_FILES or bytes ~= want then
    fail(("%s: downloaded %d bytes in %d files, not %d: %s"):format(p.name,
      bytes, n, want, out:sub(1, 300)))
    return nil
  end
  local mb = bytes / (1 << 20)
  return mb / secs, (c1 - c0) * 1000 / mb
end

-- memory per idle connection
local function hold(p, n, tls, payload)
  task.sleep(0.3)
  local before = rss(p.pid)
  local conns, done, bad = {}, 0, 0
  local ctx = tls and {ca = file("ca.pem")} or nil
  for i = 1, n do
    task.spawn(function()
      -- (from 200 source addresses: net.listen's max_per_address is 256)
      local c = net.connect("127.0.0.1", p.port, {tls = ctx,
        timeout = 30, bind = "127.0.0." .. (i % 200 + 2)})
      if c and c:write(payload) and c:read("l") then
        conns[i] = c
      else
        bad = bad + 1
        if c then c:close() end
      end
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
  if bad > 0 then
    fail(("%s: %d of %d idle connections failed"):format(p.name, bad, n))
  end
  return (after - before) / n
end

local KINDS = {{"ec", "ECDSA P-256"}, {"rsa", "RSA 2048"}}
local MODES = {{"new", "full (TLS 1.3)"}, {"reuse", "resumed (TLS 1.2)"}}

-- handshakes: every server up at once, runs interleaved
local hs = {} -- hs[kind][mode][srv] = {rate = {...}, cpu = {...}}
local servers = {}
for _, k in ipairs(KINDS) do
  servers[k[1]] = {luahost = lh_echo(k[1]), nginx = nginx(k[1])}
  hs[k[1]] = {}
  for _, m in ipairs(MODES) do
    hs[k[1]][m[1]] = {luahost = {rate = {}, cpu = {}},
      nginx = {rate = {}, cpu = {}}}
  end
end
local bulk_srv = {luahost = lh_files("ec"), nginx = nginx("ec")}
local bk = {luahost = {rate = {}, cpu = {}}, nginx = {rate = {}, cpu = {}}}
task.sleep(0.3)
local SRVS = {"luahost", "nginx"}
for r = 1, RUNS do
  if failed then break end
  for _, k in ipairs(KINDS) do
    for _, m in ipairs(MODES) do
      for _, s in ipairs(SRVS) do
        say(("run %d/%d: %s %s handshakes on %s"):format(r, RUNS, k[1],
          m[1], s))
        local rate, ms = s_time(servers[k[1]][s], m[1])
        if rate then
          local t = hs[k[1]][m[1]][s]
          t.rate[#t.rate + 1] = rate
          t.cpu[#t.cpu + 1] = ms
        end
      end
    end
  end
  for _, s in ipairs(SRVS) do
    say(("run %d/%d: bulk %d MiB on %s"):format(r, RUNS,
      BULK_FILES * FILE_MB, s))
    local rate, ms = bulk(bulk_srv[s])
    if rate then
      bk[s].rate[#bk[s].rate + 1] = rate
      bk[s].cpu[#bk[s].cpu + 1] = ms
    end
  end
end
for _, k in ipairs(KINDS) do
  for _, s in ipairs(SRVS) do stop(servers[k[1]][s]) end
end
for _, s in ipairs(SRVS) do stop(bulk_srv[s]) end

print(("Handshakes (`openssl s_time`, %d runs of %d s, medians; CPU lower " ..
  "is better):"):format(RUNS, SECS))
print()
print("| certificate | handshake | luahost /s | nginx /s " ..
  "| luahost CPU ms | nginx CPU ms | CPU vs nginx | target |")
print("|---|---|--:|--:|--:|--:|--:|---|")
for _, k in ipairs(KINDS) do
  for _, m in ipairs(MODES) do
    local l, n = hs[k[1]][m[1]].luahost, hs[k[1]][m[1]].nginx
    local lc, nc = median(l.cpu), median(n.cpu)
    local r = lc and nc and nc > 0 and lc / nc or nil
    print(("| %s | %s | %s | %s | %s | %s | %s | %s |"):format(k[2], m[2],
      fmt(l.rate, "%.0f"), fmt(n.rate, "%.0f"), fmt(l.cpu, "%.3f"),
      fmt(n.cpu, "%.3f"), r and ("%.2f"):format(r) or "n/a",
      verdict(r, TARGET)))
  end
end

print()
print(("Bulk transfer (`curl` downloads %d × %d MiB over one TLS 1.3 " ..
  "connection, ECDSA; %d runs, medians):"):format(BULK_FILES, FILE_MB, RUNS))
print()
print("| server | MiB/s | server CPU ms/MiB | CPU vs nginx | target |")
print("|---|--:|--:|--:|---|")
do
  local lc, nc = median(bk.luahost.cpu), median(bk.nginx.cpu)
  local r = lc and nc and nc > 0 and lc / nc or nil
  print(("| luahost scripts/http_server.lua | %s | %s | %s | %s |"):format(
    fmt(bk.luahost.rate, "%.0f"), fmt(bk.luahost.cpu, "%.3f"),
    r and ("%.2f"):format(r) or "n/a", verdict(r, TARGET)))
  print(("| nginx | %s | %s | 1.00 | |"):format(fmt(bk.nginx.rate, "%.0f"),
    fmt(bk.nginx.cpu, "%.3f")))
end

print()
print(("Memory (%d connections held open after one round trip each, one " ..
  "run on a fresh server):"):format(IDLE))
print()
print("| server | bytes per idle connection | target |")
print("|---|--:|---|")
if not failed then
  local p = lh_echo(nil)
  print(("| luahost net, plain | %.0f | |"):format(hold(p, IDLE, false,
    "x\n")))
  stop(p)
  p = lh_echo("ec")
  local b = hold(p, IDLE, true, "x\n")
  print(("| luahost net, TLS (ECDSA) | %.0f | ≤ %d %s |"):format(b,
    TARGET_IDLE, b <= TARGET_IDLE and "met" or "MISSED"))
  stop(p)
  p = nginx("ec")
  print(("| nginx, TLS (ECDSA), keep-alive after one request | %.0f | |")
    :format(hold(p, IDLE, true, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")))
  stop(p)
end
for _, p in ipairs(procs) do stop(p) end
os.execute("rm -rf " .. q(dir))
os.exit(failed and 1 or 0)
