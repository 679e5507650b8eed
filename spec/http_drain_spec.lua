-- A drain (SIGTERM under --workers) with http keep-alive connections: the
-- ones resting between requests (net's conn:rest) are closed at once, a
-- request in flight finishes with "Connection: close", and the group
-- exits long before the 60 s idle timeout.
local proc = require "process_helper"
local uv = require "uv"

-- Each worker prints "listening PORT"; /slow answers only once the drain
-- has started (and 0.3 s later: still in flight when the servers close).
local SERVER = [[
local http = require "http"
local task = require "task"
local srv = assert(http.listen{port = 0, timeouts = {idle = 60},
  handler = function(req, res)
    if req.path == "/slow" then
      print("slow started")
      io.stdout:flush()
      for _ = 1, 2000 do -- (bounded: 20 s)
        if task.exiting() then break end
        task.sleep(0.01)
      end
      task.sleep(0.3)
      return res:send("slow done\n")
    end
    res:send("fast\n")
  end})
print("listening " .. select(2, srv:sockname()))
io.stdout:flush()
]]

-- Keep-alive clients (python3 http.client): n connections each make a
-- request and stay open; then one sends /slow. Prints, for /slow, its
-- status, body and Connection header; then, for each resting one,
-- "closed" when the server closed it.
local CLIENT = [[
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
idle = []
for i in range(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request("GET", "/fast")
    r = c.getresponse()
    assert r.read() == b"fast\n" and not r.will_close
    idle.append(c)
print("idle", n, flush=True)
s = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
s.request("GET", "/slow")
r = s.getresponse()
print("slow", r.status, r.read().decode().strip(), r.getheader("Connection"),
      flush=True)
for c in idle:
    c.sock.settimeout(20)
    print("closed" if c.sock.recv(1) == b"" else "open", flush=True)
]]

describe("http keep-alive on a drain (--workers 2)", function()
  it("closes resting connections at once and ends an in-flight request " ..
     "with Connection: close; the group exits in a second or two",
     function()
    local script = tmpname() .. ".lua"
    proc.write(script, SERVER)
    local p = proc.start({"--workers", "2", "--drain", "30", script})
    finally(function()
      p:stop()
      os.remove(script)
    end)
    proc.wait(function()
      local _, n = p:out():gsub("listening %d+", "")
      return n == 2
    end, nil, "2 workers listening")
    local port = tonumber(p:out():match("listening (%d+)"))
    local client, out = tmpname() .. ".py", tmpname()
    proc.write(client, CLIENT)
    finally(function()
      os.remove(client)
      os.remove(out)
    end)
    assert(os.execute(("timeout -s KILL 40 /usr/bin/python3 %s %d 8 " ..
      ">%s 2>&1 &"):format(client, port, out)))
    proc.wait(function()
      return p:out():match("slow started") and
        proc.slurp(out):match("idle 8")
    end, nil, "the keep-alive clients and the slow request")
    local t0 = uv.hrtime()
    p:signal("TERM")
    assert.equal(0, p:wait_exit(20))
    local secs = (uv.hrtime() - t0) / 1e9
    assert.is_true(secs < 3, ("exited %.1f s after SIGTERM"):format(secs))
    proc.wait(function()
      local _, n = proc.slurp(out):gsub("\n", "")
      return n >= 10 or proc.slurp(out):match("Error")
    end, nil, "the client's report")
    local report = proc.slurp(out)
    assert.matches("slow 200 slow done close\n", report, 1, true)
    local _, closed = report:gsub("closed\n", "")
    assert.equal(8, closed, report)
  end)
end)
