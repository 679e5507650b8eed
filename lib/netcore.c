/*
** netcore.c: the C core of net and task ("net.core"): the deadline heap
** behind task.sleep and every net timeout, and the hot path of sockets.
** See Copyright Notice in README.md
**
** A blocking call parks the running task with lua_yieldk and returns from
** its continuation; the libuv callback that completes the wait resumes the
** task directly (lh_resume) with no values: the continuation re-reads the
** state it needs from the connection. A task is cancelled by resuming it
** with the cancel marker (net.core.CANCEL): every continuation then drops
** its wait (heap entry, parked slot, request) and raises the marker.
**
** Sections:
**   core      - per-state data, the deadline heap on one uv_timer;
**   tasks     - sleep, yield, the "inside a task" check;
**   parking   - park and wake, for task.lua's queues and events;
**   conn      - the socket object shared by streams, servers and udp;
**   read      - buffered input, io.read formats, recv;
**   write     - uv_try_write first, queue the rest, backpressure;
**   server    - listen, accept;
**   connect   - tcp and pipe connect;
**   dns       - getaddrinfo / getnameinfo without blocking the loop;
**   udp       - datagrams, a bounded receive queue;
**   signals   - wait_signal and on_signal.
*/
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common.h"
#include "netcore.h"

#define RBUF_SIZE 65536        /* the shared read buffer */
#define RHWM (256 * 1024)      /* stop reading when this much is unread */
#define UDP_QMAX 64            /* datagrams queued while nobody reads */
#define LINGER_MS 10000        /* close(): time left to send queued data */
#define MAX_FORMATS 200

