--[[
http_server.lua: a small HTTP/1.1 server on the http module: static files
from a directory, plus two fixed routes.

  usage: luahost scripts/http_server.lua [host] [port] [root]
         (defaults: 127.0.0.1 8080 .; port 0 picks a free port)
  try:   curl -v http://127.0.0.1:8080/hello http://127.0.0.1:8080/

It prints "serving ROOT on http://HOST:PORT/" once it is ready, and one
log line per request on stderr (the log module: time, method, target,
status, bytes, milliseconds; --log-format json for JSON lines,
--log-level warn for none). With
TLS_CERT=cert.pem TLS_KEY=key.pem in the environment it serves HTTPS
(https://HOST:PORT/; try curl --cacert ca.pem).

  GET|HEAD /hello     "hello world\n" (http.fixed: answered in C on a
                      kept-alive connection while the access log is off)
  POST /echo          the request body, sent back
  GET|HEAD /path      the file ROOT/path (http.files: ETag, 304, Range); a
                      directory gives its index.html or a listing

The protocol (keep-alive, pipelining, chunked bodies, Expect:
100-continue, HTTP/1.0, strict parsing, the 400/405/408/413/414/431
answers) is the http module's: see docs/http.md. A request head must
arrive whole within HTTP_HEAD_TIMEOUT seconds of its first byte
(environment, default 10), a body within HTTP_BODY_TIMEOUT seconds of its
head (default 30); a silent connection is closed after 30 s. Paths never
leave ROOT.
]]
local http = require "http"
local log = require "log"

local host = arg[1] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[2] or 8080))
if not port or port < 0 or port > 65535 then
  io.stderr:write("usage: http_server.lua [host] [port] [root] " ..
    "(port: 0..65535)\n")
  os.exit(2)
end
local root = arg[3] or "."

local ok, files = pcall(http.files, root, {index = "index.html",
  listing = true})
if not ok then
  io.stderr:write("http_server: not a directory: ", root, "\n")
  os.exit(1)
end

local app = http.router()
-- (http.fixed: the same answer every time, as nginx's `return`; a
-- request for it on a kept-alive connection is answered in C)
app:get("/hello", http.fixed(200, "hello world\n",
  {["Content-Type"] = "text/plain"}))
app:post("/echo", function(req, res)
  -- (the parser refused control bytes: the type is safe to send back)
  res:header("Content-Type", req.headers["content-type"] or
    "application/octet-stream")
  res:send(200, req:body())
end)
app:mount("/", files)

-- HTTPS when TLS_CERT and TLS_KEY name a certificate (chain) and its key.
local cert = os.getenv("TLS_CERT")
local tls = cert and {cert = cert, key = os.getenv("TLS_KEY"),
  alpn = {"http/1.1"}} or nil
local server = http.assert(http.listen{host = host, port = port,
  handler = app, tls = tls, log = log,
  timeouts = {head = tonumber(os.getenv("HTTP_HEAD_TIMEOUT")) or 10,
    body = tonumber(os.getenv("HTTP_BODY_TIMEOUT")) or 30, idle = 30}})
local ip, bound = server:sockname()
print(("serving %s on %s://%s:%d/"):format(root, tls and "https" or "http",
  ip:find(":") and "[" .. ip .. "]" or ip, bound))
io.stdout:flush()
