/*
** runtime.c: the state, the embedded modules, the main task, the loop
** driver and the orderly shutdown (STYLE practice 10).
** See Copyright Notice in README.md
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "runtime.h"
#include "alloc.h"
#include "blocks.h"
#include "http_core.h"
#include "netcore.h"
#include "xfer.h"

int luaopen_luahost(lua_State *L);
int luaopen_tls(lua_State *L);

/* {====================================================== state */

/* Loader for an embedded module: upvalue 1 is its index in host_modules. */
static int load_embedded(lua_State *L) {
  const host_module *m = &host_modules[lua_tointeger(L,
                                                     lua_upvalueindex(1))];
  if (luaL_loadbuffer(L, m->source, m->size, m->chunkname) != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, m->name);
  lua_getfield(L, LUA_REGISTRYINDEX, HOST_PRIVATE);
  lua_call(L, 2, 1);
  return 1;
}

void host_push_task_hook(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "task");
  lua_call(L, 1, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, HOST_PRIVATE);
  lua_getfield(L, -1, "task");
  luaL_checktype(L, -1, LUA_TTABLE);
  lua_getfield(L, -1, name);
  lua_replace(L, -3); /* the hook where the private table was */
  lua_pop(L, 1);
}

/* require "luv" is require "uv": one module, one table. */
static int load_luv(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "uv");
  lua_call(L, 1, 1);
  return 1;
}

/*
** os.exit(code [, close]). Without close it exits at once, as Lua's does.
** With close it must not lua_close from inside a callback (luv #599): it
** records the code and raises a marker that unwinds to the host, which
** then stops the loop and shuts down in order.
*/
static int host_os_exit(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  int status;
  if (lua_isboolean(L, 1))
    status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else
    status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  if (!lua_toboolean(L, 2)) {
    /* libuv joins its pool's threads at exit: a work item spinning in Lua
    ** would keep the process from ending. Those of this host are asked to
    ** stop first (they raise "cancelled" at their next check, and end). */
    if (ctx->sub == NULL) {
      lh_work_cancel_running(L);
      host_thread_cancel_all(L);
    }
    fflush(NULL);
    exit(status);
  }
  ctx->exit_code = status;
  ctx->exit_requested = 1;
  uv_stop(ctx->loop);
  lua_pushlightuserdata(L, lh_exit_marker());
  return lua_error(L);
}

/* The C modules built into the binary, preloaded by name. */
static const luaL_Reg c_modules[] = {
  {"http.core", luaopen_http_core},
  {"luahost", luaopen_luahost},
  {"luv", load_luv},
  {"tls", luaopen_tls},
  {"uv", luaopen_uv},
  {NULL, NULL}
};

/* LUAHOST_SYSTEM_SOCKET=1: require "socket" finds the system LuaSocket
** (blocking) instead of the embedded one that parks only the task. */
static int system_socket(const char *name) {
  const char *v = getenv("LUAHOST_SYSTEM_SOCKET");
  if (v == NULL || strcmp(v, "1") != 0) return 0;
  return strcmp(name, "socket") == 0 || strncmp(name, "socket.", 7) == 0;
}

lua_State *host_newstate(lh_ctx *ctx) {
  lua_State *L = lh_state_new();
  int i;
  if (L == NULL) return NULL;
  lh_setctx(L, ctx);
  ctx->L = L;
  luaL_openlibs(L);
  host_private_lib(L);
  lua_setfield(L, LUA_REGISTRYINDEX, HOST_PRIVATE);
  lua_getglobal(L, "os");
  lua_pushcfunction(L, host_os_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (i = 0; c_modules[i].name != NULL; i++) {
    lua_pushcfunction(L, c_modules[i].func);
    lua_setfield(L, -2, c_modules[i].name);
  }
  for (i = 0; host_modules[i].name != NULL; i++) {
    if (system_socket(host_modules[i].name)) continue;
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, host_modules[i].name);
  }
  lua_pop(L, 1);
  return L;
}

