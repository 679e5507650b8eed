/*
** sock.h: the socket toolkit under both uv (bindings/) and net
** (lib/net_*.c), the role redis's anet.c plays: one implementation of
** each address and path helper, so that a fix is made once.
** See Copyright Notice in README.md
*/
#ifndef LH_SOCK_H
#define LH_SOCK_H

#include <netinet/in.h>
#include <sys/socket.h>

#include <lua.h>

/* Parse ip + port (IPv4, then IPv6) into ss; 0 or UV_EINVAL. The caller
** checks that the Lua string had no NUL byte (lh_has_nul). */
int lh_parse_ip(const char *ip, int port, struct sockaddr_storage *ss);

/* The numeric address and port of an IPv4/IPv6 sockaddr: 0, or
** UV_EAFNOSUPPORT for another family. ip holds INET6_ADDRSTRLEN bytes. */
int lh_sockaddr_ip(const struct sockaddr *sa, char *ip, int *port);

/* A unix socket path at idx: raises on a NUL byte (C would cut the path
** there) and on an empty path; *toolong is set when it does not fit in
** sun_path (libuv 1.44 would truncate it: bind or connect to another
** path), the caller then fails with UV_ENAMETOOLONG. */
const char *lh_check_sock_path(lua_State *L, int idx, int *toolong);

#endif
