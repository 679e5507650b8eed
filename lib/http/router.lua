--[[
http.router: method + path routing for http.listen.

  local app = http.router()
  app:use(function(req, res, next) ... next() end)  -- in order of use
  app:get("/users/:id", function(req, res) ... req.params.id ... end)
  app:post("/files/*path", fn)       -- *name: the rest of the path
  app:mount("/static", http.files("public"))  -- req.path loses the prefix
  http.listen{port = 8080, handler = app}

A path that matches no route is 404; one that matches routes of other
methods only is 405 with Allow. HEAD is answered by a GET route. Captures
are percent-decoded (a capture never holds a decoded "/" that was not
sent as %2F: ":name" stops at a "/" as sent).
]]
local M = {}

local find = string.find

local Router = {}
Router.__index = Router
Router.__name = "http.router"

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- "/users/:id/*rest" -> a Lua pattern and the capture names.
local function compile(pattern, fname)
  if type(pattern) ~= "string" or pattern:sub(1, 1) ~= "/" then
    error(("bad argument #1 to '%s' (path pattern starting with '/' " ..
      "expected, got %s)"):format(fname, tostring(pattern)), 3)
  end
  local names, out, i = {}, {"^"}, 1
  while i <= #pattern do
    local c = pattern:sub(i, i)
    local name = pattern:match("^[%a_][%w_]*", i + 1)
    if c == ":" and name then
      names[#names + 1] = name
      out[#out + 1] = "([^/]+)"
      i = i + 1 + #name
    elseif c == "*" then
      names[#names + 1] = name or "splat"
      out[#out + 1] = "(.*)"
      i = i + 1 + (name and #name or 0)
      if i <= #pattern then
        error(("bad argument #1 to '%s' ('*' must end the pattern)")
          :format(fname), 3)
      end
    else
      out[#out + 1] = c:gsub("%W", "%%%0")
      i = i + 1
    end
  end
  out[#out + 1] = "$"
  return table.concat(out), names, #names == 0 and pattern or nil
end

local function check_fn(fn, fname)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (mt and mt.__call) then
    error(("bad argument #2 to '%s' (function expected, got %s)")
      :format(fname, type(fn)), 3)
  end
end

--- router:route(method, pattern, fn) -> router ("*" = any method)
-- Servers that answer some of this router's routes in C (http.fixed)
-- are told when its routes or middleware change (http.server's sync).
local function changed(self)
  local w = rawget(self, "_watch")
  if w then
    for srv, sync in pairs(w) do sync(srv) end
  end
end

function Router:route(method, pattern, fn)
  if type(method) ~= "string" or not method:match("^[%u*]+$") then
    error("bad argument #1 to 'route' (method expected, got " ..
      tostring(method) .. ")", 2)
  end
  local lpat, names, literal = compile(pattern, "route")
  check_fn(fn, "route")
  self.routes[#self.routes + 1] = {method = method, lpat = lpat,
    names = names, fn = fn, literal = literal}
  changed(self)
  return self
end

for _, m in ipairs({"get", "post", "put", "delete", "patch", "head",
  "options", "all"}) do
  local method = m == "all" and "*" or m:upper()
  Router[m] = function(self, pattern, fn)
    local lpat, names, literal = compile(pattern, m)
    check_fn(fn, m)
    self.routes[#self.routes + 1] = {method = method, lpat = lpat,
      names = names, fn = fn, literal = literal}
    changed(self)
    return self
  end
end

--- router:use(fn(req, res, next)) -> router: middleware, run in order of
--- use before the routes; it goes on only when it calls next().
function Router:use(fn)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (mt and mt.__call) then
    error("bad argument #1 to 'use' (function expected, got " ..
      type(fn) .. ")", 2)
  end
  self.middleware[#self.middleware + 1] = fn
  changed(self)
  return self
end

--- router:mount(prefix, handler) -> router: requests under prefix go to
--- handler(req, res) with req.path relative to it (req.mount = prefix).
function Router:mount(prefix, fn)
  if type(prefix) ~= "string" or prefix:sub(1, 1) ~= "/" then
    error("bad argument #1 to 'mount' (path prefix expected)", 2)
  end
  check_fn(fn, "mount")
  prefix = prefix:gsub("/+$", "")
  self.mounts[#self.mounts + 1] = {prefix = prefix, fn = fn}
  changed(self)
  return self
end

-- A route whose pattern is a plain path (no capture) is found by one
-- look-up, path -> its routes, when no route with captures comes before
-- it (the result is then the one the loop below would find).
local function exact_index(self)
  local exact, routes = {}, self.routes
  for i = 1, #routes do
    local r = routes[i]
    if not r.literal then break end
    local list = exact[r.literal]
    if not list then
      list = {}
      exact[r.literal] = list
    end
    list[#list + 1] = r
  end
  self._exact, self._nexact = exact, #routes
  return exact
end

-- (fresh: req comes straight from the server, no middleware or outer
-- router before this one, so no params can be set on it yet)
local function dispatch(self, req, res, fresh)
  local path, method = req.path, req.method
  local routes = self.routes
  local exact = self._exact
  if not exact or self._nexact ~= #routes then exact = exact_index(self) end
  local hits = exact[path]
  if hits then
    for i = 1, #hits do
      local r = hits[i]
      local m = r.method
      if m == method or m == "*" or (method == "HEAD" and m == "GET") then
        -- (no captures: req.params made empty when first read)
        if not fresh and rawget(req, "params") ~= nil then
          req.params = {}
        end
        return r.fn(req, res)
      end
    end
  end
  local allowed
  for i = 1, #routes do
    local r = routes[i]
    -- (a route without captures costs one find and no table)
    if find(path, r.lpat) then
      if r.method == "*" or r.method == method or
        (method == "HEAD" and r.method == "GET") then
        local params = {}
        local names = r.names
        if #names > 0 then
          local caps = {path:match(r.lpat)}
          for k = 1, #names do params[names[k]] = unescape(caps[k]) end
        end
        req.params = params
        return r.fn(req, res)
      end
      allowed = allowed or {}
      allowed[r.method] = true
      if r.method == "GET" then allowed.HEAD = true end
    end
  end
  if allowed then
    local list = {}
    for k in pairs(allowed) do list[#list + 1] = k end
    table.sort(list)
    res:header("Allow", table.concat(list, ", "))
    return res:send(405, "405 Method Not Allowed\n")
  end
  for _, m in ipairs(self.mounts) do
    local p = m.prefix
    if path == p or path:sub(1, #p + 1) == p .. "/" or p == "" then
      req.mount = p
      req.path = path:sub(#p + 1)
      if req.path == "" then req.path = "/" end
      return m.fn(req, res)
    end
  end
  return res:send(404, "404 Not Found\n")
end

-- The middleware chain, then the routes.
local function run_chain(self, req, res)
  local mw, i = self.middleware, 0
  local function nxt()
    i = i + 1
    local f = mw[i]
    if f then return f(req, res, nxt) end
    return dispatch(self, req, res)
  end
  return nxt()
end

function Router:__call(req, res)
  if type(req) ~= "table" or type(res) ~= "table" then
    error(("bad argument #%d to 'router' (http request and response " ..
      "expected, got %s)"):format(type(req) ~= "table" and 1 or 2,
      type(req) ~= "table" and type(req) or type(res)), 2)
  end
  if #self.middleware == 0 then return dispatch(self, req, res) end
  return run_chain(self, req, res)
end

-- The router as a plain function, for http.listen (the server passes
-- its own request and response: no argument check, no __call; checking
-- cost ~750 instructions a request, 2.5 % of a GET /hello).
function Router:__handler()
  local mw = self.middleware
  return function(req, res)
    if #mw == 0 then return dispatch(self, req, res, true) end
    return run_chain(self, req, res)
  end
end

-- What dispatch calls first for GET and for HEAD of each path of its
-- exact index (the literal routes before the first with a capture), with
-- no middleware (none: every request goes through it): {path, get_fn,
-- head_fn, ...}, false for a method that is not answered there. For
-- http.server, which answers the fixed ones (http.fixed) in C.
function M.exact_routes(self)
  local out = {}
  if #self.middleware > 0 then return out end
  local seen, order = {}, {}
  local routes = self.routes
  for i = 1, #routes do
    local r = routes[i]
    if not r.literal then break end
    local p = r.literal
    local s = seen[p]
    if not s then
      s = {}
      seen[p] = s
      order[#order + 1] = p
    end
    local m = r.method
    if s.get == nil and (m == "GET" or m == "*") then s.get = r.fn end
    if s.head == nil and (m == "HEAD" or m == "*" or m == "GET") then
      s.head = r.fn
    end
  end
  for _, p in ipairs(order) do
    out[#out + 1] = p
    out[#out + 1] = seen[p].get or false
    out[#out + 1] = seen[p].head or false
  end
  return out
end

M.Router = Router

--- router() -> a router (callable as a handler)
function M.new()
  return setmetatable({routes = {}, middleware = {}, mounts = {}}, Router)
end

return M
