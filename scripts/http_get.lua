--[[
http_get.lua: fetch a URL over HTTP/1.1 and print the body, like a tiny
curl.

  usage: luahost scripts/http_get.lua [-i] [-I] [-t seconds] [-r max] URL
    -i          print the status line and headers before the body
    -I          send HEAD and print the status line and headers only
    -t seconds  give up when connecting or any read takes longer (10)
    -r max      follow at most max redirects (5; 0 to not follow)
  try:   luahost scripts/http_get.lua -i http://127.0.0.1:8080/hello

Redirects (301, 302, 303, 307, 308) are followed, relative Location
headers too. The body is read by Content-Length, chunked, or until the
server closes. Exit status: 0 for a 2xx/3xx answer, 1 for 4xx/5xx, 2 for a
network error or a bad URL (the reason goes to stderr).
]]
local net = require "net"

local USAGE = "usage: http_get.lua [-i] [-I] [-t seconds] [-r max] URL\n"
local MAX_HEADERS = 200

local function fail(msg, code)
  io.stderr:write("http_get: ", msg, "\n")
  os.exit(code or 2)
end

-- Options.
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
      if a == "-t" then timeout = n else max_redirects = n end
      i = i + 1
    elseif not url and a:sub(1, 1) ~= "-" then url = a
    else fail(USAGE, 2) end
    i = i + 1
  end
  if not url then fail(USAGE, 2) end
end

-- http://host[:port][/path] -> host, port, path (IPv6 hosts in brackets).
local function parse_url(u)
  local scheme, rest = u:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not a URL: " .. u end
  if scheme:lower() ~= "http" then
    return nil, "only http:// URLs are supported: " .. u
  end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  path = path:gsub("#.*", "")
  if path == "" or path:sub(1, 1) == "?" then path = "/" .. path end
  local h, p = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not h then h, p = authority:match("^([^:@]+):?(%d*)$") end
  if not h then return nil, "bad host in URL: " .. u end
  return h, tonumber(p) or 80, path
end

-- The absolute URL for a Location header seen at `base`.
local function resolve(base, location)
  if location:match("^%a[%w+.-]*://") then return location end
  local origin = base:match("^(%a[%w+.-]*://[^/?#]*)")
  if location:sub(1, 2) == "//" then
    return base:match("^(%a[%w+.-]*:)") .. location
  end
  if location:sub(1, 1) == "/" then return origin .. location end
  local dir = base:match("^%a[%w+.-]*://[^/?#]*(/[^?#]*/)") or "/"
  return origin .. dir .. location
end

-- Read the body of a response by its framing; nil, err on failure.
local function read_body(conn, headers)
  local te = (headers["transfer-encoding"] or ""):lower()
  if te:find("chunked", 1, true) then
    local parts = {}
    while true do
      local line, err = conn:read("l")
      if not line then return nil, err end
      -- (a server's word: at most 15 hex digits, so it cannot wrap)
      local hex = line:match("^%s*(%x+)")
      local size = hex and #hex <= 15 and tonumber(hex, 16)
      if not size then return nil, "bad chunk size" end
      if size == 0 then break end
      local chunk, cerr = conn:read(size)
      if not chunk then return nil, cerr end
      parts[#parts + 1] = chunk
      conn:read("l") -- the CRLF after the chunk
    end
    repeat -- trailers, up to the empty line
      local line = conn:read("l")
    until not line or line == "" or line == "\r"
    return table.concat(parts)
  end
  local cl = headers["content-length"]
  if cl then
    local n = cl:match("^%d+$") and math.tointeger(tonumber(cl))
    if not n then return nil, "bad Content-Length: " .. cl end
    if n == 0 then return "" end
    local body, err = conn:read(n)
    if not body then return nil, err end
    if #body < n then return nil, "closed before the end of the body" end
    return body
  end
  return conn:read("a") -- no framing: the body ends when the server closes
end

-- One request: status, reason, header list, header table, body; or nil, err.
local function fetch(u, method)
  local h, port, path = parse_url(u)
  if not h then return nil, port end
  local conn, err = net.connect(h, port, {timeout = timeout})
  if not conn then return nil, ("%s:%d: %s"):format(h, port, err) end
  conn:settimeout(timeout)
  local hostheader = (h:find(":") and "[" .. h .. "]" or h) ..
    (port ~= 80 and ":" .. port or "")
  local ok, werr = conn:write(method, " ", path, " HTTP/1.1\r\n",
    "Host: ", hostheader, "\r\n",
    "User-Agent: luahost-http_get\r\n",
    "Accept: */*\r\n",
    "Connection: close\r\n\r\n")
  if not ok then conn:close() return nil, werr end
  local line, rerr = conn:read("l")
  if not line then conn:close() return nil, rerr end
  local status, reason = line:match("^HTTP/%d%.%d (%d%d%d) ?([^\r]*)")
  if not status then conn:close() return nil, "not an HTTP response" end
  local list, headers = {(line:gsub("\r$", ""))}, {}
  for _ = 1, MAX_HEADERS do
    local hline = conn:read("l")
    if not hline then conn:close() return nil, "closed in the headers" end
    hline = hline:gsub("\r$", "")
    if hline == "" then break end
    list[#list + 1] = hline
    local name, value = hline:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  status = tonumber(status)
  local body = ""
  if method ~= "HEAD" and status ~= 204 and status ~= 304 and
     status >= 200 then
    body, err = read_body(conn, headers)
    if not body then conn:close() return nil, err end
  end
  conn:close()
  return status, reason, list, headers, body
end

local method = head_only and "HEAD" or "GET"
local status, reason, list, headers, body
local redirects = 0
while true do
  status, reason, list, headers, body = fetch(url, method)
  if not status then fail(reason) end
  local location = headers.location
  if max_redirects == 0 or not location or
     not (status == 301 or status == 302 or status == 303 or
          status == 307 or status == 308) then
    break
  end
  if redirects == max_redirects then fail("too many redirects") end
  redirects = redirects + 1
  if show_headers then
    io.write(table.concat(list, "\r\n"), "\r\n\r\n")
  end
  url = resolve(url, location)
end
if show_headers then io.write(table.concat(list, "\r\n"), "\r\n\r\n") end
io.write(body)
io.stdout:flush()
if status >= 400 then
  io.stderr:write("http_get: ", status, " ", reason, "\n")
  os.exit(1)
end