static const char cancel_mark = 'c', drop_mark = 'd';
#define CANCEL ((void *)&cancel_mark)
#define DROP ((void *)&drop_mark)

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* {====================================================== core */

enum { TMO_SLEEP, TMO_RD, TMO_WR, TMO_LINGER, TMO_DNS };

typedef struct tmo {    /* one deadline in the heap */
  uint64_t due, seq;
  int idx;              /* heap position, -1 when not queued */
  int kind;
} tmo;

typedef struct sleeper {
  tmo t;
  lua_State *co;
  int ref;              /* registry slot anchoring co while it sleeps */
  int ready;            /* in the ready queue (yield), not in the heap */
  int park;             /* core.park: resumed with true (woken) or false
                           (its deadline), see the parking section */
  struct sleeper *next; /* free list or ready queue */
  struct sleeper *all;  /* every node ever made, freed with the core */
} sleeper;

typedef struct core {
  lh_internal in;       /* first: the handles' data; uv.walk skips them */
  uv_timer_t timer;
  uv_idle_t idle;       /* runs the ready queue, once per loop iteration */
  sleeper *rhead, *rtail; /* tasks that yielded, in order */
  lh_ctx *ctx;
  tmo **heap;
  int n, cap;
  uint64_t seq;
  int tasks_ref;        /* task.lua's coroutine -> task table */
  int borrowing;        /* rbuf is lent to a conn being resumed */
  int armed;            /* the timer is started, for armed_due */
  int nsleep;           /* sleeping tasks: only they need the timer ref'd
                           (other waits keep their own handle ref'd) */
  uint64_t armed_due;
  sleeper *free_sleepers, *all_sleepers;
  int parked_ref;       /* parked coroutine -> its sleeper (core.park) */
  size_t maxline, hwm;  /* defaults, set by net.lua */
  char rbuf[RBUF_SIZE];
} core;

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
static int tmo_add_at(core *K, tmo *t, int kind, uint64_t due);

static uint64_t fresh_now(core *K) {
  /* The loop's clock is as old as this loop iteration (or the start of
  ** the host, for a main chunk that has not waited yet): a deadline must
  ** not come early by that much. (A cheap coarse clock read.) */
  uv_update_time(K->ctx->loop);
  return uv_now(K->ctx->loop);
}

static int tmo_add(core *K, tmo *t, int kind, uint64_t ms) {
  return tmo_add_at(K, t, kind, fresh_now(K) + ms);
}

static int tmo_add_at(core *K, tmo *t, int kind, uint64_t due) {
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
  t->kind = kind;
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

static void tmo_del(core *K, tmo *t) {
  tmo_del_noarm(K, t);
  if (K->n == 0 && K->armed) arm(K); /* nothing left: let the loop end */
}

static void fire(core *K, tmo *t);

static void fire_cb(uv_timer_t *timer) {
  core *K = container_of(timer, core, timer);
  uint64_t now = uv_now(K->ctx->loop), limit = K->seq;
  K->armed = 0;
  /* Only deadlines queued before this round: a task that yields in a loop
  ** must not keep the loop from polling. */
  while (K->n > 0 && K->heap[0]->due <= now && K->heap[0]->seq < limit) {
    tmo *t = K->heap[0];
    tmo_del_noarm(K, t);
    fire(K, t);
  }
  arm(K);
  /* A deadline already due (a zero timeout set during this round) waits
  ** for the next iteration: a timer restarted with 0 inside its own
  ** callback would run again before the loop polls for I/O. */
  if (K->armed && K->armed_due <= now) uv_timer_start(timer, fire_cb, 1, 0);
}

/* Anchor the running coroutine L in registry slot *ref (made once). */
static void anchor(lua_State *L, int *ref) {
  lua_pushthread(L);
  if (*ref == LUA_NOREF || *ref == LUA_REFNIL)
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else
    lua_rawseti(L, LUA_REGISTRYINDEX, *ref);
}

static void unanchor(lua_State *L, int ref) {
  if (ref == LUA_NOREF) return;
  lua_pushboolean(L, 0);
  lua_rawseti(L, LUA_REGISTRYINDEX, ref);
}

static core *getcore(lua_State *L) {
  return (core *)lua_touserdata(L, lua_upvalueindex(1));
}

/* The error strings of the high-level API: short and stable. */
static const char *errname(int status) {
  switch (status) {
    case UV_EOF: return "closed";
    case UV_ETIMEDOUT: return "timeout";
    case UV_EAI_NONAME: case UV_EAI_NODATA: case UV_EAI_AGAIN:
    case UV_EAI_FAIL:
      return "ENOTFOUND";
    default: return uv_err_name(status);
  }
}

static int fail_str(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

static int fail_st(lua_State *L, int status) {
  return fail_str(L, errname(status));
}

static int raise_cancel(lua_State *L) {
  lua_pushlightuserdata(L, CANCEL);
  return lua_error(L);
}

/* Resume values beyond base: 1 for the cancel marker, 2 for the drop
** marker, 0 for nothing. */
static int was_cancelled(lua_State *L, int base) {
  void *m = lua_gettop(L) > base ? lua_touserdata(L, -1) : NULL;
  lua_settop(L, base);
  return m == CANCEL ? 1 : m == DROP ? 2 : 0;
}

/* After a wait dropped its registration: raise the cancel marker, or, for
** the drop marker, stay parked with nothing registered. task:cancel sends
** the drop marker before it closes by force a task that kept swallowing
** cancels: closing it parked in a wait would leave the wait behind (its
** socket ref'd, the host kept alive). */
static int cancel_exit(lua_State *L, int how) {
  if (how == 2) return lua_yield(L, 0);
  return raise_cancel(L);
}

/* }====================================================== */

/* {====================================================== tasks */

static void need_task(lua_State *L, core *K, const char *what) {
  int task = 0;
  if (K->tasks_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, K->tasks_ref);
    lua_pushthread(L);
    task = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
  }
  if (!task)
    luaL_error(L, "%s must be called from a task (the main chunk, a "
               "handler or task.spawn), not from a callback", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s cannot wait here: the task is inside a C function "
               "(a metamethod, table.sort, string.gsub...)", what);
}

static void idle_cb(uv_idle_t *idle);

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
  core *K = getcore(L);
  (void)status;
  int how = was_cancelled(L, 0);
  if (how) {
    if (s->co == L && s->ready) { /* the idle callback recycles it */
      s->co = NULL;
      unanchor(L, s->ref);
    } else if (s->co == L) { /* still queued: give the node back */
      tmo_del(K, &s->t);
      s->co = NULL;
      if (--K->nsleep == 0) uv_unref((uv_handle_t *)&K->timer);
      unanchor(L, s->ref);
      s->next = K->free_sleepers;
      K->free_sleepers = s;
    }
    return cancel_exit(L, how);
  }
  return 0;
}

/* sleep(seconds): seconds checked by task.lua. */
static int core_sleep(lua_State *L) {
  core *K = getcore(L);
  uint64_t ms = sleep_ms(luaL_checknumber(L, 1));
  sleeper *s;
  need_task(L, K, lua_toboolean(L, 2) ? "task.yield" : "task.sleep");
  s = new_sleeper(L, K);
  if (ms == 0) { /* yield: the ready queue, run after the next poll */
    s->next = NULL;
    s->ready = 1;
    if (K->rtail) K->rtail->next = s; else K->rhead = s;
    K->rtail = s;
    uv_idle_start(&K->idle, idle_cb);
    s->co = L;
    anchor(L, &s->ref);
    lua_settop(L, 0);
    return lua_yieldk(L, 0, (lua_KContext)s, sleep_k);
  }
  if (tmo_add(K, &s->t, TMO_SLEEP, ms) < 0) {
    s->next = K->free_sleepers;
    K->free_sleepers = s;
    return luaL_error(L, "not enough memory");
  }
  s->co = L;
  if (K->nsleep++ == 0) uv_ref((uv_handle_t *)&K->timer);
  anchor(L, &s->ref);
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
    unanchor(L, s->ref);
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
static void wake_sleeper(core *K, sleeper *s) {
  lua_State *L = K->ctx->L, *co = s->co;
  int park = s->park;
  lua_checkstack(L, LUA_MINSTACK); /* see lh_push_cb */
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref); /* keep co alive meanwhile */
  if (park) forget_parked(L, K, -1);
  s->co = NULL;
  if (--K->nsleep == 0) uv_unref((uv_handle_t *)&K->timer);
  unanchor(L, s->ref);
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
  core *K = getcore(L);
  void *m = lua_gettop(L) > 0 ? lua_touserdata(L, -1) : NULL;
  (void)status;
  if (m == CANCEL || m == DROP) {
    lua_settop(L, 0);
    if (s->co == L) {
      s->co = NULL;
      unanchor(L, s->ref);
      if (!s->ready) { /* still parked: give the node back */
        lua_pushthread(L);
        forget_parked(L, K, -1);
        lua_pop(L, 1);
        if (s->t.idx >= 0) {
          tmo_del(K, &s->t);
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
  core *K = getcore(L);
  int timed = !lua_isnoneornil(L, 1);
  uint64_t ms = timed ? sleep_ms(luaL_checknumber(L, 1)) : 0;
  sleeper *s;
  need_task(L, K, luaL_optstring(L, 2, "park"));
  s = new_sleeper(L, K);
  s->park = 1;
  if (timed && tmo_add(K, &s->t, TMO_SLEEP, ms) < 0) {
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
  anchor(L, &s->ref);
  lua_settop(L, 0);
  return lua_yieldk(L, 0, (lua_KContext)s, park_k);
}

/* wake(co): queue the parked task co to run; false if co is not parked
** (or already woken). */
static int core_wake(lua_State *L) {
  core *K = getcore(L);
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
    tmo_del(K, &s->t);
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

/* {====================================================== conn */

enum { K_STREAM, K_SERVER, K_UDP };
static const char *const tnames[] = {"net.conn", "net.server", "net.udp"};

typedef struct dgram {
  struct dgram *next;
  struct sockaddr_storage from;
  size_t len;
  char data[1];
} dgram;

typedef struct conn {
  lh_handle *h;          /* the uv handle; freed with this struct */
  struct conn **ud;      /* the Lua userdata, NULL once collected */
  core *K;
  char *buf;             /* owned input storage */
  size_t cap;
  const char *rp;        /* unread input: rp[0 .. rlen) */
  size_t rlen;
  lua_State *rco, *wco;  /* parked reader (or acceptor) and writer */
  lua_State *task;       /* last thread known to be a task (need_task) */
  int rref, wref;        /* registry slots anchoring them */
  tmo rt, wt;
  uint64_t rdue;         /* deadline of the parked reader, 0 = none */
  int timeout;           /* ms for every later wait, -1 = none */
  int idle;              /* server: timeout given to accepted conns */
  int rerr, werr;        /* sticky: UV_EOF or an error */
  int cstatus;           /* connect: 1 in progress, else its status */
  unsigned nwreq;        /* queued writes */
  size_t maxline, hwm;
  dgram *qhead, *qtail;  /* udp: received, not yet read */
  int qlen;
  unsigned char kind, reading, closed, rtimed, wtimed, wflush, pending;
  unsigned char skipline;
} conn;

static void wake_reader(lua_State *L, conn *c);
static void wake_writer(lua_State *L, conn *c);

static void conn_free(lh_handle *h) {
  conn *c = (conn *)h->extra;
  lua_State *L = h->ctx->L;
  if (!h->ctx->shutting_down && (c->rco != NULL || c->wco != NULL)) {
    /* Closed under a waiting task (uv.walk + close, a drain): tell it
    ** "closed" rather than leave it parked for ever. */
    c->closed = 1;
    wake_reader(L, c);
    wake_writer(L, c);
  }
  h->extra = NULL;
  tmo_del(c->K, &c->rt);
  tmo_del(c->K, &c->wt);
  luaL_unref(L, LUA_REGISTRYINDEX, c->rref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->wref);
  free(c->buf);
  while (c->qhead) {
    dgram *d = c->qhead;
    c->qhead = d->next;
    free(d);
  }
  if (c->ud) *c->ud = NULL;
  free(c);
}

/* Push a new conn userdata of kind with an lh_handle of type (not yet
** initialized: call conn_init next). */
static conn *conn_new(lua_State *L, core *K, uv_handle_type type, int kind) {
  conn **ud = (conn **)lua_newuserdatauv(L, sizeof(conn *), 0);
  conn *c;
  lh_handle *h;
  *ud = NULL;
  luaL_setmetatable(L, tnames[kind]);
  c = (conn *)calloc(1, sizeof(conn));
  if (c == NULL) luaL_error(L, "not enough memory");
  h = lh_handle_new(L, type); /* pushes the uv box, anchored */
  lua_pop(L, 1);
  c->h = h;
  c->ud = ud;
  c->K = K;
  c->kind = (unsigned char)kind;
  c->rref = c->wref = LUA_NOREF;
  c->rt.idx = c->wt.idx = -1;
  c->timeout = c->idle = -1;
  c->maxline = K->maxline;
  c->hwm = K->hwm;
  h->extra = c;
  h->free_extra = conn_free;
  *ud = c;
  return c;
}

/* After conn_new: r is the uv_*_init result; on failure undo all. */
static int conn_init_done(lua_State *L, conn *c, int r) {
  if (r < 0) {
    c->h->extra = NULL;
    lh_handle_abort(L, c->h);
    *c->ud = NULL;
    free(c);
  } else {
    /* A socket keeps the host alive only while a task waits on it (or
    ** output is queued: write requests count by themselves). */
    uv_unref(c->h->uv);
  }
  return r;
}

static conn *to_conn(lua_State *L, int idx, int kind) {
  conn **ud = (conn **)luaL_checkudata(L, idx, tnames[kind]);
  return *ud;
}

#define STREAM(c) ((uv_stream_t *)(c)->h->uv)
#define LIVE(c) ((c) != NULL && !(c)->closed)

/* Resume the task parked in c's reader slot (reader, acceptor, connect). */
static void wake_reader(lua_State *L, conn *c) {
  lua_State *co = c->rco;
  if (co == NULL) return;
  c->rco = NULL;
  c->rdue = 0; /* its deadline entry, if any, is now stale (see fire) */
  uv_unref(c->h->uv);
  /* The slot keeps co alive during the resume; cleared after unless the
  ** task parked here again. conn memory outlives this: it is only freed
  ** by the close callback, which never runs inside a resume. */
  lh_resume(c->K->ctx, co, 0);
  if (c->rco == NULL) unanchor(L, c->rref);
}

static void wake_writer(lua_State *L, conn *c) {
  lua_State *co = c->wco;
  if (co == NULL) return;
  c->wco = NULL;
  tmo_del(c->K, &c->wt);
  lh_resume(c->K->ctx, co, 0);
  if (c->wco == NULL) unanchor(L, c->wref);
}

static void shutdown_close_cb(uv_shutdown_t *req, int status) {
  conn *c = (conn *)req->data;
  (void)status;
  free(req);
  if (c != NULL && c->h != NULL) lh_handle_close(c->h);
}

/* SO_LINGER on with 0 seconds: the owner asked for a reset on close, so
** queued output is dropped rather than drained first. */
static int abortive(conn *c) {
  uv_os_fd_t fd;
  struct linger lg;
  socklen_t len = sizeof(lg);
  return uv_fileno(c->h->uv, &fd) == 0 &&
         getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len) == 0 &&
         lg.l_onoff && lg.l_linger == 0;
}

/* Close c for Lua now; queued output still goes out (bounded by
** LINGER_MS), then the handle closes, unless linger is set to 0 (a
** reset now). Waiting tasks get "closed". */
static void conn_close(lua_State *L, conn *c) {
  if (c->closed) return;
  c->closed = 1;
  if (c->reading) {
    if (c->kind == K_UDP)
      uv_udp_recv_stop((uv_udp_t *)c->h->uv);
    else
      uv_read_stop(STREAM(c));
    c->reading = 0;
  }
  wake_reader(L, c);
  wake_writer(L, c);
  if (c->nwreq > 0 && c->kind == K_STREAM && !uv_is_closing(c->h->uv) &&
      !abortive(c)) {
    uv_shutdown_t *req = (uv_shutdown_t *)malloc(sizeof(uv_shutdown_t));
    if (req != NULL && uv_shutdown(req, STREAM(c), shutdown_close_cb) == 0) {
      req->data = c;
      tmo_add(c->K, &c->wt, TMO_LINGER, LINGER_MS);
      return;
    }
    free(req);
  }
  lh_handle_close(c->h);
}

static void dns_fire(tmo *t);

static void fire(core *K, tmo *t) {
  lua_State *L = K->ctx->L;
  conn *c;
  switch (t->kind) {
    case TMO_SLEEP:
      wake_sleeper(K, container_of(t, sleeper, t));
      break;
    case TMO_RD: /* lazy: the entry may be older than the wait */
      c = container_of(t, conn, rt);
      if (c->rco == NULL || c->rdue == 0) break; /* stale */
      if (c->rdue > uv_now(K->ctx->loop)) { /* early: queue it again */
        tmo_add_at(K, &c->rt, TMO_RD, c->rdue);
        break;
      }
      /* (the deadline of a task closed by force: nobody to time out) */
      c->rtimed = lua_status(c->rco) == LUA_YIELD;
      wake_reader(L, c);
      break;
    case TMO_WR:
      c = container_of(t, conn, wt);
      c->wtimed = c->wco != NULL && lua_status(c->wco) == LUA_YIELD;
      wake_writer(L, c);
      break;
    case TMO_LINGER:
      c = container_of(t, conn, wt);
      lh_handle_close(c->h);
      break;
    case TMO_DNS:
      dns_fire(t);
      break;
  }
}

/* Park the running task in c's reader slot; k continues it. */
static int park_reader(lua_State *L, conn *c, int ms, lua_KContext kc,
                       lua_KFunction k, const char *what) {
  if (L != c->task) { /* checked once per task and connection */
    need_task(L, c->K, what);
    c->task = L;
  }
  if (c->rco != NULL && lua_status(c->rco) == LUA_YIELD)
    return luaL_error(L, "%s: another task is already waiting on this "
                      "socket", what);
  if (ms >= 0) {
    /* Deadlines of reads are lazy: most reads end before it, and an entry
    ** already queued for an earlier time is kept (it fires early and is
    ** queued again): no heap operation per message. */
    uint64_t due = fresh_now(c->K) + (uint64_t)ms;
    c->rdue = due;
    if (c->rt.idx >= 0 && c->rt.due > due) tmo_del(c->K, &c->rt);
    if (c->rt.idx < 0 && tmo_add_at(c->K, &c->rt, TMO_RD, due) < 0)
      return luaL_error(L, "not enough memory");
  }
  c->rco = L;
  c->rtimed = 0;
  uv_ref(c->h->uv); /* a task waits on it: keep the host alive */
  anchor(L, &c->rref);
  return lua_yieldk(L, 0, kc, k);
}

static int park_writer(lua_State *L, conn *c, int flush, lua_KFunction k,
                       const char *what) {
  need_task(L, c->K, what);
  if (c->wco != NULL && lua_status(c->wco) == LUA_YIELD)
    return luaL_error(L, "%s: another task is already writing to this "
                      "socket", what);
  if (c->timeout >= 0 &&
      tmo_add(c->K, &c->wt, TMO_WR, (uint64_t)c->timeout) < 0)
    return luaL_error(L, "not enough memory");
  c->wco = L;
  c->wtimed = 0;
  c->wflush = (unsigned char)flush;
  anchor(L, &c->wref);
  return lua_yieldk(L, 0, 0, k);
}

/* Cancel cleanup for either slot. */
static void drop_waits(lua_State *L, conn *c) {
  if (c == NULL) return;
  if (c->rco == L) {
    c->rco = NULL;
    c->rdue = 0;
    uv_unref(c->h->uv);
    unanchor(L, c->rref);
  }
  if (c->wco == L) {
    c->wco = NULL;
    tmo_del(c->K, &c->wt);
    unanchor(L, c->wref);
  }
}

static int conn_close_m(lua_State *L) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  luaL_argexpected(L, ud != NULL && (luaL_testudata(L, 1, tnames[0]) ||
                   luaL_testudata(L, 1, tnames[1]) ||
                   luaL_testudata(L, 1, tnames[2])), 1, "socket");
  if (*ud != NULL) conn_close(L, *ud);
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_gc(lua_State *L) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  conn *c = *ud;
  if (c != NULL) {
    *ud = NULL;
    c->ud = NULL;
    if (!c->closed) conn_close(L, c);
  }
  return 0;
}

static int conn_tostring(lua_State *L) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  const char *tname = "net socket";
  int i;
  for (i = 0; i < 3; i++)
    if (luaL_testudata(L, 1, tnames[i])) tname = tnames[i];
  if (!LIVE(*ud))
    lua_pushfstring(L, "%s (closed)", tname);
  else
    lua_pushfstring(L, "%s (%s): %p", tname,
                    uv_handle_type_name((*ud)->h->uv->type), (void *)*ud);
  return 1;
}

static int is_closed_m(lua_State *L) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  luaL_argexpected(L, ud != NULL, 1, "socket");
  lua_pushboolean(L, !LIVE(*ud));
  return 1;
}

/* Seconds (checked: not NaN) to milliseconds for a wait: -1 (none)
** when negative; past INT_MAX ms (24.8 days) clamped, since converting a
** double out of int's range is undefined (a long timeout became none). */
static int secs_to_ms(double s) {
  if (s < 0) return -1;
  if (s * 1000 + 0.5 >= (double)INT_MAX) return INT_MAX;
  return (int)(s * 1000 + 0.5);
}

/* settimeout(seconds | nil): nil or negative means none. */
static int conn_settimeout(lua_State *L) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  conn *c;
  luaL_argexpected(L, ud != NULL, 1, "socket");
  c = *ud;
  if (lua_isnoneornil(L, 2)) {
    if (c) c->timeout = -1;
  } else {
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s == s, 2, "invalid timeout");
    if (c) c->timeout = s < 0 ? -1 : secs_to_ms(s);
  }
  lua_settop(L, 1);
  return 1;
}

static int conn_gettimeout(lua_State *L) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  luaL_argexpected(L, ud != NULL, 1, "socket");
  if (*ud == NULL || (*ud)->timeout < 0)
    lua_pushnil(L);
  else
    lua_pushnumber(L, (*ud)->timeout / 1000.0);
  return 1;
}

