-- The luahost command line: lua(1)'s options, exit codes, errors.
describe("luahost CLI", function()
  it("runs -e and exits 0", function()
    local out, err, code = run_host({"-e", "print('hi')"})
    assert.equal("hi\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end)

  it("runs a uv timer to completion", function()
    local out, _, code = run_host({"-e", [[
      local uv = require "uv"
      local t = uv.new_timer()
      t:start(10, 0, function() print("tick") t:close() end)]]})
    assert.equal("tick\n", out)
    assert.equal(0, code)
  end)

  it("reports an error in a timer callback with a traceback, exit 1", function()
    local out, err, code = run_host({"-e", [[
      local uv = require "uv"
      uv.new_timer():start(1, 0, function() error("boom") end)]]})
    assert.equal("", out)
    assert.matches("%(command line%):2: boom", err)
    assert.matches("stack traceback:", err)
    assert.equal(1, code)
  end)
end)
