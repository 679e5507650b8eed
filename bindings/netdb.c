/*
** netdb.c: the service and protocol look-ups libc has and libuv lacks:
** getservbyname, getservbyport, getprotobyname, getprotobynumber. They read
** local databases (/etc/services, /etc/protocols through NSS), so they run
** synchronously. The reentrant _r calls are used with a buffer that grows
** while they answer ERANGE.
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>

#include "common.h"

/* First and largest buffer for the _r calls; entries are small. */
#define BUF_FIRST 1024
#define BUF_MAX (1024 * 1024)

/* A scratch buffer of n bytes as a Lua userdata: collected even if
** pushing the result raises. Replaces the previous one on the stack. */
static char *scratch(lua_State *L, size_t n, int replace) {
  if (replace) lua_pop(L, 1);
  return (char *)lua_newuserdatauv(L, n, 0);
}

static void push_aliases(lua_State *L, char **aliases) {
  int i;
  lua_newtable(L);
  for (i = 0; aliases && aliases[i]; i++) {
    lua_pushstring(L, aliases[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "aliases");
}

/* {name=, port=, proto=, aliases={...}} */
static void push_servent(lua_State *L, const struct servent *se) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, se->s_name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, ntohs((uint16_t)se->s_port));
  lua_setfield(L, -2, "port");
  lua_pushstring(L, se->s_proto);
  lua_setfield(L, -2, "proto");
  push_aliases(L, se->s_aliases);
}

/* {name=, proto=, aliases={...}} */
static void push_protoent(lua_State *L, const struct protoent *pe) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, pe->p_name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, pe->p_proto);
  lua_setfield(L, -2, "proto");
  push_aliases(L, pe->p_aliases);
}

/*
** One look-up, shared by the four functions: kind selects the call. The
** result is the entry table, or fail: EAI_NONAME for an unknown service,
** EAI_PROTOCOL for an unknown protocol, ENOMEM past BUF_MAX.
*/
enum { SERV_NAME, SERV_PORT, PROTO_NAME, PROTO_NUMBER };

static int lookup(lua_State *L, int kind, const char *name, int num,
                  const char *proto) {
  struct servent se, *ser = NULL;
  struct protoent pe, *per = NULL;
  size_t n = BUF_FIRST;
  char *buf = scratch(L, n, 0);
  int rc;
  for (;;) {
    switch (kind) {
      case SERV_NAME:
        rc = getservbyname_r(name, proto, &se, buf, n, &ser);
        break;
      case SERV_PORT:
        rc = getservbyport_r(htons((uint16_t)num), proto, &se, buf, n,
                             &ser);
        break;
      case PROTO_NAME:
        rc = getprotobyname_r(name, &pe, buf, n, &per);
        break;
      default:
        rc = getprotobynumber_r(num, &pe, buf, n, &per);
        break;
    }
    if (rc != ERANGE) break;
    if (n >= BUF_MAX) return lh_fail(L, UV_ENOMEM);
    n *= 2;
    buf = scratch(L, n, 1);
  }
  if (kind <= SERV_PORT) {
    if (rc != 0 || ser == NULL) return lh_fail(L, UV_EAI_NONAME);
    push_servent(L, ser);
  } else {
    if (rc != 0 || per == NULL) return lh_fail(L, UV_EAI_PROTOCOL);
    push_protoent(L, per);
  }
  return 1;
}

/* getservbyname(name [, proto]) */
static int netdb_getservbyname(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *proto = luaL_optstring(L, 2, NULL);
  if (lh_has_nul(L, 1) || lh_has_nul(L, 2)) /* no such name: C would */
    return lh_fail(L, UV_EAI_NONAME);       /* see only its prefix */
  return lookup(L, SERV_NAME, name, 0, proto);
}

/* getservbyport(port [, proto]) */
static int netdb_getservbyport(lua_State *L) {
  int port = (int)lh_check_range(L, 1, 0, 65535);
  const char *proto = luaL_optstring(L, 2, NULL);
  if (lh_has_nul(L, 2)) return lh_fail(L, UV_EAI_NONAME);
  return lookup(L, SERV_PORT, NULL, port, proto);
}

/* getprotobyname(name) */
static int netdb_getprotobyname(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (lh_has_nul(L, 1)) return lh_fail(L, UV_EAI_PROTOCOL);
  return lookup(L, PROTO_NAME, name, 0, NULL);
}

/* getprotobynumber(n) */
static int netdb_getprotobynumber(lua_State *L) {
  int n = (int)lh_check_range(L, 1, 0, 255);
  return lookup(L, PROTO_NUMBER, NULL, n, NULL);
}

static const luaL_Reg netdb_functions[] = {
  {"getprotobyname", netdb_getprotobyname},
  {"getprotobynumber", netdb_getprotobynumber},
  {"getservbyname", netdb_getservbyname},
  {"getservbyport", netdb_getservbyport},
  {NULL, NULL}
};

void lh_netdb_open(lua_State *L) {
  luaL_setfuncs(L, netdb_functions, 0);
}