static int push_sockaddr(lua_State *L, const struct sockaddr *sa) {
  char ip[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, ip, sizeof(ip));
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(a->sin_port));
    lua_pushliteral(L, "inet");
    return 3;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, ip, sizeof(ip));
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(a->sin6_port));
    lua_pushliteral(L, "inet6");
    return 3;
  }
  return fail_str(L, "EAFNOSUPPORT");
}

static int get_name(lua_State *L, int peer) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  conn *c;
  struct sockaddr_storage ss;
  int len = sizeof(ss), r;
  luaL_argexpected(L, ud != NULL, 1, "socket");
  c = *ud;
  if (!LIVE(c)) return fail_str(L, "closed");
  if (c->h->uv->type == UV_NAMED_PIPE) {
    char path[256];
    size_t n = sizeof(path);
    r = peer ? uv_pipe_getpeername((uv_pipe_t *)c->h->uv, path, &n)
             : uv_pipe_getsockname((uv_pipe_t *)c->h->uv, path, &n);
    if (r < 0) return fail_st(L, r);
    lua_pushlstring(L, path, n);
    return 1;
  }
  memset(&ss, 0, sizeof(ss));
  if (c->h->uv->type == UV_UDP)
    r = peer ? uv_udp_getpeername((uv_udp_t *)c->h->uv,
                                  (struct sockaddr *)&ss, &len)
             : uv_udp_getsockname((uv_udp_t *)c->h->uv,
                                  (struct sockaddr *)&ss, &len);
  else
    r = peer ? uv_tcp_getpeername((uv_tcp_t *)c->h->uv,
                                  (struct sockaddr *)&ss, &len)
             : uv_tcp_getsockname((uv_tcp_t *)c->h->uv,
                                  (struct sockaddr *)&ss, &len);
  if (r < 0) return fail_st(L, r);
  return push_sockaddr(L, (struct sockaddr *)&ss);
}

static int conn_peername(lua_State *L) { return get_name(L, 1); }
static int conn_sockname(lua_State *L) { return get_name(L, 0); }

static int conn_fd(lua_State *L, uv_os_fd_t *fd) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  luaL_argexpected(L, ud != NULL, 1, "socket");
  luaL_checkstring(L, 2);
  if (!LIVE(*ud)) return UV_EBADF;
  return uv_fileno((*ud)->h->uv, fd);
}

/* lh_sockopt_* answer luv-style (nil, "ENAME: msg", "ENAME"): keep the
** short name; set returns the socket so calls chain. */
static int sockopt_result(lua_State *L, int r, int chain) {
  if (r >= 3 && lua_isnil(L, -r)) {
    const char *name = lua_tostring(L, -1);
    return fail_str(L, name ? name : "EINVAL");
  }
  if (chain) {
    lua_settop(L, 1);
    return 1;
  }
  return r;
}

static int conn_setopt(lua_State *L) {
  uv_os_fd_t fd;
  int r = conn_fd(L, &fd);
  if (r < 0) return fail_str(L, r == UV_EBADF ? "closed" : errname(r));
  luaL_checkany(L, 3);
  r = lh_sockopt_set(L, fd, 2, 3);
  return sockopt_result(L, r, 1);
}

static int conn_getopt(lua_State *L) {
  uv_os_fd_t fd;
  int r = conn_fd(L, &fd);
  if (r < 0) return fail_str(L, r == UV_EBADF ? "closed" : errname(r));
  return sockopt_result(L, lh_sockopt_get(L, fd, 2), 0);
}

static int conn_getfd(lua_State *L) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  uv_os_fd_t fd;
  luaL_argexpected(L, ud != NULL, 1, "socket");
  if (!LIVE(*ud) || uv_fileno((*ud)->h->uv, &fd) < 0) return fail_str(L,
                                                                "closed");
  lua_pushinteger(L, fd);
  return 1;
}

/* }====================================================== */

/* {====================================================== read */

static void alloc_cb(uv_handle_t *uvh, size_t hint, uv_buf_t *b) {
  conn *c = (conn *)((lh_handle *)uvh->data)->extra;
  core *K = c->K;
  (void)hint;
  if (!K->borrowing) {
    b->base = K->rbuf;
    b->len = RBUF_SIZE;
  } else { /* the shared buffer is lent out (a nested loop run) */
    b->base = (char *)malloc(RBUF_SIZE);
    b->len = b->base ? RBUF_SIZE : 0;
  }
}

/* Append n bytes to c's owned input. */
static int append(conn *c, const char *p, size_t n) {
  size_t used;
  if (c->rlen == 0) c->rp = c->buf;
  used = (size_t)(c->rp - c->buf);
  if (used + c->rlen + n > c->cap) {
    if (used > 0) {
      memmove(c->buf, c->rp, c->rlen);
      c->rp = c->buf;
    }
    if (c->rlen + n > c->cap) {
      size_t ncap = c->cap ? c->cap : 1024;
      char *nb;
      while (ncap < c->rlen + n) ncap *= 2;
      nb = (char *)realloc(c->buf, ncap);
      if (nb == NULL) return UV_ENOMEM;
      c->buf = nb;
      c->rp = nb;
      c->cap = ncap;
    }
  }
  memcpy((char *)c->rp + c->rlen, p, n);
  c->rlen += n;
  return 0;
}

static void consume(conn *c, size_t n) {
  if (n == 0) return;
  c->rp += n;
  c->rlen -= n;
}

static const char *find_nl(const conn *c) {
  return c->rlen ? (const char *)memchr(c->rp, '\n', c->rlen) : NULL;
}

static void rstop(conn *c) {
  if (c->reading) {
    uv_read_stop(STREAM(c));
    c->reading = 0;
  }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  conn *c = (conn *)((lh_handle *)s->data)->extra;
  core *K = c->K;
  lua_State *L = K->ctx->L;
  if (nread > 0 && c->closed) {
    /* nothing: a closed conn drops input */
  } else if (nread > 0 && c->rco && c->rlen == 0 && b->base == K->rbuf) {
    /* Fast path: the reader reads straight from the shared buffer; only
    ** what it leaves is copied. */
    c->rp = b->base;
    c->rlen = (size_t)nread;
    K->borrowing = 1;
    wake_reader(L, c);
    K->borrowing = 0;
    if (c->rlen > 0) {
      const char *p = c->rp;
      size_t n = c->rlen;
      c->rlen = 0;
      if (!c->closed && append(c, p, n) < 0) c->rerr = UV_ENOMEM;
    }
  } else if (nread > 0) {
    if (append(c, b->base, (size_t)nread) < 0) c->rerr = UV_ENOMEM;
    wake_reader(L, c);
  } else if (nread < 0) {
    if (!c->rerr) c->rerr = (int)nread;
    rstop(c);
    wake_reader(L, c);
  }
  if (b->base != NULL && b->base != K->rbuf) free(b->base);
  /* Nobody reads and enough is buffered: let TCP push back on the peer. */
  if (c->reading && c->rco == NULL && c->rlen >= RHWM) rstop(c);
}

static void rstart(conn *c) {
  if (!c->reading && !c->rerr && !c->closed) {
    int r = uv_read_start(STREAM(c), alloc_cb, read_cb);
    if (r < 0)
      c->rerr = r;
    else
      c->reading = 1;
  }
}

/* An empty owned buffer is freed before parking: idle connections then
** hold no input memory at all. */
static void shrink(conn *c) {
  if (c->rlen == 0 && c->buf != NULL && c->rp != c->K->rbuf) {
    free(c->buf);
    c->buf = NULL;
    c->rp = NULL;
    c->cap = 0;
  }
}

