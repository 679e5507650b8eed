--[[
http_server.lua: a small HTTP/1.1 server: static files from a directory,
plus two fixed routes.

  usage: luahost scripts/http_server.lua [host] [port] [root]
         (defaults: 127.0.0.1 8080 .; port 0 picks a free port)
  try:   curl -v http://127.0.0.1:8080/hello http://127.0.0.1:8080/

It prints "serving ROOT on http://HOST:PORT/" once it is ready.

  GET|HEAD /hello     "hello world\n" (a fixed small answer, for benchmarks)
  POST /echo          the request body, sent back
  GET|HEAD /path      the file ROOT/path; a directory gives its index.html
                      or a listing; If-Modified-Since gives 304

HTTP/1.1 as clients use it: persistent connections (HTTP/1.0 keep-alive
too), pipelined requests, Content-Length and chunked request bodies,
Expect: 100-continue, HEAD, Date. A bad request gets 400, 404, 405, 413,
414 or 431 and, where the stream can no longer be trusted, a closed
connection. Paths never leave ROOT: ".." in any spelling is refused and
symbolic links are followed only while they stay inside ROOT.

Files are read with plain io.open (blocking, fine for a local disk); the
sockets never block the other connections.
]]
local net = require "net"
local lfs = require "lfs"

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2] or 8080)
local root = arg[3] or "."

-- Limits, each with its reason.
local MAX_LINE = 8192        -- request line and each header line
local MAX_HEADERS = 100      -- header lines per request
local MAX_BODY = 1024 * 1024 -- request body (413 above)
local IDLE = 30              -- seconds a connection may stay silent
local CHUNK = 64 * 1024      -- bytes per write when sending a file

local REASON = {
  [100] = "Continue", [200] = "OK", [301] = "Moved Permanently",
  [304] = "Not Modified", [400] = "Bad Request", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [505] = "HTTP Version Not Supported",
}

local TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  txt = "text/plain; charset=utf-8", lua = "text/plain; charset=utf-8",
  md = "text/markdown; charset=utf-8", css = "text/css",
  js = "text/javascript", json = "application/json",
  xml = "application/xml", svg = "image/svg+xml", png = "image/png",
  jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  ico = "image/x-icon", pdf = "application/pdf", wasm = "application/wasm",
}

-- {================================================================
-- Dates (RFC 9110 IMF-fixdate, always GMT)
-- =================================================================

local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12}

-- Seconds since the epoch of an IMF-fixdate, or nil. os.time would read
-- the fields as local time, so the days are counted here (civil calendar).
local function parse_date(s)
  local d, mon, y, hh, mm, ss =
    (s or ""):match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) " ..
                    "(%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTHS[mon]
  if not m then return nil end
  y, m, d = tonumber(y), m, tonumber(d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 +
    tonumber(ss)
end

-- }================================================================

