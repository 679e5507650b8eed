--[[
The stateful uv fuzzer (spec/uv_fuzz.lua) over a fixed set of seeds, in a
process of its own: a crash, a sanitizer report, a handle left open or a
hang fails this spec and names the seed. More seeds: make fuzz
SEEDS=1-2000 (spec/uv_fuzz.sh).
]]
describe("uv stateful fuzz", function()
  it("seeds 1-120 neither crash, leak handles nor hang", function()
    local out, err, status = run_host({"spec/uv_fuzz.lua", "1-120", "60"})
    local text = out .. err
    assert.equal(0, status, "the fuzzer failed:\n" ..
      text:gsub("seed %d+\n", ""):sub(-4000) ..
      "\nlast seed started: " .. (text:match(".*(seed %d+)") or "none"))
    assert.truthy(out:find("uv_fuzz: seeds 1%-120 ok: %d+ calls"), out)
    -- the calls made were many, and not all refused
    local calls, raised = out:match("ok: (%d+) calls %((%d+) raised%)")
    assert.truthy(tonumber(calls) > 4000, out)
    assert.truthy(tonumber(raised) < tonumber(calls) * 0.9, out)
  end)
end)
