/*
** thread.c: luv's threads: new_thread, thread_join, thread_self,
** thread_equal (and their methods, __eq, __tostring).
** See Copyright Notice in README.md
**
** new_thread runs its entry (a function, dumped, or source) on a thread of
** its own, in a substate (xfer.h): standard libraries and uv with a loop
** of its own. The arguments are copied as luv copies them: nil, booleans,
** numbers, strings, light userdata and async handles, at most 9 of them.
** An error in the entry is reported on stderr and ends that thread only.
**
** An lthread belongs to the loop thread; the thread it runs reads its
** code and arguments and, at its end, sets `done`. It is freed once it is
** joined and no Lua value points at it. A thread whose value was collected
** before it ended is joined later: by the next new_thread once it is done,
** or at host exit, which first asks it to stop (lh_sub_cancel).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xfer.h"

#define THREAD_MT "uv_thread"

typedef struct lthread {
  lh_sub sub;            /* first: found from the lh_sub by a cast */
  uv_thread_t tid;
  char *code;
  size_t len;
  lh_buf args;
  int done;              /* atomic: the thread has finished */
  int started, joined;
  int owned;             /* a box points here */
} lthread;

/* The userdata: a thread id, and the lthread when new_thread made it
** (NULL for the value thread_self returns). */
typedef struct tbox {
  uv_thread_t tid;
  lthread *t;
} tbox;

static void thread_free(lthread *t) {
  lh_sub_untrack(&t->sub);
  lh_sub_destroy(&t->sub);
  lh_xfer_free(&t->args);
  free(t->code);
  free(t);
}

static void thread_join_now(lthread *t) {
  if (t->started && !t->joined) uv_thread_join(&t->tid);
  t->joined = 1;
  lh_sub_untrack(&t->sub);
}

/* {====================================================== the thread */

/* In the thread's own state, protected: load, take the arguments, run. */
static int thread_main(lua_State *T) {
  lthread *t = (lthread *)lua_touserdata(T, 1);
  int n;
  lua_settop(T, 0);
  lua_pushcfunction(T, lh_msghandler);
  if (lh_load_code(T, t->code, t->len, "=thread") != LUA_OK)
    return lua_error(T);
  n = lh_xfer_push(T, &t->args);
  if (lua_pcall(T, n, 0, 1) != LUA_OK) return lua_error(T);
  return 0;
}

static void thread_entry(void *arg) {
  lthread *t = (lthread *)arg;
  lua_State *T = lh_substate_open(&t->sub);
  if (T == NULL) {
    lh_report("uncaught error in thread: not enough memory for its state");
  } else {
    lua_pushcfunction(T, thread_main);
    lua_pushlightuserdata(T, t);
    if (lua_pcall(T, 1, 0, 0) != LUA_OK &&
        lua_touserdata(T, -1) != lh_exit_marker()) {
      const char *msg = lua_tostring(T, -1);
      lua_pushfstring(T, "uncaught error in thread: %s",
                      msg ? msg : "(error object is not a string)");
      lh_report(lua_tostring(T, -1));
    }
    lh_substate_close(T);
  }
  __atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
}

/* }====================================================== */

/* {====================================================== functions */

static tbox *check_thread(lua_State *L, int idx) {
  return (tbox *)luaL_checkudata(L, idx, THREAD_MT);
}

/* At host exit (after the cancel request): wait for it. */
static void thread_on_exit(lh_sub *s) {
  lthread *t = (lthread *)s;
  thread_join_now(t);
  if (!t->owned) thread_free(t);
}

/* Join and free the threads whose value is gone and that have ended. */
static void reap(lh_sub *s) {
  while (s != NULL) {
    lh_sub *next = s->next;
    if (s->on_exit == thread_on_exit) {
      lthread *t = (lthread *)s;
      if (!t->owned && __atomic_load_n(&t->done, __ATOMIC_ACQUIRE)) {
        thread_join_now(t);
        thread_free(t);
      }
    }
    s = next;
  }
}

/* A thread runs a whole Lua state: it needs this much stack whatever it
** was asked (with less, 1 to 128 KiB, starting it or a deep pcall chain
** crashed the process; at 256 KiB Lua's own C-call limit, "C stack
** overflow", comes first). */
#define THREAD_STACK_MIN (256 * 1024)

