--[[
http_get.lua: fetch a URL with the http module's client and print the
body, like a tiny curl.

  usage: luahost scripts/http_get.lua [-i] [-I] [-t seconds] [-r max] URL
    -i          print the status line and headers before the body
    -I          send HEAD and print the status line and headers only
    -t seconds  give up when connecting or any read takes longer (10)
    -r max      follow at most max redirects (5; 0 to not follow)
  try:   luahost scripts/http_get.lua -i http://127.0.0.1:8080/hello

Redirects (301, 302, 303, 307, 308) are followed, relative Location
headers too; with -i each answer's head is printed. Exit status: 0 for a
2xx/3xx answer, 1 for 4xx/5xx, 2 for a network error or a bad URL (the
reason goes to stderr).
]]
local http = require "http"
local client = require "http.client"

local USAGE = "usage: http_get.lua [-i] [-I] [-t seconds] [-r max] URL\n"

local function fail(msg, code)
  io.stderr:write("http_get: ", msg, "\n")
  os.exit(code or 2)
end

local show_headers, head_only, timeout, max_redirects, url = false, false,
  10, 5, nil
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "-i" then show_headers = true
    elseif a == "-I" then head_only, show_headers = true, true
    elseif a == "-t" or a == "-r" then
      local n = tonumber(arg[i + 1])
      if not n or n < 0 then fail(USAGE, 2) end
      if a == "-t" then timeout = n else max_redirects = math.floor(n) end
      i = i + 1
    elseif not url and a:sub(1, 1) ~= "-" then url = a
    else fail(USAGE, 2) end
    i = i + 1
  end
  if not url then fail(USAGE, 2) end
end
if not url:lower():match("^http://") then
  fail("only http:// URLs are supported: " .. url)
end

local function print_head(res)
  local out = {("%s %d %s"):format(res.version, res.status, res.reason)}
  for i = 1, #res.fields, 2 do
    out[#out + 1] = res.fields[i] .. ": " .. res.fields[i + 1]
  end
  io.write(table.concat(out, "\r\n"), "\r\n\r\n")
end

local REDIRECT = {[301] = true, [302] = true, [303] = true, [307] = true,
  [308] = true}
local res, err
for n = 0, max_redirects do
  res, err = http.request{method = head_only and "HEAD" or "GET", url = url,
    timeout = timeout > 0 and timeout or nil, redirects = 0}
  if not res then fail(err) end
  local location = res.headers.location
  if max_redirects == 0 or not REDIRECT[res.status] or not location then
    break
  end
  if n == max_redirects then fail("too many redirects") end
  if show_headers then print_head(res) end
  res:close()
  url = client.resolve(url, location)
end
if show_headers then print_head(res) end
for piece in res:chunks() do io.write(piece) end
if res.error then fail(res.error) end
io.stdout:flush()
if res.status >= 400 then
  io.stderr:write("http_get: ", res.status, " ", res.reason, "\n")
  os.exit(1)
end
