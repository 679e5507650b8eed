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
connection. A request head must arrive whole within HTTP_HEAD_TIMEOUT
seconds of its first byte (environment, default 10; then 408 and close:
no slowloris), a body within HTTP_BODY_TIMEOUT seconds of its head
(default 30: 1 MiB at 35 KB/s at least), and a silent connection is
closed after 30 s. Header values with control characters (bare CR, NUL),
a repeated Host and Transfer-Encoding in HTTP/1.0 get 400; a chunked body
whose framing outweighs its data (many tiny chunks) gets 413. Paths never
leave ROOT: ".." in any spelling is refused and symbolic links are
followed only while they stay inside ROOT.

Files are read with plain io.open (blocking, fine for a local disk); the
sockets never block the other connections.
]]
local net = require "net"
local task = require "task"
local lfs = require "lfs"

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2] or 8080)
local root = arg[3] or "."

-- Limits, each with its reason.
local MAX_LINE = 8192        -- request line and each header line
local MAX_HEADERS = 100      -- header lines per request
local MAX_BODY = 1024 * 1024 -- request body (413 above)
local IDLE = 30              -- seconds a connection may stay silent
-- seconds from a request's first byte to its last header line
local HEAD_TIMEOUT = tonumber(os.getenv("HTTP_HEAD_TIMEOUT")) or 10
-- seconds from a request's head to the last byte of its body
local BODY_TIMEOUT = tonumber(os.getenv("HTTP_BODY_TIMEOUT")) or 30
-- bytes of chunked framing (size lines, CR LFs) allowed besides 1/8 of
-- the data: 1-byte chunks cost a loop turn and a string each
local MAX_FRAMING = 64 * 1024
local CHUNK = 64 * 1024      -- bytes per write when sending a file

