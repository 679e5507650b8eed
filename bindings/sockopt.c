/*
** sockopt.c: socket options by name, h:setopt(name, value) and
** h:getopt(name) on tcp, udp and pipe handles (luv has no equivalent), and
** the same on a raw fd for the net module (lh_sockopt_set/lh_sockopt_get).
** One table names every option with its level, its typed value and
** whether it is read-only. Values are typed: booleans for flags, integers
** for sizes and counts, {on=, seconds=} for linger, seconds (a float) for
** rcvtimeo/sndtimeo. An option the socket's family or protocol does not
** have fails with the OS error (ENOPROTOOPT, EOPNOTSUPP), like any other.
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common.h"

/* Value types. T_TTL and T_HOPS are integers in 1..255 and 0..255, the
** ranges libuv's uv_udp_set_ttl and uv_udp_set_multicast_ttl take: net's
** udp sockets set them here too. */
enum { T_BOOL, T_INT, T_LINGER, T_SECS, T_TYPE, T_FAMILY, T_TTL, T_HOPS };

/* Levels: LV_IP picks IPPROTO_IP/opt or IPPROTO_IPV6/opt6 by the socket's
** family (ttl, tos, multicast...): one name for both families. */
enum { LV_SOCKET, LV_TCP, LV_IP, LV_IPV6 };

typedef struct sockopt {
  const char *name;
  int level, opt, opt6, type, readonly;
} sockopt;

/* Sorted by name; this is the list the unknown-name error shows. */
static const sockopt options[] = {
  {"acceptconn", LV_SOCKET, SO_ACCEPTCONN, 0, T_BOOL, 1},
  {"broadcast", LV_SOCKET, SO_BROADCAST, 0, T_BOOL, 0},
  {"cork", LV_TCP, TCP_CORK, 0, T_BOOL, 0},
  {"dontroute", LV_SOCKET, SO_DONTROUTE, 0, T_BOOL, 0},
  {"error", LV_SOCKET, SO_ERROR, 0, T_INT, 1},
  {"family", LV_SOCKET, SO_DOMAIN, 0, T_FAMILY, 1},
  {"keepalive", LV_SOCKET, SO_KEEPALIVE, 0, T_BOOL, 0},
  {"keepcnt", LV_TCP, TCP_KEEPCNT, 0, T_INT, 0},
  {"keepidle", LV_TCP, TCP_KEEPIDLE, 0, T_INT, 0},
  {"keepintvl", LV_TCP, TCP_KEEPINTVL, 0, T_INT, 0},
  {"linger", LV_SOCKET, SO_LINGER, 0, T_LINGER, 0},
  {"maxseg", LV_TCP, TCP_MAXSEG, 0, T_INT, 0},
  {"multicast_loop", LV_IP, IP_MULTICAST_LOOP, IPV6_MULTICAST_LOOP, T_BOOL,
   0},
  {"multicast_ttl", LV_IP, IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS, T_HOPS,
   0},
  {"nodelay", LV_TCP, TCP_NODELAY, 0, T_BOOL, 0},
  {"oobinline", LV_SOCKET, SO_OOBINLINE, 0, T_BOOL, 0},
  {"priority", LV_SOCKET, SO_PRIORITY, 0, T_INT, 0},
  {"protocol", LV_SOCKET, SO_PROTOCOL, 0, T_INT, 1},
  {"quickack", LV_TCP, TCP_QUICKACK, 0, T_BOOL, 0},
  {"rcvbuf", LV_SOCKET, SO_RCVBUF, 0, T_INT, 0},
  {"rcvlowat", LV_SOCKET, SO_RCVLOWAT, 0, T_INT, 0},
  {"rcvtimeo", LV_SOCKET, SO_RCVTIMEO, 0, T_SECS, 0},
  {"reuseaddr", LV_SOCKET, SO_REUSEADDR, 0, T_BOOL, 0},
  {"reuseport", LV_SOCKET, SO_REUSEPORT, 0, T_BOOL, 0},
  {"sndbuf", LV_SOCKET, SO_SNDBUF, 0, T_INT, 0},
  {"sndtimeo", LV_SOCKET, SO_SNDTIMEO, 0, T_SECS, 0},
  {"tos", LV_IP, IP_TOS, IPV6_TCLASS, T_INT, 0},
  {"ttl", LV_IP, IP_TTL, IPV6_UNICAST_HOPS, T_TTL, 0},
  {"type", LV_SOCKET, SO_TYPE, 0, T_TYPE, 1},
  {"user_timeout", LV_TCP, TCP_USER_TIMEOUT, 0, T_INT, 0},
  {"v6only", LV_IPV6, IPV6_V6ONLY, 0, T_BOOL, 0},
  {NULL, 0, 0, 0, 0, 0}
};

/* Longest timeout accepted, in seconds (a timeval holds more; a year is
** already "never"). */
#define MAX_SECS 31536000.0

