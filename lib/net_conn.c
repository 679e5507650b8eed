/*
** net_conn.c: the socket object of net.core, shared by streams, servers
** and udp: lifetime, close, the reader and writer slots, timeouts, names,
** options, addresses.
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_core.h"

const char *const net_tnames[] = {"net.conn", "net.server", "net.udp"};

/* {====================================================== results */

/* The error strings of the high-level API: short and stable. */
const char *net_errname(int status) {
  switch (status) {
    case UV_EOF: return "closed";
    case UV_ETIMEDOUT: return "timeout";
    case UV_EAI_NONAME: case UV_EAI_NODATA: case UV_EAI_AGAIN:
    case UV_EAI_FAIL:
      return "ENOTFOUND";
    default: return uv_err_name(status);
  }
}

int net_fail_str(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

int net_fail_st(lua_State *L, int status) {
  return net_fail_str(L, net_errname(status));
}

const char *net_conn_errname(conn *c, int status) {
  if (status == NET_ETRANSPORT && c->tp->errmsg != NULL)
    return c->tp->errmsg(c);
  return net_errname(status);
}

/* }====================================================== */

/* {====================================================== lifetime */

void net_conn_free(lh_handle *h) {
  conn *c = (conn *)h->extra;
  lua_State *L = h->ctx->L;
  if (X_PIPE(c) != NULL) { /* closed under a pipe (uv.walk, the end) */
    c->closed = 1;
    net_pipe_gone(c, !h->ctx->shutting_down);
  }
  if (!h->ctx->shutting_down &&
      (c->rco != NULL || X_WCO(c) != NULL || c->resting)) {
    /* Closed under a waiting task (uv.walk + close, a drain): tell it
    ** "closed" rather than leave it parked for ever. */
    c->closed = 1;
    net_wake_reader(L, c);
    net_wake_writer(L, c);
  }
  if (c->resting) net_rest_unlink(c); /* (shutting down: nobody told) */
  if (c->lingering) c->K->nlinger--;
  if (c->ans != NULL) {
    if (c->kind == K_SERVER) c->ans->closed = 1;
    net_answer_unref(c->ans);
    c->ans = NULL;
  }
  h->extra = NULL;
  if (c->tp->free) c->tp->free(c);
  net_tmo_del(c->K, &c->rt);
  net_rslot_forget(c);
  luaL_unref(L, LUA_REGISTRYINDEX, c->rref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->iref);
  free(c->buf);
  if (c->x != NULL) {
    net_tmo_del(c->K, &c->x->wt);
    luaL_unref(L, LUA_REGISTRYINDEX, c->x->wref);
    free(c->x->px);
    net_batch_free(c);
    free(c->x);
    c->x = NULL;
  }
  while (c->qhead) {
    dgram *d = c->qhead;
    c->qhead = d->next;
    free(d);
  }
  if (c->ud) *c->ud = NULL;
  /* (c's memory is the handle's: it goes with it) */
}

conn_x *net_conn_x(conn *c) {
  conn_x *x = c->x;
  if (x != NULL) return x;
  x = (conn_x *)calloc(1, sizeof(conn_x));
  if (x == NULL) return NULL;
  x->c = c;
  x->wref = LUA_NOREF;
  x->wt.idx = -1;
  c->x = x;
  return x;
}

/* Push a new conn userdata of kind with an lh_handle of type (not yet
** initialized: call net_conn_init_done next). */
conn *net_conn_new(lua_State *L, core *K, uv_handle_type type, int kind) {
  conn **ud = (conn **)lua_newuserdatauv(L, sizeof(conn *), 0);
  conn *c;
  lh_handle *h;
  *ud = NULL;
  luaL_setmetatable(L, net_tnames[kind]);
  /* One block: the lh_handle header, the uv handle and c. A stream has no
  ** uv box (uv.walk makes one if it lists it): an idle connection then
  ** costs Lua its userdata alone. Servers and udp sockets keep theirs. */
  h = lh_handle_new_ex(L, type, sizeof(conn), kind != K_STREAM);
  if (kind != K_STREAM) lua_pop(L, 1); /* the box, anchored */
  c = (conn *)h->extra;
  c->h = h;
  c->ud = ud;
  c->K = K;
  c->tp = &net_plain;
  c->kind = (unsigned char)kind;
  c->rref = c->iref = LUA_NOREF;
  c->rt.idx = -1;
  c->timeout = -1;
  c->maxline = K->maxline;
  c->maxread = K->maxread;
  c->hwm = K->hwm;
  if (kind == K_SERVER) {
    c->group = ++K->ngroups;
    c->idle = -1;
  }
  h->extra = c;
  h->free_extra = net_conn_free;
  *ud = c;
  return c;
}

/* After conn_new: r is the uv_*_init result; on failure undo all. */
int net_conn_init_done(lua_State *L, conn *c, int r) {
  if (r < 0) {
    *c->ud = NULL;
    c->h->extra = NULL;
    lh_handle_abort(L, c->h); /* (c with it) */
  } else {
    /* A socket keeps the host alive only while a task waits on it (or
    ** output is queued: write requests count by themselves). */
    uv_unref(c->h->uv);
  }
  return r;
}

/* The box of a socket of any kind at idx (its conn may be NULL: closed and
** collected), or a type error naming "socket": the methods every kind
** shares, and the metamethods, which getmetatable lets a script call with
** anything. */
conn **net_check_socket(lua_State *L, int idx) {
  conn **ud = (conn **)lua_touserdata(L, idx);
  if (ud != NULL && lua_getmetatable(L, idx)) {
    int kind;
    for (kind = 0; kind < 3; kind++) {
      lua_rawgetp(L, LUA_REGISTRYINDEX, &net_tnames[kind]);
      if (lua_rawequal(L, -1, -2)) {
        lua_pop(L, 2);
        return ud;
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  luaL_typeerror(L, idx, "socket");
  return NULL;
}

/* The metatables of the kinds are also kept under light userdata keys
** (&net_tnames[kind]), and their addresses in the core (K->mt): checking
** a conn argument (every method call) is then a pointer comparison when
** the caller has the core as upvalue 1 (every function net registers:
** net_setfuncs, net_add_methods), a registry look-up otherwise. */
conn *net_to_conn(lua_State *L, int idx, int kind) {
  conn **ud = (conn **)lua_touserdata(L, idx);
  if (ud != NULL && lua_getmetatable(L, idx)) {
    core *K = net_getcore(L); /* NULL: a function without upvalues */
    int same;
    if (K != NULL) {
      same = lua_topointer(L, -1) == K->mt[kind];
      lua_pop(L, 1);
    } else {
      lua_rawgetp(L, LUA_REGISTRYINDEX, &net_tnames[kind]);
      same = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
    if (same) return *ud;
  }
  luaL_typeerror(L, idx, net_tnames[kind]);
  return NULL;
}

/* }====================================================== */

/* {====================================================== waits */

/* {------------------------------------------------------ resting */

void net_rest_link(conn *c) {
  core *K = c->K;
  c->rsnext = NULL;
  c->rsprev = K->rest_tail;
  if (K->rest_tail) K->rest_tail->rsnext = c; else K->rest_head = c;
  K->rest_tail = c;
  if (K->shelf_next == NULL) K->shelf_next = c;
}

void net_rest_unlink(conn *c) {
  core *K = c->K;
  if (K->shelf_next == c) K->shelf_next = c->rsnext;
  if (c->rsprev) c->rsprev->rsnext = c->rsnext; else K->rest_head = c->rsnext;
  if (c->rsnext) c->rsnext->rsprev = c->rsprev; else K->rest_tail = c->rsprev;
  c->rsnext = c->rsprev = NULL;
  c->resting = 0;
}

/* Push a new userdata for c, which has none (a resting conn). */
static void push_new_ud(lua_State *L, conn *c) {
  conn **ud = (conn **)lua_newuserdatauv(L, sizeof(conn *), 0);
  *ud = c;
  luaL_setmetatable(L, net_tnames[K_STREAM]);
  c->ud = ud;
}

/* A resting conn has something to tell (see core.rest, net_read.c): its
** callback runs, fn(conn, err, tag), with a new conn userdata (it had none
** while it rested): err nil when input waits to be read, else "closed",
** "timeout" or the error. The conn is off the list first: the callback
** may rest it again. */
static void rest_wake(lua_State *L, conn *c) {
  lh_ctx *ctx = c->K->ctx;
  const char *err = NULL;
  (void)L;
  if (c->closed) err = "closed";
  else if (c->rlen > 0) err = NULL;
  else if (c->rerr) err = net_conn_errname(c, c->rerr);
  else if (c->rtimed) err = "timeout";
  else return; /* nothing to tell (a TLS handshake step, a stale wake) */
  net_rest_unlink(c);
  c->rtimed = 0;
  c->rdue = 0;
  uv_unref(c->h->uv);
  L = ctx->L;
  lua_checkstack(L, LUA_MINSTACK); /* see lh_push_cb */
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->iref);
  net_unanchor(L, c->iref);
  push_new_ud(L, c);
  if (err) lua_pushstring(L, err); else lua_pushnil(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->rref);
  net_rslot_forget(c);
  net_unanchor(L, c->rref);
  lh_call(ctx, 3);
}

/* resting(server) -> n, secs: how many conns of server's rest, and for
** how long the oldest of them has (nil when none). */
static int core_resting(lua_State *L) {
  conn *s = net_to_conn(L, 1, K_SERVER);
  conn *c, *oldest = NULL;
  shelved *sh;
  lua_Integer n = 0;
  uint64_t since;
  int group = s ? s->group : 0;
  if (s == NULL) {
    lua_pushinteger(L, 0);
    return 1;
  }
  for (c = s->K->rest_head; c != NULL; c = c->rsnext)
    if (c->group == group) {
      if (oldest == NULL) oldest = c;
      n++;
    }
  /* (the shelved conns rested longer than all but the conns the shelf
  ** passed over, which are older still: either list's first can be the
  ** oldest) */
  n += net_shelf_count(s->K, group, &sh);
  lua_pushinteger(L, n);
  if (oldest == NULL && sh == NULL) return 1;
  since = oldest == NULL ? sh->rsince
        : sh == NULL ? oldest->rsince
        : sh->rsince < oldest->rsince ? sh->rsince : oldest->rsince;
  lua_pushnumber(L, (double)(net_now(s->K) - since) / 1000);
  return 2;
}

/* fed(conn): has input arrived on it (ever)? */
static int core_fed(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_pushboolean(L, c != NULL && c->fed);
  return 1;
}

/* rested(conn): has it rested (core.rest) after some input before? */
static int core_rested(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_pushboolean(L, c != NULL && c->rested);
  return 1;
}

/* close_resting(server [, n]): close the n (default: all) conns of
** server's that rest the longest; their callbacks run (err "closed").
** Returns how many. */
static int core_close_resting(lua_State *L) {
  conn *s = net_to_conn(L, 1, K_SERVER);
  int all = lua_isnoneornil(L, 2);
  lua_Integer max = luaL_optinteger(L, 2, LUA_MAXINTEGER), n = 0;
  int group;
  conn *c;
  if (s == NULL) {
    lua_pushinteger(L, 0);
    return 1;
  }
  group = s->group;
  /* All of them (close_idle, a drain): a conn that has sent nothing yet
  ** is no idle keep-alive connection but a new one whose first request
  ** may be in flight (a balancer connects, then sends): closing it would
  ** lose that request. It gets FRESH_MS to send it instead (lazy
  ** deadline, as core_rest's). */
  for (c = all ? s->K->rest_head : NULL; c != NULL; c = c->rsnext) {
    uint64_t due = net_now(s->K) + FRESH_MS;
    if (c->group != group || c->closed || c->fed) continue;
    if (c->rdue != 0 && c->rdue <= due) continue;
    c->rdue = due;
    if (c->rt.idx >= 0 && c->rt.due > due) net_tmo_del(c->K, &c->rt);
    if (c->rt.idx < 0 && net_tmo_add_at(c->K, &c->rt, net_rd_fire, due) < 0)
      c->fed = 1; /* (out of memory: closed below, as before) */
  }
  if (all) net_shelf_fresh(s->K, group, net_now(s->K) + FRESH_MS);
  /* From the head each time: a callback may rest or close other conns.
  ** Each pass closes one (it leaves the list), so at most max passes. */
  while (n < max) {
    shelved *sh = net_shelf_first(s->K, group, all);
    c = s->K->rest_head;
    while (c != NULL && (c->group != group || c->closed ||
                         (all && !c->fed)))
      c = c->rsnext;
    if (c == NULL && sh == NULL) break;
    n++;
    if (sh != NULL && (c == NULL || sh->rsince <= c->rsince) &&
        (c = net_unshelve(sh)) == NULL)
      continue; /* (gone: told) */
    net_conn_close(L, c);
    if (c->resting) net_rest_unlink(c); /* (not told: shutting down) */
  }
  lua_pushinteger(L, n);
  return 1;
}

/* }------------------------------------------------------ */

/* Resume the task parked in c's reader slot (reader, acceptor, connect). */
void net_wake_reader(lua_State *L, conn *c) {
  lua_State *co;
  if (X_PIPE(c) != NULL && net_pipe_input(c)) return; /* a pipe reads
                                                            c */
  co = c->rco;
  if (co == NULL) {
    if (c->resting) rest_wake(L, c);
    return;
  }
  c->rco = NULL;
  c->into = c->next = 0;
  c->rdue = 0; /* its deadline entry, if any, is now stale (net_rd_fire) */
  uv_unref(c->h->uv);
  /* The slot keeps co alive during the resume; cleared after unless the
  ** task parked here again (then it did not store itself again: anch_c).
  ** conn memory outlives this: it is only freed by the close callback,
  ** which never runs inside a resume. */
  c->K->anch_c = c;
  c->K->anch_co = co;
  net_resume(c->K, co);
  /* (a task that ended by resting the conn anchored the conn there) */
  if (c->rco == NULL && !c->resting) {
    net_rslot_forget(c);
    net_unanchor(L, c->rref);
  }
}

void net_wake_writer(lua_State *L, conn *c) {
  conn_x *x = c->x;
  lua_State *co = x != NULL ? x->wco : NULL;
  if (co == NULL) return;
  x->wco = NULL;
  net_tmo_del(c->K, &x->wt);
  net_resume(c->K, co); /* (the slot anchors co meanwhile) */
  if (c->x == x && x->wco == NULL) net_unanchor(L, x->wref);
}

/* {====================================================== lingering close */

/*
** A socket closed with unread input sends a reset, not a FIN, and a
** reset throws away what the peer has not read yet of our last bytes: a
** TLS client that never reads (the server's session tickets wait in its
** socket) lost the end of its output that way, and a server that answers
** before reading a whole request (http's 413 to an upload) lost its
** answer: a client that sends its whole body before it reads (python's
** http.client) got "broken pipe" instead of the 413. So the last step of
** a graceful TCP close reads and drops the input that is there; when the
** peer has not ended, more may come (what a server read ahead or parsed
** tells nothing of what is still on its way): the conn lingers, as
** Apache's lingering close, its FIN sent, dropping what comes, until the
** peer ends (most do at once, on our FIN), LINGER_READ_MS pass with
** nothing, or LINGER_MS in all. Lingering, the handle is unreferenced:
** it never holds the loop (a stop or a drain closes it). TCP only (a
** pipe's input may be another reader's).
*/

/* Close the lingering conn c now. */
static void linger_end(conn *c) {
  net_tmo_del(c->K, &c->rt);
  if (!uv_is_closing(c->h->uv)) lh_handle_close(c->h);
}

/* Silence or the whole time is over (c->rdue: its last input, c->rsince:
** when it began); lazy, as net_rd_fire: early, it is queued again. */
static void linger_fire(core *K, tmo *t) {
  conn *c = container_of(t, conn, rt);
  uint64_t now = net_now(K), due = c->rdue + LINGER_READ_MS;
  if (due > c->rsince + LINGER_MS) due = c->rsince + LINGER_MS;
  if (due > now) net_tmo_add_at(K, &c->rt, linger_fire, due);
  else linger_end(c);
}

static void linger_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn *c = (conn *)((lh_handle *)s->data)->extra;
  if (lh_readbuf_owned(c->K->ctx, b)) free(b->base);
  if (n < 0) linger_end(c); /* the peer ended (or failed): done */
  else if (n > 0) c->rdue = net_now(c->K);
}

static void linger_alloc(uv_handle_t *uvh, size_t hint, uv_buf_t *b) {
  conn *c = (conn *)((lh_handle *)uvh->data)->extra;
  (void)hint;
  lh_readbuf_alloc(c->K->ctx, b);
}

/* Start c's lingering (fd: its socket): 0 when it cannot (close now). */
static int linger_start(conn *c, uv_os_fd_t fd) {
  uint64_t now = net_now(c->K);
  if (c->K->nlinger >= LINGER_MAX) return 0;
  if (c->reading) uv_read_stop(STREAM(c));
  c->reading = 0;
  shutdown(fd, SHUT_WR); /* (our output is out: its FIN, if not sent yet) */
  if (uv_read_start(STREAM(c), linger_alloc, linger_read) != 0) return 0;
  c->rdue = c->rsince = now;
  net_tmo_del(c->K, &c->rt);
  if (net_tmo_add(c->K, &c->rt, linger_fire, LINGER_READ_MS) != 0) {
    uv_read_stop(STREAM(c));
    return 0;
  }
  uv_unref(c->h->uv);
  c->h->detached = 1; /* (closed for Lua already: no uv.walk shows it) */
  c->lingering = 1;
  c->K->nlinger++;     /* (conn_free counts it out) */
  return 1;
}

/* The last step of a graceful close (see above). */
void net_close_stream(conn *c) {
  uv_os_fd_t fd;
  if (c->h->uv->type == UV_TCP && !uv_is_closing(c->h->uv) &&
      uv_fileno(c->h->uv, &fd) == 0) {
    char sink[4096];
    int i, ended = 0;
    for (i = 0; i < 256; i++) { /* 1 MiB at most */
      ssize_t n = read(fd, sink, sizeof(sink));
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      ended = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
      break;
    }
    if (!ended && linger_start(c, fd)) return;
  }
  lh_handle_close(c->h);
}

/* }====================================================== */

static void shutdown_close_cb(uv_shutdown_t *req, int status) {
  conn *c = (conn *)req->data;
  (void)status;
  free(req);
  if (c != NULL && c->h != NULL) net_close_stream(c);
}

/* LINGER_MS after a close with output queued: close now. */
static void output_linger_fire(core *K, tmo *t) {
  (void)K;
  lh_handle_close(container_of(t, conn_x, wt)->c->h);
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
void net_conn_close(lua_State *L, conn *c) {
  if (c->closed) return;
  c->closed = 1;
  /* (its conns answer nothing more in C: a closed server's response is
  ** the connection's last, which http's Lua says) */
  if (c->kind == K_SERVER && c->ans != NULL) c->ans->closed = 1;
  if (c->reading) {
    if (c->kind == K_UDP)
      uv_udp_recv_stop((uv_udp_t *)c->h->uv);
    else
      uv_read_stop(STREAM(c));
    c->reading = 0;
  }
  net_wake_reader(L, c);
  net_wake_writer(L, c);
  if (X_PIPE(c) != NULL) net_pipe_gone(c, 1);
  if (X_OLEN(c) > 0)
    net_flush_out(c); /* setvbuf's batch goes out before the close */
  if (c->tp->close && c->kind == K_STREAM && !uv_is_closing(c->h->uv))
    c->tp->close(c); /* e.g. a TLS close_notify, queued with net_send */
  if (c->nwreq > 0 && c->kind == K_STREAM && !uv_is_closing(c->h->uv) &&
      !abortive(c)) {
    conn_x *x = net_conn_x(c); /* (its wt: the linger's deadline) */
    uv_shutdown_t *req = x != NULL ?
      (uv_shutdown_t *)malloc(sizeof(uv_shutdown_t)) : NULL;
    int r = req != NULL ? uv_shutdown(req, STREAM(c), shutdown_close_cb)
                        : UV_ENOMEM;
    if (r == 0) req->data = c;
    else free(req);
    /* ENOTCONN with writes in flight: a shutdown asked earlier (conn:
    ** shutdown, a pipe's end) waits for them, and its callback closes the
    ** handle (net_transport.c's shutdown_cb); closing now would drop
    ** them. */
    if (r == 0 || (r == UV_ENOTCONN && x != NULL)) {
      c->h->detached = 1; /* the host's now: no uv.walk shows it */
      net_tmo_add(c->K, &x->wt, output_linger_fire, LINGER_MS);
      return;
    }
  }
  if (c->kind == K_STREAM && !abortive(c)) net_close_stream(c);
  else lh_handle_close(c->h);
}

/* The reader's deadline. Lazy: the entry may be older than the wait
** (see net_park_reader). */
void net_rd_fire(core *K, tmo *t) {
  conn *c = container_of(t, conn, rt);
  if ((c->rco == NULL && !c->resting) || c->rdue == 0) return; /* stale */
  if (c->rdue > uv_now(K->ctx->loop)) { /* early: queue it again */
    net_tmo_add_at(K, &c->rt, net_rd_fire, c->rdue);
    return;
  }
  /* (the deadline of a task closed by force: nobody to time out) */
  c->rtimed = c->resting || lua_status(c->rco) == LUA_YIELD;
  net_wake_reader(K->ctx->L, c);
}

static void wr_fire(core *K, tmo *t) {
  conn *c = container_of(t, conn_x, wt)->c;
  c->wtimed = c->x->wco != NULL && lua_status(c->x->wco) == LUA_YIELD;
  net_wake_writer(K->ctx->L, c);
}

/* Park the running task in c's reader slot; k continues it. */
static int park_reader(lua_State *L, conn *c, int ms, lua_KContext kc,
                       lua_KFunction k, const char *what, net_buffer *nb,
                       int next, int level) {
  /* (that L is a task: checked once per task and connection; that it can
  ** yield, every time: a finalizer or a metamethod that a task runs can
  ** call this, and a park whose yield then fails would leave L in the
  ** reader slot, resumed by this conn's next read wherever it waits) */
  if (L != c->task || !lua_isyieldable(L)) {
    net_need_task_at(L, c->K, what, level);
    c->task = L;
  }
  if (c->rco != NULL && lua_status(c->rco) == LUA_YIELD) {
    luaL_where(L, level);
    lua_pushfstring(L, "%s: another task is already waiting on this "
                    "socket", what);
    lua_concat(L, 2);
    return lua_error(L);
  }
  /* A read that would wait first sends what setvbuf batched: the peer
  ** may be waiting for it before it answers. */
  if (X_OLEN(c) > 0) net_flush_out(c);
  c->rsince = net_now(c->K); /* (one clock read per wait) */
  if (ms >= 0) {
    /* Deadlines of reads are lazy: most reads end before it, and an entry
    ** already queued for an earlier time is kept (it fires early and is
    ** queued again): no heap operation per message. */
    uint64_t due = c->rsince + (uint64_t)ms;
    c->rdue = due;
    if (c->rt.idx >= 0 && c->rt.due > due) net_tmo_del(c->K, &c->rt);
    if (c->rt.idx < 0 && net_tmo_add_at(c->K, &c->rt, net_rd_fire, due) < 0)
      return luaL_error(L, "not enough memory");
  }
  c->rco = L;
  c->rtimed = 0;
  /* (every park says whether its reader takes the next read in place:
  ** a stale mark never outlives the wait it was made for) */
  c->into = nb != NULL;
  if (nb != NULL) c->rp = nb->data; /* (rlen is 0: nothing is unread) */
  c->next = (unsigned char)next;
  uv_ref(c->h->uv); /* a task waits on it: keep the host alive */
  /* The slot holds L already when L was just woken from it. */
  if (c->K->anch_c != c || c->K->anch_co != L) {
    net_anchor(L, &c->rref);
    c->K->anch_c = c;
    c->K->anch_co = L;
  }
  return lua_yieldk(L, 0, kc, k);
}

int net_park_reader(lua_State *L, conn *c, int ms, lua_KContext kc,
                    lua_KFunction k, const char *what) {
  return park_reader(L, c, ms, kc, k, what, NULL, 0, 1);
}

int net_park_reader_at(lua_State *L, conn *c, int ms, lua_KContext kc,
                       lua_KFunction k, const char *what, int level) {
  return park_reader(L, c, ms, kc, k, what, NULL, 0, level);
}

int net_park_reader_into(lua_State *L, conn *c, int ms, lua_KContext kc,
                         lua_KFunction k, net_buffer *nb) {
  return park_reader(L, c, ms, kc, k, "recv_into", nb, 0, 1);
}

int net_park_reader_next(lua_State *L, conn *c, int ms, lua_KContext kc,
                         lua_KFunction k) {
  return park_reader(L, c, ms, kc, k, "recv_wait", NULL, 1, 1);
}

/* May L park as c's writer (a task that can yield, and no other writer
** parked)? net_check_writer raises, naming why, when it may not. */
int net_writer_can_wait(lua_State *L, conn *c) {
  return net_can_wait(L, c->K) &&
         !(X_WCO(c) != NULL && lua_status(c->x->wco) == LUA_YIELD);
}

void net_check_writer(lua_State *L, conn *c, const char *what) {
  net_need_task(L, c->K, what);
  if (X_WCO(c) != NULL && lua_status(c->x->wco) == LUA_YIELD)
    luaL_error(L, "%s: another task is already writing to this socket",
               what);
}

int net_park_writer(lua_State *L, conn *c, int flush, lua_KFunction k,
                    const char *what) {
  conn_x *x;
  net_check_writer(L, c, what);
  x = net_conn_x(c);
  if (x == NULL || (c->timeout >= 0 &&
      net_tmo_add(c->K, &x->wt, wr_fire, (uint64_t)c->timeout) < 0))
    return luaL_error(L, "not enough memory");
  x->wco = L;
  c->wtimed = 0;
  c->wflush = (unsigned char)flush;
  net_anchor(L, &x->wref);
  return lua_yieldk(L, 0, 0, k);
}

/* Cancel cleanup for either slot. */
void net_drop_waits(lua_State *L, conn *c) {
  if (c == NULL) return;
  if (c->rco == L) {
    c->rco = NULL;
    c->into = c->next = 0;
    c->rdue = 0;
    uv_unref(c->h->uv);
    net_rslot_forget(c);
    net_unanchor(L, c->rref);
  }
  if (X_WCO(c) == L) {
    c->x->wco = NULL;
    net_tmo_del(c->K, &c->x->wt);
    net_unanchor(L, c->x->wref);
  }
}

static int conn_close_m(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  if (*ud != NULL) net_conn_close(L, *ud);
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_gc(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  conn *c = *ud;
  if (c != NULL) {
    *ud = NULL;
    c->ud = NULL;
    if (!c->closed) net_conn_close(L, c);
  }
  return 0;
}

static int conn_tostring(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  const char *tname = "net socket";
  int i;
  for (i = 0; i < 3; i++)
    if (luaL_testudata(L, 1, net_tnames[i])) tname = net_tnames[i];
  if (!LIVE(*ud))
    lua_pushfstring(L, "%s (closed)", tname);
  else
    lua_pushfstring(L, "%s (%s): %p", tname,
                    uv_handle_type_name((*ud)->h->uv->type), (void *)*ud);
  return 1;
}

static int is_closed_m(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  lua_pushboolean(L, !LIVE(*ud));
  return 1;
}

/* Seconds (checked: not NaN) to milliseconds for a wait: -1 (none)
** when negative; past INT_MAX ms (24.8 days) clamped, since converting a
** double out of int's range is undefined (a long timeout became none). */
int net_secs_to_ms(double s) {
  if (s < 0) return -1;
  if (s * 1000 + 0.5 >= (double)INT_MAX) return INT_MAX;
  return (int)(s * 1000 + 0.5);
}

/* settimeout(seconds | nil): nil or negative means none. */
static int conn_settimeout(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  conn *c;
  c = *ud;
  if (lua_isnoneornil(L, 2)) {
    if (c) c->timeout = -1;
  } else {
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s == s, 2, "invalid timeout");
    if (c) c->timeout = s < 0 ? -1 : net_secs_to_ms(s);
  }
  lua_settop(L, 1);
  return 1;
}

static int conn_gettimeout(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  if (*ud == NULL || (*ud)->timeout < 0)
    lua_pushnil(L);
  else
    lua_pushnumber(L, (*ud)->timeout / 1000.0);
  return 1;
}

int net_push_sockaddr(lua_State *L, const struct sockaddr *sa) {
  char ip[INET6_ADDRSTRLEN];
  int port;
  if (lh_sockaddr_ip(sa, ip, &port) < 0)
    return net_fail_str(L, "EAFNOSUPPORT");
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  lua_pushstring(L, sa->sa_family == AF_INET ? "inet" : "inet6");
  return 3;
}

static int get_name(lua_State *L, int peer) {
  conn **ud = net_check_socket(L, 1);
  conn *c;
  struct sockaddr_storage ss;
  int len = sizeof(ss), r;
  c = *ud;
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->h->uv->type == UV_NAMED_PIPE) {
    char path[256];
    size_t n = sizeof(path);
    r = peer ? uv_pipe_getpeername((uv_pipe_t *)c->h->uv, path, &n)
             : uv_pipe_getsockname((uv_pipe_t *)c->h->uv, path, &n);
    if (r < 0) return net_fail_st(L, r);
    lua_pushlstring(L, path, n);
    return 1;
  }
  if (peer && c->x != NULL && c->x->px != NULL) /* a PROXY header's */
    return net_push_sockaddr(L, (struct sockaddr *)&c->x->px->src);
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
  if (r < 0) return net_fail_st(L, r);
  return net_push_sockaddr(L, (struct sockaddr *)&ss);
}

static int conn_peername(lua_State *L) { return get_name(L, 1); }
static int conn_sockname(lua_State *L) { return get_name(L, 0); }

/* The socket of a live conn (0), or a status. A udp socket made with no
** address and no family (net.udp{}) has none yet: libuv makes it at the
** first send or connect; an option needs it now (net_udp_socket). */
static int conn_fd(conn *c, uv_os_fd_t *fd) {
  int r = uv_fileno(c->h->uv, fd);
  if (r == UV_EBADF && c->kind == K_UDP) {
    r = net_udp_socket(c, AF_INET);
    if (r == 0) r = uv_fileno(c->h->uv, fd);
  }
  return r;
}

/* lh_sockopt_* answer luv-style (nil, "ENAME: msg", "ENAME"): keep the
** short name; set returns the socket so calls chain. */
static int sockopt_result(lua_State *L, int r, int chain) {
  if (r >= 3 && lua_isnil(L, -r)) {
    const char *name = lua_tostring(L, -1);
    return net_fail_str(L, name ? name : "EINVAL");
  }
  if (chain) {
    lua_settop(L, 1);
    return 1;
  }
  return r;
}

int net_conn_setopt(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  uv_os_fd_t fd;
  int r;
  luaL_checkany(L, 3);
  lh_sockopt_check(L, 2, 3); /* (a mistake makes no socket) */
  if (!LIVE(*ud)) return net_fail_str(L, "closed");
  if ((r = conn_fd(*ud, &fd)) < 0)
    return net_fail_str(L, r == UV_EBADF ? "closed" : net_errname(r));
  r = lh_sockopt_set(L, fd, 2, 3);
  return sockopt_result(L, r, 1);
}

static int conn_getopt(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  uv_os_fd_t fd;
  int r;
  lh_sockopt_check(L, 2, 0);
  if (!LIVE(*ud)) return net_fail_str(L, "closed");
  if ((r = conn_fd(*ud, &fd)) < 0)
    return net_fail_str(L, r == UV_EBADF ? "closed" : net_errname(r));
  return sockopt_result(L, lh_sockopt_get(L, fd, 2), 0);
}

static int conn_getfd(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  uv_os_fd_t fd;
  int r;
  if (!LIVE(*ud)) return net_fail_str(L, "closed");
  if ((r = conn_fd(*ud, &fd)) < 0)
    return net_fail_str(L, r == UV_EBADF ? "closed" : net_errname(r));
  lua_pushinteger(L, fd);
  return 1;
}

/* }====================================================== */

/* {====================================================== opener */

/* configure(sock, maxline, hwm, idle_ms, maxread): limits (nil keeps a
** value). */
static int core_configure(lua_State *L) {
  conn **ud = net_check_socket(L, 1);
  conn *c;
  c = *ud;
  if (c == NULL) return 0;
  if (!lua_isnoneornil(L, 2))
    c->maxline = (uint32_t)lh_check_range(L, 2, 1, NET_LIMIT_MAX);
  if (!lua_isnoneornil(L, 3))
    c->hwm = (size_t)lh_check_range(L, 3, 1, (lua_Integer)1 << 40);
  if (!lua_isnoneornil(L, 4) && c->kind == K_SERVER)
    c->idle = (int)lh_check_range(L, 4, -1, (lua_Integer)1 << 30);
  if (!lua_isnoneornil(L, 5))
    c->maxread = (uint32_t)lh_check_range(L, 5, 1, NET_LIMIT_MAX);
  return 0;
}

/* The metatable of a socket kind; its methods table is returned in the
** module (core.conn_methods...) so that net.lua adds the Lua ones. The
** other files add theirs with net_add_methods. */
static void new_kind(lua_State *L, int module, int kind,
                     const luaL_Reg *methods, const char *field) {
  core *K = (core *)lua_touserdata(L, -1);
  luaL_newmetatable(L, net_tnames[kind]);
  K->mt[kind] = lua_topointer(L, -1);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &net_tnames[kind]);
  lua_newtable(L);
  lua_pushvalue(L, -3); /* the core: upvalue 1 (see net_to_conn) */
  luaL_setfuncs(L, methods, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, module, field); /* module.<field> = methods */
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, conn_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, conn_close_m);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, conn_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

void net_add_methods(lua_State *L, int kind, const luaL_Reg *l) {
  luaL_getmetatable(L, net_tnames[kind]);
  lua_getfield(L, -1, "__index");
  lua_pushvalue(L, -3); /* the core: upvalue 1 (see net_to_conn) */
  luaL_setfuncs(L, l, 1);
  lua_pop(L, 2);
}

/* What every socket kind has; peername only where there is a peer. */
static const luaL_Reg conn_methods[] = {
  {"close", conn_close_m},
  {"getfd", conn_getfd},
  {"getopt", conn_getopt},
  {"gettimeout", conn_gettimeout},
  {"is_closed", is_closed_m},
  {"peername", conn_peername},
  {"setopt", net_conn_setopt},
  {"settimeout", conn_settimeout},
  {"sockname", conn_sockname},
  {NULL, NULL}
};

static const luaL_Reg server_methods[] = {
  {"close", conn_close_m},
  {"getfd", conn_getfd},
  {"getopt", conn_getopt},
  {"gettimeout", conn_gettimeout},
  {"is_closed", is_closed_m},
  {"setopt", net_conn_setopt},
  {"settimeout", conn_settimeout},
  {"sockname", conn_sockname},
  {NULL, NULL}
};

/* idle_for(conn): seconds a task has been waiting to read the live
** stream conn (or the conn has been resting, core.rest) with nothing
** unread, or nil when it is not idle (nobody
** waits to read, or input waits to be read: a client that sent half a
** line is not idle). net's serve sheds the one idle the longest at
** max_connections. */
static int core_idle_for(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  if (!LIVE(c) || ((c->rco == NULL || lua_status(c->rco) != LUA_YIELD) &&
                   !c->resting) ||
      c->rlen > 0 || c->cstatus == 1)
    return 0;
  lua_pushnumber(L, (double)(net_now(c->K) - c->rsince) / 1000);
  return 1;
}

static const luaL_Reg conn_functions[] = {
  {"close_resting", core_close_resting},
  {"fed", core_fed},
  {"rested", core_rested},
  {"configure", core_configure},
  {"idle_for", core_idle_for},
  {"resting", core_resting},
  {NULL, NULL}
};

void net_conn_open(lua_State *L) {
  int module = lua_absindex(L, -2);
  net_setfuncs(L, conn_functions);
  new_kind(L, module, K_STREAM, conn_methods, "conn_methods");
  new_kind(L, module, K_SERVER, server_methods, "server_methods");
  new_kind(L, module, K_UDP, conn_methods, "udp_methods");
}

/* }====================================================== */
