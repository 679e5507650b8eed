/*
** net_write.c: output of a stream conn: write, flush, shutdown, with
** backpressure over the conn's transport.
** See Copyright Notice in README.md
*/
#include <stdlib.h>
#include <string.h>

#include "net_core.h"

#define VBUF_DEFAULT 65536     /* setvbuf's size when none is given */

/* {====================================================== batching */

/*
** setvbuf("full" | "line"), as Lua files have: write appends to obuf
** instead of sending; the batch goes to the transport when it would pass
** osize (together with the new data, in one write), at a newline
** ("line"), when a read would wait (net_park_reader), and at flush,
** shutdown and close. One system call then carries many small writes.
** A batch never outlives the loop iteration it was made in: the conns
** holding one are on K->batched, and an idle handle sends them all
** before the loop next polls (or exits: the idle keeps it alive), so
** output never waits for a timer, nor is lost when the host ends.
*/

static void fidle_cb(uv_idle_t *idle);

static void unlink_batched(conn *c) {
  if (c->bprev) c->bprev->bnext = c->bnext; else c->K->batched = c->bnext;
  if (c->bnext) c->bnext->bprev = c->bprev;
  c->bnext = c->bprev = NULL;
  if (c->K->batched == NULL) uv_idle_stop(&c->K->fidle);
}

static void link_batched(conn *c) {
  core *K = c->K;
  c->bprev = NULL;
  c->bnext = K->batched;
  if (K->batched) K->batched->bprev = c;
  else uv_idle_start(&K->fidle, fidle_cb);
  K->batched = c;
}

/* Take c's batch away: the buffer, for the caller to free. */
static char *take_batch(conn *c) {
  conn_x *x = c->x;
  char *p;
  if (x == NULL) return NULL;
  p = x->obuf;
  if (x->olen > 0) unlink_batched(c);
  x->obuf = NULL;
  x->olen = 0;
  return p;
}

int net_flush_out(conn *c) {
  size_t olen = X_OLEN(c);
  uv_buf_t b = uv_buf_init(olen > 0 ? c->x->obuf : NULL, (unsigned)olen);
  int r = c->werr; /* after a write error the batch is dropped */
  if (r == 0 && olen > 0 && !uv_is_closing(c->h->uv))
    r = c->tp->write(c, &b, 1);
  free(take_batch(c)); /* the transport copied what it could not send */
  if (r < 0 && !c->werr) c->werr = r;
  return r;
}

void net_batch_free(conn *c) {
  free(take_batch(c));
}

static void fidle_cb(uv_idle_t *idle) {
  core *K = container_of(idle, core, fidle);
  while (K->batched) net_flush_out(K->batched);
}

void net_write_init(core *K) {
  uv_idle_init(K->ctx->loop, &K->fidle); /* ref'd: a batch is output */
  K->fidle.data = K;
}

/* Add bufs to the batch if they fit: 1 = kept (or kept and flushed at a
** newline: *r is the flush's result), 0 = they do not fit. */
static int batch(conn *c, const uv_buf_t *bufs, int nb, size_t total,
                 int *r) {
  conn_x *x = c->x; /* (setvbuf made it) */
  int i, nl = 0;
  *r = 0;
  if (x->olen + total > x->osize) return 0;
  if (x->obuf == NULL) {
    x->obuf = (char *)malloc(x->osize);
    if (x->obuf == NULL) {
      *r = UV_ENOMEM;
      return 1;
    }
  }
  if (x->olen == 0) link_batched(c);
  for (i = 0; i < nb; i++) {
    memcpy(x->obuf + x->olen, bufs[i].base, bufs[i].len);
    x->olen += bufs[i].len;
    if (c->vbuf == VBUF_LINE && memchr(bufs[i].base, '\n', bufs[i].len))
      nl = 1;
  }
  if (nl) *r = net_flush_out(c);
  return 1;
}

/* }====================================================== */

/* {====================================================== write */

/* Park the writer. A queued write keeps the host alive while it waits;
** output a transport holds (a TLS handshake not done) has no request of
** libuv's: the handle does, until write_k. */
static int write_k(lua_State *L, int status, lua_KContext kc);

static int park(lua_State *L, conn *c, int flush) {
  if (c->nwreq == 0) uv_ref(c->h->uv);
  return net_park_writer(L, c, flush, write_k, flush ? "flush" : "write");
}

static int write_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  (void)status; (void)kc;
  int how = net_was_cancelled(L, 1);
  /* (as park left it: ref'd only while a task waits to read) */
  if (c != NULL && !c->closed && c->rco == NULL && !c->resting &&
      X_PIPE(c) == NULL)
    uv_unref(c->h->uv);
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  if (c == NULL || c->closed) return net_fail_str(L, "closed");
  if (c->werr) return net_fail_str(L, net_conn_errname(c, c->werr));
  if (c->wtimed) {
    c->wtimed = 0;
    return net_fail_str(L, "timeout");
  }
  return 1; /* the conn: calls chain */
}

/* Raises: the argument at i is no string, number or net.buffer. */
static void bad_data(lua_State *L, int i) {
  luaL_typeerror(L, i, "string or net.buffer");
}

