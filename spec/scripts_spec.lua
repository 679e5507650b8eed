-- The example scripts (scripts/*.lua), each run as a separate build/luahost
-- process on an ephemeral port and driven by real third-party clients from
-- Debian (socat, nc, curl, ab, redis-cli, redis-benchmark, nginx, ...).
-- Every process is bounded by `timeout` and stopped by its PID after the test.

local lfs = require "lfs"

local uv = require "uv"

-- {====================================================================
-- Processes
-- =====================================================================

local q = shell_quote
local LIMIT = 120 -- seconds any started process may live, whatever happens

local have = require("common").have

-- Run a shell command line to completion (bounded); returns stdout, status.
local sh = require("common").sh

local slurp = require("common").slurp

-- Wall-clock seconds (float), for bounds on how long something took.
local function task_now()
  return require("uv").hrtime() / 1e9
end

local function write_file(name, text)
  local f = assert(io.open(name, "wb"))
  f:write(text)
  f:close()
  return name
end

-- Start `cmd` (a shell command line) in the background; stdout is ours to
-- read line by line (proc:line()), stderr goes to proc.errfile, stdin comes
-- from opts.stdin (a file name, default /dev/null). The process runs under
-- `timeout`, so a spec that dies cannot leave it behind for long.
local Proc = {}
Proc.__index = Proc

local function start(cmd, opts)
  opts = opts or {}
  local errfile = tmpname()
  local line = ("echo $$; exec timeout -s KILL %d %s <%s 2>%s"):format(
    opts.limit or LIMIT, cmd, q(opts.stdin or "/dev/null"), q(errfile))
  local p = assert(io.popen("exec sh -c " .. q(line)))
  local pid = tonumber(p:read("l"))
  assert(pid, "start: no pid from the shell")
  return setmetatable({pid = pid, out = p, errfile = errfile, cmd = cmd,
    signal = opts.signal or "KILL"}, Proc)
end

-- The next line of the process's stdout, or nil at its end. Bounded: the
-- process dies at its time limit, which ends the pipe.
function Proc:line()
  return self.out:read("l")
end

function Proc:stderr()
  return slurp(self.errfile)
end

-- Stop the process (the `timeout` wrapper and the command it runs, both by
-- PID) and wait for it; returns its exit status. The command gets
-- opts.signal (default KILL: a server under test owes us no clean exit;
-- TERM for daemons with children, such as nginx, which stop them).
function Proc:stop()
  if self.stopped then return self.status end
  self.stopped = true
  local kids = slurp(("/proc/%d/task/%d/children"):format(self.pid,
    self.pid))
  for child in kids:gmatch("%d+") do
    os.execute(("kill -%s %s 2>/dev/null"):format(self.signal, child))
  end
  -- after KILL, timeout may go; a gentler signal is left to do its work
  -- (timeout's own limit still bounds the wait)
  if self.signal == "KILL" then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  end
  local _, _, code = self.out:close()
  self.status = code
  return code
end

-- Start a luahost script; waits for its first stdout line (the address it
-- listens on) and returns the process and the port read from that line.
local function start_script(script, args, opts)
  local words = {q(LUAHOST), q(script)}
  for _, a in ipairs(args or {}) do words[#words + 1] = q(a) end
  local proc = start(table.concat(words, " "), opts)
  local first = proc:line()
  if not first then
    local err = proc:stderr()
    proc:stop()
    error(("%s printed nothing; stderr:\n%s"):format(script, err), 2)
  end
  proc.first = first
  -- the first port in the line (after "]" for an IPv6 address)
  local port = tonumber(first:match("%]:(%d+)") or first:match(":(%d+)"))
  return proc, port
end

-- Run a script to completion (bounded): stdout, stderr, status.
local function run_script(script, args, input)
  local words = {script}
  for _, a in ipairs(args or {}) do words[#words + 1] = a end
  return run_host(words, input)
end

-- Clean-ups for the running test, run in reverse order after it, pass or
-- fail (busted keeps only one finally() per test, so they are kept here).
local cleanups = {}
local function defer(fn) cleanups[#cleanups + 1] = fn end

after_each(function()
  local list = cleanups
  cleanups = {}
  for i = #list, 1, -1 do list[i]() end
end)

-- Several servers per test: start them through `with`, which stops each
-- (by PID) after the test.
local function servers()
  return function(p, ...)
    defer(function() p:stop() end)
    return p, ...
  end
end

-- }====================================================================

-- A server's stderr must stay free of errors while it is driven.
-- Then it is stopped with SIGINT: the host shuts down in order and exits
-- 130, and under ASan its leak check runs on the way out.
local function assert_quiet(proc)
  proc.signal = "INT"
  local code = proc:stop()
  local err = proc:stderr():gsub("luahost: interrupted!\n", "")
  assert.equal(130, code, err)
  for _, bad in ipairs{"luahost:", "traceback", "runtime error",
                       "AddressSanitizer", "LeakSanitizer"} do
    assert.is_nil(err:find(bad, 1, true), err)
  end
end

-- Run n copies of a client command line at once (each with $i set to its
-- number, output in DIR/out.$i); returns the directory.
local function parallel(n, cmd)
  local dir = os.tmpname()
  os.remove(dir)
  assert(lfs.mkdir(dir))
  defer(function() os.execute("rm -rf " .. q(dir)) end)
  local script = ("cd %s && for i in $(seq %d); do (%s) >out.$i 2>&1 & " ..
    "done; wait"):format(q(dir), n, cmd)
  sh(script, 60)
  return dir
end

describe("scripts on a port already taken", function()
  it("say which address could not be bound (net.assert, http.assert)",
     function()
    local taken = uv.new_tcp()
    assert(taken:bind("127.0.0.1", 0))
    assert(taken:listen(1, function() end))
    local port = taken:getsockname().port
    finally(function() taken:close() end)
    for _, script in ipairs{"echo", "chat", "http_server", "ws_chat"} do
      local _, err, code = run_host({"scripts/" .. script .. ".lua",
        "127.0.0.1", tostring(port)})
      assert.equal(1, code, script)
      assert.matches(("listen 127.0.0.1:%d: EADDRINUSE (address already " ..
        "in use)"):format(port), err, 1, true)
    end
  end)
end)

describe("scripts/echo.lua", function()
  it("echoes lines to socat and bytes to nc, then to 100 clients at once",
     function()
    local with = servers()
    local p, port = start_script("scripts/echo.lua", {"127.0.0.1", "0"})
    with(p)
    assert.matches("^listening on 127%.0%.0%.1:%d+$", p.first)
    local out = sh(("printf 'hello\\nworld\\n' | socat -t 5 - TCP:127.0.0.1:%d")
      :format(port))
    assert.equal("hello\nworld\n", out)
    out = sh(("printf 'no newline' | nc -N 127.0.0.1 %d"):format(port))
    assert.equal("no newline", out)

    local dir = parallel(100, ("printf 'client %%s\\n' $i | " ..
      "socat -t 5 - TCP:127.0.0.1:%d"):format(port))
    for i = 1, 100 do
      assert.equal(("client %d\n"):format(i), slurp(dir .. "/out." .. i))
    end
    assert_quiet(p)
  end)

  it("echoes 2 MiB of binary data intact (backpressure both ways)",
     function()
    local with = servers()
    local p, port = start_script("scripts/echo.lua", {"127.0.0.1", "0"})
    with(p)
    local src, dst = tmpname(), tmpname()
    sh(("head -c 2097152 /dev/urandom > %s"):format(q(src)))
    sh(("socat -t 10 - TCP:127.0.0.1:%d < %s > %s"):format(
      port, q(src), q(dst)), 60)
    assert.equal(2097152, lfs.attributes(dst, "size"))
    assert.is_true(slurp(src) == slurp(dst), "echoed data differs")
    assert_quiet(p)
  end)

  it("survives peers that reset, vanish or never speak", function()
    local with = servers()
    local p, port = start_script("scripts/echo.lua", {"127.0.0.1", "0"})
    with(p)
    -- connect and leave at once; connect, send, and reset (linger 0)
    sh(("nc -z 127.0.0.1 %d"):format(port))
    sh(("head -c 100000 /dev/zero | socat -t 0 -u - " ..
        "TCP:127.0.0.1:%d,linger=0"):format(port))
    local silent = with(start(("socat -u TCP:127.0.0.1:%d -"):format(port),
      {stdin = "/dev/null"}))
    assert.truthy(silent.pid)
    local out = sh(("printf 'still here\\n' | socat -t 5 - TCP:127.0.0.1:%d")
      :format(port))
    assert.equal("still here\n", out)
    assert_quiet(p)
  end)
end)

describe("scripts/udp_echo.lua", function()
  it("echoes datagrams to socat and nc, and to 100 clients at once",
     function()
    local with = servers()
    local p, port = start_script("scripts/udp_echo.lua", {"127.0.0.1", "0"})
    with(p)
    assert.matches("^listening on 127%.0%.0%.1:%d+$", p.first)
    local out = sh(("printf 'ping' | socat -t 0.5 - UDP:127.0.0.1:%d")
      :format(port))
    assert.equal("ping", out)
    out = sh(("printf 'pong' | nc -u -w 1 127.0.0.1 %d"):format(port))
    assert.equal("pong", out)
    local dir = parallel(100, ("printf 'datagram %%s' $i | " ..
      "socat -t 1 - UDP:127.0.0.1:%d"):format(port))
    local got = 0
    for i = 1, 100 do
      if slurp(dir .. "/out." .. i) == ("datagram %d"):format(i) then
        got = got + 1
      end
    end
    -- loopback does not drop datagrams unless a buffer overflows; allow a
    -- few for 100 clients on a loaded machine, not more
    assert.is_true(got >= 95, got .. " of 100 datagrams came back")
    assert_quiet(p)
  end)
end)

-- {====================================================================
-- HTTP
-- =====================================================================

-- A document root for the server: files of several types, a directory
-- with an index, one without, a link inside and links pointing out.
local function make_root()
  local base = os.tmpname()
  os.remove(base)
  assert(lfs.mkdir(base))
  defer(function() os.execute("rm -rf " .. q(base)) end)
  local root = base .. "/www"
  assert(lfs.mkdir(root))
  write_file(base .. "/secret.txt", "outside the root\n")
  write_file(root .. "/index.html", "<h1>home</h1>\n")
  write_file(root .. "/a.txt", "plain text\n")
  write_file(root .. "/style.css", "body{}\n")
  write_file(root .. "/data.json", "{}\n")
  write_file(root .. "/blob.bin", "\0\1\2")
  write_file(root .. "/with space.txt", "spaced\n")
  assert(lfs.mkdir(root .. "/docs"))
  write_file(root .. "/docs/index.html", "<h1>docs</h1>\n")
  assert(lfs.mkdir(root .. "/empty"))
  write_file(root .. "/empty/x.lua", "return 1\n")
  assert(lfs.link("a.txt", root .. "/inside-link.txt", true))
  assert(lfs.link("../secret.txt", root .. "/escape.txt", true))
  assert(lfs.link(base, root .. "/up", true))
  return root, base
end

local function curl(args, secs)
  return sh("curl -sS --max-time " .. (secs or 10) .. " " .. args, 30)
end

-- Send raw bytes and collect what the server answers until it closes
-- (or 5 s of silence).
local function raw(port, bytes)
  local f = tmpname()
  write_file(f, bytes)
  return sh(("socat -t 5 -T 5 - TCP:127.0.0.1:%d < %s"):format(port, q(f)))
end

describe("scripts/http_server.lua", function()
  local with, p, port, root, base

  before_each(function()
    with = servers()
    root, base = make_root()
    p, port = start_script("scripts/http_server.lua",
      {"127.0.0.1", "0", root})
    with(p)
  end)

  it("prints the URL it serves and answers /hello", function()
    assert.matches("^serving .* on http://127%.0%.0%.1:%d+/$", p.first)
    local out, code = curl(("-i http://127.0.0.1:%d/hello"):format(port))
    assert.equal(0, code, out)
    assert.matches("^HTTP/1%.1 200 OK\r\n", out)
    assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d " ..
      "GMT\r\n", out)
    assert.matches("\r\nContent%-Length: 12\r\n", out)
    assert.matches("\r\n\r\nhello world\n$", out)
    assert_quiet(p)
  end)

  it("keeps one connection for several URLs (curl reuses it)", function()
    local u = ("http://127.0.0.1:%d"):format(port)
    local out, code = curl(("-v %s/hello %s/a.txt %s/docs/ -o /dev/null " ..
      "-o /dev/null -o /dev/null"):format(u, u, u))
    assert.equal(0, code, out)
    local _, reused = out:gsub("Re%-using existing connection", "")
    assert.equal(2, reused, out)
    local _, connects = out:gsub("Connected to", "")
    assert.equal(1, connects, out)
  end)

  it("answers pipelined requests in order on one connection", function()
    local out = raw(port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" ..
      "HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n" ..
      "GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local statuses = {}
    for s in out:gmatch("HTTP/1%.1 (%d+)") do statuses[#statuses + 1] = s end
    assert.same({"200", "200", "200"}, statuses)
    -- hello, then a HEAD with a length but no body, then the file
    assert.matches("hello world\n.*Content%-Length: 11.-\r\n\r\n" ..
      "HTTP/1%.1 200.-\r\n\r\nplain text\n$", out)
    assert.matches("Connection: close\r\n", out)
  end)

  it("reads Content-Length and chunked bodies (POST /echo)", function()
    local u = ("http://127.0.0.1:%d/echo"):format(port)
    local out = curl(("--data-binary 'name=value&x=1' %s"):format(u))
    assert.equal("name=value&x=1", out)
    out = curl(("-H 'Transfer-Encoding: chunked' --data-binary " ..
      "'chunked body' %s"):format(u))
    assert.equal("chunked body", out)
    -- a body big enough for curl to send Expect: 100-continue
    local big = tmpname()
    sh(("head -c 200000 /dev/urandom > %s"):format(q(big)))
    local got = tmpname()
    out = curl(("-v -H 'Expect: 100-continue' --data-binary @%s %s -o %s")
      :format(q(big), u, q(got)))
    assert.matches("100 Continue", out)
    assert.is_true(slurp(big) == slurp(got), "echoed body differs")
    -- a chunked body with extensions and a trailer, by hand
    out = raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\n" ..
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" ..
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert.matches("^HTTP/1%.1 200 OK\r\n.*\r\n\r\nhello world$", out)
  end)

  it("serves HEAD like GET without the body", function()
    local out = curl(("-I http://127.0.0.1:%d/a.txt"):format(port))
    assert.matches("^HTTP/1%.1 200 OK\r\n", out)
    assert.matches("Content%-Length: 11\r\n", out)
    assert.matches("Content%-Type: text/plain", out)
    assert.matches("Last%-Modified: ", out)
  end)

  it("serves files with their content types, indexes and listings",
     function()
    local u = ("http://127.0.0.1:%d"):format(port)
    local function ctype(path)
      return curl(("-o /dev/null -w '%%{http_code} %%{content_type}' %s%s")
        :format(u, path))
    end
    assert.equal("200 text/plain; charset=utf-8", ctype("/a.txt"))
    assert.equal("200 text/css", ctype("/style.css"))
    assert.equal("200 application/json", ctype("/data.json"))
    assert.equal("200 application/octet-stream", ctype("/blob.bin"))
    assert.equal("200 text/html; charset=utf-8", ctype("/"))
    assert.equal("<h1>home</h1>\n", curl(u .. "/"))
    assert.equal("<h1>docs</h1>\n", curl(u .. "/docs/"))
    assert.equal("spaced\n", curl(u .. "/with%20space.txt"))
    assert.equal("plain text\n", curl(u .. "/inside-link.txt"))
    assert.equal("301", curl(("-o /dev/null -w '%%{http_code}' %s/docs")
      :format(u)))
    assert.equal("<h1>docs</h1>\n", curl("-L " .. u .. "/docs"))
    local listing = curl(u .. "/empty/")
    assert.matches('<a href="x.lua">x.lua</a>', listing, 1, true)
    assert.equal("404", curl(("-o /dev/null -w '%%{http_code}' %s/nope")
      :format(u)))
  end)

  it("streams a big file intact, to a fast and to a slow client",
     function()
    local file = root .. "/big.bin"
    sh(("head -c 3000000 /dev/urandom > %s"):format(q(file)))
    local got = tmpname()
    local u = ("http://127.0.0.1:%d/big.bin"):format(port)
    assert.equal("", curl(("-o %s %s"):format(q(got), u)))
    assert.is_true(slurp(got) == slurp(file), "big.bin differs")
    -- 3 MB at 3 MB/s: the server's writes wait for the client
    assert.equal("", curl(("--limit-rate 3M -o %s %s"):format(q(got), u)))
    assert.is_true(slurp(got) == slurp(file), "big.bin differs (slow)")
    assert_quiet(p)
  end)

  it("answers If-Modified-Since with 304", function()
    local u = ("http://127.0.0.1:%d/a.txt"):format(port)
    local head = curl("-I " .. u)
    local lm = head:match("Last%-Modified: ([^\r]+)")
    assert.truthy(lm, head)
    local out = curl(("-i -H 'If-Modified-Since: %s' %s"):format(lm, u))
    assert.matches("^HTTP/1%.1 304 Not Modified\r\n", out)
    assert.matches("\r\n\r\n$", out)
    out = curl(("-i -H 'If-Modified-Since: Mon, 01 Jan 1990 00:00:00 GMT' " ..
      "%s"):format(u))
    assert.matches("^HTTP/1%.1 200 OK\r\n.*plain text\n$", out)
  end)

  it("never serves anything outside the root", function()
    local function status(path)
      -- --path-as-is: curl must not squash the dots itself
      return curl(("--path-as-is -o /dev/null -w '%%{http_code}' " ..
        "http://127.0.0.1:%d%s"):format(port, path))
    end
    for _, path in ipairs{"/../secret.txt", "/docs/../../secret.txt",
        "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/docs/%2e%2e/%2e%2e/" ..
        "secret.txt", "/..%2fsecret.txt", "/escape.txt", "/up/secret.txt"} do
      local code = status(path)
      assert.is_true(code == "403" or code == "404" or code == "400",
        path .. " gave " .. code)
    end
    local out = raw(port, "GET /../secret.txt HTTP/1.0\r\n\r\n")
    assert.is_nil(out:find("outside the root", 1, true))
  end)

  it("rejects bad requests with 400, 405, 413, 414 and 431", function()
    local function first(bytes)
      return (raw(port, bytes):match("^HTTP/1%.1 (%d+)"))
    end
    assert.equal("400", first("NONSENSE\r\n\r\n"))
    assert.equal("400", first("GET / HTTP/1.1\r\n\r\n")) -- no Host
    assert.equal("400", first("GET / HTTP/1.1\r\nHost: x\r\n" ..
      "bad header\r\n\r\n"))
    assert.equal("400", first("POST /echo HTTP/1.1\r\nHost: x\r\n" ..
      "Content-Length: nope\r\n\r\n"))
    assert.equal("400", first("POST /echo HTTP/1.1\r\nHost: x\r\n" ..
      "Transfer-Encoding: chunked\r\n\r\nzz\r\n"))
    assert.equal("405", first("DELETE /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.equal("405", first("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.equal("413", first("POST /echo HTTP/1.1\r\nHost: x\r\n" ..
      "Content-Length: 99999999\r\n\r\n"))
    assert.equal("414", first("GET /" .. ("a"):rep(9000) ..
      " HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.equal("431", first("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " ..
      ("b"):rep(9000) .. "\r\n\r\n"))
    local many = {"GET / HTTP/1.1\r\nHost: x\r\n"}
    for i = 1, 150 do many[#many + 1] = "X-H" .. i .. ": v\r\n" end
    many[#many + 1] = "\r\n"
    assert.equal("431", first(table.concat(many)))
    local out = curl(("-s -o /dev/null -w '%%{http_code}' -X PUT " ..
      "http://127.0.0.1:%d/a.txt"):format(port))
    assert.equal("405", out)
    -- and the server still answers
    assert.equal("hello world\n", curl(("http://127.0.0.1:%d/hello")
      :format(port)))
    assert_quiet(p)
  end)

  it("serves ab -k -n 2000 -c 20 with no failed or non-2xx answer",
     function()
    local out, code = sh(("ab -q -k -n 2000 -c 20 " ..
      "http://127.0.0.1:%d/hello 2>&1"):format(port), 120)
    assert.equal(0, code, out)
    assert.matches("Complete requests:%s+2000\n", out)
    assert.matches("Failed requests:%s+0\n", out)
    assert.matches("Keep%-Alive requests:%s+2000\n", out)
    assert.is_nil(out:find("Non%-2xx responses"), out)
    assert_quiet(p)
  end)
end)

-- {====================================================================
-- Redis protocol
-- =====================================================================

local function redis_cli(port, args, input)
  local cmd = ("redis-cli -p %d %s"):format(port, args)
  if input then
    local f = tmpname()
    write_file(f, input)
    cmd = cmd .. " < " .. q(f)
  end
  return sh(cmd, 30)
end

describe("scripts/kv_server.lua", function()
  local with, p, port
  before_each(function()
    with = servers()
    p, port = start_script("scripts/kv_server.lua", {"127.0.0.1", "0"})
    with(p)
  end)

  it("answers redis-cli: strings, counters, keys, expiry", function()
    assert.matches("^listening on 127%.0%.0%.1:%d+$", p.first)
    local function cli(args) return (redis_cli(port, args)) end
    assert.equal("PONG\n", cli("ping"))
    assert.equal("hi there\n", cli("ping 'hi there'"))
    assert.equal("echoed\n", cli("echo echoed"))
    assert.equal("OK\n", cli("set k1 v1"))
    assert.equal("v1\n", cli("get k1"))
    assert.equal("\n", cli("get missing"))
    assert.equal("\n", cli("set k1 other nx"))
    assert.equal("v1\n", cli("get k1"))
    assert.equal("OK\n", cli("set k1 v2 xx"))
    assert.equal("\n", cli("set k2 v xx"))
    assert.equal("0\n", cli("exists k2"))
    assert.equal("1\n", cli("incr n"))
    assert.equal("2\n", cli("incr n"))
    assert.equal("OK\n", cli("set n 10"))
    assert.equal("11\n", cli("incr n"))
    assert.equal("10\n", cli("decr n"))
    assert.matches("ERR value is not an integer", cli("incr k1"))
    assert.equal("OK\n", cli("set t x ex 100"))
    assert.equal("100\n", cli("ttl t"))
    assert.equal("-1\n", cli("ttl k1"))
    assert.equal("-2\n", cli("ttl missing"))
    assert.equal("1\n", cli("expire k1 1000"))
    assert.equal("0\n", cli("expire missing 10"))
    assert.equal("OK\n", cli("set gone x px 50"))
    assert.equal("OK\n", cli("set user:1 a"))
    assert.equal("OK\n", cli("set user:2 b"))
    assert.equal("OK\n", cli("set user:10 c"))
    assert.equal("user:1\nuser:10\nuser:2\n", cli("keys 'user:*'"))
    assert.equal("user:1\nuser:2\n", cli("keys 'user:?'"))
    assert.equal("user:1\nuser:2\n", cli("keys 'user:[12]'"))
    assert.equal("3\n", cli("exists user:1 user:2 user:1"))
    assert.equal("2\n", cli("del user:1 user:2 nope"))
    -- the key set with PX 50 goes away (bounded wait: 40 x 50 ms)
    local left
    for _ = 1, 40 do
      left = cli("exists gone")
      if left == "0\n" then break end
      os.execute("sleep 0.05")
    end
    assert.equal("0\n", left)
    assert.equal("\n", cli("get gone"))
    -- k1 n t user:10
    assert.equal("4\n", cli("dbsize"))
    assert.equal("OK\n", cli("flushall"))
    assert.equal("0\n", cli("dbsize"))
    assert_quiet(p)
  end)

  it("gives RESP errors for unknown commands, arity and syntax", function()
    local function cli(args) return (redis_cli(port, args)) end
    assert.matches("^ERR unknown command 'nosuch', with args beginning " ..
      "with: 'a' 'b'", cli("nosuch a b"))
    assert.matches("^ERR wrong number of arguments for 'get' command",
      cli("get"))
    assert.matches("^ERR wrong number of arguments for 'set' command",
      cli("set onlykey"))
    assert.matches("^ERR syntax error", cli("set k v nx xx"))
    assert.matches("^ERR invalid expire time", cli("set k v ex -5"))
    -- the connection still works after errors, in one session
    local out = redis_cli(port, "", "nosuch\nset a 1\nget\nget a\n")
    assert.matches("ERR unknown command.*OK\n.*ERR wrong number.*\n1\n$",
      out)
  end)

  it("answers pipelined and inline commands and QUIT", function()
    local out = raw(port, "*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n" ..
      "$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" ..
      "EXISTS k\r\nQUIT\r\nPING\r\n")
    -- QUIT answers OK and closes: the last PING gets nothing
    assert.equal("+PONG\r\n+OK\r\n$5\r\nhello\r\n:1\r\n+OK\r\n", out)
    out = raw(port, "*x\r\n")
    assert.matches("^%-ERR Protocol error", out)
    assert_quiet(p)
  end)

  it("serves redis-benchmark -t set,get,incr -n 20000 -P 16", function()
    local out, code = sh(("redis-benchmark -p %d -t set,get,incr -n 20000 " ..
      "-P 16 -q 2>&1"):format(port), 120)
    assert.equal(0, code, out)
    for _, name in ipairs{"SET", "GET", "INCR"} do
      assert.matches(name .. ": [%d.]+ requests per second", out)
    end
    assert.is_nil(out:lower():find("error"), out)
    -- every INCR was answered and counted: key "counter:__rand_int__"
    assert.equal("20000\n", (redis_cli(port, "get counter:__rand_int__")))
    assert_quiet(p)
  end)
end)

-- {====================================================================
-- Chat
-- =====================================================================

-- A socat client whose stdin is a FIFO we write to (c:say) and whose
-- stdout we read (c:wait_for); socat flags and address options optional.
local function chat_client(with, port, nick, flags, addropts)
  local fifo = tmpname()
  os.remove(fifo)
  assert(os.execute("mkfifo " .. q(fifo)))
  local c = with(start(("socat %s - TCP:127.0.0.1:%d%s"):format(
    flags or "", port, addropts or ""), {stdin = fifo, limit = 60}))
  -- opening the write end waits for socat to open the read end
  c.input = assert(io.open(fifo, "w"))
  c.input:setvbuf("no")
  local stop = c.stop
  function c.stop(self)
    if self.input then self.input:close() self.input = nil end
    return stop(self)
  end
  function c.say(self, line) self.input:write(line, "\n") end
  -- Read lines until one contains `text`; returns the lines read before
  -- it. Bounded: the client dies at its time limit, which ends the pipe.
  function c.wait_for(self, text)
    local seen = {}
    while true do
      local line = self:line()
      if not line then
        error(("never saw %q; got:\n%s"):format(text,
          table.concat(seen, "\n")), 2)
      end
      if line:find(text, 1, true) then return seen, line end
      seen[#seen + 1] = line
    end
  end
  if nick then c:say(nick) end
  return c
end

describe("scripts/chat.lua", function()
  it("names, join and leave notices, broadcast to the others", function()
    local with = servers()
    local p, port = with(start_script("scripts/chat.lua", {"127.0.0.1", "0"}))
    local alice = chat_client(with, port, "alice")
    alice:wait_for("welcome alice; here: alice")
    local bob = chat_client(with, port, "bad nick!")
    bob:wait_for("letters, digits")
    bob:say("alice")
    bob:wait_for("alice is taken")
    bob:say("bob")
    bob:wait_for("welcome bob; here: alice, bob")
    alice:wait_for("* bob has joined")
    bob:say("hello alice")
    alice:wait_for("bob: hello alice")
    alice:say("hi bob")
    local before = bob:wait_for("alice: hi bob")
    -- bob never hears his own line
    for _, l in ipairs(before) do assert.is_nil(l:find("bob: hello")) end
    alice:say("/who")
    alice:wait_for("here: alice, bob")
    bob:say("/quit")
    alice:wait_for("* bob has left")
    assert.is_nil(bob:line()) -- the server closed bob's connection
    assert_quiet(p)
  end)

  it("a client that stops reading does not stall the others", function()
    local with = servers()
    local p, port = with(start_script("scripts/chat.lua", {"127.0.0.1", "0"}))
    local alice = chat_client(with, port, "alice")
    alice:wait_for("welcome alice")
    -- socat -u only writes to the socket: it never reads what the room
    -- sends, and its small receive buffer fills at once
    local slow = chat_client(with, port, "slow", "-u", ",rcvbuf=4096")
    alice:wait_for("* slow has joined")
    assert.truthy(slow.pid)
    -- bob floods the room from a file with more than the kernel buffers
    -- for the slow client (up to tcp_wmem's maximum on the sending side)
    -- and the chat's queue limit (1 MiB) together: at least 8 MB
    local wmem = tonumber(slurp("/proc/sys/net/ipv4/tcp_wmem"):match(
      "(%d+)%s*$")) or 4194304
    local n, lines = math.max(40000, (2 * wmem + 2 * 1048576) // 200), {"bob"}
    local pad = ("x"):rep(180)
    for i = 1, n do lines[#lines + 1] = ("%05d %s"):format(i, pad) end
    lines[#lines + 1] = "END\n"
    local file = write_file(tmpname(), table.concat(lines, "\n"))
    -- (a two-way socat: one that never reads would reset the connection
    -- when it closes, and the kernel would drop what bob sent last)
    with(start(("socat -t 10 - TCP:127.0.0.1:%d"):format(port),
      {stdin = file}))
    local got, seen_slow_left = 0, false
    local before = alice:wait_for("bob: END")
    for _, l in ipairs(before) do
      if l:find("^bob: %d+ x") then got = got + 1 end
      if l:find("* slow has left", 1, true) then seen_slow_left = true end
    end
    assert.equal(n, got)
    -- the slow client was dropped once its queue passed the limit
    assert.is_true(seen_slow_left, "slow client was never dropped")
    assert_quiet(p)
  end)
end)

-- {====================================================================
-- Real peers: nginx and redis-server on free loopback ports
-- =====================================================================

-- A port nobody listens on (bound, read back, closed).
local free_port = require("common").free_port

local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(lfs.mkdir(dir))
  defer(function() os.execute("rm -rf " .. q(dir)) end)
  return dir
end

-- nginx in the foreground with its own prefix (config, pid, logs, temp
-- files), serving `root` on a free port; ready when its log (our stdout)
-- says the workers started. Returns the process and the port.
local function start_nginx(with, root)
  local prefix = tmpdir()
  local port = free_port()
  write_file(prefix .. "/nginx.conf", ([[
daemon off;
worker_processes 1;
pid %s/nginx.pid;
error_log /dev/stdout notice;
events { worker_connections 64; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  server {
    listen 127.0.0.1:%d;
    root %s;
    location = /go { return 302 /a.txt; }
    location = /loop { return 302 /loop; }
    location /list/ { alias %s/; autoindex on; }
  }
}
]]):format(prefix, prefix, prefix, prefix, prefix, prefix, port, root,
    root))
  local p = with(start(("nginx -p %s -c %s/nginx.conf -e %s/error.log")
    :format(q(prefix), q(prefix), q(prefix)), {signal = "TERM"}))
  while true do
    local line = p:line()
    if not line then
      error("nginx did not start:\n" .. slurp(prefix .. "/error.log") ..
        p:stderr())
    end
    if line:find("start worker process", 1, true) then break end
  end
  return p, port
end

-- redis-server on a free port, no persistence; ready when it says so.
local function start_redis(with)
  local port = free_port()
  local p = with(start(("redis-server --bind 127.0.0.1 --port %d " ..
    "--save '' --appendonly no --dir %s"):format(port, q(tmpdir()))))
  while true do
    local line = p:line()
    if not line then error("redis-server did not start:\n" .. p:stderr()) end
    if line:find("Ready to accept connections", 1, true) then break end
  end
  return p, port
end

-- {====================================================================
-- HTTP client
-- =====================================================================

describe("scripts/http_get.lua", function()
  it("fetches from http_server.lua: body, -i, -I, redirects, 404",
     function()
    local with = servers()
    local root = make_root()
    local _, port = with(start_script("scripts/http_server.lua",
      {"127.0.0.1", "0", root}))
    local u = ("http://127.0.0.1:%d"):format(port)
    local out, err, code = run_script("scripts/http_get.lua", {u .. "/hello"})
    assert.equal(0, code, err)
    assert.equal("hello world\n", out)
    out, err, code = run_script("scripts/http_get.lua", {"-i", u .. "/a.txt"})
    assert.equal(0, code, err)
    assert.matches("^HTTP/1%.1 200 OK\r\n.*Content%-Type: text/plain.*" ..
      "\r\n\r\nplain text\n$", out)
    out, err, code = run_script("scripts/http_get.lua", {"-I", u .. "/a.txt"})
    assert.equal(0, code, err)
    assert.matches("^HTTP/1%.1 200 OK\r\n.*Content%-Length: 11\r\n.*\r\n\r\n$",
      out)
    -- /docs redirects to /docs/ (a relative Location)
    out, err, code = run_script("scripts/http_get.lua", {u .. "/docs"})
    assert.equal(0, code, err)
    assert.equal("<h1>docs</h1>\n", out)
    out, err, code = run_script("scripts/http_get.lua", {"-r", "0", "-i",
      u .. "/docs"})
    assert.equal(0, code, err)
    assert.matches("^HTTP/1%.1 301 ", out)
    out, err, code = run_script("scripts/http_get.lua", {u .. "/nope"})
    assert.equal(1, code)
    assert.matches("404", err)
  end)

  it("fetches from nginx: files, redirects, chunked bodies, HEAD",
     function()
    if not have("nginx") then pending("nginx is not installed") return end
    local with = servers()
    local root = make_root()
    local _, port = start_nginx(with, root)
    local u = ("http://127.0.0.1:%d"):format(port)
    local out, err, code = run_script("scripts/http_get.lua", {u .. "/a.txt"})
    assert.equal(0, code, err)
    assert.equal("plain text\n", out)
    -- 302 with an absolute path, then nginx's own 301 for a directory
    out, err, code = run_script("scripts/http_get.lua", {"-i", u .. "/go"})
    assert.equal(0, code, err)
    assert.matches("^HTTP/1%.1 302 .*Location: .*HTTP/1%.1 200 OK.*" ..
      "plain text\n$", out)
    out, err, code = run_script("scripts/http_get.lua", {u .. "/docs"})
    assert.equal(0, code, err)
    assert.equal("<h1>docs</h1>\n", out)
    -- autoindex pages are sent chunked
    out, err, code = run_script("scripts/http_get.lua", {"-i",
      u .. "/list/empty/"})
    assert.equal(0, code, err)
    assert.matches("Transfer%-Encoding: chunked", out)
    assert.matches('<a href="x.lua">x.lua</a>', out, 1, true)
    assert.matches("</html>\r?\n$", out)
    out, err, code = run_script("scripts/http_get.lua", {"-I", u .. "/a.txt"})
    assert.equal(0, code, err)
    assert.matches("^HTTP/1%.1 200 OK\r\n.*Content%-Length: 11\r\n", out)
    assert.matches("\r\n\r\n$", out)
    out, err, code = run_script("scripts/http_get.lua", {u .. "/loop"})
    assert.equal(2, code)
    assert.matches("too many redirects", err)
    out, err, code = run_script("scripts/http_get.lua", {u .. "/missing"})
    assert.equal(1, code)
    assert.matches("404", err)
    assert.truthy(out)
  end)

  it("reports refused connections, timeouts and bad URLs", function()
    local port = free_port()
    local _, err, code = run_script("scripts/http_get.lua",
      {("http://127.0.0.1:%d/"):format(port)})
    assert.equal(2, code)
    assert.matches("ECONNREFUSED", err)
    _, err, code = run_script("scripts/http_get.lua", {"https://example/"})
    assert.equal(2, code)
    assert.matches("only http://", err)
    -- a server that accepts and never answers
    local with = servers()
    local silent = write_file(tmpname(), [[
      local net = require "net"
      local s = assert(net.listen{host = "127.0.0.1", port = 0})
      print("listening on 127.0.0.1:" .. select(2, s:sockname()))
      io.stdout:flush()
      s:serve(function(c) c:read("a") end)
    ]])
    local _, sport = with(start_script(silent))
    local t0 = os.time()
    _, err, code = run_script("scripts/http_get.lua", {"-t", "0.5",
      ("http://127.0.0.1:%d/"):format(sport)})
    assert.equal(2, code)
    assert.matches("timeout", err)
    assert.is_true(os.time() - t0 < 10)
  end)
end)

-- {====================================================================
-- Redis client, proxy
-- =====================================================================

describe("scripts/redis_client.lua", function()
  local function check_against(port)
    local rc = "scripts/redis_client.lua"
    local out, err, code = run_script(rc, {"-p", port, "set", "greeting",
      "hello world"})
    assert.equal(0, code, err)
    assert.equal('"OK"\n', out)
    out = run_script(rc, {"-p", port, "get", "greeting"})
    assert.equal('"hello world"\n', out)
    out = run_script(rc, {"-p", port, "get", "missing"})
    assert.equal("(nil)\n", out)
    out = run_script(rc, {"-p", port, "incr", "n"})
    assert.equal("(integer) 1\n", out)
    out = run_script(rc, {"-p", port, "keys", "*"})
    assert.matches('^%d%) "', out)
    out, err, code = run_script(rc, {"-p", port, "nosuchcommand"})
    assert.equal(1, code)
    assert.matches("^%(error%) ERR unknown command", out)
    out, err, code = run_script(rc, {"-p", port, "--demo"})
    assert.equal(0, code, err)
    assert.matches('GET demo:greeting %->\t"hello"', out)
    assert.matches("%(error%) ERR unknown command", out)
    assert.matches("100 x INCR demo:counter %(pipelined%) %-> last\t" ..
      "%(integer%) 100", out)
    -- what the client wrote, redis-cli reads back
    assert.equal("hello world\n", (redis_cli(port, "get greeting")))
  end

  it("talks to a real redis-server", function()
    if not have("redis-server") then
      pending("redis-server is not installed") return
    end
    local with = servers()
    local _, port = start_redis(with)
    check_against(port)
  end)

  it("talks to kv_server.lua", function()
    local with = servers()
    local p, port = with(start_script("scripts/kv_server.lua",
      {"127.0.0.1", "0"}))
    check_against(port)
    assert_quiet(p)
  end)

  it("reads back what the redis module wrote", function()
    if not have("redis-server") then
      pending("redis-server is not installed") return
    end
    local with = servers()
    local _, port = start_redis(with)
    local redis = require "redis"
    run_task(function()
      local db <close> = assert(redis.connect("127.0.0.1", port))
      assert.equal(3, db:call("RPUSH", "list", "a", "b", "c"))
      assert.equal("OK", db:set("k", "v\n2"))
    end)
    local out = run_script("scripts/redis_client.lua", {"-p", port,
      "lrange", "list", "0", "-1"})
    assert.equal('1) "a"\n2) "b"\n3) "c"\n', out)
    out = run_script("scripts/redis_client.lua", {"-p", port, "get", "k"})
    assert.equal('"v\\n2"\n', out)
  end)

  it("reports a refused connection", function()
    local _, err, code = run_script("scripts/redis_client.lua",
      {"-p", free_port(), "ping"})
    assert.equal(1, code)
    assert.matches("ECONNREFUSED", err)
  end)
end)

describe("scripts/proxy.lua", function()
  it("forwards redis-cli to redis-server, large values included",
     function()
    if not have("redis-server") then
      pending("redis-server is not installed") return
    end
    local with = servers()
    local _, rport = start_redis(with)
    local p, port = with(start_script("scripts/proxy.lua",
      {"127.0.0.1", rport, "127.0.0.1", "0"}))
    assert.matches("^listening on 127%.0%.0%.1:%d+ %-> 127%.0%.0%.1:" ..
      rport .. "$", p.first)
    assert.equal("PONG\n", (redis_cli(port, "ping")))
    assert.equal("OK\n", (redis_cli(port, "set via proxy")))
    assert.equal("proxy\n", (redis_cli(rport, "get via")))
    -- 4 MB each way: backpressure through the proxy
    local big = tmpname()
    sh(("head -c 3000000 /dev/urandom | base64 -w0 > %s"):format(q(big)))
    assert.equal("OK\n", (redis_cli(port, "-x set big", slurp(big))))
    assert.equal(#slurp(big) .. "\n", (redis_cli(port, "strlen big")))
    local back = tmpname()
    sh(("redis-cli -p %d --raw get big > %s"):format(port, q(back)))
    assert.is_true(slurp(back) == slurp(big) .. "\n", "value differs")
    local out, code = sh(("redis-benchmark -p %d -t ping,set -n 2000 -c 10 " ..
      "-q 2>&1"):format(port), 60)
    assert.equal(0, code, out)
    assert.is_nil(out:lower():find("error"), out)
    assert_quiet(p)
  end)

  it("forwards curl to nginx", function()
    if not have("nginx") then pending("nginx is not installed") return end
    local with = servers()
    local root = make_root()
    local file = root .. "/big.bin"
    sh(("head -c 5000000 /dev/urandom > %s"):format(q(file)))
    local _, nport = start_nginx(with, root)
    local p, port = with(start_script("scripts/proxy.lua",
      {"127.0.0.1", nport, "127.0.0.1", "0"}))
    local u = ("http://127.0.0.1:%d"):format(port)
    local out = curl(("-v %s/a.txt %s/docs/"):format(u, u))
    assert.matches("plain text\n", out, 1, true)
    assert.matches("<h1>docs</h1>\n", out, 1, true)
    assert.matches("Re%-using existing connection", out)
    local got = tmpname()
    out = curl(("-o %s %s/big.bin"):format(q(got), u))
    assert.equal("", out)
    assert.is_true(slurp(got) == slurp(file), "big.bin differs")
    assert_quiet(p)
  end)

  it("passes a half-close on and keeps the other direction", function()
    local with = servers()
    local _, eport = with(start_script("scripts/echo.lua",
      {"127.0.0.1", "0"}))
    local p, port = with(start_script("scripts/proxy.lua",
      {"127.0.0.1", eport, "127.0.0.1", "0"}))
    -- nc -N shuts its sending side down after stdin; the echo server only
    -- closes once that end reached it through the proxy, and what it
    -- echoed must still come back
    local out = sh(("head -c 300000 /dev/zero | tr '\\0' 'z' | " ..
      "nc -N 127.0.0.1 %d | wc -c"):format(port))
    assert.equal("300000", out:match("%d+"))
    -- upstream down: the client is closed, the proxy lives on
    local dead = free_port()
    local p2, port2 = with(start_script("scripts/proxy.lua",
      {"127.0.0.1", dead, "127.0.0.1", "0"}))
    out = sh(("printf x | nc -N 127.0.0.1 %d | wc -c"):format(port2))
    assert.equal("0", out:match("%d+"))
    assert.matches("ECONNREFUSED", p2:stderr())
    assert_quiet(p)
  end)

  it("moves 20 MiB each way at once, checksummed (nc through the proxy " ..
     "to socat)", function()
    if not have("socat") then pending("socat is not installed") return end
    local with = servers()
    local dir = tmpdir()
    local to_up, from_up = dir .. "/to_up", dir .. "/from_up"
    local got_up, got_client = dir .. "/got_up", dir .. "/got_client"
    for _, f in ipairs{to_up, from_up} do
      sh(("head -c %d /dev/urandom > %s"):format(20 * 1024 * 1024, q(f)))
    end
    -- the upstream sends its file while it saves what comes; -t: after
    -- the client's end arrived, time for its own file to finish
    local uport = free_port()
    local up = with(start("sh -c " .. q(("exec socat -d -d -t 60 " ..
      "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr SYSTEM:%s 2>&1"):format(
      uport, q(("cat %s & cat > %s; wait"):format(q(from_up),
      q(got_up)))))))
    local line = up:line() -- socat is listening
    assert.matches("listening on", line or up:stderr())
    local p, port = with(start_script("scripts/proxy.lua",
      {"127.0.0.1", uport, "127.0.0.1", "0"}))
    -- nc -N: a half-close after its file, the download goes on
    local out, code = sh(("nc -N 127.0.0.1 %d < %s > %s"):format(port,
      q(to_up), q(got_client)), 60)
    assert.equal(0, code, out)
    local function sum(f)
      return (sh("sha256sum < " .. q(f))):match("%x+")
    end
    assert.equal(sum(to_up), sum(got_up), "upload differs")
    assert.equal(sum(from_up), sum(got_client), "download differs")
    assert_quiet(p)
  end)
end)

-- {====================================================================
-- Small services and tools
-- =====================================================================

describe("scripts/daytime.lua and scripts/time.lua", function()
  it("daytime answers over TCP and UDP", function()
    local with = servers()
    local p, port = with(start_script("scripts/daytime.lua",
      {"127.0.0.1", "0"}))
    assert.matches("^listening on 127%.0%.0%.1:%d+ %(tcp and udp%)$", p.first)
    local pat = "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n$"
    local out = sh(("nc 127.0.0.1 %d < /dev/null"):format(port))
    assert.matches(pat, out)
    assert.equal(os.date("!%d %b %Y"), out:match("(%d%d %a%a%a %d%d%d%d)"))
    out = sh(("printf '\\n' | socat -t 0.5 - UDP:127.0.0.1:%d"):format(port))
    assert.matches(pat, out)
    assert_quiet(p)
  end)

  it("time answers 32-bit seconds since 1900 over TCP and UDP", function()
    local with = servers()
    local p, port = with(start_script("scripts/time.lua",
      {"127.0.0.1", "0"}))
    local out = sh(("nc 127.0.0.1 %d < /dev/null"):format(port))
    assert.equal(4, #out)
    local t = string.unpack(">I4", out) - 2208988800
    assert.is_true(math.abs(t - os.time()) <= 5, "time off: " .. t)
    out = sh(("printf x | socat -t 0.5 - UDP:127.0.0.1:%d"):format(port))
    assert.equal(4, #out)
    t = string.unpack(">I4", out) - 2208988800
    assert.is_true(math.abs(t - os.time()) <= 5, "time off: " .. t)
    assert_quiet(p)
  end)
end)

describe("scripts/portcheck.lua", function()
  it("tells open from closed ports, concurrently", function()
    local with = servers()
    local _, open1 = with(start_script("scripts/echo.lua",
      {"127.0.0.1", "0"}))
    local _, open2 = with(start_script("scripts/kv_server.lua",
      {"127.0.0.1", "0"}))
    local closed = free_port()
    local out, err, code = run_script("scripts/portcheck.lua", {"-t", "2",
      "127.0.0.1", open1, closed, open2})
    assert.equal(0, code, err)
    assert.equal(("%d open\n%d closed (ECONNREFUSED)\n%d open\n" ..
      "2 of 3 open\n"):format(open1, closed, open2), out)
    out, err, code = run_script("scripts/portcheck.lua",
      {"127.0.0.1", closed .. "-" .. closed})
    assert.equal(1, code, err)
    assert.equal(("%d closed (ECONNREFUSED)\n0 of 1 open\n"):format(closed),
      out)
    _, err, code = run_script("scripts/portcheck.lua", {"127.0.0.1", "99999"})
    assert.equal(2, code)
    assert.matches("bad port", err)
  end)

  it("reports a port whose backlog is full as a timeout", function()
    -- a listener that never accepts, its backlog filled by its own
    -- connects: the kernel drops further SYNs, so connects time out
    local with = servers()
    local full = write_file(tmpname(), [[
      local net = require "net"
      local s = assert(net.listen{host = "127.0.0.1", port = 0, backlog = 1})
      local _, port = s:sockname()
      local held = {}
      for _ = 1, 8 do
        local c = net.connect("127.0.0.1", port, {timeout = 0.3})
        if not c then break end
        held[#held + 1] = c
      end
      print("listening on 127.0.0.1:" .. port)
      io.stdout:flush()
      require("task").sleep(60)
    ]])
    local _, port = with(start_script(full))
    local t0 = task_now()
    local out, err, code = run_script("scripts/portcheck.lua", {"-t", "0.5",
      "127.0.0.1", port})
    assert.equal(1, code, err)
    assert.equal(("%d timeout\n0 of 1 open\n"):format(port), out)
    local took = task_now() - t0
    assert.is_true(took >= 0.4 and took < 5, "took " .. took .. " s")
  end)

  it("checks a range of 200 ports in about one timeout", function()
    local t0 = os.time()
    local base = free_port()
    local lo = math.max(1025, math.min(base, 65000))
    local out, err = run_script("scripts/portcheck.lua", {"-c", "50",
      "127.0.0.1", lo .. "-" .. (lo + 199)})
    local _, lines = out:gsub("\n", "")
    assert.equal(201, lines, err)
    assert.matches("of 200 open\n$", out)
    assert.is_true(os.time() - t0 < 20)
  end)
end)

describe("scripts/lookup.lua", function()
  local function getent(args)
    return (sh("getent " .. args))
  end
  local function lookup(args)
    local out, err, code = run_script("scripts/lookup.lua", args)
    assert.equal(0, code, err)
    return out
  end

  -- The addresses getent and lookup.lua give for `name` (sorted lists).
  local function both(db, args)
    local want, got = {}, {}
    for addr in getent(db .. " localhost"):gmatch("(%S+)%s+STREAM") do
      want[#want + 1] = addr
    end
    local out = run_script("scripts/lookup.lua", args)
    for addr in out:gmatch("localhost has %a* ?address (%S+)") do
      got[#got + 1] = addr
    end
    table.sort(want)
    table.sort(got)
    return want, got
  end

  it("forward look-ups match getent ahosts", function()
    local want, got = both("ahosts", {"localhost"})
    assert.is_true(#want > 0, "getent found nothing for localhost")
    assert.same(want, got)
    -- IPv4 only: the IPv4 part of the same list (getent ahostsv4 asks with
    -- AI_ADDRCONFIG and finds nothing in a loopback-only namespace)
    local v4 = {}
    for _, a in ipairs(want) do
      if not a:find(":", 1, true) then v4[#v4 + 1] = a end
    end
    _, got = both("ahostsv4", {"-4", "localhost"})
    assert.same(v4, got)
    local _, err, code = run_script("scripts/lookup.lua",
      {"no-such-host.invalid"})
    assert.equal(1, code)
    assert.matches("no%-such%-host%.invalid: ENOTFOUND", err)
  end)

  it("reverse look-ups match getent hosts", function()
    local name = getent("hosts 127.0.0.1"):match("^%S+%s+(%S+)")
    assert.truthy(name)
    assert.equal("127.0.0.1 is " .. name .. "\n", lookup({"127.0.0.1"}))
  end)

  it("services and protocols match getent", function()
    local name, port, proto = getent("services http"):match(
      "^(%S+)%s+(%d+)/(%a+)")
    assert.equal(("%s %s/%s\n"):format(name, port, proto),
      lookup({"-s", "http"}))
    assert.equal(("%s %s/%s\n"):format(name, port, proto),
      lookup({"-s", port, "tcp"}))
    name, port = getent("services 53/udp"):match("^(%S+)%s+(%d+)/udp")
    assert.equal(("%s %s/udp\n"):format(name, port),
      lookup({"-s", "53", "udp"}))
    local pname, num = getent("protocols tcp"):match("^(%S+)%s+(%d+)")
    assert.equal(("%s %s\n"):format(pname, num), lookup({"-p", "tcp"}))
    assert.equal(("%s %s\n"):format(pname, num), lookup({"-p", num}))
    local _, err, code = run_script("scripts/lookup.lua", {"-s", "nosuchsvc"})
    assert.equal(1, code)
    assert.matches("nosuchsvc", err)
    -- a number out of range: a message, not a traceback
    for _, args in ipairs{{"-s", "65536"}, {"-s", "-1"}, {"-s", "1.5"},
      {"-p", "300"}} do
      _, err, code = run_script("scripts/lookup.lua", args)
      assert.equal(1, code)
      assert.matches("^lookup: [^\n]+: not a ", err)
      assert.not_matches("traceback", err)
    end
  end)

  it("prints the hostname and the interfaces", function()
    assert.equal(sh("hostname"), lookup({"-H"}))
    assert.matches("lo%s+127%.0%.0%.1%s+inet\n", lookup({"-i"}))
  end)
end)

describe("scripts over IPv6", function()
  local function no_ipv6()
    if not sh("ip -6 addr show dev lo 2>/dev/null"):find("::1", 1, true)
    then
      pending("no ::1 on the loopback interface here")
      return true
    end
  end

  it("echo.lua, udp_echo.lua and http_server.lua serve [::1]", function()
    if no_ipv6() then return end
    local with = servers()
    local p, port = with(start_script("scripts/echo.lua", {"::1", "0"}))
    assert.matches("^listening on %[::1%]:%d+$", p.first)
    assert.equal("six\n", (sh(("printf 'six\\n' | socat -t 5 - " ..
      "TCP6:[::1]:%d"):format(port))))
    assert_quiet(p)
    local u, uport = with(start_script("scripts/udp_echo.lua",
      {"::1", "0"}))
    assert.matches("^listening on %[::1%]:%d+$", u.first)
    assert.equal("dgram6", (sh(("printf dgram6 | socat -t 0.5 - " ..
      "UDP6:[::1]:%d"):format(uport))))
    assert_quiet(u)
    local h, hport = with(start_script("scripts/http_server.lua",
      {"::1", "0", "scripts"}))
    assert.matches("on http://%[::1%]:%d+/$", h.first)
    assert.equal("hello world\n", curl(("-g http://[::1]:%d/hello")
      :format(hport)))
    local out, err, code = run_script("scripts/http_get.lua",
      {("http://[::1]:%d/hello"):format(hport)})
    assert.equal(0, code, err)
    assert.equal("hello world\n", out)
    assert_quiet(h)
  end)
end)

describe("script arguments", function()
  it("bad arguments give a usage line and status 2 (or 1), no traceback",
     function()
    local cases = {
      {"scripts/proxy.lua", {}, 2, "usage: proxy.lua"},
      {"scripts/http_get.lua", {}, 2, "usage: http_get.lua"},
      {"scripts/http_get.lua", {"-t", "x", "http://a/"}, 2, "usage"},
      {"scripts/portcheck.lua", {"127.0.0.1"}, 2, "usage: portcheck.lua"},
      {"scripts/redis_client.lua", {}, 2, "usage: redis_client.lua"},
      {"scripts/lookup.lua", {}, 2, "usage: lookup.lua"},
      {"scripts/http_server.lua", {"127.0.0.1", "0", "/no/such/dir"}, 1,
       "not a directory"},
      -- a port that is no port is refused (it used to be read as nil:
      -- port 0, a free port picked without a word)
      {"scripts/proxy.lua", {"127.0.0.1", "99999"}, 2, "usage: proxy.lua"},
      {"scripts/proxy.lua", {"127.0.0.1", "7", "127.0.0.1", "x"}, 2,
       "usage: proxy.lua"},
      {"scripts/rproxy.lua", {"127.0.0.1", "x", "http://127.0.0.1:1"}, 2,
       "usage: rproxy.lua"},
      {"scripts/counter_api.lua", {"8o8o"}, 2, "usage: counter_api.lua"},
    }
    for _, name in ipairs({"echo", "chat", "daytime", "time", "kv_server",
      "udp_echo", "http_server", "ws_chat"}) do
      for _, bad in ipairs({"abc", "99999", "-1", "80.5"}) do
        cases[#cases + 1] = {"scripts/" .. name .. ".lua",
          {"127.0.0.1", bad}, 2, "usage: " .. name .. ".lua"}
      end
    end
    for _, c in ipairs(cases) do
      local _, err, code = run_script(c[1], c[2])
      assert.equal(c[3], code, c[1] .. ": " .. err)
      assert.matches(c[4], err, 1, true)
      assert.is_nil(err:find("traceback", 1, true), err)
    end
  end)
end)
