/*
** fs_poll.c: uv_fs_poll_t (new_fs_poll, fs_poll_start, fs_poll_stop,
** fs_poll_getpath): changes to a path found by stat(2) every interval
** milliseconds, on file systems where fs_event cannot see them. The
** callback gets err, the previous and the current stat tables.
** See Copyright Notice in README.md
*/
#include "fs.h"

static int fs_poll_new(lua_State *L) {
  lh_handle *h = lh_handle_new(L, UV_FS_POLL);
  int rc = uv_fs_poll_init(h->ctx->loop, lh_uv(h, uv_fs_poll_t));
  if (rc < 0) {
    lh_handle_abort(L, h);
    return lh_fail(L, rc);
  }
  return 1;
}

static void push_stat_or_nil(lua_State *L, const uv_stat_t *s) {
  if (s)
    lh_push_stat(L, s);
  else
    lua_pushnil(L);
}

static void fs_poll_cb(uv_fs_poll_t *p, int status, const uv_stat_t *prev,
                       const uv_stat_t *curr) {
  lh_handle *h = (lh_handle *)p->data;
  lua_State *L = h->ctx->L;
  if (!lh_push_cb(h, LH_CB_EVENT)) return;
  lh_push_status(L, status);
  push_stat_or_nil(L, prev);
  push_stat_or_nil(L, curr);
  lh_call(h->ctx, 3);
}

/* start(path, interval, cb): interval in milliseconds. */
static int fs_poll_start(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_POLL);
  const char *path = lh_check_cstring(L, 2);
  unsigned interval = (unsigned)lh_check_range(L, 3, 0, 0xffffffffLL);
  int rc;
  lh_check_callable(L, 4);
  rc = uv_fs_poll_start(lh_uv(h, uv_fs_poll_t), fs_poll_cb, path, interval);
  if (rc == 0) lh_set_cb(L, h, LH_CB_EVENT, 4);
  return lh_result(L, rc);
}

static int fs_poll_stop(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_POLL);
  return lh_result(L, uv_fs_poll_stop(lh_uv(h, uv_fs_poll_t)));
}

/* getpath(): the watched path, or fail (EINVAL when not started). */
static int fs_poll_getpath(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_POLL);
  char small[512], *buf = small;
  size_t size = sizeof(small);
  int rc = uv_fs_poll_getpath(lh_uv(h, uv_fs_poll_t), buf, &size);
  if (rc == UV_ENOBUFS) { /* size is now what it takes */
    buf = (char *)lua_newuserdatauv(L, size, 0);
    rc = uv_fs_poll_getpath(lh_uv(h, uv_fs_poll_t), buf, &size);
  }
  if (rc < 0) return lh_fail(L, rc);
  lua_pushlstring(L, buf, size);
  return 1;
}

static const luaL_Reg fs_poll_functions[] = {
  {"fs_poll_getpath", fs_poll_getpath},
  {"fs_poll_start", fs_poll_start},
  {"fs_poll_stop", fs_poll_stop},
  {"new_fs_poll", fs_poll_new},
  {NULL, NULL}
};

static const luaL_Reg fs_poll_methods[] = {
  {"getpath", fs_poll_getpath},
  {"start", fs_poll_start},
  {"stop", fs_poll_stop},
  {NULL, NULL}
};

void lh_fs_poll_open(lua_State *L) {
  luaL_setfuncs(L, fs_poll_functions, 0);
  lh_new_metatable(L, "uv_fs_poll", fs_poll_methods, 0);
}
