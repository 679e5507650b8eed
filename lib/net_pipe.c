/*
** net_pipe.c: conn:pipe(dst) and net.splice(a, b): bytes moved from one
** stream conn to another in C, from the source's read callback straight
** to the destination's transport write, never a Lua string.
** See Copyright Notice in README.md
**
** A pipe is a session of one direction (conn:pipe) or two (splice) over
** a pair of conns; the calling task waits, with nothing else to do, until
** the session ends. Both conns point at the session (conn->x->pipe) while it
** runs; the hooks elsewhere are few:
**   net_deliver (net_read.c)   - plaintext of a source: net_pipe_data;
**   net_wake_reader (net_conn.c) - end of input or a read error of a
**                                source: net_pipe_input;
**   write_cb (net_transport.c) - a write of a destination left:
**                                net_pipe_written (resume a paused
**                                direction, or notice a write error);
**   net_conn_close, conn_free (net_conn.c) - net_pipe_gone.
** Backpressure is write's: a direction stops reading its source while
** more than the destination's write_hwm is queued and reads again once
** the queue is down to half. Timeouts are the conns' own: a direction
** waiting for input fails after the source's timeout with no byte moved
** (in the session: a splice counts traffic either way), a paused one
** after the destination's timeout without the queue draining.
**
** No Lua runs inside the session's callbacks except the one resume of
** the task when the session ends, always their last action: the session
** is detached from both conns and its deadline first. The session's
** memory is malloc'd and counted: one reference for each conn that
** points at it and one for the task's userdata box (freed by its __gc).
*/
#include <stdlib.h>
#include <string.h>

#include "net_core.h"

enum { EOF_SHUTDOWN, EOF_CLOSE, EOF_NONE };
static const char *const eof_modes[] = {"shutdown", "close", "none", NULL};

/* where a direction failed, for the message */
enum { AT_READ, AT_WRITE };

typedef struct pdir {
  conn *src, *dst;
  lua_Integer bytes;    /* handed to dst's transport */
  uint64_t since;       /* paused: when */
  unsigned char on;     /* still moving */
  unsigned char paused; /* src not read: dst is above its hwm */
} pdir;

struct net_pipe {
  core *K;
  conn *c[2];           /* a (the source of d[0]) and b; NULL once gone */
  pdir d[2];            /* d[0]: a to b; d[1] (splice): b to a */
  int nd;               /* directions: 1 or 2 */
  int refs;             /* conns attached + the task's box */
  int err;              /* the first error, 0 for none */
  int at, errdir;       /* where it happened (AT_*), which direction */
  int eof;              /* EOF_* */
  int ref;              /* registry slot anchoring the task */
  lua_State *co;        /* the waiting task, NULL once woken */
  uint64_t last;        /* when a byte last moved (idle timeouts) */
  tmo t;                /* the earliest deadline */
  unsigned char done;   /* ended: detached, nothing registered */
  unsigned char closing; /* eof "close": close the conns when woken */
  unsigned char eclosed; /* err is a conn closed under the session */
};

#define BOX "net.pipe"

static void unref_pipe(net_pipe *P) {
  if (--P->refs == 0) free(P);
}

/* {====================================================== ending */

/* Stop reading src unless a task waits to read it (then its read goes
** on as it would have). */
static void stop_src(conn *c) {
  if (c->rco == NULL) net_rstop(c);
}

/* The conn no longer keeps the host alive for us. */
static void unref_handle(conn *c) {
  if (c->rco == NULL && !c->resting && !c->closed) uv_unref(c->h->uv);
}

/* Detach the session from its conns and its deadline: no callback
** reaches it any more. */
static void detach(net_pipe *P) {
  int i;
  for (i = 0; i < P->nd; i++) {
    pdir *d = &P->d[i];
    if (d->on && d->src != NULL && LIVE(d->src)) stop_src(d->src);
    d->on = 0;
  }
  if (P->c[1] == P->c[0]) P->c[1] = NULL; /* a:pipe(a): one reference */
  net_tmo_del(P->K, &P->t);
  P->done = 1;
  for (i = 0; i < 2; i++) {
    conn *c = P->c[i];
    if (c == NULL) continue;
    c->x->pipe = NULL;
    unref_handle(c);
    P->c[i] = NULL;
    unref_pipe(P); /* (never the last: the box holds one) */
  }
}

