/*
** net_dns.c: getaddrinfo / getnameinfo without blocking the loop.
** See Copyright Notice in README.md
*/
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "net_core.h"

/* {====================================================== dns */

typedef struct dnsreq {
  union {
    uv_getaddrinfo_t ai;
    uv_getnameinfo_t ni;
  } u;
  core *K;
  lua_State *co;        /* NULL once the waiting task gave up */
  int ref;
  tmo t;                /* the caller's deadline, if any */
} dnsreq;

static void dns_done(dnsreq *d, int nres) {
  lua_State *L = d->K->ctx->L, *co = d->co;
  net_tmo_del(d->K, &d->t);
  lh_resume(d->K->ctx, co, nres);
  luaL_unref(L, LUA_REGISTRYINDEX, d->ref);
  free(d);
}

static void getaddrinfo_cb(uv_getaddrinfo_t *req, int status,
                           struct addrinfo *res) {
  dnsreq *d = (dnsreq *)req;
  lua_State *co = d->co;
  struct addrinfo *ai;
  int n = 0;
  if (co == NULL || lua_status(co) != LUA_YIELD) {
    net_tmo_del(d->K, &d->t);
    uv_freeaddrinfo(res);
    luaL_unref(d->K->ctx->L, LUA_REGISTRYINDEX, d->ref);
    free(d);
    return;
  }
  if (status < 0) {
    lua_pushnil(co);
    lua_pushstring(co, net_errname(status));
    dns_done(d, 2);
    return;
  }
  lua_newtable(co);
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    char ip[INET6_ADDRSTRLEN];
    int i, dup = 0;
    if (ai->ai_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)ai->ai_addr, ip, sizeof(ip));
    else if (ai->ai_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, ip, sizeof(ip));
    else
      continue;
    for (i = 1; i <= n && !dup; i++) { /* one entry per address */
      lua_rawgeti(co, -1, i);
      dup = strcmp(lua_tostring(co, -1), ip) == 0;
      lua_pop(co, 1);
    }
    if (dup) continue;
    lua_pushstring(co, ip);
    lua_rawseti(co, -2, ++n);
  }
  uv_freeaddrinfo(res);
  if (n == 0) {
    lua_pop(co, 1);
    lua_pushnil(co);
    lua_pushliteral(co, "ENOTFOUND");
    dns_done(d, 2);
    return;
  }
  dns_done(d, 1);
}

static int dns_k(lua_State *L, int status, lua_KContext kc) {
  dnsreq *d = (dnsreq *)kc;
  (void)status;
  int how = lua_touserdata(L, -1) == CANCEL ? 1
            : lua_touserdata(L, -1) == DROP ? 2 : 0;
  if (how) {
    lua_pop(L, 1);
    d->co = NULL; /* the callback frees it */
    net_tmo_del(d->K, &d->t);
    uv_cancel((uv_req_t *)&d->u);
    return net_cancel_exit(L, how);
  }
  return lua_gettop(L); /* {ip...} or nil, err, pushed by the callback */
}

/* The deadline of a look-up passed: answer "timeout" now; the callback
** will only free the request. */
static void dns_timeout(dnsreq *d) {
  lua_State *co = d->co;
  if (co == NULL || lua_status(co) != LUA_YIELD) return;
  d->co = NULL;
  uv_cancel((uv_req_t *)&d->u);
  lua_pushnil(co);
  lua_pushliteral(co, "timeout");
  lh_resume(d->K->ctx, co, 2); /* co stays anchored by d->ref */
}

static void dns_fire(core *K, tmo *t) {
  (void)K;
  dns_timeout(container_of(t, dnsreq, t));
}

/* getaddrinfo(name, family, timeout_ms) -> {ip...} | nil, err */
static int core_getaddrinfo(lua_State *L) {
  core *K = net_getcore(L);
  const char *name = luaL_checkstring(L, 1);
  const char *fam = luaL_optstring(L, 2, NULL);
  int ms = (int)lh_opt_range(L, 3, -1, -1, (lua_Integer)1 << 30);
  struct addrinfo hints;
  dnsreq *d;
  int r;
  net_need_task(L, K, "net.lookup");
  if (net_has_nul(L, 1)) /* no such name */
    return net_fail_str(L, "ENOTFOUND");
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = fam == NULL ? AF_UNSPEC : strcmp(fam, "inet6") == 0
                    ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  d = (dnsreq *)calloc(1, sizeof(dnsreq));
  if (d == NULL) return luaL_error(L, "not enough memory");
  d->K = K;
  d->co = L;
  d->t.idx = -1;
  r = uv_getaddrinfo(K->ctx->loop, &d->u.ai, getaddrinfo_cb, name, NULL,
                     &hints);
  if (r < 0) {
    free(d);
    return net_fail_st(L, r);
  }
  if (ms >= 0) net_tmo_add(K, &d->t, dns_fire, (uint64_t)ms);
  lua_pushthread(L);
  d->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  return lua_yieldk(L, 0, (lua_KContext)d, dns_k);
}

static void getnameinfo_cb(uv_getnameinfo_t *req, int status,
                           const char *host, const char *service) {
  dnsreq *d = (dnsreq *)req;
  lua_State *co = d->co;
  (void)service;
  if (co == NULL || lua_status(co) != LUA_YIELD) {
    net_tmo_del(d->K, &d->t);
    luaL_unref(d->K->ctx->L, LUA_REGISTRYINDEX, d->ref);
    free(d);
    return;
  }
  if (status < 0) {
    lua_pushnil(co);
    lua_pushstring(co, net_errname(status));
    dns_done(d, 2);
    return;
  }
  lua_pushstring(co, host);
  dns_done(d, 1);
}

/* getnameinfo(ip) -> name | nil, err */
static int core_getnameinfo(lua_State *L) {
  core *K = net_getcore(L);
  const char *ip = luaL_checkstring(L, 1);
  struct sockaddr_storage ss;
  dnsreq *d;
  int r;
  if (net_has_nul(L, 1) || net_parse_addr(ip, 0, &ss) < 0)
    return luaL_argerror(L, 1, "invalid IP address");
  net_need_task(L, K, "net.reverse");
  d = (dnsreq *)calloc(1, sizeof(dnsreq));
  if (d == NULL) return luaL_error(L, "not enough memory");
  d->K = K;
  d->co = L;
  d->t.idx = -1;
  r = uv_getnameinfo(K->ctx->loop, &d->u.ni, getnameinfo_cb,
                     (struct sockaddr *)&ss, NI_NAMEREQD);
  if (r < 0) {
    free(d);
    return net_fail_st(L, r);
  }
  lua_pushthread(L);
  d->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  return lua_yieldk(L, 0, (lua_KContext)d, dns_k);
}

/* }====================================================== */

/* {====================================================== opener */

static const luaL_Reg dns_functions[] = {
  {"getaddrinfo", core_getaddrinfo},
  {"getnameinfo", core_getnameinfo},
  {NULL, NULL}
};

void net_dns_open(lua_State *L) {
  net_setfuncs(L, dns_functions);
}

/* }====================================================== */
