/*
** net_shelf.c: resting conns put away. A conn that has rested (core.rest,
** net_read.c) for SHELF_MS goes on the shelf: its uv handle is closed, a
** duplicate of its socket is watched in an epoll set of the core's, and
** its C block (the lh_handle header, the uv_tcp_t and the conn, 552
** bytes) gives way to a `shelved` (net_core.h) of 120 bytes: what makes
** the conn again (its deadline, registry slots, settings, PROXY
** address), on the core's shelf, oldest first (bench/README.md, "Bytes
** per idle connection").
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

#include "alloc.h"
#include "net_core.h"

#if defined(__linux__)
#include <sys/epoll.h>
#define HAVE_SHELF 1
#else
#define HAVE_SHELF 0
#endif

#define SHELF_BATCH 64 /* events taken from the epoll set at a time */

void net_shelf_init(core *K) {
  K->shelf_fd = -1;
  uv_timer_init(K->ctx->loop, &K->shelf_timer);
  uv_unref((uv_handle_t *)&K->shelf_timer);
  K->shelf_timer.data = K; /* (K starts with its lh_internal) */
}

static void shelf_unlink(shelved *s) {
  core *K = s->K;
  if (s->prev) s->prev->next = s->next; else K->shelf_head = s->next;
  if (s->next) s->next->prev = s->prev; else K->shelf_tail = s->prev;
  s->next = s->prev = NULL;
}

shelved *net_shelf_first(core *K, int group, int fed) {
  shelved *s;
  for (s = K->shelf_head; s != NULL; s = s->next)
    if (s->group == group && (s->fed || !fed)) return s;
  return NULL;
}

lua_Integer net_shelf_count(core *K, int group, shelved **oldest) {
  lua_Integer n = 0;
  shelved *s;
  *oldest = NULL;
  for (s = K->shelf_head; s != NULL; s = s->next)
    if (s->group == group && n++ == 0) *oldest = s;
  return n;
}

static void shelf_fire(core *K, tmo *t);

void net_shelf_fresh(core *K, int group, uint64_t due) {
  shelved *s;
  for (s = K->shelf_head; s != NULL; s = s->next) {
    if (s->group != group || s->fed) continue;
    if (s->rdue != 0 && s->rdue <= due) continue;
    s->rdue = due;
    if (s->rt.idx >= 0 && s->rt.due > due) net_tmo_del(K, &s->rt);
    if (s->rt.idx < 0 && net_tmo_add_at(K, &s->rt, shelf_fire, due) < 0)
      s->fed = 1; /* (out of memory: close_resting closes it at once) */
  }
}

/* Free what s holds but its registry slots. */
static void free_shelved(shelved *s) {
  close(s->fd);
  if (s->ans != NULL) net_answer_unref(s->ans);
  if (s->x != NULL) {
    free(s->x->px);
    free(s->x);
  }
  free(s);
}

#if HAVE_SHELF

