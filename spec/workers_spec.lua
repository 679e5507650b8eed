-- --workers: a supervisor that runs no script, N workers that each run it,
-- restarts with back-off, graceful stop, zero-downtime reload.
local proc = require "process_helper"

-- The script every worker runs: prints "<tag> worker <id> <count> <pid>"
-- and stays alive (a ticking timer) until a drain, which it reports.
local function worker_script(tag, extra)
  return ([[
local task = require "task"
local uv = require "uv"
local id, count = task.worker()
local pid = io.open("/proc/self/stat"):read("n")
print(%q .. " worker " .. tostring(id) .. " " .. tostring(count) .. " " .. pid)
io.stdout:flush()
%s
local t = uv.new_timer()
t:start(20, 20, function()
  if task.exiting() then
    print("draining " .. id .. " " .. pid)
    io.stdout:flush()
    t:close()
  end
end)
]]):format(tag, extra or "")
end

local function script_file(text)
  local name = tmpname() .. ".lua"
  proc.write(name, text)
  return name
end

-- The pids of the workers that printed "<tag> worker <id> ...", by id.
local function worker_pids(out, tag)
  local pids = {}
  for id, pid in out:gmatch(tag .. " worker (%d+) %d+ (%d+)") do
    pids[tonumber(id)] = tonumber(pid)
  end
  return pids
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("luahost --workers", function()
  it("runs the script in N workers, each knowing its id and the count; " ..
     "the supervisor does not run it", function()
    local script = script_file([[
      local task = require "task"
      local id, count = task.worker()
      print("id " .. tostring(id) .. " of " .. tostring(count))]])
    local out, err, code = run_host({"--workers", "3", script})
    assert.equal(0, code)
    assert.equal("", err)
    local seen = {}
    for id, count in out:gmatch("id (%d+) of (%d+)") do
      assert.equal("3", count)
      seen[#seen + 1] = tonumber(id)
    end
    table.sort(seen)
    assert.same({1, 2, 3}, seen)
    assert.not_matches("nil", out) -- nobody ran it outside the group
  end)

  it("gives nil from task.worker() outside a worker group", function()
    local out, _, code = run_host({"-e",
      "print(select('#', require('task').worker()), " ..
      "require('task').worker())"})
    assert.equal(0, code)
    assert.equal("1\tnil\n", out)
  end)

  it("starts one worker per core with --workers auto", function()
    local script = script_file([[
      print("count " .. select(2, require("task").worker()))]])
    local out, _, code = run_host({"--workers", "auto", script})
    assert.equal(0, code)
    local nproc = tonumber(io.popen("nproc"):read("a"))
    local lines = select(2, out:gsub("count " .. nproc .. "\n", ""))
    assert.equal(nproc, lines)
  end)

  it("refuses a bad count and a missing script", function()
    local _, err, code = run_host({"--workers", "0", "x.lua"})
    assert.equal(1, code)
    assert.matches("bad value '0' for %-%-workers", err)
    _, err, code = run_host({"--workers", "2", "-e", "print(1)"})
    assert.equal(1, code)
    assert.matches("%-%-workers needs a script file", err)
  end)

  it("restarts a worker killed by SIGKILL, logging the signal", function()
    local p = proc.start({"--workers", "2", script_file(worker_script("A"))})
    finally(function() p:stop() end)
    proc.wait(function() return count_keys(worker_pids(p:out(), "A")) == 2 end,
      nil, "two workers")
    local victim = worker_pids(p:out(), "A")[1]
    proc.kill(victim, "KILL")
    p:wait_for("worker 1 %(pid " .. victim ..
      "%) was killed by signal 9 %(SIGKILL%)", nil, "err")
    proc.wait(function()
      local pid = worker_pids(p:out(), "A")[1]
      return pid ~= victim and proc.alive(pid)
    end, nil, "worker 1 to be replaced")
    assert.is_true(proc.alive(worker_pids(p:out(), "A")[2]))
    p:signal("TERM")
    assert.equal(0, p:wait_exit())
  end)

  it("gives up, exit 1, when workers die at start-up in a loop", function()
    local script = script_file("error('broken at start')")
    local t0 = os.time()
    local _, err, code = run_host({"--workers", "2", script})
    assert.equal(1, code)
    assert.matches("broken at start", err)
    assert.matches("workers keep dying at start%-up %(5 in a row, the " ..
      "last exited with status 1%); giving up", err)
    assert.is_true(os.time() - t0 < 10)
  end)

  it("drains on SIGTERM: task.exiting() turns true, then exit 0", function()
    local p = proc.start({"--workers", "2", script_file(worker_script("B"))})
    finally(function() p:stop() end)
    proc.wait(function() return count_keys(worker_pids(p:out(), "B")) == 2 end)
    p:signal("TERM")
    assert.equal(0, p:wait_exit())
    local out = p:out()
    assert.matches("draining 1 ", out)
    assert.matches("draining 2 ", out)
  end)

  it("stops at the drain deadline, and at once on a second signal",
     function()
    -- this script never finishes by itself
    local script = script_file(worker_script("C",
      "require('uv').new_timer():start(10, 10, function() end)"))
    local p = proc.start({"--workers", "1", "--drain", "0.3", script})
    finally(function() p:stop() end)
    p:wait_for("C worker 1 ")
    local t0 = os.clock()
    p:signal("TERM")
    assert.equal(0, p:wait_exit(5))
    assert.matches("drain time is over", p:err())
    local q = proc.start({"--workers", "1", "--drain", "60", script})
    finally(function() q:stop() end)
    q:wait_for("C worker 1 ")
    q:signal("TERM")
    q:wait_for("draining 1")
    q:signal("INT")
    assert.equal(0, q:wait_exit(5))
    assert.is_true(os.clock() - t0 < 5)
  end)

  it("reloads on SIGHUP: a new generation reads the script again, then " ..
     "the old one drains", function()
    local script = script_file(worker_script("v1"))
    local p = proc.start({"--workers", "2", script})
    finally(function() p:stop() end)
    proc.wait(function() return count_keys(worker_pids(p:out(), "v1")) == 2 end)
    local old = worker_pids(p:out(), "v1")
    proc.write(script, worker_script("v2"))
    p:signal("HUP")
    proc.wait(function() return count_keys(worker_pids(p:out(), "v2")) == 2 end,
      nil, "the new generation")
    p:wait_for("reloaded: generation 2 serving", nil, "err")
    proc.wait(function()
      return not proc.alive(old[1]) and not proc.alive(old[2])
    end, nil, "the old workers to exit")
    assert.matches("draining 1 " .. old[1], p:out())
    assert.matches("draining 2 " .. old[2], p:out())
    local new = worker_pids(p:out(), "v2")
    assert.is_true(proc.alive(new[1]) and proc.alive(new[2]))
    p:signal("TERM")
    assert.equal(0, p:wait_exit())
  end)

  it("keeps the old workers when the new script does not compile or " ..
     "fails at start", function()
    local script = script_file(worker_script("ok"))
    local p = proc.start({"--workers", "2", script})
    finally(function() p:stop() end)
    proc.wait(function() return count_keys(worker_pids(p:out(), "ok")) == 2 end)
    local old = worker_pids(p:out(), "ok")
    proc.write(script, "this is not Lua\n")
    p:signal("HUP")
    p:wait_for("reload: .-:1: syntax error near .-; keeping the old workers", nil,
      "err")
    proc.write(script, "error('fails at start')\n")
    p:signal("HUP")
    p:wait_for("reload failed: new worker %d %(pid %d+%) exited with " ..
      "status 1; keeping the old workers", nil, "err")
    assert.is_true(proc.alive(old[1]) and proc.alive(old[2]))
    assert.not_matches("draining", p:out())
    assert.is_nil(p:code())
    p:signal("TERM")
    assert.equal(0, p:wait_exit())
  end)
end)
