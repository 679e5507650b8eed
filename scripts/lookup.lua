--[[
lookup.lua: name service look-ups, like host(1) and getent(1).

  usage: luahost scripts/lookup.lua [-4|-6] NAME   addresses of NAME
         luahost scripts/lookup.lua ADDRESS        the name of ADDRESS
         luahost scripts/lookup.lua -s SERVICE|PORT [tcp|udp]
         luahost scripts/lookup.lua -p PROTOCOL|NUMBER
         luahost scripts/lookup.lua -i             interfaces and addresses
         luahost scripts/lookup.lua -H             this host's name
  try:   luahost scripts/lookup.lua localhost

Output, one answer a line:
  NAME has address ADDRESS   (and "has IPv6 address" for IPv6)
  ADDRESS is NAME
  SERVICE PORT/PROTO         (as getent services)
  PROTOCOL NUMBER            (as getent protocols)
  IFNAME ADDRESS FAMILY
Exit status 0, or 1 when nothing is found (the reason goes to stderr).
]]
local net = require "net"

local USAGE = "usage: lookup.lua [-4|-6] NAME | ADDRESS | -s SERVICE [PROTO]" ..
  " | -p PROTOCOL | -i | -H\n"

local function fail(what, err)
  io.stderr:write("lookup: ", what, ": ", tostring(err), "\n")
  os.exit(1)
end

local opt, a1, a2 = arg[1], arg[2], arg[3]
if not opt then io.stderr:write(USAGE) os.exit(2) end

if opt == "-H" then
  print(assert(net.hostname()))

elseif opt == "-i" then
  local list = assert(net.interfaces())
  for _, i in ipairs(list) do
    print(i.name, i.address, i.family)
  end

elseif opt == "-s" and a1 then
  -- net.service maps a name to its port and a port to its (canonical)
  -- name; going name -> port -> name prints what getent prints for an
  -- alias too ("www" -> "http 80/tcp").
  local proto = a2 or "tcp"
  local port = tonumber(a1)
  if port and not (math.tointeger(port) and port >= 0 and port <= 65535)
  then
    fail(a1, "not a port (0..65535)")
  end
  if not port then
    local err
    port, err = net.service(a1, proto)
    if not port then fail(a1 .. "/" .. proto, err) end
  end
  local name, err = net.service(math.tointeger(port), proto)
  if not name then fail(a1 .. "/" .. proto, err) end
  print(("%s %d/%s"):format(name, port, proto))

elseif opt == "-p" and a1 then
  local number = tonumber(a1)
  if number and not (math.tointeger(number) and number >= 0 and
    number <= 255) then
    fail(a1, "not a protocol number (0..255)")
  end
  if not number then
    local err
    number, err = net.protocol(a1)
    if not number then fail(a1, err) end
  end
  local name, err = net.protocol(math.tointeger(number))
  if not name then fail(a1, err) end
  print(("%s %d"):format(name, number))

elseif net.is_ip(opt) then
  local name, err = net.reverse(opt)
  if not name then fail(opt, err) end
  print(opt .. " is " .. name)

else
  local family
  if opt == "-4" or opt == "-6" then
    family, opt = opt == "-4" and "inet" or "inet6", a1
    if not opt then io.stderr:write(USAGE) os.exit(2) end
  end
  local addrs, err = net.lookup(opt, {family = family})
  if not addrs then fail(opt, err) end
  for _, addr in ipairs(addrs) do
    print(("%s has %saddress %s"):format(opt,
      addr:find(":", 1, true) and "IPv6 " or "", addr))
  end
end