static int push_fail_input(lua_State *L, conn *c) {
  lua_pushnil(L);
  lua_pushstring(L, c == NULL || c->closed ? "closed" : errname(c->rerr));
  return -1;
}

/* A number ("n"): the longest numeral prefix, as io.read does. */
static int read_number(lua_State *L, conn *c) {
  size_t i = 0, j;
  char tmp[201];
  while (i < c->rlen && strchr(" \t\r\n\f\v", c->rp[i]) && c->rp[i]) i++;
  for (j = i; j < c->rlen && j - i < 200; j++)
    if (!strchr("0123456789+-.xXaAbBcCdDeEfFpP", c->rp[j]) || !c->rp[j])
      break;
  if (j == c->rlen && j - i < 200 && !c->rerr) {
    consume(c, i); /* skipped blanks go: a flood of them stays bounded */
    return 0;      /* need more */
  }
  if (j > i) memcpy(tmp, c->rp + i, j - i); /* rp may be NULL when empty */
  tmp[j - i] = '\0';
  consume(c, j);
  if (j > i && lua_stringtonumber(L, tmp) != 0) return 1;
  if (j == i && c->rerr && c->rlen == 0) return push_fail_input(L, c);
  lua_pushnil(L);
  lua_pushliteral(L, "not a number");
  return -1;
}

/* Try to satisfy the format at fidx from buffered input: 1 = one value
** pushed, 0 = need more input, -1 = nil, err pushed. */
static int read_one(lua_State *L, conn *c, int fidx) {
  if (c == NULL || c->closed) return push_fail_input(L, c);
  if (lua_type(L, fidx) == LUA_TNUMBER) {
    size_t n = (size_t)lua_tointeger(L, fidx);
    if (c->rlen >= n && (n > 0 || c->rlen > 0 || !c->rerr)) {
      lua_pushlstring(L, c->rp, n);
      consume(c, n);
      return 1;
    }
    if (!c->rerr) return 0;
    if (c->rlen == 0) return push_fail_input(L, c);
    lua_pushlstring(L, c->rp, c->rlen); /* the rest, as io.read */
    consume(c, c->rlen);
    return 1;
  }
  switch (lua_tostring(L, fidx)[0] == '*' ? lua_tostring(L, fidx)[1]
                                          : lua_tostring(L, fidx)[0]) {
    case 'l': case 'L': {
      int keep = (lua_tostring(L, fidx)[0] == '*'
                  ? lua_tostring(L, fidx)[1] : lua_tostring(L, fidx)[0])
                 == 'L';
      const char *nl;
      while (c->skipline) { /* the rest of an over-long line */
        nl = find_nl(c);
        if (nl == NULL) {
          consume(c, c->rlen);
          if (!c->rerr) return 0;
          break;
        }
        consume(c, (size_t)(nl - c->rp) + 1);
        c->skipline = 0;
      }
      nl = find_nl(c);
      if (nl != NULL) {
        size_t n = (size_t)(nl - c->rp);
        if (n > c->maxline) {
          consume(c, n + 1);
          lua_pushnil(L);
          lua_pushliteral(L, "line too long");
          return -1;
        }
        lua_pushlstring(L, c->rp, n + (size_t)keep);
        consume(c, n + 1);
        return 1;
      }
      if (c->rlen > c->maxline) { /* drop it: memory stays bounded */
        consume(c, c->rlen);
        c->skipline = 1;
        lua_pushnil(L);
        lua_pushliteral(L, "line too long");
        return -1;
      }
      if (!c->rerr) return 0;
      if (c->rlen == 0) return push_fail_input(L, c);
      lua_pushlstring(L, c->rp, c->rlen); /* last line, no newline */
      consume(c, c->rlen);
      return 1;
    }
    case 'a':
      if (!c->rerr) return 0;
      lua_pushlstring(L, c->rp, c->rlen);
      consume(c, c->rlen);
      return 1;
    default: /* 'n' */
      return read_number(L, c);
  }
}

#define KC(i, nf) ((lua_KContext)((i) | ((nf) << 16)))

static int read_k(lua_State *L, int status, lua_KContext kc) {
  int i = (int)(kc & 0xffff), nf = (int)(kc >> 16);
  int base = 1 + nf + (i - 2); /* conn, formats, results so far */
  conn *c = *(conn **)lua_touserdata(L, 1);
  (void)status;
  int how = was_cancelled(L, base);
  if (how) {
    drop_waits(L, c);
    return cancel_exit(L, how);
  }
  for (; i <= nf + 1; i++) {
    int r = read_one(L, c, i);
    if (r < 0) return lua_gettop(L) - (nf + 1);
    if (r == 0) {
      if (c->rtimed) {
        c->rtimed = 0;
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return lua_gettop(L) - (nf + 1);
      }
      rstart(c);
      if (c->rerr) { i--; continue; } /* read_start failed: report it */
      shrink(c);
      return park_reader(L, c, c->timeout, KC(i, nf), read_k, "read");
    }
  }
  /* all done; keep the socket reading only while input is wanted */
  if (c->rlen >= RHWM) rstop(c);
  return lua_gettop(L) - (nf + 1);
}

static const char *const formats[] = {"l", "L", "a", "n", "*l", "*L", "*a",
                                      "*n", NULL};

/* read(fmt...): io.read's formats; default "l". */
static int conn_read(lua_State *L) {
  int n = lua_gettop(L), i;
  conn *c = to_conn(L, 1, K_STREAM);
  if (n == 1) {
    lua_pushliteral(L, "l");
    n = 2;
  }
  luaL_argcheck(L, n - 1 <= MAX_FORMATS, MAX_FORMATS, "too many formats");
  for (i = 2; i <= n; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      luaL_argcheck(L, lua_isinteger(L, i) && lua_tointeger(L, i) >= 0, i,
                    "invalid format");
    } else {
      luaL_checkoption(L, i, NULL, formats);
    }
  }
  /* read_k pushes one result per format (as lines_iter makes room for) */
  luaL_checkstack(L, n + LUA_MINSTACK, "too many formats");
  (void)c;
  return read_k(L, LUA_OK, KC(2, n - 1));
}

/* The iterator of lines(): upvalues are the conn and the formats. */
static int lines_iter(lua_State *L) {
  int nf = (int)lua_tointeger(L, lua_upvalueindex(1)), i;
  lua_settop(L, 0);
  luaL_checkstack(L, nf + LUA_MINSTACK, "too many formats");
  for (i = 0; i <= nf; i++) lua_pushvalue(L, lua_upvalueindex(i + 2));
  return read_k(L, LUA_OK, KC(2, nf));
}

/* lines(fmt...): for line in conn:lines() do ... end; ends on any
** failure (end of input, timeout, ...). */
static int conn_lines(lua_State *L) {
  int n = lua_gettop(L), i;
  to_conn(L, 1, K_STREAM);
  if (n == 1) {
    lua_pushliteral(L, "l");
    n = 2;
  }
  luaL_argcheck(L, n - 1 <= MAX_FORMATS, MAX_FORMATS, "too many formats");
  for (i = 2; i <= n; i++) {
    if (lua_type(L, i) == LUA_TNUMBER)
      luaL_argcheck(L, lua_isinteger(L, i) && lua_tointeger(L, i) >= 0, i,
                    "invalid format");
    else
      luaL_checkoption(L, i, NULL, formats);
  }
  lua_pushinteger(L, n - 1);
  lua_insert(L, 1); /* nf, conn, formats */
  lua_pushcclosure(L, lines_iter, n + 1);
  return 1;
}

static int recv_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  size_t max = (size_t)kc;
  (void)status;
  int how = was_cancelled(L, 2);
  if (how) {
    drop_waits(L, c);
    return cancel_exit(L, how);
  }
  if (c == NULL || c->closed) return fail_str(L, "closed");
  if (c->rlen > 0) {
    size_t n = c->rlen < max ? c->rlen : max;
    lua_pushlstring(L, c->rp, n);
    consume(c, n);
    return 1;
  }
  if (c->rerr) return fail_str(L, errname(c->rerr));
  if (c->rtimed) {
    c->rtimed = 0;
    return fail_str(L, "timeout");
  }
  rstart(c);
  if (c->rerr) return fail_str(L, errname(c->rerr));
  shrink(c);
  return park_reader(L, c, c->timeout, kc, recv_k, "recv");
}

/* buffered(): bytes received and not yet read, without any I/O: a
** pipelining server reads requests while this is above 0, then writes
** its replies at once. (Input arrives only while the conn is reading,
** that is after a first read; a closed conn has dropped its input.) */
static int conn_buffered(lua_State *L) {
  conn *c = to_conn(L, 1, K_STREAM);
  lua_pushinteger(L, LIVE(c) ? (lua_Integer)c->rlen : 0);
  return 1;
}

/* recv([max]): the next chunk of input, whatever has arrived. */
static int conn_recv(lua_State *L) {
  lua_Integer max = luaL_optinteger(L, 2, RBUF_SIZE);
  to_conn(L, 1, K_STREAM);
  luaL_argcheck(L, max > 0, 2, "positive size expected");
  lua_settop(L, 2);
  return recv_k(L, LUA_OK, (lua_KContext)max);
}

/* }====================================================== */

/* {====================================================== write */

typedef struct wreq {
  uv_write_t req;
  conn *c;
  char data[1];
} wreq;

static void write_cb(uv_write_t *req, int status) {
  wreq *w = container_of(req, wreq, req);
  conn *c = w->c;
  free(w);
  c->nwreq--;
  if (status < 0 && status != UV_ECANCELED && !c->werr) c->werr = status;
  if (c->wco != NULL) {
    size_t q = c->closed ? 0 : uv_stream_get_write_queue_size(STREAM(c));
    if (c->werr || c->closed ||
        (c->wflush ? c->nwreq == 0 : q <= c->hwm / 2))
      wake_writer(c->K->ctx->L, c);
  }
}

static int write_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  (void)status; (void)kc;
  int how = was_cancelled(L, 1);
  if (how) {
    drop_waits(L, c);
    return cancel_exit(L, how);
  }
  if (c == NULL || c->closed) return fail_str(L, "closed");
  if (c->werr) return fail_str(L, errname(c->werr));
  if (c->wtimed) {
    c->wtimed = 0;
    return fail_str(L, "timeout");
  }
  return 1; /* the conn: calls chain */
}

