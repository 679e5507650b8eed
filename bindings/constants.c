/*
** constants.c: uv.constants, luv's table of the numbers behind the names
** (open flags, access modes, socket types, address families, getaddrinfo
** flags, signals, udp/tcp/tty flags), for code that passes numbers.
** See Copyright Notice in README.md
*/
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define K(name) {#name, name}

static const struct { const char *name; int value; } constants[] = {
  /* open(2) flags and access(2) modes */
  K(O_RDONLY), K(O_WRONLY), K(O_RDWR), K(O_APPEND), K(O_CREAT),
  K(O_DSYNC), K(O_EXCL), K(O_NOCTTY), K(O_NONBLOCK), K(O_RSYNC),
  K(O_SYNC), K(O_TRUNC), K(R_OK), K(W_OK), K(X_OK), K(F_OK),
  /* sockets */
  K(SOCK_STREAM), K(SOCK_DGRAM), K(SOCK_SEQPACKET), K(SOCK_RAW),
  K(SOCK_RDM),
  K(AF_UNIX), K(AF_INET), K(AF_INET6), K(AF_IPX), K(AF_NETLINK),
  K(AF_X25), K(AF_AX25), K(AF_ATMPVC), K(AF_APPLETALK), K(AF_PACKET),
  K(AI_ADDRCONFIG), K(AI_V4MAPPED), K(AI_ALL), K(AI_NUMERICHOST),
  K(AI_PASSIVE), K(AI_NUMERICSERV),
  /* signals */
  K(SIGHUP), K(SIGINT), K(SIGQUIT), K(SIGILL), K(SIGTRAP), K(SIGABRT),
  K(SIGIOT), K(SIGBUS), K(SIGFPE), K(SIGKILL), K(SIGUSR1), K(SIGSEGV),
  K(SIGUSR2), K(SIGPIPE), K(SIGALRM), K(SIGTERM), K(SIGCHLD),
#ifdef SIGSTKFLT
  K(SIGSTKFLT),
#endif
  K(SIGCONT), K(SIGSTOP), K(SIGTSTP), K(SIGTTIN), K(SIGTTOU), K(SIGURG),
  K(SIGXCPU), K(SIGXFSZ), K(SIGVTALRM), K(SIGPROF), K(SIGWINCH), K(SIGIO),
#ifdef SIGPOLL
  K(SIGPOLL),
#endif
#ifdef SIGPWR
  K(SIGPWR),
#endif
  K(SIGSYS),
  /* libuv's own flags, under luv's names */
  {"UDP_MMSG_FREE", UV_UDP_MMSG_FREE}, {"UDP_RECVMMSG", UV_UDP_RECVMMSG},
  {"UDP_MMSG_CHUNK", UV_UDP_MMSG_CHUNK},
  {"UDP_REUSEADDR", UV_UDP_REUSEADDR}, {"UDP_PARTIAL", UV_UDP_PARTIAL},
  {"UDP_IPV6ONLY", UV_UDP_IPV6ONLY}, {"TCP_IPV6ONLY", UV_TCP_IPV6ONLY},
  {"TTY_MODE_NORMAL", UV_TTY_MODE_NORMAL}, {"TTY_MODE_RAW", UV_TTY_MODE_RAW},
  {"TTY_MODE_IO", UV_TTY_MODE_IO},
  {NULL, 0}
};

void lh_constants_open(lua_State *L) {
  int i;
  lua_newtable(L);
  for (i = 0; constants[i].name != NULL; i++) {
    lua_pushinteger(L, constants[i].value);
    lua_setfield(L, -2, constants[i].name);
  }
  lua_setfield(L, -2, "constants");
}
