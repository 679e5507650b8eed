/*
** echo_server.c: the floor of make bench, a plain C libuv TCP echo server.
** Usage: echo_server [host [port [fault]]]   (default 127.0.0.1, port 0)
** Prints "port N" on stdout once listening, then serves until killed.
** fault is for the self-test of make bench, which checks that the load
** generator notices a bad server: "corrupt:N" changes the byte at offset N
** of each connection's echo, "close:N" closes a connection once it has
** received more than N bytes.
**
** It does what a careful hand-written libuv server does, so that every
** other server is measured against the best libuv can do: one shared read
** buffer (a read is answered before the next one happens), the answer sent
** with uv_try_write, and only the part the kernel did not take is copied
** and queued with uv_write. A connection that has a write queued stops
** reading until the queue drains (backpressure), so memory stays bounded.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <uv.h>

#define READ_BUF (64 * 1024)

static char readbuf[READ_BUF];  /* shared: each read is echoed at once */
static enum { NONE, CORRUPT, CLOSE } fault;
static size_t fault_at;

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
  char data[];  /* the bytes the kernel did not take */
} pending_t;

static void on_close(uv_handle_t *h) {
  free(h);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h; (void)suggested;
  buf->base = readbuf;
  buf->len = sizeof readbuf;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status) {
  uv_stream_t *s = req->handle;
  free(req);
  if (status < 0) {
    if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_close);
    return;
  }
  /* resume reading once nothing is left queued */
  if (uv_stream_get_write_queue_size(s) == 0
      && !uv_is_closing((uv_handle_t *)s))
    uv_read_start(s, alloc_cb, read_cb);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  if (nread < 0) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (nread == 0) return;
  if (fault != NONE) {
    size_t seen = (size_t)s->data;  /* bytes this connection echoed */
    s->data = (void *)(seen + (size_t)nread);
    if (fault == CLOSE && seen + (size_t)nread > fault_at) {
      uv_close((uv_handle_t *)s, on_close);
      return;
    }
    if (fault == CORRUPT && seen <= fault_at
        && fault_at < seen + (size_t)nread)
      buf->base[fault_at - seen] ^= 0x20;
  }
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
  int n = uv_try_write(s, &b, 1);
  if (n == nread) return;
  if (n < 0 && n != UV_EAGAIN) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (n < 0) n = 0;
  size_t rest = (size_t)nread - (size_t)n;
  pending_t *p = malloc(sizeof *p + rest);
  if (p == NULL) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  memcpy(p->data, buf->base + n, rest);
  p->buf = uv_buf_init(p->data, (unsigned)rest);
  if (uv_write(&p->req, s, &p->buf, 1, write_cb) < 0) {
    free(p);
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  uv_read_stop(s);  /* backpressure: wait for the queue to drain */
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *c = malloc(sizeof *c);
  if (c == NULL) return;
  uv_tcp_init(server->loop, c);
  c->data = NULL;
  if (uv_accept(server, (uv_stream_t *)c) < 0) {
    uv_close((uv_handle_t *)c, on_close);
    return;
  }
  uv_tcp_nodelay(c, 1);
  uv_read_start((uv_stream_t *)c, alloc_cb, read_cb);
}

int main(int argc, char **argv) {
  const char *host = argc > 1 ? argv[1] : "127.0.0.1";
  int port = argc > 2 ? atoi(argv[2]) : 0;
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_storage ss;
  int len = sizeof ss, r;
  signal(SIGPIPE, SIG_IGN);
  if (argc > 3) {
    fault = strncmp(argv[3], "corrupt:", 8) == 0 ? CORRUPT
          : strncmp(argv[3], "close:", 6) == 0 ? CLOSE : NONE;
    if (fault == NONE) {
      fprintf(stderr, "echo_server: bad fault %s\n", argv[3]);
      return 2;
    }
    fault_at = (size_t)atol(strchr(argv[3], ':') + 1);
  }
  if ((r = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss)) < 0
      && (r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)) < 0) {
    fprintf(stderr, "echo_server: bad address %s\n", host);
    return 2;
  }
  uv_tcp_init(loop, &server);
  if ((r = uv_tcp_bind(&server, (struct sockaddr *)&ss, 0)) < 0
      || (r = uv_listen((uv_stream_t *)&server, 1024, on_connection)) < 0) {
    fprintf(stderr, "echo_server: %s\n", uv_strerror(r));
    return 1;
  }
  uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
  printf("port %d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