/* write(...): strings and numbers. Sends at once what the kernel takes
** and queues the rest; blocks while more than hwm bytes are queued. */
static int conn_write(lua_State *L) {
  conn *c = to_conn(L, 1, K_STREAM);
  int n = lua_gettop(L), i, nb = 0, r;
  uv_buf_t bufs[16];
  size_t total = 0, done = 0;
  for (i = 2; i <= n; i++) luaL_checklstring(L, i, NULL);
  if (!LIVE(c)) return fail_str(L, "closed");
  if (c->werr) return fail_str(L, errname(c->werr));
  if (n - 1 > 16) {
    lua_concat(L, n - 1);
    n = 2;
  }
  for (i = 2; i <= n; i++) {
    size_t l;
    const char *s = lua_tolstring(L, i, &l);
    if (l == 0) continue;
    bufs[nb].base = (char *)s;
    bufs[nb].len = l;
    nb++;
    total += l;
  }
  if (total == 0) {
    lua_settop(L, 1);
    return 1;
  }
  if (c->nwreq == 0) {
    r = uv_try_write(STREAM(c), bufs, (unsigned)nb);
    if (r >= 0) {
      done = (size_t)r;
    } else if (r != UV_EAGAIN && r != UV_ENOSYS) {
      c->werr = r;
      return fail_str(L, errname(r));
    }
  }
  if (done < total) {
    wreq *w = (wreq *)malloc(sizeof(wreq) + total - done);
    char *p;
    uv_buf_t b;
    if (w == NULL) return luaL_error(L, "not enough memory");
    p = w->data;
    for (i = 0; i < nb; i++) { /* copy what try_write left */
      size_t l = bufs[i].len;
      if (done >= l) {
        done -= l;
        continue;
      }
      memcpy(p, bufs[i].base + done, l - done);
      p += l - done;
      done = 0;
    }
    w->c = c;
    b = uv_buf_init(w->data, (unsigned)(p - w->data));
    r = uv_write(&w->req, STREAM(c), &b, 1, write_cb);
    if (r < 0) {
      free(w);
      c->werr = r;
      return fail_str(L, errname(r));
    }
    c->nwreq++;
    if (uv_stream_get_write_queue_size(STREAM(c)) > c->hwm) {
      lua_settop(L, 1);
      return park_writer(L, c, 0, write_k, "write");
    }
  }
  lua_settop(L, 1);
  return 1;
}

/* flush(): wait until everything written so far has left. */
static int conn_flush(lua_State *L) {
  conn *c = to_conn(L, 1, K_STREAM);
  lua_settop(L, 1);
  if (!LIVE(c)) return fail_str(L, "closed");
  if (c->werr) return fail_str(L, errname(c->werr));
  if (c->nwreq == 0) return 1;
  return park_writer(L, c, 1, write_k, "flush");
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  conn *c = (conn *)req->data;
  free(req);
  if (status < 0 && status != UV_ECANCELED && !c->werr) c->werr = status;
}

/* shutdown(): no more output (after what is queued); input continues. */
static int conn_shutdown(lua_State *L) {
  conn *c = to_conn(L, 1, K_STREAM);
  uv_shutdown_t *req;
  int r;
  if (!LIVE(c)) return fail_str(L, "closed");
  req = (uv_shutdown_t *)malloc(sizeof(uv_shutdown_t));
  if (req == NULL) return luaL_error(L, "not enough memory");
  req->data = c;
  r = uv_shutdown(req, STREAM(c), shutdown_cb);
  if (r < 0) {
    free(req);
    return fail_str(L, errname(r));
  }
  lua_settop(L, 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== server */

static void connection_cb(uv_stream_t *s, int status) {
  conn *c = (conn *)((lh_handle *)s->data)->extra;
  if (status < 0)
    c->rerr = status;
  else
    c->pending = 1; /* libuv holds the fd and stops polling until accept */
  wake_reader(c->K->ctx->L, c);
}

/* True when the string at idx holds a NUL byte: C would see only what
** precedes it ("localhost\0.example.com" would resolve as localhost,
** whatever a check on the Lua string concluded). */
static int has_nul(lua_State *L, int idx) {
  size_t len;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) return 0; /* (no number converted) */
  s = lua_tolstring(L, idx, &len);
  return strlen(s) != len;
}

/* Parse ip + port; 0 on success. */
static int parse_addr(const char *ip, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}

/* A unix socket path at idx: a NUL byte raises (libuv would cut the path
** there); a path too long for sun_path fails with UV_ENAMETOOLONG (libuv
** 1.44 would truncate it: bind or connect to another path). */
static int check_sock_path(lua_State *L, int idx) {
  size_t len;
  const char *p = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(p) == len, idx, "path contains a NUL byte");
  return len >= sizeof(((struct sockaddr_un *)0)->sun_path)
         ? UV_ENAMETOOLONG : 0;
}

/* listen(ip, port, backlog, v6only, reuseport) / listen(path, nil,
** backlog): a server, or nil, err. */
static int core_listen(lua_State *L) {
  core *K = getcore(L);
  const char *where = luaL_checkstring(L, 1);
  int pipe = lua_isnoneornil(L, 2);
  int port = pipe ? 0 : (int)lh_check_range(L, 2, 0, 65535);
  int backlog = (int)lh_opt_range(L, 3, 511, 1, 65535);
  int v6only = lua_toboolean(L, 4), reuseport = lua_toboolean(L, 5);
  struct sockaddr_storage ss;
  conn *c;
  int r;
  if (!pipe && (has_nul(L, 1) || parse_addr(where, port, &ss) < 0))
    return luaL_argerror(L, 1, "invalid IP address");
  if (pipe && (r = check_sock_path(L, 1)) < 0) return fail_st(L, r);
  c = conn_new(L, K, pipe ? UV_NAMED_PIPE : UV_TCP, K_SERVER);
  if (pipe)
    r = uv_pipe_init(K->ctx->loop, (uv_pipe_t *)c->h->uv, 0);
  else
    r = uv_tcp_init_ex(K->ctx->loop, (uv_tcp_t *)c->h->uv, ss.ss_family);
  if (conn_init_done(L, c, r) < 0) return fail_st(L, r);
  if (pipe) {
    r = uv_pipe_bind((uv_pipe_t *)c->h->uv, where);
  } else {
    if (reuseport) {
      uv_os_fd_t fd;
      int on = 1;
      r = uv_fileno(c->h->uv, &fd);
      if (r == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
                               sizeof(on)) < 0)
        r = uv_translate_sys_error(errno);
    } else {
      r = 0;
    }
    if (r == 0)
      r = uv_tcp_bind((uv_tcp_t *)c->h->uv, (struct sockaddr *)&ss,
                      v6only ? UV_TCP_IPV6ONLY : 0);
  }
  if (r == 0) r = uv_listen(STREAM(c), backlog, connection_cb);
  if (r < 0) {
    conn_close(L, c);
    return fail_st(L, r);
  }
  return 1;
}

/* listen_fd(fd, backlog): a server on an inherited listening socket (a
** supervisor's, or systemd's LISTEN_FDS). */
static int core_listen_fd(lua_State *L) {
  core *K = getcore(L);
  int fd = (int)lh_check_range(L, 1, 0, 1 << 30);
  int backlog = (int)lh_opt_range(L, 2, 511, 1, 65535);
  uv_handle_type t = uv_guess_handle(fd);
  conn *c;
  int r;
  if (t != UV_TCP && t != UV_NAMED_PIPE)
    return luaL_argerror(L, 1, "not a stream socket");
  c = conn_new(L, K, t, K_SERVER);
  r = t == UV_TCP ? uv_tcp_init(K->ctx->loop, (uv_tcp_t *)c->h->uv)
                  : uv_pipe_init(K->ctx->loop, (uv_pipe_t *)c->h->uv, 0);
  if (conn_init_done(L, c, r) < 0) return fail_st(L, r);
  r = t == UV_TCP ? uv_tcp_open((uv_tcp_t *)c->h->uv, fd)
                  : uv_pipe_open((uv_pipe_t *)c->h->uv, fd);
  if (r == 0) r = uv_listen(STREAM(c), backlog, connection_cb);
  if (r < 0) {
    conn_close(L, c);
    return fail_st(L, r);
  }
  return 1;
}

/* configure(sock, maxline, hwm, idle_ms): limits (nil keeps a value). */
static int core_configure(lua_State *L) {
  conn **ud = (conn **)lua_touserdata(L, 1);
  conn *c;
  luaL_argexpected(L, ud != NULL, 1, "socket");
  c = *ud;
  if (c == NULL) return 0;
  if (!lua_isnoneornil(L, 2))
    c->maxline = (size_t)lh_check_range(L, 2, 1, (lua_Integer)1 << 40);
  if (!lua_isnoneornil(L, 3))
    c->hwm = (size_t)lh_check_range(L, 3, 1, (lua_Integer)1 << 40);
  if (!lua_isnoneornil(L, 4))
    c->idle = (int)lh_check_range(L, 4, -1, (lua_Integer)1 << 30);
  return 0;
}

static int accept_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  int ms = (int)kc;
  (void)status;
  int how = was_cancelled(L, 2);
  if (how) {
    drop_waits(L, c);
    return cancel_exit(L, how);
  }
  if (!LIVE(c)) return fail_str(L, "closed");
  if (c->pending) {
    uv_handle_type t = c->h->uv->type;
    conn *nc = conn_new(L, c->K, t, K_STREAM);
    int r = t == UV_TCP ? uv_tcp_init(c->K->ctx->loop, (uv_tcp_t *)nc->h->uv)
                        : uv_pipe_init(c->K->ctx->loop,
                                       (uv_pipe_t *)nc->h->uv, 0);
    c->pending = 0;
    if (conn_init_done(L, nc, r) < 0) return fail_st(L, r);
    r = uv_accept(STREAM(c), STREAM(nc));
    if (r < 0) {
      conn_close(L, nc);
      return fail_st(L, r);
    }
    if (t == UV_TCP) uv_tcp_nodelay((uv_tcp_t *)nc->h->uv, 1);
    nc->maxline = c->maxline;
    nc->hwm = c->hwm;
    nc->timeout = c->idle;
    return 1;
  }
  if (c->rerr) {
    int e = c->rerr;
    c->rerr = 0; /* e.g. EMFILE: report it, keep listening */
    return fail_st(L, e);
  }
  if (c->rtimed) {
    c->rtimed = 0;
    return fail_str(L, "timeout");
  }
  return park_reader(L, c, ms, kc, accept_k, "accept");
}

/* accept([timeout]): the next connection. */
static int server_accept(lua_State *L) {
  conn *c = to_conn(L, 1, K_SERVER);
  int ms;
  if (lua_isnoneornil(L, 2)) {
    ms = c ? c->timeout : -1;
  } else {
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s == s, 2, "invalid timeout");
    ms = s < 0 ? -1 : secs_to_ms(s);
  }
  lua_settop(L, 2);
  return accept_k(L, LUA_OK, (lua_KContext)ms);
}

