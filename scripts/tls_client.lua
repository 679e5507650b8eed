--[[
tls_client.lua: a TLS probe, like `openssl s_client -brief`: connects,
prints the certificate chain the server sent, the version, the cipher, the
ALPN protocol and the verification result, then leaves.

  usage: luahost scripts/tls_client.lua HOST PORT [options]
    --ca FILE          trust FILE (or a directory) instead of the system store
    --servername NAME  SNI and the name checked (default: HOST)
    --alpn P1,P2       offer these protocols
    --cert FILE --key FILE   a client certificate
    --send TEXT        write TEXT after the handshake, print the first line
  try:   luahost scripts/tls_client.lua example.org 443 --alpn h2,http/1.1

Exit status: 0 verified, 1 the certificate did not verify (the chain is
still shown, from a second, unverified connection), 2 no connection.
]]
local net = require "net"

local host, port = arg[1], tonumber(arg[2] or "")
if not host or not port then
  io.stderr:write("usage: luahost scripts/tls_client.lua HOST PORT ",
    "[--ca FILE] [--servername NAME] [--alpn P1,P2] [--cert F --key F] ",
    "[--send TEXT]\n")
  os.exit(2)
end

local opts, send = {}, nil
local i = 3
while arg[i] do
  local o, v = arg[i], arg[i + 1]
  if v == nil then
    io.stderr:write("tls_client: ", o, " needs a value\n")
    os.exit(2)
  end
  if o == "--ca" then opts.ca = v
  elseif o == "--servername" then opts.servername = v
  elseif o == "--cert" then opts.cert = v
  elseif o == "--key" then opts.key = v
  elseif o == "--send" then send = v
  elseif o == "--alpn" then
    opts.alpn = {}
    for p in v:gmatch("[^,]+") do opts.alpn[#opts.alpn + 1] = p end
  else
    io.stderr:write("tls_client: unknown option ", o, "\n")
    os.exit(2)
  end
  i = i + 2
end

local function show(conn)
  local t = conn:tlsinfo()
  local peer = t.peer or {}
  print("chain:")
  for n, cert in ipairs(peer.chain or {}) do
    print(("  %d s:%s"):format(n - 1, cert.subject))
    print(("    i:%s"):format(cert.issuer))
  end
  print("not after:   " .. tostring(peer.not_after))
  print("fingerprint: " .. tostring(peer.fingerprint))
  print("version:     " .. t.version)
  print("cipher:      " .. t.cipher)
  print("alpn:        " .. (t.alpn or "(none)"))
  print("resumed:     " .. tostring(t.resumed))
end

local conn, err = net.connect(host, port, {tls = opts, timeout = 10})
local status = 0
if not conn then
  if not err:match("^tls: certificate verify failed") then
    io.stderr:write("tls_client: ", err, "\n")
    os.exit(2)
  end
  print("verification: FAILED: " .. err)
  status = 1
  -- the chain anyway, to see what is wrong (nothing is sent on it)
  local loose = {} -- (a new table: net makes one context per table)
  for k, v in pairs(opts) do loose[k] = v end
  loose.verify = false
  conn, err = net.connect(host, port, {tls = loose, timeout = 10})
  if not conn then
    io.stderr:write("tls_client: ", err, "\n")
    os.exit(2)
  end
else
  print("verification: OK (" .. (opts.servername or host) .. ")")
end
show(conn)
if send and status == 0 then
  conn:write(send)
  print("reply:       " .. tostring(conn:read("l")))
end
conn:close()
os.exit(status)
