-- --daemon, --pidfile, --user, --listen and systemd socket activation.
local proc = require "process_helper"

local is_root = io.popen("id -u"):read("n") == 0

local function script_file(text)
  return tmpfile(text, ".lua")
end

-- The real uid of this process, from /proc (Lua has no getuid).
local uid_snippet = [[
local function uid()
  for line in io.lines("/proc/self/status") do
    local u = line:match("^Uid:%s+(%d+)")
    if u then return tonumber(u) end
  end
end
]]

describe("luahost --pidfile", function()
  it("writes the pid, refuses a second start, removes the file at exit",
     function()
    local pidfile = tmpname()
    os.remove(pidfile)
    local p = proc.start({"--pidfile", pidfile, "--drain", "0.2", "-e",
      "require('uv').new_timer():start(10, 10, function() end)"})
    finally(function() p:stop() end)
    proc.wait(function() return proc.slurp(pidfile) ~= "" end, nil,
      "the pid file")
    assert.equal(p.pid .. "\n", proc.slurp(pidfile))
    -- a second instance is refused while the first lives
    local _, err, code = run_host({"--pidfile", pidfile, "-e", "print(1)"})
    assert.equal(1, code)
    assert.matches("pid file .- is held by running process " .. p.pid, err)
    assert.equal(p.pid .. "\n", proc.slurp(pidfile))
    -- SIGTERM drains and stops; the file goes with the process
    p:signal("TERM")
    assert.equal(0, p:wait_exit())
    assert.is_nil(io.open(pidfile))
  end)

  it("replaces a stale pid file", function()
    local pidfile = tmpname()
    proc.write(pidfile, "999999999\n") -- no such process
    local out, err, code = run_host({"--pidfile", pidfile, "-e",
      "print(io.open(" .. ("%q"):format(pidfile) .. "):read('n') > 0)"})
    assert.equal(0, code, err)
    assert.equal("true\n", out)
    assert.is_nil(io.open(pidfile))
  end)
end)

describe("luahost --daemon", function()
  it("detaches, writes the pid file, logs to --log, stops on SIGTERM",
     function()
    local pidfile, log = tmpname(), tmpname()
    os.remove(pidfile)
    local script = script_file([[
      local task = require "task"
      print("daemon up")
      io.stdout:flush()
      local t = require("uv").new_timer()
      t:start(20, 20, function()
        if task.exiting() then print("daemon draining") t:close() end
      end)]])
    local t0 = os.time()
    local out, err, code = run_host({"--daemon", "--pidfile", pidfile,
      "--log", log, script})
    local pid = tonumber(proc.slurp(pidfile):match("%d+"))
    finally(function() if pid then proc.kill(pid, "KILL") end end)
    assert.equal(0, code, err)
    assert.equal("", out)
    assert.is_true(os.time() - t0 < 5)
    assert.is_number(pid)
    assert.is_true(proc.alive(pid))
    proc.wait(function() return proc.slurp(log):match("daemon up") end)
    -- its own session: the daemon is not a session leader
    local stat = io.open("/proc/" .. pid .. "/stat"):read("a")
    local sid = tonumber(stat:match("^%d+ %b() %S+ %d+ %d+ (%d+)"))
    assert.are_not.equal(pid, sid)
    proc.kill(pid, "TERM")
    proc.wait(function() return not proc.alive(pid) end, nil,
      "the daemon to stop")
    assert.matches("daemon draining", proc.slurp(log))
    assert.is_nil(io.open(pidfile))
  end)

  it("refuses --log without --daemon", function()
    local _, err, code = run_host({"--log", tmpname(), "-e", "print(1)"})
    assert.equal(1, code)
    assert.matches("%-%-log needs %-%-daemon", err)
  end)

  it("fails (exit 1) when the daemon cannot start", function()
    local pidfile = tmpname()
    proc.write(pidfile, tostring(io.open("/proc/self/stat"):read("n")))
    local _, err, code = run_host({"--daemon", "--pidfile", pidfile, "-e",
      "print(1)"})
    assert.equal(1, code)
    assert.matches("is held by running process", err)
  end)

  it("shows a start-up error where it was started, then exits 1", function()
    local log = tmpname()
    -- an error in the main chunk: message and traceback on the starter's
    -- stderr, nothing left running
    local _, err, code = run_host({"--daemon", "--log", log, "-e",
      "error('boom at start')"})
    assert.equal(1, code)
    assert.matches("luahost: .-boom at start", err)
    assert.matches("traceback", err)
    -- a script that does not compile
    local bad = script_file("local x = = 1\n")
    local _, err2, code2 = run_host({"--daemon", bad})
    assert.equal(1, code2)
    assert.matches(bad:gsub("%p", "%%%0") .. ":1:", err2)
    -- a listen that fails at start
    local _, err3, code3 = run_host({"--daemon", "-e",
      "local net = require 'net'; local s = assert(net.listen{host = " ..
      "'127.0.0.1', port = 0}); assert(net.listen{host = '127.0.0.1', " ..
      "port = s:sockname() and select(2, s:sockname())})"})
    assert.equal(1, code3)
    assert.matches("EADDRINUSE", err3)
  end)
end)

