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

return M