/* }====================================================== */

/* {====================================================== connect */

static void connect_cb(uv_connect_t *req, int status) {
  conn *c = (conn *)req->data;
  free(req);
  c->cstatus = status;
  wake_reader(c->K->ctx->L, c);
}

static int connect_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1); /* stack: conn [marker] */
  (void)status; (void)kc;
  int how = was_cancelled(L, 1);
  if (how) {
    drop_waits(L, c);
    if (c) conn_close(L, c);
    return cancel_exit(L, how);
  }
  if (c == NULL || c->closed) return fail_str(L, "closed");
  if (c->cstatus == 1) {
    if (c->rtimed) {
      conn_close(L, c);
      return fail_str(L, "timeout");
    }
    return park_reader(L, c, -1, 0, connect_k, "connect");
  }
  if (c->cstatus < 0) {
    int e = c->cstatus;
    conn_close(L, c);
    return fail_st(L, e);
  }
  return 1; /* the conn */
}

/* connect(ip, port, timeout_ms, bind_ip, bind_port, nodelay) or
** connect(path, nil, timeout_ms): a conn, or nil, err. */
static int core_connect(lua_State *L) {
  core *K = getcore(L);
  const char *where = luaL_checkstring(L, 1);
  int pipe = lua_isnoneornil(L, 2);
  int port = pipe ? 0 : (int)lh_check_range(L, 2, 0, 65535);
  int ms = (int)lh_opt_range(L, 3, -1, -1, (lua_Integer)1 << 30);
  struct sockaddr_storage ss, bs;
  uv_connect_t *req;
  conn *c;
  int r;
  need_task(L, K, "net.connect");
  if (!pipe && (has_nul(L, 1) || parse_addr(where, port, &ss) < 0))
    return luaL_argerror(L, 1, "invalid IP address");
  if (pipe && (r = check_sock_path(L, 1)) < 0) return fail_st(L, r);
  if (!lua_isnoneornil(L, 4) &&
      (parse_addr(luaL_checkstring(L, 4),
                  (int)lh_opt_range(L, 5, 0, 0, 65535), &bs) < 0 ||
       has_nul(L, 4)))
    return luaL_argerror(L, 4, "invalid bind address");
  req = (uv_connect_t *)malloc(sizeof(uv_connect_t));
  if (req == NULL) return luaL_error(L, "not enough memory");
  c = conn_new(L, K, pipe ? UV_NAMED_PIPE : UV_TCP, K_STREAM);
  r = pipe ? uv_pipe_init(K->ctx->loop, (uv_pipe_t *)c->h->uv, 0)
           : uv_tcp_init_ex(K->ctx->loop, (uv_tcp_t *)c->h->uv,
                            ss.ss_family);
  if (conn_init_done(L, c, r) < 0) {
    free(req);
    return fail_st(L, r);
  }
  r = 0;
  if (!pipe && !lua_isnoneornil(L, 4))
    r = uv_tcp_bind((uv_tcp_t *)c->h->uv, (struct sockaddr *)&bs, 0);
  if (r == 0 && !pipe && lua_toboolean(L, 6))
    r = uv_tcp_nodelay((uv_tcp_t *)c->h->uv, 1);
  req->data = c;
  if (r == 0) {
    if (pipe)
      uv_pipe_connect(req, (uv_pipe_t *)c->h->uv, where, connect_cb);
    else
      r = uv_tcp_connect(req, (uv_tcp_t *)c->h->uv, (struct sockaddr *)&ss,
                         connect_cb);
  }
  if (r < 0) {
    free(req);
    conn_close(L, c);
    return fail_st(L, r);
  }
  c->cstatus = 1;
  lua_replace(L, 1);
  lua_settop(L, 1);
  return park_reader(L, c, ms, 0, connect_k, "net.connect");
}

/* }====================================================== */

/* {====================================================== dns */

typedef struct dnsreq {
  union {
    uv_getaddrinfo_t ai;
    uv_getnameinfo_t ni;
  } u;
  core *K;
  lua_State *co;        /* NULL once the waiting task gave up */
  int ref;
  tmo t;                /* the caller's deadline, if any */
} dnsreq;

static void dns_done(dnsreq *d, int nres) {
  lua_State *L = d->K->ctx->L, *co = d->co;
  tmo_del(d->K, &d->t);
  lh_resume(d->K->ctx, co, nres);
  luaL_unref(L, LUA_REGISTRYINDEX, d->ref);
  free(d);
}

static void getaddrinfo_cb(uv_getaddrinfo_t *req, int status,
                           struct addrinfo *res) {
  dnsreq *d = (dnsreq *)req;
  lua_State *co = d->co;
  struct addrinfo *ai;
  int n = 0;
  if (co == NULL || lua_status(co) != LUA_YIELD) {
    tmo_del(d->K, &d->t);
    uv_freeaddrinfo(res);
    luaL_unref(d->K->ctx->L, LUA_REGISTRYINDEX, d->ref);
    free(d);
    return;
  }
  if (status < 0) {
    lua_pushnil(co);
    lua_pushstring(co, errname(status));
    dns_done(d, 2);
    return;
  }
  lua_newtable(co);
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    char ip[INET6_ADDRSTRLEN];
    int i, dup = 0;
    if (ai->ai_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)ai->ai_addr, ip, sizeof(ip));
    else if (ai->ai_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, ip, sizeof(ip));
    else
      continue;
    for (i = 1; i <= n && !dup; i++) { /* one entry per address */
      lua_rawgeti(co, -1, i);
      dup = strcmp(lua_tostring(co, -1), ip) == 0;
      lua_pop(co, 1);
    }
    if (dup) continue;
    lua_pushstring(co, ip);
    lua_rawseti(co, -2, ++n);
  }
  uv_freeaddrinfo(res);
  if (n == 0) {
    lua_pop(co, 1);
    lua_pushnil(co);
    lua_pushliteral(co, "ENOTFOUND");
    dns_done(d, 2);
    return;
  }
  dns_done(d, 1);
}

static int dns_k(lua_State *L, int status, lua_KContext kc) {
  dnsreq *d = (dnsreq *)kc;
  (void)status;
  int how = lua_touserdata(L, -1) == CANCEL ? 1
            : lua_touserdata(L, -1) == DROP ? 2 : 0;
  if (how) {
    lua_pop(L, 1);
    d->co = NULL; /* the callback frees it */
    tmo_del(d->K, &d->t);
    uv_cancel((uv_req_t *)&d->u);
    return cancel_exit(L, how);
  }
  return lua_gettop(L); /* {ip...} or nil, err, pushed by the callback */
}

/* The deadline of a look-up passed: answer "timeout" now; the callback
** will only free the request. */
static void dns_timeout(dnsreq *d) {
  lua_State *co = d->co;
  if (co == NULL || lua_status(co) != LUA_YIELD) return;
  d->co = NULL;
  uv_cancel((uv_req_t *)&d->u);
  lua_pushnil(co);
  lua_pushliteral(co, "timeout");
  lh_resume(d->K->ctx, co, 2); /* co stays anchored by d->ref */
}

static void dns_fire(tmo *t) {
  dns_timeout(container_of(t, dnsreq, t));
}

/* getaddrinfo(name, family, timeout_ms) -> {ip...} | nil, err */
static int core_getaddrinfo(lua_State *L) {
  core *K = getcore(L);
  const char *name = luaL_checkstring(L, 1);
  const char *fam = luaL_optstring(L, 2, NULL);
  int ms = (int)lh_opt_range(L, 3, -1, -1, (lua_Integer)1 << 30);
  struct addrinfo hints;
  dnsreq *d;
  int r;
  need_task(L, K, "net.lookup");
  if (has_nul(L, 1)) return fail_str(L, "ENOTFOUND"); /* no such name */
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = fam == NULL ? AF_UNSPEC : strcmp(fam, "inet6") == 0
                    ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  d = (dnsreq *)calloc(1, sizeof(dnsreq));
  if (d == NULL) return luaL_error(L, "not enough memory");
  d->K = K;
  d->co = L;
  d->t.idx = -1;
  r = uv_getaddrinfo(K->ctx->loop, &d->u.ai, getaddrinfo_cb, name, NULL,
                     &hints);
  if (r < 0) {
    free(d);
    return fail_st(L, r);
  }
  if (ms >= 0) tmo_add(K, &d->t, TMO_DNS, (uint64_t)ms);
  lua_pushthread(L);
  d->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  return lua_yieldk(L, 0, (lua_KContext)d, dns_k);
}

static void getnameinfo_cb(uv_getnameinfo_t *req, int status,
                           const char *host, const char *service) {
  dnsreq *d = (dnsreq *)req;
  lua_State *co = d->co;
  (void)service;
  if (co == NULL || lua_status(co) != LUA_YIELD) {
    tmo_del(d->K, &d->t);
    luaL_unref(d->K->ctx->L, LUA_REGISTRYINDEX, d->ref);
    free(d);
    return;
  }
  if (status < 0) {
    lua_pushnil(co);
    lua_pushstring(co, errname(status));
    dns_done(d, 2);
    return;
  }
  lua_pushstring(co, host);
  dns_done(d, 1);
}

/* getnameinfo(ip) -> name | nil, err */
static int core_getnameinfo(lua_State *L) {
  core *K = getcore(L);
  const char *ip = luaL_checkstring(L, 1);
  struct sockaddr_storage ss;
  dnsreq *d;
  int r;
  if (has_nul(L, 1) || parse_addr(ip, 0, &ss) < 0)
    return luaL_argerror(L, 1, "invalid IP address");
  need_task(L, K, "net.reverse");
  d = (dnsreq *)calloc(1, sizeof(dnsreq));
  if (d == NULL) return luaL_error(L, "not enough memory");
  d->K = K;
  d->co = L;
  d->t.idx = -1;
  r = uv_getnameinfo(K->ctx->loop, &d->u.ni, getnameinfo_cb,
                     (struct sockaddr *)&ss, NI_NAMEREQD);
  if (r < 0) {
    free(d);
    return fail_st(L, r);
  }
  lua_pushthread(L);
  d->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  return lua_yieldk(L, 0, (lua_KContext)d, dns_k);
}

/* }====================================================== */

/* {====================================================== udp */

static void udp_alloc_cb(uv_handle_t *uvh, size_t hint, uv_buf_t *b) {
  conn *c = (conn *)((lh_handle *)uvh->data)->extra;
  (void)hint;
  b->base = c->K->rbuf;
  b->len = RBUF_SIZE;
}

