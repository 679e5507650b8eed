/*
** dns.c: getaddrinfo and getnameinfo, as luv: with a callback they run on
** libuv's thread pool and call cb(err, result...); without one they run
** synchronously (blocking the loop) and return the result or fail.
** See Copyright Notice in README.md
*/
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common.h"
#include "sock.h"

/* {====================================================== names */

static const struct { const char *name; int num; } socktypes[] = {
  {"stream", SOCK_STREAM}, {"dgram", SOCK_DGRAM}, {"raw", SOCK_RAW},
  {"rdm", SOCK_RDM}, {"seqpacket", SOCK_SEQPACKET}, {NULL, 0}
};

static const struct { const char *name; int num; } protocols[] = {
  {"ip", IPPROTO_IP}, {"icmp", IPPROTO_ICMP}, {"tcp", IPPROTO_TCP},
  {"udp", IPPROTO_UDP}, {"ipv6", IPPROTO_IPV6}, {"ipv6-icmp", IPPROTO_ICMPV6},
  {"sctp", IPPROTO_SCTP}, {"udplite", IPPROTO_UDPLITE},
  {"raw", IPPROTO_RAW}, {NULL, 0}
};

/* The address-info flags of the hints table, one boolean field each. */
static const struct { const char *name; int flag; } hint_flags[] = {
  {"addrconfig", AI_ADDRCONFIG}, {"v4mapped", AI_V4MAPPED},
  {"all", AI_ALL}, {"numerichost", AI_NUMERICHOST},
  {"passive", AI_PASSIVE}, {"numericserv", AI_NUMERICSERV},
  {"canonname", AI_CANONNAME}, {NULL, 0}
};

static void push_name_or_num(lua_State *L, const char *name, int num) {
  if (name)
    lua_pushstring(L, name);
  else
    lua_pushinteger(L, num);
}

static const char *socktype_name(int n) {
  int i;
  for (i = 0; socktypes[i].name; i++)
    if (socktypes[i].num == n) return socktypes[i].name;
  return NULL;
}

static const char *protocol_name(int n) {
  int i;
  for (i = 0; protocols[i].name; i++)
    if (protocols[i].num == n) return protocols[i].name;
  return NULL;
}

/* }====================================================== */

/* {====================================================== getaddrinfo */

/* Field `field` of the hints table (at idx) as a number or a name from
** `names`; absent -> def. Raises naming the hints argument otherwise. */
static int hint_field(lua_State *L, int idx, const char *field, int def,
                      int (*byname)(lua_State *L, const char *s)) {
  int t = lua_getfield(L, idx, field), v = def;
  if (t == LUA_TNUMBER && lua_isinteger(L, -1) &&
      lua_tointeger(L, -1) >= 0 && lua_tointeger(L, -1) <= 0xffff)
    v = (int)lua_tointeger(L, -1);
  else if (t == LUA_TSTRING)
    v = byname(L, lua_tostring(L, -1));
  else if (t != LUA_TNIL)
    v = -1;
  if (v < 0)
    luaL_argerror(L, idx, lua_pushfstring(L,
        "hint '%s' must be a known name or a small integer, got %s%s%s",
        field, t == LUA_TSTRING ? "'" : "",
        t == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1),
        t == LUA_TSTRING ? "'" : ""));
  lua_pop(L, 1);
  return v;
}

/* Names in either case: luv code writes "STREAM" and "INET" too. */
static int family_byname(lua_State *L, const char *s) {
  (void)L;
  if (strcasecmp(s, "inet") == 0) return AF_INET;
  if (strcasecmp(s, "inet6") == 0) return AF_INET6;
  if (strcasecmp(s, "unspec") == 0) return AF_UNSPEC;
  if (strcasecmp(s, "unix") == 0) return AF_UNIX;
  return -1;
}

static int socktype_byname(lua_State *L, const char *s) {
  int i;
  (void)L;
  for (i = 0; socktypes[i].name; i++)
    if (strcasecmp(socktypes[i].name, s) == 0) return socktypes[i].num;
  return -1;
}

static int protocol_byname(lua_State *L, const char *s) {
  int i;
  (void)L;
  for (i = 0; protocols[i].name; i++)
    if (strcasecmp(protocols[i].name, s) == 0) return protocols[i].num;
  return -1;
}

