-- http.listen reads requests, and http.request responses, as h11
-- (python3-h11, a strict RFC 9112 parser) does. Server: the same seeded
-- random requests, valid ones and near misses, with a second one
-- pipelined after some, to luahost's server and to h11; every request
-- either read alike (method, target, version, each field, the body, and
-- where the next request starts) or refused by both, except where a rule
-- the RFCs allow explains it (spec/support/h11_diff.py lists them:
-- luahost refuses what h11 lets through, such as a Host that is no host,
-- obs-fold, repeated Content-Length; it reads "chunked," and BWS before a
-- chunk extension, which h11 refuses). Client: seeded random responses
-- (1xx first, HEAD, 204/304, length, chunks or the close) read by
-- http.request and by h11 as a client (spec/support/h11_client_diff.py).
-- Server responses: h11 as a client reads what the server sends for
-- every way a handler frames an answer (spec/support/h11_response_diff.py,
-- spec/support/h11_recipe_server.lua), pipelined, to GET, HEAD, POST,
-- HTTP/1.0 and 1.1.
local proc = require "process_helper"

local have_h11 = os.execute("/usr/bin/python3 -c 'import h11' " ..
  ">/dev/null 2>&1") == true
local describe_if = have_h11 and describe or pending
local sh = require("common").sh

-- Run a comparison driver (bounded) and hold its summary line to what
-- every run must show: N checked, none differing, at least min_same
-- alike and min_read of those read (not refused by both).
local function check_summary(cmd, n, min_same, min_read)
  local out = sh(cmd, 600)
  local checked, same, read, differ = out:match(
    "checked (%d+), same (%d+) %(read alike (%d+)%), differ (%d+)\n$")
  assert.truthy(checked, out)
  assert.equal("0", differ, out)
  assert.equal(n, tonumber(checked))
  assert.truthy(tonumber(same) > min_same, out)
  assert.truthy(tonumber(read) > min_read, out)
end

describe_if("http server against h11", function()
  it("reads 2 x 2,000 random requests as h11 does, or says why not",
    function()
    local srv = proc.start({"spec/support/h11_echo_server.lua"})
    finally(function() srv:stop() end)
    local port = srv:wait_for("^(%d+)", 20)
    for seed = 1, 2 do
      -- (most requests are read alike, and many of those accepted)
      check_summary(("/usr/bin/python3 spec/support/h11_diff.py %s %d " ..
        "2000"):format(port, seed), 2000, 1600, 600)
    end
  end)

  it("reads 2 x 2,000 random responses as h11 does, or says why not",
    function()
    for seed = 1, 2 do
      local cases, results = tmpname(), tmpname()
      assert(os.execute(("/usr/bin/python3 spec/support/h11_client_diff.py " ..
        "gen %d 2000 %s"):format(seed, shell_quote(cases))))
      assert(os.execute(("timeout -s KILL 300 %s " ..
        "spec/support/h11_client_run.lua %s >%s"):format(
        shell_quote(LUAHOST), shell_quote(cases), shell_quote(results))))
      check_summary(("/usr/bin/python3 spec/support/h11_client_diff.py " ..
        "compare %s %s"):format(shell_quote(cases), shell_quote(results)),
        2000, 1600, 1000)
      os.remove(cases)
      os.remove(results)
    end
  end)

  it("sends responses h11 reads, as each handler framed them (2 x 800 " ..
    "connections)", function()
    local dir = tmpname()
    os.remove(dir)
    assert(require("lfs").mkdir(dir))
    local srv = proc.start({"spec/support/h11_recipe_server.lua", dir})
    finally(function()
      srv:stop()
      os.execute("rm -rf " .. shell_quote(dir))
    end)
    local port = srv:wait_for("^(%d+)", 20)
    for seed = 1, 2 do
      local h = assert(io.popen(("timeout -s KILL 600 /usr/bin/python3 " ..
        "spec/support/h11_response_diff.py %s %d 800 2>&1"):format(port,
        seed)))
      local out = h:read("a")
      h:close()
      assert.matches("checked 800, bad 0\n$", out)
    end
    assert.is_nil(srv:err():find("handler error", 1, true), srv:err())
  end)
end)