/* }====================================================== */

/* {====================================================== calls */

int host_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) msg = "(error object is not a string)";
    lh_report(msg);
    lua_pop(L, 1);
  }
  return status;
}

int host_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg; /* function index */
  int status;
  lua_pushcfunction(L, lh_msghandler);
  lua_insert(L, base); /* put it under function and args */
  status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base); /* remove message handler from the stack */
  return status;
}

/* }====================================================== */

/* {====================================================== main task */

/*
** The steps the command line asked for (-e, -l, the script, the REPL) run
** in order inside one coroutine, so any of them may block. Each step is a
** table {fn, args..., n = count of args}. Written in C with a continuation
** so that tracebacks show a script as "in main chunk".
*/
static int run_steps_k(lua_State *L, int status, lua_KContext done) {
  (void)status;
  for (;;) {
    int i, n;
    lua_settop(L, 1); /* the steps table */
    if (lua_rawgeti(L, 1, (lua_Integer)done + 1) != LUA_TTABLE) return 0;
    lua_getfield(L, 2, "n");
    n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n + 1, "too many arguments");
    for (i = 1; i <= n + 1; i++) lua_rawgeti(L, 2, i);
    done++;
    lua_callk(L, n, 0, done, run_steps_k);
  }
}

static int run_steps(lua_State *L) {
  return run_steps_k(L, LUA_OK, 0);
}

/* task.lua's finish and adopt hooks (run protected: requiring task can
** fail). */
static int push_task_hooks(lua_State *L) {
  host_push_task_hook(L, "finish");
  host_push_task_hook(L, "adopt");
  return 2;
}

void host_start_main(lh_ctx *ctx, lua_State *L) {
  lua_State *co;
  int steps = lua_gettop(L);
  /* task.lua owns task bookkeeping; it hands us its finish hook. */
  lua_pushcfunction(L, push_task_hooks);
  if (host_docall(L, 0, 2) != LUA_OK) {
    host_report(L, LUA_ERRRUN);
    lh_fatal(ctx, 1);
    lua_settop(L, steps - 1);
    return;
  }
  lua_insert(L, -2); /* adopt, finish */
  ctx->task_finish_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  co = lua_newthread(L);
  lua_pushvalue(L, -2); /* adopt(co, true) anchors co */
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_call(L, 2, 0);
  lua_pushcfunction(co, run_steps);
  lua_pushvalue(L, steps);
  lua_xmove(L, co, 1);
  /* co stays on L's stack while it runs: a running coroutine must be
  ** anchored by its resumer. Later, task.lua holds the main task. */
  lh_start(ctx, co, 1);
  lua_settop(L, steps - 1); /* drop steps, adopt and co */
}

/* }====================================================== */

/* {====================================================== loop */

void host_run_loop(lh_ctx *ctx) {
  /* A luv-style script that ran the loop itself is done when its main
  ** chunk is; otherwise run until nothing referenced is alive. */
  if (ctx->fatal || ctx->exit_requested) return;
  if (ctx->script_ran_loop && ctx->main_done) return;
  ctx->in_run = 1;
  ctx->run_mode = UV_RUN_DEFAULT;
  uv_run(ctx->loop, UV_RUN_DEFAULT);
  ctx->in_run = 0;
}

static void close_walk_cb(uv_handle_t *uvh, void *arg) {
  (void)arg;
  if (uv_is_closing(uvh)) return;
  if (uvh->data == NULL)
    uv_close(uvh, NULL);
  else if (lh_is_internal(uvh))
    uv_close(uvh, ((lh_internal *)uvh->data)->close_cb);
  else
    lh_handle_close((lh_handle *)uvh->data);
}

