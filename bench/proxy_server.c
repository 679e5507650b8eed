/*
** proxy_server.c: the floor of make bench's proxy case, a plain C libuv
** TCP forwarder.
** Usage: proxy_server upstream-host upstream-port [host [port]]
**        (default 127.0.0.1, port 0)
** Prints "port N" on stdout once listening, then serves until killed.
**
** It does what a careful hand-written libuv proxy does, as echo_server.c
** does for echo: each client gets its own connection to the upstream;
** one shared read buffer (a read is forwarded before the next happens),
** the bytes sent to the other side with uv_try_write, only the part the
** kernel did not take copied and queued with uv_write. Backpressure as
** luahost's net.splice: a side stops being read while more than HWM bytes
** are queued to the other and is read again once that is down to half.
** An end of input is passed on as a shutdown (after what is queued); the
** pair closes once both directions ended, or at the first error.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <uv.h>

#define READ_BUF (64 * 1024)
#define HWM (64 * 1024)

static char readbuf[READ_BUF];  /* shared: each read is forwarded at once */
static struct sockaddr_storage upstream;

typedef struct pair pair;

typedef struct {
  uv_tcp_t tcp;
  pair *p;
  int paused;    /* not read: the other side's queue is above HWM */
} side;

struct pair {
  side s[2];     /* 0: the client, 1: the upstream */
  uv_connect_t creq;
  int closing, nclosed, nshut;
};

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
  char data[];   /* the bytes the kernel did not take */
} pending_t;

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h; (void)suggested;
  buf->base = readbuf;
  buf->len = sizeof readbuf;
}

static void on_close(uv_handle_t *h) {
  pair *p = ((side *)h->data)->p;
  if (++p->nclosed == 2) free(p);
}

static void close_pair(pair *p) {
  if (p->closing) return;
  p->closing = 1;
  uv_close((uv_handle_t *)&p->s[0].tcp, on_close);
  uv_close((uv_handle_t *)&p->s[1].tcp, on_close);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status) {
  side *dst = (side *)req->handle->data;
  pair *p = dst->p;
  side *src = &p->s[dst == &p->s[0]];
  free(req);
  if (p->closing) return;
  if (status < 0) {
    close_pair(p);
    return;
  }
  if (src->paused &&
      uv_stream_get_write_queue_size((uv_stream_t *)&dst->tcp) <= HWM / 2) {
    src->paused = 0;
    uv_read_start((uv_stream_t *)&src->tcp, alloc_cb, read_cb);
  }
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  pair *p = ((side *)req->handle->data)->p;
  free(req);
  if (p->closing) return;
  if (status < 0 || ++p->nshut == 2) close_pair(p);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  side *src = (side *)s->data;
  pair *p = src->p;
  side *dst = &p->s[src == &p->s[0]];
  uv_stream_t *d = (uv_stream_t *)&dst->tcp;
  if (nread == UV_EOF) {  /* pass the end on, after what is queued */
    uv_shutdown_t *req = malloc(sizeof *req);
    uv_read_stop(s);
    if (req == NULL || uv_shutdown(req, d, shutdown_cb) < 0) {
      free(req);
      close_pair(p);
    }
    return;
  }
  if (nread < 0) {
    close_pair(p);
    return;
  }
  if (nread == 0) return;
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
  int n = uv_stream_get_write_queue_size(d) == 0 ? uv_try_write(d, &b, 1)
                                                 : UV_EAGAIN;
  if (n == nread) return;
  if (n < 0 && n != UV_EAGAIN) {
    close_pair(p);
    return;
  }
  if (n < 0) n = 0;
  size_t rest = (size_t)nread - (size_t)n;
  pending_t *w = malloc(sizeof *w + rest);
  if (w == NULL) {
    close_pair(p);
    return;
  }
  memcpy(w->data, buf->base + n, rest);
  w->buf = uv_buf_init(w->data, (unsigned)rest);
  if (uv_write(&w->req, d, &w->buf, 1, write_cb) < 0) {
    free(w);
    close_pair(p);
    return;
  }
  if (uv_stream_get_write_queue_size(d) > HWM) {  /* backpressure */
    src->paused = 1;
    uv_read_stop(s);
  }
}

static void connect_cb(uv_connect_t *req, int status) {
  pair *p = (pair *)req->data;
  if (status < 0) {
    close_pair(p);
    return;
  }
  uv_tcp_nodelay(&p->s[1].tcp, 1);
  uv_read_start((uv_stream_t *)&p->s[0].tcp, alloc_cb, read_cb);
  uv_read_start((uv_stream_t *)&p->s[1].tcp, alloc_cb, read_cb);
}

static void on_connection(uv_stream_t *server, int status) {
  pair *p;
  int i;
  if (status < 0) return;
  p = calloc(1, sizeof *p);
  if (p == NULL) return;
  for (i = 0; i < 2; i++) {
    uv_tcp_init(server->loop, &p->s[i].tcp);
    p->s[i].tcp.data = &p->s[i];
    p->s[i].p = p;
  }
  p->creq.data = p;
  if (uv_accept(server, (uv_stream_t *)&p->s[0].tcp) < 0 ||
      uv_tcp_connect(&p->creq, &p->s[1].tcp, (struct sockaddr *)&upstream,
                     connect_cb) < 0) {
    close_pair(p);
    return;
  }
  uv_tcp_nodelay(&p->s[0].tcp, 1);
}

static int addr(const char *host, int port, struct sockaddr_storage *ss) {
  return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0;
}

int main(int argc, char **argv) {
  const char *host = argc > 3 ? argv[3] : "127.0.0.1";
  int port = argc > 4 ? atoi(argv[4]) : 0;
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_storage ss;
  int len = sizeof ss, r;
  signal(SIGPIPE, SIG_IGN);
  if (argc < 3 || !addr(argv[1], atoi(argv[2]), &upstream)) {
    fprintf(stderr, "usage: proxy_server upstream-host upstream-port "
            "[host [port]]\n");
    return 2;
  }
  if (!addr(host, port, &ss)) {
    fprintf(stderr, "proxy_server: bad address %s\n", host);
    return 2;
  }
  uv_tcp_init(loop, &server);
  if ((r = uv_tcp_bind(&server, (struct sockaddr *)&ss, 0)) < 0
      || (r = uv_listen((uv_stream_t *)&server, 1024, on_connection)) < 0) {
    fprintf(stderr, "proxy_server: %s\n", uv_strerror(r));
    return 1;
  }
  uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
  printf("port %d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