static void udp_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *b,
                        const struct sockaddr *addr, unsigned flags) {
  conn *c = (conn *)((lh_handle *)u->data)->extra;
  dgram *d;
  (void)flags;
  if (nread < 0) {
    c->rerr = (int)nread;
    wake_reader(c->K->ctx->L, c);
    return;
  }
  if (addr == NULL) return; /* nothing more to read now */
  if (c->qlen >= UDP_QMAX) return; /* nobody reads: drop, as the kernel
                                      would */
  d = (dgram *)malloc(sizeof(dgram) + (size_t)nread);
  if (d == NULL) return;
  d->next = NULL;
  d->len = (size_t)nread;
  memcpy(d->data, b->base, (size_t)nread);
  memset(&d->from, 0, sizeof(d->from));
  memcpy(&d->from, addr, addr->sa_family == AF_INET6
         ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  if (c->qtail) c->qtail->next = d; else c->qhead = d;
  c->qtail = d;
  c->qlen++;
  wake_reader(c->K->ctx->L, c);
}

/* udp(ip|nil, port, reuseaddr, family): a udp socket, bound if ip given */
static int core_udp(lua_State *L) {
  core *K = getcore(L);
  const char *ip = luaL_optstring(L, 1, NULL);
  int port = (int)lh_opt_range(L, 2, 0, 0, 65535);
  int reuse = lua_toboolean(L, 3);
  const char *fam = luaL_optstring(L, 4, NULL);
  struct sockaddr_storage ss;
  unsigned family = AF_UNSPEC;
  conn *c;
  int r;
  if (ip != NULL && (has_nul(L, 1) || parse_addr(ip, port, &ss) < 0))
    return luaL_argerror(L, 1, "invalid IP address");
  if (ip != NULL) family = ss.ss_family;
  else if (fam != NULL) family = strcmp(fam, "inet6") == 0 ? AF_INET6
                                                           : AF_INET;
  c = conn_new(L, K, UV_UDP, K_UDP);
  r = uv_udp_init_ex(K->ctx->loop, (uv_udp_t *)c->h->uv, family);
  if (conn_init_done(L, c, r) < 0) return fail_st(L, r);
  if (ip != NULL) {
    r = uv_udp_bind((uv_udp_t *)c->h->uv, (struct sockaddr *)&ss,
                    reuse ? UV_UDP_REUSEADDR : 0);
    if (r < 0) {
      conn_close(L, c);
      return fail_st(L, r);
    }
  }
  return 1;
}

/* udp_fd(fd): a udp socket on a bound datagram socket it now owns (a
** worker group's, from the supervisor). */
static int core_udp_fd(lua_State *L) {
  core *K = getcore(L);
  int fd = (int)lh_check_range(L, 1, 0, 1 << 30);
  conn *c = conn_new(L, K, UV_UDP, K_UDP);
  int r = uv_udp_init(K->ctx->loop, (uv_udp_t *)c->h->uv);
  if (conn_init_done(L, c, r) < 0) {
    close(fd);
    return fail_st(L, r);
  }
  r = uv_udp_open((uv_udp_t *)c->h->uv, fd);
  if (r < 0) {
    close(fd);
    conn_close(L, c);
    return fail_st(L, r);
  }
  return 1;
}

typedef struct sreq {
  uv_udp_send_t req;
  char data[1];
} sreq;

static void udp_send_cb(uv_udp_send_t *req, int status) {
  (void)status; /* datagrams are fire and forget, as sendto(2) */
  free(container_of(req, sreq, req));
}

static int udp_send_to(lua_State *L, conn *c, int didx,
                       const struct sockaddr *sa) {
  size_t len;
  const char *data = luaL_checklstring(L, didx, &len);
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  uv_udp_t *u;
  int r;
  if (!LIVE(c)) return fail_str(L, "closed");
  u = (uv_udp_t *)c->h->uv;
  r = uv_udp_try_send(u, &b, 1, sa);
  if (r == UV_EAGAIN || r == UV_ENOSYS) { /* queue a copy */
    sreq *q = (sreq *)malloc(sizeof(sreq) + len);
    if (q == NULL) return luaL_error(L, "not enough memory");
    memcpy(q->data, data, len);
    b = uv_buf_init(q->data, (unsigned)len);
    r = uv_udp_send(&q->req, u, &b, 1, sa, udp_send_cb);
    if (r < 0) free(q);
  }
  if (r < 0) return fail_st(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* sendto(data, ip, port) */
static int udp_sendto(lua_State *L) {
  conn *c = to_conn(L, 1, K_UDP);
  struct sockaddr_storage ss;
  const char *ip;
  int port;
  luaL_checkstring(L, 2);
  ip = luaL_checkstring(L, 3);
  port = (int)lh_check_range(L, 4, 0, 65535);
  if (has_nul(L, 3) || parse_addr(ip, port, &ss) < 0)
    return luaL_argerror(L, 3, "invalid IP address");
  return udp_send_to(L, c, 2, (struct sockaddr *)&ss);
}

/* send(data): to the connected peer */
static int udp_send(lua_State *L) {
  conn *c = to_conn(L, 1, K_UDP);
  return udp_send_to(L, c, 2, NULL);
}

/* connect(ip, port) / connect(): set or clear the default peer */
static int udp_connect(lua_State *L) {
  conn *c = to_conn(L, 1, K_UDP);
  struct sockaddr_storage ss;
  int r;
  if (lua_isnoneornil(L, 2)) {
    if (!LIVE(c)) return fail_str(L, "closed");
    r = uv_udp_connect((uv_udp_t *)c->h->uv, NULL);
  } else {
    const char *ip = luaL_checkstring(L, 2);
    int port = (int)lh_check_range(L, 3, 0, 65535);
    if (has_nul(L, 2) || parse_addr(ip, port, &ss) < 0)
      return luaL_argerror(L, 2, "invalid IP address");
    if (!LIVE(c)) return fail_str(L, "closed");
    r = uv_udp_connect((uv_udp_t *)c->h->uv, (struct sockaddr *)&ss);
  }
  if (r < 0) return fail_st(L, r);
  lua_settop(L, 1);
  return 1;
}

static int udp_recv_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  int withaddr = (int)(kc & 1), ms = (int)((kc >> 1) - 1);
  (void)status;
  int how = was_cancelled(L, 1);
  if (how) {
    drop_waits(L, c);
    return cancel_exit(L, how);
  }
  if (!LIVE(c)) return fail_str(L, "closed");
  if (c->qhead != NULL) {
    dgram *d = c->qhead;
    int n = 1;
    c->qhead = d->next;
    if (c->qhead == NULL) c->qtail = NULL;
    c->qlen--;
    lua_pushlstring(L, d->data, d->len);
    if (withaddr && push_sockaddr(L, (struct sockaddr *)&d->from) == 3) {
      lua_pop(L, 1); /* data, ip, port */
      n = 3;
    }
    free(d);
    return n;
  }
  if (c->rerr) {
    int e = c->rerr;
    c->rerr = 0;
    return fail_st(L, e);
  }
  if (c->rtimed) {
    c->rtimed = 0;
    return fail_str(L, "timeout");
  }
  if (!c->reading) {
    int r = uv_udp_recv_start((uv_udp_t *)c->h->uv, udp_alloc_cb,
                              udp_recv_cb);
    if (r < 0) return fail_st(L, r);
    c->reading = 1;
  }
  return park_reader(L, c, ms, kc, udp_recv_k, "recvfrom");
}

static int udp_recv_common(lua_State *L, int withaddr) {
  conn *c = to_conn(L, 1, K_UDP);
  int ms;
  if (lua_isnoneornil(L, 2)) {
    ms = c ? c->timeout : -1;
  } else {
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s == s, 2, "invalid timeout");
    ms = s < 0 ? -1 : secs_to_ms(s);
  }
  lua_settop(L, 1);
  return udp_recv_k(L, LUA_OK, (lua_KContext)(((lua_KContext)ms + 1) << 1
                                              | withaddr));
}

/* recvfrom([timeout]) -> data, ip, port */
static int udp_recvfrom(lua_State *L) { return udp_recv_common(L, 1); }
/* recv([timeout]) -> data */
static int udp_recv(lua_State *L) { return udp_recv_common(L, 0); }

/* setopt(name, value): the udp options of libuv, else the generic ones. */
static int udp_setopt(lua_State *L) {
  conn *c = to_conn(L, 1, K_UDP);
  static const char *const opts[] = {"broadcast", "ttl", "multicast_ttl",
    "multicast_loop", "multicast_interface", "join", "leave", NULL};
  const char *name = luaL_checkstring(L, 2);
  uv_udp_t *u;
  int i, r = 0;
  for (i = 0; opts[i] && strcmp(opts[i], name) != 0; i++) {}
  if (opts[i] == NULL) return conn_setopt(L);
  luaL_checkany(L, 3);
  if (!LIVE(c)) return fail_str(L, "closed");
  u = (uv_udp_t *)c->h->uv;
  switch (i) {
    case 0: r = uv_udp_set_broadcast(u, lua_toboolean(L, 3)); break;
    case 1: r = uv_udp_set_ttl(u, (int)lh_check_range(L, 3, 1, 255)); break;
    case 2:
      r = uv_udp_set_multicast_ttl(u, (int)lh_check_range(L, 3, 0, 255));
      break;
    case 3: r = uv_udp_set_multicast_loop(u, lua_toboolean(L, 3)); break;
    case 4: /* (C would see only what precedes a NUL byte) */
      luaL_checkstring(L, 3);
      if (has_nul(L, 3)) return luaL_argerror(L, 3, "invalid IP address");
      r = uv_udp_set_multicast_interface(u, lua_tostring(L, 3));
      break;
    default: { /* join/leave: group [, interface] */
      const char *group, *iface = NULL;
      int bad;
      if (lua_istable(L, 3)) {
        lua_rawgeti(L, 3, 1);
        lua_rawgeti(L, 3, 2);
        group = luaL_checkstring(L, -2);
        iface = lua_tostring(L, -1);
        bad = has_nul(L, -2) || has_nul(L, -1);
      } else {
        group = luaL_checkstring(L, 3);
        iface = luaL_optstring(L, 4, NULL);
        bad = has_nul(L, 3) || has_nul(L, 4);
      }
      if (bad) return luaL_argerror(L, 3, "invalid IP address");
      r = uv_udp_set_membership(u, group, iface,
                                i == 5 ? UV_JOIN_GROUP : UV_LEAVE_GROUP);
    }
  }
  if (r < 0) return fail_st(L, r);
  lua_settop(L, 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== signals */

static void signal_cb(uv_signal_t *sig, int signum) {
  lh_handle *h = (lh_handle *)sig->data;
  (void)signum;
  if (lh_push_cb(h, LH_CB_EVENT)) {
    lh_push_cb(h, LH_CB_AUX); /* the name as given */
    lh_call(h->ctx, 1);
  }
}

/* signal(name, fn, keepalive): a started uv_signal handle calling
** fn(name) on each signal; closing it stops. Without keepalive the
** handle does not keep the loop alive. */
static int core_signal(lua_State *L) {
  core *K = getcore(L);
  int signum = lh_check_signal(L, 1);
  lh_handle *h;
  int r;
  lh_check_callable(L, 2);
  h = lh_handle_new(L, UV_SIGNAL);
  r = uv_signal_init(K->ctx->loop, lh_uv(h, uv_signal_t));
  if (r < 0) {
    lh_handle_abort(L, h);
    return fail_st(L, r);
  }
  lh_set_cb(L, h, LH_CB_EVENT, 2);
  lua_pushvalue(L, 1);
  h->cb[LH_CB_AUX] = luaL_ref(L, LUA_REGISTRYINDEX);
  r = uv_signal_start(lh_uv(h, uv_signal_t), signal_cb, signum);
  if (r < 0) {
    lh_handle_close(h);
    return fail_st(L, r);
  }
  if (!lua_toboolean(L, 3)) uv_unref(h->uv);
  return 1;
}

/* }====================================================== */

/* {====================================================== host info */

static int core_hostname(lua_State *L) {
  char buf[UV_MAXHOSTNAMESIZE];
  size_t n = sizeof(buf);
  int r = uv_os_gethostname(buf, &n);
  if (r < 0) return fail_st(L, r);
  lua_pushlstring(L, buf, n);
  return 1;
}

static int core_interfaces(lua_State *L) {
  uv_interface_address_t *ifs;
  int n, i, r = uv_interface_addresses(&ifs, &n);
  if (r < 0) return fail_st(L, r);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    char mac[18];
    const unsigned char *m = (const unsigned char *)ifs[i].phys_addr;
    lua_createtable(L, 0, 6);
    lua_pushstring(L, ifs[i].name);
    lua_setfield(L, -2, "name");
    if (push_sockaddr(L, (struct sockaddr *)&ifs[i].address) == 3) {
      lua_setfield(L, -4, "family");
      lua_pop(L, 1);
      lua_setfield(L, -2, "address");
    } else {
      lua_pop(L, 2);
    }
    if (push_sockaddr(L, (struct sockaddr *)&ifs[i].netmask) == 3) {
      lua_pop(L, 2);
      lua_setfield(L, -2, "netmask");
    } else {
      lua_pop(L, 2);
    }
    lua_pushboolean(L, ifs[i].is_internal);
    lua_setfield(L, -2, "internal");
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1],
             m[2], m[3], m[4], m[5]);
    lua_pushstring(L, mac);
    lua_setfield(L, -2, "mac");
    lua_rawseti(L, -2, i + 1);
  }
  uv_free_interface_addresses(ifs, n);
  return 1;
}

