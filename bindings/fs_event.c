/*
** fs_event.c: uv_fs_event_t (new_fs_event, fs_event_start, fs_event_stop,
** fs_event_getpath): changes to a path as the kernel reports them
** (inotify). The callback gets err, the file name, {change=, rename=}.
** See Copyright Notice in README.md
*/
#include "common.h"

static int fs_event_new(lua_State *L) {
  lh_handle *h = lh_handle_new(L, UV_FS_EVENT);
  int rc = uv_fs_event_init(h->ctx->loop, lh_uv(h, uv_fs_event_t));
  if (rc < 0) {
    lh_handle_abort(L, h);
    return lh_fail(L, rc);
  }
  return 1;
}

static void fs_event_cb(uv_fs_event_t *e, const char *filename, int events,
                        int status) {
  lh_handle *h = (lh_handle *)e->data;
  lua_State *L = h->ctx->L;
  if (!lh_push_cb(h, LH_CB_EVENT)) return;
  lh_push_status(L, status);
  lua_pushstring(L, filename); /* nil when libuv has none */
  lua_createtable(L, 0, 2);
  if (events & UV_CHANGE) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "change");
  }
  if (events & UV_RENAME) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "rename");
  }
  lh_call(h->ctx, 3);
}

/* start(path, flags, cb): flags {watch_entry=, stat=, recursive=} or nil
** (on Linux libuv uses none of them; recursive fails ENOSYS). */
static int fs_event_start(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_EVENT);
  const char *path = lh_check_cstring(L, 2);
  unsigned flags = 0;
  int rc;
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  if (lh_opt_boolfield(L, 3, "watch_entry")) flags |= UV_FS_EVENT_WATCH_ENTRY;
  if (lh_opt_boolfield(L, 3, "stat")) flags |= UV_FS_EVENT_STAT;
  if (lh_opt_boolfield(L, 3, "recursive")) flags |= UV_FS_EVENT_RECURSIVE;
  lh_check_callable(L, 4);
  rc = uv_fs_event_start(lh_uv(h, uv_fs_event_t), fs_event_cb, path, flags);
  if (rc == 0) lh_set_cb(L, h, LH_CB_EVENT, 4);
  return lh_result(L, rc);
}

static int fs_event_stop(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_EVENT);
  return lh_result(L, uv_fs_event_stop(lh_uv(h, uv_fs_event_t)));
}

/* getpath(): the watched path, or fail (EINVAL when not started). */
static int fs_event_getpath(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_EVENT);
  char small[512], *buf = small;
  size_t size = sizeof(small);
  int rc = uv_fs_event_getpath(lh_uv(h, uv_fs_event_t), buf, &size);
  if (rc == UV_ENOBUFS) { /* size is now what it takes */
    buf = (char *)lua_newuserdatauv(L, size, 0);
    rc = uv_fs_event_getpath(lh_uv(h, uv_fs_event_t), buf, &size);
  }
  if (rc < 0) return lh_fail(L, rc);
  lua_pushlstring(L, buf, size);
  return 1;
}

static const luaL_Reg fs_event_functions[] = {
  {"fs_event_getpath", fs_event_getpath},
  {"fs_event_start", fs_event_start},
  {"fs_event_stop", fs_event_stop},
  {"new_fs_event", fs_event_new},
  {NULL, NULL}
};

static const luaL_Reg fs_event_methods[] = {
  {"getpath", fs_event_getpath},
  {"start", fs_event_start},
  {"stop", fs_event_stop},
  {NULL, NULL}
};

void lh_fs_event_open(lua_State *L) {
  luaL_setfuncs(L, fs_event_functions, 0);
  lh_new_metatable(L, "uv_fs_event", fs_event_methods, 0);
}
