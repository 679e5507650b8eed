/*
** timer.c: uv_timer_t (new_timer, timer_start, timer_stop, timer_again,
** timer_set_repeat, timer_get_repeat, timer_get_due_in).
** Times are milliseconds, as in libuv.
** See Copyright Notice in README.md
*/
#include "common.h"

#define MAX_MS ((lua_Integer)1 << 52) /* beyond any real timeout */

static uv_timer_t *check_timer(lua_State *L, int idx, lh_handle **hp) {
  lh_handle *h = lh_check_handle(L, idx, 1 << UV_TIMER);
  if (hp) *hp = h;
  return lh_uv(h, uv_timer_t);
}

static int timer_new(lua_State *L) {
  lh_handle *h = lh_handle_new(L, UV_TIMER);
  uv_timer_init(h->ctx->loop, lh_uv(h, uv_timer_t)); /* cannot fail */
  return 1;
}

static void timer_cb(uv_timer_t *t) {
  lh_handle *h = (lh_handle *)t->data;
  if (lh_push_cb(h, LH_CB_EVENT)) lh_call(h->ctx, 0);
}

static int timer_start(lua_State *L) {
  lh_handle *h;
  uv_timer_t *t = check_timer(L, 1, &h);
  uint64_t timeout = (uint64_t)lh_check_range(L, 2, 0, MAX_MS);
  uint64_t repeat = (uint64_t)lh_check_range(L, 3, 0, MAX_MS);
  lh_check_callable(L, 4);
  lh_set_cb(L, h, LH_CB_EVENT, 4);
  return lh_result(L, uv_timer_start(t, timer_cb, timeout, repeat));
}

static int timer_stop(lua_State *L) {
  return lh_result(L, uv_timer_stop(check_timer(L, 1, NULL)));
}

static int timer_again(lua_State *L) {
  return lh_result(L, uv_timer_again(check_timer(L, 1, NULL)));
}

static int timer_set_repeat(lua_State *L) {
  uv_timer_t *t = check_timer(L, 1, NULL);
  uv_timer_set_repeat(t, (uint64_t)lh_check_range(L, 2, 0, MAX_MS));
  return 0;
}

static int timer_get_repeat(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_timer_get_repeat(check_timer(L, 1,
                                                                  NULL)));
  return 1;
}

static int timer_get_due_in(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_timer_get_due_in(check_timer(L, 1,
                                                                  NULL)));
  return 1;
}

static const luaL_Reg timer_functions[] = {
  {"new_timer", timer_new},
  {"timer_again", timer_again},
  {"timer_get_due_in", timer_get_due_in},
  {"timer_get_repeat", timer_get_repeat},
  {"timer_set_repeat", timer_set_repeat},
  {"timer_start", timer_start},
  {"timer_stop", timer_stop},
  {NULL, NULL}
};

static const luaL_Reg timer_methods[] = {
  {"again", timer_again},
  {"get_due_in", timer_get_due_in},
  {"get_repeat", timer_get_repeat},
  {"set_repeat", timer_set_repeat},
  {"start", timer_start},
  {"stop", timer_stop},
  {NULL, NULL}
};

void lh_timer_open(lua_State *L) {
  luaL_setfuncs(L, timer_functions, 0);
  lh_new_metatable(L, "uv_timer", timer_methods, 0);
}
