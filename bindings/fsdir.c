/*
** fsdir.c: directory listings, as luv. fs_scandir lists a directory at
** once and returns its request, which fs_scandir_next walks (name, type);
** fs_opendir returns a "uv_dir" stream that fs_readdir reads in batches
** ({name=, type=} tables) and fs_closedir closes. Both forms, as fs.c.
** See Copyright Notice in README.md
*/
#include <stddef.h>
#include <string.h>

#include "fs.h"

#define DIR_MT "uv_dir"
#define MAX_ENTRIES 65536 /* per readdir: the buffer lives in the userdata */

static const char *dirent_type(uv_dirent_type_t t) {
  switch (t) {
    case UV_DIRENT_FILE: return "file";
    case UV_DIRENT_DIR: return "directory";
    case UV_DIRENT_LINK: return "link";
    case UV_DIRENT_FIFO: return "fifo";
    case UV_DIRENT_SOCKET: return "socket";
    case UV_DIRENT_CHAR: return "char";
    case UV_DIRENT_BLOCK: return "block";
    default: return "unknown";
  }
}

/* {====================================================== scandir */

/* scandir(path [, cb]): the request (a "uv_req" userdata) that
** fs_scandir_next walks; with cb, also cb(err, req) once listed. */
static int fs_scandir(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  lh_req *r = lh_fs_req(L, lh_opt_callable(L, 2) ? 2 : 0);
  return LH_FS_CALL(L, r, scandir, path, 0);
}

/* scandir_next(req): name, type of the next entry; nothing at the end. */
static int fs_scandir_next(lua_State *L) {
  lh_reqbox *b = lh_check_reqbox(L, 1);
  uv_dirent_t ent;
  int st;
  if (b->req != NULL && !b->owned)
    return luaL_argerror(L, 1, "request still in progress");
  if (b->req == NULL || lh_fsr(b->req)->fs.fs_type != UV_FS_SCANDIR)
    return luaL_argerror(L, 1, "not the listing of an fs_scandir");
  st = uv_fs_scandir_next(&lh_fsr(b->req)->fs, &ent);
  if (st == UV_EOF) return 0;
  if (st < 0) return lh_fail(L, st);
  lua_pushstring(L, ent.name);
  lua_pushstring(L, dirent_type(ent.type));
  return 2;
}

/* }====================================================== */

/* {====================================================== dir streams */

static lh_fsdir *check_dir(lua_State *L, int idx) {
  lh_fsdir *d = (lh_fsdir *)luaL_checkudata(L, idx, DIR_MT);
  if (d->dir == NULL) luaL_argerror(L, idx, "attempt to use a closed dir");
  return d;
}

int lh_fsdir_push_result(lua_State *L, lh_req *r) {
  uv_fs_t *req = &lh_fsr(r)->fs;
  ssize_t i;
  if (req->fs_type == UV_FS_OPENDIR) {
    size_t n = lh_fsr(r)->nentries;
    lh_fsdir *d = (lh_fsdir *)lua_newuserdatauv(L,
        offsetof(lh_fsdir, dirents) + n * sizeof(uv_dirent_t), 0);
    d->dir = (uv_dir_t *)req->ptr;
    d->busy = 0;
    d->nentries = n;
    luaL_setmetatable(L, DIR_MT);
    return 1;
  }
  if (req->result == 0) { /* the end of the directory */
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, (int)req->result, 0);
  for (i = 0; i < req->result; i++) {
    const uv_dirent_t *e = &((uv_dir_t *)req->ptr)->dirents[i];
    lua_createtable(L, 0, 2);
    lua_pushstring(L, e->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, dirent_type(e->type));
    lua_setfield(L, -2, "type");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* opendir(path [, cb [, entries]]): a "uv_dir" stream whose readdir
** returns up to `entries` (default 1) entries at a time. */
static int fs_opendir(lua_State *L) {
  const char *path = lh_check_cstring(L, 1);
  int cbidx = lh_opt_callable(L, 2) ? 2 : 0;
  size_t n = (size_t)lh_opt_range(L, 3, 1, 1, MAX_ENTRIES);
  lh_req *r = lh_fs_req(L, cbidx);
  lh_fsr(r)->nentries = n;
  return LH_FS_CALL(L, r, opendir, path);
}

/* readdir(dir [, cb]): a table of {name=, type=}, or nil at the end. One
** read at a time per stream: another while one is in flight fails EBUSY. */
static int fs_readdir(lua_State *L) {
  lh_fsdir *d = check_dir(L, 1);
  int cbidx = lh_opt_callable(L, 2) ? 2 : 0;
  lh_req *r;
  if (d->busy) return lh_fail(L, UV_EBUSY);
  r = lh_fs_req(L, cbidx);
  d->dir->dirents = d->dirents;
  d->dir->nentries = d->nentries;
  if (cbidx) { /* the stream and its buffer live until the callback */
    lua_pushvalue(L, 1);
    r->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lh_fsr(r)->dir = d;
    d->busy = 1;
  }
  return LH_FS_CALL(L, r, readdir, d->dir);
}

/* closedir(dir [, cb]): true. The stream counts as closed at once. */
static int fs_closedir(lua_State *L) {
  lh_fsdir *d = check_dir(L, 1);
  int cbidx = lh_opt_callable(L, 2) ? 2 : 0;
  uv_dir_t *dir = d->dir;
  lh_req *r;
  if (d->busy) return lh_fail(L, UV_EBUSY);
  r = lh_fs_req(L, cbidx);
  d->dir = NULL; /* libuv frees dir whatever the outcome */
  return LH_FS_CALL(L, r, closedir, dir);
}

/* A stream dropped open is closed synchronously (it is never busy here:
** a read in flight anchors it). (Checked: getmetatable(dir).__gc can be
** called by hand, with anything.) */
static int dir_gc(lua_State *L) {
  lh_fsdir *d = (lh_fsdir *)luaL_checkudata(L, 1, DIR_MT);
  if (d->dir != NULL && !d->busy) {
    uv_fs_t req;
    uv_fs_closedir(lh_getctx(L)->loop, &req, d->dir, NULL);
    uv_fs_req_cleanup(&req);
    d->dir = NULL;
  }
  return 0;
}

static int dir_tostring(lua_State *L) {
  lh_fsdir *d = (lh_fsdir *)luaL_checkudata(L, 1, DIR_MT);
  lua_pushfstring(L, "uv_dir_t: %p%s", (void *)d,
                  d->dir == NULL ? " (closed)" : "");
  return 1;
}

/* }====================================================== */

static const luaL_Reg fsdir_functions[] = {
  {"fs_closedir", fs_closedir},
  {"fs_opendir", fs_opendir},
  {"fs_readdir", fs_readdir},
  {"fs_scandir", fs_scandir},
  {"fs_scandir_next", fs_scandir_next},
  {NULL, NULL}
};

static const luaL_Reg dir_methods[] = {
  {"closedir", fs_closedir},
  {"readdir", fs_readdir},
  {NULL, NULL}
};

void lh_fsdir_open(lua_State *L) {
  luaL_setfuncs(L, fsdir_functions, 0);
  luaL_newmetatable(L, DIR_MT);
  luaL_newlib(L, dir_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, dir_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, dir_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
