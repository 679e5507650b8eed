-- ssl_spec's certificate comparison, run twice: by lua5.4 with Debian's
-- LuaSec (the reference) and by luahost with its ssl.x509. For each PEM
-- file named, every method of its certificate object, one line each.
-- usage: FILE...
local x509 = require "ssl.x509"

local function show(v)
  if type(v) ~= "table" then
    return type(v) == "string" and ("%q"):format(v):gsub("\\\n", "\\n") or
      tostring(v)
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. "=" .. show(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end

for _, name in ipairs(arg) do
  local f = assert(io.open(name, "rb"))
  local pem = f:read("a")
  f:close()
  local c = assert(x509.load(pem))
  print(name:match("[^/]*$"))
  print("subject", show(c:subject()))
  print("issuer", show(c:issuer()))
  print("notbefore", c:notbefore())
  print("notafter", c:notafter())
  print("serial", c:serial())
  for _, alg in ipairs{"sha1", "sha256", "sha512"} do
    print("digest " .. alg, c:digest(alg))
  end
  print("digest", c:digest())
  print("pem", c:pem() == pem)
  print("pubkey", c:pubkey())
  print("signature", c:getsignaturename())
  print("extensions", show(c:extensions()))
  print("validat now", c:validat(os.time()))
  print("validat 0", c:validat(0))
  print("equal", c == assert(x509.load(pem)))
end
