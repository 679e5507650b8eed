/*
** work.c: luv's thread pool work: new_work(work_fn, after_fn) and
** queue_work(work, ...) / work:queue(...).
** See Copyright Notice in README.md
**
** Each queued item runs work_fn on libuv's thread pool in a substate of its
** own (xfer.h: standard libraries, uv with its own loop), with the values
** given to queue_work; on the loop thread, after_fn then gets what work_fn
** returned. Values are copied as luv copies them (nil, booleans, numbers,
** strings, light userdata, async handles; at most 9). An error in work_fn
** is an error in a callback: reported, then the host's policy applies
** (by default the host stops with status 1).
**
** At host exit, queued items are cancelled (uv_cancel) and running ones
** are asked to stop (lh_sub_cancel); their after_fn is not called.
**
** As luv does, a work keeps the states its items ran in and gives them to
** its next items (up to WORK_IDLE_MAX idle ones): a state costs a loop
** and the libraries, and work_fn is compiled once per state. The pool
** threads take and return them under the work's mutex; the work's __gc
** closes them (no item is in flight then: each anchors its work).
*/
#include <stdlib.h>
#include <string.h>

#include "xfer.h"

#define WORK_MT "luv_work_ctx"
#define WORK_IDLE_MAX 8

typedef struct workctx {
  char *code;
  size_t len;
  int after_ref;
  int has_mutex;
  uv_mutex_t mutex;      /* guards idle and nidle */
  int nidle;
  lua_State *idle[WORK_IDLE_MAX]; /* states ready for the next items */
} workctx;

typedef struct wjob {
  lh_sub sub;            /* first: found from the lh_sub by a cast */
  uv_work_t req;
  lh_ctx *ctx;
  workctx *w;            /* anchored by w_ref while the item is queued */
  int w_ref;
  lh_buf args, out;
  char *err;             /* work_fn failed: its message */
} wjob;

static void job_free(lua_State *L, wjob *j) {
  lh_sub_untrack(&j->sub);
  luaL_unref(L, LUA_REGISTRYINDEX, j->w_ref);
  lh_sub_destroy(&j->sub);
  lh_xfer_free(&j->args);
  lh_xfer_free(&j->out);
  free(j->err);
  free(j);
}

/* {====================================================== pool side */

static const char work_fn_key = 'w'; /* registry: work_fn, compiled */

/* In the item's own state, protected: load, run, copy the results. */
static int work_main(lua_State *T) {
  wjob *j = (wjob *)lua_touserdata(T, 1);
  int n;
  lua_settop(T, 0);
  lua_pushcfunction(T, lh_msghandler);
  if (lua_rawgetp(T, LUA_REGISTRYINDEX, &work_fn_key) != LUA_TFUNCTION) {
    lua_pop(T, 1);
    if (lh_load_code(T, j->w->code, j->w->len, "=pool") != LUA_OK)
      return lua_error(T);
    lua_pushvalue(T, -1);
    lua_rawsetp(T, LUA_REGISTRYINDEX, &work_fn_key);
  }
  n = lh_xfer_push(T, &j->args);
  if (lua_pcall(T, n, LUA_MULTRET, 1) != LUA_OK) return lua_error(T);
  n = lua_gettop(T) - 1;
  if (n > LH_XFER_MAXARGS) n = LH_XFER_MAXARGS; /* luv drops the rest */
  lh_xfer_put(T, 2, n, 0, &j->out);
  return 0;
}

/* A state for the item: an idle one of its work, or a new one. */
static lua_State *take_state(wjob *j) {
  workctx *w = j->w;
  lua_State *T = NULL;
  uv_mutex_lock(&w->mutex);
  if (w->nidle > 0) T = w->idle[--w->nidle];
  uv_mutex_unlock(&w->mutex);
  if (T == NULL) return lh_substate_open(&j->sub);
  lh_substate_attach(T, &j->sub);
  return T;
}

/* Keep the state for the next item, or close it when enough are idle or
** it was stopped mid-way. */
static void give_state(wjob *j, lua_State *T) {
  workctx *w = j->w;
  int kept = 0;
  lua_settop(T, 0);
  if (!lh_sub_cancelled(&j->sub)) {
    lh_substate_detach(T);
    uv_mutex_lock(&w->mutex);
    if (w->nidle < WORK_IDLE_MAX) {
      w->idle[w->nidle++] = T;
      kept = 1;
    }
    uv_mutex_unlock(&w->mutex);
  }
  if (!kept) lh_substate_close(T);
}

static void work_cb(uv_work_t *req) {
  wjob *j = (wjob *)req->data;
  lua_State *T = take_state(j);
  const char *msg = "not enough memory for its state";
  if (T != NULL) {
    lua_pushcfunction(T, work_main);
    lua_pushlightuserdata(T, j);
    if (lua_pcall(T, 1, 0, 0) == LUA_OK) msg = NULL;
    else if (lua_touserdata(T, -1) == lh_exit_marker()) msg = NULL;
    else if ((msg = lua_tostring(T, -1)) == NULL)
      msg = "(error object is not a string)";
  }
  if (msg != NULL) {
    size_t len = strlen(msg);
    j->err = (char *)malloc(len + 1);
    if (j->err) memcpy(j->err, msg, len + 1);
  }
  if (T != NULL) give_state(j, T);
  lh_xfer_free(&j->args);
}

