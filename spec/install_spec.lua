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
    -- the very binary under test (the ASan one under make asan): install
    -- never rebuilds, even with a source newer than the binary (-W)
    local _, same = sh(("cmp %s %s"):format(shell_quote(bin),
      shell_quote(LUAHOST)))
    assert.equal(0, same, "the installed binary is not the one under test")
    local plan, pcode = sh(("make -n -W host/main.c -C %s install " ..
      "DESTDIR=%s BUILD=%s"):format(shell_quote(root), shell_quote(dest),
      shell_quote(build)))
    assert.equal(0, pcode, plan)
    assert.not_matches("%f[%w]cc ", plan)
    assert.matches("install %-m 755", plan)
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

  it("refuses, without building, when there is no binary", function()
    local dest, empty = tmpname(), tmpname()
    os.remove(dest)
    os.remove(empty)
    finally(function()
      sh("rm -rf " .. shell_quote(dest) .. " " .. shell_quote(empty))
    end)
    local out, code = sh(("make -s -C %s install DESTDIR=%s BUILD=%s")
      :format(shell_quote(root), shell_quote(dest), shell_quote(empty)))
    assert.is_not.equal(0, code)
    assert.matches("no " .. empty:gsub("%p", "%%%0") .. "/luahost: run " ..
      "make first", out)
    assert.is_nil(io.open(empty .. "/luahost"))
    assert.is_nil(io.open(dest))
  end)
end)

