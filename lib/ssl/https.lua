--[[
ssl.https: LuaSec's https module over luahost's ssl (lib/ssl.lua): what
Debian's socket.http asks for an https:// URL (https.tcp), and
https.request, the same as socket.http.request for https URLs. Verified
by default: the request table may carry LuaSec's fields (cafile, capath,
verify, certificate, key, protocol, alpn).
]]
local socket = require "socket"
local ssl = require "ssl"

local M = {_VERSION = "1.3.2 (luahost)", PORT = 443, TIMEOUT = 60}

local FIELDS = {"cafile", "capath", "verify", "certificate", "key",
  "protocol", "alpn", "ciphers", "ciphersuites"}

--- tcp(params) -> function() -> a socket whose connect is TLS
function M.tcp(params)
  local p = {mode = "client"}
  for _, k in ipairs(FIELDS) do p[k] = params and params[k] end
  return function()
    local conn = {sock = assert(socket.tcp())}
    function conn:settimeout(...) return self.sock:settimeout(...) end
    function conn:connect(host, port)
      local ok, err = self.sock:connect(host, port)
      if not ok then return nil, err end
      local t = self.sock
      self.sock, err = ssl.wrap(t, p)
      if not self.sock then
        t:close()
        return nil, err
      end
      self.sock:sni(host)
      ok, err = self.sock:dohandshake()
      if not ok then return nil, err end
      -- from now on, every call is the TLS connection's
      setmetatable(self, {__index = function(_, name)
        local f = self.sock[name]
        if type(f) == "function" then
          return function(_, ...) return f(self.sock, ...) end
        end
        return f
      end})
      self.settimeout = nil
      return 1
    end
    return conn
  end
end

--- request(url [, body]) or request{...}: as socket.http.request, for
--- https URLs.
function M.request(reqt, body)
  local http = require "socket.http"
  if type(reqt) == "string" then
    return http.request(reqt, body)
  end
  reqt.create = reqt.create or M.tcp(reqt)
  return http.request(reqt)
end

return M