int host_shutdown(lh_ctx *ctx, lua_State *L) {
  int i;
  /* Close everything, then run so the close callbacks reach a live Lua
  ** state; callbacks may open new handles, so repeat, bounded. */
  ctx->shutting_down = 1;
  for (i = 0; i < 16; i++) { /* a pending uv_stop makes a run return at
                                once: hence the repetition */
    uv_walk(ctx->loop, close_walk_cb, NULL);
    if (!uv_run(ctx->loop, UV_RUN_DEFAULT) && !uv_loop_alive(ctx->loop))
      break;
  }
  ctx->shutting_down = 2; /* from here on, no Lua callback runs */
  for (i = 0; i < 4; i++) {
    uv_walk(ctx->loop, close_walk_cb, NULL);
    if (!uv_run(ctx->loop, UV_RUN_DEFAULT) && !uv_loop_alive(ctx->loop))
      break;
  }
  if (uv_loop_close(ctx->loop) != 0)
    lh_report("warning: the loop still had live handles at exit");
  ctx->shutting_down = 3; /* (lua_close's finalizers: lh_check_loop) */
  lh_state_close(L);
  lh_blocks_close(ctx);
  return ctx->exit_code;
}

/* }====================================================== */

/* {====================================================== substates */

/*
** A substate (xfer.h) is one block: its context, its loop, and the
** wake-up through which the loop thread stops it at host exit. It is
** shut down exactly as the host's own state is (host_shutdown).
*/
typedef struct substate {
  lh_ctx ctx;            /* first: found from the context by a cast */
  uv_loop_t loop;
  uv_async_t wake;
  lh_internal wake_internal;
} substate;

#define HOOK_COUNT 10000     /* instructions between cancel checks */

static void cancel_hook(lua_State *T, lua_Debug *ar) {
  lh_ctx *ctx = lh_getctx(T);
  (void)ar;
  if (ctx->sub && lh_sub_cancelled(ctx->sub))
    luaL_error(T, "cancelled: the host is exiting");
}

static void wake_cb(uv_async_t *a) {
  uv_stop(a->loop); /* uv.run sees the cancel flag and raises */
}

static void detach(substate *st) {
  lh_sub *s = st->ctx.sub;
  if (s == NULL) return;
  uv_mutex_lock(&s->mutex);
  s->wake = NULL;
  uv_mutex_unlock(&s->mutex);
  st->ctx.sub = NULL;
}

static void wake_closed(uv_handle_t *h) {
  detach((substate *)h->loop->data);
}

void lh_substate_attach(lua_State *T, lh_sub *s) {
  substate *st = (substate *)lh_getctx(T);
  st->ctx.sub = s;
  uv_mutex_lock(&s->mutex);
  s->wake = &st->wake;
  uv_mutex_unlock(&s->mutex);
}

void lh_substate_detach(lua_State *T) {
  detach((substate *)lh_getctx(T));
}

lua_State *lh_substate_open(lh_sub *s) {
  substate *st = (substate *)calloc(1, sizeof(substate));
  lua_State *T;
  if (st == NULL) return NULL;
  if (uv_loop_init(&st->loop) != 0) {
    free(st);
    return NULL;
  }
  st->loop.data = st;
  st->ctx.loop = &st->loop;
  st->ctx.task_finish_ref = LUA_NOREF;
  st->ctx.callback_errors_fatal = 1;
  T = host_newstate(&st->ctx);
  if (T == NULL || uv_async_init(&st->loop, &st->wake, wake_cb) != 0) {
    if (T) lh_state_close(T);
    uv_loop_close(&st->loop);
    free(st);
    return NULL;
  }
  st->wake_internal.tag = &lh_internal_tag;
  st->wake_internal.close_cb = wake_closed;
  st->wake.data = &st->wake_internal;
  uv_unref((uv_handle_t *)&st->wake);
  if (s != NULL) lh_substate_attach(T, s);
  lua_sethook(T, cancel_hook, LUA_MASKCOUNT, HOOK_COUNT);
  return T;
}

void lh_substate_close(lua_State *T) {
  substate *st = (substate *)lh_getctx(T);
  host_shutdown(&st->ctx, T);
  free(st);
}

/* }====================================================== */
