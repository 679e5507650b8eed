/*
** worker.c: a worker's side of a --workers group.
** See Copyright Notice in README.md
**
** The supervisor (supervisor.c) starts each worker as a fresh exec of this
** program with LUAHOST_WORKER="id:count:gen:fd:ppid" in its environment;
** fd is the worker's end of its channel to the supervisor (share.h). The
** worker says "ready" on it once its main chunk has run to its first
** wait, and asks on it for the sockets its script listens on.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include "share.h"
#include "log.h"
#include "worker.h"

/* A supervisor answers at once (it binds, nothing slower); one that does
** not answer in this time is wedged: the listen fails with "timeout". */
#define SHARE_TIMEOUT_S 30

/* What this process knows as a worker (set once, before any Lua state). */
static struct {
  int id, count, gen;
  int chan;           /* the channel to the supervisor (share.h) */
  uint32_t seq;       /* of the last request */
  int nth0;           /* port-0 requests so far */
  int stop_notice;    /* the supervisor said: the final stop */
} self = {0, 0, 0, -1, 0, 0, 0};

static char ticket_seed[65];

const char *host_ticket_seed(void) {
  return ticket_seed[0] ? ticket_seed : NULL;
}

int host_worker_init(void) {
  const char *s = getenv("LUAHOST_WORKER");
  const char *seed = getenv("LUAHOST_TICKET_SEED");
  if (seed != NULL) { /* kept here, not passed to what the script runs */
    snprintf(ticket_seed, sizeof(ticket_seed), "%s", seed);
    unsetenv("LUAHOST_TICKET_SEED");
  }
  int id, count, gen, fd;
  long ppid;
  if (s == NULL) return 0;
  if (sscanf(s, "%d:%d:%d:%d:%ld", &id, &count, &gen, &fd, &ppid) != 5 ||
      id < 1 || count < id || fd < 3) {
    fprintf(stderr, "luahost: bad LUAHOST_WORKER '%s'\n", s);
    return -1;
  }
  /* Die with the supervisor, and not start if it is already gone. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != (pid_t)ppid) return -1;
  self.id = id;
  host_log_set_worker(id); /* its log lines say which worker */
  self.count = count;
  self.gen = gen;
  self.chan = fd;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  {
    struct timeval tv = {SHARE_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  unsetenv("LUAHOST_WORKER"); /* not for the processes the script starts */
  return 1;
}

int host_is_worker(void) { return self.id > 0; }

static int send_req(share_req *rq) {
  ssize_t n;
  rq->magic = SHARE_MAGIC;
  rq->seq = ++self.seq;
  do n = send(self.chan, rq, sizeof(*rq), 0);
  while (n < 0 && errno == EINTR);
  return n == (ssize_t)sizeof(*rq) ? 0 : UV_EPIPE; /* supervisor gone */
}

void host_worker_started(void) {
  share_req rq;
  if (self.chan < 0) return;
  /* Changing credentials (--user) cleared the parent-death signal. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  memset(&rq, 0, sizeof(rq));
  rq.op = SHARE_READY;
  send_req(&rq); /* (a supervisor that is gone takes us with it) */
}

/* The reply to request seq: the fd it carries, or a negative error.
** Replies to an earlier request that timed out are dropped. */
static int recv_rep(uint32_t seq) {
  for (;;) {
    share_rep rep;
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct iovec iov = {&rep, sizeof(rep)};
    struct msghdr mh;
    struct cmsghdr *cm;
    ssize_t n;
    int fd = -1;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    do n = recvmsg(self.chan, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? UV_ETIMEDOUT
                                                     : -errno;
    if (n == 0) return UV_EPIPE; /* the supervisor is gone */
    cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if (n != (ssize_t)sizeof(rep) || rep.magic != SHARE_MAGIC) {
      if (fd >= 0) close(fd);
      return UV_EPROTO;
    }
    if (rep.seq != seq) { /* late: its request gave up already */
      if (fd >= 0) close(fd);
      if (rep.seq == 0 && rep.status == SHARE_STOP_NOTICE)
        self.stop_notice = 1;
      continue;
    }
    if (rep.status < 0) {
      if (fd >= 0) close(fd);
      return rep.status;
    }
    return fd >= 0 ? fd : UV_EPROTO;
  }
}

int host_worker_final_stop(void) {
  /* No request is outstanding here (they are synchronous): whatever is
  ** queued is the notice or late replies to drop. Bounded: the channel
  ** holds few messages. */
  int i;
  for (i = 0; i < 64 && self.chan >= 0 && !self.stop_notice; i++) {
    share_rep rep;
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct iovec iov = {&rep, sizeof(rep)};
    struct msghdr mh;
    struct cmsghdr *cm;
    ssize_t n;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    n = recvmsg(self.chan, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm), sizeof(int));
      close(fd);
    }
    if (n == (ssize_t)sizeof(rep) && rep.magic == SHARE_MAGIC &&
        rep.seq == 0 && rep.status == SHARE_STOP_NOTICE)
      self.stop_notice = 1;
  }
  return self.stop_notice;
}

/* Ask the supervisor for the socket rq describes: its fd (ours to keep),
** or a negative libuv error: the bind's own (UV_EADDRINUSE, ...). */
static int worker_socket(share_req *rq) {
  int r = send_req(rq);
  return r < 0 ? r : recv_rep(rq->seq);
}

/* ctx->share_socket (common.h): the group's socket for sa, from the
** supervisor. */
static int share_socket(lh_ctx *ctx, int type, const struct sockaddr *sa,
                        int len, int backlog, int flags) {
  share_req rq;
  (void)ctx;
  if (len <= 0 || len > (int)sizeof(rq.addr)) return UV_EINVAL;
  memset(&rq, 0, sizeof(rq));
  rq.op = type == UV_UDP ? SHARE_UDP
        : type == UV_NAMED_PIPE ? SHARE_UNIX : SHARE_TCP;
  rq.backlog = backlog;
  rq.flags = (flags & LH_SHARE_V6ONLY ? SHARE_V6ONLY : 0) |
             (flags & LH_SHARE_REUSEPORT ? SHARE_REUSEPORT : 0);
  rq.addrlen = (uint32_t)len;
  memcpy(&rq.addr, sa, (size_t)len);
  /* Every worker runs the same script: its nth port-0 socket is the nth
  ** of every other worker (one port for the group). */
  if ((sa->sa_family == AF_INET &&
       ((const struct sockaddr_in *)sa)->sin_port == 0) ||
      (sa->sa_family == AF_INET6 &&
       ((const struct sockaddr_in6 *)sa)->sin6_port == 0))
    rq.nth = ++self.nth0;
  return worker_socket(&rq);
}

void host_worker_share(lh_ctx *ctx) {
  if (self.chan >= 0) ctx->share_socket = share_socket;
}

/*
** luahost.share(kind, ip, port, backlog, v6only, reuseport) or
** luahost.share("unix", path, nil, backlog): in a worker, the group's
** socket for that address (an fd, bound and, but for udp, listening),
** or nil, err as the bind in this process would have failed; false
** outside a worker group, or for an address the caller's own bind will
** refuse (a NUL byte, a bad IP, a path too long): bind it yourself.
*/
int host_lua_share(lua_State *L) {
  static const char *const kinds[] = {"tcp", "udp", "unix", NULL};
  static const int types[] = {UV_TCP, UV_UDP, UV_NAMED_PIPE};
  int type = types[luaL_checkoption(L, 1, NULL, kinds)];
  size_t len;
  const char *where = luaL_checklstring(L, 2, &len);
  int backlog = (int)luaL_optinteger(L, 4, 511);
  int flags = (lua_toboolean(L, 5) ? LH_SHARE_V6ONLY : 0) |
              (lua_toboolean(L, 6) ? LH_SHARE_REUSEPORT : 0);
  struct sockaddr_storage ss;
  int salen, r;
  luaL_argcheck(L, backlog >= 1 && backlog <= 65535, 4, "out of range");
  memset(&ss, 0, sizeof(ss));
  if (type == UV_NAMED_PIPE) {
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    salen = (int)sizeof(*un);
    if (len >= sizeof(un->sun_path)) salen = 0;
    else {
      un->sun_family = AF_UNIX;
      memcpy(un->sun_path, where, len + 1);
    }
  } else {
    lua_Integer port = luaL_checkinteger(L, 3);
    luaL_argcheck(L, port >= 0 && port <= 65535, 3, "out of range");
    if (uv_ip4_addr(where, (int)port, (struct sockaddr_in *)&ss) == 0)
      salen = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(where, (int)port, (struct sockaddr_in6 *)&ss) == 0)
      salen = sizeof(struct sockaddr_in6);
    else
      salen = 0;
  }
  /* (a NUL byte, a bad address: the caller's own bind says what is wrong
  ** with it) */
  /* (a thread's state binds for itself: the channel is the main state's,
  ** one request at a time) */
  if (self.chan < 0 || lh_getctx(L)->sub != NULL || strlen(where) != len ||
      salen == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  r = share_socket(NULL, type, (struct sockaddr *)&ss, salen, backlog,
                   flags);
  if (r < 0) {
    lua_pushnil(L);
    lua_pushstring(L, r == UV_ETIMEDOUT ? "timeout" : uv_err_name(r));
    return 2;
  }
  lua_pushinteger(L, r);
  return 1;
}

int host_lua_worker(lua_State *L) {
  if (self.id == 0) return 0;
  lua_pushinteger(L, self.id);
  lua_pushinteger(L, self.count);
  lua_pushinteger(L, self.gen);
  return 3;
}
