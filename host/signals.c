/*
** signals.c: the host's signal policy, stated here for every role; the
** handling goes through uv_signal_t only (no C signal handler ever
** touches Lua).
** See Copyright Notice in README.md
**
**   signal   lone process          worker                supervisor
**   SIGPIPE  ignored: a write to a closed peer is an error, not a death
**   SIGINT   "interrupted!", 130   ignored (Ctrl-C       graceful stop
**            (unless the script    reaches the whole     (supervisor.c)
**            watches SIGINT; in    group: the
**            the REPL it cancels   supervisor decides)
**            the running
**            statement, repl.c)
**   SIGTERM  default (death);      drain (drain.c); a    graceful stop; a
**            with --daemon or      second one is left    second one stops
**            --pidfile: drain, a   to the supervisor     at once: SIGKILL
**            second one stops                            to the workers,
**            at once                                     exit 128+15
**   SIGHUP   default; with         ignored (the          reopen the log,
**            --daemon --log:       supervisor            reload (a new
**            reopen the log; a     reloads)              generation)
**            script that made a
**            TLS context from
**            files: reload it
**            (tls_context.c)
**
** The script's own watchers (uv signals, task.on_signal) come on top: a
** SIGTERM watcher keeps a draining loop alive until it is closed.
*/
#include <signal.h>
#include <stdlib.h>

#include "runtime.h"

void host_signals_process(int worker) {
  signal(SIGPIPE, SIG_IGN);
  if (worker) {
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
  }
}

typedef struct host_signal {
  uv_signal_t handle; /* first: found from the handle by a cast */
  lh_internal internal;
  lh_ctx *ctx;
} host_signal;

static void find_user_sigint(uv_handle_t *h, void *arg) {
  if (h->type == UV_SIGNAL && !lh_is_internal(h) && uv_is_active(h) &&
      ((uv_signal_t *)h)->signum == SIGINT)
    *(int *)arg = 1;
}

static void sigint_cb(uv_signal_t *handle, int signum) {
  host_signal *hs = (host_signal *)handle;
  int watched = 0;
  (void)signum;
  uv_walk(handle->loop, find_user_sigint, &watched);
  if (watched) return; /* the script handles SIGINT itself */
  if (hs->ctx->on_interrupt && hs->ctx->on_interrupt(hs->ctx)) return;
  lh_report("interrupted!");
  lh_fatal(hs->ctx, 128 + SIGINT);
}

static void free_cb(uv_handle_t *h) { free(h); }

void host_signals_init(lh_ctx *ctx) {
  host_signal *hs = (host_signal *)calloc(1, sizeof(host_signal));
  if (hs == NULL) return;
  hs->ctx = ctx;
  hs->internal.tag = &lh_internal_tag;
  hs->internal.close_cb = free_cb;
  uv_signal_init(ctx->loop, &hs->handle);
  hs->handle.data = &hs->internal;
  uv_signal_start(&hs->handle, sigint_cb, SIGINT);
  uv_unref((uv_handle_t *)&hs->handle); /* never keeps the loop alive */
}
