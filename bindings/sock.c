/*
** sock.c: the socket toolkit shared by uv and net (see sock.h).
** See Copyright Notice in README.md
*/
#include <string.h>
#include <sys/un.h>

#include <lauxlib.h>
#include <uv.h>

#include "sock.h"

int lh_parse_ip(const char *ip, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}

int lh_sockaddr_ip(const struct sockaddr *sa, char *ip, int *port) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, ip, INET6_ADDRSTRLEN);
    *port = ntohs(in->sin_port);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, ip, INET6_ADDRSTRLEN);
    *port = ntohs(in6->sin6_port);
    return 0;
  }
  return UV_EAFNOSUPPORT;
}

const char *lh_check_sock_path(lua_State *L, int idx, int *toolong) {
  size_t len;
  const char *p = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(p) == len, idx, "path contains a NUL byte");
  luaL_argcheck(L, len > 0, idx, "empty path");
  *toolong = len >= sizeof(((struct sockaddr_un *)0)->sun_path);
  return p;
}
