-- The client of socket_spec's receive comparison, run twice: by lua5.4
-- with Debian's LuaSocket (the reference) and by luahost with its own
-- socket module. usage: CASES_FILE PORT. For each case (a connection),
-- it makes the case's receive calls and prints one line of results.
local socket = require "socket"
local cases = dofile(arg[1])
local port = tonumber(arg[2])

-- values up to the last non-nil, quoted (one line: newlines escaped)
local function show(...)
  local n = select("#", ...)
  while n > 0 and select(n, ...) == nil do n = n - 1 end
  local t = {}
  for i = 1, n do
    local v = select(i, ...)
    t[i] = type(v) == "string" and (("%q"):format(v):gsub("\\\n", "\\n")) or
      tostring(v)
  end
  return table.concat(t, ", ")
end

print(socket._VERSION)
for n, case in ipairs(cases) do
  local s = assert(socket.connect("127.0.0.1", port))
  s:settimeout(10)
  local res = {}
  for i, call in ipairs(case.calls) do
    res[i] = show(s:receive(call[1], call[2]))
  end
  s:close()
  print(n .. ": " .. table.concat(res, " | "))
end