/* The session ends: detach, then resume the task (last: P may be freed
** by the time the resume returns). */
static void finish(net_pipe *P) {
  lh_ctx *ctx = P->K->ctx;
  lua_State *co = P->co;
  int ref = P->ref;
  if (P->done) return;
  detach(P);
  P->co = NULL;
  P->ref = LUA_NOREF;
  if (co == NULL) return;
  lh_resume(ctx, co, 0);
  luaL_unref(ctx->L, LUA_REGISTRYINDEX, ref);
}

/* Direction i failed with err (at AT_*): the whole session ends. */
static void fail(net_pipe *P, int i, int err, int at) {
  if (P->err == 0) {
    P->err = err;
    P->at = at;
    P->errdir = i;
  }
  finish(P);
}

static int all_done(net_pipe *P) {
  int i;
  for (i = 0; i < P->nd; i++)
    if (P->d[i].on) return 0;
  return 1;
}

/* Direction i's source ended cleanly: pass it on. */
static void src_eof(net_pipe *P, int i) {
  pdir *d = &P->d[i];
  conn *dst = d->dst;
  d->on = 0;
  d->paused = 0;
  if (P->eof == EOF_CLOSE) { /* closed by the task, once woken */
    P->closing = 1;
    finish(P);
    return;
  }
  if (P->eof == EOF_SHUTDOWN && LIVE(dst)) {
    int r = 0;
    if (X_OLEN(dst) > 0) r = net_flush_out(dst);
    if (r == 0) r = dst->tp->shutdown(dst);
    if (r < 0) {
      fail(P, i, r, AT_WRITE);
      return;
    }
  }
  if (all_done(P)) finish(P);
}

/* }====================================================== */

/* {====================================================== deadlines */

static void pipe_fire(core *K, tmo *t);

/* The earliest deadline of the directions still on; 0 for none. */
static uint64_t next_due(net_pipe *P, int *which) {
  uint64_t best = 0;
  int i;
  for (i = 0; i < P->nd; i++) {
    pdir *d = &P->d[i];
    uint64_t due;
    if (!d->on) continue;
    if (d->paused) {
      if (d->dst->timeout < 0) continue;
      due = d->since + (uint64_t)d->dst->timeout;
    } else {
      if (d->src->timeout < 0) continue;
      due = P->last + (uint64_t)d->src->timeout;
    }
    if (best == 0 || due < best) {
      best = due;
      if (which) *which = i;
    }
  }
  return best;
}

/* Queue the deadline when it is earlier than the one queued (lazy, as
** the reader's: an entry that fires early is queued again). */
static int arm(net_pipe *P) {
  uint64_t due = next_due(P, NULL);
  if (due == 0) return 0;
  if (P->t.idx >= 0 && P->t.due <= due) return 0;
  net_tmo_del(P->K, &P->t);
  return net_tmo_add_at(P->K, &P->t, pipe_fire, due);
}

static void pipe_fire(core *K, tmo *t) {
  net_pipe *P = container_of(t, net_pipe, t);
  int i = 0;
  uint64_t due = next_due(P, &i);
  if (P->done || due == 0) return;
  if (due > uv_now(K->ctx->loop)) {
    net_tmo_add_at(K, &P->t, pipe_fire, due);
    return;
  }
  fail(P, i, UV_ETIMEDOUT, P->d[i].paused ? AT_WRITE : AT_READ);
}

/* }====================================================== */

/* {====================================================== moving */

/* The direction of P reading c, or -1. */
static int dir_of_src(net_pipe *P, conn *c) {
  if (P->d[0].on && P->d[0].src == c) return 0;
  if (P->nd > 1 && P->d[1].on && P->d[1].src == c) return 1;
  return -1;
}

/* Hand n bytes to direction i's destination; stop reading the source
** when the destination's queue passed its hwm. 0, or the session ended
** (an error). */
static int move(net_pipe *P, int i, const char *p, size_t n) {
  pdir *d = &P->d[i];
  conn *dst = d->dst;
  uv_buf_t b;
  int r;
  if (!LIVE(dst)) {
    P->eclosed = 1;
    fail(P, i, UV_EOF, AT_WRITE);
    return -1;
  }
  if (dst->werr) {
    fail(P, i, dst->werr, AT_WRITE);
    return -1;
  }
  b = uv_buf_init((char *)p, (unsigned)n);
  r = dst->tp->write(dst, &b, 1);
  if (r < 0) {
    if (r != UV_ENOMEM && !dst->werr) dst->werr = r;
    fail(P, i, r, AT_WRITE);
    return -1;
  }
  d->bytes += (lua_Integer)n;
  P->last = uv_now(P->K->ctx->loop);
  if (!d->paused && net_queued(dst) > dst->hwm) {
    d->paused = 1;
    d->since = P->last;
    net_rstop(d->src);
    if (arm(P) < 0) {
      fail(P, i, UV_ENOMEM, AT_WRITE);
      return -1;
    }
  }
  return 0;
}