static int can_shelve(conn *c) {
  lh_handle *h = c->h;
  conn_x *x = c->x;
  int i;
  if (!c->resting || c->closed || c->tp != &net_plain ||
      c->tpdata != NULL || c->rlen > 0 || c->into ||
      c->buf != NULL || c->rerr || c->werr || c->nwreq > 0 ||
      c->cstatus != 0 || c->lingering || c->rco != NULL ||
      c->kind != K_STREAM || h->box != NULL || h->ref != LUA_NOREF ||
      h->pins > 0 || h->bind != NULL || h->detached ||
      uv_is_closing(h->uv))
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
  shelved *s;
  int fd;
  if (open_set(K) < 0 || uv_fileno(c->h->uv, &ofd) < 0) return;
  fd = fcntl(ofd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return;
  s = (shelved *)calloc(1, sizeof(shelved));
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.ptr = s;
  if (s == NULL) {
    close(fd);
    return;
  }
  s->K = K;
  s->rt.idx = -1;
  if ((c->rt.idx >= 0 &&
       net_tmo_add_at(K, &s->rt, shelf_fire, c->rt.due) < 0) ||
      epoll_ctl(K->shelf_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    net_tmo_del(K, &s->rt);
    free(s);
    close(fd);
    return;
  }
  net_tmo_del(K, &c->rt);
  s->fd = fd;
  s->x = c->x;
  if (s->x != NULL) s->x->c = NULL; /* (until the conn is made again) */
  c->x = NULL;
  s->ans = c->ans;
  c->ans = NULL;
  s->rdue = c->rdue;
  s->rsince = c->rsince;
  s->maxline = c->maxline;
  s->maxread = c->maxread;
  s->hwm = c->hwm;
  s->iref = c->iref;
  s->rref = c->rref;
  c->iref = c->rref = LUA_NOREF;
  s->group = c->group;
  s->timeout = c->timeout;
  s->fed = c->fed;
  s->rested = c->rested;
  s->vbuf = c->vbuf;
  s->skipline = c->skipline;
  s->pipe = c->h->uv->type == UV_NAMED_PIPE;
  s->prev = K->shelf_tail;
  if (K->shelf_tail) K->shelf_tail->next = s; else K->shelf_head = s;
  K->shelf_tail = s;
  net_rest_unlink(c);
  net_rslot_forget(c);
  /* The handle goes (c in its block, nothing of it left to free), the
  ** socket stays open through fd: closing one of two descriptors sends
  ** nothing. */
  c->h->extra = NULL;
  c->h->free_extra = NULL;
  lh_handle_close(c->h);
  if (K->nshelved++ == 0) uv_ref((uv_handle_t *)&K->shelf_poll);
}

static void sweep_cb(uv_timer_t *t) {
  core *K = container_of(t, core, shelf_timer);
  uint64_t now = net_now(K);
  conn *c = K->shelf_next;
  int n = K->nshelved;
  while (c != NULL && now - c->rsince >= SHELF_MS) {
    conn *next = c->rsnext;
    if (can_shelve(c)) shelve(K, c);
    c = next;
  }
  K->shelf_next = c;
  /* Conns gone quiet: the Lua pool's spare blocks can serve their
  ** records and the next conns' blocks (alloc.c) */
  if (K->nshelved > n) lh_state_trim(K->ctx->L, 8);
  if (c != NULL)
    uv_timer_start(t, sweep_cb, c->rsince + SHELF_MS - now, 0);
}

void net_shelf_rested(core *K) {
  if (!uv_is_active((uv_handle_t *)&K->shelf_timer) &&
      K->ctx->shutting_down == 0)
    uv_timer_start(&K->shelf_timer, sweep_cb, SHELF_MS, 0);
}

/* The conn of s again (s freed), at the head of the rest list (older
** than most resting conns: the shelf passed them), or NULL with s as it
** was. */
static conn *reopen(shelved *s) {
  core *K = s->K;
  uv_loop_t *loop = K->ctx->loop;
  uv_handle_type type = s->pipe ? UV_NAMED_PIPE : UV_TCP;
  lh_handle *h;
  conn *c;
  int r;
  h = lh_handle_alloc(K->ctx, type, sizeof(conn));
  if (h == NULL) return NULL;
  c = (conn *)h->extra; /* (zeroed: what a resting conn has not) */
  c->rt.idx = -1;
  if (type == UV_TCP) uv_tcp_init(loop, (uv_tcp_t *)h->uv);
  else uv_pipe_init(loop, (uv_pipe_t *)h->uv, 0);
  /* (its deadline first: once open, the handle owns the socket) */
  r = s->rt.idx >= 0 ? net_tmo_add_at(K, &c->rt, net_rd_fire, s->rt.due) : 0;
  if (r == 0)
    r = type == UV_TCP ? uv_tcp_open((uv_tcp_t *)h->uv, s->fd)
                       : uv_pipe_open((uv_pipe_t *)h->uv, s->fd);
  if (r < 0) {
    net_tmo_del(K, &c->rt);
    h->extra = NULL;
    lh_handle_close(h); /* (s->fd is not its own: not opened) */
    return NULL;
  }
  c->h = h;
  c->K = K;
  c->tp = &net_plain;
  c->kind = K_STREAM;
  net_tmo_del(K, &s->rt);
  epoll_ctl(K->shelf_fd, EPOLL_CTL_DEL, s->fd, NULL);
  c->x = s->x;
  if (c->x != NULL) c->x->c = c;
  c->ans = s->ans;
  c->rdue = s->rdue;
  c->rsince = s->rsince;
  c->maxline = s->maxline;
  c->maxread = s->maxread;
  c->hwm = s->hwm;
  c->iref = s->iref;
  c->rref = s->rref;
  c->group = s->group;
  c->timeout = s->timeout;
  c->fed = s->fed;
  c->rested = s->rested;
  c->vbuf = s->vbuf;
  c->skipline = s->skipline;
  c->resting = 1;
  c->rsprev = NULL;
  c->rsnext = K->rest_head;
  if (K->rest_head) K->rest_head->rsprev = c; else K->rest_tail = c;
  K->rest_head = c;
  h->free_extra = net_conn_free;
  shelf_unlink(s);
  free(s); /* (s->fd is c's now) */
  /* (a resting conn keeps the host alive, as core.rest's uv_ref: a new
  ** handle is ref'd) */
  if (--K->nshelved == 0) uv_unref((uv_handle_t *)&K->shelf_poll);
  net_rstart(c);
  return c;
}

/* Readiness on shelved sockets: each goes back to libuv, which reads it
** in this loop's next turn. No Lua runs here (a callback could free
** another shelved conn of this batch). One that cannot go back yet (out
** of memory) leaves the set and times out now, where net_unshelve tells
** its callback. */
static void poll_cb(uv_poll_t *p, int status, int events) {
  core *K = container_of(p, core, shelf_poll);
  struct epoll_event ev[SHELF_BATCH];
  int i, n;
  (void)status;
  (void)events;
  n = epoll_wait(K->shelf_fd, ev, SHELF_BATCH, 0);
  for (i = 0; i < n; i++) {
    shelved *s = (shelved *)ev[i].data.ptr;
    if (reopen(s) != NULL) continue;
    epoll_ctl(K->shelf_fd, EPOLL_CTL_DEL, s->fd, NULL);
    s->rdue = net_now(K);
    net_tmo_add_at(K, &s->rt, shelf_fire, s->rdue);
  }
}

#else

void net_shelf_rested(core *K) { (void)K; }

static conn *reopen(shelved *s) { (void)s; return NULL; }

#endif

/* Its deadline (lazy, as net_rd_fire's): the conn again, timed out. */
static void shelf_fire(core *K, tmo *t) {
  shelved *s = container_of(t, shelved, rt);
  conn *c;
  if (s->rdue == 0) return; /* stale */
  if (s->rdue > uv_now(K->ctx->loop)) { /* early: queue it again */
    net_tmo_add_at(K, &s->rt, shelf_fire, s->rdue);
    return;
  }
  c = net_unshelve(s);
  if (c == NULL) return; /* (told) */
  c->rtimed = 1;
  net_wake_reader(K->ctx->L, c);
}

conn *net_unshelve(shelved *s) {
  core *K = s->K;
  lh_ctx *ctx = K->ctx;
  lua_State *L = ctx->L;
  conn **ud;
  /* (at the exit, past its walks, the loop takes nothing new) */
  conn *c = ctx->shutting_down > 1 ? NULL : reopen(s);
  if (c != NULL) return c;
  /* Gone: its callback hears "closed", with a conn that reads closed. */
#if HAVE_SHELF
  epoll_ctl(K->shelf_fd, EPOLL_CTL_DEL, s->fd, NULL);
#endif
  if (--K->nshelved == 0) uv_unref((uv_handle_t *)&K->shelf_poll);
  shelf_unlink(s);
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
  if (s->x != NULL) luaL_unref(L, LUA_REGISTRYINDEX, s->x->wref);
  free_shelved(s);
  lh_call(ctx, 3);
  return NULL;
}

/* At the core's __gc (lua_close, the loop closed): the shelved conns'
** sockets and memory. Nobody is told, as a resting conn closed by the
** exit's walk is not (net_conn_free). */
void net_shelf_free(core *K) {
  while (K->shelf_head != NULL) {
    shelved *s = K->shelf_head;
    shelf_unlink(s);
    free_shelved(s);
  }
  K->nshelved = 0;
  if (K->shelf_fd >= 0) close(K->shelf_fd);
  K->shelf_fd = -1;
}
