-- An http server with fixed responses (http.fixed) for the specs that
-- drive it with real clients: prints "listening PORT [tls]". /count
-- answers how many requests were answered in C so far.
local http = require "http"
local log = require "log"
local c = os.getenv("TLS_CERT")
log.setup{level = "warn"} -- (no access line: C answers)
local app = http.router()
local srv
app:get("/hello", http.fixed(200, "hello world\n",
  {["Content-Type"] = "text/plain"}))
app:get("/count", function(_, res)
  res:send(tostring(select(3, srv._answers:count())))
end)
app:post("/echo", function(req, res) res:send(req:body()) end)
srv = http.assert(http.listen{host = "127.0.0.1", port = 0, handler = app,
  log = log, tls = c and {cert = c, key = os.getenv("TLS_KEY")} or nil})
print("listening " .. select(2, srv:sockname()))
io.stdout:flush()