int net_pipe_data(conn *c, const char *p, size_t n) {
  net_pipe *P = c->x->pipe;
  int i = dir_of_src(P, c);
  if (i < 0) return 0; /* c is only a destination: read as usual */
  move(P, i, p, n);
  return 1;
}

int net_pipe_input(conn *c) {
  net_pipe *P = c->x->pipe;
  int i = dir_of_src(P, c);
  if (i < 0) return 0;
  if (c->rerr == UV_EOF)
    src_eof(P, i);
  else if (c->rerr)
    fail(P, i, c->rerr, AT_READ);
  return 1;
}

void net_pipe_written(conn *c) {
  net_pipe *P = c->x->pipe;
  int i;
  for (i = 0; i < P->nd; i++) {
    pdir *d = &P->d[i];
    if (!d->on || d->dst != c) continue;
    if (c->werr) {
      fail(P, i, c->werr, AT_WRITE);
      return;
    }
    if (d->paused && net_queued(c) <= c->hwm / 2) {
      d->paused = 0;
      P->last = uv_now(P->K->ctx->loop);
      net_rstart(d->src);
      if (d->src->rerr) {
        fail(P, i, d->src->rerr, AT_READ);
        return;
      }
      if (arm(P) < 0) {
        fail(P, i, UV_ENOMEM, AT_READ);
        return;
      }
    }
  }
}

void net_pipe_gone(conn *c, int wake) {
  net_pipe *P = c->x->pipe;
  int i;
  for (i = 0; i < P->nd; i++)
    if (P->d[i].on && (P->d[i].src == c || P->d[i].dst == c)) break;
  if (i < P->nd && P->err == 0) {
    P->err = UV_EOF;
    P->eclosed = 1;
    P->at = P->d[i].src == c ? AT_READ : AT_WRITE;
    P->errdir = i;
  }
  if (wake) {
    finish(P);
  } else { /* the host is ending: nothing runs Lua */
    P->co = NULL;
    detach(P);
  }
}

/* }====================================================== */

/* {====================================================== Lua */

static int box_gc(lua_State *L) {
  net_pipe **box = (net_pipe **)lua_touserdata(L, 1);
  if (*box != NULL) {
    net_pipe *P = *box;
    *box = NULL;
    if (!P->done) { /* (the state is closing under a parked task) */
      P->co = NULL;
      detach(P);
    }
    unref_pipe(P);
  }
  return 0;
}

/* Check the options table at idx (or none): the eof mode. */
static int check_opts(lua_State *L, int idx) {
  int eof = EOF_SHUTDOWN;
  if (lua_isnoneornil(L, idx)) return eof;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                   : NULL;
    if (k == NULL || strcmp(k, "eof") != 0) {
      lua_pushvalue(L, -2);
      return luaL_argerror(L, idx, lua_pushfstring(L,
        "unknown option '%s'", luaL_tolstring(L, -1, NULL)));
    }
    lua_pop(L, 1);
  }
  lua_getfield(L, idx, "eof");
  if (!lua_isnil(L, -1)) {
    const char *m = lua_tostring(L, -1);
    int j;
    for (j = 0; m != NULL && lua_type(L, -1) == LUA_TSTRING &&
                eof_modes[j] != NULL; j++)
      if (strcmp(m, eof_modes[j]) == 0) break;
    if (m == NULL || lua_type(L, -1) != LUA_TSTRING || eof_modes[j] == NULL)
      return luaL_argerror(L, idx, "eof: \"shutdown\", \"close\" or "
                           "\"none\" expected");
    eof = j;
  }
  lua_pop(L, 1);
  return eof;
}

/* Why a conn cannot take part: a programmer's mistake raises. */
static void check_free(lua_State *L, conn *c, const char *fname) {
  if (X_PIPE(c) != NULL)
    luaL_error(L, "%s: the connection is already piped", fname);
  if (c->resting)
    luaL_error(L, "%s: the connection is resting", fname);
}

