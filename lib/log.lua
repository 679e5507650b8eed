--[[
log: levelled log lines in the host's one format (host/log.c), shared
with the supervisor, the drain and the workers.

  log.debug(msg [, fields]), log.info, log.warn, log.error
  log.setup{level =, format =, file =} -> previous settings
  log.enabled(level) -> boolean
  log.level(), log.format()

A line: time (RFC 3339, UTC, milliseconds), level, process (pid, worker
id), the message, then the fields (sorted by key):

  2026-12-04T06:15:02.345Z info luahost[1234 w2]: GET /hello status=200
  {"time":"2026-12-04T06:15:02.345Z","level":"info","pid":1234,
   "worker":2,"msg":"GET /hello","status":200}

The command line sets the start: --log-level, --log-format. See docs/log.md.
]]
local private = select(2, ...)
local w = private.log

local log = {}

local LEVELS = {debug = 0, info = 1, warn = 2, error = 3}
local FORMATS = {text = true, json = true}

local function bad(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local write = w.write
local config = w.config

for name in pairs(LEVELS) do
  log[name] = function(msg, fields)
    if type(msg) ~= "string" then
      if type(msg) == "number" then msg = tostring(msg)
      else bad(1, name, "string expected, got " .. type(msg)) end
    end
    if fields ~= nil and type(fields) ~= "table" then
      bad(2, name, "table of fields expected, got " .. type(fields))
    end
    write(name, msg, fields)
  end
end

--- The level now in force ("debug", "info", "warn" or "error").
function log.level() return (config()) end

--- The format now in force ("text" or "json").
function log.format() return select(2, config()) end

--- Would a line at this level be written? (host/log.c: one C call)
log.enabled = w.enabled

local file_now -- the file set by setup, nil: stderr

--- setup{level =, format =, file =}: change what is given (file = false:
--- back to stderr). Returns the previous {level =, format =, file =}.
--- nil, err when the file cannot be opened (nothing changed then).
function log.setup(opts)
  if type(opts) ~= "table" then
    bad(1, "setup", "table expected, got " .. type(opts))
  end
  for k in pairs(opts) do
    if k ~= "level" and k ~= "format" and k ~= "file" then
      bad(1, "setup", "unknown option '" .. tostring(k) .. "'")
    end
  end
  if opts.level ~= nil and not LEVELS[opts.level] then
    bad(1, "setup", "level: debug, info, warn or error expected")
  end
  if opts.format ~= nil and not FORMATS[opts.format] then
    bad(1, "setup", "format: text or json expected")
  end
  local f = opts.file
  if f ~= nil and f ~= false and type(f) ~= "string" then
    bad(1, "setup", "file: a path or false expected")
  end
  local level, format = config()
  local prev = {level = level, format = format, file = file_now or false}
  if f ~= nil then
    local ok, err = w.open(f or nil)
    if not ok then return nil, err end
    file_now = f or nil
  end
  config(opts.level, opts.format)
  return prev
end

return log
