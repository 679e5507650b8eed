-- The suite's own helpers (spec/support/helper.lua): what the other specs
-- rely on for cleaning up after themselves.
describe("spec support: finally()", function()
  local ran = {}

  it("accepts several cleanups in one test", function()
    finally(function() ran[#ran + 1] = "first" end)
    finally(function() ran[#ran + 1] = "second" end)
    finally(function() ran[#ran + 1] = "third" end)
    assert.same({}, ran)
  end)

  it("ran every one of them, the last registered first", function()
    assert.same({"third", "second", "first"}, ran)
  end)

  it("refuses what is not a function, naming finally", function()
    local ok, err = pcall(finally, 42)
    assert.is_false(ok)
    assert.matches("finally: function expected, got number", err)
  end)
end)

describe("spec support: run_loop", function()
  it("fails within its time after a callback error stopped the host " ..
     "(uv.run then returns at once: it must not spin for ever)", function()
    local script = tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
package.path = "spec/support/?.lua;" .. package.path
require "helper"
local uv = require "uv"
local t = uv.new_timer()
t:start(1, 0, function() error("a callback fails") end)
-- the run that meets the error raises it; the next one (the next test's)
-- finds the host stopped
print(pcall(run_loop, function() return false end, 0.5))
local t0 = uv.hrtime()
local ok, err = pcall(run_loop, function() return false end, 0.5)
print(ok, err, (uv.hrtime() - t0) / 1e9 < 5)
]])
    f:close()
    local out, err, code = run_host({script})
    assert.matches("^false\t.*uv%.run: stopped by an uncaught error\n" ..
      "false\t.*run_loop: condition not met within 0%.5s\ttrue\n$", out)
    assert.matches("a callback fails", err) -- reported, as always
    assert.equal(1, code) -- the error stopped the host
  end)
end)