local REASON = {
  [100] = "Continue", [200] = "OK", [301] = "Moved Permanently",
  [304] = "Not Modified", [400] = "Bad Request", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout",
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
-- Connections: buffered input, batched output
-- =================================================================

-- The hot path (a request per read, an answer per write) costs a few
-- string operations: lines are found in the input buffer with plain
-- find and cut with sub, answers are queued and written together
-- (pipelined requests get one write for all the answers they produce).

local find, sub, byte, lower = string.find, string.sub, string.byte,
  string.lower
local unpack, concat = table.unpack, table.concat

local OUT_MAX = 64 * 1024 -- bytes of answers queued before a write

-- A client: {conn =, buf = input, pos = first unread byte of buf,
-- out = queued answers, nout = their count, nbytes = their size,
-- req = the request being answered, head = its head when it can be
-- answered again as it is (see read_request), block = the header block
-- that req.headers holds (see parse_request), again = whether req asks
-- for the same as the request before it, fills = how many times buf was
-- refilled, hback/hwait and bback/bwait = how long heads and blocks are
-- not kept after a miss, and how much of that is left, due = the
-- deadline of the head or body being read or false, late = the error
-- when it passes}.
local function client(conn)
  return {conn = conn, buf = "", pos = 1, out = {}, nout = 0, nbytes = 0,
    head = false, block = false, again = false, fills = 0,
    due = false, late = false,
    hback = 0, hwait = 0, bback = 0, bwait = 0,
    req = {method = false, target = false, version = false, headers = {},
           body = false, close = false, path = false}}
end

-- Write what is queued, in one write.
local function flush(c)
  local n = c.nout
  if n == 0 then return true end
  local out = c.out
  local ok, err
  if n == 1 then
    ok, err = c.conn:write(out[1])
  elseif n <= 16 then
    ok, err = c.conn:write(unpack(out, 1, n))
  else
    ok, err = c.conn:write(concat(out, "", 1, n))
  end
  for i = 1, n do out[i] = nil end
  c.nout, c.nbytes = 0, 0
  return ok, err
end

-- Queue s; written before the next read waits, or once enough is queued.
local function send(c, s)
  local n = c.nout + 1
  c.out[n] = s
  c.nout = n
  local b = c.nbytes + #s
  c.nbytes = b
  if b >= OUT_MAX then return flush(c) end
  return true
end

-- The next chunk of input, or nil, err. Inside a request head or body
-- its deadline (c.due) bounds the wait: then the error is c.late ("head
-- timeout" or "body timeout").
local function recv(c)
  local due = c.due
  if not due then return c.conn:recv() end
  local left = due - task.now()
  if left <= 0 then return nil, c.late end
  c.conn:settimeout(left < IDLE and left or IDLE)
  local data, err = c.conn:recv()
  c.conn:settimeout(IDLE)
  if err == "timeout" and left < IDLE then err = c.late end
  return data, err
end

-- More input (after writing what is queued: the client may wait for the
-- answers before it sends more); nil, err at its end or on failure.
local function fill(c)
  if c.nout > 0 then
    local ok, err = flush(c)
    if not ok then return nil, err end
  end
  local buf, pos = c.buf, c.pos
  if pos > #buf then -- (an idle connection holds no input)
    buf, pos = "", 1
    c.buf, c.pos = buf, pos
  end
  local data, err = recv(c)
  if not data then return nil, err end
  -- (a new buffer may equal the old one byte for byte: pipelined copies
  -- of one request; the memos compare refill counts, not contents)
  c.fills = c.fills + 1
  if pos > #buf then
    c.buf = data
  else
    c.buf = sub(buf, pos) .. data
  end
  c.pos = 1
  return true
end

-- The next line, as positions in c.buf: first, last (without CR LF);
-- or nil, err ("line too long" past MAX_LINE). At the end of input the
-- last partial line counts, as read("l") gives it; a timeout or a reset
-- in the middle of a line is an error.
local function next_line(c)
  while true do
    local buf, pos = c.buf, c.pos
    local e = find(buf, "\n", pos, true)
    if e then
      c.pos = e + 1
      if e - pos > MAX_LINE then return nil, "line too long" end
      e = e - 1
      if e >= pos and byte(buf, e) == 13 then e = e - 1 end
      return pos, e
    end
    local len = #buf
    if len - pos + 1 > MAX_LINE then
      c.pos = len + 1
      return nil, "line too long"
    end
    local ok, err = fill(c)
    if not ok then
      if pos > len or err ~= "closed" then return nil, err end
      c.pos = len + 1
      if byte(buf, len) == 13 then len = len - 1 end
      return pos, len
    end
  end
end

-- The next line as a string (slow paths only).
local function read_line(c)
  local s, e = next_line(c)
  if not s then return nil, e end
  return sub(c.buf, s, e)
end

-- The next n bytes, or nil, err when the input ends first (what follows
-- them stays in c.buf).
local function read_bytes(c, n)
  local buf, pos = c.buf, c.pos
  local have = #buf - pos + 1
  if have >= n then
    c.pos = pos + n
    return sub(buf, pos, pos + n - 1)
  end
  local parts = {have > 0 and sub(buf, pos) or ""}
  c.buf, c.pos, c.fills = "", 1, c.fills + 1
  local ok, err = flush(c)
  if not ok then return nil, err end
  while have < n do
    local data
    data, err = recv(c)
    if not data then return nil, err end
    local want = n - have
    if #data > want then -- the start of the next request
      c.buf = sub(data, want + 1)
      data = sub(data, 1, want)
    end
    parts[#parts + 1] = data
    have = have + #data
  end
  return concat(parts)
end

-- }================================================================

-- {================================================================
-- Requests and responses
-- =================================================================

local STATUS = {} -- status -> its status line
for code, reason in pairs(REASON) do
  STATUS[code] = "HTTP/1.1 " .. code .. " " .. reason .. "\r\n"
end

-- The Date header's value, formatted once a second; hello_cache (whole
-- /hello answers, which contain it) is emptied when it changes.
local date_t, date_s = nil, nil
local hello_cache = {}
local os_time = os.time
local function date()
  local t = os_time()
  if t ~= date_t then
    date_t, date_s = t, http_date(t)
    hello_cache = {}
  end
  return date_s
end

-- A header value as sent: control characters but HTAB (a request's words
-- may end up in a value: a Location made of its path) are percent-encoded,
-- so no value can end the header early or forge another.
local function safe(v)
  if not find(v, "[%z\1-\8\10-\31\127]") then return v end
  return (v:gsub("[%z\1-\8\10-\31\127]", function(ch)
    return ("%%%02X"):format(byte(ch))
  end))
end

-- The status line and headers of a response: headers is a list of
-- {name, value}; length the body's size; `close` (or req.close) ends the
-- connection after this response.
local function head(req, status, headers, length, close)
  local lines = {STATUS[status], "Date: ", date(), "\r\nServer: luahost\r\n"}
  local n = 4
  if headers then
    for i = 1, #headers do
      local h = headers[i]
      lines[n + 1], lines[n + 2], lines[n + 3], lines[n + 4] =
        h[1], ": ", safe(h[2]), "\r\n"
      n = n + 4
    end
  end
  if status ~= 304 then
    lines[n + 1], lines[n + 2] = "Content-Length: ", length
    lines[n + 3] = "\r\n"
    n = n + 3
  end
  if close or req.close then
    lines[n + 1] = "Connection: close\r\n"
    n = n + 1
  elseif req.version == "HTTP/1.0" then
    lines[n + 1] = "Connection: keep-alive\r\n"
    n = n + 1
  end
  lines[n + 1] = "\r\n"
  return concat(lines)
end

-- A whole response (HEAD and 304 get no body).
local function respond(c, req, status, headers, body, close)
  body = body or ""
  local h = head(req, status, headers, #body, close)
  if req.method == "HEAD" or status == 304 then return send(c, h) end
  if #body <= 4096 then return send(c, h .. body) end
  return send(c, h) and send(c, body)
end

local function error_page(c, req, status, close, extra)
  local headers = {{"Content-Type", "text/plain; charset=utf-8"}}
  for _, h in ipairs(extra or {}) do headers[#headers + 1] = h end
  return respond(c, req, status, headers,
    status .. " " .. REASON[status] .. "\n", close)
end

-- GET or HEAD /hello: the whole answer, kept for the current second
-- (4 kinds: GET or HEAD; kept alive, 1.0 kept alive, or closed).
local function hello(c, req)
  local kind = (req.method == "HEAD" and 4 or 0) +
    (req.close and 2 or req.version == "HTTP/1.0" and 1 or 0)
  date() -- (empties the cache when the second changes)
  local r = hello_cache[kind]
  if not r then
    local h = head(req, 200, {{"Content-Type", "text/plain"}}, 12)
    r = kind >= 4 and h or h .. "hello world\n"
    hello_cache[kind] = r
  end
  return send(c, r)
end

-- Header names as sent -> lower case (a bounded memo of the valid ones:
-- clients send the same few names again and again, values vary).
local header_names, nnames = {}, 0

-- The name (lower case) and value (without surrounding blanks) of the
-- header line buf[s..e]; nil when it is not one (the name must be a
-- token, RFC 9110, right before the colon; the value holds no control
-- character but HTAB: a bare CR or a NUL is refused, never passed on).
local function parse_header(buf, s, e)
  local colon = find(buf, ":", s, true)
  if not colon or colon > e then return nil end
  local name = sub(buf, s, colon - 1)
  local key = header_names[name]
  if not key then
    if not find(name, "^[!#$%%&'*+%-.^_`|~%w]+$") then return nil end
    key = lower(name)
    if nnames >= 256 then header_names, nnames = {}, 0 end
    header_names[name], nnames = key, nnames + 1
  end
  local v = colon + 1
  local b = byte(buf, v)
  while v <= e and (b == 32 or b == 9) do
    v = v + 1
    b = byte(buf, v)
  end
  b = byte(buf, e)
  while e >= v and (b == 32 or b == 9) do
    e = e - 1
    b = byte(buf, e)
  end
  local value = sub(buf, v, e)
  if find(value, "[%z\1-\8\10-\31\127]") then return nil end
  return key, value
end

-- Read one header block into headers, which must be empty (lower-case
-- names; repeated names joined with ", "); nil, status on a bad or
-- oversized block.
local function read_headers(c, headers)
  for _ = 1, MAX_HEADERS + 1 do
    local s, e = next_line(c)
    if not s then return nil, e == "line too long" and 431 or e end
    if e < s then return headers end
    local key, value = parse_header(c.buf, s, e)
    if not key then return nil, 400 end
    local old = headers[key]
    if old and key == "host" then return nil, 400 end -- RFC 9112 3.2
    headers[key] = old and old .. ", " .. value or value
  end
  return nil, 431
end

-- Read the request body, by Content-Length or chunked; nil, status when it
-- is malformed or too large.
local function read_body(c, req)
  local h = req.headers
  local te, cl = h["transfer-encoding"], h["content-length"]
  if te then
    if cl or te:lower() ~= "chunked" then return nil, 400 end
    -- (the framing is counted: past MAX_FRAMING and 1/8 of the data,
    -- tiny chunks would cost far more than the body they carry)
    local parts, total, framing = {}, 0, 0
    while true do
      local line, err = read_line(c)
      if not line then return nil, err == "body timeout" and 408 or 400 end
      framing = framing + #line + 4
      if framing > MAX_FRAMING + total // 8 then return nil, 413 end
      -- a hex size, maybe extensions (";name=value"); 8 digits are plenty
      local hex = line:match("^(%x+)[ \t]*;") or line:match("^(%x+)[ \t]*$")
      if not hex or #hex > 8 then return nil, 400 end
      local size = tonumber(hex, 16)
      if size == 0 then break end
      total = total + size
      if total > MAX_BODY then return nil, 413 end
      local chunk
      chunk, err = read_bytes(c, size)
      if not chunk then return nil, err == "body timeout" and 408 or 400 end
      parts[#parts + 1] = chunk
      line, err = read_line(c)
      if line ~= "" then return nil, err == "body timeout" and 408 or 400 end
    end
    local ok, err = read_headers(c, {}) -- trailers
    if not ok then return nil, err == "body timeout" and 408 or 400 end
    return concat(parts)
  end
  if not cl then return "" end
  local n = cl:match("^%d+$") and tonumber(cl)
  if not n then return nil, 400 end
  if n > MAX_BODY then return nil, 413 end
  if n == 0 then return "" end
  local body, err = read_bytes(c, n)
  if not body then return nil, err == "body timeout" and 408 or 400 end
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


local function static(c, req)
  local real, path = resolve(req.target)
  if not real then return error_page(c, req, path) end
  local attr = lfs.attributes(real)
  if not attr then return error_page(c, req, 404) end
  if attr.mode == "directory" then
    if path:sub(-1) ~= "/" then -- relative links need the slash
      return error_page(c, req, 301, false, {{"Location", path .. "/"}})
    end
    local index = real .. "/index.html"
    if lfs.attributes(index, "mode") == "file" then
      real, attr = index, lfs.attributes(index)
    else
      return respond(c, req, 200,
        {{"Content-Type", "text/html; charset=utf-8"}}, listing(path, real))
    end
  end
  if attr.mode ~= "file" then return error_page(c, req, 403) end
  local headers = {{"Last-Modified", http_date(attr.modification)}}
  local since = parse_date(req.headers["if-modified-since"])
  if since and attr.modification <= since then
    return respond(c, req, 304, headers)
  end
  local f = io.open(real, "rb")
  if not f then return error_page(c, req, 403) end
  local ext = real:match("%.([^./]+)$")
  headers[#headers + 1] = {"Content-Type",
    TYPES[ext and ext:lower()] or "application/octet-stream"}
  local ok = send(c, head(req, 200, headers, attr.size))
  if ok and req.method ~= "HEAD" then
    if attr.size <= CHUNK then -- a small file goes with its head
      send(c, f:read(CHUNK) or "")
    elseif flush(c) then
      -- A big one goes out in chunks: each write waits while the client
      -- is slow, so it never sits whole in memory.
      for chunk in f:lines(CHUNK) do
        if not c.conn:write(chunk) then break end
      end
    end
  end
  f:close()
end

-- Answer one parsed request.
local function handle(c, req)
  local method, path = req.method, req.path
  if path == "/echo" then
    if method ~= "POST" then
      return error_page(c, req, 405, false, {{"Allow", "POST"}})
    end
    -- (a request's header values hold no control character: parse_header)
    return respond(c, req, 200, {{"Content-Type",
      req.headers["content-type"] or "application/octet-stream"}}, req.body)
  end
  if method ~= "GET" and method ~= "HEAD" then
    return error_page(c, req, 405, false, {{"Allow", "GET, HEAD"}})
  end
  if path == "/hello" then return hello(c, req) end
  return static(c, req)
end

-- The method, target and version of the request line buf[s..e]; nil,
-- status when it is bad.
local function parse_request_line(buf, s, e)
  local _, me, method, target, version =
    find(buf, "^(%u+) (%S+) (HTTP/%d%.%d)", s)
  if me ~= e then return nil, 400 end
  if version ~= "HTTP/1.1" and version ~= "HTTP/1.0" then return nil, 505 end
  return method, target, version
end

-- The longest request head (or header block) compared with the previous
-- one.
local SAME_HEAD_MAX = 1024

-- Parse the next request into c.req (see read_request).
local function parse_request(c)
  local s, e
  c.due, c.late = task.now() + HEAD_TIMEOUT, "head timeout" -- (bytes of
  -- this head are here)
  repeat -- RFC 9112: ignore empty lines before a request
    s, e = next_line(c)
    if not s then
      c.due = false
      if e == "line too long" then return nil, 414 end
      if e == "head timeout" then return nil, 408 end
      return nil
    end
  until e >= s
  local method, target, version = parse_request_line(c.buf, s, e)
  if not method then return nil, target end
  local req = c.req
  c.again = req.target == target and req.method == method
  req.method, req.target, req.version = method, target, version
  local q = find(target, "?", 1, true)
  req.path = q and sub(target, 1, q - 1) or target
  req.close, req.body = false, false
  -- The header block of the previous request, byte for byte again (one
  -- client sends the same headers with each URL): its table is kept.
  local headers, buf, pos, block = req.headers, c.buf, c.pos, c.block
  local fills = c.fills
  if block and sub(buf, pos, pos + #block - 1) == block then
    c.pos = pos + #block
    c.bback = 0
  else
    if block then -- a miss: do not keep blocks for a while (backing off)
      c.block = false
      c.bback = c.bback < 32 and c.bback * 2 + 1 or 63
      c.bwait = c.bback
    end
    if next(headers) ~= nil then -- empty it (it keeps its size)
      for k in next, headers do headers[k] = nil end
    end
    local ok, status = read_headers(c, headers)
    if not ok then
      c.due = false
      return nil, status == "head timeout" and 408 or tonumber(status)
    end
    -- (the block must have come from buf: a refill may bring the very
    -- same bytes, at other positions)
    if c.bwait > 0 then
      c.bwait = c.bwait - 1
    elseif c.fills == fills and c.pos > pos and
      c.pos - pos <= SAME_HEAD_MAX then
      c.block = sub(buf, pos, c.pos - 1)
    end
  end
  c.due = false -- the head is complete; a body has its own deadline
  local connection = headers.connection
  if version == "HTTP/1.1" then
    if not headers.host then return nil, 400, req end
    req.close = connection ~= nil and
      find(lower(connection), "close", 1, true) ~= nil
  else -- HTTP/1.0 keeps the connection only when asked to
    req.close = not (connection and
      find(lower(connection), "keep-alive", 1, true))
  end
  local cl, te = headers["content-length"], headers["transfer-encoding"]
  if not cl and not te then
    req.body = ""
    return req
  end
  -- RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing
  if te and version ~= "HTTP/1.1" then return nil, 400, req end
  local n = cl and tonumber(cl)
  if n and n > MAX_BODY then return nil, 413, req end
  local expect = headers.expect
  if expect and version == "HTTP/1.1" and lower(expect) == "100-continue"
  then
    send(c, "HTTP/1.1 100 Continue\r\n\r\n") -- go on, send the body
  end
  local status
  c.due, c.late = task.now() + BODY_TIMEOUT, "body timeout"
  req.body, status = read_body(c, req)
  c.due = false
  if not req.body then return nil, status, req end
  return req
end

-- Read the next request: a table {method, target, path (the target
-- without its query), version, headers, body, close}; or nil, status
-- (answer it, then close), or nil when the client is gone (closed, idle
-- timeout, reset). A head without a body that repeats the previous one
-- byte for byte (as from benchmarks and pollers) is not parsed again:
-- its request, c.req, is answered again as it is.
local function read_request(c)
  local buf, pos = c.buf, c.pos
  if pos > #buf then
    if not fill(c) then return nil end
    buf, pos = c.buf, c.pos
  end
  local same = c.head
  if same then
    local last = pos + #same - 1
    if sub(buf, pos, last) == same then
      c.pos = last + 1
      c.hback = 0
      return c.req
    end
    c.head = false -- a miss: do not keep heads for a while (backing off)
    c.hback = c.hback < 32 and c.hback * 2 + 1 or 63
    c.hwait = c.hback
  end
  local fills = c.fills
  local req, status, partial = parse_request(c)
  -- kept when the same URL was asked twice in a row, parsed from these
  -- very bytes (not refilled meanwhile), without a body
  if c.hwait > 0 then
    c.hwait = c.hwait - 1
  elseif req and c.again and req.body == "" and c.fills == fills and
    c.pos > pos and c.pos - pos <= SAME_HEAD_MAX and
    not req.headers["content-length"] and
    not req.headers["transfer-encoding"] then
    c.head = sub(buf, pos, c.pos - 1)
  end
  return req, status, partial
end

-- One connection: requests one after the other until the client closes
-- or asks to. Pipelined requests are parsed from the input already read,
-- and their answers written together.
local function serve(conn)
  local c = client(conn)
  while true do
    local req, status, partial = read_request(c)
    if not req then
      if status then -- a bad request: say why, then close (the stream
        -- can no longer be trusted)
        error_page(c, partial or {version = "HTTP/1.1", method = "GET"},
          status, true)
      end
      break
    end
    handle(c, req)
    if req.close then break end
  end
  flush(c)
end -- serve closes conn when this returns

local server = assert(net.listen{host = host, port = port,
  max_line = MAX_LINE, idle_timeout = IDLE})
local ip, bound = server:sockname()
print(("serving %s on http://%s:%d/"):format(ROOT,
  ip:find(":") and "[" .. ip .. "]" or ip, bound))
io.stdout:flush()
server:serve(serve)
