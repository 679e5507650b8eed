-- uv's system utilities (misc.c): shapes as luv returns them, values
-- checked against what the system reports by other means where possible.
local uv = require "uv"

local function sh(cmd)
  local f = assert(io.popen(cmd))
  local s = f:read("a")
  f:close()
  return (s:gsub("%s+$", ""))
end

describe("uv misc", function()
  after_each(assert_clean)

  it("version matches version_string bit by bit", function()
    local v, s = uv.version(), uv.version_string()
    assert.equal("number", type(v))
    local major, minor, patch = s:match("^(%d+)%.(%d+)%.(%d+)")
    assert.truthy(major, s)
    assert.equal(tonumber(major), v >> 16)
    assert.equal(tonumber(minor), (v >> 8) & 0xff)
    assert.equal(tonumber(patch), v & 0xff)
    assert.truthy(v >= 0x012c00) -- at least 1.44, what packages.txt pins
  end)

  it("lists loopback among the interfaces", function()
    local ifs = assert(uv.interface_addresses())
    local lo4
    for name, addrs in pairs(ifs) do
      assert.equal("string", type(name))
      for _, a in ipairs(addrs) do
        assert.equal("string", type(a.ip))
        assert.truthy(a.family == "inet" or a.family == "inet6")
        assert.equal("string", type(a.netmask))
        assert.equal("boolean", type(a.internal))
        assert.equal(6, #a.mac)
        if a.ip == "127.0.0.1" then lo4 = {name = name, a = a} end
      end
    end
    assert.truthy(lo4, "no 127.0.0.1 interface")
    assert.equal("lo", lo4.name)
    assert.is_true(lo4.a.internal)
    assert.equal("inet", lo4.a.family)
    assert.equal("255.0.0.0", lo4.a.netmask)
  end)

  it("names interface indexes", function()
    assert.equal("lo", uv.if_indextoname(1))
    assert.equal("string", type(uv.if_indextoiid(1)))
    local ok, _, name = uv.if_indextoname(99999)
    assert.is_nil(ok)
    assert.equal("ENXIO", name)
  end)

  it("knows the host: hostname, uname, uptime, memory, load, cpus", function()
    local host = uv.os_gethostname()
    assert.equal("string", type(host))
    assert.truthy(#host > 0)
    assert.equal(sh("uname -n"), host)
    local u = assert(uv.os_uname())
    assert.equal(sh("uname -s"), u.sysname)
    assert.equal(sh("uname -r"), u.release)
    assert.equal(sh("uname -m"), u.machine)
    assert.equal("string", type(u.version))
    assert.truthy(uv.uptime() > 0)
    local total, free = uv.get_total_memory(), uv.get_free_memory()
    assert.truthy(total > 0 and free > 0 and free <= total)
    assert.equal("number", type(uv.get_constrained_memory()))
    local a, b, c = uv.loadavg()
    assert.truthy(a >= 0 and b >= 0 and c >= 0)
    local cpus = assert(uv.cpu_info())
    assert.truthy(#cpus >= 1)
    assert.equal("string", type(cpus[1].model))
    assert.equal("number", type(cpus[1].times.idle))
    assert.truthy(uv.available_parallelism() >= 1)
  end)

  it("knows the process: pids, rusage, rss, passwd, exepath", function()
    assert.equal(tonumber(sh("echo $PPID")), uv.os_getpid())
    assert.equal(math.type(1), math.type(uv.os_getppid()))
    assert.truthy(uv.os_getppid() > 0)
    local ru = assert(uv.getrusage())
    assert.equal("number", type(ru.utime.sec))
    assert.equal("number", type(ru.stime.usec))
    assert.truthy(ru.maxrss > 0)
    assert.truthy(uv.resident_set_memory() > 0)
    local pw = assert(uv.os_get_passwd())
    assert.equal(tonumber(sh("id -u")), pw.uid)
    assert.equal(sh("id -un"), pw.username)
    assert.equal(LUAHOST, uv.exepath())
    assert.equal(tonumber(sh("id -u")), uv.getuid())
    assert.equal(tonumber(sh("id -g")), uv.getgid())
  end)

  it("reads and sets a process priority", function()
    -- A child of our own, so the suite's priority is left alone.
    local p, pid = uv.spawn("/bin/sleep", {args = {"30"}})
    local prio = uv.os_getpriority(pid)
    assert.equal(math.type(1), math.type(prio))
    assert.is_true(uv.os_setpriority(pid, 10))
    assert.equal(10, uv.os_getpriority(pid))
    assert.equal(tonumber(sh("ps -o ni= -p " .. pid)), 10)
    local ok, _, name = uv.os_getpriority(2^30)
    assert.is_nil(ok)
    assert.equal("ESRCH", name)
    assert.matches("bad argument #2",
      select(2, pcall(uv.os_setpriority, pid, 20)))
    p:kill(9)
    p:close()
  end)

  it("reads the directories", function()
    assert.equal(sh("pwd"), uv.cwd())
    assert.equal("string", type(uv.os_homedir()))
    assert.equal("string", type(uv.os_tmpdir()))
  end)

  it("changes directory and back", function()
    local here = uv.cwd()
    assert.equal(0, uv.chdir("/"))
    assert.equal("/", uv.cwd())
    assert.equal(0, uv.chdir(here))
    local ok, _, name = uv.chdir("/nonexistent/dir")
    assert.is_nil(ok)
    assert.equal("ENOENT", name)
    assert.equal(here, uv.cwd())
  end)

  it("gets, sets and unsets environment variables", function()
    local name = "LUAHOST_MISC_SPEC_VAR"
    local ok, _, ename = uv.os_getenv(name)
    assert.is_nil(ok)
    assert.equal("ENOENT", ename)
    assert.is_true(uv.os_setenv(name, "v1"))
    assert.equal("v1", uv.os_getenv(name))
    assert.equal("v1", os.getenv(name))
    local long = ("x"):rep(10000) -- larger than the first buffer
    assert.is_true(uv.os_setenv(name, long))
    assert.equal(long, uv.os_getenv(name, 10))
    assert.equal(long, uv.os_environ()[name])
    assert.is_true(uv.os_unsetenv(name))
    assert.is_nil(os.getenv(name))
  end)

  it("gettimeofday agrees with os.time, sleep blocks", function()
    local sec, usec = uv.gettimeofday()
    assert.truthy(math.abs(sec - os.time()) <= 1)
    assert.truthy(usec >= 0 and usec < 1000000)
    local t0 = uv.hrtime()
    uv.sleep(20)
    local dt = (uv.hrtime() - t0) / 1e6
    assert.truthy(dt >= 19, dt)
  end)

  it("makes random bytes, synchronously and with a callback", function()
    local a, b = uv.random(16), uv.random(16, 0)
    assert.equal(16, #a)
    assert.are_not.equal(a, b)
    assert.equal("", uv.random(0))
    local got
    assert.equal(0, uv.random(32, {}, expect(function(err, bytes)
      assert.is_nil(err)
      got = bytes
    end)))
    run_loop(function() return got ~= nil end)
    assert.equal(32, #got)
  end)

  it("random fails as luv does: E2BIG for a bad len, EINVAL for flags",
    function()
      -- luv's own test-misc "uv.random errors"
      assert.same({nil, "E2BIG: argument list too long", "E2BIG"},
        {uv.random(-1)})
      assert.same({nil, "E2BIG: argument list too long", "E2BIG"},
        {uv.random(2^40)})
      assert.same({nil, "EINVAL: invalid argument", "EINVAL"},
        {uv.random(0, -1)})
      assert.same({nil, "EINVAL: invalid argument", "EINVAL"},
        {uv.random(1, 5, function() error("never called") end)})
    end)

  it("raises on wrong arguments, naming them", function()
    local cases = {
      {uv.chdir}, {uv.chdir, {}}, {uv.os_getenv}, {uv.os_setenv, "x"},
      {uv.os_unsetenv, false}, {uv.if_indextoname, -1},
      {uv.if_indextoname, "lo"}, {uv.if_indextoiid, 2^40},
      {uv.sleep, -1}, {uv.sleep, 0.5}, {uv.random, 0.5}, {uv.random, 1, 0.5},
      {uv.random, 1, "x"}, {uv.random, 1, nil, 5},
      {uv.os_getpriority, "x"},
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(table.unpack(c))
      assert.is_false(ok, "case " .. i)
      assert.matches("bad argument", err, 1, true)
    end
  end)

  it("getpid is os_getpid", function()
    assert.equal(uv.os_getpid(), uv.getpid())
    assert.equal(math.type(1), math.type(uv.getpid()))
  end)

  it("process title: get, set, get", function()
    local path = tmpname()
    local f = assert(io.open(path, "w"))
    f:write([[
      local uv = require "uv"
      print(uv.get_process_title())
      print(uv.set_process_title("luahost-title-test"))
      print(uv.get_process_title())
      print(pcall(uv.set_process_title, "a\0b"))
    ]])
    f:close()
    local out, err, code = run_host({path})
    assert.equal("", err)
    assert.equal(0, code)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches("luahost", lines[1])
    assert.equal("0", lines[2])
    assert.equal("luahost-title-test", lines[3])
    assert.matches("^false\tbad argument #1", lines[4])
    assert.matches("bad argument #1",
      select(2, pcall(uv.set_process_title, {})))
  end)

  it("setuid/setgid: nothing on success, the fail triple when refused",
    function()
      assert.matches("bad argument #1", select(2, pcall(uv.setuid, -1)))
      assert.matches("bad argument #1", select(2, pcall(uv.setgid, "x")))
      assert.matches("bad argument #1", select(2, pcall(uv.setuid)))
      if uv.getuid() ~= 0 then
        pending("needs root to drop and try to regain privileges")
        return
      end
      local path = tmpname()
      local f = assert(io.open(path, "w"))
      f:write([[
        local uv = require "uv"
        print(select("#", uv.setgid(65534)), uv.getgid())
        print(select("#", uv.setuid(65534)), uv.getuid())
        print(uv.setuid(0))
        print(uv.setgid(0))
      ]])
      f:close()
      local out, err, code = run_host({path})
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("0\t65534\n0\t65534\n" ..
        "nil\tEPERM: operation not permitted\tEPERM\n" ..
        "nil\tEPERM: operation not permitted\tEPERM\n", out)
    end)

  it("translate_sys_error names an errno as luv does", function()
    assert.same({"ENOENT: no such file or directory", "ENOENT"},
      {uv.translate_sys_error(2)})
    assert.same({"EPIPE: broken pipe", "EPIPE"},
      {uv.translate_sys_error(32)})
    assert.equal(0, select("#", uv.translate_sys_error(0)))
    assert.matches("bad argument #1",
      select(2, pcall(uv.translate_sys_error, "x")))
    assert.matches("bad argument #1",
      select(2, pcall(uv.translate_sys_error, 0.5)))
  end)

  it("print_all_handles / print_active_handles dump to stderr", function()
    local path = tmpname()
    local f = assert(io.open(path, "w"))
    f:write([[
      local uv = require "uv"
      local t, i = uv.new_timer(), uv.new_idle()
      t:start(1000, 0, function() end)
      uv.print_all_handles()
      io.stderr:write("--\n")
      uv.print_active_handles()
      t:close() i:close()
    ]])
    f:close()
    local out, err, code = run_host({path})
    assert.equal("", out)
    assert.equal(0, code)
    local all, active = err:match("^(.*)%-%-\n(.*)$")
    assert.matches("timer", all)
    assert.matches("idle", all)
    assert.matches("%[RA%-%] timer", active)
    assert.is_nil(active:find("idle", 1, true))
  end)

  it("disable_stdio_inheritance returns nothing; spawn still works",
    function()
      local path = tmpname()
      local f = assert(io.open(path, "w"))
      f:write([[
        local uv = require "uv"
        print(select("#", uv.disable_stdio_inheritance()))
        local p = uv.spawn("/bin/sh", {args = {"-c", "exit 7"}},
          function(code) print("child", code) end)
        uv.run()
        p:close()
      ]])
      f:close()
      local out, err, code = run_host({path})
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("0\nchild\t7\n", out)
    end)

  it("tty vterm state: Windows only, answered as libuv does", function()
    local ok, err, name = uv.tty_get_vterm_state()
    assert.is_nil(ok)
    assert.equal("ENOTSUP", name)
    assert.matches("^ENOTSUP: ", err)
    assert.equal(0, select("#", uv.tty_set_vterm_state("supported")))
    assert.equal(0, select("#", uv.tty_set_vterm_state("unsupported")))
    assert.matches("bad argument #1",
      select(2, pcall(uv.tty_set_vterm_state, "maybe")))
    assert.matches("bad argument #1",
      select(2, pcall(uv.tty_set_vterm_state)))
  end)

  it("constants: luv 1.44's names, this system's values", function()
    local names = {}
    for name, v in pairs(uv.constants) do
      assert.equal("integer", math.type(v), name)
      names[#names + 1] = name
    end
    table.sort(names)
    -- luv 1.44's names: every one is here (later luv releases add R_OK,
    -- W_OK, X_OK, F_OK and TTY_MODE_*, which are here too)
    local luv144 = {"AF_APPLETALK", "AF_ATMPVC", "AF_AX25", "AF_INET",
      "AF_INET6", "AF_IPX", "AF_NETLINK", "AF_PACKET", "AF_UNIX", "AF_X25",
      "AI_ADDRCONFIG", "AI_ALL", "AI_NUMERICHOST", "AI_NUMERICSERV",
      "AI_PASSIVE", "AI_V4MAPPED", "O_APPEND", "O_CREAT", "O_DSYNC",
      "O_EXCL", "O_NOCTTY", "O_NONBLOCK", "O_RDONLY", "O_RDWR", "O_RSYNC",
      "O_SYNC", "O_TRUNC", "O_WRONLY", "SIGABRT", "SIGALRM", "SIGBUS",
      "SIGCHLD", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL", "SIGINT", "SIGIO",
      "SIGIOT", "SIGKILL", "SIGPIPE", "SIGPOLL", "SIGPROF", "SIGPWR",
      "SIGQUIT", "SIGSEGV", "SIGSTKFLT", "SIGSTOP", "SIGSYS", "SIGTERM",
      "SIGTRAP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGUSR1",
      "SIGUSR2", "SIGVTALRM", "SIGWINCH", "SIGXCPU", "SIGXFSZ", "SOCK_DGRAM",
      "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET", "SOCK_STREAM",
      "TCP_IPV6ONLY", "UDP_IPV6ONLY", "UDP_MMSG_CHUNK", "UDP_MMSG_FREE",
      "UDP_PARTIAL", "UDP_RECVMMSG", "UDP_REUSEADDR"}
    for _, name in ipairs(luv144) do
      assert.equal("integer", math.type(uv.constants[name]), name)
    end
    for _, name in ipairs({"R_OK", "W_OK", "X_OK", "F_OK",
        "TTY_MODE_NORMAL", "TTY_MODE_RAW", "TTY_MODE_IO"}) do
      assert.equal("integer", math.type(uv.constants[name]), name)
    end
    assert.is_true(#names >= #luv144 + 7)
    local c = uv.constants
    assert.same({9, 2, 15, 0}, {c.SIGKILL, c.SIGINT, c.SIGTERM, c.O_RDONLY})
    -- the numbers are the ones the rest of uv takes
    local r = assert(uv.getaddrinfo("127.0.0.1", nil,
      {family = c.AF_INET, socktype = c.SOCK_STREAM}))
    assert.equal("inet", r[1].family)
    assert.equal("stream", r[1].socktype)
    local got
    local s = uv.new_signal()
    s:start(c.SIGUSR1, function(name) got = name end)
    assert.equal(0, uv.kill(uv.os_getpid(), c.SIGUSR1))
    run_loop(function() return got ~= nil end)
    assert.equal("sigusr1", got)
    s:close()
  end)
end)
