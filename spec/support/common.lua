--[[
spec/support/common.lua: small helpers several specs use (one copy here
rather than one per spec).

  local common = require "common"
  common.have(cmd)          the command is installed (on PATH)
  common.free_port()        a loopback TCP port nobody listens on (bound,
                            read back, closed)
  common.slurp(name)        a file's contents, "" when it cannot be read
  common.sh(cmd[, secs])    run a shell command line to completion, killed
                            after secs (default 60): stdout and stderr
                            together, and the exit status
  common.close_after_shutdown(listen_opts, host, connect_opts)
                            in a task: a client queues 8 MiB, shuts down
                            and closes before the server reads; returns
                            the size and what the server read
]]
local net = require "net"

local M = {}

function M.have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

function M.free_port()
  local s = assert(net.listen{host = "127.0.0.1", port = 0})
  local _, port = s:sockname()
  s:close()
  return port
end

M.slurp = require("process_helper").slurp

function M.sh(cmd, secs)
  local p = assert(io.popen(("timeout -s KILL %d sh -c %s 2>&1"):format(
    secs or 60, shell_quote(cmd))))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

function M.close_after_shutdown(listen_opts, host, connect_opts)
  local task = require "task"
  local size, closed, got = 8 * 1024 * 1024, false, nil
  listen_opts.port = 0
  listen_opts.max_read = 2 * size -- (read whole below)
  connect_opts.write_hwm = 4 * size -- (the write queues, never waits)
  local s = assert(net.listen(listen_opts))
  local _, port = s:sockname()
  local t = task.spawn(function()
    local c = assert(s:accept(5))
    while not closed do task.sleep(0.01) end -- read only after the close
    got = assert(c:read("a"))
    c:close()
  end)
  local c = assert(net.connect(host, port, connect_opts))
  assert(c:write(string.rep("q", size)))
  assert(c:shutdown())
  c:close()
  closed = true
  t:join()
  s:close()
  return size, got
end

-- A raw TCP test server on loopback: each accepted conn gets 5 s reads
-- and runs fn(c) in a task of its own (call inside a task). Returns the
-- server and its port; ls:close() ends it.
function M.raw_server(fn)
  local task = require "task"
  local ls = assert(net.listen{host = "127.0.0.1", port = 0})
  task.spawn(function()
    while true do
      local c = ls:accept()
      if not c then return end
      task.spawn(function()
        c:settimeout(5)
        fn(c)
      end)
    end
  end)
  return ls, select(2, ls:sockname())
end

return M
