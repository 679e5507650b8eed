/*
** fs.c: file system requests (fs_open, fs_read, fs_write, fs_stat...), as
** luv: each call is synchronous without a callback (its results, or nil,
** "ENAME: message: path", "ENAME") and asynchronous with one (returns a
** "uv_req" userdata; the callback gets err or nil, results...). Directory
** listings (scandir, opendir...) are in fsdir.c.
** See Copyright Notice in README.md
*/
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

/* Linux transfers at most this much in one read(2): a larger buffer would
** never be filled, so fs_read allocates no more. */
#define MAX_READ ((lua_Integer)0x7ffff000)

/* {====================================================== requests */

lh_req *lh_fs_req(lua_State *L, int cbidx) {
  return lh_req_new(L, sizeof(lh_fsreq), cbidx);
}

/* Free a request and what it holds (its fs results, read buffer). */
static void fs_release(lh_req *r) {
  lh_fsreq *f = lh_fsr(r);
  if (f->dir) f->dir->busy = 0; /* still anchored by data_ref here */
  free(f->buf);
  uv_fs_req_cleanup(&f->fs);
  lh_req_free(r);
}

/* luv's error text names the path(s): "ENOENT: no such file or
** directory: a -> b". */
static void push_error(lua_State *L, uv_fs_t *req, int st) {
  const char *name = uv_err_name(st), *msg = uv_strerror(st);
  int two = req->fs_type == UV_FS_RENAME || req->fs_type == UV_FS_LINK ||
            req->fs_type == UV_FS_SYMLINK || req->fs_type == UV_FS_COPYFILE;
  if (req->path && two && req->new_path)
    lua_pushfstring(L, "%s: %s: %s -> %s", name, msg, req->path,
                    req->new_path);
  else if (req->path)
    lua_pushfstring(L, "%s: %s: %s", name, msg, req->path);
  else
    lua_pushfstring(L, "%s: %s", name, msg);
}

static int fs_fail(lua_State *L, uv_fs_t *req, int st) {
  lua_pushnil(L);
  push_error(L, req, st);
  lua_pushstring(L, uv_err_name(st));
  return 3;
}

static void push_time(lua_State *L, const char *name, const uv_timespec_t *t) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)t->tv_sec);
  lua_setfield(L, -2, "sec");
  lua_pushinteger(L, (lua_Integer)t->tv_nsec);
  lua_setfield(L, -2, "nsec");
  lua_setfield(L, -2, name);
}

static const char *mode_type(uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}

#define SETINT(L, v, name) \
  (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))

void lh_push_stat(lua_State *L, const uv_stat_t *s) {
  lua_createtable(L, 0, 17);
  SETINT(L, s->st_dev, "dev");
  SETINT(L, s->st_mode, "mode");
  SETINT(L, s->st_nlink, "nlink");
  SETINT(L, s->st_uid, "uid");
  SETINT(L, s->st_gid, "gid");
  SETINT(L, s->st_rdev, "rdev");
  SETINT(L, s->st_ino, "ino");
  SETINT(L, s->st_size, "size");
  SETINT(L, s->st_blksize, "blksize");
  SETINT(L, s->st_blocks, "blocks");
  SETINT(L, s->st_flags, "flags");
  SETINT(L, s->st_gen, "gen");
  push_time(L, "atime", &s->st_atim);
  push_time(L, "mtime", &s->st_mtim);
  push_time(L, "ctime", &s->st_ctim);
  push_time(L, "birthtime", &s->st_birthtim);
  lua_pushstring(L, mode_type(s->st_mode));
  lua_setfield(L, -2, "type");
}

static void push_statfs(lua_State *L, const uv_statfs_t *s) {
  lua_createtable(L, 0, 7);
  SETINT(L, s->f_type, "type");
  SETINT(L, s->f_bsize, "bsize");
  SETINT(L, s->f_blocks, "blocks");
  SETINT(L, s->f_bfree, "bfree");
  SETINT(L, s->f_bavail, "bavail");
  SETINT(L, s->f_files, "files");
  SETINT(L, s->f_ffree, "ffree");
}

