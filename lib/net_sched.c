/*
** net_sched.c: the scheduler, in one place: resuming a task from C (the
** one path every event, deadline and wake-up takes), the deadline heap on
** one uv_timer, the ready queue, sleep and yield, park and wake, and the
** one check that a call may wait.
** See Copyright Notice in README.md
*/
#include <stdlib.h>

#include "net_core.h"

const char net_cancel_mark = 'c', net_drop_mark = 'd';

/* {====================================================== resume */

/* Push on L the message of the error value on top of co, lua.c style. */
static const char *error_text(lua_State *L, lua_State *co) {
  const char *msg = lua_tostring(co, -1);
  if (msg != NULL) return lua_pushstring(L, msg);
  if (luaL_callmeta(co, -1, "__tostring") && lua_isstring(co, -1)) {
    msg = lua_pushstring(L, lua_tostring(co, -1));
    lua_pop(co, 1);
    return msg;
  }
  return lua_pushfstring(L, "(error object is a %s value)",
                         luaL_typename(co, -1));
}

static void resume_anchored(lh_ctx *ctx, lua_State *co, int nargs) {
  lua_State *L = ctx->L;
  int nres, status = lua_resume(co, L, nargs, &nres);
  if (status == LUA_YIELD) {
    if (nres > 0) lua_pop(co, nres);
    return;
  }
  if (status != LUA_OK && lua_touserdata(co, -1) == lh_exit_marker()) {
    lua_settop(co, 0);
    uv_stop(ctx->loop); /* os.exit(code, true) inside a task */
    return;
  }
  if (ctx->task_finish_ref == LUA_NOREF) { /* no task module: be plain */
    if (status != LUA_OK) {
      luaL_traceback(L, co, error_text(L, co), 0);
      lh_report(lua_tostring(L, -1));
      lua_pop(L, 2);
      lh_fatal(ctx, 1);
    }
    lua_settop(co, 0);
    return;
  }
  /* Finished or failed: hand the outcome to task.lua's finish hook. */
  if (!lua_checkstack(L, nres + 4)) { /* cannot carry them: drop them */
    lua_settop(co, 0);
    nres = 0;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->task_finish_ref);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushboolean(L, status == LUA_OK);
  if (status == LUA_OK) {
    lua_xmove(co, L, nres);
    lh_call(ctx, 2 + nres); /* finish(co, true, results...) */
  } else {
    /* The message with the coroutine's own traceback, taken now, before
    ** the hook closes the coroutine; then the original error value. */
    luaL_traceback(L, co, error_text(L, co), 0);
    lua_remove(L, -2);   /* the bare message */
    lua_xmove(co, L, 1); /* the error value */
    lua_settop(co, 0);
    lh_call(ctx, 4); /* finish(co, false, traceback, errvalue) */
  }
}

/* A running coroutine must be anchored by its resumer: keep it on L. */
static void resume(lh_ctx *ctx, lua_State *co, int nargs) {
  lua_State *L = ctx->L;
  lua_checkstack(L, LUA_MINSTACK); /* see lh_push_cb */
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  resume_anchored(ctx, co, nargs);
  lua_pop(L, 1);
}

void lh_resume(lh_ctx *ctx, lua_State *co, int nargs) {
  if (lua_status(co) != LUA_YIELD) {
    lua_pop(co, nargs); /* not suspended: a stale wake-up, ignore it */
    return;
  }
  resume(ctx, co, nargs);
}

void net_resume(core *K, lua_State *co) {
  if (lua_status(co) == LUA_YIELD) resume_anchored(K->ctx, co, 0);
}

void lh_start(lh_ctx *ctx, lua_State *co, int nargs) {
  resume(ctx, co, nargs);
}

/* }====================================================== */

/* {====================================================== deadline heap */

static int tmo_less(const tmo *a, const tmo *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_put(core *K, int i, tmo *t) {
  K->heap[i] = t;
  t->idx = i;
}

static void sift_up(core *K, int i) {
  tmo *t = K->heap[i];
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!tmo_less(t, K->heap[p])) break;
    heap_put(K, i, K->heap[p]);
    i = p;
  }
  heap_put(K, i, t);
}

static void sift_down(core *K, int i) {
  tmo *t = K->heap[i];
  for (;;) {
    int l = 2 * i + 1, m;
    if (l >= K->n) break;
    m = (l + 1 < K->n && tmo_less(K->heap[l + 1], K->heap[l])) ? l + 1 : l;
    if (!tmo_less(K->heap[m], t)) break;
    heap_put(K, i, K->heap[m]);
    i = m;
  }
  heap_put(K, i, t);
}

