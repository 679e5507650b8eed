/*
** drain.c: the graceful stop on SIGTERM (see drain.h), and the luahost
** functions that expose it to Lua (exiting, on_drain).
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "daemon.h"
#include "drain.h"
#include "log.h"
#include "worker.h"

static int exiting; /* a drain started (read by luahost.exiting) */
static int closing; /* it closes the listeners (after --drain-delay) */

/*
** The drain: SIGTERM closes every listening socket, after serving the
** clients already in its accept queue (so no new connection is accepted
** here; with shared sockets the other workers take them) and
** sets the exiting flag the script can read. The loop then ends by itself
** when the open connections are done; if they are not done within the
** drain time, the host stops in order anyway, exit status 0. Its handles
** are host-internal and unreferenced: they never keep the loop alive.
*/
typedef struct drain {
  uv_signal_t sigterm;
  uv_signal_t sighup;   /* --daemon --log: reopen the log (logrotate) */
  uv_timer_t delay;     /* --drain-delay: until the listeners close */
  uv_timer_t deadline;
  lh_internal internal;
  lh_ctx *ctx;
  double seconds, delay_s;
  int open;           /* handles not yet closed */
} drain;

/* Every handle's data is &d->internal: that finds d. */
static drain *drain_of(uv_handle_t *h) {
  return (drain *)(void *)((char *)h->data - offsetof(drain, internal));
}

static void drain_closed(uv_handle_t *h) {
  drain *d = drain_of(h);
  if (--d->open == 0) free(d);
}

static void sighup_cb(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  host_log_reopen();
}

static void stop_now(lh_ctx *ctx) {
  ctx->exit_requested = 1; /* the orderly stop of os.exit(0, true) */
  uv_stop(ctx->loop);
}

static void deadline_cb(uv_timer_t *t) {
  drain *d = drain_of((uv_handle_t *)t);
  host_log(HOST_LOG_WARN, "drain time is over; closing what is left");
  stop_now(d->ctx);
}

static void run_drain_hooks(lh_ctx *ctx);

/* Is h a listening TCP or unix socket of the script's (not the host's)? */
static int is_listener(uv_handle_t *h) {
  uv_os_fd_t fd;
  int on = 0;
  socklen_t len = sizeof(on);
  if ((h->type != UV_TCP && h->type != UV_NAMED_PIPE) || uv_is_closing(h) ||
      lh_is_internal(h) || uv_fileno(h, &fd) != 0)
    return 0;
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

static void close_listener(uv_handle_t *h, void *arg) {
  (void)arg;
  if (is_listener(h)) lh_handle_close((lh_handle *)h->data);
}

/* More than any accept queue holds (somaxconn is at most 65535). */
#define BACKLOG_MAX 65536

/*
** The clients already in listener s's accept queue completed their TCP
** handshake: they are served, not reset. Closing the last descriptor of a
** listening socket resets every connection still queued on it (and with
** workers, the kernel queue is shared: the last worker to close would
** reset what the others left). So before closing, accept until the queue
** is empty, handing each connection to the listener's own callback, as
** libuv does when the socket is readable (net's serve takes it and starts
** its handler at once; a uv script's callback accepts it). A connection
** libuv accepted already and the callback left unaccepted (a net server
** at max_connections: serve waits for a slot) is offered once more first:
** now that the drain closes, net serves the queue past max_connections.
** Stops when the callback leaves one unaccepted (the rest are reset) or
** the listener is closed by it. Only a client
** that completes its handshake in the microseconds between the last
** accept (EAGAIN) and the close is still reset: a refusal, never a
** connection accepted and dropped.
*/
static void serve_backlog(lh_ctx *ctx, uv_stream_t *s) {
  int i;
  if (!uv_is_closing((uv_handle_t *)s) && s->accepted_fd != -1 &&
      s->connection_cb != NULL)
    s->connection_cb(s, 0);
  for (i = 0; i < BACKLOG_MAX && !ctx->fatal; i++) {
    uv_os_fd_t fd;
    int c;
    if (uv_is_closing((uv_handle_t *)s) || s->accepted_fd != -1 ||
        s->connection_cb == NULL || uv_fileno((uv_handle_t *)s, &fd) != 0)
      return;
    c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return; /* EAGAIN: empty (or out of descriptors: reset as before) */
    }
    s->accepted_fd = c; /* what libuv's own accept does */
    s->connection_cb(s, 0);
  }
}

typedef struct listener_list {
  lh_handle **h;
  int n, cap;
} listener_list;

static void collect_listener(uv_handle_t *h, void *arg) {
  listener_list *l = (listener_list *)arg;
  if (!is_listener(h)) return;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 8;
    lh_handle **nh = (lh_handle **)realloc(l->h, (size_t)cap * sizeof(*nh));
    if (nh == NULL) return; /* (closed by the last walk, unserved) */
    l->h = nh;
    l->cap = cap;
  }
  l->h[l->n++] = (lh_handle *)h->data;
}