/* The results of a successful request (never scandir: see callers). */
static int push_result(lua_State *L, lh_req *r) {
  uv_fs_t *req = &lh_fsr(r)->fs;
  switch (req->fs_type) {
    case UV_FS_ACCESS: /* no permission is an answer, not a failure */
      lua_pushboolean(L, req->result >= 0);
      return 1;
    case UV_FS_OPEN: case UV_FS_WRITE: case UV_FS_SENDFILE:
      lua_pushinteger(L, (lua_Integer)req->result);
      return 1;
    case UV_FS_READ:
      lua_pushlstring(L, lh_fsr(r)->buf, (size_t)req->result);
      return 1;
    case UV_FS_MKSTEMP:
      lua_pushinteger(L, (lua_Integer)req->result);
      lua_pushstring(L, req->path);
      return 2;
    case UV_FS_MKDTEMP:
      lua_pushstring(L, req->path);
      return 1;
    case UV_FS_READLINK: case UV_FS_REALPATH:
      lua_pushstring(L, (const char *)req->ptr);
      return 1;
    case UV_FS_STAT: case UV_FS_LSTAT: case UV_FS_FSTAT:
      lh_push_stat(L, &req->statbuf);
      return 1;
    case UV_FS_STATFS:
      push_statfs(L, (const uv_statfs_t *)req->ptr);
      return 1;
    case UV_FS_OPENDIR: case UV_FS_READDIR:
      return lh_fsdir_push_result(L, r);
    default: /* close, unlink, mkdir, rename, chmod... */
      lua_pushboolean(L, 1);
      return 1;
  }
}

