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
