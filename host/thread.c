/*
** thread.c: the "luahost.thread" module: run Lua code on libuv's thread
** pool, in a fresh Lua state of its own, while the loop keeps serving.
** See Copyright Notice in README.md
**
** thread.run(fn_or_source, ...) is called from a task; it copies the code
** (a function goes by string.dump, without its upvalues) and the arguments
** (plain data: nil, booleans, numbers, strings, tables of those) into a
** job, queues it with uv_queue_work and yields. On the pool thread the job
** gets a new state with the standard libraries only (no uv, no sockets),
** runs, and copies its results (or its error with traceback) back; the
** after_work callback, on the loop thread, resumes the task through
** lh_resume with the results, or nil, err.
**
** Nothing but the job crosses threads: the two states share no memory,
** and a job is touched by one thread at a time (uv_queue_work hands it
** over), except `cancel`, which the loop sets at shutdown so that a long
** computation stops instead of holding the exit back.
*/
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "runtime.h"
#include "alloc.h"
#include "xfer.h"

#define HOOK_COUNT 10000     /* instructions between cancel checks */

/* {====================================================== copying */

/* Values cross through xfer.c (tables of plain data included); the code
** through this small buffer. */
typedef struct buf {
  char *p;
  size_t n, cap;
} buf;

/* Append len bytes; 0, or -1 when memory runs out. */
static int put_try(buf *b, const void *s, size_t len) {
  if (b->cap - b->n < len) {
    size_t cap = b->cap ? b->cap : 64;
    char *p;
    while (cap - b->n < len) cap *= 2;
    p = (char *)realloc(b->p, cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
  return 0;
}

/* }====================================================== */

/* {====================================================== jobs */

typedef struct pool pool;

typedef struct job {
  uv_work_t work;
  lh_ctx *ctx;
  pool *pool;            /* NULL once the pool is gone (shutdown) */
  struct job *prev, *next;
  int co_ref;            /* the waiting task, anchored */
  lua_State *co;
  int is_dump;           /* code is string.dump output, not source */
  buf code;
  lh_buf args, out;
  char *err;             /* the error message, when ok is 0 */
  int ok;                /* out holds results (1) or an error message */
  int done;              /* after_work is resuming the task with them */
  int detached;          /* the task went on without it (cancelled) */
  int cancel;            /* set by the loop thread, read by the pool's */
} job;

/*
** One per state, created on first use: an internal, never-started handle
** whose only job is to be closed by the host's shutdown walk, at which
** point every running job is asked to stop.
*/
struct pool {
  uv_check_t handle;     /* first: found from the handle by a cast */
  lh_internal internal;
  lh_ctx *ctx;
  job *jobs;
};

static const char pool_key = 'p';

static void pool_closed(uv_handle_t *h) {
  pool *p = (pool *)h;
  job *j;
  lua_checkstack(p->ctx->L, LUA_MINSTACK); /* see lh_push_cb */
  lua_pushnil(p->ctx->L); /* forget it: a later run makes a new one */
  lua_rawsetp(p->ctx->L, LUA_REGISTRYINDEX, &pool_key);
  for (j = p->jobs; j; j = j->next) {
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
    j->pool = NULL;
  }
  free(p);
}

void host_thread_cancel_all(lua_State *L) {
  pool *p;
  job *j;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key);
  p = (pool *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (p == NULL) return;
  for (j = p->jobs; j; j = j->next)
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
}

static pool *get_pool(lua_State *L, lh_ctx *ctx) {
  pool *p;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key);
  p = (pool *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (p != NULL) return p;
  p = (pool *)calloc(1, sizeof(pool));
  if (p == NULL) luaL_error(L, "not enough memory");
  p->internal.tag = &lh_internal_tag;
  p->internal.close_cb = pool_closed;
  p->ctx = ctx;
  uv_check_init(ctx->loop, &p->handle);
  p->handle.data = &p->internal;
  uv_unref((uv_handle_t *)&p->handle);
  lua_pushlightuserdata(L, p);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &pool_key);
  return p;
}

static void job_free(job *j) {
  free(j->code.p);
  lh_xfer_free(&j->args);
  lh_xfer_free(&j->out);
  free(j->err);
  free(j);
}

static void cancel_hook(lua_State *T, lua_Debug *ar) {
  job *j = *(job **)lua_getextraspace(T);
  (void)ar;
  if (__atomic_load_n(&j->cancel, __ATOMIC_RELAXED))
    luaL_error(T, "cancelled: the host is exiting");
}

/* lua_dump's writer: must not raise, it reports (non-zero) instead. */
static int writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  return put_try((buf *)ud, p, sz);
}

