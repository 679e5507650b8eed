-- ssl_spec's info() comparison, run twice: by lua5.4 with Debian's LuaSec
-- (the reference) and by luahost with its ssl. Connects to PORT with
-- protocol PROTOCOL (verify none: the reference's defaults are not the
-- question here), prints info()'s fields sorted, a line each: name,
-- value, its type (alpn and resumed, luahost's own, left out), then
-- info("cipher"). usage: PORT PROTOCOL
local socket, ssl = require "socket", require "ssl"
local s = socket.tcp()
s:settimeout(10)
assert(s:connect("127.0.0.1", tonumber(arg[1])))
local c = assert(ssl.wrap(s, {mode = "client", protocol = arg[2],
  verify = "none"}))
assert(c:dohandshake())
local i = c:info()
local keys = {}
for k in pairs(i) do
  if k ~= "alpn" and k ~= "resumed" then keys[#keys + 1] = k end
end
table.sort(keys)
for _, k in ipairs(keys) do
  print(k, i[k], math.type(i[k]) or type(i[k]))
end
print("info(cipher)", c:info("cipher"))
c:close()