static void fire_cb(uv_timer_t *timer);

/* Point the one uv timer at the earliest deadline. Removing a deadline
** does not re-arm (most waits end before their deadline: re-arming each
** time would cost a libuv timer operation per message); the timer may
** then fire early, find nothing due and re-arm. */
static void arm(core *K) {
  if (K->n == 0) {
    uv_timer_stop(&K->timer);
    K->armed = 0;
  } else {
    uint64_t now = uv_now(K->ctx->loop), due = K->heap[0]->due;
    uv_timer_start(&K->timer, fire_cb, due > now ? due - now : 0, 0);
    K->armed = 1;
    K->armed_due = due;
  }
}

static void tmo_del_noarm(core *K, tmo *t);

uint64_t net_now(core *K) {
  /* The loop's clock is as old as this loop iteration (or the start of
  ** the host, for a main chunk that has not waited yet): a deadline must
  ** not come early by that much. (A cheap coarse clock read.) */
  uv_update_time(K->ctx->loop);
  return uv_now(K->ctx->loop);
}

int net_tmo_add(core *K, tmo *t, tmo_fire fire, uint64_t ms) {
  return net_tmo_add_at(K, t, fire, net_now(K) + ms);
}

int net_tmo_add_at(core *K, tmo *t, tmo_fire fire, uint64_t due) {
  /* Still queued: a task closed by force (task:cancel's last resort)
  ** leaves its wait behind, and the next waiter on that socket reuses the
  ** node. Queued twice, it would stay in the heap forever (fire_cb spins)
  ** and outlive its socket. */
  if (t->idx >= 0) tmo_del_noarm(K, t);
  if (K->n == K->cap) {
    int ncap = K->cap ? 2 * K->cap : 64;
    tmo **nh = (tmo **)realloc(K->heap, ncap * sizeof(tmo *));
    if (nh == NULL) return UV_ENOMEM;
    K->heap = nh;
    K->cap = ncap;
  }
  t->due = due;
  t->seq = K->seq++;
  t->fire = fire;
  heap_put(K, K->n++, t);
  sift_up(K, t->idx);
  if (t->idx == 0 && (!K->armed || t->due < K->armed_due)) arm(K);
  return 0;
}

static void tmo_del_noarm(core *K, tmo *t) {
  int i = t->idx;
  if (i < 0) return;
  t->idx = -1;
  if (i != --K->n) {
    heap_put(K, i, K->heap[K->n]);
    sift_down(K, i);
    sift_up(K, K->heap[i]->idx);
  }
}

void net_tmo_del(core *K, tmo *t) {
  tmo_del_noarm(K, t);
  if (K->n == 0 && K->armed) arm(K); /* nothing left: let the loop end */
}

static void fire_cb(uv_timer_t *timer) {
  core *K = container_of(timer, core, timer);
  uint64_t now = uv_now(K->ctx->loop), limit = K->seq;
  K->armed = 0;
  /* Only deadlines queued before this round: a task that yields in a loop
  ** must not keep the loop from polling. */
  while (K->n > 0 && K->heap[0]->due <= now && K->heap[0]->seq < limit) {
    tmo *t = K->heap[0];
    tmo_del_noarm(K, t);
    t->fire(K, t); /* may queue t again, with a later seq */
  }
  arm(K);
  /* A deadline already due (a zero timeout set during this round) waits
  ** for the next iteration: a timer restarted with 0 inside its own
  ** callback would run again before the loop polls for I/O. */
  if (K->armed && K->armed_due <= now) uv_timer_start(timer, fire_cb, 1, 0);
}

/* }====================================================== */

/* {====================================================== anchors, cancel */

/* Anchor the running coroutine L in registry slot *ref (made once). */
void net_anchor(lua_State *L, int *ref) {
  lua_pushthread(L);
  if (*ref == LUA_NOREF || *ref == LUA_REFNIL)
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else
    lua_rawseti(L, LUA_REGISTRYINDEX, *ref);
}

void net_unanchor(lua_State *L, int ref) {
  if (ref == LUA_NOREF) return;
  lua_pushboolean(L, 0);
  lua_rawseti(L, LUA_REGISTRYINDEX, ref);
}

static int raise_cancel(lua_State *L) {
  lua_pushlightuserdata(L, CANCEL);
  return lua_error(L);
}