/* Inside the job's own state, protected: load the code, give upvalues
** their meaning (only _ENV survives), run it, encode what it returns. */
static int job_main(lua_State *T) {
  job *j = (job *)lua_touserdata(T, 1);
  int st, i, base, n;
  const char *name;
  lua_settop(T, 0);
  luaL_openlibs(T);
  st = luaL_loadbufferx(T, j->code.p, j->code.n,
                        j->is_dump ? "=(thread)" : "=(thread source)",
                        j->is_dump ? "b" : "t");
  if (st != LUA_OK) return lua_error(T);
  for (i = 1; (name = lua_getupvalue(T, 1, i)) != NULL; i++) {
    lua_pop(T, 1);
    if (strcmp(name, "_ENV") == 0)
      lua_pushglobaltable(T);
    else
      lua_pushnil(T); /* upvalues are not carried across */
    lua_setupvalue(T, 1, i);
  }
  lua_pushcfunction(T, lh_msghandler);
  lua_insert(T, 1);
  n = lh_xfer_push(T, &j->args);
  st = lua_pcall(T, n, LUA_MULTRET, 1);
  if (st != LUA_OK) return lua_error(T); /* message with traceback */
  base = 2;
  lh_xfer_put(T, base, lua_gettop(T) - base + 1, LH_XFER_TABLES, &j->out);
  return 0;
}

static void work_cb(uv_work_t *w) {
  job *j = (job *)w->data;
  lua_State *T = lh_state_new();
  const char *msg;
  if (T == NULL) {
    msg = "not enough memory for a thread state";
    j->err = strdup(msg);
    return;
  }
  *(job **)lua_getextraspace(T) = j;
  lua_sethook(T, cancel_hook, LUA_MASKCOUNT, HOOK_COUNT);
  lua_pushcfunction(T, job_main);
  lua_pushlightuserdata(T, j);
  if (lua_pcall(T, 1, 0, 0) == LUA_OK) {
    j->ok = 1;
  } else {
    size_t len = 0;
    const char *s = lua_tolstring(T, -1, &len);
    if (s == NULL) {
      s = "(error object is not a string)";
      len = strlen(s);
    }
    j->err = (char *)malloc(len + 1);
    if (j->err) memcpy(j->err, s, len + 1);
  }
  lh_state_close(T);
}

/* On the loop's state, protected: push the results (or nil, err). */
static int push_outcome(lua_State *L) {
  job *j = (job *)lua_touserdata(L, 1);
  lua_settop(L, 0);
  if (j->ok) return lh_xfer_push(L, &j->out);
  lua_pushnil(L);
  lua_pushstring(L, j->err ? j->err : "thread failed");
  return 2;
}

static void after_work_cb(uv_work_t *w, int status) {
  job *j = (job *)w->data;
  lh_ctx *ctx = j->ctx;
  lua_State *L = ctx->L, *co;
  int top, n, ref;
  lua_checkstack(L, LUA_MINSTACK); /* see lh_push_cb */
  if (j->pool) { /* unlink */
    if (j->prev) j->prev->next = j->next;
    else j->pool->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
  }
  if (j->detached || status != 0 || ctx->shutting_down > 1) {
    if (!j->detached) luaL_unref(L, LUA_REGISTRYINDEX, j->co_ref);
    job_free(j);
    return;
  }
  top = lua_gettop(L);
  lua_pushcfunction(L, push_outcome);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) { /* out of memory */
    lua_pushnil(L);
    lua_insert(L, -2); /* nil, message */
  }
  n = lua_gettop(L) - top;
  co = j->co;
  ref = j->co_ref;
  if (!lua_checkstack(co, n)) { /* the task's stack cannot take them all */
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushliteral(L, "thread.run: too many results");
    n = 2; /* (the yielded task has LUA_MINSTACK slots) */
  }
  lua_xmove(L, co, n);
  j->done = 1; /* read by thread_wake, which runs inside lh_resume */
  lh_resume(ctx, co, n);
  luaL_unref(L, LUA_REGISTRYINDEX, ref); /* anchored until resumed */
  job_free(j);
}

