/*
** listeners.c: the supervisor's sockets (see listeners.h).
** See Copyright Notice in README.md
**
** A request is keyed by what the worker asked, not by what it got: the
** kind and the address as given, and for port 0 also which of the
** worker's port-0 requests it is, so the nth port-0 server of every
** worker is the same socket (one port for the group) while two port-0
** servers of one script stay two ports, as in a single process.
*/
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "../bindings/common.h"
#include "daemon.h"
#include "listeners.h"

#define MAX_GENS 8  /* generations remembered per socket (newest kept) */

struct listener {
  listener *next;
  int32_t op, nth;
  uint32_t addrlen;
  struct sockaddr_storage addr; /* as asked */
  int fd;
  int holders;          /* live workers that asked for it */
  int gens[MAX_GENS];   /* generations that asked (0: free) */
};

static int same_key(const listener *l, const share_req *rq) {
  return l->op == rq->op && l->nth == rq->nth &&
         l->addrlen == rq->addrlen &&
         memcmp(&l->addr, &rq->addr, rq->addrlen) == 0;
}

static void add_gen(listener *l, int gen) {
  int i, oldest = 0;
  for (i = 0; i < MAX_GENS; i++) {
    if (l->gens[i] == gen) return;
    if (l->gens[i] < l->gens[oldest]) oldest = i;
  }
  l->gens[oldest] = gen;
}

static int has_gen(const listener *l, int gen) {
  int i;
  for (i = 0; i < MAX_GENS; i++)
    if (l->gens[i] == gen) return 1;
  return 0;
}

/* An inherited socket (--listen, systemd) bound to the address asked, of
** the kind asked; -1 for none. Port 0 never matches: it asks for a new
** port. */
static int inherited(const share_req *rq) {
  int i, n = host_listen_count();
  int type = rq->op == SHARE_UDP ? SOCK_DGRAM : SOCK_STREAM;
  for (i = 0; i < n; i++) {
    int fd = host_listen_fd(i), t = 0;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss), tlen = sizeof(t);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &tlen) != 0 || t != type ||
        ss.ss_family != rq->addr.ss_family)
      continue;
    if (ss.ss_family == AF_INET) {
      const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
      const struct sockaddr_in *b = (const struct sockaddr_in *)&rq->addr;
      if (b->sin_port != 0 && a->sin_port == b->sin_port &&
          a->sin_addr.s_addr == b->sin_addr.s_addr)
        return fd;
    } else if (ss.ss_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
      const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&rq->addr;
      if (b->sin6_port != 0 && a->sin6_port == b->sin6_port &&
          memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0)
        return fd;
    } else if (ss.ss_family == AF_UNIX) {
      const struct sockaddr_un *a = (const struct sockaddr_un *)&ss;
      const struct sockaddr_un *b = (const struct sockaddr_un *)&rq->addr;
      if (strcmp(a->sun_path, b->sun_path) == 0) return fd;
    }
  }
  return -1;
}

/* Bind (and listen) as libuv would have in the worker: SO_REUSEADDR on a
** TCP socket (uv_tcp_bind), IPV6_V6ONLY only when asked, SO_REUSEPORT
** when asked. Returns the fd or a negative libuv error. */
static int bind_new(const share_req *rq) {
  int on = 1, fd, type = rq->op == SHARE_UDP ? SOCK_DGRAM : SOCK_STREAM;
  int family = rq->addr.ss_family;
  if (rq->addrlen > sizeof(rq->addr) ||
      (rq->op == SHARE_UNIX) != (family == AF_UNIX) ||
      (family != AF_UNIX && family != AF_INET && family != AF_INET6))
    return UV_EINVAL;
  fd = socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  if ((rq->op == SHARE_TCP &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0) ||
      ((rq->flags & SHARE_REUSEPORT) &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
      ((rq->flags & SHARE_V6ONLY) && family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
      bind(fd, (const struct sockaddr *)&rq->addr, rq->addrlen) != 0 ||
      (type == SOCK_STREAM && listen(fd, rq->backlog) != 0)) {
    int err = -errno;
    close(fd);
    /* uv_pipe_bind's answer for a missing directory (as on Windows) */
    return rq->op == SHARE_UNIX && err == UV_ENOENT ? UV_EACCES : err;
  }
  return fd;
}

int listeners_get(listeners *ls, const share_req *rq, int gen,
                  listener **held) {
  listener *l;
  int fd;
  *held = NULL;
  if ((fd = inherited(rq)) >= 0) return fd;
  for (l = ls->list; l; l = l->next)
    if (same_key(l, rq)) break;
  if (l == NULL) {
    fd = bind_new(rq);
    if (fd < 0) return fd;
    l = (listener *)calloc(1, sizeof(listener));
    if (l == NULL) {
      close(fd);
      return UV_ENOMEM;
    }
    l->op = rq->op;
    l->nth = rq->nth;
    l->addrlen = rq->addrlen;
    memcpy(&l->addr, &rq->addr, rq->addrlen);
    l->fd = fd;
    l->next = ls->list;
    ls->list = l;
  }
  add_gen(l, gen);
  l->holders++;
  *held = l;
  return l->fd;
}

void listeners_release(listener *l) { l->holders--; }

void listeners_sweep(listeners *ls, int serving) {
  listener **p = &ls->list;
  while (*p) {
    listener *l = *p;
    if (l->holders <= 0 && !has_gen(l, serving)) {
      *p = l->next;
      if (l->fd >= 0) close(l->fd);
      free(l);
    } else {
      p = &l->next;
    }
  }
}

void listeners_close_all(listeners *ls) {
  listener *l;
  for (l = ls->list; l; l = l->next)
    if (l->fd >= 0) {
      close(l->fd);
      l->fd = -1;
    }
  host_listen_close_all();
}

void listeners_free(listeners *ls) {
  while (ls->list) {
    listener *l = ls->list;
    ls->list = l->next;
    if (l->fd >= 0) close(l->fd);
    free(l);
  }
}
