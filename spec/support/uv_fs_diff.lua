-- uv_luv_diff_spec's script: the same seeded random sequence of fs_*
-- calls (sync, or with callbacks when ASYNC=1) in a fresh directory, one
-- line of results per call, run by lua5.4 with Debian's luv and by
-- luahost with its uv. usage: DIR SEED N
local uv = package.loaded.uv or require("luv")
local dir, seed, N = arg[1], tonumber(arg[2]), tonumber(arg[3])
math.randomseed(seed)
local random = math.random
local names = {"a", "b", "c", "d/e", "d", "x/y/z", "", ".", "d/../a", "a/"}
local fds = {}
local function p(n) return dir .. "/" .. names[n or random(#names)] end
-- (what differs between two runs by nature: times, numbers of the disk)
local MASKED = {atime = true, mtime = true, ctime = true, birthtime = true,
  ino = true, dev = true, blocks = true, gen = true, blksize = true}

local function norm(v)
  if type(v) == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local t = {}
    for _, k in ipairs(keys) do
      t[#t + 1] = tostring(k) .. "=" .. (MASKED[k] and "*" or norm(v[k]))
    end
    return "{" .. table.concat(t, ",") .. "}"
  elseif type(v) == "string" then
    return ("%q"):format(v:gsub(dir:gsub("%p", "%%%0"), "DIR"))
  elseif type(v) == "userdata" then
    return "userdata"
  end
  return tostring(v)
end

local function show(name, ...)
  local t = {}
  for i = 1, select("#", ...) do t[i] = norm((select(i, ...))) end
  print(name .. " -> " .. table.concat(t, ", "))
end

local ASYNC = os.getenv("ASYNC") == "1"

-- sync: pcall(fn, ...); async: the call's own results, then the callback's
local function call(fn, ...)
  if not ASYNC then return pcall(fn, ...) end
  local got
  local args = table.pack(...)
  args.n = args.n + 1
  args[args.n] = function(...) got = table.pack(...) end
  local r = table.pack(pcall(fn, table.unpack(args, 1, args.n)))
  uv.run()
  if not r[1] or not r[2] then return table.unpack(r, 1, r.n) end
  if not got then return "no callback" end
  return true, "CB", table.unpack(got, 1, got.n)
end

local function fd()
  if #fds == 0 then return 999 end
  return fds[random(#fds)]
end

local FLAGS = {"r", "w", "a", "r+", "w+", "wx", "a+", "rs", "sr", "wx+", 0,
  65, 2}
local DATA = {"hello", "", "xyz\0z", {"a", "b"}}

local function open()
  local flags = FLAGS[random(#FLAGS)]
  local r = table.pack(pcall(uv.fs_open, p(), flags, 420))
  if r[1] and r[2] then
    fds[#fds + 1] = r[2]
    show("open " .. flags, r[1], "FD", r[3], r[4])
  else
    show("open " .. flags, table.unpack(r, 1, r.n))
  end
end

local function scandir()
  local h = table.pack(pcall(uv.fs_scandir, p()))
  if not (h[1] and h[2]) then
    return show("scandir", table.unpack(h, 1, h.n))
  end
  local t = {}
  while true do
    local n, ty = uv.fs_scandir_next(h[2])
    if not n then t[#t + 1] = tostring(ty) break end
    t[#t + 1] = n .. ":" .. tostring(ty)
  end
  table.sort(t)
  show("scandir", true, t)
end

local ops = {
  open,
  function()
    show("write", call(uv.fs_write, fd(), DATA[random(#DATA)],
      random(-1, 8)))
  end,
  function() show("read", call(uv.fs_read, fd(), random(0, 10),
    random(-1, 6))) end,
  function()
    show("close", pcall(uv.fs_close,
      table.remove(fds, random(math.max(#fds, 1))) or 999))
  end,
  function() show("stat", call(uv.fs_stat, p())) end,
  function() show("lstat", call(uv.fs_lstat, p())) end,
  function() show("fstat", call(uv.fs_fstat, fd())) end,
  function() show("mkdir", call(uv.fs_mkdir, p(), 493)) end,
  function() show("rmdir", call(uv.fs_rmdir, p())) end,
  function() show("unlink", call(uv.fs_unlink, p())) end,
  function() show("rename", call(uv.fs_rename, p(), p())) end,
  function() show("ftruncate", call(uv.fs_ftruncate, fd(),
    random(0, 10))) end,
  function()
    show("access", call(uv.fs_access, p(),
      ({"r", "w", "x", "rw", 4, 0})[random(6)]))
  end,
  scandir,
  function() show("symlink", call(uv.fs_symlink, names[random(#names)],
    p())) end,
  function() show("readlink", call(uv.fs_readlink, p())) end,
  function() show("link", call(uv.fs_link, p(), p())) end,
  function() show("chmod", call(uv.fs_chmod, p(),
    ({420, 0, 511})[random(3)])) end,
  function()
    show("copyfile", pcall(uv.fs_copyfile, p(), p(),
      ({nil, {excl = true}, 1})[random(3)]))
  end,
  function() show("fsync", call(uv.fs_fsync, fd())) end,
  function() show("utime", call(uv.fs_utime, p(), 1, 2)) end,
  function() show("realpath", call(uv.fs_realpath, p())) end,
  function()
    show("sendfile", call(uv.fs_sendfile, fd(), fd(), random(0, 3),
      random(0, 5)))
  end,
  function() show("statfs-type", type((uv.fs_statfs(dir) or {}).type)) end,
}

for i = 1, N do
  io.write(i, " ")
  ops[random(#ops)]()
end