/* }====================================================== */

/* {====================================================== module */

/*
** The continuation of thread.run: the task was resumed, with the results
** (after_work set done) or by something else, such as a cancel (task.lua
** resumes it with its marker, which the caller raises). In the second
** case the job is detached: the computation is asked to stop, and its
** after_work will neither resume nor touch the task.
*/
static int thread_wake(lua_State *L, int status, lua_KContext k) {
  job *j = (job *)k;
  (void)status;
  if (!j->done) {
    j->detached = 1;
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
    luaL_unref(L, LUA_REGISTRYINDEX, j->co_ref);
  }
  return lua_gettop(L); /* whatever the resume passed */
}

/* Protected: copy the code (1 = job, 2 = fn or source) and the args. */
static int thread_copy_in(lua_State *L) {
  job *j = (job *)lua_touserdata(L, 1);
  int n = lua_gettop(L) - 2;
  if (lua_type(L, 2) == LUA_TFUNCTION) {
    j->is_dump = 1;
    lua_pushvalue(L, 2);
    if (lua_dump(L, writer, &j->code, 0) != 0)
      return luaL_error(L, "cannot dump the function");
    lua_pop(L, 1);
  } else {
    size_t len;
    const char *src = lua_tolstring(L, 2, &len);
    if (put_try(&j->code, src, len) != 0)
      return luaL_error(L, "not enough memory");
  }
  lh_xfer_put(L, 3, n, LH_XFER_TABLES, &j->args);
  return 0;
}


/*
** thread.run(fn | source, ...) -> results... | nil, err. Must be called
** from a task (it yields it); validates and copies everything before it
** queues anything, so a bad argument raises with nothing left behind.
*/
static int thread_run(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  int n = lua_gettop(L) - 1, st;
  job *j;
  pool *p;
  int t = lua_type(L, 1);
  luaL_argexpected(L, t == LUA_TFUNCTION || t == LUA_TSTRING, 1,
                   "function or string");
  lh_need_task(L, "thread.run");
  if (t == LUA_TFUNCTION && lua_iscfunction(L, 1))
    return luaL_argerror(L, 1, "a C function cannot run in a thread");
  p = get_pool(L, ctx);
  j = (job *)calloc(1, sizeof(job));
  if (j == NULL) return luaL_error(L, "not enough memory");
  /* Copying may raise (bad value, memory): do it protected, so that j
  ** is freed on that path; then re-raise. */
  lua_pushcfunction(L, thread_copy_in);
  lua_pushlightuserdata(L, j);
  lua_rotate(L, 1, 2); /* copy_in, j, fn, args... */
  st = lua_pcall(L, n + 2, 0, 0);
  if (st != LUA_OK) {
    job_free(j);
    return lua_error(L);
  }
  j->ctx = ctx;
  j->work.data = j;
  st = uv_queue_work(ctx->loop, &j->work, work_cb, after_work_cb);
  if (st != 0) {
    job_free(j);
    return lh_fail(L, st);
  }
  lua_pushthread(L);
  j->co = L;
  j->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  j->pool = p;
  j->next = p->jobs;
  if (p->jobs) p->jobs->prev = j;
  p->jobs = j;
  return lua_yieldk(L, 0, (lua_KContext)j, thread_wake);
}

static const luaL_Reg thread_functions[] = {
  {"run", thread_run},
  {NULL, NULL}
};

int luaopen_luahost_thread(lua_State *L) {
  luaL_newlib(L, thread_functions);
  return 1;
}

/* }====================================================== */