typedef union optval {
  int i;
  struct linger lg;
  struct timeval tv;
} optval;

/* {====================================================== arguments */

static const sockopt *check_name(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  const sockopt *o;
  luaL_Buffer b;
  for (o = options; o->name; o++)
    if (strcmp(o->name, name) == 0) return o;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "unknown socket option '%s' (valid: ", name);
  luaL_addvalue(&b);
  for (o = options; o->name; o++) {
    luaL_addstring(&b, o->name);
    luaL_addstring(&b, o[1].name ? ", " : ")");
  }
  luaL_pushresult(&b);
  luaL_argerror(L, idx, lua_tostring(L, -1));
  return NULL;
}

static int check_secs(lua_State *L, int idx, struct timeval *tv) {
  lua_Number s;
  if (lua_type(L, idx) != LUA_TNUMBER)
    return luaL_typeerror(L, idx, "number (seconds)");
  s = lua_tonumber(L, idx);
  if (!(s >= 0 && s <= MAX_SECS)) /* also catches NaN */
    return luaL_argerror(L, idx, "seconds out of range [0, 31536000]");
  tv->tv_sec = (time_t)s;
  tv->tv_usec = (suseconds_t)((s - (lua_Number)tv->tv_sec) * 1e6);
  return 0;
}

/* linger: {on=, seconds=} or {onoff, seconds} (on: boolean or 0/1), or
** false for off. */
static void check_linger(lua_State *L, int idx, struct linger *lg) {
  int t;
  if (lua_type(L, idx) == LUA_TBOOLEAN && !lua_toboolean(L, idx)) {
    lg->l_onoff = 0;
    lg->l_linger = 0;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE)
    luaL_typeerror(L, idx, "table {on=, seconds=} or false");
  t = lua_getfield(L, idx, "on");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    t = lua_rawgeti(L, idx, 1);
  }
  if (t == LUA_TBOOLEAN)
    lg->l_onoff = lua_toboolean(L, -1);
  else if (lua_isinteger(L, -1) && (lua_tointeger(L, -1) == 0 ||
                                    lua_tointeger(L, -1) == 1))
    lg->l_onoff = (int)lua_tointeger(L, -1);
  else
    luaL_argerror(L, idx, "linger 'on' must be a boolean (or 0/1)");
  t = lua_getfield(L, idx, "seconds");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    t = lua_rawgeti(L, idx, 2);
  }
  if (t == LUA_TNIL) {
    lg->l_linger = 0;
  } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 &&
             lua_tointeger(L, -1) <= INT_MAX) {
    lg->l_linger = (int)lua_tointeger(L, -1);
  } else {
    luaL_argerror(L, idx, "linger 'seconds' must be an integer >= 0");
  }
  lua_pop(L, 2);
}

/* The value at idx for option o (named at nameidx), into v; returns its
** length. */
static socklen_t check_value(lua_State *L, const sockopt *o, int nameidx,
                             int idx, optval *v) {
  if (o->readonly)
    luaL_argerror(L, nameidx, lua_pushfstring(L,
        "socket option '%s' is read-only", o->name));
  switch (o->type) {
    case T_BOOL:
      luaL_checktype(L, idx, LUA_TBOOLEAN);
      v->i = lua_toboolean(L, idx);
      return sizeof(v->i);
    case T_LINGER:
      check_linger(L, idx, &v->lg);
      return sizeof(v->lg);
    case T_SECS:
      check_secs(L, idx, &v->tv);
      return sizeof(v->tv);
    case T_TTL: case T_HOPS:
      v->i = (int)lh_check_range(L, idx, o->type == T_TTL, 255);
      return sizeof(v->i);
    default:
      v->i = (int)lh_check_range(L, idx, 0, INT_MAX);
      return sizeof(v->i);
  }
}

/* }====================================================== */

/* {====================================================== raw fd */

/* The (level, optname) of o on fd; -1 when fd has no family (bad fd). */
static int resolve(uv_os_fd_t fd, const sockopt *o, int *level, int *opt) {
  int family = AF_UNSPEC;
  socklen_t len = sizeof(family);
  *opt = o->opt;
  switch (o->level) {
    case LV_SOCKET: *level = SOL_SOCKET; return 0;
    case LV_TCP: *level = IPPROTO_TCP; return 0;
    case LV_IPV6: *level = IPPROTO_IPV6; return 0;
    default: break;
  }
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0) return -1;
  if (family == AF_INET6) {
    *level = IPPROTO_IPV6;
    *opt = o->opt6;
  } else {
    *level = IPPROTO_IP; /* AF_UNIX and others: the OS says no */
  }
  return 0;
}

static int set_raw(lua_State *L, uv_os_fd_t fd, const sockopt *o,
                   optval *v, socklen_t len) {
  int level, opt;
  if (resolve(fd, o, &level, &opt) != 0 ||
      setsockopt(fd, level, opt, v, len) != 0)
    return lh_fail(L, uv_translate_sys_error(errno));
  lua_pushinteger(L, 0);
  return 1;
}

