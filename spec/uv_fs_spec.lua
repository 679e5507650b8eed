--[[
uv files: every fs_* function in luv's two forms (no callback: the result
or nil, err, name; a callback: it returns the request, the callback gets
err or nil, results...), fs_event and fs_poll handles, requests (cancel,
req_get_type), and files never blocking the loop. Each spec works in a
fresh directory made by fs_mkdtemp under /tmp and removes it after.
]]
local uv = require "uv"

local ENOENT_MSG = "ENOENT: no such file or directory"

-- Remove path and everything under it, with uv's own calls.
local function rmrf(path)
  local st = uv.fs_lstat(path)
  if not st then return end
  if st.type == "directory" then
    local req = assert(uv.fs_scandir(path))
    for name in function() return uv.fs_scandir_next(req) end do
      rmrf(path .. "/" .. name)
    end
    assert(uv.fs_rmdir(path))
  else
    assert(uv.fs_unlink(path))
  end
end

-- Call fn(args..., cb) (the callback last, after any nil), check that it
-- returned a request, run the loop until the callback ran; return what
-- the callback got (packed).
local function await(fn, ...)
  local args = table.pack(...)
  local res
  args[args.n + 1] = expect(function(...) res = table.pack(...) end)
  local req = fn(table.unpack(args, 1, args.n + 1))
  assert.equal("userdata", type(req), "the async form returns its request")
  assert.equal("fs", uv.req_get_type(req))
  run_loop(function() return res ~= nil end)
  return res
end

local function slurp(path)
  local fd = assert(uv.fs_open(path, "r", 0))
  local data = assert(uv.fs_read(fd, 1 << 20, 0))
  assert(uv.fs_close(fd))
  return data
end