/* }====================================================== */

/* {====================================================== loop side */

/* On the loop's state, protected: push the results (1 = the buffer). */
static int push_out(lua_State *L) {
  lh_buf *b = (lh_buf *)lua_touserdata(L, 1);
  lua_remove(L, 1);
  return lh_xfer_push(L, b);
}

static void after_work_cb(uv_work_t *req, int status) {
  wjob *j = (wjob *)req->data;
  lh_ctx *ctx = j->ctx;
  lua_State *L = ctx->L;
  int top, n;
  lua_checkstack(L, LUA_MINSTACK); /* see lh_push_cb */
  lh_sub_untrack(&j->sub);
  if (status != 0 || ctx->shutting_down > 1 || lh_sub_cancelled(&j->sub)) {
    job_free(L, j);
    return;
  }
  if (j->err != NULL) {
    lua_pushfstring(L, "uncaught error in work callback: %s", j->err);
    lh_report(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (ctx->callback_errors_fatal) lh_fatal(ctx, 1);
    job_free(L, j);
    return;
  }
  top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->w->after_ref);
  lua_pushcfunction(L, push_out);
  lua_pushlightuserdata(L, &j->out);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) { /* out of memory */
    lh_report(lua_tostring(L, -1));
    lua_settop(L, top);
    job_free(L, j);
    return;
  }
  n = lua_gettop(L) - top - 1;
  job_free(L, j); /* the callback may raise or queue more: free first */
  lh_call(ctx, n);
}

/* At host exit (after the cancel request): drop it from the queue if it
** has not started; a running one stops at its next hook or wake-up. */
static void job_on_exit(lh_sub *s) {
  wjob *j = (wjob *)s;
  uv_cancel((uv_req_t *)&j->req);
}

/* }====================================================== */

/* {====================================================== functions */

static workctx *check_work(lua_State *L, int idx) {
  return (workctx *)luaL_checkudata(L, idx, WORK_MT);
}

/* new_work(work_fn, after_fn) -> work. work_fn: a Lua function or its
** source; after_fn: any callable. */
static int work_new(lua_State *L) {
  workctx *w;
  int t = lua_type(L, 1);
  luaL_argexpected(L, t == LUA_TFUNCTION || t == LUA_TSTRING, 1,
                   "function or string");
  lh_check_callable(L, 2);
  w = (workctx *)lua_newuserdatauv(L, sizeof(workctx), 0);
  memset(w, 0, sizeof(*w));
  w->after_ref = LUA_NOREF;
  luaL_setmetatable(L, WORK_MT);
  if (uv_mutex_init(&w->mutex) != 0) return luaL_error(L, "not enough memory");
  w->has_mutex = 1;
  w->code = lh_dump_code(L, 1, &w->len);
  lua_pushvalue(L, 2);
  w->after_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* queue_work(work, ...) -> true | fail. */
static int work_queue(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  workctx *w = check_work(L, 1);
  int n = lua_gettop(L) - 1, rc;
  lh_buf args;
  wjob *j;
  lh_check_loop(L);
  if (w->code == NULL) return luaL_argerror(L, 1, "work has no code");
  if (n > LH_XFER_MAXARGS) n = LH_XFER_MAXARGS; /* luv drops the rest */
  lh_xfer_put(L, 2, n, LH_XFER_ARGS, &args);
  j = (wjob *)calloc(1, sizeof(wjob));
  if (j == NULL || lh_sub_init(&j->sub) != 0) {
    free(j);
    lh_xfer_free(&args);
    return luaL_error(L, "not enough memory");
  }
  j->args = args;
  j->ctx = ctx;
  j->w = w;
  j->w_ref = LUA_NOREF;
  j->req.data = j;
  rc = uv_queue_work(ctx->loop, &j->req, work_cb, after_work_cb);
  if (rc < 0) {
    job_free(L, j);
    return lh_fail(L, rc);
  }
  lua_pushvalue(L, 1);
  j->w_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* w lives while queued */
  j->sub.on_exit = job_on_exit;
  lh_sub_track(L, &j->sub);
  lua_pushboolean(L, 1);
  return 1;
}

static int work_gc(lua_State *L) {
  workctx *w = check_work(L, 1);
  while (w->nidle > 0) lh_substate_close(w->idle[--w->nidle]);
  if (w->has_mutex) uv_mutex_destroy(&w->mutex);
  w->has_mutex = 0;
  free(w->code);
  w->code = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, w->after_ref);
  w->after_ref = LUA_NOREF;
  return 0;
}

static int work_tostring(lua_State *L) {
  lua_pushfstring(L, "luv_work_ctx_t: %p", (void *)check_work(L, 1));
  return 1;
}

/* }====================================================== */

static const luaL_Reg work_methods[] = {
  {"queue", work_queue},
  {NULL, NULL}
};

static const luaL_Reg work_functions[] = {
  {"new_work", work_new},
  {"queue_work", work_queue},
  {NULL, NULL}
};

void lh_work_cancel_running(lua_State *L) {
  lh_subs_cancel(L, job_on_exit);
}

void lh_work_open(lua_State *L) {
  luaL_setfuncs(L, work_functions, 0);
  luaL_newmetatable(L, WORK_MT);
  luaL_newlib(L, work_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, work_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, work_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