static void push_err(lua_State *L, net_pipe *P, conn *c, const char *fname) {
  int st = P->err;
  const char *name = P->eclosed ? "closed"
                                : (c != NULL ? net_conn_errname(c, st)
                                             : net_errname(st));
  const char *what;
  luaL_Buffer b;
  if (P->nd == 1)
    what = P->at == AT_READ ? "reading the source" : "writing the "
                                                       "destination";
  else
    what = (P->at == AT_READ) == (P->errdir == 0) ? (P->at == AT_READ
             ? "reading a" : "writing a") : (P->at == AT_READ
             ? "reading b" : "writing b");
  lua_pushnil(L);
  lua_pushstring(L, name);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, fname);
  luaL_addstring(&b, ": ");
  luaL_addstring(&b, name);
  if (!P->eclosed && name[0] == 'E' && st != NET_ETRANSPORT &&
      st != UV_ETIMEDOUT) {
    luaL_addstring(&b, " (");
    luaL_addstring(&b, uv_strerror(st));
    luaL_addstring(&b, ")");
  }
  luaL_addstring(&b, " ");
  luaL_addstring(&b, what);
  lua_pushfstring(L, " after %I bytes", (LUAI_UACINT)P->d[0].bytes);
  luaL_addvalue(&b);
  if (P->nd > 1) {
    lua_pushfstring(L, " a to b, %I b to a", (LUAI_UACINT)P->d[1].bytes);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/* The stack: a, b, opts, box. */
static int pipe_k(lua_State *L, int status, lua_KContext kc) {
  net_pipe **box = (net_pipe **)lua_touserdata(L, 4);
  net_pipe *P = *box;
  const char *fname = kc ? "splice" : "pipe";
  conn *c;
  int how;
  (void)status;
  how = net_was_cancelled(L, 4);
  if (how || !P->done) {
    if (!P->done) {
      detach(P);
      if (P->ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, P->ref);
      P->ref = LUA_NOREF;
      P->co = NULL;
    }
    if (how) return net_cancel_exit(L, how);
  }
  if (P->closing) { /* eof = "close": the destination(s) go */
    if (P->nd > 1) {
      conn *a = *(conn **)lua_touserdata(L, 1);
      if (a != NULL) net_conn_close(L, a);
    }
    c = *(conn **)lua_touserdata(L, 2);
    if (c != NULL) net_conn_close(L, c);
  }
  if (P->err != 0) {
    pdir *d = &P->d[P->errdir];
    c = P->at == AT_READ ? d->src : d->dst;
    /* (the conn is live, or eclosed: its name is not needed) */
    push_err(L, P, P->eclosed ? NULL : c, fname);
    lua_pushinteger(L, P->d[0].bytes); /* what was moved all the same */
    if (P->nd == 1) return 4;
    lua_pushinteger(L, P->d[1].bytes);
    return 5;
  }
  lua_pushinteger(L, P->d[0].bytes);
  if (P->nd == 1) return 1;
  lua_pushinteger(L, P->d[1].bytes);
  return 2;
}

/* Start direction i: what src has buffered goes first, then the socket
** is read. 0, or the session ended. */
static int start_dir(net_pipe *P, int i) {
  pdir *d = &P->d[i];
  conn *src = d->src;
  d->on = 1;
  if (src->rlen > 0) {
    const char *p = src->rp;
    size_t n = src->rlen;
    src->rlen = 0;
    if (move(P, i, p, n) < 0) return -1;
  }
  /* the owned input buffer goes (rp may be a lent one: unread now) */
  free(src->buf);
  src->buf = NULL;
  src->rp = NULL;
  src->cap = 0;
  if (src->rerr) { /* the end, or an error, already arrived */
    net_pipe_input(src);
    return P->done ? -1 : 0;
  }
  if (!d->paused) {
    net_rstart(src);
    if (src->rerr) {
      fail(P, i, src->rerr, AT_READ);
      return -1;
    }
  }
  return 0;
}

/* run(L, a, b, nd, fname): the session over a and b (stack 1, 2; the
** options at 3). */
static int run(lua_State *L, conn *a, conn *b, int nd, const char *fname) {
  core *K = a->K;
  int eof = check_opts(L, 3), i;
  net_pipe *P, **box;
  /* (whether L can yield: every time, see park_reader in net_conn.c) */
  if (L != a->task || !lua_isyieldable(L)) {
    net_need_task(L, K, fname);
    a->task = L;
  }
  check_free(L, a, fname);
  if (b != a) check_free(L, b, fname);
  for (i = 0; i < nd; i++) {
    conn *src = i == 0 ? a : b;
    if (src->rco != NULL && lua_status(src->rco) == LUA_YIELD)
      return luaL_error(L, "%s: another task is already waiting on this "
                        "socket", fname);
  }
  /* (the pipe's pointer lives in each conn's conn_x) */
  if ((LIVE(a) && net_conn_x(a) == NULL) || (LIVE(b) && net_conn_x(b) == NULL))
    return luaL_error(L, "not enough memory");
  lua_settop(L, 3);
  box = (net_pipe **)lua_newuserdatauv(L, sizeof(net_pipe *), 0);
  *box = NULL;
  if (luaL_newmetatable(L, BOX)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  P = (net_pipe *)calloc(1, sizeof(net_pipe));
  if (P == NULL) return luaL_error(L, "not enough memory");
  *box = P;
  P->K = K;
  P->refs = 1;
  P->nd = nd;
  P->eof = eof;
  P->ref = LUA_NOREF;
  P->t.idx = -1;
  P->last = net_now(K);
  P->d[0].src = a;
  P->d[0].dst = b;
  P->d[1].src = b;
  P->d[1].dst = a;
  if (!LIVE(a) || !LIVE(b)) {
    P->err = UV_EOF;
    P->eclosed = 1;
    P->at = LIVE(a) ? AT_WRITE : AT_READ;
    P->done = 1;
    return pipe_k(L, LUA_OK, nd > 1);
  }
  P->c[0] = a;
  P->c[1] = b;
  a->x->pipe = P;
  b->x->pipe = P;
  P->refs += b != a ? 2 : 1;
  if (X_OLEN(b) > 0) net_flush_out(b); /* what b batched goes first */
  if (nd > 1 && X_OLEN(a) > 0) net_flush_out(a);
  for (i = 0; i < nd && !P->done; i++) start_dir(P, i);
  if (!P->done && arm(P) < 0) {
    detach(P);
    return luaL_error(L, "not enough memory");
  }
  if (P->done) return pipe_k(L, LUA_OK, nd > 1);
  uv_ref(a->h->uv); /* a task waits on them: keep the host alive */
  uv_ref(b->h->uv);
  P->co = L;
  net_anchor(L, &P->ref);
  return lua_yieldk(L, 0, nd > 1, pipe_k);
}

/* conn:pipe(dst [, {eof = "shutdown" | "close" | "none"}]): move what
** conn receives to dst until conn's end of input (then dst is shut down,
** closed or left as is) or an error: bytes moved, or nil, err, msg,
** bytes moved. */
static int conn_pipe(lua_State *L) {
  conn *a = net_to_conn(L, 1, K_STREAM);
  conn *b = net_to_conn(L, 2, K_STREAM);
  if (a == NULL || b == NULL) { /* (collected: as closed) */
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    lua_pushliteral(L, "pipe: closed");
    lua_pushinteger(L, 0);
    return 4;
  }
  return run(L, a, b, 1, "pipe");
}

/* splice(a, b [, opts]): conn:pipe both ways at once, in the calling
** task, until both directions ended: bytes a to b, bytes b to a, or nil,
** err, msg, bytes a to b, bytes b to a at the first failure (then neither
** direction moves on). */
static int core_splice(lua_State *L) {
  conn *a = net_to_conn(L, 1, K_STREAM);
  conn *b = net_to_conn(L, 2, K_STREAM);
  if (a == NULL || b == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    lua_pushliteral(L, "splice: closed");
    lua_pushinteger(L, 0);
    lua_pushinteger(L, 0);
    return 5;
  }
  if (a == b) luaL_argerror(L, 2, "a different connection than a expected");
  return run(L, a, b, 2, "splice");
}

static const luaL_Reg pipe_functions[] = {
  {"splice", core_splice},
  {NULL, NULL}
};

static const luaL_Reg pipe_methods[] = {
  {"pipe", conn_pipe},
  {NULL, NULL}
};

void net_pipe_open(lua_State *L) {
  net_setfuncs(L, pipe_functions);
  net_add_methods(L, K_STREAM, pipe_methods);
}

/* }====================================================== */