/* write(...): strings, numbers and net.buffers. Sends at once what the
** kernel takes and queues a copy of the rest (a buffer is free again at
** once); blocks while more than hwm bytes are queued. */
static int conn_write(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  int n = lua_gettop(L), i, nb = 1, r; /* bufs[0] is for the batch */
  uv_buf_t bufs[17]; /* [0]: setvbuf's batch, when it goes too */
  size_t total = 0;
  if (n - 1 > 16) {
    for (i = 2; i <= n; i++) { /* (a buffer's bytes, as a string here) */
      net_buffer *xb = net_tobuffer(L, net_getcore(L), i);
      if (xb != NULL) {
        lua_pushlstring(L, xb->data, xb->len);
        lua_replace(L, i);
      }
      if (lua_tolstring(L, i, NULL) == NULL) bad_data(L, i);
    }
    if (!LIVE(c)) return net_fail_str(L, "closed");
    if (c->werr) return net_fail_str(L, net_conn_errname(c, c->werr));
    lua_concat(L, n - 1);
    n = 2;
  }
  for (i = 2; i <= n; i++) { /* (one pass: check and gather) */
    size_t l;
    const char *s = lua_tolstring(L, i, &l); /* (a number becomes one) */
    if (s == NULL) { /* a net.buffer: its bytes (sent or copied now) */
      net_buffer *xb = net_tobuffer(L, net_getcore(L), i);
      if (xb == NULL) bad_data(L, i); /* raises */
      s = xb->data;
      l = xb->len;
    }
    if (l == 0) continue;
    bufs[nb].base = (char *)s;
    bufs[nb].len = l;
    nb++;
    total += l;
  }
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->werr) return net_fail_str(L, net_conn_errname(c, c->werr));
  if (total == 0) {
    lua_pushvalue(L, 1);
    return 1;
  }
  /* A writer that cannot wait (not a task, inside a C call, another
  ** writer parked) is refused while the queue is above write_hwm, with
  ** nothing written; below it, its write is taken whole and it goes on
  ** without waiting (the queue may pass write_hwm by that one write).
  ** Never queued and then refused: a retry would send the bytes twice. */
  if ((c->nwreq > 0 || c->tp->held != NULL) && net_queued(c) > c->hwm)
    net_check_writer(L, c, "write");
  if (c->vbuf != VBUF_NO && batch(c, bufs + 1, nb - 1, total, &r)) {
    /* kept for later (or flushed at a newline) */
  } else if (X_OLEN(c) > 0) { /* the batch and the new data, in order */
    bufs[0] = uv_buf_init(c->x->obuf, (unsigned)c->x->olen);
    r = c->tp->write(c, bufs, nb);
    net_batch_free(c);
  } else {
    r = c->tp->write(c, bufs + 1, nb - 1);
  }
  if (r == UV_ENOMEM) return luaL_error(L, "not enough memory");
  if (r < 0) {
    c->werr = r;
    return net_fail_str(L, net_conn_errname(c, r));
  }
  /* (Nothing is queued when everything went at once; a TLS conn holds
  ** what is written before its handshake ended: counted too.) */
  if ((c->nwreq > 0 || c->tp->held != NULL) && net_queued(c) > c->hwm &&
      net_writer_can_wait(L, c)) {
    lua_settop(L, 1);
    return park(L, c, 0);
  }
  lua_pushvalue(L, 1); /* the conn: calls chain */
  return 1;
}

/* flush(): wait until everything written so far has left. */
static int conn_flush(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_settop(L, 1);
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->werr) return net_fail_str(L, net_conn_errname(c, c->werr));
  if (X_OLEN(c) > 0 && net_flush_out(c) < 0)
    return net_fail_str(L, net_conn_errname(c, c->werr));
  if (c->nwreq == 0 && net_held(c) == 0) return 1;
  return park(L, c, 1);
}

/* shutdown(): no more output (after what is queued); input continues. */
static int conn_shutdown(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  int r;
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (X_OLEN(c) > 0 && (r = net_flush_out(c)) < 0)
    return net_fail_str(L, net_conn_errname(c, r));
  r = c->tp->shutdown(c);
  if (r == UV_ENOMEM) return luaL_error(L, "not enough memory");
  if (r < 0) return net_fail_str(L, net_conn_errname(c, r));
  lua_settop(L, 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== opener */

/* setvbuf(mode [, size]): "no" (the default: every write goes at once),
** "full" or "line" (batched, see above); size: the batch's bound in bytes
** (default VBUF_DEFAULT). Switching sends what is batched. */
static int conn_setvbuf(lua_State *L) {
  static const char *const modes[] = {"no", "full", "line", NULL};
  conn *c = net_to_conn(L, 1, K_STREAM);
  int mode = luaL_checkoption(L, 2, NULL, modes);
  size_t size = (size_t)lh_opt_range(L, 3, VBUF_DEFAULT, 1,
                                     (lua_Integer)1 << 30);
  lua_settop(L, 1);
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (X_OLEN(c) > 0 && net_flush_out(c) < 0)
    return net_fail_str(L, net_conn_errname(c, c->werr));
  net_batch_free(c); /* (none after a flush; a new size next time) */
  if (mode != VBUF_NO) { /* (the batch lives in c->x) */
    if (net_conn_x(c) == NULL) return luaL_error(L, "not enough memory");
    c->x->osize = size;
  }
  c->vbuf = (unsigned char)mode;
  return 1;
}

static const luaL_Reg write_methods[] = {
  {"flush", conn_flush},
  {"setvbuf", conn_setvbuf},
  {"shutdown", conn_shutdown},
  {"write", conn_write},
  {NULL, NULL}
};

void net_write_open(lua_State *L) {
  net_add_methods(L, K_STREAM, write_methods);
}

/* }====================================================== */