int lh_fs_after(lua_State *L, lh_req *r, int st) {
  uv_fs_t *req = &lh_fsr(r)->fs;
  int n;
  if (r->cb_ref != LUA_NOREF) { /* asynchronous: submitted or refused */
    if (st < 0) {
      n = fs_fail(L, req, st);
      fs_release(r); /* never called back */
      return n;
    }
    lh_req_push_box(L, r, UV_FS);
    if (req->fs_type == UV_FS_SCANDIR) { /* its callback gets the box */
      lua_pushvalue(L, -1);
      r->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 1;
  }
  if (st < 0 && req->fs_type != UV_FS_ACCESS) {
    n = fs_fail(L, req, st);
  } else if (req->fs_type == UV_FS_SCANDIR) {
    lh_req_push_box(L, r, UV_FS)->owned = 1; /* fs_scandir_next reads it */
    return 1;
  } else {
    n = push_result(L, r);
  }
  fs_release(r);
  return n;
}

/* Nobody will receive the result (the host is shutting down): close what
** it opened. */
static void orphan(uv_fs_t *req) {
  uv_fs_t c;
  if (req->result < 0) return;
  if (req->fs_type == UV_FS_OPEN || req->fs_type == UV_FS_MKSTEMP)
    uv_fs_close(req->loop, &c, (uv_file)req->result, NULL);
  else if (req->fs_type == UV_FS_OPENDIR)
    uv_fs_closedir(req->loop, &c, (uv_dir_t *)req->ptr, NULL);
  else
    return;
  uv_fs_req_cleanup(&c);
}

void lh_fs_cb(uv_fs_t *req) {
  lh_req *r = lh_req_of(req);
  lh_ctx *ctx = r->ctx;
  lua_State *L = ctx->L;
  int n = 1, keep = 0;
  if (!lh_req_push_cb(r)) {
    orphan(req);
    fs_release(r);
    return;
  }
  if (req->fs_type == UV_FS_READDIR && lh_fsr(r)->dir) {
    lh_fsr(r)->dir->busy = 0; /* the callback may read on */
    lh_fsr(r)->dir = NULL;
  }
  if (req->result < 0 && req->fs_type != UV_FS_ACCESS) {
    push_error(L, req, (int)req->result);
  } else if (req->fs_type == UV_FS_SCANDIR) {
    lua_pushnil(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->data_ref); /* the box, or nil */
    if (r->box != NULL) { /* NULL only if making it ran out of memory */
      luaL_unref(L, LUA_REGISTRYINDEX, r->data_ref);
      r->data_ref = LUA_NOREF;
      r->box->owned = keep = 1; /* the box frees the listing when collected */
    }
    n = 2;
  } else {
    lua_pushnil(L);
    n += push_result(L, r);
  }
  if (!keep) fs_release(r); /* before the call: it may run the loop */
  lh_call(ctx, n);
}

/* }====================================================== */

/* {====================================================== arguments */

static uv_file check_fd(lua_State *L, int idx) {
  return (uv_file)lh_check_range(L, idx, INT_MIN, INT_MAX);
}

static int check_mode(lua_State *L, int idx) {
  return (int)lh_check_range(L, idx, 0, INT_MAX);
}

/* The callback at idx: its index, or 0 when there is none. */
static int opt_cb(lua_State *L, int idx) {
  return lh_opt_callable(L, idx) ? idx : 0;
}

/* Is the value at idx callable? (No error: see opt_before_cb.) */
static int callable(lua_State *L, int idx) {
  int t = lua_type(L, idx), ok;
  if (t == LUA_TFUNCTION) return 1;
  if ((t != LUA_TTABLE && t != LUA_TUSERDATA) || !lua_getmetatable(L, idx))
    return 0;
  lua_pushliteral(L, "__call");
  ok = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return ok;
}

/* An optional argument at idx (offset, flags) whose place luv lets the
** callback take: *cbidx is where the callback is, or 0. Returns 1 when
** the argument itself is there. */
static int opt_before_cb(lua_State *L, int idx, int *cbidx) {
  if (callable(L, idx)) {
    *cbidx = idx;
    return 0;
  }
  *cbidx = opt_cb(L, idx + 1);
  return !lua_isnoneornil(L, idx);
}

static int64_t opt_offset(lua_State *L, int idx, int *cbidx) {
  if (!opt_before_cb(L, idx, cbidx)) return -1;
  return (int64_t)luaL_checkinteger(L, idx);
}

/* Times are seconds as numbers; libuv turns them into timespecs, so keep
** them where that conversion is defined. */
static double check_time(lua_State *L, int idx) {
  double t = (double)luaL_checknumber(L, idx);
  if (!(fabs(t) < 1e15)) luaL_argerror(L, idx, "time out of range");
  return t;
}

static uv_uid_t check_id(lua_State *L, int idx) {
  /* -1 (or 0xffffffff) leaves the id unchanged, as chown(2) */
  return (uv_uid_t)lh_check_range(L, idx, -1, 0xffffffffLL);
}

static const struct { const char *name; int flags; } open_flags[] = {
  {"r", O_RDONLY}, {"rs", O_RDONLY | O_SYNC}, {"sr", O_RDONLY | O_SYNC},
  {"r+", O_RDWR}, {"rs+", O_RDWR | O_SYNC}, {"sr+", O_RDWR | O_SYNC},
  {"w", O_TRUNC | O_CREAT | O_WRONLY},
  {"wx", O_TRUNC | O_CREAT | O_WRONLY | O_EXCL},
  {"xw", O_TRUNC | O_CREAT | O_WRONLY | O_EXCL},
  {"w+", O_TRUNC | O_CREAT | O_RDWR},
  {"wx+", O_TRUNC | O_CREAT | O_RDWR | O_EXCL},
  {"xw+", O_TRUNC | O_CREAT | O_RDWR | O_EXCL},
  {"a", O_APPEND | O_CREAT | O_WRONLY},
  {"ax", O_APPEND | O_CREAT | O_WRONLY | O_EXCL},
  {"xa", O_APPEND | O_CREAT | O_WRONLY | O_EXCL},
  {"a+", O_APPEND | O_CREAT | O_RDWR},
  {"ax+", O_APPEND | O_CREAT | O_RDWR | O_EXCL},
  {"xa+", O_APPEND | O_CREAT | O_RDWR | O_EXCL},
  {NULL, 0}
};

/* luv's flag strings ("r", "w+", "ax"...) or the number. */
static int check_open_flags(lua_State *L, int idx) {
  const char *s;
  int i;
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)lh_check_range(L, idx, INT_MIN, INT_MAX);
  s = luaL_checkstring(L, idx);
  for (i = 0; open_flags[i].name; i++)
    if (strcmp(s, open_flags[i].name) == 0) return open_flags[i].flags;
  return luaL_argerror(L, idx, lua_pushfstring(L,
                       "unknown file open flag '%s'", s));
}