/* The hints table at idx into *hints; NULL when there is none. */
static struct addrinfo *check_hints(lua_State *L, int idx,
                                    struct addrinfo *hints) {
  int i;
  memset(hints, 0, sizeof(*hints));
  if (lua_isnoneornil(L, idx)) return NULL;
  luaL_checktype(L, idx, LUA_TTABLE);
  hints->ai_family = hint_field(L, idx, "family", AF_UNSPEC, family_byname);
  hints->ai_socktype = hint_field(L, idx, "socktype", 0, socktype_byname);
  hints->ai_protocol = hint_field(L, idx, "protocol", 0, protocol_byname);
  for (i = 0; hint_flags[i].name; i++)
    if (lh_opt_boolfield(L, idx, hint_flags[i].name))
      hints->ai_flags |= hint_flags[i].flag;
  return hints;
}

/* Push the result list: {addr=, port=, family=, socktype=, protocol=
** [, canonname=]} per entry, as luv (port only when not 0). */
static void push_addrinfo(lua_State *L, const struct addrinfo *res) {
  int i = 0;
  lua_newtable(L);
  for (; res; res = res->ai_next) {
    lh_push_addr(L, res->ai_addr); /* {ip=, port=, family=} or nil */
    if (lua_isnil(L, -1)) { /* a family we do not show */
      lua_pop(L, 1);
      continue;
    }
    lua_getfield(L, -1, "ip");
    lua_setfield(L, -2, "addr");
    lua_pushnil(L);
    lua_setfield(L, -2, "ip");
    lua_getfield(L, -1, "port");
    if (lua_tointeger(L, -1) == 0) {
      lua_pushnil(L);
      lua_setfield(L, -3, "port");
    }
    lua_pop(L, 1);
    push_name_or_num(L, socktype_name(res->ai_socktype), res->ai_socktype);
    lua_setfield(L, -2, "socktype");
    push_name_or_num(L, protocol_name(res->ai_protocol), res->ai_protocol);
    lua_setfield(L, -2, "protocol");
    if (res->ai_canonname) {
      lua_pushstring(L, res->ai_canonname);
      lua_setfield(L, -2, "canonname");
    }
    lua_rawseti(L, -2, ++i);
  }
}

static void getaddrinfo_cb(uv_getaddrinfo_t *req, int status,
                           struct addrinfo *res) {
  lh_req *r = lh_req_of(req);
  lua_State *L = r->ctx->L;
  if (lh_req_push_cb(r)) {
    lh_push_status(L, status);
    if (status < 0)
      lua_pushnil(L);
    else
      push_addrinfo(L, res);
    uv_freeaddrinfo(res);
    lh_call(r->ctx, 2);
  } else {
    uv_freeaddrinfo(res);
  }
  lh_req_free(r);
}

/* The service: nil, a non-empty name or number string, or a port number
** (written into buf). */
static const char *check_service(lua_State *L, int idx, char *buf,
                                 size_t size) {
  if (lua_isnoneornil(L, idx)) return NULL;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    snprintf(buf, size, "%d", (int)lh_check_range(L, idx, 0, 65535));
    return buf;
  }
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_typeerror(L, idx, "string, port number or nil");
  if (lua_rawlen(L, idx) == 0)
    luaL_argerror(L, idx, "empty service name");
  return lua_tostring(L, idx);
}

/*
** getaddrinfo(host, service, hints [, cb]): host or service may be nil,
** not both; service may be a port number. Without cb: the list or fail.
** With cb: the request (a uv_req), then cb(err, list) from the loop.
*/
static int dns_getaddrinfo(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  char port[8];
  const char *node = luaL_optstring(L, 1, NULL); /* luv: numbers too */
  const char *service = check_service(L, 2, port, sizeof(port));
  struct addrinfo hints_s, *hints = check_hints(L, 3, &hints_s);
  int hascb = lh_opt_callable(L, 4), st;
  if (node == NULL && service == NULL)
    return luaL_argerror(L, 1, "host or service required");
  /* C would see only the part before a NUL byte: no such name. */
  if ((node && lh_has_nul(L, 1)) || (service && service != port &&
                                     lh_has_nul(L, 2)))
    return lh_fail(L, UV_EAI_NONAME);
  if (!hascb) {
    uv_getaddrinfo_t req;
    st = uv_getaddrinfo(ctx->loop, &req, NULL, node, service, hints);
    if (st < 0) return lh_fail(L, st);
    push_addrinfo(L, req.addrinfo);
    uv_freeaddrinfo(req.addrinfo);
    return 1;
  } else {
    lh_req *r = lh_req_new(L, sizeof(uv_getaddrinfo_t), 4);
    st = uv_getaddrinfo(ctx->loop, lh_req_uv(r, uv_getaddrinfo_t),
                        getaddrinfo_cb, node, service, hints);
    if (st < 0) {
      lh_req_free(r);
      return lh_fail(L, st);
    }
    lh_req_push_box(L, r, UV_GETADDRINFO); /* uv.cancel can stop it */
    return 1;
  }
}

