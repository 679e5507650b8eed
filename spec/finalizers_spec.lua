-- Finalizers (__gc) that call net and task functions. Lua runs a
-- finalizer inside whatever allocated, net's own C code included; net
-- stays whole: a wait raises, a task starts at the loop's next turn, and
-- under a storm of finalizers working on live sockets nothing breaks.
local net = require "net"
local task = require "task"

-- A connected pair: the accepted side and the client.
local function pair()
  local s = assert(net.listen{host = "127.0.0.1", port = 0})
  local _, port = s:sockname()
  local srv
  local t = task.spawn(function() srv = assert(s:accept(10)) end)
  local client = assert(net.connect("127.0.0.1", port, {timeout = 10}))
  t:join()
  s:close()
  srv:settimeout(10)
  return srv, client
end

describe("finalizers", function()
  after_each(assert_clean)

  it("cannot wait, even in a task that waited on that socket before; " ..
    "its own reads go on", function()
    run_task(function()
      local srv, client = pair()
      assert(client:write("a"))
      assert.equal("a", srv:recv()) -- (this task is srv's reader now)
      local err
      setmetatable({}, {__gc = function()
        local ok, e = pcall(srv.recv, srv)
        err = ok and "no error" or e
      end})
      collectgarbage()
      collectgarbage()
      assert.matches("cannot wait here", err)
      assert(client:write("b"))
      assert.equal("b", srv:recv())
      srv:close()
      client:close()
    end)
  end)

  it("cannot splice either, in a task that spliced before", function()
    run_task(function()
      local a, a2 = pair()
      local b, b2 = pair()
      task.spawn(function()
        a2:write("x")
        a2:close()
        b2:close()
      end)
      net.splice(a, b) -- (this task has spliced a now)
      local c, c2 = pair()
      local err
      setmetatable({}, {__gc = function()
        local ok, e = pcall(net.splice, a, c)
        err = ok and "no error" or e
      end})
      collectgarbage()
      collectgarbage()
      assert.matches("splice cannot wait here", err)
      for _, s in ipairs({a, b, c, c2}) do s:close() end
    end)
  end)

  it("start a task at the loop's next turn, not inside the finalizer",
    function()
    run_task(function()
      local ran, seen_in_gc = false, nil
      setmetatable({}, {__gc = function()
        task.spawn(function() ran = true end)
        seen_in_gc = ran
      end})
      collectgarbage()
      collectgarbage()
      assert.is_false(seen_in_gc)
      for _ = 1, 10 do
        if ran then break end
        task.yield()
      end
      assert.is_true(ran)
      -- (outside a finalizer a task still starts at once)
      local now = false
      task.spawn(function() now = true end)
      assert.is_true(now)
    end)
  end)

  it("that run at exit, once the loop is closed, cannot make a handle or " ..
    "a request: they raise", function()
    local script = tmpfile([[
local uv = require "uv"
local net = require "net"
KEEP = setmetatable({}, {__gc = function()
  for _, f in ipairs({
    function() return uv.new_timer() end,
    function() return uv.fs_stat(".", function() end) end,
    function() return net.listen{host = "127.0.0.1", port = 0} end,
  }) do
    local ok, e = pcall(f)
    io.stdout:write("at exit: ", tostring(ok), " ", tostring(e), "\n")
  end
end})
]], ".lua")
    local out, err, code = run_host({script})
    assert.equal(0, code, err)
    assert.equal("", sanitizer_lines(err))
    local n = 0
    for line in out:gmatch("[^\n]+") do
      n = n + 1
      assert.matches("^at exit: false .*the event loop is closed", line)
    end
    assert.equal(3, n)
  end)

  local seed0 = tonumber(os.getenv("LUAHOST_FUZZ_SEED") or 1)
  for seed = seed0, seed0 + 2 do
    it("working on live sockets under load leave net whole (seed " ..
      seed .. ")", function()
      local out, err, code = run_host("spec/support/finalizer_chaos.lua",
        nil, "SEED=" .. seed)
      local done = out:match("done (%d+)")
      assert(done, "seed " .. seed .. ": the chaos run did not finish " ..
        "(exit " .. tostring(code) .. "): " .. err:sub(1, 600))
      assert.equal(0, code)
      assert.equal("", sanitizer_lines(err))
      assert.is_true(tonumber(done) > 0)
    end)
  end

  for seed = seed0, seed0 + 1 do
    it("working on live uv handles from callbacks, and at exit, leave the " ..
      "host whole (seed " .. seed .. ")", function()
      local out, err, code = run_host(
        "spec/support/uv_finalizer_chaos.lua", nil, "SEED=" .. seed)
      assert(out:match("done %d+"), "seed " .. seed .. ": the chaos run " ..
        "did not finish (exit " .. tostring(code) .. "): " ..
        err:sub(1, 600))
      assert.equal(0, code)
      assert.equal("", sanitizer_lines(err))
    end)
  end
end)
