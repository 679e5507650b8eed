--[[
ssl.x509: LuaSec's certificate objects, over tls.x509 (lib/tls_x509.c).

  local x509 = require "ssl.x509"
  local cert = assert(x509.load(pem))
  cert:subject()    --> {{oid = "2.5.4.3", name = "commonName",
                    --    value = "localhost"}, ...}
  cert:digest()     --> SHA-1 in hex ("sha256", "sha512" too)

Also what ssl's getpeercertificate() and getpeerchain() return. Methods as
LuaSec 1.2's: subject, issuer, notbefore, notafter, serial, digest, pem,
pubkey, validat, extensions (the subject alternative names),
getsignaturename.
]]
local tls = require "tls"

local M = {}

local Cert = {}
Cert.__index = Cert
Cert.__name = "X509 certificate"

-- A fresh copy each call, as LuaSec builds its tables anew.
local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = copy(v) end
  return c
end

local function info(x)
  if getmetatable(x) ~= Cert then
    error("bad argument #1 (X509 certificate expected, got " .. type(x) ..
      ")", 3)
  end
  return x._i
end

function Cert.subject(x) return copy(info(x).subject) end
function Cert.issuer(x) return copy(info(x).issuer) end
function Cert.notbefore(x) return info(x).notbefore end
function Cert.notafter(x) return info(x).notafter end
function Cert.serial(x) return info(x).serial end
function Cert.pem(x) return info(x).pem end
function Cert.getsignaturename(x) return info(x).signature end
function Cert.extensions(x) return copy(info(x).extensions) end

function Cert.pubkey(x)
  local i = info(x)
  return i.pubkey, i.pubkey_type, i.pubkey_bits
end

--- digest([alg]) -> hex: "sha1" (the default), "sha256" or "sha512"
function Cert.digest(x, alg)
  local d = info(x).digests[alg or "sha1"]
  if not d then
    error("bad argument #1 to 'digest' (invalid digest type)", 2)
  end
  return d
end

--- validat(time) -> is the certificate valid at time (seconds)
function Cert.validat(x, t)
  local i = info(x)
  if type(t) ~= "number" then
    error("bad argument #1 to 'validat' (number expected, got " .. type(t) ..
      ")", 2)
  end
  return i.notbefore_s ~= nil and i.notafter_s ~= nil and
    t >= i.notbefore_s and t <= i.notafter_s
end

function Cert.__tostring(x)
  return ("X509 certificate: %s"):format(tostring(x._i):match("0x%x+"))
end

--- load(pem) -> cert | nil, err
function M.load(pem)
  if type(pem) ~= "string" then
    error("bad argument #1 to 'load' (string expected, got " .. type(pem) ..
      ")", 2)
  end
  local i, err = tls.x509(pem)
  if not i then return nil, err end
  return setmetatable({_i = i}, Cert)
end

return M
