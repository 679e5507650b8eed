--[[
http.client: HTTP/1.1 requests over net, with a connection pool per
origin.

  local res = assert(http.request{method = "POST", url = "http://h/x",
    headers = {["Content-Type"] = "text/plain"}, body = "hi",
    timeout = 10, redirects = 5})
  res.status, res.reason, res.headers, res.version, res.fields
  res:body([max]) -> string       res:chunks([max]) -> iterator
  res:close()                      drop the connection (body unread)
  local res = assert(http.get(url [, opts]))   -- body already read

`source` instead of `body`: a function returning the next piece (nil at
the end), sent chunked. A connection goes back to the pool when its
response body has been read to the end; the pool keeps at most
limits.pool idle connections per origin, each for at most
timeouts.pool seconds. A pooled connection the server closed meanwhile
is dropped when taken; a request that fails on a reused connection
before any response byte is sent once more on a new one when it can be
(its body not a source that was read; not sent whole, or an idempotent
method).

Proxies: `proxy = "http://[user:pass@]host:port"` (or false for none);
by default the environment's `http_proxy` for http:// URLs and
`https_proxy` (or `HTTPS_PROXY`) for https:// ones, except for the hosts
`no_proxy` (or `NO_PROXY`) lists. `HTTP_PROXY` in capitals is ignored,
as curl does: CGI puts a request's `Proxy:` header there ("httpoxy").
http:// requests go to the proxy in absolute form; https:// ones through
a `CONNECT` tunnel, TLS end to end with the origin's name verified.
]]
local net = require "net"
local task = require "task"
local uv = require "uv"
-- (raises unless a task that can wait runs: at the caller's line)
local net_core = select(2, ...).require("net.core")
local need_task = net_core.need_task
-- (may a conn no answer is due on be sent on: not closed, no input, no
-- end or error from the peer; lib/net_read.c: a system call only for
-- a conn that stopped reading)
local idle_ok = net_core.idle_ok
local tls_context = select(2, ...).net_tls_context
local core = require "http.core"
local common = require "http.common"

local M = {}

local now, concat, lower = task.now, table.concat, string.lower

local DEFAULT_PORT = {http = 80, https = 443, ws = 80, wss = 443}

local tunnel -- (below)

--- parse_url(url) -> {scheme, host, port, target, authority} | nil, err
-- A URL in an error message: control bytes escaped (a message goes to
-- logs), 200 bytes at most.
local function shown(url)
  if #url > 200 then url = url:sub(1, 200) .. "..." end
  return (url:gsub("[%z\1-\31\127]", function(c)
    return ("\\%03d"):format(c:byte())
  end))
end

function M.parse_url(url)
  if type(url) ~= "string" then return nil, "URL expected" end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not a URL: " .. shown(url) end
  scheme = lower(scheme)
  if not DEFAULT_PORT[scheme] then
    return nil, "unsupported scheme: " .. shown(scheme)
  end
  local authority, target = rest:match("^([^/?#]*)([^#]*)")
  if target == "" or target:sub(1, 1) == "?" then target = "/" .. target end
  if target:find("[%z\1-\32\127]") then
    return nil, "bad character in URL: " .. shown(url)
  end
  if authority:find("@", 1, true) then
    return nil, "user info in URLs is not supported"
  end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([%w.-]+):?(%d*)$") end
  if not host or host == "" then
    return nil, "bad host in URL: " .. shown(url)
  end
  if port == "" and authority:sub(-1) == ":" then
    authority = authority:sub(1, -2) -- (an empty port is the default)
  end
  port = port ~= "" and tonumber(port) or DEFAULT_PORT[scheme]
  if port < 1 or port > 65535 then return nil, "bad port in URL" end
  return {scheme = scheme, host = host, port = port, target = target,
    authority = authority}
end

-- parse_url's answers for the URLs requests were made to, shared (a
-- client asks the same few URLs again and again; parsing one costs more
-- than the rest of a pooled request's Lua). Each is read only; at most
-- URL_CACHE of them, the lot dropped when full.
local URL_CACHE = 256
local urls, nurls = {}, 0
local function cached_url(url)
  local u = urls[url]
  if u then return u end
  local err
  u, err = M.parse_url(url)
  if not u then return nil, err end
  u.origin = u.scheme .. "://" .. u.host .. ":" .. u.port
  u.plain_heads = {} -- method -> head (head_bytes)
  if nurls >= URL_CACHE then urls, nurls = {}, 0 end
  urls[url], nurls = u, nurls + 1
  return u
end

-- A URI reference in its five parts (RFC 3986 appendix B); absent parts
-- are nil, present empty ones "".
local function split_ref(s)
  local scheme, rest = s:match("^(%a[%w+.-]*):(.*)$")
  rest = rest or s
  local authority
  if rest:sub(1, 2) == "//" then
    authority, rest = rest:match("^//([^/?#]*)(.*)$")
  end
  local path, tail = rest:match("^([^?#]*)(.*)$")
  local query, fragment
  if tail:sub(1, 1) == "?" then query, tail = tail:match("^%?([^#]*)(.*)$") end
  if tail:sub(1, 1) == "#" then fragment = tail:sub(2) end
  return scheme, authority, path, query, fragment
end

-- RFC 3986 5.2.4: "." and ".." segments out of a path.
local function remove_dots(path)
  local out, i = {}, 1
  while i <= #path do
    if path:sub(i, i + 2) == "../" then i = i + 3
    elseif path:sub(i, i + 1) == "./" then i = i + 2
    elseif path:sub(i, i + 2) == "/./" then i = i + 2
    elseif path:sub(i) == "/." then path, i = path:sub(1, i - 1) .. "/", i
    elseif path:sub(i, i + 3) == "/../" then
      i = i + 3
      out[#out] = nil
    elseif path:sub(i) == "/.." then
      path, i = path:sub(1, i - 1) .. "/", i
      out[#out] = nil
    elseif path:sub(i) == "." or path:sub(i) == ".." then i = #path + 1
    else
      local seg = path:match("^/?[^/]*", i)
      out[#out + 1] = seg
      i = i + #seg
    end
  end
  return table.concat(out)
end

-- The absolute URL of a Location header seen at base: RFC 3986 5.2.2's
-- resolution (the fragment left off: it is never sent).
local function resolve(base, location)
  local rs, ra, rp, rq = split_ref(location)
  local bs, ba, bp, bq = split_ref(base)
  local s, a, p, q = bs, ba -- (p, q: each branch sets them)
  if rs then
    s, a, p, q = rs, ra, remove_dots(rp), rq
  elseif ra then
    a, p, q = ra, remove_dots(rp), rq
  elseif rp == "" then
    p, q = bp, rq or bq
  else
    if rp:sub(1, 1) == "/" then
      p = remove_dots(rp)
    elseif ba and bp == "" then
      p = remove_dots("/" .. rp)
    else
      p = remove_dots((bp:match("^(.*/)") or "") .. rp)
    end
    q = rq
  end
  return s .. ":" .. (a and "//" .. a or "") .. p .. (q and "?" .. q or "")
end
M.resolve = resolve

-- {{{ proxies

-- Does no_proxy (a comma- or space-separated list: "*", host names,
-- domain suffixes with or without a leading dot, IP addresses, each with
-- an optional :port, IPv6 ones in brackets then) exempt host:port?
local function exempt(list, host, port)
  host = lower(host)
  for entry in list:gmatch("[^,%s]+") do
    entry = lower(entry)
    if entry == "*" then return true end
    local name, p = entry:match("^%[(.-)%]:?(%d*)$")
    if not name then
      name, p = entry:match("^([^:]+):(%d+)$")
      if not name then name, p = entry, "" end
    end
    name = name:gsub("^%.", "")
    if (p == "" or tonumber(p) == port) and name ~= "" and (host == name or
      host:sub(-#name - 1) == "." .. name) then
      return true
    end
  end
  return false
end
M.no_proxy_exempts = exempt

-- The proxy URL (string or nil) as {host, port, auth} | nil | nil, err.
local function parse_proxy(url)
  local scheme, userinfo, rest = url:match("^(%a[%w+.-]*)://([^/@]*)@(.*)$")
  if not scheme then
    scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  end
  if not scheme then -- "host:port", as curl takes it
    scheme, rest = "http", url
  end
  if lower(scheme) ~= "http" then
    return nil, "proxy " .. url .. ": only http:// proxies are supported"
  end
  local u, err = M.parse_url("http://" .. rest)
  if not u then return nil, "proxy " .. url .. ": " .. err end
  if u.port == 80 and not u.authority:find(":%d+$") then u.port = 1080 end
  local auth
  if userinfo then
    local unescape = function(x)
      return (x:gsub("%%(%x%x)", function(h)
        return string.char(tonumber(h, 16)) end))
    end
    local user, pass = userinfo:match("^([^:]*):?(.*)$")
    auth = "Basic " .. core.b64encode(unescape(user) .. ":" .. unescape(pass))
  end
  return {host = u.host, port = u.port, auth = auth}
end

-- The proxy a request to u goes through: opts.proxy (false: none), else
-- the environment's. -> proxy | nil | nil, err
local function proxy_for(u, opts)
  local url = opts.proxy
  if url == false then return nil end
  if url == nil then
    if u.scheme == "https" then
      url = os.getenv("https_proxy") or os.getenv("HTTPS_PROXY")
    else
      url = os.getenv("http_proxy")
    end
    if not url or url == "" then return nil end
    local list = os.getenv("no_proxy") or os.getenv("NO_PROXY")
    if list and exempt(list, u.host, u.port) then return nil end
  end
  return parse_proxy(url)
end

-- }}}

-- {{{ pool

-- origin -> list of idle connections' readers (reader.conn the conn,
-- reader.idle_since when it came back), the most recent last
local pools = {}

-- The pool's timer: it closes the idle connections whose timeouts.pool
-- has passed, when it has (not at the next checkout only: a connection
-- idle for good would stay open). One uv timer for every origin, armed
-- for the earliest expiry, unreferenced: the pool keeps no script alive.
-- It exists only while the pool holds a connection: an empty pool leaves
-- no handle open (uv.walk shows none).
local sweeper, sweep_due -- (the timer; when it fires)
local sweep -- (below)

local function disarm()
  if sweeper and not sweeper:is_closing() then sweeper:close() end
  sweeper, sweep_due = nil, nil
end

local function arm(due, t)
  if sweeper and sweeper:is_closing() then disarm() end -- (closed by hand)
  if sweep_due and sweep_due <= due then return end
  if not sweeper then
    sweeper = uv.new_timer()
    sweeper:unref()
  end
  sweep_due = due
  -- (a millisecond late: at due, the connection has expired)
  sweeper:start(math.max(1, math.ceil((due - t) * 1000) + 1), 0, sweep)
end

-- sweep(): close the pooled connections idle for timeouts.pool or more
-- (the pool's timer calls it).
sweep = function()
  sweep_due = nil
  local t, ttl = now(), common.defaults.timeouts.pool
  local earliest
  for origin, list in pairs(pools) do
    local kept = 0
    for i = 1, #list do
      local r = list[i]
      list[i] = nil
      if t - r.idle_since >= ttl or r.conn:is_closed() then
        r.conn:close()
      else
        kept = kept + 1
        list[kept] = r
        local due = r.idle_since + ttl
        if not earliest or due < earliest then earliest = due end
      end
    end
    if kept == 0 then pools[origin] = nil end
  end
  if earliest then arm(earliest, t) else disarm() end
end

-- Is an idle connection still good to send on: not expired, nothing
-- unread, and nothing waiting on its socket (an idle connection has no
-- answer due: what is there is the peer's end, an error, or junk; a
-- server that closed it on its keep-alive timeout makes it readable)?
local function usable(r, t)
  return t - r.idle_since < common.defaults.timeouts.pool and
    r.pos > #r.buf and idle_ok(r.conn)
end

local function checkout(origin)
  local list = pools[origin]
  local n = list and #list or 0
  local t = now()
  while n > 0 do
    local r = list[n]
    -- (an emptied pool keeps its timer until it fires: closed here and
    -- made again at the checkin, a timer a request cost ~5,000
    -- instructions; the sweep closes it when the pool is still empty)
    list[n], n = nil, n - 1
    if usable(r, t) then return r.conn, r end
    r.conn:close()
  end
  return nil
end

local function checkin(origin, conn, reader)
  local list = pools[origin]
  if not list then
    list = {}
    pools[origin] = list
  end
  if #list >= common.defaults.limits.pool or conn:is_closed() then
    conn:close()
    return
  end
  local t = now()
  reader.idle_since = t
  list[#list + 1] = reader
  arm(t + common.defaults.timeouts.pool, t)
end

--- close_idle(): close every pooled connection.
function M.close_idle()
  for origin, list in pairs(pools) do
    for _, r in ipairs(list) do r.conn:close() end
    pools[origin] = nil
  end
  disarm()
end

--- pool_size([origin]) -> idle pooled connections (for one origin or all)
function M.pool_size(origin)
  local n = 0
  for o, list in pairs(pools) do
    if origin == nil or o == origin then n = n + #list end
  end
  return n
end

-- }}}

-- {{{ responses

local Response = {}
Response.__name = "http.client_response"

-- Methods, then the head's headers and fields: made from its bytes when
-- first read (a client that reads neither makes neither). The state a
-- response reads before it sets it is false in the response itself, so
-- that those reads do not come here.
local head_headers, head_fields = core.head_headers, core.head_fields
function Response.__index(res, k)
  local v = Response[k]
  if v ~= nil then return v end
  if k == "headers" or k == "fields" then
    local hbuf, hb = rawget(res, "_hbuf"), rawget(res, "_hb")
    if not hbuf then return nil end
    if k == "headers" then
      v = setmetatable(head_headers(hbuf, hb), common.headers_mt)
    else
      v = head_fields(hbuf, hb)
    end
    rawset(res, k, v)
    return v
  end
  return nil
end

local function release(self)
  local conn = self._conn
  if not conn then return end
  self._conn = false
  if self.keep then checkin(self._origin, conn, self._reader)
  else conn:close() end
end

local function next_raw(self, max)
  if self._done then
    release(self) -- (the last piece may have come with the end)
    return nil
  end
  local r, timeout = self._reader, self._timeout
  local piece
  if self._decoder then
    while true do
      if r.pos <= #r.buf then
        local d, nxt = self._decoder:decode(r.buf, r.pos)
        if not d then
          self.keep = false
          release(self)
          return nil, "bad chunked body: " .. nxt
        end
        if nxt then
          r.pos = nxt
          self._done = true
        else
          r.buf, r.pos = "", 1
        end
        if d ~= "" then piece = d break end
        if self._done then release(self) return nil end
      end
      local ok, err = r:fill(timeout)
      if not ok then
        self.keep = false
        release(self)
        return nil, err
      end
    end
  elseif self._left then
    if self._left == 0 then
      self._done = true
      release(self)
      return nil
    end
    local err
    piece, err = r:some(math.min(self._left, 65536), timeout)
    if not piece then
      self.keep = false
      release(self)
      return nil, err == "closed" and "closed before the end of the body"
        or err
    end
    self._left = self._left - #piece
  else -- until the server closes
    local err
    piece, err = r:some(65536, timeout)
    if not piece then
      self._done = true
      self.keep = false
      release(self)
      if err == "closed" or err == "EOF" then return nil end
      return nil, err
    end
  end
  self._got = self._got + #piece
  if self._got > max then
    self.keep = false
    self._done = true
    release(self)
    return nil, "body larger than " .. max
  end
  return piece
end

-- The next piece of the body, gunzipped when the client asked for gzip
-- and got it (max then bounds the decoded size: no zip bombs).
local function next_piece(self, max)
  local z = self._gunzip
  if not z then return next_raw(self, max) end
  while true do
    local raw, err = next_raw(self, math.huge)
    if err then return nil, err end
    if not raw then
      self._gunzip = false
      local done = z:done()
      z:close()
      if not done then return nil, "truncated gzip body" end
      return nil
    end
    local left = max - self._decoded
    local piece, zerr = z:write(raw, left < math.maxinteger and
      math.floor(left) or math.maxinteger)
    if not piece then
      self.keep = false
      self._done = true
      release(self)
      z:close()
      self._gunzip = false
      return nil, zerr == "too large" and "body larger than " .. max or
        "bad gzip body: " .. zerr
    end
    if #piece > 0 then
      self._decoded = self._decoded + #piece
      return piece
    end
  end
end

--- res:chunks([max]) -> iterator of body pieces; on failure the iterator
--- returns nil, err (check res.error after the loop).
function Response:chunks(max)
  max = max or math.huge
  return function()
    local p, err = next_piece(self, max)
    if err then self.error = err end
    return p
  end
end

--- res:body([max]) -> the whole body | nil, err (max: default
--- limits.body; math.huge for none)
function Response:body(max)
  if max ~= nil and not (type(max) == "number" and max >= 0) then
    error("bad argument #1 to 'body' (non-negative number expected, got " ..
      tostring(max) .. ")", 2)
  end
  if self._body then return self._body end
  max = max or self._max or common.defaults.limits.body
  -- (a body of one piece, most small ones, is that piece: no list)
  local first, err = next_piece(self, max)
  if err then return nil, err end
  local p
  if first then p, err = next_piece(self, max) end
  if err then return nil, err end
  if not p then
    self._body = first or ""
    return self._body
  end
  local parts = {first, p}
  while true do
    p, err = next_piece(self, max)
    if err then return nil, err end
    if not p then break end
    parts[#parts + 1] = p
  end
  self._body = concat(parts)
  return self._body
end

--- res:close(): drop the connection (when the body will not be read).
function Response:close()
  if self._conn then
    self.keep = false
    release(self)
  end
  self._done = true
end

-- }}}

-- {{{ requests

local REQUEST_OPTS = {method = true, url = true, headers = true,
  body = true, source = true, timeout = true, redirects = true,
  max_body = true, gzip = true, tls = true, proxy = true}

-- (the common methods: no pattern to match)
local METHODS = {GET = true, HEAD = true, POST = true, PUT = true,
  DELETE = true, PATCH = true, OPTIONS = true}

-- (fname: the function the options came to, request's #1 or get's #2;
-- errors name the caller of that function)
local BAD = {request = "bad argument #1 to 'request' ",
  get = "bad argument #2 to 'get' "}
local function check_opts(opts, fname)
  local bad = BAD[fname]
  if type(opts) ~= "table" then
    error(bad .. "(table expected, got " ..
      type(opts) .. ")", 3)
  end
  for k in pairs(opts) do
    if not REQUEST_OPTS[k] then
      error(bad .. ("(unknown option '%s')"):format(tostring(k)), 3)
    end
  end
  if type(opts.url) ~= "string" then
    error(bad .. "(url: string expected)", 3)
  end
  local method = opts.method or "GET"
  if type(method) ~= "string" or not (METHODS[method] or
    method:match("^[%u%-_]+$")) then
    -- (methods are case-sensitive: "get" is not GET, and a server
    -- refuses it, as http.listen does)
    error(bad .. ("(method: an upper-case token " ..
      "such as GET expected, got %s)"):format(type(method) == "string" and
      ("%q"):format(method):gsub("\\\n", "\\n") or type(method)), 3)
  end
  if opts.body ~= nil and type(opts.body) ~= "string" then
    error(bad .. "(body: string expected)", 3)
  end
  if opts.source ~= nil and type(opts.source) ~= "function" then
    error(bad .. "(source: function expected)", 3)
  end
  if opts.body ~= nil and opts.source ~= nil then
    error(bad .. "(body and source both given)", 3)
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    error(bad .. "(headers: table expected)", 3)
  end
  for name, value in pairs(opts.headers or {}) do
    if type(name) ~= "string" or (type(value) ~= "string" and
      type(value) ~= "number") then
      error(bad .. "(headers: name = value " ..
        "strings expected)", 3)
    end
    local ok, err = pcall(core.check_field, name, tostring(value))
    if not ok then
      error(bad .. "(header " .. name .. ": " ..
        (err:match("%((.-)%)$") or err) .. ")", 3)
    end
    local l = lower(name)
    if l == "content-length" or l == "transfer-encoding" or l == "host"
      or l == "connection" then
      error(bad .. "(header " .. name ..
        " is set by the client)", 3)
    end
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or
    opts.timeout ~= opts.timeout or opts.timeout <= 0) then
    error(bad .. "(timeout: positive number " ..
      "expected)", 3)
  end
  if opts.proxy ~= nil and opts.proxy ~= false and
    type(opts.proxy) ~= "string" then
    error(bad .. "(proxy: URL string or false " ..
      "expected)", 3)
  end
  local redirects = opts.redirects
  if redirects ~= nil and (math.type(redirects) ~= "integer" or
    redirects < 0) then
    error(bad .. "(redirects: integer >= 0 " ..
      "expected)", 3)
  end
  if opts.gzip ~= nil and type(opts.gzip) ~= "boolean" then
    error(bad .. "(gzip: boolean expected, got " .. type(opts.gzip) .. ")",
      3)
  end
  local max = opts.max_body
  if max ~= nil and not (type(max) == "number" and max >= 0) then
    error(bad .. "(max_body: non-negative number expected, got " ..
      tostring(max) .. ")", 3)
  end
  local tls = opts.tls
  if tls ~= nil and tls ~= true and tls ~= false then
    -- (its options checked now, naming us; the context made is the one
    -- the connection gets, net.connect keeps it per options table)
    tls_context(tls, fname == "get" and 2 or 1, fname, false, 4)
  end
  return method
end

local function head_bytes(method, u, headers, body, source, gzip, proxy)
  -- a plain request (no headers, body, gzip or proxy) to a cached URL
  -- with a common method: its head made once
  local plain = not (headers or body or source or gzip or proxy) and
    METHODS[method] and u.plain_heads
  if plain and plain[method] then return plain[method] end
  local target = u.target
  if proxy and u.scheme == "http" then -- absolute form (RFC 9112 3.2.2)
    target = "http://" .. u.authority .. target
  end
  local out = {method, " ", target, " HTTP/1.1\r\nHost: ", u.authority,
    "\r\n"}
  if proxy and proxy.auth and u.scheme == "http" then
    out[#out + 1] = "Proxy-Authorization: " .. proxy.auth .. "\r\n"
  end
  local has_ua, has_accept = false, false
  for name, value in pairs(headers or {}) do
    local l = lower(name)
    if l == "user-agent" then has_ua = true end
    if l == "accept" then has_accept = true end
    out[#out + 1] = name .. ": " .. tostring(value) .. "\r\n"
  end
  if not has_ua then out[#out + 1] = "User-Agent: luahost\r\n" end
  if not has_accept then out[#out + 1] = "Accept: */*\r\n" end
  if gzip and not (headers and (headers["Accept-Encoding"] or
    headers["accept-encoding"])) then
    out[#out + 1] = "Accept-Encoding: gzip\r\n"
  end
  if source then
    out[#out + 1] = "Transfer-Encoding: chunked\r\n"
  elseif body then
    out[#out + 1] = "Content-Length: " .. #body .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  local head = concat(out)
  if plain then plain[method] = head end
  return head
end

-- The pool key of a tls setting: equal option tables written anew for
-- each request (`tls = {ca = "ca.pem"}`) share connections; a context
-- or a table holding one goes by identity.
local function tls_key(tls)
  if type(tls) ~= "table" or getmetatable(tls) then return tostring(tls) end
  local keys = {}
  for k, v in pairs(tls) do
    local tv = type(v)
    if tv == "table" then
      local n = 0
      for _ in pairs(v) do n = n + 1 end
      if n ~= #v or getmetatable(v) then return tostring(tls) end
      for i, x in ipairs(v) do
        if type(x) ~= "string" then return tostring(tls) end
        keys[#keys + 1] = ("%s[%d]=%q"):format(k, i, x)
      end
    elseif tv == "string" or tv == "number" or tv == "boolean" then
      keys[#keys + 1] = ("%s=%q"):format(k, v)
    else
      return tostring(tls)
    end
  end
  table.sort(keys)
  return "{" .. concat(keys, ",") .. "}"
end

-- A connection to the proxy; for https, a CONNECT tunnel through it
-- with TLS to the origin on top. -> conn, reader | nil, nil, err
tunnel = function(u, proxy, tls, timeout)
  local deadline = now() + timeout
  local conn, err = net.connect(proxy.host, proxy.port, {timeout =
    math.min(timeout, common.defaults.timeouts.connect)})
  if not conn then return nil, nil, err end
  local r = common.reader(conn)
  if not tls then return conn, r end
  local function fail(why)
    conn:close()
    return nil, nil, why
  end
  local hostport = (u.host:find(":", 1, true) and "[" .. u.host .. "]" or
    u.host) .. ":" .. u.port
  local ok
  ok, err = conn:write("CONNECT ", hostport, " HTTP/1.1\r\nHost: ",
    hostport, "\r\n", proxy.auth and "Proxy-Authorization: " .. proxy.auth
    .. "\r\n" or "", "\r\n")
  if not ok then return fail(err) end
  local h
  h, err = common.read_response_head(r, deadline)
  if not h then return fail("proxy CONNECT: " .. err) end
  if h.status < 200 or h.status > 299 then
    return fail(("proxy CONNECT %s: %d %s"):format(hostport, h.status,
      h.reason or ""))
  end
  if r:buffered() > 0 then -- (a tunnel carries nothing before our hello)
    return fail("proxy CONNECT: data before the TLS handshake")
  end
  local left = math.max(0.001, deadline - now())
  conn, err = conn:starttls(tls, {host = u.host, timeout = left})
  if not conn then return nil, nil, err end
  return conn, common.reader(conn)
end

-- RFC 9110 9.2.2: requests that may be sent again automatically
local IDEMPOTENT = {GET = true, HEAD = true, OPTIONS = true, TRACE = true,
  PUT = true, DELETE = true}

-- One exchange on one connection (a new one when fresh, else a pooled one
-- if there is): res | nil, err, retryable. Retryable: the connection was
-- a reused one, it failed before any byte of the answer, the request can
-- be sent as it was (its source not read yet), and either it was not
-- sent whole (a write failed: nothing can have been processed) or its
-- method is idempotent.
local function exchange(method, u, opts, body, timeout, fresh)
  local origin = u.origin
  if u.scheme ~= "http" and u.scheme ~= "https" then
    return nil, u.scheme .. ":// is not supported by request"
  end
  -- https: verified by default (tls = options or a context for ca =,
  -- client certificates...); pooled per origin and tls setting
  local tls = u.scheme == "https" and (opts.tls or true) or nil
  if tls and tls ~= true then origin = origin .. " " .. tls_key(tls) end
  local proxy, perr = proxy_for(u, opts)
  if perr then return nil, perr end
  if proxy then -- plain: one pool per proxy; https: per tunnel's origin
    local via = " via " .. proxy.host .. ":" .. proxy.port .. " " ..
      tostring(proxy.auth)
    origin = (u.scheme == "http" and "http-proxy" or origin) .. via
  end
  local conn, r
  if not fresh then conn, r = checkout(origin) end
  local reused = conn ~= nil
  if not conn then
    local err
    if proxy then
      conn, r, err = tunnel(u, proxy, tls, timeout)
    else
      conn, err = net.connect(u.host, u.port, {timeout = math.min(timeout,
        common.defaults.timeouts.connect), tls = tls})
      r = conn and common.reader(conn)
    end
    if not conn then return nil, err end
  end
  conn:settimeout(timeout)
  local function broken(err, retryable)
    conn:close()
    return nil, err, reused and retryable
  end
  local ok, err = conn:write(head_bytes(method, u, opts.headers, body,
    opts.source, opts.gzip, proxy))
  if not ok then return broken(err, true) end
  local replayable = true
  if body and body ~= "" then
    ok, err = conn:write(body)
    if not ok then return broken(err, true) end
  elseif opts.source then
    replayable = false -- (a source read cannot be read again)
    for _ = 1, math.maxinteger do
      local piece = opts.source()
      if piece == nil then break end
      if type(piece) ~= "string" then
        conn:close()
        error("request: source must return strings (or nil at the end)", 3)
      end
      if #piece > 0 then
        ok, err = conn:write(("%x\r\n"):format(#piece), piece, "\r\n")
        if not ok then conn:close() return nil, err end
      end
    end
    ok, err = conn:write("0\r\n\r\n")
    if not ok then conn:close() return nil, err end
  end
  local h
  local deadline = now() + timeout
  local answered = false -- (an interim 1xx read is an answer begun)
  repeat -- interim 1xx answers are skipped
    h, err = common.read_response_head(r, deadline, Response)
    if not h then -- (a timeout is a slow server, not a stale connection)
      return broken(err, replayable and IDEMPOTENT[method] and
        not answered and err ~= "timeout" and r:buffered() == 0)
    end
    answered = true
  until h.status >= 200 or h.status == 101
  local res = h
  res._conn, res._reader, res._origin, res._timeout = conn, r, origin,
    timeout
  res._got, res._max, res._decoded = 0, opts.max_body or false, 0
  res._done, res._decoder, res._left, res._gunzip, res._body = false,
    false, false, false, false
  -- (no body at all: a HEAD's answer, 1xx, 204, 304 says the encoding
  -- a GET's body would have; nothing to gunzip)
  local bodiless = method == "HEAD" or h.status == 204 or
    h.status == 304 or h.status < 200
  if opts.gzip and not bodiless then
    local ce = h.headers["content-encoding"]
    if ce and (lower(ce) == "gzip" or lower(ce) == "x-gzip") then
      res._gunzip = core.gunzip()
      res.gunzipped = true
    end
  end
  res.keep = not h.close
  res.close = nil -- (the head's flag; res:close() is the method)
  if bodiless then
    res._done = true
    if h.status ~= 101 then release(res) end
  elseif h.length then -- (asked first: most have one)
    res._left = h.length
    if h.length == 0 then
      res._done = true
      release(res)
    end
  elseif h.chunked then
    res._decoder = core.chunked()
  else
    res.keep = false -- until_close
  end
  return res
end

local REDIRECT = {[301] = true, [302] = true, [303] = true, [307] = true,
  [308] = true}
local CREDENTIALS = {authorization = true, cookie = true,
  ["proxy-authorization"] = true}

--- request{method=, url=, headers=, body= | source=, timeout=,
--- redirects=, max_body=} -> res | nil, err
local request
function M.request(opts)
  local method = check_opts(opts, "request")
  need_task("http.request", 2)
  return request(opts, method)
end

request = function(opts, method)
  local url, body = opts.url, opts.body
  local timeout = opts.timeout or 30
  local left = opts.redirects or 5
  while true do
    local u, uerr = cached_url(url)
    if not u then return nil, uerr end
    local res, err, retry = exchange(method, u, opts, body, timeout)
    if not res and retry then
      -- (on a new connection: the pool's others may be as stale)
      res, err = exchange(method, u, opts, body, timeout, true)
    end
    if not res then return nil, err end
    local location = REDIRECT[res.status] and res.headers.location
    -- a redirect that keeps the method keeps the body (307 and 308, and
    -- 301/302 but for a POST): a source, read, cannot be sent again, so
    -- the caller gets that answer rather than a request without its body
    local keeps_body = res.status == 307 or res.status == 308 or
      ((res.status == 301 or res.status == 302) and method ~= "POST")
    if opts.source and keeps_body then location = nil end
    if not (location and left > 0) then
      res.url = url
      return res
    end
    -- follow: drop the body (bounded) and go again
    if not res:body(common.defaults.limits.drain) then res:close() end
    left = left - 1
    local from = cached_url(url)
    url = resolve(url, location)
    -- credentials stay with their origin (as curl and python's requests
    -- do): another scheme, host or port gets the headers without them
    local to = cached_url(url)
    if to and to.origin ~= from.origin and opts.headers then
      local kept, dropped = {}, false
      for name, value in pairs(opts.headers) do
        if CREDENTIALS[lower(name)] then dropped = true
        else kept[name] = value end
      end
      if dropped then
        opts = setmetatable({headers = kept}, {__index = opts})
      end
    end
    if res.status == 303 or ((res.status == 301 or res.status == 302) and
      method == "POST") then
      method, body = method == "HEAD" and "HEAD" or "GET", nil
      opts = setmetatable({source = false, headers = opts.headers},
        {__index = opts})
    end
  end
end

--- get(url [, opts]) -> res (body read: res:body() returns it) | nil, err
function M.get(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'get' (string expected, got " .. type(url) ..
      ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'get' (table expected, got " .. type(opts) ..
      ")", 2)
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url = url
  local method = check_opts(o, "get")
  need_task("http.get", 2)
  local res, err = request(o, method)
  if not res then return nil, err end
  local ok, berr = res:body(o.max_body)
  if not ok then return nil, berr end
  return res
end

-- }}}

return M
