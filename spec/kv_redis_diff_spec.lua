-- scripts/kv_server.lua says redis-cli and Redis clients work with it:
-- the same seeded random commands to it and to redis-server itself, every
-- reply compared (spec/support/kv_compare.py says how).
local proc = require "process_helper"

local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

local describe_if = have("redis-server") and describe or pending

describe_if("kv_server.lua against redis-server", function()
  it("answers 3 x 3,000 random commands as redis-server does", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. shell_quote(dir)))
    local sock = dir .. "/redis.sock"
    local pidf = dir .. "/redis.pid"
    assert(os.execute(("timeout -s KILL 300 redis-server --port 0 " ..
      "--unixsocket %s --save '' --appendonly no --dir %s " ..
      "--daemonize yes --pidfile %s --logfile %s/redis.log"):format(
      shell_quote(sock), shell_quote(dir), shell_quote(pidf),
      shell_quote(dir))))
    local kv = proc.start({"scripts/kv_server.lua", "127.0.0.1", "0"})
    finally(function()
      kv:stop()
      local f = io.open(pidf)
      local pid = f and f:read("a"):match("%d+")
      if f then f:close() end
      if pid then os.execute("kill " .. pid) end
      os.execute("rm -rf " .. shell_quote(dir))
    end)
    local port = kv:wait_for("listening on 127%.0%.0%.1:(%d+)", 20)
    proc.wait(function()
      return os.execute("test -S " .. shell_quote(sock)) == true
    end, 20, "redis-server's socket")
    for seed = 1, 3 do
      local h = assert(io.popen(("/usr/bin/python3 " ..
        "spec/support/kv_compare.py %s %s %d 3000 2>&1"):format(
        shell_quote(sock), port, seed)))
      local out = h:read("a")
      h:close()
      assert.matches("differences 0\n$", out)
    end
  end)
end)