describe("luahost --user", function()
  it("refuses an unknown user", function()
    local _, err, code = run_host({"--user", "no-such-user-here", "-e", "1"})
    assert.equal(1, code)
    assert.matches("no such user 'no%-such%-user%-here'", err)
  end)

  it("drops to nobody once the main chunk reached its first wait", function()
    if not is_root then
      pending("needs root: privileges can only be dropped by root")
      return
    end
    local script = script_file(uid_snippet .. [[
      local task = require "task"
      print("before " .. uid())
      task.sleep(0.01)
      print("after " .. uid())]])
    local out, err, code = run_host({"--user", "nobody", script})
    assert.equal(0, code, err)
    local nobody = tonumber(io.popen("id -u nobody"):read("a"))
    assert.matches("before 0\n", out)
    assert.matches("after " .. nobody .. "\n", out)
  end)

  it("drops every worker to nobody; the supervisor stays root", function()
    if not is_root then
      pending("needs root: privileges can only be dropped by root")
      return
    end
    local script = script_file(uid_snippet .. [[
      require("task").sleep(0.01)
      print("worker uid " .. uid())]])
    local out, err, code = run_host({"--workers", "2", "--user", "nobody",
      script})
    assert.equal(0, code, err)
    local nobody = tonumber(io.popen("id -u nobody"):read("a"))
    local _, n = out:gsub("worker uid " .. nobody .. "\n", "")
    assert.equal(2, n)
  end)
end)

