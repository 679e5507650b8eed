/*
** net_shelf.c: resting conns put away. A conn that has rested (core.rest,
** net_read.c) for SHELF_MS goes on the shelf: its uv handle is closed, a
** duplicate of its socket is watched in an epoll set of the core's, and
** of its C block (the lh_handle header, the uv_tcp_t and the conn, 552
** bytes) only the conn is left, in a block of its own, still on the
** core's list of resting conns, its deadline and registry slots as they
** were. An idle keep-alive connection then costs what an nginx one does
** (bench/README.md, "Bytes per idle connection").
**
** Whatever would touch the handle takes the conn off the shelf first
** (net_unshelve): input, the end or an error on the socket (the epoll set
** says), its deadline (net_rd_fire), a close_resting. It is then a
** resting conn as before, read by libuv, and its callback runs as it
** would have. A conn that sees input within SHELF_MS (a client's next
** request) never comes here: the shelf's system calls (a dup, a close
** and two epoll_ctl's there and back, a uv handle made again) are paid
** only by conns that were idle for that long.
**
** Only plain stream conns with nothing under way are shelved: no TLS
** (its state is the bytes), no output queued, no task parked, no uv box
** (uv.walk showed it to a script), no buffered input. Linux only (epoll):
** elsewhere nothing is shelved. A shelved conn is not a uv handle:
** uv.walk does not list it.
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net_core.h"

#if defined(__linux__)
#include <sys/epoll.h>
#define HAVE_SHELF 1
#else
#define HAVE_SHELF 0
#endif

#define SHELF_BATCH 64 /* events taken from the epoll set at a time */

/* The resting conn o now lives at n (a copy): everything that points at
** it is told. */
static void moved(conn *o, conn *n) {
  core *K = n->K;
  if (n->rsprev) n->rsprev->rsnext = n; else K->rest_head = n;
  if (n->rsnext) n->rsnext->rsprev = n; else K->rest_tail = n;
  if (K->shelf_next == o) K->shelf_next = n;
  if (n->rt.idx >= 0) K->heap[n->rt.idx] = &n->rt;
  if (n->x != NULL) n->x->c = n;
  if (K->anch_c == o) K->anch_c = NULL;
}

void net_shelf_init(core *K) {
  K->shelf_fd = -1;
  uv_timer_init(K->ctx->loop, &K->shelf_timer);
  uv_unref((uv_handle_t *)&K->shelf_timer);
  K->shelf_timer.data = K; /* (K starts with its lh_internal) */
}

#if HAVE_SHELF

static int can_shelve(conn *c) {
  lh_handle *h = c->h;
  conn_x *x = c->x;
  int i;
  if (h == NULL || !c->resting || c->closed || c->tp != &net_plain ||
      c->tpdata != NULL || c->rlen > 0 || c->rerr || c->werr ||
      c->nwreq > 0 || c->lingering || c->buf != NULL || c->rco != NULL ||
      h->box != NULL || h->ref != LUA_NOREF || h->pins > 0 ||
      h->bind != NULL || h->detached || uv_is_closing(h->uv))
    return 0;
  if (h->uv->type != UV_TCP &&
      (h->uv->type != UV_NAMED_PIPE || ((uv_pipe_t *)h->uv)->ipc))
    return 0;
  if (x != NULL && (x->wco != NULL || x->olen > 0 || x->obuf != NULL ||
                    x->pipe != NULL || x->wt.idx >= 0))
    return 0;
  for (i = 0; i < LH_NCB; i++)
    if (h->cb[i] != LUA_NOREF) return 0;
  return 1;
}

static void poll_cb(uv_poll_t *p, int status, int events);

static int open_set(core *K) {
  int fd;
  if (K->shelf_fd >= 0) return 0;
  fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return -1;
  if (uv_poll_init(K->ctx->loop, &K->shelf_poll, fd) < 0) {
    close(fd);
    return -1;
  }
  K->shelf_fd = fd;
  K->shelf_poll.data = K; /* (K starts with its lh_internal) */
  uv_poll_start(&K->shelf_poll, UV_READABLE, poll_cb);
  uv_unref((uv_handle_t *)&K->shelf_poll); /* ref'd while it holds any */
  return 0;
}