/* new_thread([options,] entry, ...) -> thread. options.stack_size: bytes
** (0 or nil: libuv's default; at least THREAD_STACK_MIN). */
static int thread_new(lua_State *L) {
  int first = 1, n, rc;
  uv_thread_options_t opts;
  tbox *box;
  lthread *t;
  opts.flags = UV_THREAD_NO_FLAGS;
  opts.stack_size = 0;
  if (lua_type(L, 1) == LUA_TTABLE) {
    first = 2;
    if (lua_getfield(L, 1, "stack_size") != LUA_TNIL) {
      lua_Integer size;
      int isint;
      size = lua_tointegerx(L, -1, &isint);
      if (!isint || size < 0)
        return luaL_argerror(L, 1,
                             "stack_size must be a non-negative integer");
      if (size > 0 && size < THREAD_STACK_MIN) size = THREAD_STACK_MIN;
      opts.flags |= UV_THREAD_HAS_STACK_SIZE;
      opts.stack_size = (size_t)size;
    }
    lua_pop(L, 1);
  }
  luaL_argexpected(L, lua_type(L, first) == LUA_TFUNCTION ||
                   lua_type(L, first) == LUA_TSTRING, first,
                   "function or string");
  n = lua_gettop(L) - first;
  if (n > LH_XFER_MAXARGS) n = LH_XFER_MAXARGS; /* luv drops the rest */
  /* The box first: whatever raises below, its __gc frees what is made. */
  box = (tbox *)lua_newuserdatauv(L, sizeof(tbox), 0);
  memset(box, 0, sizeof(*box));
  luaL_setmetatable(L, THREAD_MT);
  t = (lthread *)calloc(1, sizeof(lthread));
  if (t == NULL || lh_sub_init(&t->sub) != 0) {
    free(t);
    return luaL_error(L, "not enough memory");
  }
  t->owned = 1;
  box->t = t;
  t->code = lh_dump_code(L, first, &t->len);
  lh_xfer_put(L, first + 1, n, LH_XFER_ARGS, &t->args);
  t->sub.on_exit = thread_on_exit;
  lh_sub_track(L, &t->sub);
  reap(t->sub.next);
  rc = uv_thread_create_ex(&t->tid, &opts, thread_entry, t);
  if (rc < 0) {
    lh_sub_untrack(&t->sub);
    return lh_fail(L, rc); /* the box's __gc frees t */
  }
  t->started = 1;
  box->tid = t->tid;
  return 1;
}

static int thread_gc(lua_State *L) {
  tbox *box = check_thread(L, 1);
  lthread *t = box->t;
  box->t = NULL;
  if (t == NULL) return 0;
  t->owned = 0;
  if (!t->started) thread_free(t);
  else if (t->joined || __atomic_load_n(&t->done, __ATOMIC_ACQUIRE)) {
    thread_join_now(t);
    thread_free(t);
  } /* else: still running; joined by reap or at host exit */
  return 0;
}

/* thread_join(thread) -> true | fail. Waits for the thread to end. Only
** threads made by new_thread can be joined; joining twice is harmless. */
static int thread_join(lua_State *L) {
  tbox *box = check_thread(L, 1);
  lthread *t = box->t;
  if (t == NULL) return lh_fail(L, UV_EINVAL); /* from thread_self */
  thread_join_now(t);
  lua_pushboolean(L, 1);
  return 1;
}

static int thread_self(lua_State *L) {
  tbox *box = (tbox *)lua_newuserdatauv(L, sizeof(tbox), 0);
  memset(box, 0, sizeof(*box));
  box->tid = uv_thread_self();
  luaL_setmetatable(L, THREAD_MT);
  return 1;
}

static int thread_equal(lua_State *L) {
  tbox *a = check_thread(L, 1), *b = check_thread(L, 2);
  lua_pushboolean(L, uv_thread_equal(&a->tid, &b->tid));
  return 1;
}

/* __eq: Lua calls it when either side is a thread value, the other may be
** any userdata (a handle): that is unequal, not an error. */
static int thread_eq(lua_State *L) {
  tbox *a = (tbox *)luaL_testudata(L, 1, THREAD_MT);
  tbox *b = (tbox *)luaL_testudata(L, 2, THREAD_MT);
  lua_pushboolean(L, a && b && uv_thread_equal(&a->tid, &b->tid));
  return 1;
}

static int thread_tostring(lua_State *L) {
  tbox *box = check_thread(L, 1);
  lua_pushfstring(L, "uv_thread_t: %p", (void *)(uintptr_t)box->tid);
  return 1;
}

/* }====================================================== */

static const luaL_Reg thread_methods[] = {
  {"equal", thread_equal},
  {"join", thread_join},
  {NULL, NULL}
};

static const luaL_Reg thread_functions[] = {
  {"new_thread", thread_new},
  {"thread_equal", thread_equal},
  {"thread_join", thread_join},
  {"thread_self", thread_self},
  {NULL, NULL}
};

/* Push the thread metatable, made on first use: a substate may receive a
** thread value before its code has loaded uv. */
static void thread_mt(lua_State *L) {
  if (luaL_newmetatable(L, THREAD_MT)) {
    luaL_newlib(L, thread_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, thread_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, thread_eq);
    lua_setfield(L, -2, "__eq");
    lua_pushcfunction(L, thread_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

int lh_thread_get(lua_State *L, int idx, uv_thread_t *tid) {
  tbox *box = (tbox *)luaL_testudata(L, idx, THREAD_MT);
  if (box == NULL) return 0;
  *tid = box->tid;
  return 1;
}

void lh_thread_push(lua_State *L, uv_thread_t tid) {
  tbox *box = (tbox *)lua_newuserdatauv(L, sizeof(tbox), 0);
  memset(box, 0, sizeof(*box));
  box->tid = tid;
  thread_mt(L);
  lua_setmetatable(L, -2);
}

void lh_thread_open(lua_State *L) {
  luaL_setfuncs(L, thread_functions, 0);
  thread_mt(L);
  lua_pop(L, 1);
}
