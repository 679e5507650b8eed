/*
** groupbind.c: bind and listen in a --workers worker (see common.h). The
** supervisor owns every listening socket of the group, so a script binds
** and listens as it would alone: tcp:bind / pipe:bind note the address,
** listen adopts the group's socket for it (one port for the group, kept
** across reloads, bound while the supervisor is still root). A handle
** used any other way after bind (connect: a client choosing its source
** address) is bound here after all, as it would have been at once.
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

typedef struct lh_bind {
  struct sockaddr_storage addr;
  int len;
  int flags;          /* LH_SHARE_* */
  unsigned uvflags;   /* uv_tcp_bind's, for a bind made here */
} lh_bind;

/* Is the handle's socket bound already (opened from an fd, or a bind made
** here)? Then a bind fails as libuv's does (EINVAL), not deferred. */
static int is_bound(lh_handle *h) {
  uv_os_fd_t fd;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (uv_fileno(h->uv, &fd) != 0) return 0;
  memset(&ss, 0, sizeof(ss));
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
  if (ss.ss_family == AF_INET)
    return ((struct sockaddr_in *)&ss)->sin_port != 0;
  if (ss.ss_family == AF_INET6)
    return ((struct sockaddr_in6 *)&ss)->sin6_port != 0;
  return ss.ss_family == AF_UNIX && len > sizeof(sa_family_t);
}

int lh_bind_defer(lh_handle *h, const struct sockaddr *sa, int len,
                  int flags) {
  lh_bind *b;
  if (h->ctx->share_socket == NULL || h->bind != NULL ||
      len > (int)sizeof(b->addr) || is_bound(h))
    return 0;
  if (h->uv->type == UV_NAMED_PIPE && ((uv_pipe_t *)h->uv)->ipc)
    return 0; /* a channel to pass handles on, not a server */
  b = (lh_bind *)calloc(1, sizeof(lh_bind));
  if (b == NULL) return 0; /* bind now then */
  memcpy(&b->addr, sa, (size_t)len);
  b->len = len;
  b->flags = flags;
  b->uvflags = (flags & LH_SHARE_V6ONLY) ? UV_TCP_IPV6ONLY : 0;
  h->bind = b;
  return 1;
}

void lh_bind_now(lh_handle *h) {
  lh_bind *b = h->bind;
  int st;
  h->bind = NULL;
  if (h->uv->type == UV_TCP)
    st = uv_tcp_bind((uv_tcp_t *)h->uv, (struct sockaddr *)&b->addr,
                     b->uvflags);
  else
    st = uv_pipe_bind((uv_pipe_t *)h->uv,
                      ((struct sockaddr_un *)&b->addr)->sun_path);
  free(b);
  if (st < 0) h->bind_err = st;
}

int lh_bind_error(lh_handle *h) {
  int st = h->bind_err;
  h->bind_err = 0;
  return st;
}

int lh_bind_listen(lh_handle *h, int backlog) {
  lh_bind *b = h->bind;
  uv_os_fd_t old;
  int fd, st;
  h->bind = NULL;
  fd = h->ctx->share_socket(h->ctx, h->uv->type,
                            (struct sockaddr *)&b->addr, b->len,
                            backlog < 1 ? 1 : backlog, b->flags);
  free(b);
  if (fd < 0) return fd;
  if (uv_fileno(h->uv, &old) == 0) {
    /* new_tcp(family) made a socket already: the group's takes its fd
    ** number, the one libuv knows (it polls nothing on it yet). */
    st = dup3(fd, old, O_CLOEXEC) < 0 ? -errno : 0;
    close(fd);
    return st;
  }
  st = h->uv->type == UV_TCP ? uv_tcp_open((uv_tcp_t *)h->uv, fd)
                             : uv_pipe_open((uv_pipe_t *)h->uv, fd);
  if (st < 0) close(fd);
  return st;
}