-- {================================================================
-- Paths: decode, refuse "..", resolve symbolic links inside the root
-- =================================================================

-- Resolve every symbolic link in an absolute path, like realpath(3);
-- nil if a component is missing or the links loop.
local function realpath(path)
  local done, todo = {}, {}
  for c in path:gmatch("[^/]+") do todo[#todo + 1] = c end
  local links, i = 0, 1
  while i <= #todo do
    local c = todo[i]
    i = i + 1
    if c == ".." then
      done[#done] = nil
    elseif c ~= "." then
      local p = "/" .. table.concat(done, "/") .. (#done > 0 and "/" or "") ..
        c
      local mode = lfs.symlinkattributes(p, "mode")
      if not mode then return nil end
      if mode == "link" then
        links = links + 1
        if links > 40 then return nil end
        local target = lfs.symlinkattributes(p, "target")
        if not target then return nil end
        if target:sub(1, 1) == "/" then done = {} end
        local rest = {}
        for t in target:gmatch("[^/]+") do rest[#rest + 1] = t end
        for j = i, #todo do rest[#rest + 1] = todo[j] end
        todo, i = rest, 1
      else
        done[#done + 1] = c
      end
    end
  end
  return "/" .. table.concat(done, "/")
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return assert(lfs.currentdir()) .. "/" .. path
end

local ROOT = realpath(absolute(root))
if not ROOT or lfs.attributes(ROOT, "mode") ~= "directory" then
  io.stderr:write("http_server: not a directory: ", root, "\n")
  os.exit(1)
end

-- The file for a request path: its real path inside ROOT, or nil, status.
local function resolve(target)
  local path = target:match("^[^?#]*")
  if path:sub(1, 1) ~= "/" then return nil, 400 end
  local bad = false
  path = path:gsub("%%(%x%x)", function(h)
    local c = string.char(tonumber(h, 16))
    if c == "\0" or c == "/" then bad = true end -- no hidden separators
    return c
  end)
  if bad or path:find("%%") or path:find("\0") then return nil, 400 end
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then return nil, 403 end
  end
  local real = realpath(ROOT .. path)
  if not real then return nil, 404 end
  if real ~= ROOT and real:sub(1, #ROOT + 1) ~= ROOT .. "/" then
    return nil, 403 -- a link pointing out of the root
  end
  return real, path
end

-- }================================================================

-- {================================================================
-- Requests and responses
-- =================================================================

-- The status line and headers of a response: headers is a list of
-- {name, value}; length the body's size; `close` (or req.close) ends the
-- connection after this response.
local function head(req, status, headers, length, close)
  local lines = {("HTTP/1.1 %d %s\r\n"):format(status, REASON[status]),
                 "Date: ", http_date(), "\r\n", "Server: luahost\r\n"}
  for _, h in ipairs(headers or {}) do
    lines[#lines + 1] = h[1] .. ": " .. h[2] .. "\r\n"
  end
  if status ~= 304 then
    lines[#lines + 1] = "Content-Length: " .. length .. "\r\n"
  end
  if close or req.close then
    lines[#lines + 1] = "Connection: close\r\n"
  elseif req.version == "HTTP/1.0" then
    lines[#lines + 1] = "Connection: keep-alive\r\n"
  end
  lines[#lines + 1] = "\r\n"
  return table.concat(lines)
end

-- A whole response in one write (HEAD and 304 get no body).
local function respond(conn, req, status, headers, body, close)
  body = body or ""
  local h = head(req, status, headers, #body, close)
  if req.method == "HEAD" or status == 304 then return conn:write(h) end
  return conn:write(h, body)
end

local function error_page(conn, req, status, close, extra)
  local headers = {{"Content-Type", "text/plain; charset=utf-8"}}
  for _, h in ipairs(extra or {}) do headers[#headers + 1] = h end
  return respond(conn, req, status, headers,
    status .. " " .. REASON[status] .. "\n", close)
end

-- Read one header block into a table (lower-case names; repeated names
-- joined with ", "); nil, status on a bad or oversized block.
local function read_headers(conn)
  local headers = {}
  for _ = 1, MAX_HEADERS + 1 do
    local line, err = conn:read("l")
    if not line then return nil, err == "line too long" and 431 or err end
    line = line:gsub("\r$", "")
    if line == "" then return headers end
    -- a token (RFC 9110), a colon, the value without surrounding blanks
    local name, value =
      line:match("^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, 400 end
    name = name:lower()
    headers[name] = headers[name] and headers[name] .. ", " .. value or value
  end
  return nil, 431
end

-- Read the request body, by Content-Length or chunked; nil, status when it
-- is malformed or too large.
local function read_body(conn, req)
  local h = req.headers
  local te, cl = h["transfer-encoding"], h["content-length"]
  if te then
    if cl or te:lower() ~= "chunked" then return nil, 400 end
    local parts, total = {}, 0
    while true do
      local line = conn:read("l")
      if not line then return nil, 400 end
      -- a hex size, maybe extensions (";name=value"); 8 digits are plenty
      local hex = line:match("^(%x+)[ \t]*;") or line:match("^(%x+)[ \t]*\r?$")
      if not hex or #hex > 8 then return nil, 400 end
      local size = tonumber(hex, 16)
      if size == 0 then break end
      total = total + size
      if total > MAX_BODY then return nil, 413 end
      local chunk = conn:read(size)
      if not chunk or #chunk < size then return nil, 400 end
      parts[#parts + 1] = chunk
      local crlf = conn:read("l")
      if crlf ~= "\r" and crlf ~= "" then return nil, 400 end
    end
    if not read_headers(conn) then return nil, 400 end -- trailers
    return table.concat(parts)
  end
  if not cl then return "" end
  local n = cl:match("^%d+$") and tonumber(cl)
  if not n then return nil, 400 end
  if n > MAX_BODY then return nil, 413 end
  if n == 0 then return "" end
  local body = conn:read(n)
  if not body or #body < n then return nil, 400 end
  return body
end

-- A directory listing, for a directory without index.html.
local function listing(path, real)
  local names = {}
  for name in lfs.dir(real) do
    if name:sub(1, 1) ~= "." then
      local mode = lfs.attributes(real .. "/" .. name, "mode")
      names[#names + 1] = name .. (mode == "directory" and "/" or "")
    end
  end
  table.sort(names)
  local esc = function(s)
    return (s:gsub("[&<>\"]", {["&"] = "&amp;", ["<"] = "&lt;",
                               [">"] = "&gt;", ['"'] = "&quot;"}))
  end
  local out = {"<!DOCTYPE html>\n<title>", esc(path), "</title>\n<h1>",
               esc(path), "</h1>\n<ul>\n"}
  for _, n in ipairs(names) do
    local href = n:gsub("[^%w%-._~/]", function(c)
      return ("%%%02X"):format(c:byte())
    end)
    out[#out + 1] = ('<li><a href="%s">%s</a>\n'):format(href, esc(n))
  end
  out[#out + 1] = "</ul>\n"
  return table.concat(out)
end

local function static(conn, req)
  local real, path = resolve(req.target)
  if not real then return error_page(conn, req, path) end
  local attr = lfs.attributes(real)
  if not attr then return error_page(conn, req, 404) end
  if attr.mode == "directory" then
    if path:sub(-1) ~= "/" then -- relative links need the slash
      return error_page(conn, req, 301, false, {{"Location", path .. "/"}})
    end
    local index = real .. "/index.html"
    if lfs.attributes(index, "mode") == "file" then
      real, attr = index, lfs.attributes(index)
    else
      return respond(conn, req, 200,
        {{"Content-Type", "text/html; charset=utf-8"}}, listing(path, real))
    end
  end
  if attr.mode ~= "file" then return error_page(conn, req, 403) end
  local headers = {{"Last-Modified", http_date(attr.modification)}}
  local since = parse_date(req.headers["if-modified-since"])
  if since and attr.modification <= since then
    return respond(conn, req, 304, headers)
  end
  local f = io.open(real, "rb")
  if not f then return error_page(conn, req, 403) end
  local ext = real:match("%.([^./]+)$")
  headers[#headers + 1] = {"Content-Type",
    TYPES[ext and ext:lower()] or "application/octet-stream"}
  -- The file goes out in chunks: each write waits while the client is
  -- slow, so a big file never sits whole in memory.
  local ok = conn:write(head(req, 200, headers, attr.size))
  if ok and req.method ~= "HEAD" then
    for chunk in f:lines(CHUNK) do
      if not conn:write(chunk) then break end
    end
  end
  f:close()
end

-- Answer one parsed request.
local function handle(conn, req)
  local path = req.target:match("^[^?]*")
  if path == "/echo" then
    if req.method ~= "POST" then
      return error_page(conn, req, 405, false, {{"Allow", "POST"}})
    end
    return respond(conn, req, 200, {{"Content-Type",
      req.headers["content-type"] or "application/octet-stream"}}, req.body)
  end
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return error_page(conn, req, 405, false, {{"Allow", "GET, HEAD"}})
  end
  if path == "/hello" then
    return respond(conn, req, 200, {{"Content-Type", "text/plain"}},
      "hello world\n")
  end
  return static(conn, req)
end

-- Read the next request: a table {method, target, version, headers, body,
-- close}; or nil, status (answer it, then close), or nil when the client
-- is gone (closed, idle timeout, reset).
local function read_request(conn)
  local line, err
  repeat -- RFC 9112: ignore empty lines before a request
    line, err = conn:read("l")
    if err == "line too long" then return nil, 414 end
    if not line then return nil end
    line = line:gsub("\r$", "")
  until line ~= ""
  local method, target, version = line:match("^(%u+) (%S+) (HTTP/%d%.%d)$")
  if not method then return nil, 400 end
  if version ~= "HTTP/1.1" and version ~= "HTTP/1.0" then return nil, 505 end
  local req = {method = method, target = target, version = version}
  local headers, status = read_headers(conn)
  if not headers then return nil, tonumber(status) end
  req.headers = headers
  local connection = (headers.connection or ""):lower()
  if version == "HTTP/1.1" then
    if not headers.host then return nil, 400, req end
    req.close = connection:find("close", 1, true) ~= nil
  else -- HTTP/1.0 keeps the connection only when asked to
    req.close = not connection:find("keep-alive", 1, true)
  end
  local cl = tonumber(headers["content-length"])
  if cl and cl > MAX_BODY then return nil, 413, req end
  if version == "HTTP/1.1" and (headers.expect or ""):lower() == "100-continue"
  then
    conn:write("HTTP/1.1 100 Continue\r\n\r\n") -- go on, send the body
  end
  req.body, status = read_body(conn, req)
  if not req.body then return nil, status, req end
  return req
end

-- One connection: requests one after the other (pipelined ones simply
-- wait in the read buffer) until the client closes or asks to.
local function serve(conn)
  while true do
    local req, status, partial = read_request(conn)
    if not req then
      if status then -- a bad request: say why, then close (the stream
        -- can no longer be trusted)
        error_page(conn, partial or {version = "HTTP/1.1", method = "GET"},
          status, true)
      end
      break
    end
    handle(conn, req)
    if req.close then break end
  end
end -- serve closes conn when this returns

local server = assert(net.listen{host = host, port = port,
  max_line = MAX_LINE, idle_timeout = IDLE})
local ip, bound = server:sockname()
print(("serving %s on http://%s:%d/"):format(ROOT,
  ip:find(":") and "[" .. ip .. "]" or ip, bound))
io.stdout:flush()
server:serve(serve)
