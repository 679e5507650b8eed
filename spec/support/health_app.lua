-- spec/support/health_app.lua: http.health on /health; prints
-- "listening PORT". Run with --pidfile so that SIGTERM drains.
local http = require "http"
local app = http.router()
app:use(http.health())
local s = assert(http.listen{port = 0, handler = app})
local _, port = s:sockname()
print("listening " .. port)
io.stdout:flush()
