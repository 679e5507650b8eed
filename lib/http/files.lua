--[[
http.files: static files from one directory, as a handler.

  app:mount("/static", http.files("public"))
  http.listen{port = 8080, handler = http.files(".", {index = "index.html",
    listing = true})}

opts: index (a file name served for a directory; default none), listing
(an HTML listing for a directory without index; default false), max_age
(seconds: Cache-Control), types (extension -> Content-Type, added to the
built-in ones).

GET and HEAD (else 405); Content-Type by extension, a strong ETag and
Last-Modified, 304 for If-None-Match / If-Modified-Since, 412 for
If-Match / If-Unmodified-Since, one byte Range
(206; 416 when it cannot be satisfied; If-Range honoured). With the
server's gzip, a text file's gzipped representation has its own ETag
("...-gzip"), every response of it says Vary: Accept-Encoding (the 304
too), and HEAD has GET's head. A path never
leaves the directory: a ".." segment (in any spelling) is 403, an encoded
"/" or NUL or a bad %-escape is 400, and symbolic links are followed only
while they stay inside (403 when one points out); a "." segment is
dropped. The index file is checked as any other (a link named
index.html pointing out is 403 too).

Files are stat'ed, resolved (fs_realpath), listed and read (64 KiB at a
time) with the uv fs functions on libuv's thread pool: the loop and the
other connections never wait for the disk.
]]
local common = require "http.common"
local core = require "http.core"
local server = require "http.server"
local uv = require "uv"

local fs = common.fs

local M = {}

local TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  txt = "text/plain; charset=utf-8", lua = "text/plain; charset=utf-8",
  md = "text/markdown; charset=utf-8", css = "text/css",
  js = "text/javascript", mjs = "text/javascript", json = "application/json",
  xml = "application/xml", svg = "image/svg+xml", png = "image/png",
  jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", ico = "image/x-icon", pdf = "application/pdf",
  wasm = "application/wasm", woff2 = "font/woff2", mp4 = "video/mp4",
}
M.TYPES = TYPES

-- Bytes per read: each read is a round trip to libuv's thread pool (two
-- thread wake-ups and a resume), so pieces of 256 KiB rather than 64 KiB
-- cut the server's CPU per byte of a large file by ~25% (over TLS: from
-- 1.4x nginx's to about 1.0x; bench/README.md).
local CHUNK = 256 * 1024

-- The real path (every link resolved) or nil.
local function realpath(path)
  return (fs("realpath", path))
end