describe("listening sockets handed over", function()
  local list = [[
    for _, l in ipairs(require("luahost").listen_fds()) do
      print(l.fd, l.name, l.family, l.ip, l.port)
    end]]

  it("binds --listen before the script and lists it", function()
    local out, err, code = run_host({"--listen", "127.0.0.1:0",
      "--listen", "[::1]:0", "-e", list})
    assert.equal(0, code, err)
    local fd1, port1 = out:match(
      "^(%d+)\t127%.0%.0%.1:0\tinet\t127%.0%.0%.1\t(%d+)\n")
    assert.is_not_nil(fd1, out)
    assert.is_true(tonumber(port1) > 0)
    assert.matches("\t%[::1%]:0\tinet6\t::1\t%d+\n", out)
  end)

  it("binds a unix socket path, replacing a stale socket file", function()
    local path = tmpname()
    os.remove(path)
    finally(function() os.remove(path) end)
    local code = [[
      local l = require("luahost").listen_fds()[1]
      print(l.family, l.path == ]] .. ("%q"):format(path) .. [[)]]
    local out, err, status = run_host({"--listen", path, "-e", code})
    assert.equal(0, status, err)
    assert.equal("unix\ttrue\n", out)
    -- the file outlived that process: nobody accepts on it, it is replaced
    assert.is_true(os.execute("test -S " .. shell_quote(path)))
    out, err, status = run_host({"--listen", path, "-e", code})
    assert.equal(0, status, err)
    assert.equal("unix\ttrue\n", out)
  end)

  it("refuses a bad --listen address", function()
    local _, err, code = run_host({"--listen", "nowhere", "-e", "1"})
    assert.equal(1, code)
    assert.matches("bad address 'nowhere'", err)
  end)

  it("hands the supervisor's sockets to every worker", function()
    local script = script_file([[
      local l = require("luahost").listen_fds()[1]
      print("worker " .. require("task").worker() .. " fd " .. l.fd ..
        " port " .. l.port)]])
    local out, err, code = run_host({"--workers", "2", "--listen",
      "127.0.0.1:0", script})
    assert.equal(0, code, err)
    local ports = {}
    for id, port in out:gmatch("worker (%d) fd 3 port (%d+)") do
      ports[tonumber(id)] = port
    end
    assert.is_not_nil(ports[1], out)
    assert.equal(ports[1], ports[2]) -- one socket, bound once
  end)

  -- systemd-socket-activate is not installed: spec/support/sdactivate.pl binds
  -- the socket, sets LISTEN_* and execs luahost with fd 3.
  local function activated(pidshift, code)
    local portfile = tmpname()
    local p = proc.start({"-e", code}, {wrapper = ("perl spec/support/sdactivate.pl " ..
      "127.0.0.1 %s web %d --"):format(portfile, pidshift)})
    finally(function() p:stop() end)
    assert.equal(0, p:wait_exit(), p:err())
    return p:out(), proc.slurp(portfile):match("%d+")
  end

  it("adopts systemd's LISTEN_FDS when LISTEN_PID is its own", function()
    local out, port = activated(0, list .. " print(os.getenv('LISTEN_FDS'))")
    assert.is_not_nil(port)
    assert.equal("3\tweb\tinet\t127.0.0.1\t" .. port .. "\nnil\n", out)
  end)

  it("ignores LISTEN_FDS meant for another process", function()
    local out = activated(1, list)
    assert.equal("", out)
  end)
end)

describe("luahost --daemon --log and SIGHUP", function()
  -- logrotate moves the log away, then sends SIGHUP
  local function rotate_and_check(args, pidfile, log)
    local _, err, code = run_host(args)
    local pid = tonumber(proc.slurp(pidfile):match("%d+"))
    finally(function() if pid then proc.kill(pid, "KILL") end end)
    assert.equal(0, code, err)
    proc.wait(function() return proc.slurp(log):match("tick") end, nil,
      "a tick in the log")
    assert(os.rename(log, log .. ".1"))
    finally(function() os.remove(log .. ".1") end)
    proc.kill(pid, "HUP")
    proc.wait(function() return proc.slurp(log):match("tick") end, nil,
      "a tick in the new log")
    assert.is_true(proc.alive(pid))
    proc.kill(pid, "TERM")
    proc.wait(function() return not proc.alive(pid) end)
  end

  local ticker = [[
    local uv = require "uv"
    local t = uv.new_timer()
    t:start(0, 50, function()
      if require("task").exiting() then t:close() return end
      print("tick")
      io.stdout:flush()
    end)]]

  it("reopens the log of a single process", function()
    local pidfile, log = tmpname(), tmpname()
    os.remove(pidfile)
    rotate_and_check({"--daemon", "--pidfile", pidfile, "--log", log, "-e",
      ticker}, pidfile, log)
  end)

  it("reopens the log for the next generation of workers", function()
    local pidfile, log = tmpname(), tmpname()
    os.remove(pidfile)
    local script = script_file(ticker)
    rotate_and_check({"--daemon", "--pidfile", pidfile, "--log", log,
      "--workers", "1", script}, pidfile, log)
    assert.matches("reload: starting generation 2", proc.slurp(log))
  end)
end)
