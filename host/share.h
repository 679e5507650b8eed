/*
** share.h: the channel between a worker and its supervisor, a
** SOCK_SEQPACKET socketpair (one message per request or reply). A worker
** says it is ready, and asks for every listening socket (and bound UDP
** socket) its script wants; the supervisor binds each distinct address
** once and passes the same socket to every worker of every generation
** (SCM_RIGHTS), so the script runs unchanged in a group.
** See Copyright Notice in README.md
*/
#ifndef HOST_SHARE_H
#define HOST_SHARE_H

#include <stdint.h>
#include <sys/socket.h>

/* Changes with the layout below: a worker started from a newer binary on
** reload must not be misread by an older supervisor (it gets EPROTO). */
#define SHARE_MAGIC 0x4c485332u /* "LHS2" */

enum {
  SHARE_READY = 'R',  /* the main chunk ran to its first wait; no reply */
  SHARE_TCP = 'T',    /* a listening TCP socket */
  SHARE_UNIX = 'U',   /* a listening unix socket (a path) */
  SHARE_UDP = 'D'     /* a bound UDP socket */
};

#define SHARE_V6ONLY 1
#define SHARE_REUSEPORT 2

typedef struct share_req {
  uint32_t magic;
  uint32_t seq;       /* echoed by the reply */
  int32_t op;         /* SHARE_* */
  int32_t flags;      /* SHARE_V6ONLY | SHARE_REUSEPORT */
  int32_t backlog;    /* listen(2)'s, for TCP and unix */
  int32_t nth;        /* port 0: the nth such request of this worker */
  uint32_t addrlen;
  struct sockaddr_storage addr; /* as asked (a sockaddr_un fits) */
} share_req;

/* A message from the supervisor that answers no request (seq 0): the
** final stop is starting (sent just before SIGTERM), so the worker's
** drain is not a reload's and --drain-delay applies. */
#define SHARE_STOP_NOTICE 1

typedef struct share_rep {
  uint32_t magic;
  uint32_t seq;
  int32_t status;     /* 0: the socket rides along (SCM_RIGHTS); or a
                         negative libuv error (UV_EADDRINUSE, ...); or
                         SHARE_STOP_NOTICE (seq 0) */
} share_rep;

#endif
