-- Metamethods called by hand: getmetatable(v).__gc, __close, __tostring,
-- __len and every method of every userdata type a script can reach, given
-- values of other types. Each raises an error that names the argument or
-- answers; none reads another type's bytes as its own.
local net = require "net"
local uv = require "uv"

describe("metamethods called by hand", function()
  after_each(assert_clean)

  for _, cross in ipairs({"0", "1"}) do
    it("never crash the host, for any type and any value" ..
      (cross == "1" and " (__gc and __close given other userdata too)" or ""),
      function()
      local out, err, code = run_host("spec/support/metamethod_sweep.lua",
        nil, "CROSS=" .. cross)
      local calls, raised = out:match("calls (%d+) raised (%d+)")
      assert(calls, "the sweep did not finish (exit " .. tostring(code) ..
        "); its last calls:\n" .. err:sub(-400))
      assert.equal(0, code)
      assert.equal("", sanitizer_lines(err))
      -- (most calls are wrong and raise; some are right and answer)
      assert.is_true(tonumber(calls) > 5000, calls)
      assert.is_true(tonumber(raised) > tonumber(calls) / 2, raised)
    end)
  end

  it("a socket's shared methods and metamethods name a non-socket", function()
    local s = assert(net.listen{host = "127.0.0.1", port = 0})
    local b = net.buffer(16)
    for _, m in ipairs({"settimeout", "gettimeout", "getfd", "is_closed",
                        "sockname", "getopt", "setopt", "close"}) do
      assert.error_matches(function() s[m](io.stdout, 5) end,
        "bad argument #1 to '[^']*' %(socket expected, got FILE%*%)", nil,
        m)
      assert.error_matches(function() s[m](b, 5) end,
        "socket expected, got net%.buffer", nil, m)
    end
    local mt = getmetatable(s)
    for _, m in ipairs({"__gc", "__close", "__tostring"}) do
      assert.error_matches(function() mt[m](io.stdout) end,
        "socket expected, got FILE%*", nil, m)
    end
    -- (the server was not touched by any of it)
    assert.is_false(s:is_closed())
    s:close()
  end)

  it("a uv handle's, a request's and a directory's __gc name a wrong value",
    function()
    local t = uv.new_timer()
    assert.error_matches(function() getmetatable(t).__gc(5) end,
      "uv handle expected, got number")
    assert.error_matches(function() getmetatable(t).__gc(io.stdout) end,
      "uv handle expected, got FILE%*")
    t:close()
    local dir = assert(uv.fs_opendir("."))
    assert.error_matches(function() getmetatable(dir).__gc({}) end,
      "uv_dir expected, got table")
    dir:closedir()
    local req = uv.fs_stat(".", function() end)
    assert.error_matches(function() getmetatable(req).__gc("x") end,
      "uv_req expected, got string")
    uv.run()
  end)

  it("a buffer's __gc names a wrong value", function()
    local b = net.buffer(4)
    assert.error_matches(function() getmetatable(b).__gc(5) end,
      "net%.buffer expected, got number")
  end)
end)
