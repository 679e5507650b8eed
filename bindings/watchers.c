/*
** watchers.c: the loop-phase watchers (idle, prepare, check) and async,
** the one handle another thread may poke (async_send).
** See Copyright Notice in README.md
*/
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* {====================================================== idle/prepare/check */

/*
** The three watchers have the same shape: new_X(), X_start(h, cb),
** X_stop(h). One macro writes them; the callback takes no arguments, as
** in luv.
*/
#define WATCHER(name, NAME) \
  static void name##_cb(uv_##name##_t *w) { \
    lh_handle *h = (lh_handle *)w->data; \
    if (lh_push_cb(h, LH_CB_EVENT)) lh_call(h->ctx, 0); \
  } \
  static int name##_new(lua_State *L) { \
    lh_handle *h = lh_handle_new(L, UV_##NAME); \
    uv_##name##_init(h->ctx->loop, lh_uv(h, uv_##name##_t)); \
    return 1; /* the init cannot fail */ \
  } \
  static int name##_start(lua_State *L) { \
    lh_handle *h = lh_check_handle(L, 1, 1 << UV_##NAME); \
    lh_check_callable(L, 2); \
    lh_set_cb(L, h, LH_CB_EVENT, 2); \
    return lh_result(L, uv_##name##_start(lh_uv(h, uv_##name##_t), \
                                          name##_cb)); \
  } \
  static int name##_stop(lua_State *L) { \
    lh_handle *h = lh_check_handle(L, 1, 1 << UV_##NAME); \
    return lh_result(L, uv_##name##_stop(lh_uv(h, uv_##name##_t))); \
  } \
  static const luaL_Reg name##_methods[] = { \
    {"start", name##_start}, \
    {"stop", name##_stop}, \
    {NULL, NULL} \
  };

WATCHER(idle, IDLE)
WATCHER(prepare, PREPARE)
WATCHER(check, CHECK)

/* }====================================================== */

/* {====================================================== async */

/*
** async_send may run on another thread, so its values are copied into C
** memory under a mutex and turned back into Lua values by the callback on
** the loop thread. libuv coalesces sends that arrive before the callback
** runs into one call: the last send's values win.
*/
#define ASYNC_MAXARGS 64

typedef struct aval {
  int type;               /* LUA_TNIL, LUA_TBOOLEAN, LUA_TNUMBER, LUA_TSTRING */
  int isint;
  union { int b; lua_Integer i; lua_Number n; } v;
  char *s;                /* malloc'd copy for strings */
  size_t len;
} aval;

typedef struct async_state {
  uv_mutex_t mutex;
  int n;                  /* values waiting for the callback */
  aval vals[ASYNC_MAXARGS];
} async_state;

static void clear_vals(aval *vals, int n) {
  int i;
  for (i = 0; i < n; i++) free(vals[i].s);
}

static void async_free_extra(lh_handle *h) {
  async_state *st = (async_state *)h->extra;
  clear_vals(st->vals, st->n);
  uv_mutex_destroy(&st->mutex);
  free(st);
  h->extra = NULL;
}

static void push_val(lua_State *L, const aval *a) {
  switch (a->type) {
    case LUA_TBOOLEAN: lua_pushboolean(L, a->v.b); break;
    case LUA_TNUMBER:
      if (a->isint) lua_pushinteger(L, a->v.i);
      else lua_pushnumber(L, a->v.n);
      break;
    case LUA_TSTRING: lua_pushlstring(L, a->s ? a->s : "", a->len); break;
    default: lua_pushnil(L); break;
  }
}

static void async_cb(uv_async_t *a) {
  lh_handle *h = (lh_handle *)a->data;
  async_state *st = (async_state *)h->extra;
  aval vals[ASYNC_MAXARGS];
  int i, n;
  /* Take the values out under the lock; build Lua values outside it. */
  uv_mutex_lock(&st->mutex);
  n = st->n;
  memcpy(vals, st->vals, sizeof(aval) * (size_t)n);
  st->n = 0;
  uv_mutex_unlock(&st->mutex);
  if (lh_push_cb(h, LH_CB_EVENT)) {
    lua_State *L = h->ctx->L;
    luaL_checkstack(L, n + 1, "too many async values");
    for (i = 0; i < n; i++) push_val(L, &vals[i]);
    clear_vals(vals, n); /* before the call: it may close the handle */
    lh_call(h->ctx, n);
  } else {
    clear_vals(vals, n);
  }
}

static int async_new(lua_State *L) {
  lh_handle *h;
  async_state *st;
  int rc;
  lh_check_callable(L, 1);
  h = lh_handle_new(L, UV_ASYNC);
  st = (async_state *)calloc(1, sizeof(async_state));
  if (st == NULL || (rc = uv_mutex_init(&st->mutex)) < 0) {
    free(st);
    lh_handle_abort(L, h);
    return luaL_error(L, "not enough memory");
  }
  h->extra = st;
  h->free_extra = async_free_extra;
  rc = uv_async_init(h->ctx->loop, lh_uv(h, uv_async_t), async_cb);
  if (rc < 0) {
    async_free_extra(h);
    lh_handle_abort(L, h);
    return lh_fail(L, rc);
  }
  lh_set_cb(L, h, LH_CB_EVENT, 1);
  return 1;
}

/* Copy the Lua values from idx to top into vals; raises on a value that
** cannot cross threads (only nil, booleans, numbers and strings can). */
static int copy_vals(lua_State *L, int idx, aval *vals) {
  int top = lua_gettop(L), i, n = 0;
  if (top - idx + 1 > ASYNC_MAXARGS)
    return luaL_error(L, "too many values for async_send (max %d)",
                      ASYNC_MAXARGS);
  for (i = idx; i <= top; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER &&
        t != LUA_TSTRING)
      luaL_typeerror(L, i, "nil, boolean, number or string");
  }
  for (i = idx; i <= top; i++, n++) {
    aval *a = &vals[n];
    memset(a, 0, sizeof(*a));
    a->type = lua_type(L, i);
    if (a->type == LUA_TBOOLEAN) {
      a->v.b = lua_toboolean(L, i);
    } else if (a->type == LUA_TNUMBER) {
      a->isint = lua_isinteger(L, i);
      if (a->isint) a->v.i = lua_tointeger(L, i);
      else a->v.n = lua_tonumber(L, i);
    } else if (a->type == LUA_TSTRING) {
      const char *s = lua_tolstring(L, i, &a->len);
      a->s = (char *)malloc(a->len + 1);
      if (a->s == NULL) {
        clear_vals(vals, n);
        return luaL_error(L, "not enough memory");
      }
      memcpy(a->s, s, a->len + 1);
    }
  }
  return n;
}

static int async_send(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_ASYNC);
  async_state *st = (async_state *)h->extra;
  aval vals[ASYNC_MAXARGS];
  int n = copy_vals(L, 2, vals);
  uv_mutex_lock(&st->mutex);
  clear_vals(st->vals, st->n); /* coalesced: the last values win */
  memcpy(st->vals, vals, sizeof(aval) * (size_t)n);
  st->n = n;
  uv_mutex_unlock(&st->mutex);
  return lh_result(L, uv_async_send(lh_uv(h, uv_async_t)));
}

static const luaL_Reg async_methods[] = {
  {"send", async_send},
  {NULL, NULL}
};

/* }====================================================== */

static const luaL_Reg watcher_functions[] = {
  {"async_send", async_send},
  {"check_start", check_start},
  {"check_stop", check_stop},
  {"idle_start", idle_start},
  {"idle_stop", idle_stop},
  {"new_async", async_new},
  {"new_check", check_new},
  {"new_idle", idle_new},
  {"new_prepare", prepare_new},
  {"prepare_start", prepare_start},
  {"prepare_stop", prepare_stop},
  {NULL, NULL}
};

void lh_watchers_open(lua_State *L) {
  luaL_setfuncs(L, watcher_functions, 0);
  lh_new_metatable(L, "uv_idle", idle_methods, 0);
  lh_new_metatable(L, "uv_prepare", prepare_methods, 0);
  lh_new_metatable(L, "uv_check", check_methods, 0);
  lh_new_metatable(L, "uv_async", async_methods, 0);
}
