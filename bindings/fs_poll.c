/*
** fs_poll.c: uv_fs_poll_t (new_fs_poll, fs_poll_start, fs_poll_stop,
** fs_poll_getpath): changes to a path found by stat(2) every interval
** milliseconds, on file systems where fs_event cannot see them. The
** callback gets err, the previous and the current stat tables.
** See Copyright Notice in README.md
*/
#include <stdlib.h>
#include <string.h>

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

/*
** A start that must wait. libuv (1.44) keeps a stopped poll's state
** (poll_ctx) until its timer has closed or its stat(2), running on the
** thread pool, has come back; a start meanwhile makes a second state,
** and when the first one's stat comes back it polls on beside it and
** then aborts the process (fs-poll.c's timer_cb asserts it is the
** handle's state), or, once the handle is closed, holds the close
** forever on a timer that keeps no loop alive. So a start while a
** stopped poll's state remains is made here, by a timer, as soon as it
** is gone (the next loop turn after a stop, or when the stat is back).
*/
typedef struct pending_start {
  uv_timer_t timer;       /* first: found from the handle by a cast */
  lh_internal internal;
  lh_handle *h;           /* NULL once the start is done or dropped */
  unsigned interval;
  char path[1];           /* the path, NUL-terminated */
} pending_start;

/* (also the close of the host's shutdown walk, which closes it first) */
static void pending_closed(uv_handle_t *t) {
  pending_start *ps = (pending_start *)t;
  if (ps->h != NULL) ps->h->extra = NULL;
  free(ps);
}

static void pending_drop(lh_handle *h) {
  pending_start *ps = (pending_start *)h->extra;
  if (ps == NULL) return;
  h->extra = NULL;
  ps->h = NULL;
  if (!uv_is_closing((uv_handle_t *)&ps->timer))
    uv_close((uv_handle_t *)&ps->timer, pending_closed);
}

static void pending_cb(uv_timer_t *t) {
  pending_start *ps = (pending_start *)t;
  lh_handle *h = ps->h;
  uv_fs_poll_t *p;
  if (h == NULL || uv_is_closing(h->uv)) {
    if (h != NULL) pending_drop(h);
    return;
  }
  p = lh_uv(h, uv_fs_poll_t);
  if (p->poll_ctx != NULL) return; /* (the timer repeats) */
  /* (a failure, only ENOMEM, is the callback's to see, as an error of
  ** the first stat would be) */
  {
    int rc = uv_fs_poll_start(p, fs_poll_cb, ps->path, ps->interval);
    pending_drop(h);
    if (rc < 0 && lh_push_cb(h, LH_CB_EVENT)) {
      lh_push_status(h->ctx->L, rc);
      lua_pushnil(h->ctx->L);
      lua_pushnil(h->ctx->L);
      lh_call(h->ctx, 3);
    }
  }
}

static int defer_start(lua_State *L, lh_handle *h, const char *path,
                       unsigned interval) {
  size_t n = strlen(path);
  pending_start *ps;
  pending_drop(h); /* a later start replaces an earlier one */
  ps = (pending_start *)malloc(sizeof(*ps) + n);
  if (ps == NULL) return luaL_error(L, "not enough memory");
  memcpy(ps->path, path, n + 1);
  ps->interval = interval;
  ps->h = h;
  ps->internal.tag = &lh_internal_tag;
  ps->internal.close_cb = pending_closed;
  uv_timer_init(h->ctx->loop, &ps->timer);
  ps->timer.data = &ps->internal;
  if (!uv_has_ref(h->uv)) uv_unref((uv_handle_t *)&ps->timer);
  uv_timer_start(&ps->timer, pending_cb, 1, 1);
  h->extra = ps;
  h->free_extra = pending_drop;
  return 0;
}

int lh_fs_poll_pending(const lh_handle *h) {
  return h->uv->type == UV_FS_POLL && h->extra != NULL;
}

/* start(path, interval, cb): interval in milliseconds. */
static int fs_poll_start(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_POLL);
  const char *path = lh_check_cstring(L, 2);
  unsigned interval = (unsigned)lh_check_range(L, 3, 0, 0xffffffffLL);
  uv_fs_poll_t *p = lh_uv(h, uv_fs_poll_t);
  int rc;
  lh_check_callable(L, 4);
  if (!uv_is_active(h->uv) && (p->poll_ctx != NULL || h->extra != NULL))
    rc = defer_start(L, h, path, interval);
  else
    rc = uv_fs_poll_start(p, fs_poll_cb, path, interval);
  if (rc == 0) lh_set_cb(L, h, LH_CB_EVENT, 4);
  return lh_result(L, rc);
}

static int fs_poll_stop(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_POLL);
  pending_drop(h); /* a start not made yet is not made */
  return lh_result(L, uv_fs_poll_stop(lh_uv(h, uv_fs_poll_t)));
}

/* getpath(): the watched path, or fail (EINVAL when not started); a
** start that waits has its path already. */
static int fs_poll_getpath(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_FS_POLL);
  char small[512], *buf = small;
  size_t size = sizeof(small);
  int rc;
  if (h->extra != NULL) {
    lua_pushstring(L, ((pending_start *)h->extra)->path);
    return 1;
  }
  rc = uv_fs_poll_getpath(lh_uv(h, uv_fs_poll_t), buf, &size);
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