/* access(2) mode: a number, or a string of "r", "w", "x" (any case). */
static int check_amode(lua_State *L, int idx) {
  const char *s;
  int mode = F_OK;
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)lh_check_range(L, idx, 0, R_OK | W_OK | X_OK);
  if (lua_type(L, idx) != LUA_TSTRING)
    return luaL_typeerror(L, idx, "access mode string or integer");
  for (s = lua_tostring(L, idx); *s; s++) {
    switch (*s) {
      case 'r': case 'R': mode |= R_OK; break;
      case 'w': case 'W': mode |= W_OK; break;
      case 'x': case 'X': mode |= X_OK; break;
      default:
        return luaL_argerror(L, idx, "unknown character in access mode "
                             "(want \"r\", \"w\", \"x\")");
    }
  }
  if (lh_has_nul(L, idx))
    return luaL_argerror(L, idx, "string contains a NUL byte");
  return mode;
}

/* Flags given as a table of booleans (names[i] -> bits[i]) or a number. */
static int check_flag_table(lua_State *L, int idx, const char *const *names,
                            const int *bits, int max) {
  int i, flags = 0;
  if (lua_isnoneornil(L, idx)) return 0;
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)lh_check_range(L, idx, 0, max);
  luaL_checktype(L, idx, LUA_TTABLE);
  for (i = 0; names[i]; i++)
    if (lh_opt_boolfield(L, idx, names[i])) flags |= bits[i];
  return flags;
}

/* The data of fs_write: a string or a table of strings (numbers are
** turned into strings, as Lua does). Pushes an anchor that holds every
** string written, then fills *bufs (a userdata above it; libuv copies the
** array) and returns their count. */
static unsigned check_bufs(lua_State *L, int idx, uv_buf_t **bufs) {
  size_t len, i, n;
  if (lua_type(L, idx) != LUA_TTABLE) {
    if (!lua_isstring(L, idx)) luaL_typeerror(L, idx, "string or table");
    lua_pushvalue(L, idx);
    *bufs = (uv_buf_t *)lua_newuserdatauv(L, sizeof(uv_buf_t), 0);
    (*bufs)[0].base = (char *)lua_tolstring(L, -2, &len);
    (*bufs)[0].len = len;
    return 1;
  }
  n = lua_rawlen(L, idx);
  if (n > INT_MAX / sizeof(uv_buf_t))
    luaL_argerror(L, idx, "too many strings");
  lua_createtable(L, (int)n, 0); /* the anchor */
  *bufs = (uv_buf_t *)lua_newuserdatauv(L, (n ? n : 1) * sizeof(uv_buf_t),
                                        0);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    if (!lua_isstring(L, -1))
      luaL_argerror(L, idx, lua_pushfstring(L, "expected a table of "
                    "strings, found %s at index %I", luaL_typename(L, -1),
                    (LUAI_UACINT)(i + 1)));
    (*bufs)[i].base = (char *)lua_tolstring(L, -1, &len);
    (*bufs)[i].len = len;
    lua_rawseti(L, -3, (lua_Integer)i + 1);
  }
  return (unsigned)n;
}

/* }====================================================== */

/* {====================================================== functions */

static int fs_close(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, close, fd);
}

static int fs_open(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  int flags = check_open_flags(L, 2);
  int mode = check_mode(L, 3);
  lh_req *r = lh_fs_req(L, opt_cb(L, 4));
  return LH_FS_CALL(L, r, open, path, flags, mode);
}

/* read(fd, size [, offset] [, cb]): offset nil or -1 reads at the file
** position and moves it. An empty string is the end of the file. */
static int fs_read(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  lua_Integer size = lh_check_range(L, 2, 0, LUA_MAXINTEGER);
  int cbidx;
  int64_t off = opt_offset(L, 3, &cbidx);
  size_t len = (size_t)(size > MAX_READ ? MAX_READ : size);
  lh_req *r = lh_fs_req(L, cbidx);
  uv_buf_t b;
  lh_fsr(r)->buf = (char *)malloc(len ? len : 1);
  if (lh_fsr(r)->buf == NULL) {
    lh_req_free(r);
    return lh_fail(L, UV_ENOMEM);
  }
  b = uv_buf_init(lh_fsr(r)->buf, (unsigned)len);
  return LH_FS_CALL(L, r, read, fd, &b, 1, off);
}

