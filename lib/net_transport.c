/*
** net_transport.c: the byte transport of a stream conn (see net_core.h):
** the raw send path every transport ends in (uv_try_write first, a copy
** of the rest queued), the plain transport, and the switch of transport
** on a live connection (STARTTLS).
** See Copyright Notice in README.md
*/
#include <stdlib.h>
#include <string.h>

#include "net_core.h"

/* {====================================================== send */

typedef struct wreq {
  uv_write_t req;
  conn *c;
  char data[1];
} wreq;

size_t net_held(conn *c) {
  return c->tp->held != NULL ? c->tp->held(c) : 0;
}

size_t net_queued(conn *c) {
  return uv_stream_get_write_queue_size(STREAM(c)) + net_held(c);
}

/* Output left: wake the writer once the queue is under half of hwm
** (write) or empty (flush), or on an error; resume a paused pipe. */
void net_written(conn *c) {
  if (X_PIPE(c) != NULL && !c->closed) net_pipe_written(c);
  if (X_WCO(c) != NULL) {
    size_t q = c->closed ? 0 : net_queued(c);
    if (c->werr || c->closed ||
        (c->wflush ? c->nwreq == 0 && q == 0 : q <= c->hwm / 2))
      net_wake_writer(c->K->ctx->L, c);
  }
}

static void write_cb(uv_write_t *req, int status) {
  wreq *w = container_of(req, wreq, req);
  conn *c = w->c;
  free(w);
  c->nwreq--;
  if (status < 0 && status != UV_ECANCELED && !c->werr) c->werr = status;
  net_written(c);
}

int net_send(conn *c, const uv_buf_t *bufs, int nb) {
  size_t total = 0, done = 0;
  int i, r;
  c->K->nsends++;
  for (i = 0; i < nb; i++) total += bufs[i].len;
  if (c->nwreq == 0) { /* nothing queued: what the kernel takes goes now */
    r = uv_try_write(STREAM(c), bufs, (unsigned)nb);
    if (r >= 0)
      done = (size_t)r;
    else if (r != UV_EAGAIN && r != UV_ENOSYS)
      return r;
  }
  if (done < total) {
    wreq *w = (wreq *)malloc(sizeof(wreq) + total - done);
    char *p;
    uv_buf_t b;
    if (w == NULL) return UV_ENOMEM;
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
      return r;
    }
    c->nwreq++;
  }
  return 0;
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  conn *c = (conn *)req->data;
  free(req);
  if (status < 0 && status != UV_ECANCELED && !c->werr) c->werr = status;
  /* closed by Lua while this shutdown waited for the queue (see
  ** net_conn_close): the output is out, the handle may close */
  if (c->closed && c->h != NULL) net_close_stream(c);
}

int net_shutdown(conn *c) {
  uv_shutdown_t *req = (uv_shutdown_t *)malloc(sizeof(uv_shutdown_t));
  int r;
  if (req == NULL) return UV_ENOMEM;
  req->data = c;
  r = uv_shutdown(req, STREAM(c), shutdown_cb);
  if (r < 0) free(req);
  return r;
}

/* }====================================================== */

/* {====================================================== plain */

const lh_transport net_plain = {
  "plain",
  net_deliver,  /* on_data: the bytes are the plaintext */
  NULL,         /* on_end: the socket's status as it is */
  net_send,     /* write */
  net_shutdown, /* shutdown */
  NULL,         /* close */
  NULL,         /* free */
  NULL,         /* errmsg: only libuv's errors */
  NULL          /* held: nothing kept */
};

/* }====================================================== */

/* {====================================================== switch */

int net_set_transport(conn *c, const lh_transport *tp, void *data) {
  char *copy;
  size_t n = c->rlen;
  int r;
  c->tp = tp;
  c->tpdata = data;
  if (n == 0) return 0;
  /* The unread input arrived for the new transport (a client's first
  ** handshake bytes right after "STARTTLS\r\n"). A copy: on_data
  ** delivers into the same buffer, and rp may be a buffer lent for the
  ** time of a read (net_deliver). */
  copy = (char *)malloc(n);
  if (copy == NULL) return UV_ENOMEM;
  memcpy(copy, c->rp, n);
  c->rlen = 0;
  r = tp->on_data(c, copy, n);
  free(copy);
  return r;
}

/* }====================================================== */
