/*
** watchers.c: the loop-phase watchers (idle, prepare, check) and async,
** the one handle another thread may poke (async_send).
** See Copyright Notice in README.md
*/
#include <stdlib.h>
#include <string.h>

#include "xfer.h"

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
** memory (xfer.c) and turned back into Lua values by the callback on the
** loop thread. libuv coalesces sends that arrive before the callback runs
** into one call: the last send's values win. At most LH_XFER_MAXARGS
** values are sent, as in luv; more are dropped.
**
** The handle's shared part outlives it: another thread may hold a copy of
** the async (a "uv_async_ref" userdata, received as an argument or a
** value), whose send must find out, under the mutex, that the handle is
** gone instead of touching freed memory. It is freed with its last
** reference.
*/
typedef struct async_shared {
  uv_mutex_t mutex;
  int refs;               /* the handle's and each copy's (under mutex) */
  lh_handle *h;           /* the open handle, NULL from its close_cb on */
  lh_ctx *ctx;            /* the state that owns the handle */
  lh_buf vals;            /* the last send's values, for the callback */
} async_shared;

#define ASYNC_REF "uv_async_ref"

void lh_async_release(void *p) {
  async_shared *sh = (async_shared *)p;
  int refs;
  uv_mutex_lock(&sh->mutex);
  refs = --sh->refs;
  uv_mutex_unlock(&sh->mutex);
  if (refs > 0) return;
  lh_xfer_free(&sh->vals);
  uv_mutex_destroy(&sh->mutex);
  free(sh);
}

static void async_free_extra(lh_handle *h) {
  async_shared *sh = (async_shared *)h->extra;
  lh_buf vals;
  uv_mutex_lock(&sh->mutex);
  sh->h = NULL;
  vals = sh->vals;
  memset(&sh->vals, 0, sizeof(sh->vals));
  uv_mutex_unlock(&sh->mutex);
  lh_xfer_free(&vals);
  lh_async_release(sh);
  h->extra = NULL;
}

/* The shared part of the async at idx, or NULL. No reference taken. */
static async_shared *to_shared(lua_State *L, int idx) {
  async_shared **ref = (async_shared **)luaL_testudata(L, idx, ASYNC_REF);
  lh_handle **box;
  if (ref != NULL) return *ref;
  box = (lh_handle **)luaL_testudata(L, idx, "uv_async");
  if (box == NULL || *box == NULL || uv_is_closing((*box)->uv)) return NULL;
  return (async_shared *)(*box)->extra;
}

void *lh_async_share(lua_State *L, int idx) {
  async_shared *sh = to_shared(L, idx);
  if (sh == NULL) return NULL;
  uv_mutex_lock(&sh->mutex);
  sh->refs++;
  uv_mutex_unlock(&sh->mutex);
  return sh;
}

static int ref_gc(lua_State *L) {
  async_shared **ref = (async_shared **)luaL_checkudata(L, 1, ASYNC_REF);
  if (*ref) lh_async_release(*ref);
  *ref = NULL;
  return 0;
}

static int ref_tostring(lua_State *L) {
  async_shared **ref = (async_shared **)luaL_checkudata(L, 1, ASYNC_REF);
  lua_pushfstring(L, "uv_async (of another thread): %p", (void *)*ref);
  return 1;
}

static int async_send(lua_State *L);

void lh_async_push(lua_State *L, void *p) {
  async_shared *sh = (async_shared *)p;
  async_shared **ref;
  int mine;
  uv_mutex_lock(&sh->mutex);
  mine = sh->h != NULL && sh->ctx == lh_getctx(L);
  if (mine) lh_push_handle(L, sh->h); /* back home: the handle itself */
  uv_mutex_unlock(&sh->mutex);
  if (mine) return;
  ref = (async_shared **)lua_newuserdatauv(L, sizeof(*ref), 0);
  *ref = NULL;
  if (luaL_newmetatable(L, ASYNC_REF)) {
    static const luaL_Reg methods[] = {{"send", async_send}, {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ref_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ref_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
  uv_mutex_lock(&sh->mutex);
  sh->refs++;
  uv_mutex_unlock(&sh->mutex);
  *ref = sh;
}

/* On the loop's state, protected: push the values (1 = the buffer). */
static int push_vals(lua_State *L) {
  lh_buf *b = (lh_buf *)lua_touserdata(L, 1);
  lua_remove(L, 1);
  return lh_xfer_push(L, b);
}

static void async_cb(uv_async_t *a) {
  lh_handle *h = (lh_handle *)a->data;
  async_shared *sh = (async_shared *)h->extra;
  lua_State *L = h->ctx->L;
  lh_buf vals;
  /* Take the values out under the lock; build Lua values outside it. */
  uv_mutex_lock(&sh->mutex);
  vals = sh->vals;
  memset(&sh->vals, 0, sizeof(sh->vals));
  uv_mutex_unlock(&sh->mutex);
  if (lh_push_cb(h, LH_CB_EVENT)) {
    int top = lua_gettop(L), n;
    lua_pushcfunction(L, push_vals);
    lua_pushlightuserdata(L, &vals);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) { /* out of memory */
      lh_report(lua_tostring(L, -1));
      lua_settop(L, top - 1);
      lh_xfer_free(&vals);
      return;
    }
    n = lua_gettop(L) - top;
    lh_xfer_free(&vals); /* before the call: it may close the handle */
    lh_call(h->ctx, n);
  } else {
    lh_xfer_free(&vals);
  }
}

static int async_new(lua_State *L) {
  lh_handle *h;
  async_shared *sh;
  int rc;
  lh_check_callable(L, 1);
  h = lh_handle_new(L, UV_ASYNC);
  sh = (async_shared *)calloc(1, sizeof(async_shared));
  if (sh == NULL || uv_mutex_init(&sh->mutex) < 0) {
    free(sh);
    lh_handle_abort(L, h);
    return luaL_error(L, "not enough memory");
  }
  sh->refs = 1;
  sh->h = h;
  sh->ctx = h->ctx;
  h->extra = sh;
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

/* async_send(async, ...): async is a handle of this state, or one that
** came from another thread (it then wakes that thread's loop; a send after
** that handle closed returns fail EINVAL). */
static int async_send(lua_State *L) {
  async_shared *sh;
  lh_buf vals, old;
  int n = lua_gettop(L) - 1, rc;
  if (luaL_testudata(L, 1, ASYNC_REF))
    sh = *(async_shared **)lua_touserdata(L, 1);
  else
    sh = (async_shared *)lh_check_handle(L, 1, 1 << UV_ASYNC)->extra;
  if (sh == NULL) return luaL_argerror(L, 1, "attempt to use a closed handle");
  if (n > LH_XFER_MAXARGS) n = LH_XFER_MAXARGS;
  lh_xfer_put(L, 2, n, LH_XFER_ARGS, &vals);
  uv_mutex_lock(&sh->mutex);
  if (sh->h == NULL) {
    old = vals;
    rc = UV_EINVAL;
  } else {
    old = sh->vals; /* coalesced: the last values win */
    sh->vals = vals;
    rc = uv_async_send(lh_uv(sh->h, uv_async_t));
  }
  uv_mutex_unlock(&sh->mutex);
  lh_xfer_free(&old);
  return lh_result(L, rc);
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
