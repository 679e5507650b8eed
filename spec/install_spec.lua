-- make install: a DESTDIR tree that runs, a man page that says what --help
-- says.
local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- the build directory of the binary under test (build, or build/asan)
local build = LUAHOST:match("^(.*)/luahost$") or "build"
local root = build:match("^(.*)/build/asan$") or build:match("^(.*)/build$")
  or "."

describe("make install", function()
  it("lays out the binary, the man page and the docs under DESTDIR",
     function()
    local dest = tmpname()
    os.remove(dest) -- a directory goes there
    finally(function() sh("rm -rf " .. shell_quote(dest)) end)
    local out, code = sh(("make -s -C %s install DESTDIR=%s PREFIX=/opt/lh " ..
      "BUILD=%s"):format(shell_quote(root), shell_quote(dest),
      shell_quote(build)))
    assert.equal(0, code, out)
    local bin = dest .. "/opt/lh/bin/luahost"
    local v, vcode = sh(shell_quote(bin) .. " --version")
    assert.equal(0, vcode, v)
    assert.matches("^luahost %d+%.%d+%.%d+", v)
    -- the binary is self-contained: net loads with no file beside it
    local n = sh(shell_quote(bin) .. " -e 'print(type(require(\"net\").listen))'")
    assert.equal("function\n", n)
    local man = assert(io.open(dest .. "/opt/lh/share/man/man1/luahost.1"))
    local page = man:read("a")
    man:close()
    assert.matches("^%.TH LUAHOST 1", page)
    -- every host option in --help is in the man page
    local help = sh(shell_quote(bin) .. " --help")
    local seen = 0
    for opt in help:gmatch("%-%-(%a[%w-]*)") do
      seen = seen + 1
      assert.truthy(page:find("\\-\\-" .. opt:gsub("%-", "\\-"), 1, true),
        "man page lacks --" .. opt)
    end
    assert.is_true(seen >= 8)
    for _, doc in ipairs({"README.md", "LICENSE", "net.md", "uv.md"}) do
      assert.truthy(io.open(dest .. "/opt/lh/share/doc/luahost/" .. doc),
        "missing doc " .. doc)
    end
  end)
end)
