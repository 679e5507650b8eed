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
#include <sys/un.h>
#include <unistd.h>

#include "share.h"
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
} self = {0, 0, 0, -1, 0, 0};

int host_worker_init(void) {
  const char *s = getenv("LUAHOST_WORKER");
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
      continue;
    }
    if (rep.status < 0) {
      if (fd >= 0) close(fd);
      return rep.status;
    }
    return fd >= 0 ? fd : UV_EPROTO;
  }
}

/* Ask the supervisor for the socket rq describes: its fd (ours to keep),
** or a negative libuv error: the bind's own (UV_EADDRINUSE, ...). */
static int worker_socket(share_req *rq) {
  int r = send_req(rq);
  return r < 0 ? r : recv_rep(rq->seq);
}

/* kind "tcp" | "udp" | "unix" -> SHARE_*; 0 for none. */
static int share_op(const char *kind) {
  if (strcmp(kind, "tcp") == 0) return SHARE_TCP;
  if (strcmp(kind, "udp") == 0) return SHARE_UDP;
  if (strcmp(kind, "unix") == 0) return SHARE_UNIX;
  return 0;
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
  const char *kind = luaL_checkstring(L, 1);
  size_t len;
  const char *where = luaL_checklstring(L, 2, &len);
  share_req rq;
  int r;
  memset(&rq, 0, sizeof(rq));
  rq.op = share_op(kind);
  luaL_argcheck(L, rq.op != 0, 1, "'tcp', 'udp' or 'unix' expected");
  rq.backlog = (int32_t)luaL_optinteger(L, 4, 511);
  luaL_argcheck(L, rq.backlog >= 1 && rq.backlog <= 65535, 4,
                "out of range");
  rq.flags = (lua_toboolean(L, 5) ? SHARE_V6ONLY : 0) |
             (lua_toboolean(L, 6) ? SHARE_REUSEPORT : 0);
  if (self.chan < 0 || strlen(where) != len) { /* (a NUL byte: the
    caller's own bind says what is wrong with it) */
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rq.op == SHARE_UNIX) {
    struct sockaddr_un *un = (struct sockaddr_un *)&rq.addr;
    if (len >= sizeof(un->sun_path)) {
      lua_pushboolean(L, 0);
      return 1;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, where, len + 1);
    rq.addrlen = (uint32_t)sizeof(*un);
  } else {
    lua_Integer port = luaL_checkinteger(L, 3);
    luaL_argcheck(L, port >= 0 && port <= 65535, 3, "out of range");
    if (uv_ip4_addr(where, (int)port, (struct sockaddr_in *)&rq.addr) == 0)
      rq.addrlen = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(where, (int)port,
                         (struct sockaddr_in6 *)&rq.addr) == 0)
      rq.addrlen = sizeof(struct sockaddr_in6);
    else {
      lua_pushboolean(L, 0);
      return 1;
    }
    /* Every worker runs the same script: its nth port-0 socket is the
    ** nth of every other worker (one port for the group). */
    if (port == 0) rq.nth = ++self.nth0;
  }
  r = worker_socket(&rq);
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