local function spit(path, data)
  local fd = assert(uv.fs_open(path, "w", tonumber("644", 8)))
  assert.equal(#data, uv.fs_write(fd, data))
  assert(uv.fs_close(fd))
end

-- Occupy every thread of libuv's pool with a read that blocks on an
-- empty fifo (in dir), so that the next requests wait in the queue.
-- Returns a function that releases the readers and waits for them.
local function block_pool(dir)
  local fifo = dir .. "/fifo"
  assert.equal(0, select(3, os.execute("mkfifo " .. fifo)))
  local fd = assert(uv.fs_open(fifo, "r+", 0)) -- O_RDWR: never blocks
  local pool = tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4
  local reads = 0
  for _ = 1, pool do
    uv.fs_read(fd, 1, -1, expect(function(err, data)
      assert.is_nil(err)
      assert.equal("z", data)
      reads = reads + 1
    end))
  end
  return function()
    assert.equal(pool, uv.fs_write(fd, ("z"):rep(pool)))
    run_loop(function() return reads == pool end)
    uv.fs_close(fd)
  end
end

-- fn(...) raises "bad argument <argno> to '...fn' (<msg>)".
local function raises(argno, msg, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.equal("string", type(err))
  assert.truthy(err:find("bad argument " .. argno .. " to ", 1, true), err)
  assert.truthy(err:find(msg, 1, true), err)
end

local function assert_fail(code, path, ...)
  local v, err, name = ...
  assert.is_nil(v)
  assert.equal(code, name)
  assert.equal("string", type(err))
  assert.equal(code .. ":", err:sub(1, #code + 1))
  if path then assert.equal(": " .. path, err:sub(-#path - 2)) end
end

describe("uv fs", function()
  local dir

  before_each(function()
    dir = assert(uv.fs_mkdtemp("/tmp/luahost-fs-XXXXXX"))
    assert.truthy(dir:match("^/tmp/luahost%-fs%-......$"))
  end)

  after_each(function()
    rmrf(dir)
    assert.is_nil(uv.fs_stat(dir))
    assert_clean()
  end)

  describe("synchronous form", function()
    it("open, write a string and a table of strings, read, close", function()
      local p = dir .. "/a"
      local fd = uv.fs_open(p, "w+", tonumber("644", 8))
      assert.equal("integer", math.type(fd))
      assert.equal(6, uv.fs_write(fd, "hello "))
      assert.equal(6, uv.fs_write(fd, {"wor", "ld", 1}))
      assert.equal("hello world1", uv.fs_read(fd, 100, 0))
      assert.equal("world", uv.fs_read(fd, 5, 6))
      assert.equal("", uv.fs_read(fd, 10, 100)) -- end of file
      -- offset nil / -1: the file position, which the reads above kept
      assert.equal(1, uv.fs_write(fd, "!", -1))
      assert.equal("hello world1!", uv.fs_read(fd, 100, 0))
      assert.equal(3, uv.fs_write(fd, "HEL", 0))
      assert.equal("HELlo", uv.fs_read(fd, 5, 0))
      assert.equal(0, uv.fs_write(fd, ""))
      assert.is_true(uv.fs_close(fd))
      assert_fail("EBADF", nil, uv.fs_close(fd))
    end)

    it("open flags: luv's strings and numbers", function()
      local p = dir .. "/f"
      spit(p, "abc")
      local fd = assert(uv.fs_open(p, "a", 0))
      uv.fs_write(fd, "def")
      uv.fs_close(fd)
      assert.equal("abcdef", slurp(p))
      assert_fail("EEXIST", p, uv.fs_open(p, "wx", 0))
      assert_fail("EEXIST", p, uv.fs_open(p, "xw+", 0))
      fd = assert(uv.fs_open(p, "r+", 0))
      assert.equal("abc", uv.fs_read(fd, 3))
      uv.fs_close(fd)
      fd = assert(uv.fs_open(p, "w", 0)) -- truncates
      uv.fs_close(fd)
      assert.equal("", slurp(p))
      fd = assert(uv.fs_open(p, "r", 0))
      assert_fail("EBADF", nil, uv.fs_write(fd, "x"))
      uv.fs_close(fd)
      for _, f in ipairs{"rs", "sr", "rs+", "sr+", "a+", "ax", "xa", "ax+",
                         "xa+", "wx+", "w+"} do
        local q = dir .. "/flag" .. f
        local e, name
        fd, e, name = uv.fs_open(q, f, tonumber("600", 8))
        if f:find("r") then
          assert_fail("ENOENT", q, fd, e, name)
        else
          assert.is_number(fd, f)
          uv.fs_close(fd)
        end
      end
      -- O_WRONLY | O_CREAT | O_TRUNC on Linux
      fd = assert(uv.fs_open(dir .. "/num", 1 | 64 | 512, tonumber("600", 8)))
      uv.fs_close(fd)
      assert.equal("file", uv.fs_stat(dir .. "/num").type)
      raises("#2", "(unknown file open flag 'R+')", uv.fs_open, p, "R+", 0)
      assert.has_error(function() uv.fs_open(p, "r") end)
    end)

    it("errors name the code and the path(s)", function()
      local nope = dir .. "/nope"
      local v, err, name = uv.fs_open(nope, "r", 0)
      assert.is_nil(v)
      assert.equal(ENOENT_MSG .. ": " .. nope, err)
      assert.equal("ENOENT", name)
      assert.equal(ENOENT_MSG .. ": " .. nope .. " -> " .. dir .. "/x",
                   select(2, uv.fs_rename(nope, dir .. "/x")))
      assert.equal(ENOENT_MSG .. ": " .. nope .. " -> " .. dir .. "/x",
                   select(2, uv.fs_link(nope, dir .. "/x")))
      assert.equal(ENOENT_MSG .. ": " .. nope .. " -> " .. dir .. "/x",
                   select(2, uv.fs_copyfile(nope, dir .. "/x")))
      assert_fail("ENOENT", nope, uv.fs_stat(nope))
      assert_fail("ENOENT", nope, uv.fs_unlink(nope))
      assert_fail("EBADF", nil, uv.fs_fstat(-1))
      assert.equal("EBADF: bad file descriptor", select(2, uv.fs_read(-1, 1)))
      spit(dir .. "/file", "")
      assert_fail("ENOTDIR", dir .. "/file/x",
                  uv.fs_mkdir(dir .. "/file/x", 448))
    end)

    it("paths with a NUL byte and wrong arguments raise", function()
      raises("#1", "(string contains a NUL byte)", uv.fs_stat, dir .. "\0/x")
      raises("#2", "(string contains a NUL byte)", uv.fs_rename, dir,
             dir .. "\0")
      assert.has_error(function() uv.fs_open(dir .. "/a\0b", "w", 0) end)
      assert.has_error(function() uv.fs_read(0, -1) end)
      assert.has_error(function() uv.fs_read(0, 1, 0.5) end)
      assert.has_error(function() uv.fs_close(2 ^ 53) end)
      raises("#2", "(expected a table of strings, found table at index 2)",
             uv.fs_write, 0, {"a", {}})
      assert.has_error(function() uv.fs_write(0, true) end)
      assert.has_error(function() uv.fs_stat(dir, 5) end)
      assert.has_error(function() uv.fs_access(dir, "q") end)
      assert.has_error(function() uv.fs_utime(dir, 0 / 0, 0) end)
      assert.has_error(function() uv.fs_mkdir(dir .. "/m") end)
      assert.has_error(function() uv.fs_opendir(dir, nil, 0) end)
      assert.is_nil(uv.fs_stat(dir .. "/m")) -- nothing was made
    end)

    it("mkdir, rmdir, mkdtemp, mkstemp, unlink, rename", function()
      local m = dir .. "/m"
      assert.is_true(uv.fs_mkdir(m, tonumber("750", 8)))
      assert.equal(tonumber("750", 8), uv.fs_stat(m).mode & tonumber("777", 8))
      assert_fail("EEXIST", m, uv.fs_mkdir(m, 448))
      local t = assert(uv.fs_mkdtemp(m .. "/tXXXXXX"))
      assert.equal("directory", uv.fs_stat(t).type)
      assert_fail("EINVAL", nil, uv.fs_mkdtemp(m .. "/no-template"))
      local fd, path = uv.fs_mkstemp(m .. "/sXXXXXX")
      assert.is_number(fd)
      assert.truthy(path:match("^" .. m:gsub("%-", "%%-") .. "/s......$"))
      assert.equal(2, uv.fs_write(fd, "hi"))
      assert.is_true(uv.fs_close(fd))
      assert.is_true(uv.fs_rename(path, m .. "/renamed"))
      assert.equal("hi", slurp(m .. "/renamed"))
      assert_fail("ENOTEMPTY", m, uv.fs_rmdir(m))
      assert.is_true(uv.fs_unlink(m .. "/renamed"))
      assert.is_true(uv.fs_rmdir(t))
      assert.is_true(uv.fs_rmdir(m))
      assert.is_nil(uv.fs_stat(m))
    end)

    it("stat, fstat, lstat, statfs: luv's tables", function()
      local p = dir .. "/s"
      spit(p, "12345")
      assert(uv.fs_symlink(p, dir .. "/l"))
      local st = assert(uv.fs_stat(p))
      for _, k in ipairs{"dev", "mode", "nlink", "uid", "gid", "rdev", "ino",
                         "size", "blksize", "blocks", "flags", "gen"} do
        assert.equal("integer", math.type(st[k]), k)
      end
      for _, k in ipairs{"atime", "mtime", "ctime", "birthtime"} do
        assert.equal("integer", math.type(st[k].sec), k)
        assert.equal("integer", math.type(st[k].nsec), k)
      end
      assert.equal(5, st.size)
      assert.equal("file", st.type)
      assert.equal(1, st.nlink)
      local fd = assert(uv.fs_open(p, "r", 0))
      local fst = assert(uv.fs_fstat(fd))
      uv.fs_close(fd)
      assert.equal(st.ino, fst.ino)
      assert.equal("link", uv.fs_lstat(dir .. "/l").type)
      assert.equal(st.ino, uv.fs_stat(dir .. "/l").ino)
      assert.equal("directory", uv.fs_stat(dir).type)
      assert.equal("char", uv.fs_stat("/dev/null").type)
      local sfs = assert(uv.fs_statfs(dir))
      for _, k in ipairs{"type", "bsize", "blocks", "bfree", "bavail",
                         "files", "ffree"} do
        assert.equal("integer", math.type(sfs[k]), k)
      end
      assert.truthy(sfs.bsize > 0)
    end)

    it("scandir / scandir_next and opendir / readdir / closedir",
      function()
        spit(dir .. "/f1", "")
        assert(uv.fs_mkdir(dir .. "/d1", 448))
        assert(uv.fs_symlink("f1", dir .. "/l1"))
        local req = assert(uv.fs_scandir(dir))
        assert.equal("fs", req:get_type())
        local seen = {}
        for name, ty in function() return uv.fs_scandir_next(req) end do
          seen[name] = ty
        end
        assert.same({f1 = "file", d1 = "directory", l1 = "link"}, seen)
        assert.equal(0, select("#", uv.fs_scandir_next(req))) -- stays ended
        assert_fail("ENOENT", dir .. "/nope", uv.fs_scandir(dir .. "/nope"))
        -- two entries at a time
        local d = assert(uv.fs_opendir(dir, nil, 2))
        assert.truthy(tostring(d):match("^uv_dir_t: "))
        seen = {}
        local batches = 0
        while true do
          local entries = d:readdir()
          if entries == nil then break end
          batches = batches + 1
          assert.truthy(#entries >= 1 and #entries <= 2)
          for _, e in ipairs(entries) do seen[e.name] = e.type end
        end
        assert.equal(2, batches)
        assert.same({f1 = "file", d1 = "directory", l1 = "link"}, seen)
        assert.is_true(uv.fs_closedir(d))
        raises("#1", "(attempt to use a closed dir)", uv.fs_readdir, d)
        assert.has_error(function() d:closedir() end)
        -- default: one entry per readdir
        d = assert(uv.fs_opendir(dir))
        assert.equal(1, #d:readdir())
        d = nil -- an open stream dropped is closed when collected
        collectgarbage()
        assert_fail("ENOTDIR", dir .. "/f1", uv.fs_opendir(dir .. "/f1"))
      end)

    it("fsync, fdatasync, ftruncate, sendfile", function()
      local p, q = dir .. "/src", dir .. "/dst"
      spit(p, "0123456789")
      local fd = assert(uv.fs_open(p, "r+", 0))
      assert.is_true(uv.fs_fsync(fd))
      assert.is_true(uv.fs_fdatasync(fd))
      assert.is_true(uv.fs_ftruncate(fd, 8))
      assert.equal(8, uv.fs_fstat(fd).size)
      local out = assert(uv.fs_open(q, "w", tonumber("644", 8)))
      assert.equal(5, uv.fs_sendfile(out, fd, 2, 5))
      uv.fs_close(out)
      uv.fs_close(fd)
      assert.equal("23456", slurp(q))
      assert_fail("EBADF", nil, uv.fs_fsync(-1))
      assert_fail("EBADF", nil, uv.fs_sendfile(-1, -1, 0, 1))
    end)

    it("access, chmod, fchmod, chown, fchown, lchown", function()
      local p = dir .. "/p"
      spit(p, "x")
      assert.is_true(uv.fs_access(p, "r"))
      assert.is_true(uv.fs_access(p, "RW"))
      assert.is_true(uv.fs_access(p, 0))
      assert.is_true(uv.fs_access(p, ""))
      assert.is_false(uv.fs_access(dir .. "/nope", "r"))
      assert.is_true(uv.fs_chmod(p, tonumber("640", 8)))
      assert.equal(tonumber("640", 8), uv.fs_stat(p).mode & tonumber("777", 8))
      local fd = assert(uv.fs_open(p, "r", 0))
      assert.is_true(uv.fs_fchmod(fd, tonumber("604", 8)))
      assert.equal(tonumber("604", 8), uv.fs_stat(p).mode & tonumber("777", 8))
      local st = uv.fs_stat(p)
      assert.is_true(uv.fs_chown(p, st.uid, st.gid))
      assert.is_true(uv.fs_fchown(fd, st.uid, st.gid))
      assert.is_true(uv.fs_fchown(fd, -1, -1)) -- -1: unchanged
      uv.fs_close(fd)
      assert(uv.fs_symlink(p, dir .. "/l"))
      assert.is_true(uv.fs_lchown(dir .. "/l", st.uid, st.gid))
      assert_fail("ENOENT", dir .. "/nope",
                  uv.fs_chown(dir .. "/nope", st.uid, st.gid))
    end)

    it("utime, futime, lutime", function()
      local p = dir .. "/t"
      spit(p, "x")
      assert.is_true(uv.fs_utime(p, 1000.5, 2000.25))
      local st = uv.fs_stat(p)
      assert.equal(1000, st.atime.sec)
      assert.equal(500000000, st.atime.nsec)
      assert.equal(2000, st.mtime.sec)
      assert.equal(250000000, st.mtime.nsec)
      local fd = assert(uv.fs_open(p, "r", 0))
      assert.is_true(uv.fs_futime(fd, 3000, 4000))
      uv.fs_close(fd)
      assert.equal(4000, uv.fs_stat(p).mtime.sec)
      assert(uv.fs_symlink(p, dir .. "/l"))
      assert.is_true(uv.fs_lutime(dir .. "/l", 5000, 6000))
      assert.equal(6000, uv.fs_lstat(dir .. "/l").mtime.sec)
      assert.equal(4000, uv.fs_stat(p).mtime.sec) -- not followed
    end)

    it("link, symlink, readlink, realpath, copyfile", function()
      local p = dir .. "/orig"
      spit(p, "data")
      assert.is_true(uv.fs_link(p, dir .. "/hard"))
      assert.equal(2, uv.fs_stat(p).nlink)
      assert.is_true(uv.fs_symlink("orig", dir .. "/soft"))
      assert.is_true(uv.fs_symlink(p, dir .. "/soft2", {dir = false}))
      assert.equal("orig", uv.fs_readlink(dir .. "/soft"))
      assert.equal(uv.fs_realpath(p), uv.fs_realpath(dir .. "/soft"))
      assert.equal(uv.fs_realpath(dir) .. "/orig", uv.fs_realpath(p))
      assert_fail("EINVAL", p, uv.fs_readlink(p))
      assert_fail("EEXIST", nil, uv.fs_symlink("x", dir .. "/soft"))
      assert.is_true(uv.fs_copyfile(p, dir .. "/copy"))
      assert.equal("data", slurp(dir .. "/copy"))
      assert_fail("EEXIST", nil, uv.fs_copyfile(p, dir .. "/copy",
                                                {excl = true}))
      assert_fail("EEXIST", nil, uv.fs_copyfile(p, dir .. "/copy", 1))
      assert.is_true(uv.fs_copyfile(p, dir .. "/copy2", {ficlone = true}))
      assert.has_error(function() uv.fs_copyfile(p, dir .. "/c3", "x") end)
    end)
  end)

  describe("asynchronous form", function()
    it("open, write, read, close: callbacks get err first", function()
      local p = dir .. "/a"
      local r = await(uv.fs_open, p, "w+", tonumber("644", 8))
      assert.equal(2, r.n)
      assert.is_nil(r[1])
      local fd = r[2]
      assert.is_number(fd)
      r = await(uv.fs_write, fd, {"ab", "cd"}, 0)
      assert.same({n = 2, nil, 4}, r)
      r = await(uv.fs_write, fd, "ef") -- callback in the offset's place
      assert.same({n = 2, nil, 2}, r)
      -- without an offset: at the file position, still 0 (pwrite)
      r = await(uv.fs_read, fd, 100, 0)
      assert.same({n = 2, nil, "efcd"}, r)
      r = await(uv.fs_read, fd, 2, 1)
      assert.same({n = 2, nil, "fc"}, r)
      r = await(uv.fs_close, fd)
      assert.same({n = 2, nil, true}, r)
      r = await(uv.fs_close, fd)
      assert.same({n = 1, "EBADF: bad file descriptor"}, r)
      r = await(uv.fs_open, dir .. "/nope", "r", 0)
      assert.same({n = 1, ENOENT_MSG .. ": " .. dir .. "/nope"}, r)
    end)

    it("every other function, with luv's callback arguments", function()
      local p = dir .. "/f"
      spit(p, "0123456789")
      local function ok(want, ...)
        local r = await(...)
        assert.is_nil(r[1], r[1])
        assert.equal(want, r[2])
        return r
      end
      ok(true, uv.fs_mkdir, dir .. "/m", 448)
      local r = await(uv.fs_mkdtemp, dir .. "/m/tXXXXXX")
      assert.equal("directory", uv.fs_stat(r[2]).type)
      r = await(uv.fs_mkstemp, dir .. "/m/sXXXXXX")
      assert.equal(3, r.n)
      assert.is_number(r[2])
      assert.equal("file", uv.fs_stat(r[3]).type)
      uv.fs_close(r[2])
      ok(true, uv.fs_unlink, r[3])
      r = await(uv.fs_stat, p)
      assert.equal(10, r[2].size)
      assert.equal("link", (function()
        assert(uv.fs_symlink("f", dir .. "/l"))
        return await(uv.fs_lstat, dir .. "/l")[2].type
      end)())
      assert.equal("integer", math.type(await(uv.fs_statfs, dir)[2].bsize))
      ok(true, uv.fs_rename, dir .. "/m", dir .. "/m2")
      local fd = assert(uv.fs_open(p, "r+", 0))
      assert.equal(10, await(uv.fs_fstat, fd)[2].size)
      ok(true, uv.fs_fsync, fd)
      ok(true, uv.fs_fdatasync, fd)
      ok(true, uv.fs_ftruncate, fd, 6)
      ok(true, uv.fs_fchmod, fd, tonumber("600", 8))
      local st = uv.fs_fstat(fd)
      ok(true, uv.fs_fchown, fd, st.uid, st.gid)
      ok(true, uv.fs_futime, fd, 10, 20)
      local out = assert(uv.fs_open(dir .. "/out", "w", 420))
      ok(3, uv.fs_sendfile, out, fd, 1, 3)
      uv.fs_close(out)
      uv.fs_close(fd)
      assert.equal("123", slurp(dir .. "/out"))
      ok(true, uv.fs_access, p, "rw")
      ok(false, uv.fs_access, dir .. "/nope", "r")
      ok(true, uv.fs_chmod, p, tonumber("644", 8))
      ok(true, uv.fs_chown, p, st.uid, st.gid)
      ok(true, uv.fs_lchown, dir .. "/l", st.uid, st.gid)
      ok(true, uv.fs_utime, p, 100, 200)
      assert.equal(200, uv.fs_stat(p).mtime.sec)
      ok(true, uv.fs_lutime, dir .. "/l", 300, 400)
      ok(true, uv.fs_link, p, dir .. "/hard")
      ok(true, uv.fs_symlink, p, dir .. "/l2", {})
      ok(true, uv.fs_symlink, p, dir .. "/l3") -- callback in flags' place
      ok(p, uv.fs_readlink, dir .. "/l2")
      ok(uv.fs_realpath(p), uv.fs_realpath, dir .. "/l2")
      ok(true, uv.fs_copyfile, p, dir .. "/c1")
      ok(true, uv.fs_copyfile, p, dir .. "/c2", {excl = true})
      r = await(uv.fs_copyfile, p, dir .. "/c2", {excl = true})
      assert.same({n = 1, "EEXIST: file already exists: " .. p .. " -> " ..
                   dir .. "/c2"}, r)
      assert.equal("012345", slurp(dir .. "/c2"))
      ok(true, uv.fs_rmdir, (uv.fs_mkdtemp(dir .. "/rXXXXXX")))
    end)

    it("scandir passes its request; opendir / readdir / closedir",
      function()
        spit(dir .. "/a", "")
        spit(dir .. "/b", "")
        spit(dir .. "/c", "")
        local got
        local req = uv.fs_scandir(dir, expect(function(err, r)
          assert.is_nil(err)
          got = {}
          for name, ty in function() return uv.fs_scandir_next(r) end do
            got[name] = ty
          end
        end))
        raises("#1", "(request still in progress)", uv.fs_scandir_next, req)
        run_loop(function() return got ~= nil end)
        assert.same({a = "file", b = "file", c = "file"}, got)
        local r = await(uv.fs_opendir, dir)
        assert.is_nil(r[1])
        local d = r[2]
        r = await(uv.fs_opendir, dir .. "/nope")
        assert.same({n = 1, ENOENT_MSG .. ": " .. dir .. "/nope"}, r)
        -- opendir(path, cb, entries)
        local d2
        uv.fs_opendir(dir, expect(function(err, x)
          assert.is_nil(err)
          d2 = x
        end), 10)
        run_loop(function() return d2 ~= nil end)
        r = await(uv.fs_readdir, d2)
        assert.equal(3, #r[2])
        r = await(uv.fs_readdir, d2) -- the end: no error, no entries
        assert.is_nil(r[1])
        assert.is_nil(r[2])
        assert.same({n = 2, nil, true}, await(uv.fs_closedir, d2))
        -- one read at a time per stream
        local n = 0
        local req2 = uv.fs_readdir(d, expect(function(err, entries)
          assert.is_nil(err)
          n = n + #entries
        end))
        assert.equal("fs", req2:get_type())
        assert_fail("EBUSY", nil, uv.fs_readdir(d))
        assert_fail("EBUSY", nil, d:closedir())
        run_loop(function() return n == 1 end)
        assert.is_true(d:closedir())
      end)

    it("callbacks may be callable tables", function()
      local got
      local cb = setmetatable({}, {__call = function(self, err, st)
        got = {self, err, st}
      end})
      local req = uv.fs_stat(dir, cb)
      assert.equal("fs", req:get_type())
      run_loop(function() return got ~= nil end)
      assert.equal(cb, got[1])
      assert.is_nil(got[2])
      assert.equal("directory", got[3].type)
      local wrote
      uv.fs_write(2, "", setmetatable({}, {__call = function(_, err, n)
        wrote = {err, n}
      end}))
      run_loop(function() return wrote ~= nil end)
      assert.same({nil, 0}, wrote)
    end)

    it("a write keeps its strings alive until done", function()
      local p = dir .. "/keep"
      local fd = assert(uv.fs_open(p, "w+", 420))
      local want, done = {}, false
      local parts = {}
      for i = 1, 200 do
        parts[i] = ("%d:"):format(i) .. ("x"):rep(1000 + i)
        want[i] = parts[i]
      end
      want = table.concat(want)
      local release = block_pool(dir) -- the write waits in the queue
      uv.fs_write(fd, parts, 0, expect(function(err, n)
        assert.is_nil(err)
        assert.equal(#want, n)
        done = true
      end))
      -- the caller's table is emptied and every string collected if no
      -- one else holds it
      for i = 1, #parts do parts[i] = nil end
      parts = nil
      for _ = 1, 3 do collectgarbage() end
      for i = 1, 200 do -- new strings where the old ones were
        parts = ("%d:"):format(i) .. ("y"):rep(1000 + i)
      end
      release()
      run_loop(function() return done end)
      local got = uv.fs_read(fd, #want + 1, 0)
      assert.equal(#want, #got)
      assert.truthy(got == want, "the file differs from what was written")
      uv.fs_close(fd)
    end)
  end)

  describe("requests", function()
    it("req_get_type, get_type, tostring, cancel after done", function()
      local done = false
      local req = uv.fs_stat(dir, expect(function() done = true end))
      local name, num = uv.req_get_type(req)
      assert.equal("fs", name)
      assert.equal("integer", math.type(num))
      assert.same({name, num}, {req:get_type()})
      assert.truthy(tostring(req):match("^uv_fs_t: "))
      run_loop(function() return done end)
      assert.same({"fs", num}, {req:get_type()}) -- still answers when done
      assert_fail("EBUSY", nil, uv.cancel(req))
      assert_fail("EBUSY", nil, req:cancel())
      assert.has_error(function() uv.cancel({}) end)
      assert.has_error(function() uv.req_get_type(5) end)
      local t = uv.new_timer()
      raises("#1", "(uv_req expected, got uv_timer)", uv.cancel, t)
      t:close()
      raises("#1", "(not the listing of an fs_scandir)", uv.fs_scandir_next,
             req)
    end)

    it("cancel stops a queued request: its callback gets ECANCELED",
      function()
        local release = block_pool(dir)
        local got
        local req = uv.fs_stat(dir, expect(function(...)
          got = table.pack(...)
        end))
        assert.equal(0, uv.cancel(req))
        run_loop(function() return got ~= nil end)
        assert.same({n = 1, "ECANCELED: operation canceled: " .. dir}, got)
        assert_fail("EBUSY", nil, req:cancel())
        release()
      end)
  end)

  describe("files never block the loop", function()
    it("a timer keeps firing while a file read blocks in the pool",
      function()
        local fifo = dir .. "/fifo"
        assert.equal(0, select(3, os.execute("mkfifo " .. fifo)))
        local fd = assert(uv.fs_open(fifo, "r+", 0))
        local data
        uv.fs_read(fd, 5, -1, expect(function(err, d)
          assert.is_nil(err)
          data = d
        end))
        local ticks = 0
        local t = uv.new_timer()
        t:start(1, 1, function()
          ticks = ticks + 1
          if ticks == 5 then uv.fs_write(fd, "hello") end
        end)
        run_loop(function() return data ~= nil end)
        t:close()
        assert.equal("hello", data)
        assert.equal(5, ticks) -- the read ended only because a tick wrote
        uv.fs_close(fd)
      end)

    it("a repeating timer fires while 64 MiB are written and read",
      function()
        local MiB = 1 << 20
        local chunk = {}
        for i = 1, 64 do
          chunk[i] = string.char(64 + i % 26):rep(MiB)
        end
        local p = dir .. "/big"
        local fd = assert(uv.fs_open(p, "w+", tonumber("600", 8)))
        local pending, ticks_pending = 0, 0
        local t = uv.new_timer()
        t:start(1, 1, function()
          if pending > 0 then ticks_pending = ticks_pending + 1 end
        end)
        -- Rounds until the timer has been seen firing during the I/O
        -- (bounded): each round writes then reads the whole file.
        local round = 0
        while round < 4 and ticks_pending < 2 do
          round = round + 1
          local wrote, read
          pending = 1
          uv.fs_write(fd, chunk, 0, function(err, n)
            pending = 0
            wrote = {err, n}
          end)
          run_loop(function() return wrote ~= nil end, 60)
          assert.same({nil, 64 * MiB}, wrote)
          pending = 1
          uv.fs_read(fd, 64 * MiB, 0, function(err, d)
            pending = 0
            read = {err, d}
          end)
          run_loop(function() return read ~= nil end, 60)
          assert.is_nil(read[1])
          assert.equal(64 * MiB, #read[2])
          assert.equal(chunk[1], read[2]:sub(1, MiB))
          assert.equal(chunk[64], read[2]:sub(-MiB))
        end
        t:close()
        uv.fs_close(fd)
        assert.truthy(ticks_pending >= 2,
          "the timer never fired while the file I/O was in flight")
      end)
  end)

  describe("fs_event and fs_poll", function()
    it("fs_event reports a write to a watched directory", function()
      local ev = uv.new_fs_event()
      assert.equal("fs_event", ev:get_type())
      assert_fail("EINVAL", nil, ev:getpath()) -- not started
      local got
      assert.equal(0, ev:start(dir, {}, function(err, name, events)
        assert.is_nil(err)
        got = got or {name = name, events = events}
      end))
      assert.equal(dir, ev:getpath())
      assert.equal(dir, uv.fs_event_getpath(ev))
      spit(dir .. "/changed", "x")
      run_loop(function() return got ~= nil end)
      assert.equal("changed", got.name)
      assert.truthy(got.events.change or got.events.rename)
      assert.equal(0, uv.fs_event_stop(ev))
      assert.equal(0, ev:start(dir .. "/changed", nil, function() end))
      assert.equal(0, ev:stop())
      ev:close()
      local ev2 = uv.new_fs_event()
      assert_fail("ENOENT", nil,
                  uv.fs_event_start(ev2, dir .. "/nope", {}, function() end))
      assert.has_error(function() ev2:start(dir, {}, 5) end)
      assert.has_error(function() ev2:start(dir, 5, function() end) end)
      ev2:close()
    end)

    it("fs_poll notices a change of size", function()
      local p = dir .. "/polled"
      spit(p, "abc")
      local fp = uv.new_fs_poll()
      assert.equal("fs_poll", fp:get_type())
      local got
      assert.equal(0, uv.fs_poll_start(fp, p, 20, function(err, prev, curr)
        assert.is_nil(err)
        got = got or {prev = prev, curr = curr}
      end))
      assert.equal(p, fp:getpath())
      assert.equal(p, uv.fs_poll_getpath(fp))
      -- fs_poll compares stats between polls: change the file until seen
      local t = uv.new_timer()
      local n = 0
      t:start(50, 50, function()
        n = n + 1
        spit(p, ("y"):rep(10 + n))
      end)
      run_loop(function() return got ~= nil end)
      t:close()
      assert.equal(3, got.prev.size)
      assert.truthy(got.curr.size > 10)
      assert.equal("file", got.curr.type)
      assert.equal(0, fp:stop())
      assert.equal(0, uv.fs_poll_stop(fp))
      fp:close()
    end)
  end)

  describe("shutdown", function()
    it("waits for file requests in flight: no leak, the exit code kept",
      function()
        local script = dir .. "/inflight.lua"
        spit(script, ([[
          local uv = require "uv"
          local fd = assert(uv.fs_open(%q, "w", 420))
          local big = ("x"):rep(8 << 20)
          for i = 1, 8 do uv.fs_write(fd, big, i * #big, function() end) end
          for i = 1, 100 do uv.fs_stat(%q, function() end) end
          uv.fs_opendir(%q, function() end)
          uv.fs_open(%q, "r", 0, function() end)
          uv.fs_scandir(%q, function() end)
          os.exit(3, true)
        ]]):format(dir .. "/out", dir, dir, script, dir))
        local out, err, code = run_host({script})
        assert.equal("", out)
        assert.equal("", err)
        assert.equal(3, code)
        -- a callback error stops the host too, requests still in flight
        spit(script, ([[
          local uv = require "uv"
          uv.fs_stat(%q, function() error("boom") end)
          for i = 1, 50 do uv.fs_realpath(%q, function() end) end
          uv.fs_opendir(%q, function() end)
        ]]):format(dir, dir, dir))
        out, err, code = run_host({script})
        assert.equal(1, code)
        assert.truthy(err:find("boom", 1, true), err)
      end)
  end)
end)