/* Resume values beyond base: 1 for the cancel marker, 2 for the drop
** marker, 0 for nothing. */
int net_was_cancelled(lua_State *L, int base) {
  void *m;
  if (lua_gettop(L) == base) return 0; /* a plain wake-up: no values */
  m = lua_gettop(L) > base ? lua_touserdata(L, -1) : NULL;
  lua_settop(L, base);
  return m == CANCEL ? 1 : m == DROP ? 2 : 0;
}

/* After a wait dropped its registration: raise the cancel marker, or, for
** the drop marker, stay parked with nothing registered. task:cancel sends
** the drop marker before it closes by force a task that kept swallowing
** cancels: closing it parked in a wait would leave the wait behind (its
** socket ref'd, the host kept alive). */
int net_cancel_exit(lua_State *L, int how) {
  if (how == 2) return lua_yield(L, 0);
  return raise_cancel(L);
}

/* }====================================================== */

/* {====================================================== tasks */

/* Is L one of the tasks (the registry's table of them)? */
static int is_task(lua_State *L, core *K) {
  int task = 0;
  if (K != NULL && K->tasks_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, K->tasks_ref);
    lua_pushthread(L);
    task = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
  }
  return task;
}

/* May L wait (a task that can yield)? need_task's test, not raising. */
int net_can_wait(lua_State *L, core *K) {
  return lua_isyieldable(L) && is_task(L, K);
}

/* The one check that a call may wait (net_need_task from C, need_task
** from task.lua): L is a task that can yield. Raises with the position
** of the function at level (1: the caller of the C function). */
static void need_task_at(lua_State *L, core *K, const char *what,
                         int level) {
  int task = is_task(L, K);
  if (task && lua_isyieldable(L)) return;
  luaL_where(L, level);
  if (!task)
    lua_pushfstring(L, "%s must be called from a task (the main chunk, a "
                    "handler or task.spawn), not from a callback", what);
  else
    lua_pushfstring(L, "%s cannot wait here: the task is inside a C "
                    "function (a metamethod, table.sort, string.gsub...)",
                    what);
  lua_concat(L, 2);
  lua_error(L);
}

void net_need_task(lua_State *L, core *K, const char *what) {
  need_task_at(L, K, what, 1);
}

void net_need_task_at(lua_State *L, core *K, const char *what, int level) {
  need_task_at(L, K, what, level);
}