/* Stop listening: serve each listener's queue and close it at once, then
** tell the Lua side (net closes its servers the proper way, waking the
** tasks in accept), then close whatever still listens. The handles are
** listed first: the callbacks run Lua, which opens and closes handles. */
static void stop_listening(uv_loop_t *loop, lh_ctx *ctx) {
  listener_list l = {NULL, 0, 0};
  int i;
  uv_walk(loop, collect_listener, &l);
  for (i = 0; i < l.n && !ctx->fatal; i++) {
    if (uv_is_closing(l.h[i]->uv)) continue;
    serve_backlog(ctx, (uv_stream_t *)l.h[i]->uv);
    lh_handle_close(l.h[i]);
  }
  free(l.h);
  run_drain_hooks(ctx);
  uv_walk(loop, close_listener, NULL);
}

/* The registry key of the list of functions luahost.on_drain added. */
static const char drain_hooks_key = 'd';

/* Call every drain hook (in order, each protected by lh_call). */
static void run_drain_hooks(lh_ctx *ctx) {
  lua_State *L = ctx->L;
  lua_Integer i, n;
  lua_checkstack(L, LUA_MINSTACK); /* L may be suspended in a C frame */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &drain_hooks_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= n && !ctx->fatal; i++) {
    lua_rawgeti(L, -1, i);
    lh_call(ctx, 0);
  }
  lua_pop(L, 1);
}

/* The drain proper: stop listening, then give the open connections
** d->seconds. */
static void close_listeners(drain *d) {
  closing = 1;
  stop_listening(d->ctx->loop, d->ctx);
  uv_timer_start(&d->deadline, deadline_cb,
                 (uint64_t)(d->seconds * 1000 + 0.5), 0);
}

static void delay_cb(uv_timer_t *t) {
  close_listeners(drain_of((uv_handle_t *)t));
}

static void sigterm_cb(uv_signal_t *h, int signum) {
  drain *d = drain_of((uv_handle_t *)h);
  (void)signum;
  if (exiting) {
    /* A worker may get SIGTERM twice for one stop (from the supervisor,
    ** and from systemd or timeout(1) signalling the whole group): only
    ** the supervisor decides to stop at once (with SIGKILL). A plain
    ** process stops at once on the second SIGTERM. */
    if (!host_is_worker()) stop_now(d->ctx);
    return;
  }
  exiting = 1; /* from now on http.health answers 503 */
  /* --drain-delay: go on listening (and serving) while the balancer's
  ** health checks fail and it stops sending here; then close. Not for a
  ** worker a reload replaces: the next generation serves the same
  ** sockets (its health checks pass), nothing to wait for. */
  if (d->delay_s > 0 && (!host_is_worker() || host_worker_final_stop())) {
    uv_timer_start(&d->delay, delay_cb,
                   (uint64_t)(d->delay_s * 1000 + 0.5), 0);
    return;
  }
  close_listeners(d);
}

void host_drain_init(lh_ctx *ctx, double seconds, double delay,
                     int reopen_log) {
  drain *d = (drain *)calloc(1, sizeof(drain));
  if (d == NULL) return;
  d->ctx = ctx;
  d->seconds = seconds;
  d->delay_s = delay;
  d->internal.tag = &lh_internal_tag;
  d->internal.close_cb = drain_closed;
  d->open = 4;
  uv_signal_init(ctx->loop, &d->sigterm);
  uv_signal_init(ctx->loop, &d->sighup);
  uv_timer_init(ctx->loop, &d->delay);
  uv_timer_init(ctx->loop, &d->deadline);
  d->sigterm.data = d->sighup.data = d->deadline.data = &d->internal;
  d->delay.data = &d->internal;
  uv_signal_start(&d->sigterm, sigterm_cb, SIGTERM);
  if (reopen_log) uv_signal_start(&d->sighup, sighup_cb, SIGHUP);
  uv_unref((uv_handle_t *)&d->sigterm);
  uv_unref((uv_handle_t *)&d->sighup);
  uv_unref((uv_handle_t *)&d->delay);
  uv_unref((uv_handle_t *)&d->deadline);
}

/* luahost.exiting() -> true once a drain (SIGTERM) started. */
int host_lua_exiting(lua_State *L) {
  lua_pushboolean(L, exiting);
  return 1;
}

/* closing() -> true once the drain closes the listeners (private: net's
** serve takes the clients queued then past max_connections). */
int host_lua_closing(lua_State *L) {
  lua_pushboolean(L, closing);
  return 1;
}

/*
** luahost.on_drain(fn): call fn() when a drain (SIGTERM under --workers,
** --daemon, --pidfile or --drain-delay) closes the listening sockets
** (after the delay), right after each was served its queue and closed.
** For modules that own servers (net): closing their objects lets the
** tasks waiting in accept return.
*/
int host_lua_on_drain(lua_State *L) {
  lh_check_callable(L, 1);
  lua_settop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &drain_hooks_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &drain_hooks_key);
  }
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