-- A path for a Location header or a link: every byte that is not
-- unreserved or "/" is %-encoded (no control byte can reach a head).
local function encode_path(p)
  return (p:gsub("[^%w%-._~/]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end
M.encode_path = encode_path

-- The decoded request path, or nil, status.
local function decode_path(path)
  if path:sub(1, 1) ~= "/" then return nil, 400 end
  local bad = false
  local dec = path:gsub("%%(%x?%x?)", function(h)
    if #h < 2 then bad = true return "" end
    local c = string.char(tonumber(h, 16))
    if c == "\0" or c == "/" then bad = true end
    return c
  end)
  if bad or dec:find("\0", 1, true) then return nil, 400 end
  -- Runs of "/" are one, as nginx's merge_slashes (on by default) and
  -- Apache make them: "//dir" is "/dir", so that the redirect to the
  -- slash-terminated directory is "/dir/", never "//dir/" (a
  -- protocol-relative URL: host "dir", an open redirect). (Not a 404:
  -- the file is the same, and nginx serves it.)
  dec = dec:gsub("//+", "/")
  for seg in dec:gmatch("[^/]+") do
    if seg == ".." then return nil, 403 end
  end
  -- "." segments go (RFC 3986 5.2.4: "/a/./b" is "/a/b", "/a/." is
  -- "/a/"), so that "/." is the root, not a directory "." to redirect to
  -- "/./"
  if dec:find("/%./") or dec:find("/%.$") then
    local segs = {}
    for seg in dec:gmatch("[^/]+") do
      if seg ~= "." then segs[#segs + 1] = seg end
    end
    local trail = #segs > 0 and (dec:find("/%.?$")) and "/" or ""
    dec = "/" .. table.concat(segs, "/") .. trail
  end
  return dec
end

local function html_escape(s)
  return (s:gsub("[&<>\"]", {["&"] = "&amp;", ["<"] = "&lt;",
    [">"] = "&gt;", ['"'] = "&quot;"}))
end

local function listing(path, real)
  local names = {}
  local req = fs("scandir", real)
  if req then
    for name, kind in uv.fs_scandir_next, req do
      if name:sub(1, 1) ~= "." then
        if kind == "link" then -- a link to a directory lists as one
          local st = fs("stat", real .. "/" .. name)
          kind = st and st.type
        end
        names[#names + 1] = name .. (kind == "directory" and "/" or "")
      end
    end
  end
  table.sort(names)
  local out = {"<!DOCTYPE html>\n<title>", html_escape(path),
    "</title>\n<h1>", html_escape(path), "</h1>\n<ul>\n"}
  for _, n in ipairs(names) do
    out[#out + 1] = ('<li><a href="%s">%s</a>\n'):format(encode_path(n),
      html_escape(n))
  end
  out[#out + 1] = "</ul>\n"
  return table.concat(out)
end

-- One byte range of a file of `size` bytes: first, last; false when it
-- cannot be satisfied (416); nil when there is none to honour (200).
local function parse_range(h, size)
  -- (the unit is case-insensitive, and a list element may have blanks
  -- around it: RFC 9110 14.1, 5.6.1)
  local a, b = (h or ""):match(
    "^[Bb][Yy][Tt][Ee][Ss]=[ \t]*(%d*)%-(%d*)[ \t]*$")
  if not a or (a == "" and b == "") or #a > 15 or #b > 15 then return nil end
  if a == "" then -- the last b bytes
    local n = tonumber(b)
    if n == 0 or size == 0 then return false end
    return math.max(0, size - n), size - 1
  end
  local first, last = tonumber(a), b ~= "" and tonumber(b) or size - 1
  if b ~= "" and last < first then return nil end -- invalid: ignored
  if first >= size then return false end
  return first, math.min(last, size - 1)
end

local function send_file(res, req, real, attr, opts)
  local size, mtime = attr.size, attr.mtime.sec
  local ext = real:match("%.([^./]+)$")
  ext = ext and ext:lower()
  local ctype = (opts.types and opts.types[ext]) or TYPES[ext] or
    "application/octet-stream"
  -- (strong: size and modification time to the nanosecond change with
  -- any write a client could see; If-Match and If-Range compare
  -- strongly, RFC 9110 8.8.3. No inode: copies of a tree on several
  -- machines, their times kept, give the same tags, as nginx's do.)
  local tag = ('"%x-%x-%x"'):format(size, mtime, attr.mtime.nsec or 0)
  -- With http.listen{gzip = true} a text file has two representations,
  -- and RFC 9110 8.8.3 wants a different strong tag for each: the gzip
  -- one is "...-gzip" (as Apache's mod_deflate). The preconditions
  -- compare with the tag of the representation this request selects; a
  -- range is always of the identity bytes (the server never gzips a 206).
  local varies, gz = server.gzip_for(req, ctype)
  gz = gz and size > 0 -- (an empty body goes out as it is)
  local etag = gz and tag:sub(1, -2) .. '-gzip"' or tag
  -- (every response of such a file, the 304 too, says that it varies:
  -- RFC 9110 15.4.5)
  if varies then res:header("Vary", "Accept-Encoding") end
  local lastmod = common.date(mtime)
  res:header("Last-Modified", lastmod)
  res:header("ETag", etag)
  res:header("Accept-Ranges", "bytes")
  if opts.max_age then
    res:header("Cache-Control", "max-age=" .. math.floor(opts.max_age))
  end
  local h = req.headers
  -- preconditions in RFC 9110 13.2.2's order: If-Match (strong
  -- comparison: a weak tag never matches) or else If-Unmodified-Since,
  -- then If-None-Match (weak comparison) or else If-Modified-Since (a
  -- date in the future is no date), then If-Range (strong)
  local im = h["if-match"]
  if im then
    local any = false
    for t in im:gmatch("[^,%s][^,]*") do
      t = t:match("^(.-)%s*$")
      if t == "*" or t == etag then
        any = true
        break
      end
    end
    if not any then return res:send(412, "412 Precondition Failed\n") end
  else
    local before = common.parse_date(h["if-unmodified-since"])
    if before and mtime > before then
      return res:send(412, "412 Precondition Failed\n")
    end
  end
  local inm = h["if-none-match"]
  if inm then
    for t in inm:gmatch("[^,%s][^,]*") do
      t = t:match("^(.-)%s*$")
      if t == "*" or t == etag or t == "W/" .. etag then
        return res:send(304)
      end
    end
  else
    local since = common.parse_date(h["if-modified-since"])
    if since and since <= os.time() and mtime <= since then
      return res:send(304)
    end
  end
  res:header("Content-Type", ctype)
  local first, last = 0, size - 1
  local range = h.range
  local ifr = h["if-range"]
  -- (the identity tag: a client holding the gzip representation may not
  -- patch it with identity bytes, so "...-gzip" gets the whole 200)
  if range and ifr and ifr ~= tag and ifr ~= lastmod then range = nil end
  if range then
    local f, l = parse_range(range, size)
    if f == false then
      res:header("ETag", tag)
      res:header("Content-Range", "bytes */" .. size)
      return res:send(416, "416 Range Not Satisfiable\n")
    elseif f then
      first, last = f, l
      res:header("ETag", tag) -- (the identity bytes)
      res:status(206)
      res:header("Content-Range", ("bytes %d-%d/%d"):format(f, l, size))
    end
  end
  local length = last - first + 1
  res:header("Content-Length", length)
  if length == 0 then return res:finish() end
  -- HEAD has GET's head (RFC 9110 9.3.2): through res:write as GET's, so
  -- that a gzipped one says Content-Encoding and no identity length
  if req.method == "HEAD" then return res:write(""):finish() end
  local fd = fs("open", real, "r", 0)
  if not fd then
    res:header("Content-Length", nil)
    return res:send(403, "403 Forbidden\n")
  end
  local pos, last_byte = first, first + length
  local ok, err = pcall(function()
    while pos < last_byte do
      local piece = fs("read", fd, math.min(CHUNK, last_byte - pos), pos)
      if not piece or piece == "" then break end -- (the file shrank)
      pos = pos + #piece
      res:write(piece)
    end
  end)
  fs("close", fd)
  if not ok then error(err, 0) end
  return res:finish()
end

-- The options, checked (and copied) when http.files is called: a wrong
-- type raises at the caller's line, not as a 500 on every request.
local OPTS = {index = true, listing = true, max_age = true, types = true}
local function check_opts(opts)
  local function bad(msg, ...)
    error(("bad argument #2 to 'files' (" .. msg .. ")"):format(...), 4)
  end
  for k in pairs(opts) do
    if not OPTS[k] then bad("unknown option '%s'", tostring(k)) end
  end
  local o = {listing = opts.listing, max_age = opts.max_age}
  local index = opts.index
  if index ~= nil and (type(index) ~= "string" or index == "" or
    index:find("/", 1, true) or index == "." or index == "..") then
    bad("index: a file name expected, got %s", type(index) == "string" and
      ("%q"):format(index) or type(index))
  end
  o.index = index
  if o.listing ~= nil and type(o.listing) ~= "boolean" then
    bad("listing: boolean expected, got %s", type(o.listing))
  end
  local age = o.max_age
  if age ~= nil and not (type(age) == "number" and age >= 0 and
    age < math.huge) then
    bad("max_age: non-negative number expected, got %s", tostring(age))
  end
  local types = opts.types
  if types ~= nil then
    if type(types) ~= "table" then
      bad("types: table expected, got %s", type(types))
    end
    -- (extensions are looked up in lower case)
    o.types = {}
    for ext, ctype in pairs(types) do
      if type(ext) ~= "string" or type(ctype) ~= "string" then
        bad("types: extension = Content-Type strings expected")
      end
      local ok, why = core.field_ok("Content-Type", ctype)
      if not ok then bad("types.%s: %s", ext, why) end
      o.types[ext:lower()] = ctype
    end
  end
  return o
end

--- files(dir [, opts]) -> handler(req, res)
function M.new(dir, opts)
  if type(dir) ~= "string" then
    error("bad argument #1 to 'files' (string expected, got " ..
      type(dir) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'files' (table expected, got " ..
      type(opts) .. ")", 2)
  end
  opts = check_opts(opts or {})
  -- (once, synchronously: this may run outside a task)
  local root = uv.fs_realpath(dir)
  local st = root and uv.fs_stat(root)
  if not st or st.type ~= "directory" then
    error("bad argument #1 to 'files' (not a directory: " .. dir .. ")", 2)
  end
  local inside = root == "/" and "/" or root .. "/"
  -- every file served, the index too, passes this: its real path is the
  -- root or under it
  local function contained(p)
    return p == root or p:sub(1, #inside) == inside
  end
  return function(req, res)
    if req.method ~= "GET" and req.method ~= "HEAD" then
      res:header("Allow", "GET, HEAD")
      return res:send(405, "405 Method Not Allowed\n")
    end
    local path, status = decode_path(req.path)
    if not path then
      return res:send(status, status .. " " .. common.REASON[status] .. "\n")
    end
    local real = realpath(root .. path)
    if not real then return res:send(404, "404 Not Found\n") end
    if not contained(real) then
      return res:send(403, "403 Forbidden\n") -- a link pointing out
    end
    local attr = fs("stat", real)
    if not attr then return res:send(404, "404 Not Found\n") end
    if attr.type == "directory" then
      if not opts.index and not opts.listing then
        return res:send(404, "404 Not Found\n")
      end
      if path:sub(-1) ~= "/" then -- relative links need the slash
        -- (and a mount prefix cannot make one: "/" .. "/dir" would)
        local loc = ((req.mount or "") .. path .. "/"):gsub("^//+", "/")
        res:header("Location", encode_path(loc))
        return res:send(301, "301 Moved Permanently\n")
      end
      -- (the index is resolved and checked as any file: a link named
      -- index.html pointing out is 403 here as it is when asked by name)
      local index = opts.index and realpath(real .. "/" .. opts.index)
      if index and not contained(index) then
        return res:send(403, "403 Forbidden\n")
      end
      local iattr = index and fs("stat", index)
      if iattr and iattr.type == "file" then
        real, attr = index, iattr
      elseif opts.listing then
        res:header("Content-Type", "text/html; charset=utf-8")
        return res:send(200, listing(path, real))
      else
        return res:send(404, "404 Not Found\n")
      end
    end
    if attr.type ~= "file" then return res:send(403, "403 Forbidden\n") end
    return send_file(res, req, real, attr, opts)
  end
end

return M
