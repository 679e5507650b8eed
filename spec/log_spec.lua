-- The log module and the host's log lines (host/log.c): one format for
-- Lua (require "log") and C (the supervisor, the drain), as text or JSON
-- lines, levels, a file, the http access log through it. Each case runs
-- luahost as a separate process and reads what it wrote.
local cjson = require "cjson"
local proc = require "process_helper"
local sh = require("common").sh

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- RFC 3339, UTC, milliseconds
local TIME = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ"

-- the time of a line is now (within a minute), as UTC
local function recent(stamp)
  local y, mo, d, h, mi, s = stamp:match(
    "^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)%.%d+Z$")
  assert.truthy(y, stamp)
  local now = os.time(os.date("!*t"))
  local t = os.time{year = tonumber(y), month = tonumber(mo),
    day = tonumber(d), hour = tonumber(h), min = tonumber(mi),
    sec = tonumber(s)}
  assert.is_true(math.abs(now - t) < 60, stamp .. " is not now (UTC)")
end

describe("log", function()
  it("text lines: time, level, pid, message, sorted fields quoted when " ..
     "needed; below the level nothing", function()
    local out, err, code = run_host({"-e", [[
      local log = require "log"
      log.info("hello", {port = 8080, path = "/a b", ok = true, x = 1.5,
        q = 'say "hi"\n'})
      log.debug("not shown")
      log.warn("careful")
      log.error("bad\nFAKE error luahost[1]: forged\27[31m")
      print(log.level(), log.format(), log.enabled("debug"),
        log.enabled("warn"))]]})
    assert.equal(0, code, err)
    assert.equal("info\ttext\tfalse\ttrue\n", out)
    local l = lines(err)
    assert.equal(3, #l, err)
    local stamp, pid = l[1]:match("^(" .. TIME .. ") info luahost%[(%d+)%]: ")
    assert.truthy(stamp, l[1])
    recent(stamp)
    assert.equal(" info luahost[" .. pid .. "]: hello ok=true " ..
      "path=\"/a b\" port=8080 q=\"say \\\"hi\\\"\\n\" x=1.5",
      l[1]:sub(#stamp + 1))
    assert.matches("^" .. TIME .. " warn luahost%[" .. pid .. "%]: " ..
      "careful$", l[2])
    -- (a message's control bytes escaped: no forged line, no terminal
    -- escape)
    assert.matches("^" .. TIME .. " error luahost%[" .. pid .. "%]: " ..
      "bad\\nFAKE error luahost%[1%]: forged\\u001b%[31m$", l[3])
  end)

  it("JSON lines (--log-format json): every line parses, strings escaped",
     function()
    local _, err, code = run_host({"--log-format", "json", "--log-level",
      "debug", "-e", [[
      local log = require "log"
      log.debug("quote \" backslash \\ newline \n tab \t bell \7 é")
      log.info("fields", {n = 3, f = 0.25, yes = false, inf = 1/0,
        s = "x\0y", ["k\"ey"] = "v"})]]})
    assert.equal(0, code, err)
    local l = lines(err)
    assert.equal(2, #l, err)
    local a, b = cjson.decode(l[1]), cjson.decode(l[2])
    assert.equal("debug", a.level)
    assert.equal("quote \" backslash \\ newline \n tab \t bell \7 é", a.msg)
    assert.equal("number", type(a.pid))
    assert.is_nil(a.worker)
    recent(a.time)
    assert.matches("^" .. TIME .. "$", a.time)
    assert.equal("info", b.level)
    assert.equal("fields", b.msg)
    assert.equal(3, b.n)
    assert.equal(0.25, b.f)
    assert.equal(false, b.yes)
    assert.equal("inf", b.inf) -- no infinity in JSON: a string
    assert.equal("x\0y", b.s)
    assert.equal("v", b["k\"ey"])
    -- the raw text: control bytes as \u escapes, the NUL too
    assert.truthy(l[1]:find("bell \\u0007", 1, true), l[1])
    assert.truthy(l[2]:find('"s":"x\\u0000y"', 1, true), l[2])
  end)

  it("JSON lines stay JSON: bytes that are not UTF-8, lines cut at 8 KiB",
     function()
    -- random messages and fields (invalid UTF-8, escapes, multi-byte
    -- characters, sizes around the 8 KiB line) checked by python3's json,
    -- which refuses a line that is not UTF-8; what is valid UTF-8 comes
    -- back as it was
    local script = tmpfile([[
      local log = require "log"
      math.randomseed(20261205)
      local P = {"a", "\"", "\\", "\n", "\1", "\127", "é", "€",
        "\u{10FFFF}", "\xff", "\xc3", "\xed\xa0\x80", "\xc0\xaf",
        "\xf4\x90\x80\x80", "\u{2028}"}
      local function s(max)
        local t = {}
        for i = 1, math.random(0, max) do t[i] = P[math.random(#P)] end
        return table.concat(t)
      end
      local sent = io.open(arg[1], "wb")
      for i = 1, 300 do
        local msg = s(i % 3 == 0 and 3000 or 20)
        local fields = {}
        for j = 1, math.random(0, 4) do
          fields["f" .. j] = math.random(4) == 1 and j or
            s(i % 5 == 0 and 1500 or 10)
        end
        log.warn(msg, fields)
        sent:write(utf8.len(msg) and #msg < 4000 and
          (msg:gsub("[%c\\]", "")) or "-", "\n")
      end
      sent:close()
    ]], ".lua")
    local sent = tmpname()
    local _, err, code = run_host({"--log-format", "json", script, sent})
    assert.equal(0, code, err)
    local logged = tmpfile(err)
    local check = tmpfile([[
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\x0a")[:-1]
sent = open(sys.argv[2], "rb").read().split(b"\x0a")[:-1]
assert len(lines) == 300, len(lines)
cut = 0
for line, want in zip(lines, sent):
    assert len(line) < 8192, len(line)
    o = json.loads(line.decode("utf-8"))  # strict: UTF-8 or it raises
    cut += o.get("cut", False)
    if want != b"-" and not o.get("cut"):
        got = "".join(c for c in o["msg"] if c >= " " and c not in "\\\x7f")
        assert got == want.decode("utf-8"), (got, want)
print("ok", cut)
]], ".py")
    local out = sh("/usr/bin/python3 " .. shell_quote(check) .. " " ..
      shell_quote(logged) .. " " .. shell_quote(sent) .. " 2>&1")
    assert.matches("^ok %d+\n$", out)
    assert.not_equal("ok 0\n", out) -- some lines were cut
  end)

  it("with JSON lines, a failed task's report is an error line too",
     function()
    local _, err, code = run_host({"--log-format", "json", "-e", [[
      local task = require "task"
      task.spawn(function() error("boom") end)]]})
    assert.equal(0, code, err)
    local l = lines(err)
    assert.equal(1, #l, err)
    local e = cjson.decode(l[1])
    assert.equal("error", e.level)
    assert.matches("^%(command line%):2: boom\nstack traceback:\n", e.msg)
  end)

  it("levels and format change at run time; a file instead of stderr",
     function()
    local path = tmpname()
    os.remove(path)
    local out, err, code = run_host({"--log-level", "error", "-e", ([[
      local log = require "log"
      log.warn("dropped")
      local prev = assert(log.setup{level = "info", format = "json",
        file = %q})
      print(prev.level, prev.format, prev.file)
      log.info("to the file")
      print(log.setup{file = "/nonexistent-dir/x.log"})
      log.info("still to the file")
      prev = log.setup{file = false, format = "text"}
      print(prev.file == %q, prev.format)
      log.info("back on stderr")]]):format(path, path)})
    assert.equal(0, code, err)
    assert.equal("error\ttext\tfalse\n" ..
      "nil\t/nonexistent-dir/x.log: No such file or directory\n" ..
      "true\tjson\n", out)
    local l = lines(err)
    assert.equal(1, #l, err)
    assert.matches("^" .. TIME .. " info luahost%[%d+%]: back on stderr$",
      l[1])
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    os.remove(path)
    local fl = lines(text)
    assert.equal(2, #fl, text)
    assert.equal("to the file", cjson.decode(fl[1]).msg)
    assert.equal("still to the file", cjson.decode(fl[2]).msg)
  end)

  it("a field whose tostring logs does not garble the line", function()
    local _, err, code = run_host({"-e", [[
      local log = require "log"
      local t = setmetatable({}, {__tostring = function()
        log.info("inner", {z = 1})
        return "T"
      end})
      log.info("outer", {a = t, b = 2})]]})
    assert.equal(0, code, err)
    local l = lines(err)
    assert.equal(2, #l, err)
    assert.matches(" info luahost%[%d+%]: inner z=1$", l[1])
    assert.matches(" info luahost%[%d+%]: outer a=T b=2$", l[2])
  end)

  it("raises on wrong arguments, naming the function", function()
    local out, err, code = run_host({"-e", [[
      local log = require "log"
      for _, f in ipairs{
        function() log.info({}) end,
        function() log.warn("x", 3) end,
        function() log.setup{level = "loud"} end,
        function() log.setup{colour = true} end,
        function() log.setup{format = "xml"} end,
        function() log.enabled("loud") end,
      } do print((select(2, pcall(f)))) end]]})
    assert.equal(0, code, err)
    assert.equal(table.concat({
      "(command line):3: bad argument #1 to 'info' (string expected, got " ..
        "table)",
      "(command line):4: bad argument #2 to 'warn' (table of fields " ..
        "expected, got number)",
      "(command line):5: bad argument #1 to 'setup' (level: debug, info, " ..
        "warn or error expected)",
      "(command line):6: bad argument #1 to 'setup' (unknown option " ..
        "'colour')",
      "(command line):7: bad argument #1 to 'setup' (format: text or json " ..
        "expected)",
      "(command line):8: bad argument #1 to 'enabled' (level name expected)",
      ""}, "\n"), out)
  end)

  it("refuses a bad --log-format or --log-level", function()
    local _, err, code = run_host({"--log-format", "xml", "-e", ""})
    assert.equal(1, code)
    assert.matches("bad value 'xml' for %-%-log%-format %(text or json%)",
      err)
    _, err, code = run_host({"--log-level", "loud", "-e", ""})
    assert.equal(1, code)
    assert.matches("bad value 'loud' for %-%-log%-level", err)
  end)

  it("the supervisor's lines and the workers' share the format (text and " ..
     "JSON), with the worker id", function()
    local script = tmpfile([[
      local task = require "task"
      local log = require "log"
      log.info("worker up", {id = (task.worker())})
      task.sleep(0.05)
      os.exit(3)]])
    for _, format in ipairs({"text", "json"}) do
      local p = proc.start({"--workers", "1", "--log-format", format,
        script})
      finally(function() p:stop() end)
      -- it restarts the failing worker; twice is enough to read
      p:wait_for("restarting worker 1.*restarting worker 1", nil, "err")
      p:signal("TERM")
      p:wait_exit()
      local l = lines(p:err())
      local sup, worker
      for _, line in ipairs(l) do
        local rec
        if format == "json" then
          rec = cjson.decode(line) -- every line is JSON
        else
          local t, level, pid, w, msg = line:match("^(" .. TIME ..
            ") (%a+) luahost%[(%d+)( ?w?%d*)%]: (.*)$")
          assert.truthy(t, line)
          rec = {time = t, level = level, pid = tonumber(pid),
            worker = tonumber(w:match("%d+")), msg = msg}
        end
        recent(rec.time)
        if rec.msg:match("^worker 1 %(pid %d+%) exited with status 3") then
          sup = rec
        elseif rec.msg:match("^worker up") then
          worker = rec
        end
      end
      assert.truthy(sup, p:err())
      assert.truthy(worker, p:err())
      assert.equal("warn", sup.level)
      assert.is_nil(sup.worker)
      assert.equal(p.pid, sup.pid)
      assert.equal("info", worker.level)
      assert.equal(1, worker.worker)
      assert.is_not.equal(p.pid, worker.pid)
      if format == "json" then assert.equal(1, worker.id) end
    end
  end)

  it("http.listen{log = log}: one access line per request in the log " ..
     "format", function()
    local script = tmpfile([[
      local http = require "http"
      local s = assert(http.listen{port = 0, log = require "log",
        handler = function(req, res)
          if req.path == "/fail" then error("handler fails") end
          res:send(200, "hi\n")
        end})
      print((select(2, s:sockname())))
      io.stdout:flush()]])
    local p = proc.start({"--log-format", "json", script})
    finally(function() p:stop() end)
    local port = tonumber(p:wait_for("^(%d+)\n"))
    local base = ("http://127.0.0.1:%d"):format(port)
    local got = io.popen(("curl -s %s/hi %s/fail -o /dev/null " ..
      "-o /dev/null -w '%%{http_code} '"):format(base, base)):read("a")
    assert.equal("200 500 ", got)
    p:wait_for('"status":500', nil, "err")
    local recs = {}
    for _, line in ipairs(lines(p:err())) do -- every line is JSON
      recs[#recs + 1] = cjson.decode(line)
    end
    assert.equal(3, #recs, p:err())
    -- the handler's error, through the log too
    local e = table.remove(recs, 2)
    assert.equal("error", e.level)
    assert.matches("^http: handler error: .*:4: handler fails\nstack " ..
      "traceback:", e.msg)
    assert.equal("GET /hi", recs[1].msg)
    assert.equal(200, recs[1].status)
    assert.equal(3, recs[1].bytes)
    assert.equal("127.0.0.1", recs[1].peer)
    assert.equal("HTTP/1.1", recs[1].version)
    assert.equal("number", type(recs[1].ms))
    assert.equal("info", recs[1].level)
    assert.equal("GET /fail", recs[2].msg)
    assert.equal(500, recs[2].status)
  end)
end)