void lh_need_task(lua_State *L, const char *what) {
  core *K;
  lua_getfield(L, LUA_REGISTRYINDEX, "net.core"); /* (see new_core) */
  K = (core *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  need_task_at(L, K, what, 1);
}

/* need_task(what, level): task.lua's blocking calls check here too. */
static int core_need_task(lua_State *L) {
  const char *what = luaL_checkstring(L, 1);
  int level = (int)luaL_optinteger(L, 2, 1);
  need_task_at(L, net_getcore(L), what, level);
  return 0;
}

static void idle_cb(uv_idle_t *idle);
static void sleep_fire(core *K, tmo *t);

/* A sleeper node from the free list, or a new one. */
static sleeper *new_sleeper(lua_State *L, core *K) {
  sleeper *s = K->free_sleepers;
  if (s != NULL) {
    K->free_sleepers = s->next;
  } else {
    s = (sleeper *)malloc(sizeof(sleeper));
    if (s == NULL) luaL_error(L, "not enough memory");
    s->ref = LUA_NOREF;
    s->t.idx = -1;
    s->all = K->all_sleepers;
    K->all_sleepers = s;
  }
  s->ready = 0;
  s->park = 0;
  return s;
}

/* Seconds (a number, not checked) to ms for a sleep: clamped to 2^62 ms
** (forever): converting a double past uint64's range is undefined
** (math.huge gave 0: no sleep at all), and due = now + ms must not wrap.
** NaN gives 0. */
static uint64_t sleep_ms(double secs) {
  return !(secs > 0) ? 0 : secs >= 0x1p62 / 1000 ? (uint64_t)1 << 62
         : (uint64_t)(secs * 1000 + 0.5);
}

static int sleep_k(lua_State *L, int status, lua_KContext kc) {
  sleeper *s = (sleeper *)kc;
  core *K = net_getcore(L);
  (void)status;
  int how = net_was_cancelled(L, 0);
  if (how) {
    if (s->co == L && s->ready) { /* the idle callback recycles it */
      s->co = NULL;
      net_unanchor(L, s->ref);
    } else if (s->co == L) { /* still queued: give the node back */
      net_tmo_del(K, &s->t);
      s->co = NULL;
      if (--K->nsleep == 0) uv_unref((uv_handle_t *)&K->timer);
      net_unanchor(L, s->ref);
      s->next = K->free_sleepers;
      K->free_sleepers = s;
    }
    return net_cancel_exit(L, how);
  }
  return 0;
}

/* sleep(seconds): seconds checked by task.lua. */
static int core_sleep(lua_State *L) {
  core *K = net_getcore(L);
  uint64_t ms = sleep_ms(luaL_checknumber(L, 1));
  sleeper *s;
  /* (called through task.lua's task.sleep and task.yield: level 2 names
  ** their caller's line) */
  need_task_at(L, K, lua_toboolean(L, 2) ? "task.yield" : "task.sleep", 2);
  s = new_sleeper(L, K);
  if (ms == 0) { /* yield: the ready queue, run after the next poll */
    s->next = NULL;
    s->ready = 1;
    if (K->rtail) K->rtail->next = s; else K->rhead = s;
    K->rtail = s;
    uv_idle_start(&K->idle, idle_cb);
    s->co = L;
    net_anchor(L, &s->ref);
    lua_settop(L, 0);
    return lua_yieldk(L, 0, (lua_KContext)s, sleep_k);
  }
  if (net_tmo_add(K, &s->t, sleep_fire, ms) < 0) {
    s->next = K->free_sleepers;
    K->free_sleepers = s;
    return luaL_error(L, "not enough memory");
  }
  s->co = L;
  if (K->nsleep++ == 0) uv_ref((uv_handle_t *)&K->timer);
  net_anchor(L, &s->ref);
  lua_settop(L, 0);
  return lua_yieldk(L, 0, (lua_KContext)s, sleep_k);
}

/* Resume the tasks that yielded before this iteration, in order; those
** that yield again run in the next one, after the loop polled for I/O. */
static void idle_cb(uv_idle_t *idle) {
  core *K = container_of(idle, core, idle);
  lua_State *L = K->ctx->L;
  sleeper *s = K->rhead;
  K->rhead = K->rtail = NULL;
  while (s != NULL) {
    sleeper *next = s->next;
    lua_State *co = s->co;
    int park = s->park;
    s->ready = 0;
    s->co = NULL;
    if (co != NULL) lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref); /* anchor */
    net_unanchor(L, s->ref);
    s->next = K->free_sleepers;
    K->free_sleepers = s;
    if (co != NULL) {
      if (park) lua_pushboolean(co, 1); /* park's result: woken */
      lh_resume(K->ctx, co, park);
      lua_pop(L, 1);
    }
    s = next;
  }
  if (K->rhead == NULL) uv_idle_stop(idle);
}

static void forget_parked(lua_State *L, core *K, int idx);

/* A sleep's deadline, or a park's (its result: false). */
static void sleep_fire(core *K, tmo *t) {
  sleeper *s = container_of(t, sleeper, t);
  lua_State *L = K->ctx->L, *co = s->co;
  int park = s->park;
  lua_checkstack(L, LUA_MINSTACK); /* see lh_push_cb */
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref); /* keep co alive meanwhile */
  if (park) forget_parked(L, K, -1);
  s->co = NULL;
  if (--K->nsleep == 0) uv_unref((uv_handle_t *)&K->timer);
  net_unanchor(L, s->ref);
  s->next = K->free_sleepers;
  K->free_sleepers = s;
  if (park) lua_pushboolean(co, 0);
  lh_resume(K->ctx, co, park);
  lua_pop(L, 1);
}

/* }====================================================== */

/* {====================================================== parking */

/*
** park and wake are what task.lua's queues and events wait with. park
** puts the running task to sleep with an optional deadline; wake(co)
** moves a parked task to the ready queue (the one task.yield uses), so
** the waker never runs the woken task inside itself: a put that wakes a
** getter returns first, and chains of wake-ups never deepen the C stack.
** The woken task runs after the next poll, in the order it was woken.
** park does not raise on a cancel: it drops its registration and
** returns the marker, so that task.lua can take the waiter off its list
** before raising it. A registry table maps each parked coroutine to its
** node, for wake.
*/