static const char *type_name(int type) {
  switch (type) {
    case SOCK_STREAM: return "stream";
    case SOCK_DGRAM: return "dgram";
    case SOCK_SEQPACKET: return "seqpacket";
    case SOCK_RAW: return "raw";
    case SOCK_RDM: return "rdm";
    default: return NULL;
  }
}

static int get_raw(lua_State *L, uv_os_fd_t fd, const sockopt *o) {
  optval v;
  socklen_t len = sizeof(v);
  int level, opt;
  const char *s;
  memset(&v, 0, sizeof(v));
  if (resolve(fd, o, &level, &opt) != 0 ||
      getsockopt(fd, level, opt, &v, &len) != 0)
    return lh_fail(L, uv_translate_sys_error(errno));
  switch (o->type) {
    case T_BOOL:
      lua_pushboolean(L, v.i != 0);
      break;
    case T_LINGER:
      lua_createtable(L, 0, 2);
      lua_pushboolean(L, v.lg.l_onoff != 0);
      lua_setfield(L, -2, "on");
      lua_pushinteger(L, v.lg.l_linger);
      lua_setfield(L, -2, "seconds");
      break;
    case T_SECS:
      lua_pushnumber(L, (lua_Number)v.tv.tv_sec +
                        (lua_Number)v.tv.tv_usec / 1e6);
      break;
    case T_TYPE:
      if ((s = type_name(v.i)) != NULL)
        lua_pushstring(L, s);
      else
        lua_pushinteger(L, v.i);
      break;
    case T_FAMILY:
      if ((s = lh_family_name(v.i)) != NULL)
        lua_pushstring(L, s);
      else
        lua_pushinteger(L, v.i);
      break;
    default:
      lua_pushinteger(L, v.i);
      break;
  }
  return 1;
}

int lh_sockopt_set(lua_State *L, uv_os_fd_t fd, int nameidx, int validx) {
  const sockopt *o = check_name(L, nameidx);
  optval v;
  socklen_t len = check_value(L, o, nameidx, validx, &v);
  return set_raw(L, fd, o, &v, len);
}

int lh_sockopt_get(lua_State *L, uv_os_fd_t fd, int nameidx) {
  return get_raw(L, fd, check_name(L, nameidx));
}

void lh_sockopt_check(lua_State *L, int nameidx, int validx) {
  const sockopt *o = check_name(L, nameidx);
  optval v;
  if (validx > 0) (void)check_value(L, o, nameidx, validx, &v);
}

/* }====================================================== */

/* {====================================================== methods */

/*
** The fd of a socket handle. A handle made without a family (new_udp(),
** new_tcp()) has no socket until bind/connect: say how to get one.
*/
static int handle_fd(lua_State *L, lh_handle *h, uv_os_fd_t *fd) {
  int st = uv_fileno(h->uv, fd);
  const char *how;
  if (st >= 0) return 1;
  if (st != UV_EBADF) {
    lh_fail(L, st);
    return 0;
  }
  switch (h->uv->type) {
    case UV_UDP:
      how = "create it with a family (uv.new_udp(\"inet\")) or bind it";
      break;
    case UV_TCP:
      how = "create it with a family (uv.new_tcp(\"inet\")) or bind it";
      break;
    default:
      how = "bind, connect or open it first";
      break;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "EBADF: %s handle has no socket yet: %s",
                  uv_handle_type_name(h->uv->type), how);
  lua_pushliteral(L, "EBADF");
  return 0;
}

/* h:setopt(name, value) -> 0 or fail (nil, "ENAME: msg", "ENAME").
** Arguments are checked before the socket, so a mistake raises even on a
** handle with no socket yet. */
static int sockopt_setopt(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, LH_SOCKET_MASK);
  const sockopt *o = check_name(L, 2);
  optval v;
  socklen_t len = check_value(L, o, 2, 3, &v);
  uv_os_fd_t fd;
  if (!handle_fd(L, h, &fd)) return 3;
  return set_raw(L, fd, o, &v, len);
}

/* h:getopt(name) -> typed value or fail. */
static int sockopt_getopt(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, LH_SOCKET_MASK);
  const sockopt *o = check_name(L, 2);
  uv_os_fd_t fd;
  if (!handle_fd(L, h, &fd)) return 3;
  return get_raw(L, fd, o);
}

const luaL_Reg lh_sockopt_methods[] = {
  {"getopt", sockopt_getopt},
  {"setopt", sockopt_setopt},
  {NULL, NULL}
};

/* }====================================================== */

/* uv.setopt(h, name, value) and uv.getopt(h, name) as well, in luv's
** function style; the handle metatables get the methods through
** lh_new_metatable (LH_MT_SOCKET). */
void lh_sockopt_open(lua_State *L) {
  luaL_setfuncs(L, lh_sockopt_methods, 0);
}
