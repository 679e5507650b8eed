-- gzip: http.listen{gzip = true} against curl --compressed and python3's
-- gzip module, and the client's gzip = true (with a bound on the decoded
-- size: no zip bombs). http.core's gzip streams underneath.
local http = require "http"
local core = require "http.core"
local proc = require "process_helper"

local function q(s) return shell_quote(s) end

local sh = require("common").sh

local TEXT = {}
for i = 1, 5000 do TEXT[i] = ("line %d of a compressible text\n"):format(i) end
TEXT = table.concat(TEXT)

local SERVER = [[
local http = require "http"
local TEXT = {}
for i = 1, 5000 do TEXT[i] = ("line %d of a compressible text\n"):format(i) end
TEXT = table.concat(TEXT)
local app = http.router()
app:get("/text", function(_, res)
  res:header("Content-Type", "text/plain")
  res:send(TEXT)
end)
app:get("/stream", function(_, res)
  res:header("Content-Type", "application/json")
  res:header("Content-Length", #TEXT) -- (dropped: gzip changes the length)
  for i = 1, #TEXT, 1000 do res:write(TEXT:sub(i, i + 999)) end
end)
app:get("/small", function(_, res)
  res:header("Content-Type", "text/plain")
  res:send("tiny\n")
end)
app:get("/png", function(_, res)
  res:header("Content-Type", "image/png")
  res:send(TEXT)
end)
local srv = assert(http.listen{port = 0, handler = app, gzip = true})
print("listening " .. select(2, srv:sockname()))
io.stdout:flush()
]]

describe("gzip", function()
  it("compresses and decompresses in pieces, and refuses bad data",
    function()
    local z = core.gzip(9)
    local parts = {}
    for i = 1, #TEXT, 777 do parts[#parts + 1] = z:write(TEXT:sub(i, i + 776)) end
    parts[#parts + 1] = z:finish()
    z:close()
    local gz = table.concat(parts)
    assert.is_true(#gz < #TEXT / 4)
    local u, out = core.gunzip(), {}
    for i = 1, #gz, 100 do out[#out + 1] = assert(u:write(gz:sub(i, i + 99))) end
    assert.is_true(u:done())
    assert.are.equal(TEXT, table.concat(out))
    u:close()
    assert.is_nil(core.gunzip():write("not gzip at all"))
    assert.are.same({nil, "too large"}, {core.gunzip():write(gz, 1000)})
    assert.has_error(function() core.gzip(0) end)
    assert.has_error(function() u:write("x") end) -- closed
  end)

  describe("server", function()
    local p, base
    setup(function()
      local f = tmpname()
      proc.write(f, SERVER)
      p = proc.start({f})
      base = "http://127.0.0.1:" .. p:wait_for("listening (%d+)", 20)
    end)
    teardown(function() p:stop() end)

    it("answers curl --compressed with gzip, others plain, Vary always",
      function()
      local out = sh(("curl -s --compressed -D - %s/text"):format(base))
      assert.matches("Content%-Encoding: gzip\r\n", out)
      assert.matches("Vary: Accept%-Encoding\r\n", out)
      assert.are.equal(TEXT, out:match("\r\n\r\n(.*)$"))
      local len = tonumber(out:match("Content%-Length: (%d+)"))
      assert.is_true(len < #TEXT / 4)
      out = sh(("curl -s -D - %s/text"):format(base))
      assert.not_matches("Content%-Encoding", out)
      assert.matches("Vary: Accept%-Encoding\r\n", out)
      assert.are.equal(TEXT, out:match("\r\n\r\n(.*)$"))
      out = sh(("curl -s -D - -H 'Accept-Encoding: gzip;q=0' %s/text")
        :format(base))
      assert.not_matches("Content%-Encoding", out)
    end)

    it("gzips streamed writes (chunked), not small bodies or images",
      function()
      local out = sh(("curl -s --compressed -D - %s/stream"):format(base))
      assert.matches("Content%-Encoding: gzip\r\n", out)
      assert.matches("Transfer%-Encoding: chunked\r\n", out)
      assert.not_matches("Content%-Length", out)
      assert.are.equal(TEXT, out:match("\r\n\r\n(.*)$"))
      out = sh(("curl -s --compressed -D - %s/small"):format(base))
      assert.not_matches("Content%-Encoding", out)
      assert.matches("tiny\n$", out)
      out = sh(("curl -s --compressed -D - %s/png"):format(base))
      assert.not_matches("Content%-Encoding", out)
      assert.not_matches("Vary", out)
      out = sh(("curl -s --compressed -I %s/text"):format(base))
      assert.matches("Content%-Encoding: gzip\r\n", out)
    end)

    it("is read by python3's gzip module", function()
      local out = sh(("/usr/bin/python3 -c %s %s"):format(q([[
import gzip, sys, urllib.request
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/stream",
    headers={"Accept-Encoding": "gzip"}))
print(r.headers["Content-Encoding"], len(gzip.decompress(r.read())))
]]), base))
      assert.are.equal("gzip " .. #TEXT .. "\n", out)
    end)
  end)

  it("client: asks for gzip, decodes it, bounds the decoded size",
    function()
    run_task(function()
      local bomb = core.gzip(9)
      local zeros = bomb:write(("\0"):rep(8 * 1024 * 1024)) .. bomb:finish()
      bomb:close()
      local srv = assert(http.listen{port = 0, gzip = true,
        handler = function(req, res)
          if req.path == "/bomb" then
            res:header("Content-Encoding", "gzip")
            return res:send(zeros)
          elseif req.path == "/bad" then
            res:header("Content-Encoding", "gzip")
            return res:send("definitely not gzip")
          end
          res:header("Content-Type", "text/plain")
          res:send(req.headers["accept-encoding"] == "gzip" and TEXT or "no")
        end})
      local base = "http://127.0.0.1:" .. select(2, srv:sockname())
      local res = assert(http.request{url = base .. "/", gzip = true})
      assert.is_true(res.gunzipped)
      assert.are.equal(TEXT, res:body())
      res = assert(http.get(base .. "/"))
      assert.are.equal("no", res:body())
      local ok, err = http.get(base .. "/bomb", {gzip = true,
        max_body = 1024 * 1024})
      assert.is_nil(ok)
      assert.matches("body larger than", err)
      ok, err = http.get(base .. "/bad", {gzip = true})
      assert.is_nil(ok)
      assert.matches("bad gzip body", err)
      srv:close()
      require("http.client").close_idle()
    end)
  end)
end)
