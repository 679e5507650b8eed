/*
** signals.c: the host's own signal handling, through uv_signal_t only (no C
** signal handler ever touches Lua). SIGINT stops a script with
** "interrupted!" and status 130 unless the script watches SIGINT itself,
** or the REPL takes it (it cancels the statement running at the prompt).
** See Copyright Notice in README.md
*/
#include <signal.h>
#include <stdlib.h>

#include "runtime.h"

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
