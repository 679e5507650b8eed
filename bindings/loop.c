/*
** loop.c: the event loop (run, stop, now, update_time, loop_alive, walk,
** hrtime, backend_fd, backend_timeout).
** See Copyright Notice in README.md
*/
#include "xfer.h"

static const char *const run_modes[] = {"default", "once", "nowait", NULL};

/* uv.run([mode]): "default" | "once" | "nowait". Running the loop from
** inside a callback would re-enter libuv, which it forbids: raise. In a
** thread's state (xfer.h) the host's exit stops the loop and raises. */
static int loop_run(lua_State *L) {
  static const uv_run_mode values[] = {UV_RUN_DEFAULT, UV_RUN_ONCE,
                                       UV_RUN_NOWAIT};
  lh_ctx *ctx = lh_getctx(L);
  int mode = luaL_checkoption(L, 1, "default", run_modes);
  int ret;
  if (ctx->in_run)
    return luaL_error(L, "uv.run: the loop is already running");
  if (ctx->fatal || ctx->exit_requested) { /* host is stopping */
    lua_pushboolean(L, 0);
    return 1;
  }
  ctx->in_run = 1;
  ctx->run_mode = mode;
  ctx->script_ran_loop = 1;
  ret = uv_run(ctx->loop, values[mode]);
  ctx->in_run = 0;
  if (ctx->sub && lh_sub_cancelled(ctx->sub))
    return luaL_error(L, "cancelled: the host is exiting");
  if (ctx->exit_requested) { /* os.exit(code, true): unwind to the host */
    lua_pushlightuserdata(L, lh_exit_marker());
    return lua_error(L);
  }
  if (ctx->fatal) /* an error stopped it: unwind */
    return luaL_error(L, "uv.run: stopped by an uncaught error");
  if (ret < 0) return lh_fail(L, ret);
  lua_pushboolean(L, ret != 0);
  return 1;
}

static int loop_stop(lua_State *L) {
  uv_stop(lh_getctx(L)->loop);
  return 0;
}

static int loop_alive(lua_State *L) {
  lua_pushboolean(L, uv_loop_alive(lh_getctx(L)->loop));
  return 1;
}

static int loop_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_now(lh_getctx(L)->loop));
  return 1;
}

static int loop_update_time(lua_State *L) {
  uv_update_time(lh_getctx(L)->loop);
  return 0;
}

static int loop_hrtime(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_hrtime());
  return 1;
}

static int loop_backend_fd(lua_State *L) {
  lua_pushinteger(L, uv_backend_fd(lh_getctx(L)->loop));
  return 1;
}

static int loop_backend_timeout(lua_State *L) {
  lua_pushinteger(L, uv_backend_timeout(lh_getctx(L)->loop));
  return 1;
}

/* Collect first, call after: a callback may close handles, and libuv's
** walk must not see its queue change under it. Host-internal handles
** and detached ones (the host finishes them) are not shown. */
static void collect_cb(uv_handle_t *uvh, void *arg) {
  lua_State *L = (lua_State *)arg;
  lh_handle *h = (lh_handle *)uvh->data;
  if (lh_is_internal(uvh) || h->detached ||
      (h->ref == LUA_NOREF && (h->box != NULL || uv_is_closing(uvh))))
    return; /* (a collected box: its handle is closing) */
  lh_handle_push_box(L, h); /* (made now for a handle without one) */
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int loop_walk(lua_State *L) {
  lua_Integer i, n;
  lh_check_callable(L, 1);
  lua_settop(L, 1); /* the list below is at index 2, whatever followed */
  lua_newtable(L);
  uv_walk(lh_getctx(L)->loop, collect_cb, L);
  n = (lua_Integer)lua_rawlen(L, 2);
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, 1);
    lua_rawgeti(L, 2, i);
    lua_call(L, 1, 0);
  }
  return 0;
}

/* loop_mode(): the mode of the uv.run in progress, or nil. */
static int loop_mode(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  if (!ctx->in_run) lua_pushnil(L);
  else lua_pushstring(L, run_modes[ctx->run_mode]);
  return 1;
}

/* loop_configure("block_signal", sig) | loop_configure("metrics_idle_time"):
** libuv wants it before the loop first runs; it answers EINVAL/ENOSYS. */
static int loop_configure(lua_State *L) {
  static const char *const options[] = {"block_signal", "metrics_idle_time",
                                        NULL};
  uv_loop_t *loop = lh_getctx(L)->loop;
  if (luaL_checkoption(L, 1, NULL, options) == 0)
    return lh_result(L, uv_loop_configure(loop, UV_LOOP_BLOCK_SIGNAL,
                                          lh_check_signal(L, 2)));
  return lh_result(L, uv_loop_configure(loop, UV_METRICS_IDLE_TIME));
}

/* metrics_idle_time(): nanoseconds the loop spent waiting for events,
** counted once loop_configure("metrics_idle_time") asked for it. */
static int loop_metrics_idle_time(lua_State *L) {
  lua_pushinteger(L,
    (lua_Integer)uv_metrics_idle_time(lh_getctx(L)->loop));
  return 1;
}

/*
** loop_close(): luv closes the loop, which libuv refuses (EBUSY) while a
** handle or request is alive. Here the loop belongs to the host, which
** closes it at exit and may still need it (a later require "uv", the exit
** itself): so this answers as uv_loop_close would for the script's own
** handles and requests, and 0 when none is left, closing nothing else.
*/
static void count_open_cb(uv_handle_t *uvh, void *arg) {
  if (!lh_is_internal(uvh) && !uv_is_closing(uvh) &&
      !((lh_handle *)uvh->data)->detached)
    (*(int *)arg)++;
}

static int loop_close(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  int open = 0;
  if (ctx->in_run) return lh_fail(L, UV_EBUSY);
  uv_walk(ctx->loop, count_open_cb, &open);
  if (open > 0 || uv_loop_alive(ctx->loop)) return lh_fail(L, UV_EBUSY);
  lua_pushinteger(L, 0);
  return 1;
}

static const luaL_Reg loop_functions[] = {
  {"backend_fd", loop_backend_fd},
  {"backend_timeout", loop_backend_timeout},
  {"hrtime", loop_hrtime},
  {"loop_alive", loop_alive},
  {"loop_close", loop_close},
  {"loop_configure", loop_configure},
  {"loop_mode", loop_mode},
  {"metrics_idle_time", loop_metrics_idle_time},
  {"now", loop_now},
  {"run", loop_run},
  {"stop", loop_stop},
  {"update_time", loop_update_time},
  {"walk", loop_walk},
  {NULL, NULL}
};

void lh_loop_open(lua_State *L) {
  luaL_setfuncs(L, loop_functions, 0);
}
