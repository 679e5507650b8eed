--[[
http.common: what the server, the client and WebSocket share: defaults,
reason phrases, the Date header, header tables, the HTTP error object and
a buffered reader over a net connection.
]]
local core = require "http.core"
local task = require "task"

local M = {}

--- Limits and timeouts, in one place; http.listen{limits=, timeouts=} and
--- http.request override them field by field.
M.defaults = {
  limits = {
    line = 8192,          -- request line (414 above)
    head = 16384,         -- header block bytes (431 above)
    fields = 100,         -- header fields (431 above)
    body = 1024 * 1024,   -- req:body() / res:body() (413 above)
    drain = 64 * 1024,    -- unread body skipped to keep a connection
    framing = 64 * 1024,  -- chunk framing bytes allowed besides data/8
    ws_message = 1024 * 1024, -- WebSocket message (close 1009 above)
    connections = 10000,  -- per server
    pool = 16,            -- client: idle connections kept per origin
  },
  timeouts = {
    idle = 30,    -- keep-alive connection with no request
    rest = 0.05,  -- server: after a response, the wait for the next
                  -- request in a plain read (task kept), before the
                  -- connection rests with no task (0: at once)
    head = 10,    -- first byte of a head to its end (408)
    body = 30,    -- req:body(): whole body, from the head (408);
                  -- req:chunks(math.huge): between two reads
    write = 30,   -- a write that does not progress
    connect = 10, -- client: connect
    pool = 30,    -- client: how long an idle pooled connection is kept
  },
}

-- RFC 9110 15's reason phrases, and the registry's common others
M.REASON = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [201] = "Created", [202] = "Accepted",
  [203] = "Non-Authoritative Information", [204] = "No Content",
  [205] = "Reset Content", [206] = "Partial Content",
  [207] = "Multi-Status", [208] = "Already Reported", [226] = "IM Used",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [305] = "Use Proxy",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized",
  [402] = "Payment Required", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed",
  [406] = "Not Acceptable", [407] = "Proxy Authentication Required",
  [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [411] = "Length Required",
  [412] = "Precondition Failed", [413] = "Content Too Large",
  [414] = "URI Too Long", [415] = "Unsupported Media Type",
  [416] = "Range Not Satisfiable", [417] = "Expectation Failed",
  [421] = "Misdirected Request", [422] = "Unprocessable Content",
  [423] = "Locked", [424] = "Failed Dependency", [425] = "Too Early",
  [426] = "Upgrade Required", [428] = "Precondition Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
  [506] = "Variant Also Negotiates", [507] = "Insufficient Storage",
  [508] = "Loop Detected", [511] = "Network Authentication Required",
}

-- Merge user options over defaults (unknown names raise).
local ZERO_OK = {rest = true} -- (timeouts.rest = 0: rest at once)
function M.merge(defaults, given, what, fname)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  if given ~= nil then
    if type(given) ~= "table" then
      error(("bad argument #1 to '%s' (%s: table expected, got %s)")
        :format(fname, what, type(given)), 3)
    end
    for k, v in pairs(given) do
      if defaults[k] == nil then
        error(("bad argument #1 to '%s' (unknown %s '%s')")
          :format(fname, what, tostring(k)), 3)
      end
      if type(v) ~= "number" or v ~= v or v < 0 or
         (v == 0 and not ZERO_OK[k]) then
        error(("bad argument #1 to '%s' (%s.%s: %s number expected)")
          :format(fname, what, tostring(k),
            ZERO_OK[k] and "non-negative" or "positive"), 3)
      end
      out[k] = v
    end
  end
  return out
end

-- The Date header's value (RFC 9110 IMF-fixdate), formatted once a second.
local date_t, date_s
function M.date(t)
  if t then return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end
  t = os.time()
  if t ~= date_t then
    date_t, date_s = t, os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
  end
  return date_s
end

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12}

-- Seconds since the epoch of an HTTP-date, or nil for anything else or
-- an impossible date (counted by hand: os.time would read the fields as
-- local time). RFC 9110 5.6.7: a recipient accepts all three formats,
-- IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the obsolete RFC 850
-- one ("Sunday, 06-Nov-94 08:49:37 GMT": a two-digit year more than 50
-- years ahead is in the past century) and asctime's ("Sun Nov  6
-- 08:49:37 1994").
local WEEKDAYS = {Mon = "Monday", Tue = "Tuesday", Wed = "Wednesday",
  Thu = "Thursday", Fri = "Friday", Sat = "Saturday", Sun = "Sunday"}
local LONG_DAYS = {}
for short, long in pairs(WEEKDAYS) do LONG_DAYS[long] = short end
local MONTH_DAYS = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