/* }====================================================== */

/* {====================================================== getnameinfo */

/* The address table {ip=, port=, family=} at idx, as luv: ip defaults to
** the family's any-address, family to the ip's; neither: UV_EINVAL (luv's
** answer: no address at all), else 0. */
static int check_nameinfo_addr(lua_State *L, int idx,
                               struct sockaddr_storage *ss) {
  const char *ip = NULL;
  int port = 0, family = AF_UNSPEC, t;
  luaL_checktype(L, idx, LUA_TTABLE);
  memset(ss, 0, sizeof(*ss));
  t = lua_getfield(L, idx, "ip");
  if (t == LUA_TSTRING && !lh_has_nul(L, -1))
    ip = lua_tostring(L, -1); /* left on the stack: an __index may have
                                 made it, and nothing else anchors it */
  else if (t == LUA_TSTRING)
    luaL_argerror(L, idx, "field 'ip' contains a NUL byte");
  else if (t != LUA_TNIL)
    luaL_argerror(L, idx, "field 'ip' must be a string");
  t = lua_getfield(L, idx, "port");
  if (t != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
        lua_tointeger(L, -1) > 65535)
      luaL_argerror(L, idx, "field 'port' must be an integer in [0, 65535]");
    port = (int)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  t = lua_getfield(L, idx, "family");
  if (t == LUA_TSTRING)
    family = family_byname(L, lua_tostring(L, -1));
  else if (t == LUA_TNUMBER && lua_isinteger(L, -1))
    family = (int)lua_tointeger(L, -1);
  else if (t != LUA_TNIL)
    family = -1;
  if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
    luaL_argerror(L, idx, "field 'family' must be 'inet' or 'inet6'");
  lua_pop(L, 1);
  if (ip == NULL && family == AF_UNSPEC) return UV_EINVAL;
  if (ip == NULL) ip = family == AF_INET6 ? "::" : "0.0.0.0";
  if (lh_parse_ip(ip, port, ss) == 0 &&
      (family == AF_UNSPEC || ss->ss_family == family))
    return 0;
  return luaL_argerror(L, idx, lua_pushfstring(L, "invalid IP address '%s'",
                                               ip));
}

static void getnameinfo_cb(uv_getnameinfo_t *req, int status,
                           const char *host, const char *service) {
  lh_req *r = lh_req_of(req);
  lua_State *L = r->ctx->L;
  if (lh_req_push_cb(r)) {
    lh_push_status(L, status);
    lua_pushstring(L, status < 0 ? NULL : host);
    lua_pushstring(L, status < 0 ? NULL : service);
    lh_call(r->ctx, 3);
  }
  lh_req_free(r);
}

/* getnameinfo({ip=, port=, family=} [, cb]): host, service or fail; with
** cb: the request (a uv_req), then cb(err, host, service). */
static int dns_getnameinfo(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  struct sockaddr_storage ss;
  int hascb, st;
  lua_settop(L, 2); /* the address check leaves its ip above */
  st = check_nameinfo_addr(L, 1, &ss);
  hascb = lh_opt_callable(L, 2);
  if (st < 0) return lh_fail(L, st);
  if (!hascb) {
    uv_getnameinfo_t req;
    st = uv_getnameinfo(ctx->loop, &req, NULL, (struct sockaddr *)&ss, 0);
    if (st < 0) return lh_fail(L, st);
    lua_pushstring(L, req.host);
    lua_pushstring(L, req.service);
    return 2;
  } else {
    lh_req *r = lh_req_new(L, sizeof(uv_getnameinfo_t), 2);
    st = uv_getnameinfo(ctx->loop, lh_req_uv(r, uv_getnameinfo_t),
                        getnameinfo_cb, (struct sockaddr *)&ss, 0);
    if (st < 0) {
      lh_req_free(r);
      return lh_fail(L, st);
    }
    lh_req_push_box(L, r, UV_GETNAMEINFO); /* uv.cancel can stop it */
    return 1;
  }
}

/* }====================================================== */

static const luaL_Reg dns_functions[] = {
  {"getaddrinfo", dns_getaddrinfo},
  {"getnameinfo", dns_getnameinfo},
  {NULL, NULL}
};

void lh_dns_open(lua_State *L) {
  luaL_setfuncs(L, dns_functions, 0);
}
