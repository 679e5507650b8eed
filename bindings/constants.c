/*
** constants.c: uv.constants, the table of numbers luv exposes (address
** families, socket types, getaddrinfo flags, open flags, signals, udp
** flags), with this system's values.
** See Copyright Notice in README.md
*/
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>

#include "common.h"

typedef struct constant {
  const char *name;
  lua_Integer value;
} constant;

#define C(name) {#name, name}

static const constant constants[] = {
  /* address families */
#ifdef AF_UNIX
  C(AF_UNIX),
#endif
#ifdef AF_INET
  C(AF_INET),
#endif
#ifdef AF_INET6
  C(AF_INET6),
#endif
#ifdef AF_IPX
  C(AF_IPX),
#endif
#ifdef AF_NETLINK
  C(AF_NETLINK),
#endif
#ifdef AF_X25
  C(AF_X25),
#endif
#ifdef AF_AX25
  C(AF_AX25),
#endif
#ifdef AF_ATMPVC
  C(AF_ATMPVC),
#endif
#ifdef AF_APPLETALK
  C(AF_APPLETALK),
#endif
#ifdef AF_PACKET
  C(AF_PACKET),
#endif
  /* getaddrinfo flags */
  C(AI_ADDRCONFIG), C(AI_V4MAPPED), C(AI_ALL), C(AI_NUMERICHOST),
  C(AI_PASSIVE), C(AI_NUMERICSERV),
  /* socket types */
  C(SOCK_STREAM), C(SOCK_DGRAM), C(SOCK_SEQPACKET), C(SOCK_RAW), C(SOCK_RDM),
  /* open flags */
  C(O_RDONLY), C(O_WRONLY), C(O_RDWR), C(O_APPEND), C(O_CREAT), C(O_DSYNC),
  C(O_EXCL), C(O_NOCTTY), C(O_NONBLOCK), C(O_RSYNC), C(O_SYNC), C(O_TRUNC),
  /* signals */
  C(SIGHUP), C(SIGINT), C(SIGQUIT), C(SIGILL), C(SIGTRAP), C(SIGABRT),
  C(SIGBUS), C(SIGFPE), C(SIGKILL), C(SIGUSR1), C(SIGSEGV), C(SIGUSR2),
  C(SIGPIPE), C(SIGALRM), C(SIGTERM), C(SIGCHLD), C(SIGCONT), C(SIGSTOP),
  C(SIGTSTP), C(SIGTTIN), C(SIGTTOU), C(SIGURG), C(SIGXCPU), C(SIGXFSZ),
  C(SIGVTALRM), C(SIGPROF), C(SIGWINCH), C(SIGSYS),
#ifdef SIGIOT
  C(SIGIOT),
#endif
#ifdef SIGSTKFLT
  C(SIGSTKFLT),
#endif
#ifdef SIGIO
  C(SIGIO),
#endif
#ifdef SIGPOLL
  C(SIGPOLL),
#endif
#ifdef SIGPWR
  C(SIGPWR),
#endif
  /* libuv's tcp and udp flags */
  {"TCP_IPV6ONLY", UV_TCP_IPV6ONLY},
  {"UDP_IPV6ONLY", UV_UDP_IPV6ONLY},
  {"UDP_PARTIAL", UV_UDP_PARTIAL},
  {"UDP_REUSEADDR", UV_UDP_REUSEADDR},
  {"UDP_MMSG_CHUNK", UV_UDP_MMSG_CHUNK},
  {"UDP_MMSG_FREE", UV_UDP_MMSG_FREE},
  {"UDP_RECVMMSG", UV_UDP_RECVMMSG},
  {NULL, 0}
};

void lh_constants_open(lua_State *L) {
  const constant *c;
  lua_newtable(L);
  for (c = constants; c->name != NULL; c++) {
    lua_pushinteger(L, c->value);
    lua_setfield(L, -2, c->name);
  }
  lua_setfield(L, -2, "constants");
}
