-- --drain-delay: on SIGTERM the health endpoint answers 503 at once, the
-- listeners stay open (and serve) for the delay, then close: a balancer's
-- health check takes the instance out before a connect is refused. Alone
-- and under --workers; a reload's old generation does not wait.
local proc = require "process_helper"
local uv = require "uv"

-- GET /health on a new connection with curl: "200", "503", or "refused".
local function health(port)
  local p = assert(io.popen(("curl -s -o /dev/null -w '%%{http_code}' " ..
    "--max-time 5 http://127.0.0.1:%d/health; echo \" $?\""):format(port)))
  local out = p:read("a")
  p:close()
  local code, rc = out:match("^(%d+) (%d+)")
  if rc == "7" then return "refused" end
  return code ~= "000" and code or ("curl exit " .. tostring(rc))
end

local function children(pid)
  local f = io.open(("/proc/%d/task/%d/children"):format(pid, pid))
  local list = {}
  for c in (f and f:read("a") or ""):gmatch("%d+") do list[#list + 1] = c end
  if f then f:close() end
  return list
end

local function now() uv.update_time() return uv.now() / 1000 end

-- Start the health app with args; its port.
local function start(args, n)
  table.insert(args, "spec/support/health_app.lua")
  local p = proc.start(args)
  local port
  proc.wait(function()
    local seen = 0
    for pt in p:out():gmatch("listening (%d+)") do
      seen, port = seen + 1, tonumber(pt)
    end
    return seen >= (n or 1)
  end, 20, "listening")
  return p, port
end

-- SIGTERM to p, then: 503 on new connections during the delay, refused
-- after it. Returns the seconds from the signal to the first 503 and to
-- the first refusal, and how many 503 were answered in between.
local function drain_timeline(p, port)
  assert.equal("200", health(port))
  local t0 = now()
  p:signal("TERM")
  local first503, refused, n503 = nil, nil, 0
  proc.wait(function()
    local h = health(port)
    if h == "503" then
      n503 = n503 + 1
      first503 = first503 or now() - t0
    elseif h == "refused" then
      refused = now() - t0
      return true
    else
      -- before the signal is handled: still healthy; never after a 503
      assert.equal("200", h)
      assert.is_nil(first503, "200 after a 503")
    end
    return false
  end, 20, "the listener to close")
  return first503, refused, n503
end

describe("--drain-delay", function()
  it("answers 503 at once, keeps accepting for the delay, then refuses",
     function()
    -- no --pidfile: the option alone turns the drain on
    local p, port = start({"--drain-delay", "1", "--drain", "5"})
    finally(function() p:stop() end)
    local first503, refused, n503 = drain_timeline(p, port)
    assert.is_not_nil(first503)
    assert.is_true(first503 < 0.9, "first 503 after " .. first503 .. " s")
    -- the listener stayed open for the delay (the measure: signal to
    -- first refused connect), serving health checks as 503 meanwhile
    assert.is_true(refused >= 0.95, "refused after " .. refused .. " s")
    assert.is_true(n503 >= 3, n503 .. " answers of 503")
    assert.equal(0, p:wait_exit(10))
    assert.matches("draining true", p:out())
  end)

  it("keeps today's behaviour at 0: refused at once", function()
    local pidf = tmpname()
    os.remove(pidf)
    local p, port = start({"--pidfile", pidf, "--drain", "5"})
    finally(function() p:stop() end)
    local _, refused = drain_timeline(p, port)
    assert.is_true(refused < 0.9, "refused after " .. refused .. " s")
    assert.equal(0, p:wait_exit(10))
  end)

  it("works under --workers: both workers answer 503, then refuse",
     function()
    local p, port = start({"--workers", "2", "--drain-delay", "1",
      "--drain", "5"}, 2)
    finally(function() p:stop() end)
    local first503, refused, n503 = drain_timeline(p, port)
    assert.is_true(first503 < 0.9, "first 503 after " .. first503 .. " s")
    assert.is_true(refused >= 0.95, "refused after " .. refused .. " s")
    assert.is_true(n503 >= 3, n503 .. " answers of 503")
    assert.equal(0, p:wait_exit(10))
    local _, drained = p:out():gsub("draining true", "")
    assert.equal(2, drained)
  end)

  it("does not delay a reload: the old generation closes at once, the " ..
     "health check stays 200", function()
    local p, port = start({"--workers", "2", "--drain-delay", "30",
      "--drain", "5"}, 2)
    finally(function() p:stop() end)
    local t0 = now()
    p:signal("HUP")
    p:wait_for("reloaded: generation 2 serving", 20, "err")
    -- the old workers printed "draining true" and exit well within the
    -- 30 s delay; every health check meanwhile passes
    proc.wait(function()
      assert.equal("200", health(port))
      local _, n = p:out():gsub("draining true", "")
      return n == 2 and #children(p.pid) == 2
    end, 20, "the old generation to exit")
    assert.is_true(now() - t0 < 20)
    assert.equal("200", health(port))
    p:signal("TERM") -- the final stop waits 30 s: a second one cuts it
    p:wait_for("draining true.*draining true.*draining true.*draining true",
      10)
    assert.equal("503", health(port))
    p:signal("TERM")
    assert.equal(128 + 15, p:wait_exit(10))
  end)

  it("refuses a bad value", function()
    local _, err, code = run_host({"--drain-delay", "-1", "-e", "print(1)"})
    assert.equal(1, code)
    assert.matches("bad value '%-1' for %-%-drain%-delay", err)
  end)
end)