/* parked[the thread at idx] = nil */
static void forget_parked(lua_State *L, core *K, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, K->parked_ref);
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static int park_k(lua_State *L, int status, lua_KContext kc) {
  sleeper *s = (sleeper *)kc;
  core *K = net_getcore(L);
  void *m = lua_gettop(L) > 0 ? lua_touserdata(L, -1) : NULL;
  (void)status;
  if (m == CANCEL || m == DROP) {
    lua_settop(L, 0);
    if (s->co == L) {
      s->co = NULL;
      net_unanchor(L, s->ref);
      if (!s->ready) { /* still parked: give the node back */
        lua_pushthread(L);
        forget_parked(L, K, -1);
        lua_pop(L, 1);
        if (s->t.idx >= 0) {
          net_tmo_del(K, &s->t);
          if (--K->nsleep == 0) uv_unref((uv_handle_t *)&K->timer);
        }
        s->next = K->free_sleepers;
        K->free_sleepers = s;
      } /* else the idle callback recycles it */
    }
    lua_pushlightuserdata(L, m);
    return 1;
  }
  if (s->co == L) { /* a stray resume (not ours): stay parked */
    lua_settop(L, 0);
    return lua_yieldk(L, 0, kc, park_k);
  }
  return 1; /* the boolean its waker pushed */
}

/* park([seconds [, what]]): true once woken, false at the deadline (none
** when seconds is nil), the cancel or drop marker when cancelled. */
static int core_park(lua_State *L) {
  core *K = net_getcore(L);
  int timed = !lua_isnoneornil(L, 1);
  uint64_t ms = timed ? sleep_ms(luaL_checknumber(L, 1)) : 0;
  sleeper *s;
  net_need_task(L, K, luaL_optstring(L, 2, "park"));
  s = new_sleeper(L, K);
  s->park = 1;
  if (timed && net_tmo_add(K, &s->t, sleep_fire, ms) < 0) {
    s->next = K->free_sleepers;
    K->free_sleepers = s;
    return luaL_error(L, "not enough memory");
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, K->parked_ref);
  lua_pushthread(L);
  lua_pushlightuserdata(L, s);
  lua_rawset(L, -3);
  s->co = L;
  if (timed && K->nsleep++ == 0) uv_ref((uv_handle_t *)&K->timer);
  net_anchor(L, &s->ref);
  lua_settop(L, 0);
  return lua_yieldk(L, 0, (lua_KContext)s, park_k);
}

/* wake(co): queue the parked task co to run; false if co is not parked
** (or already woken). */
static int core_wake(lua_State *L) {
  core *K = net_getcore(L);
  sleeper *s;
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_rawgeti(L, LUA_REGISTRYINDEX, K->parked_ref);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TLIGHTUSERDATA) {
    lua_pushboolean(L, 0);
    return 1;
  }
  s = (sleeper *)lua_touserdata(L, -1);
  forget_parked(L, K, 1);
  if (s->t.idx >= 0) {
    net_tmo_del(K, &s->t);
    if (--K->nsleep == 0) uv_unref((uv_handle_t *)&K->timer);
  }
  s->next = NULL;
  s->ready = 1;
  if (K->rtail) K->rtail->next = s; else K->rhead = s;
  K->rtail = s;
  uv_idle_start(&K->idle, idle_cb);
  lua_pushboolean(L, 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== opener */

void net_sched_init(lua_State *L, core *K) {
  lh_ctx *ctx = K->ctx;
  lua_newtable(L);
  K->parked_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_init(ctx->loop, &K->timer);
  uv_unref((uv_handle_t *)&K->timer);
  K->timer.data = K;
  uv_idle_init(ctx->loop, &K->idle); /* ref'd: a yielding task is alive */
  K->idle.data = K;
}

void net_sched_free(core *K) {
  /* Every node, wherever it is (asleep, parked, ready, free). */
  while (K->all_sleepers) {
    sleeper *s = K->all_sleepers;
    K->all_sleepers = s->all;
    free(s);
  }
  K->rhead = K->rtail = K->free_sleepers = NULL;
  free(K->heap);
  K->heap = NULL;
  K->n = K->cap = 0;
}

/* now(): task.now, seconds of uv_hrtime. In C, not a Lua function
** calling uv.hrtime: a handler that reads the clock then needs no call
** frame deeper than its reads and writes, and a coroutine keeps every
** CallInfo it ever used but one in two (the collector frees half of the
** spare ones): 64 B more per parked handler otherwise. */
static int core_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

static const luaL_Reg sched_functions[] = {
  {"need_task", core_need_task},
  {"now", core_now},
  {"park", core_park},
  {"sleep", core_sleep},
  {"wake", core_wake},
  {NULL, NULL}
};

void net_sched_open(lua_State *L) {
  net_setfuncs(L, sched_functions);
  lua_pushlightuserdata(L, CANCEL);
  lua_setfield(L, -3, "CANCEL");
  lua_pushlightuserdata(L, DROP);
  lua_setfield(L, -3, "DROP");
}

/* }====================================================== */
