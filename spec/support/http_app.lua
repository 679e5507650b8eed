-- spec/support/http_app.lua: the server the http specs talk to with real clients
-- (curl, ab, python3). Prints "listening PORT" once ready; logs requests
-- to stderr (common log format). Limits are small so tests reach them.
local http = require "http"

local app = http.router()
app:use(function(req, res, nxt)
  res:header("X-Middleware", "1")
  return nxt()
end)
app:get("/hello", function(_, res)
  res:header("Content-Type", "text/plain")
  res:send("hello world\n")
end)
app:post("/echo", function(req, res) res:send(200, req:body()) end)
app:post("/count", function(req, res) -- streamed, no size limit
  local n = 0
  for piece in req:chunks(math.huge) do n = n + #piece end
  res:send(n .. "\n")
end)
app:get("/stream", function(_, res)
  for i = 1, 3 do res:write("line ", i, "\n") end
end)
app:get("/big", function(_, res) -- 4 MiB, written as the client reads
  local block = ("0123456789abcdef"):rep(4096)
  for _ = 1, 64 do res:write(block) end
end)
app:get("/users/:id", function(req, res)
  res:send("user " .. req.params.id .. " q=" .. (req.query.q or "") .. "\n")
end)
app:get("/error", function() error("boom") end)
app:get("/inject", function(_, res)
  res:header("X-Bad", "a\r\nSet-Cookie: injected=1")
  res:send("not reached\n")
end)
app:get("/headers", function(req, res)
  res:send((req.headers["X-Test"] or "-") .. "|" .. req.peer:match(
    "^(127%.0%.0%.1):%d+$") .. "\n")
end)
app:get("/peer", function(req, res) res:send(req.peer .. "\n") end)
app:get("/seen", function(req, res) -- the request's field names, sorted
  local names = {}
  for name in pairs(req.headers) do names[#names + 1] = name end
  table.sort(names)
  res:header("Connection", "X-Private")
  res:header("X-Private", "upstream only")
  res:send(table.concat(names, " ") .. "\n")
end)
app:get("/ws_once", function(req, res) -- one echo, then the handler ends
  local ws = assert(http.websocket.accept(req, res))
  local msg = ws:receive()
  if msg == "boom" then error("handler fails with its socket open") end
  ws:send(msg)
end)
app:get("/ws", function(req, res)
  local ws, err = http.websocket.accept(req, res, {max_message = 100000})
  if not ws then return err end
  for msg, kind in ws:messages() do ws:send(msg, kind) end
end)

local srv = assert(http.listen{host = "127.0.0.1", port = 0, handler = app,
  log = true, limits = {body = 256 * 1024},
  timeouts = {head = tonumber(os.getenv("HTTP_HEAD_TIMEOUT")) or 10,
    body = 2, idle = 10}})
local _, port = srv:sockname()
print("listening " .. port)
io.stdout:flush()