/* write(fd, data [, offset] [, cb]): the strings stay anchored until the
** request is done. */
static int fs_write(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  int cbidx, anchor;
  int64_t off = opt_offset(L, 3, &cbidx);
  uv_buf_t *bufs;
  unsigned n;
  lh_req *r;
  lua_settop(L, 4);
  n = check_bufs(L, 2, &bufs);
  anchor = lua_gettop(L) - 1;
  r = lh_fs_req(L, cbidx);
  if (cbidx) {
    lua_pushvalue(L, anchor);
    r->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return LH_FS_CALL(L, r, write, fd, bufs, n, off);
}

static int fs_unlink(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, unlink, path);
}

static int fs_mkdir(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  int mode = check_mode(L, 2);
  lh_req *r = lh_fs_req(L, opt_cb(L, 3));
  return LH_FS_CALL(L, r, mkdir, path, mode);
}

static int fs_mkdtemp(lua_State *L) {
  const char *tpl = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, mkdtemp, tpl);
}

static int fs_mkstemp(lua_State *L) {
  const char *tpl = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, mkstemp, tpl);
}

static int fs_rmdir(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, rmdir, path);
}

static int fs_stat(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, stat, path);
}

static int fs_fstat(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, fstat, fd);
}

static int fs_lstat(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, lstat, path);
}

static int fs_statfs(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, statfs, path);
}

static int fs_rename(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  const char *new_path = lh_check_cstring(L, 2);
  lh_req *r = lh_fs_req(L, opt_cb(L, 3));
  return LH_FS_CALL(L, r, rename, path, new_path);
}

static int fs_fsync(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, fsync, fd);
}

static int fs_fdatasync(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, fdatasync, fd);
}

static int fs_ftruncate(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  int64_t off = (int64_t)luaL_checkinteger(L, 2);
  lh_req *r = lh_fs_req(L, opt_cb(L, 3));
  return LH_FS_CALL(L, r, ftruncate, fd, off);
}

static int fs_sendfile(lua_State *L) {
  uv_file out = check_fd(L, 1);
  uv_file in = check_fd(L, 2);
  int64_t off = (int64_t)luaL_checkinteger(L, 3);
  size_t len = (size_t)lh_check_range(L, 4, 0, LUA_MAXINTEGER);
  lh_req *r = lh_fs_req(L, opt_cb(L, 5));
  return LH_FS_CALL(L, r, sendfile, out, in, off, len);
}

static int fs_access(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  int mode = check_amode(L, 2);
  lh_req *r = lh_fs_req(L, opt_cb(L, 3));
  return LH_FS_CALL(L, r, access, path, mode);
}

static int fs_chmod(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  int mode = check_mode(L, 2);
  lh_req *r = lh_fs_req(L, opt_cb(L, 3));
  return LH_FS_CALL(L, r, chmod, path, mode);
}

static int fs_fchmod(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  int mode = check_mode(L, 2);
  lh_req *r = lh_fs_req(L, opt_cb(L, 3));
  return LH_FS_CALL(L, r, fchmod, fd, mode);
}

static int fs_utime(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  double atime = check_time(L, 2), mtime = check_time(L, 3);
  lh_req *r = lh_fs_req(L, opt_cb(L, 4));
  return LH_FS_CALL(L, r, utime, path, atime, mtime);
}

static int fs_futime(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  double atime = check_time(L, 2), mtime = check_time(L, 3);
  lh_req *r = lh_fs_req(L, opt_cb(L, 4));
  return LH_FS_CALL(L, r, futime, fd, atime, mtime);
}

static int fs_lutime(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  double atime = check_time(L, 2), mtime = check_time(L, 3);
  lh_req *r = lh_fs_req(L, opt_cb(L, 4));
  return LH_FS_CALL(L, r, lutime, path, atime, mtime);
}

static int fs_link(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  const char *new_path = lh_check_cstring(L, 2);
  lh_req *r = lh_fs_req(L, opt_cb(L, 3));
  return LH_FS_CALL(L, r, link, path, new_path);
}