function M.parse_date(s)
  s = s or ""
  local wd, d, mon, y, hh, mm, ss = s:match(
    "^(%a%a%a), (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not wd then
    local long
    long, d, mon, y, hh, mm, ss = s:match(
      "^(%a+), (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    wd = LONG_DAYS[long]
    if wd then
      y = 1900 + tonumber(y)
      local this_year = tonumber(os.date("!%Y"))
      while y < this_year - 49 do y = y + 100 end
    end
  end
  if not wd then
    wd, mon, d, hh, mm, ss, y = s:match(
      "^(%a%a%a) (%a%a%a) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  local m = MONTHS[mon]
  if not m or not WEEKDAYS[wd] then return nil end
  y, d, hh, mm, ss = tonumber(y), tonumber(d), tonumber(hh), tonumber(mm),
    tonumber(ss)
  if d < 1 or d > MONTH_DAYS[m] or hh > 23 or mm > 59 or ss > 60 or
    (m == 2 and d == 29 and not (y % 4 == 0 and
      (y % 100 ~= 0 or y % 400 == 0))) then
    return nil
  end
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return (era * 146097 + doe - 719468) * 86400 + hh * 3600 + mm * 60 + ss
end

-- Header tables: lower-case keys; a lookup with any case works.
local lower = string.lower
M.headers_mt = {__index = function(t, k)
  if type(k) == "string" then
    local l = lower(k)
    if l ~= k then return rawget(t, l) end
  end
  return nil
end}

-- Does the comma list value v hold token tok (case-insensitive)?
function M.has_token(v, tok)
  if not v then return false end
  for e in v:gmatch("[^,]+") do
    if lower(e:match("^[ \t]*(.-)[ \t]*$")) == tok then return true end
  end
  return false
end

--- An HTTP error raised by req:body() and friends: the server answers
--- its status (and closes) when the handler lets it through.
local HttpError = {__name = "http.error"}
HttpError.__index = HttpError
function HttpError.__tostring(e)
  return ("http error %s: %s"):format(tostring(e.status), e.message)
end
M.HttpError = HttpError
function M.raise(status, message)
  error(setmetatable({status = status, message = message}, HttpError), 0)
end
function M.is_error(e) return getmetatable(e) == HttpError end

M.check_field = core.check_field

-- {{{ files without blocking the loop

local uv = require "uv"

--- fs(name, ...) -> the results of uv.fs_<name>(...) run on libuv's
--- thread pool while the current task waits (other tasks and connections
--- go on); nil, err on failure.
function M.fs(name, ...)
  local ev, r = task.event(), nil
  local n = select("#", ...)
  local args = {...}
  args[n + 1] = function(...)
    r = table.pack(...)
    ev:set()
  end
  local req, err = uv["fs_" .. name](table.unpack(args, 1, n + 1))
  if not req then return nil, err end
  ev:wait()
  if r[1] then return nil, r[1] end
  return table.unpack(r, 2, r.n)
end

-- }}}

-- {{{ reader: buffered input over a net connection

local Reader = {}
Reader.__index = Reader
M.Reader = Reader

local sub = string.sub

function M.reader(conn)
  return setmetatable({conn = conn, buf = "", pos = 1}, Reader)
end

-- Bytes buffered and not consumed.
function Reader:buffered() return #self.buf - self.pos + 1 end

-- Read more input (waiting at most `timeout` seconds, nil = the
-- connection's own); returns true or nil, err ("closed", "timeout"...).
-- self.timeout: the timeout it last set on the conn.
function Reader:fill(timeout)
  local conn = self.conn
  if timeout then
    conn:settimeout(timeout)
    self.timeout = timeout
  end
  local data, err = conn:recv()
  if not data then return nil, err end
  local buf, pos = self.buf, self.pos
  if pos > #buf then
    self.buf = data
  else
    self.buf = sub(buf, pos) .. data
  end
  self.pos = 1
  return true
end

-- Up to max bytes of what is buffered, reading once if nothing is.
function Reader:some(max, timeout)
  if self.pos > #self.buf then
    local ok, err = self:fill(timeout)
    if not ok then return nil, err end
  end
  local buf, pos = self.buf, self.pos
  local last = pos + max - 1
  if last >= #buf then
    self.buf, self.pos = "", 1
    if pos == 1 then return buf end
    return sub(buf, pos)
  end
  self.pos = last + 1
  return sub(buf, pos, last)
end

-- Exactly n bytes, or nil, err (pieces are gathered in a list: a large n
-- costs one concatenation, not one per read).
function Reader:take(n, timeout)
  local deadline = timeout and task.now() + timeout
  local have = #self.buf - self.pos + 1
  if have >= n then
    local pos = self.pos
    self.pos = pos + n
    return sub(self.buf, pos, pos + n - 1)
  end
  local parts, got = {}, 0
  while got < n do
    if self.pos > #self.buf then
      local left = deadline and deadline - task.now()
      if left and left <= 0 then return nil, "timeout" end
      local ok, err = self:fill(left)
      if not ok then return nil, err end
    end
    local piece = self:some(n - got)
    parts[#parts + 1] = piece
    got = got + #piece
  end
  return table.concat(parts)
end

--- Read a response head through reader r: the head table (headers with
--- headers_mt), or nil, err. `deadline` (task.now() based) bounds it.
--- With mt: the head has that metatable, and its headers and fields are
--- not made (_hbuf and _hb are set for head_headers and head_fields).
function M.read_response_head(r, deadline, mt)
  local L = M.defaults.limits
  local from = r.pos
  while true do
    if r.pos <= #r.buf then
      local h, nxt, why = core.parse_response(r.buf, r.pos, from, L.line,
        L.head, L.fields, mt)
      if h then
        r.pos = nxt
        if not mt then setmetatable(h.headers, M.headers_mt) end
        return h
      elseif h == false then
        return nil, "bad response: " .. why
      end
    end
    local left = deadline and deadline - task.now()
    if left and left <= 0 then return nil, "timeout" end
    local before = #r.buf - r.pos + 1
    local ok, err = r:fill(left)
    if not ok then return nil, err end
    from = before + 1
  end
end

-- }}}

return M
