--[[
socket: LuaSocket's API, non-blocking: socket.core (lib/socket/core.lua)
plus the helpers LuaSocket's own socket.lua adds (connect4/6, bind, try,
choose, sink, source, BLOCKSIZE). Every call that would wait parks only
the running task. See docs/socket.md.
]]
local socket = require "socket.core"

function socket.connect4(address, port, laddress, lport)
  return socket.connect(address, port, laddress, lport, "inet")
end

function socket.connect6(address, port, laddress, lport)
  return socket.connect(address, port, laddress, lport, "inet6")
end

-- bind(host, port [, backlog]): a listening tcp{server}; "*" is every
-- IPv4 interface, as in LuaSocket.
function socket.bind(host, port, backlog)
  local s = socket.tcp()
  s:setoption("reuseaddr", true)
  local ok, err = s:bind(host, port)
  if ok then ok, err = s:listen(backlog) end
  if not ok then
    s:close()
    return nil, err
  end
  return s
end

socket.try = socket.newtry()

function socket.choose(tbl)
  return function(name, opt1, opt2)
    if type(name) ~= "string" then
      name, opt1, opt2 = "default", name, opt1
    end
    local f = tbl[name or "nil"]
    if not f then error("unknown key (" .. tostring(name) .. ")", 3) end
    return f(opt1, opt2)
  end
end

-- {====================================================== LTN12 sinks/sources

socket.BLOCKSIZE = 2048
local sinkt, sourcet = {}, {}
socket.sinkt, socket.sourcet = sinkt, sourcet

local function sink_object(sock, close)
  return setmetatable({getfd = function() return sock:getfd() end,
    dirty = function() return sock:dirty() end}, {
    __call = function(_, chunk)
      if chunk then return sock:send(chunk) end
      if close then sock:close() end
      return 1
    end})
end

sinkt["close-when-done"] = function(sock) return sink_object(sock, true) end
sinkt["keep-open"] = function(sock) return sink_object(sock, false) end
sinkt.default = sinkt["keep-open"]
socket.sink = socket.choose(sinkt)

local function source_object(sock, fn)
  return setmetatable({getfd = function() return sock:getfd() end,
    dirty = function() return sock:dirty() end}, {__call = fn})
end

sourcet["by-length"] = function(sock, length)
  return source_object(sock, function()
    if length <= 0 then return nil end
    local size = math.min(socket.BLOCKSIZE, length)
    local chunk, err = sock:receive(size)
    if err then return nil, err end
    length = length - #chunk
    return chunk
  end)
end

sourcet["until-closed"] = function(sock)
  local done = false
  return source_object(sock, function()
    if done then return nil end
    local chunk, err, partial = sock:receive(socket.BLOCKSIZE)
    if not err then return chunk end
    if err == "closed" then
      sock:close()
      done = true
      return partial
    end
    return nil, err
  end)
end

sourcet.default = sourcet["until-closed"]
socket.source = socket.choose(sourcet)

-- }======================================================

return socket