/* service(name | port, proto): the port of a service name or the name of
** a port, from the services database (a local file: it does not block
** the loop in any way that matters). */
static int core_service(lua_State *L) {
  const char *proto = luaL_optstring(L, 2, "tcp");
  struct servent se, *res = NULL;
  char buf[1024];
  if (has_nul(L, 1) || has_nul(L, 2)) return fail_str(L, "ENOTFOUND");
  if (lua_type(L, 1) == LUA_TNUMBER) {
    int port = (int)lh_check_range(L, 1, 0, 65535);
    getservbyport_r(htons((uint16_t)port), proto, &se, buf, sizeof(buf),
                    &res);
    if (res == NULL) return fail_str(L, "ENOTFOUND");
    lua_pushstring(L, res->s_name);
    return 1;
  }
  getservbyname_r(luaL_checkstring(L, 1), proto, &se, buf, sizeof(buf),
                  &res);
  if (res == NULL) return fail_str(L, "ENOTFOUND");
  lua_pushinteger(L, ntohs((uint16_t)res->s_port));
  return 1;
}

/* protocol(name | number) -> number | name */
static int core_protocol(lua_State *L) {
  struct protoent pe, *res = NULL;
  char buf[1024];
  if (has_nul(L, 1)) return fail_str(L, "ENOTFOUND");
  if (lua_type(L, 1) == LUA_TNUMBER) {
    getprotobynumber_r((int)lh_check_range(L, 1, 0, 255), &pe, buf,
                       sizeof(buf), &res);
    if (res == NULL) return fail_str(L, "ENOTFOUND");
    lua_pushstring(L, res->p_name);
    return 1;
  }
  getprotobyname_r(luaL_checkstring(L, 1), &pe, buf, sizeof(buf), &res);
  if (res == NULL) return fail_str(L, "ENOTFOUND");
  lua_pushinteger(L, res->p_proto);
  return 1;
}

/* }====================================================== */

/* {====================================================== module */

static int core_gc(lua_State *L) {
  core *K = (core *)lua_touserdata(L, 1);
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
  return 0;
}

/* init(tasks, maxline, hwm): task.lua's table of tasks, net's defaults. */
static int core_init(lua_State *L) {
  core *K = getcore(L);
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushvalue(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, K->tasks_ref);
    K->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (!lua_isnoneornil(L, 2))
    K->maxline = (size_t)lh_check_range(L, 2, 1, (lua_Integer)1 << 40);
  if (!lua_isnoneornil(L, 3))
    K->hwm = (size_t)lh_check_range(L, 3, 1, (lua_Integer)1 << 40);
  return 0;
}

/* Numbers about the core, for specs and benchmarks. */
static int core_stats(lua_State *L) {
  core *K = getcore(L);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, K->n);
  lua_setfield(L, -2, "deadlines");
  lua_pushinteger(L, (lua_Integer)sizeof(conn));
  lua_setfield(L, -2, "conn_size");
  return 1;
}

static const luaL_Reg core_functions[] = {
  {"configure", core_configure},
  {"connect", core_connect},
  {"getaddrinfo", core_getaddrinfo},
  {"getnameinfo", core_getnameinfo},
  {"hostname", core_hostname},
  {"init", core_init},
  {"interfaces", core_interfaces},
  {"listen", core_listen},
  {"listen_fd", core_listen_fd},
  {"park", core_park},
  {"protocol", core_protocol},
  {"service", core_service},
  {"signal", core_signal},
  {"sleep", core_sleep},
  {"stats", core_stats},
  {"udp", core_udp},
  {"udp_fd", core_udp_fd},
  {"wake", core_wake},
  {NULL, NULL}
};

static const luaL_Reg conn_methods[] = {
  {"buffered", conn_buffered},
  {"close", conn_close_m},
  {"flush", conn_flush},
  {"getfd", conn_getfd},
  {"getopt", conn_getopt},
  {"gettimeout", conn_gettimeout},
  {"is_closed", is_closed_m},
  {"lines", conn_lines},
  {"peername", conn_peername},
  {"read", conn_read},
  {"recv", conn_recv},
  {"setopt", conn_setopt},
  {"settimeout", conn_settimeout},
  {"shutdown", conn_shutdown},
  {"sockname", conn_sockname},
  {"write", conn_write},
  {NULL, NULL}
};

static const luaL_Reg server_methods[] = {
  {"accept", server_accept},
  {"close", conn_close_m},
  {"getfd", conn_getfd},
  {"getopt", conn_getopt},
  {"gettimeout", conn_gettimeout},
  {"is_closed", is_closed_m},
  {"setopt", conn_setopt},
  {"settimeout", conn_settimeout},
  {"sockname", conn_sockname},
  {NULL, NULL}
};

static const luaL_Reg udp_methods[] = {
  {"close", conn_close_m},
  {"connect", udp_connect},
  {"getfd", conn_getfd},
  {"getopt", conn_getopt},
  {"gettimeout", conn_gettimeout},
  {"is_closed", is_closed_m},
  {"peername", conn_peername},
  {"recv", udp_recv},
  {"recvfrom", udp_recvfrom},
  {"send", udp_send},
  {"sendto", udp_sendto},
  {"setopt", udp_setopt},
  {"settimeout", conn_settimeout},
  {"sockname", conn_sockname},
  {NULL, NULL}
};

/* The metatable of a socket kind; its methods table is returned in the
** module (core.conn_methods...) so that net.lua adds the Lua ones. */
static void new_kind(lua_State *L, int kind, const luaL_Reg *methods,
                     const char *field) {
  luaL_newmetatable(L, tnames[kind]);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, field); /* module.<field> = methods */
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, conn_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, conn_close_m);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, conn_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

int luaopen_net_core(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  core *K;
  static const char *const uvtypes[] = {"uv_tcp", "uv_pipe", "uv_udp",
                                        "uv_signal", NULL};
  int i;
  /* The uv handles behind sockets must have their metatables even when
  ** the uv bindings of those types are not built in. */
  luaL_requiref(L, "uv", luaopen_uv, 0);
  lua_pop(L, 1);
  for (i = 0; uvtypes[i] != NULL; i++) {
    if (luaL_getmetatable(L, uvtypes[i]) == LUA_TNIL)
      lh_new_metatable(L, uvtypes[i], NULL, 0);
    lua_pop(L, 1);
  }
  lua_newtable(L);
  K = (core *)lua_newuserdatauv(L, sizeof(core), 0);
  memset(K, 0, offsetof(core, rbuf));
  K->in.tag = &lh_internal_tag;
  K->in.close_cb = NULL;
  K->ctx = ctx;
  K->tasks_ref = LUA_NOREF;
  lua_newtable(L);
  K->parked_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  K->maxline = 65536;
  K->hwm = 65536;
  uv_timer_init(ctx->loop, &K->timer);
  uv_unref((uv_handle_t *)&K->timer);
  K->timer.data = K;
  uv_idle_init(ctx->loop, &K->idle); /* ref'd: a yielding task is alive */
  K->idle.data = K;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, core_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "net.core"); /* anchor */
  luaL_setfuncs(L, core_functions, 1);
  new_kind(L, K_STREAM, conn_methods, "conn_methods");
  new_kind(L, K_SERVER, server_methods, "server_methods");
  new_kind(L, K_UDP, udp_methods, "udp_methods");
  lua_pushlightuserdata(L, CANCEL);
  lua_setfield(L, -2, "CANCEL");
  lua_pushlightuserdata(L, DROP);
  lua_setfield(L, -2, "DROP");
  return 1;
}

/* }====================================================== */