/* Put c on the shelf; nothing changes when any step fails. */
static void shelve(core *K, conn *c) {
  struct epoll_event ev;
  uv_os_fd_t ofd;
  conn *s;
  int fd;
  if (open_set(K) < 0 || uv_fileno(c->h->uv, &ofd) < 0) return;
  fd = fcntl(ofd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return;
  s = (conn *)malloc(sizeof(conn));
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.ptr = s;
  if (s == NULL || epoll_ctl(K->shelf_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    free(s);
    close(fd);
    return;
  }
  memcpy(s, c, sizeof(conn));
  s->h = NULL;
  s->fd = fd;
  s->reading = 0;
  moved(c, s);
  /* The handle goes with the old block (c in it), the socket stays open
  ** through fd: closing one of two descriptors sends nothing. */
  c->h->extra = NULL;
  c->h->free_extra = NULL;
  lh_handle_close(c->h);
  if (K->nshelved++ == 0) uv_ref((uv_handle_t *)&K->shelf_poll);
}

static void sweep_cb(uv_timer_t *t) {
  core *K = container_of(t, core, shelf_timer);
  uint64_t now = net_now(K);
  conn *c = K->shelf_next;
  while (c != NULL && now - c->rsince >= SHELF_MS) {
    conn *next = c->rsnext;
    if (can_shelve(c)) shelve(K, c);
    c = next;
  }
  K->shelf_next = c;
  if (c != NULL)
    uv_timer_start(t, sweep_cb, c->rsince + SHELF_MS - now, 0);
}

void net_shelf_rested(core *K) {
  if (!uv_is_active((uv_handle_t *)&K->shelf_timer) &&
      K->ctx->shutting_down == 0)
    uv_timer_start(&K->shelf_timer, sweep_cb, SHELF_MS, 0);
}

/* A uv handle for s again (s freed), or NULL with s as it was. */
static conn *reopen(conn *s) {
  core *K = s->K;
  uv_loop_t *loop = K->ctx->loop;
  uv_handle_type type = uv_guess_handle(s->fd);
  lh_handle *h;
  conn *c;
  int r;
  if (type != UV_TCP && type != UV_NAMED_PIPE) return NULL;
  h = lh_handle_alloc(K->ctx, type, sizeof(conn));
  if (h == NULL) return NULL;
  if (type == UV_TCP) {
    uv_tcp_init(loop, (uv_tcp_t *)h->uv);
    r = uv_tcp_open((uv_tcp_t *)h->uv, s->fd);
  } else {
    uv_pipe_init(loop, (uv_pipe_t *)h->uv, 0);
    r = uv_pipe_open((uv_pipe_t *)h->uv, s->fd);
  }
  if (r < 0) {
    h->extra = NULL;
    lh_handle_close(h); /* (fd is not its own yet: open failed) */
    return NULL;
  }
  epoll_ctl(K->shelf_fd, EPOLL_CTL_DEL, s->fd, NULL);
  c = (conn *)h->extra;
  memcpy(c, s, sizeof(conn));
  c->h = h;
  c->fd = -1;
  h->free_extra = net_conn_free;
  moved(s, c);
  free(s);
  /* (a resting conn keeps the host alive, as core.rest's uv_ref) */
  if (--K->nshelved == 0) uv_unref((uv_handle_t *)&K->shelf_poll);
  net_rstart(c);
  return c;
}

/* Readiness on shelved sockets: each goes back to libuv, which reads it
** in this loop's next turn. No Lua runs here (a callback could free
** another conn of this batch). One that cannot go back yet (out of
** memory) leaves the set and times out now, where net_unshelve tells
** its callback. */
static void poll_cb(uv_poll_t *p, int status, int events) {
  core *K = container_of(p, core, shelf_poll);
  struct epoll_event ev[SHELF_BATCH];
  int i, n;
  (void)status;
  (void)events;
  n = epoll_wait(K->shelf_fd, ev, SHELF_BATCH, 0);
  for (i = 0; i < n; i++) {
    conn *s = (conn *)ev[i].data.ptr;
    if (reopen(s) != NULL) continue;
    epoll_ctl(K->shelf_fd, EPOLL_CTL_DEL, s->fd, NULL);
    s->rdue = net_now(K);
    net_tmo_add_at(K, &s->rt, net_rd_fire, s->rdue);
  }
}

#else

void net_shelf_rested(core *K) { (void)K; }

static conn *reopen(conn *s) { (void)s; return NULL; }

#endif

/* Free what s holds but its registry slots. */
static void free_shelved(conn *s) {
  close(s->fd);
  if (s->x != NULL) {
    free(s->x->px);
    free(s->x);
  }
  free(s);
}

conn *net_unshelve(conn *s) {
  core *K = s->K;
  lh_ctx *ctx = K->ctx;
  lua_State *L = ctx->L;
  conn **ud;
  /* (at the exit, past its walks, the loop takes nothing new) */
  conn *c = ctx->shutting_down > 1 ? NULL : reopen(s);
  if (c != NULL) return c;
  /* Gone: its callback hears "closed", with a conn that reads closed. */
#if HAVE_SHELF
  if (K->shelf_fd >= 0) epoll_ctl(K->shelf_fd, EPOLL_CTL_DEL, s->fd, NULL);
#endif
  if (--K->nshelved == 0) uv_unref((uv_handle_t *)&K->shelf_poll);
  net_rest_unlink(s);
  net_tmo_del(K, &s->rt);
  if (ctx->shutting_down > 1) {
    free_shelved(s);
    return NULL;
  }
  lua_checkstack(L, LUA_MINSTACK); /* see lh_push_cb */
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->iref);
  ud = (conn **)lua_newuserdatauv(L, sizeof(conn *), 0);
  *ud = NULL;
  luaL_setmetatable(L, net_tnames[K_STREAM]);
  lua_pushliteral(L, "closed");
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->rref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->iref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->rref);
  free_shelved(s);
  lh_call(ctx, 3);
  return NULL;
}

/* At the core's __gc (lua_close, the loop closed): the shelved conns'
** sockets and memory. Nobody is told, as a resting conn closed by the
** exit's walk is not (net_conn_free). */
void net_shelf_free(core *K) {
  conn *c = K->rest_head;
  while (c != NULL) {
    conn *next = c->rsnext;
    if (c->h == NULL) {
      net_rest_unlink(c);
      free_shelved(c);
    }
    c = next;
  }
  if (K->shelf_fd >= 0) close(K->shelf_fd);
  K->shelf_fd = -1;
}
