-- files_nginx_diff.py's luahost side: http.files(DIR) with index.html as
-- the index, on 127.0.0.1 and a free port (printed).
-- usage: luahost files_server.lua DIR
local http = require "http"

local server = assert(http.listen{host = "127.0.0.1", port = 0,
  handler = http.files(arg[1], {index = "index.html"})})
local _, port = server:sockname()
print(port)
io.stdout:flush()