/* symlink(path, new_path [, flags] [, cb]): flags {dir=, junction=} only
** matter on Windows; a number is passed as is. */
static int fs_symlink(lua_State *L) {
  static const char *const names[] = {"dir", "junction", NULL};
  static const int bits[] = {UV_FS_SYMLINK_DIR, UV_FS_SYMLINK_JUNCTION};
  const char *path = lh_check_cstring(L, 1);
  const char *new_path = lh_check_cstring(L, 2);
  int cbidx, flags = 0;
  lh_req *r;
  if (opt_before_cb(L, 3, &cbidx))
    flags = check_flag_table(L, 3, names, bits, 3);
  r = lh_fs_req(L, cbidx);
  return LH_FS_CALL(L, r, symlink, path, new_path, flags);
}

static int fs_readlink(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, readlink, path);
}

static int fs_realpath(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, opt_cb(L, 2));
  return LH_FS_CALL(L, r, realpath, path);
}

static int fs_chown(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  uv_uid_t uid = check_id(L, 2);
  uv_gid_t gid = (uv_gid_t)check_id(L, 3);
  lh_req *r = lh_fs_req(L, opt_cb(L, 4));
  return LH_FS_CALL(L, r, chown, path, uid, gid);
}

static int fs_fchown(lua_State *L) {
  uv_file fd = check_fd(L, 1);
  uv_uid_t uid = check_id(L, 2);
  uv_gid_t gid = (uv_gid_t)check_id(L, 3);
  lh_req *r = lh_fs_req(L, opt_cb(L, 4));
  return LH_FS_CALL(L, r, fchown, fd, uid, gid);
}

static int fs_lchown(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  uv_uid_t uid = check_id(L, 2);
  uv_gid_t gid = (uv_gid_t)check_id(L, 3);
  lh_req *r = lh_fs_req(L, opt_cb(L, 4));
  return LH_FS_CALL(L, r, lchown, path, uid, gid);
}

/* copyfile(path, new_path [, flags] [, cb]): flags {excl=, ficlone=,
** ficlone_force=} or their number. */
static int fs_copyfile(lua_State *L) {
  static const char *const names[] = {"excl", "ficlone", "ficlone_force",
                                      NULL};
  static const int bits[] = {UV_FS_COPYFILE_EXCL, UV_FS_COPYFILE_FICLONE,
                             UV_FS_COPYFILE_FICLONE_FORCE};
  const char *path = lh_check_cstring(L, 1);
  const char *new_path = lh_check_cstring(L, 2);
  int cbidx, flags = 0;
  lh_req *r;
  if (opt_before_cb(L, 3, &cbidx))
    flags = check_flag_table(L, 3, names, bits, 7);
  r = lh_fs_req(L, cbidx);
  return LH_FS_CALL(L, r, copyfile, path, new_path, flags);
}

/* }====================================================== */

static const luaL_Reg fs_functions[] = {
  {"fs_access", fs_access},
  {"fs_chmod", fs_chmod},
  {"fs_chown", fs_chown},
  {"fs_close", fs_close},
  {"fs_copyfile", fs_copyfile},
  {"fs_fchmod", fs_fchmod},
  {"fs_fchown", fs_fchown},
  {"fs_fdatasync", fs_fdatasync},
  {"fs_fstat", fs_fstat},
  {"fs_fsync", fs_fsync},
  {"fs_ftruncate", fs_ftruncate},
  {"fs_futime", fs_futime},
  {"fs_lchown", fs_lchown},
  {"fs_link", fs_link},
  {"fs_lstat", fs_lstat},
  {"fs_lutime", fs_lutime},
  {"fs_mkdir", fs_mkdir},
  {"fs_mkdtemp", fs_mkdtemp},
  {"fs_mkstemp", fs_mkstemp},
  {"fs_open", fs_open},
  {"fs_read", fs_read},
  {"fs_readlink", fs_readlink},
  {"fs_realpath", fs_realpath},
  {"fs_rename", fs_rename},
  {"fs_rmdir", fs_rmdir},
  {"fs_sendfile", fs_sendfile},
  {"fs_stat", fs_stat},
  {"fs_statfs", fs_statfs},
  {"fs_symlink", fs_symlink},
  {"fs_unlink", fs_unlink},
  {"fs_utime", fs_utime},
  {"fs_write", fs_write},
  {NULL, NULL}
};

void lh_fs_open(lua_State *L) {
  luaL_setfuncs(L, fs_functions, 0);
}