describe("dependencies by purpose (vendor/packages.txt)", function()
  local function list(section)
    local out, code = sh("sh " .. root .. "/vendor/install.sh --list " ..
      section)
    assert.equal(0, code, out)
    local set = {}
    for name in out:gmatch("%S+") do set[name] = true end
    return set, out
  end

  it("lists build, test and bench packages apart", function()
    local bld, tests, bench = list("build"), list("tests"), list("bench")
    -- building needs the compiler and the static libraries, nothing more
    for _, p in ipairs({"gcc", "make", "liblua5.4-dev", "libuv1-dev",
      "libssl-dev"}) do
      assert.is_true(bld[p], p)
    end
    for _, p in ipairs({"nodejs", "wrk", "nginx-light", "redis-server",
      "lua-busted", "lua5.4"}) do
      assert.is_nil(bld[p], p .. " is not needed to build")
    end
    -- the suite: busted, its peers; not the bench's
    -- (lua5.4 with luv and LuaSec: the references of the comparisons)
    for _, p in ipairs({"lua-busted", "lua-check", "curl", "redis-server",
      "haproxy", "openssl", "lua5.4", "lua-luv", "lua-sec"}) do
      assert.is_true(tests[p], p)
    end
    for _, p in ipairs({"nodejs", "wrk", "gcc",
      "libnginx-mod-http-lua"}) do
      assert.is_nil(tests[p], p .. " is not the suite's")
    end
    for _, p in ipairs({"nodejs", "wrk", "lua5.4", "lua-luv",
      "nginx-light"}) do
      assert.is_true(bench[p], p)
    end
    -- no section argument: every package of the file, once
    local all, out = list("")
    local n = 0
    for _ in pairs(all) do n = n + 1 end
    local _, lines = out:gsub("\n", "")
    assert.equal(n, lines)
    local f = assert(io.open(root .. "/vendor/packages.txt"))
    for line in f:lines() do
      local name = line:gsub("#.*", ""):match("^(%S+)")
      if name then assert.is_true(all[name], name) end
    end
    f:close()
    local msg, code = sh("sh " .. root .. "/vendor/install.sh bogus")
    assert.equal(2, code)
    assert.matches("unknown section 'bogus'", msg)
  end)

  it("make installs the build section, make test the tests, make bench " ..
     "the peers, make deps all three", function()
    local function plan(target)
      -- -W: as if the list had changed, so every stamp is out of date
      local out, code = sh(("make -n -W vendor/packages.txt -C %s %s")
        :format(shell_quote(root), target))
      assert.equal(0, code, out)
      local got = {}
      for s in out:gmatch("vendor/install%.sh (%a+)") do got[#got + 1] = s end
      table.sort(got)
      return table.concat(got, " ")
    end
    assert.equal("build", plan("all"))
    assert.equal("build tests", plan("test"))
    assert.equal("build tests", plan("lint"))
    assert.equal("bench build", plan("bench"))
    assert.equal("bench build tests", plan("deps"))
    assert.equal("tests", plan("deps-test"))
  end)
end)

describe("make deb", function()
  it("packages the binary under test: control, contents, Depends " ..
     "computed, and the extracted binary runs", function()
    local out, code = sh(("make -s -C %s deb BUILD=%s"):format(
      shell_quote(root), shell_quote(build)))
    assert.equal(0, code, out)
    local deb = out:match("([^\n]+%.deb)\n?$")
    assert.truthy(deb, out)
    if deb:sub(1, 1) ~= "/" then deb = root .. "/" .. deb end
    finally(function() os.remove(deb) end)
    local version = sh(shell_quote(LUAHOST) .. " --version"):match(
      "^luahost (%d+%.%d+%.%d+)")
    assert.truthy(version)
    local info, icode = sh("dpkg-deb -I " .. shell_quote(deb))
    assert.equal(0, icode, info)
    assert.matches("\n Package: luahost\n", info)
    assert.matches("\n Version: " .. version:gsub("%.", "%%.") .. "%-1\n",
      info)
    assert.matches("\n Architecture: " .. sh("dpkg --print-architecture")
      :gsub("%s+$", "") .. "\n", info)
    local depends = info:match("\n Depends: ([^\n]*)")
    assert.truthy(depends, info)
    -- Lua, libuv, OpenSSL, zlib, libedit are inside: not dependencies
    for _, p in ipairs({"liblua", "libuv", "libssl", "zlib", "libedit",
      "libbsd", "libtinfo"}) do
      assert.is_nil(depends:find(p, 1, true), depends)
    end
    -- each shared library the binary needs is a dependency, with libc6's
    -- least version the highest GLIBC_ symbol version it uses
    local needed = sh("objdump -p " .. shell_quote(LUAHOST))
    local n = 0
    for soname in needed:gmatch("NEEDED%s+(%S+)") do
      n = n + 1
      local owner = sh("dpkg -S '*/" .. soname .. "' | grep " ..
        "\"/$(gcc -print-multiarch)/\" | head -n 1")
      local pkg = owner:match("^([^:]+)")
      assert.truthy(pkg, owner)
      assert.truthy(depends:find(pkg, 1, true), soname .. " (" .. pkg ..
        ") missing from Depends: " .. depends)
    end
    assert.is_true(n >= 1)
    local glibc = "0"
    for v in sh("objdump -T " .. shell_quote(LUAHOST)):gmatch(
      "GLIBC_([%d%.]+)") do
      local a1, b1 = v:match("(%d+)%.(%d+)")
      local a2, b2 = glibc:match("(%d+)%.?(%d*)")
      if tonumber(a1) * 1000 + tonumber(b1) >
        tonumber(a2) * 1000 + (tonumber(b2) or 0) then glibc = v end
    end
    assert.truthy(depends:find("libc6 (>= " .. glibc .. ")", 1, true),
      depends)
    -- the files
    local list, lcode = sh("dpkg-deb -c " .. shell_quote(deb))
    assert.equal(0, lcode, list)
    for _, f in ipairs({"./usr/bin/luahost",
      "./usr/share/man/man1/luahost.1.gz",
      "./usr/share/doc/luahost/copyright",
      "./usr/share/doc/luahost/README.md",
      "./usr/share/doc/luahost/log.md"}) do
      assert.truthy(list:find(" " .. f .. "\n", 1, true), f .. "\n" .. list)
    end
    assert.matches("%-rwxr%-xr%-x root/root +%d+ [^\n]* %./usr/bin/luahost\n",
      list)
    -- extracted (not installed), it runs
    local dir = tmpname()
    os.remove(dir)
    finally(function() sh("rm -rf " .. shell_quote(dir)) end)
    local x, xcode = sh(("dpkg -x %s %s"):format(shell_quote(deb),
      shell_quote(dir)))
    assert.equal(0, xcode, x)
    local bin = dir .. "/usr/bin/luahost"
    local v, vcode = sh(shell_quote(bin) .. " --version")
    assert.equal(0, vcode, v)
    assert.matches("^luahost " .. version:gsub("%.", "%%."), v)
    assert.equal("function\n", sh(shell_quote(bin) ..
      " -e 'print(type(require(\"log\").info))'"))
  end)
end)
