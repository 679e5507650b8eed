--[[
ssl: LuaSec's API (ssl.newcontext, ssl.wrap, :dohandshake, :receive,
:send...) over luahost's TLS (the tls module under net) and socket
(LuaSocket on tasks), so code written for LuaSec runs unchanged, without
blocking the loop: with require "ssl.https" Debian's socket.http fetches
https:// URLs. See docs/socket.md, "LuaSec".

One difference, on purpose: a client verifies the server (the certificate
against cafile/capath or the system store, and the host name given to
sni() or connected to) unless verify = "none" is written out; LuaSec's
default is no verification and it never checks the host name.
]]
local net = require "net"
local tls = require "tls"
local x509 = require "ssl.x509"
local socket = require "socket"

local M = {_VERSION = "1.3.2 (luahost)"}

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- {====================================================== contexts

local PROTOCOLS = {
  any = {}, tlsv1_2 = {min = "1.2", max = "1.2"},
  tlsv1_3 = {min = "1.3", max = "1.3"},
  sslv23 = {}, -- (LuaSec's old name for "any")
}

local Context = {}
Context.__index = Context
Context.__name = "SSL context"
function Context.__tostring(c)
  return ("SSL context (%s): %s"):format(c.mode, tostring(c.tls))
end

local function has(list, what)
  if list == what then return true end
  if type(list) ~= "table" then return false end
  for _, v in ipairs(list) do if v == what then return true end end
  return false
end

-- params (LuaSec's) -> options of tls.context
local function options(params)
  local mode = params.mode
  if mode ~= "client" and mode ~= "server" then
    return nil, "invalid mode"
  end
  local o = {}
  local proto = params.protocol or "any"
  local p = PROTOCOLS[proto]
  if not p then
    if proto == "tlsv1" or proto == "tlsv1_1" or proto == "sslv3" then
      return nil, "protocol " .. proto .. " refused: TLS 1.2 is the minimum"
    end
    return nil, "invalid protocol (" .. tostring(proto) .. ")"
  end
  o.min_version, o.max_version = p.min, p.max
  o.cert, o.key = params.certificate, params.key
  o.ca = params.cafile or params.capath
  o.ciphers, o.ciphersuites = params.ciphers, params.ciphersuites
  local alpn = params.alpn
  if type(alpn) == "string" then alpn = {alpn} end
  o.alpn = alpn
  local v = params.verify
  if mode == "client" then
    -- verified unless "none" is written out (LuaSec: unverified)
    o.verify = not has(v, "none")
  elseif has(v, "fail_if_no_peer_cert") then
    o.verify = "require"
  elseif has(v, "peer") then
    o.verify = "peer"
  end
  return o
end

--- newcontext(params) -> context | nil, err
function M.newcontext(params)
  if type(params) ~= "table" then
    argerror(1, "newcontext", "table expected")
  end
  local o, err = options(params)
  if not o then return nil, err end
  local ok, ctx
  ok, ctx, err = pcall(tls.context, o)
  if not ok then return nil, (tostring(ctx):match("%((.*)%)$") or ctx) end
  if not ctx then return nil, err end
  return setmetatable({tls = ctx, mode = params.mode}, Context)
end

-- }======================================================

-- {====================================================== connections

local Conn = {}
Conn.__name = "SSL connection"
local methods = {}
Conn.__index = methods
function Conn.__tostring(c)
  return "SSL connection: " .. tostring(c.sock)
end

--- wrap(sock, context | params) -> conn | nil, err: sock is a connected
--- tcp{client} of require "socket"; the handshake is dohandshake's.
function M.wrap(sock, ctx)
  if getmetatable(ctx) ~= Context then
    if type(ctx) ~= "table" then
      argerror(2, "wrap", "SSL context or table expected")
    end
    local err
    ctx, err = M.newcontext(ctx)
    if not ctx then return nil, err end
  end
  if type(sock) ~= "table" or type(sock.conn) ~= "userdata" then
    return nil, "socket is not a connected tcp{client}"
  end
  return setmetatable({sock = sock, ctx = ctx}, Conn)
end

local function timeout_of(s)
  local b, t = s.sock:gettimeout() -- (-1: none)
  if b < 0 then return t >= 0 and t or nil end
  if t < 0 then return b end
  return math.min(b, t)
end

--- dohandshake() -> true | nil, err
function methods.dohandshake(c)
  if c.done then return true end
  local conn = c.sock.conn
  if not conn or conn:is_closed() then return nil, "closed" end
  local ok, err = conn:starttls(c.ctx.tls, {server = c.ctx.mode == "server",
    host = c.host, timeout = timeout_of(c)})
  if not ok then return nil, err end
  c.done = true
  return true
end

--- sni(name): client: the name sent and verified (default: none, so
--- the address connected to is what the certificate must name).
--- Servers: sni{[name] = context} is not supported (give sni = to
--- tls.context instead): it raises.
function methods.sni(c, name)
  if c.ctx.mode == "server" then
    error("sni: server name maps are not supported; use tls.context{sni=}",
      2)
  end
  if type(name) ~= "string" then argerror(1, "sni", "string expected") end
  c.host = name
  return true
end

-- What the tcp{} does the same on TLS: net runs TLS under it.
for _, name in ipairs{"receive", "send", "close", "settimeout",
  "gettimeout", "getfd", "dirty", "getstats", "setstats", "getpeername",
  "getsockname", "setoption", "getoption", "shutdown"} do
  methods[name] = function(c, ...)
    local f = c.sock[name]
    return f(c.sock, ...)
  end
end

local function info(c)
  local conn = c.sock.conn
  return conn and not conn:is_closed() and conn:tlsinfo() or nil
end

--- info([field]) -> {protocol =, cipher =, ...} | value: LuaSec's fields
--- (read from OpenSSL's description of the cipher, as LuaSec reads them),
--- and alpn and resumed
function methods.info(c, field)
  local i = info(c)
  if not i then return nil end
  local t = {protocol = i.version, cipher = i.cipher, alpn = i.alpn,
    resumed = i.resumed}
  local d = i.cipher_description
  if d then
    local _, _, key, au, enc, mac = d:match(
      "^(%S+)%s+(%S+)%s+Kx=(%S+)%s+Au=(%S+)%s+Enc=(%S+)%s+Mac=(%S+)")
    t.key, t.authentication, t.encryption, t.mac = key, au, enc, mac
    t.export = d:match("%sexport%s*$") ~= nil
    t.bits, t.algbits = i.cipher_bits + 0.0, i.cipher_algbits + 0.0
  end
  if field then return t[field] end
  return t
end

function methods.getalpn(c)
  local i = info(c)
  return i and i.alpn
end

function methods.getsniname(c)
  local i = info(c)
  return i and i.servername
end

--- getpeercertificate([n]) -> cert | nil: the peer's certificate (n = 1,
--- the default) or the n-th of the chain it sent, as LuaSec's x509
--- objects (lib/ssl/x509.lua)
function methods.getpeercertificate(c, n)
  local i = info(c)
  if not i or not i.peer then return nil end
  n = n or 1
  if math.type(n) ~= "integer" or n < 1 then
    argerror(1, "getpeercertificate", "positive integer expected")
  end
  local pem = n == 1 and i.peer.pem or (i.peer.chain[n] or {}).pem
  return pem and x509.load(pem) or nil
end

--- getpeerchain() -> {cert...} | nil: the chain the peer sent, leaf first
function methods.getpeerchain(c)
  local i = info(c)
  if not i or not i.peer then return nil end
  local t = {}
  for k, e in ipairs(i.peer.chain) do t[k] = x509.load(e.pem) end
  return t
end

--- getpeerverification() -> true | false, {error}
function methods.getpeerverification(c)
  local i = info(c)
  if not i or not i.peer then return false, {"no peer certificate"} end
  if i.peer.verified then return true end
  return false, {i.peer.verify_error or "not verified"}
end

function methods.want() return "nothing" end

-- }======================================================

M.loadcertificate = x509.load -- (LuaSec's: a PEM certificate)
M.socket = socket
M.net = net

return M
