-- luv code runs unchanged: the same seeded random fs_* calls (opens with
-- every flag spelling, reads and writes at offsets, stats, links,
-- renames, directories, copies, sendfile; bad descriptors and missing
-- paths) through lua5.4 with Debian's luv and through luahost's uv, each
-- in a fresh directory, synchronously and with callbacks: every result
-- line equal (times, inode and device numbers masked). Known, documented
-- differences (docs/uv.md) are not exercised here.
local function run(cmd, dir, seed, n, async)
  local h = assert(io.popen(("%s%s spec/support/uv_fs_diff.lua %s %d %d " ..
    "2>&1"):format(async and "ASYNC=1 " or "", cmd, shell_quote(dir), seed,
    n)))
  local out = h:read("a")
  h:close()
  return out
end

local function fresh_dir()
  local d = tmpname()
  os.remove(d)
  assert(require("lfs").mkdir(d))
  return d
end

local function rm_tree(d)
  os.execute("chmod -R u+rwx " .. shell_quote(d) .. " 2>/dev/null; rm -rf " ..
    shell_quote(d))
end

describe("uv against luv", function()
  for _, async in ipairs{false, true} do
    it("fs_* calls give luv's results " ..
      (async and "in their callbacks" or "synchronously"), function()
      for seed = 1, 2 do
        local a, b = fresh_dir(), fresh_dir()
        local ref = run("env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_CPATH " ..
          "-u LUA_CPATH_5_4 timeout -s KILL 60 lua5.4", a, seed, 400, async)
        local ours = run("timeout -s KILL 60 " .. shell_quote(LUAHOST), b,
          seed, 400, async)
        rm_tree(a)
        rm_tree(b)
        local rl, ol = {}, {}
        for line in ref:gmatch("[^\n]+") do rl[#rl + 1] = line end
        for line in ours:gmatch("[^\n]+") do ol[#ol + 1] = line end
        assert.equal(400, #rl, ref)
        for i = 1, #rl do
          assert.equal(rl[i], ol[i], ("seed %d, call %d"):format(seed, i))
        end
      end
    end)
  end
end)
