/*
** signal.c: uv_signal_t (new_signal, signal_start, signal_start_oneshot,
** signal_stop). A signal is a number or a name ("sigint", "SIGINT",
** "int"); the callback gets luv's name ("sigint"), or the number for a
** signal without one.
** The host's own SIGINT watcher (host/signals.c) stands down while a
** script's SIGINT handle is active: it looks for one with uv_walk.
** See Copyright Notice in README.md
*/
#include "common.h"

static int signal_new(lua_State *L) {
  lh_handle *h = lh_handle_new(L, UV_SIGNAL);
  int rc = uv_signal_init(h->ctx->loop, lh_uv(h, uv_signal_t));
  if (rc < 0) {
    lh_handle_abort(L, h);
    return lh_fail(L, rc);
  }
  return 1;
}

static void signal_cb(uv_signal_t *s, int signum) {
  lh_handle *h = (lh_handle *)s->data;
  const char *name = lh_signal_name(signum);
  if (!lh_push_cb(h, LH_CB_EVENT)) return;
  if (name)
    lua_pushstring(h->ctx->L, name);
  else
    lua_pushinteger(h->ctx->L, signum);
  lh_call(h->ctx, 1);
}

static int start(lua_State *L, int oneshot) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_SIGNAL);
  int signum = lh_check_signal(L, 2);
  uv_signal_t *s = lh_uv(h, uv_signal_t);
  int rc;
  lh_check_callable(L, 3);
  rc = oneshot ? uv_signal_start_oneshot(s, signal_cb, signum)
               : uv_signal_start(s, signal_cb, signum);
  if (rc == 0) lh_set_cb(L, h, LH_CB_EVENT, 3);
  return lh_result(L, rc);
}

static int signal_start(lua_State *L) { return start(L, 0); }

static int signal_start_oneshot(lua_State *L) { return start(L, 1); }

static int signal_stop(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_SIGNAL);
  return lh_result(L, uv_signal_stop(lh_uv(h, uv_signal_t)));
}

static const luaL_Reg signal_functions[] = {
  {"new_signal", signal_new},
  {"signal_start", signal_start},
  {"signal_start_oneshot", signal_start_oneshot},
  {"signal_stop", signal_stop},
  {NULL, NULL}
};

static const luaL_Reg signal_methods[] = {
  {"start", signal_start},
  {"start_oneshot", signal_start_oneshot},
  {"stop", signal_stop},
  {NULL, NULL}
};

void lh_signal_open(lua_State *L) {
  luaL_setfuncs(L, signal_functions, 0);
  lh_new_metatable(L, "uv_signal", signal_methods, 0);
}
