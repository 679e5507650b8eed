-- spec/support/health_app.lua: http.health on /health; prints
-- "listening PORT", and "draining" once SIGTERM arrived (the drain has
-- started: task.exiting() is true). Run with --pidfile or --drain-delay
-- (or --workers) so that SIGTERM drains.
local http = require "http"
local task = require "task"
local app = http.router()
app:use(http.health())
local s = assert(http.listen{port = 0, handler = app})
local _, port = s:sockname()
local stop
stop = task.on_signal("sigterm", function()
  stop() -- (a watcher left open keeps the drain going to its deadline)
  -- the host's own SIGTERM watcher may come after this one: wait for it
  for _ = 1, 1000 do
    if task.exiting() then break end
    task.sleep(0.001)
  end
  print("draining " .. tostring(task.exiting()))
  io.stdout:flush()
end)
print("listening " .. port)
io.stdout:flush()
