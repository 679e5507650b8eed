/*
** net_udp.c: udp sockets: datagrams, a bounded receive queue.
** See Copyright Notice in README.md
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "net_core.h"

/* {====================================================== udp */

/* The state's one read buffer (see net_read.c); the datagram is copied
** out before any Lua runs. */
static void udp_alloc_cb(uv_handle_t *uvh, size_t hint, uv_buf_t *b) {
  conn *c = (conn *)((lh_handle *)uvh->data)->extra;
  (void)hint;
  lh_readbuf_alloc(c->K->ctx, b);
}

static void udp_take(conn *c, ssize_t nread, const uv_buf_t *b,
                     const struct sockaddr *addr);

static void udp_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *b,
                        const struct sockaddr *addr, unsigned flags) {
  conn *c = (conn *)((lh_handle *)u->data)->extra;
  int owned = lh_readbuf_owned(c->K->ctx, b);
  (void)flags;
  udp_take(c, nread, b, addr);
  if (owned) free(b->base);
}

static void udp_take(conn *c, ssize_t nread, const uv_buf_t *b,
                     const struct sockaddr *addr) {
  dgram *d;
  if (nread < 0) {
    c->rerr = (int)nread;
    net_wake_reader(c->K->ctx->L, c);
    return;
  }
  if (addr == NULL) return; /* nothing more to read now */
  if (c->qlen >= UDP_QMAX) return; /* nobody reads: drop, as the kernel
                                      would */
  d = (dgram *)malloc(sizeof(dgram) + (size_t)nread);
  if (d == NULL) return;
  d->next = NULL;
  d->len = (size_t)nread;
  memcpy(d->data, b->base, (size_t)nread);
  memset(&d->from, 0, sizeof(d->from));
  memcpy(&d->from, addr, addr->sa_family == AF_INET6
         ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  if (c->qtail) c->qtail->next = d; else c->qhead = d;
  c->qtail = d;
  c->qlen++;
  net_wake_reader(c->K->ctx->L, c);
}

/* udp(ip|nil, port, reuseaddr, family, v6only): a udp socket, bound if
** ip given (an IPv6 one to IPv6 alone with v6only) */
static int core_udp(lua_State *L) {
  core *K = net_getcore(L);
  const char *ip = luaL_optstring(L, 1, NULL);
  int port = (int)lh_opt_range(L, 2, 0, 0, 65535);
  int reuse = lua_toboolean(L, 3);
  const char *fam = luaL_optstring(L, 4, NULL);
  int v6only = lua_toboolean(L, 5);
  struct sockaddr_storage ss;
  unsigned family = AF_UNSPEC;
  conn *c;
  int r;
  if (ip != NULL && (lh_has_nul(L, 1) || lh_parse_ip(ip, port, &ss) < 0))
    return luaL_argerror(L, 1, "invalid IP address");
  if (ip != NULL) family = ss.ss_family;
  else if (fam != NULL) family = strcmp(fam, "inet6") == 0 ? AF_INET6
                                                           : AF_INET;
  c = net_conn_new(L, K, UV_UDP, K_UDP);
  r = uv_udp_init_ex(K->ctx->loop, (uv_udp_t *)c->h->uv, family);
  if (net_conn_init_done(L, c, r) < 0) return net_fail_st(L, r);
  if (ip != NULL) {
    r = uv_udp_bind((uv_udp_t *)c->h->uv, (struct sockaddr *)&ss,
                    (reuse ? UV_UDP_REUSEADDR : 0) |
                    (v6only ? UV_UDP_IPV6ONLY : 0));
    if (r < 0) {
      net_conn_close(L, c);
      return net_fail_st(L, r);
    }
  }
  return 1;
}

/* udp_fd(fd): a udp socket on a bound datagram socket it now owns (a
** worker group's, from the supervisor). */
static int core_udp_fd(lua_State *L) {
  core *K = net_getcore(L);
  int fd = (int)lh_check_range(L, 1, 0, 1 << 30);
  conn *c = net_conn_new(L, K, UV_UDP, K_UDP);
  int r = uv_udp_init(K->ctx->loop, (uv_udp_t *)c->h->uv);
  if (net_conn_init_done(L, c, r) < 0) {
    close(fd);
    return net_fail_st(L, r);
  }
  r = uv_udp_open((uv_udp_t *)c->h->uv, fd);
  if (r < 0) {
    close(fd);
    net_conn_close(L, c);
    return net_fail_st(L, r);
  }
  return 1;
}

/* A socket for a udp handle that has none (net.udp{}: libuv makes it at
** the first send or connect, bound to the wildcard address of that
** address's family, port 0). An option needs it before: bind now as libuv
** would then, in family (inet unless the option's address says inet6):
** the socket is the same as after a first sendto, and sockname works. */
int net_udp_socket(conn *c, int family) {
  struct sockaddr_storage ss;
  uv_os_fd_t fd;
  if (uv_fileno(c->h->uv, &fd) == 0) return 0;
  lh_parse_ip(family == AF_INET6 ? "::" : "0.0.0.0", 0, &ss);
  return uv_udp_bind((uv_udp_t *)c->h->uv, (struct sockaddr *)&ss, 0);
}

typedef struct sreq {
  uv_udp_send_t req;
  char data[1];
} sreq;

static void udp_send_cb(uv_udp_send_t *req, int status) {
  (void)status; /* datagrams are fire and forget, as sendto(2) */
  free(container_of(req, sreq, req));
}

static int udp_send_to(lua_State *L, conn *c, int didx,
                       const struct sockaddr *sa) {
  size_t len;
  const char *data = luaL_checklstring(L, didx, &len);
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  uv_udp_t *u;
  int r;
  if (!LIVE(c)) return net_fail_str(L, "closed");
  u = (uv_udp_t *)c->h->uv;
  r = uv_udp_try_send(u, &b, 1, sa);
  if (r == UV_EAGAIN || r == UV_ENOSYS) { /* queue a copy */
    sreq *q = (sreq *)malloc(sizeof(sreq) + len);
    if (q == NULL) return luaL_error(L, "not enough memory");
    memcpy(q->data, data, len);
    b = uv_buf_init(q->data, (unsigned)len);
    r = uv_udp_send(&q->req, u, &b, 1, sa, udp_send_cb);
    if (r < 0) free(q);
  }
  if (r < 0) return net_fail_st(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* net.lua's resolver of names (core.udp_resolver), in the registry. */
static const char resolver_key = 'r';

/* udp_resolver(fn): fn(op, family, udp, args...) looks the name in the
** args up and calls the method op again with an address. */
static int core_udp_resolver(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &resolver_key);
  return 0;
}

/* net.lua's is_ip: four dotted runs of digits, or a ':' (v6). */
static int looks_like_ip(const char *s) {
  int dots = 0, digits = 0;
  if (strchr(s, ':') != NULL) return 1;
  for (; *s; s++) {
    if (*s >= '0' && *s <= '9') {
      digits++;
    } else if (*s == '.' && digits > 0 && dots < 3) {
      dots++;
      digits = 0;
    } else {
      return 0;
    }
  }
  return dots == 3 && digits > 0;
}

/* The host at hidx: 1 when an IP address (into ss: no resolver call), 0
** when a name. An address that does not parse raises, and so does a NUL
** byte (C would see only what precedes it). */
static int udp_addr(lua_State *L, int hidx, int port,
                    struct sockaddr_storage *ss) {
  const char *host = luaL_checkstring(L, hidx);
  if (lh_has_nul(L, hidx)) return luaL_argerror(L, hidx, "invalid IP address");
  if (lh_parse_ip(host, port, ss) == 0) return 1;
  if (looks_like_ip(host))
    return luaL_argerror(L, hidx, "invalid IP address");
  return 0;
}

static int udp_by_name_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

/* A name: net.lua's resolver looks it up (the task waits, not the loop;
** in the socket's family when it has a socket) and calls op again with
** an address. Only a task can wait: elsewhere this raises, as
** net.connect does for a name. */
static int udp_by_name(lua_State *L, conn *c, const char *op, int nargs) {
  uv_os_fd_t fd;
  int family = 0;
  socklen_t len = sizeof(family);
  lua_settop(L, nargs);
  net_need_task(L, c->K, lua_pushfstring(L, "%s to a name", op));
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &resolver_key) != LUA_TFUNCTION)
    return luaL_error(L, "net: no resolver for udp names");
  lua_insert(L, 1);
  lua_pushstring(L, op);
  lua_insert(L, 2);
  if (uv_fileno(c->h->uv, &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) == 0 &&
      (family == AF_INET || family == AF_INET6))
    lua_pushstring(L, family == AF_INET ? "inet" : "inet6");
  else
    lua_pushnil(L);
  lua_insert(L, 3);
  lua_callk(L, nargs + 2, LUA_MULTRET, 0, udp_by_name_k);
  return udp_by_name_k(L, LUA_OK, 0);
}

/* sendto(data, host, port): host an address, or a name to look up */
static int udp_sendto(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_UDP);
  struct sockaddr_storage ss;
  int port;
  luaL_checkstring(L, 2);
  luaL_checkstring(L, 3);
  port = (int)lh_check_range(L, 4, 0, 65535);
  if (!udp_addr(L, 3, port, &ss)) {
    if (!LIVE(c)) return net_fail_str(L, "closed");
    return udp_by_name(L, c, "sendto", 4);
  }
  return udp_send_to(L, c, 2, (struct sockaddr *)&ss);
}

/* send(data): to the connected peer */
static int udp_send(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_UDP);
  return udp_send_to(L, c, 2, NULL);
}

/* connect(host, port) / connect(): set or clear the default peer */
static int udp_connect(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_UDP);
  struct sockaddr_storage ss;
  int r;
  if (lua_isnoneornil(L, 2)) {
    if (!LIVE(c)) return net_fail_str(L, "closed");
    r = uv_udp_connect((uv_udp_t *)c->h->uv, NULL);
  } else {
    int port;
    luaL_checkstring(L, 2);
    port = (int)lh_check_range(L, 3, 0, 65535);
    if (!udp_addr(L, 2, port, &ss)) {
      if (!LIVE(c)) return net_fail_str(L, "closed");
      return udp_by_name(L, c, "connect", 3);
    }
    if (!LIVE(c)) return net_fail_str(L, "closed");
    r = uv_udp_connect((uv_udp_t *)c->h->uv, (struct sockaddr *)&ss);
  }
  if (r < 0) return net_fail_st(L, r);
  lua_settop(L, 1);
  return 1;
}

static int udp_recv_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  int withaddr = (int)(kc & 1), ms = (int)((kc >> 1) - 1);
  (void)status;
  int how = net_was_cancelled(L, 1);
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->qhead != NULL) {
    dgram *d = c->qhead;
    int n = 1;
    c->qhead = d->next;
    if (c->qhead == NULL) c->qtail = NULL;
    c->qlen--;
    lua_pushlstring(L, d->data, d->len);
    if (withaddr && net_push_sockaddr(L, (struct sockaddr *)&d->from) == 3) {
      lua_pop(L, 1); /* data, ip, port */
      n = 3;
    }
    free(d);
    return n;
  }
  if (c->rerr) {
    int e = c->rerr;
    c->rerr = 0;
    return net_fail_st(L, e);
  }
  if (c->rtimed) {
    c->rtimed = 0;
    return net_fail_str(L, "timeout");
  }
  if (!c->reading) {
    int r = uv_udp_recv_start((uv_udp_t *)c->h->uv, udp_alloc_cb,
                              udp_recv_cb);
    if (r < 0) return net_fail_st(L, r);
    c->reading = 1;
  }
  return net_park_reader(L, c, ms, kc, udp_recv_k, "recvfrom");
}

static int udp_recv_common(lua_State *L, int withaddr) {
  conn *c = net_to_conn(L, 1, K_UDP);
  int ms;
  if (lua_isnoneornil(L, 2)) {
    ms = c ? c->timeout : -1;
  } else {
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s == s, 2, "invalid timeout");
    ms = s < 0 ? -1 : net_secs_to_ms(s);
  }
  lua_settop(L, 1);
  return udp_recv_k(L, LUA_OK, (lua_KContext)(((lua_KContext)ms + 1) << 1
                                              | withaddr));
}

/* recvfrom([timeout]) -> data, ip, port */
static int udp_recvfrom(lua_State *L) { return udp_recv_common(L, 1); }
/* recv([timeout]) -> data */
static int udp_recv(lua_State *L) { return udp_recv_common(L, 0); }

/* setopt(name, value): the options that take an address (libuv picks the
** family's call and looks the interface up), else sockopt.c's table
** (broadcast, ttl, multicast_ttl, multicast_loop... as on every socket). */
static int udp_setopt(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_UDP);
  static const char *const opts[] = {"multicast_interface", "join", "leave",
    NULL};
  const char *name = luaL_checkstring(L, 2);
  uv_udp_t *u;
  int i, r = 0;
  for (i = 0; opts[i] && strcmp(opts[i], name) != 0; i++) {}
  if (opts[i] == NULL) return net_conn_setopt(L);
  luaL_checkany(L, 3);
  if (!LIVE(c)) return net_fail_str(L, "closed");
  u = (uv_udp_t *)c->h->uv;
  switch (i) {
    case 0: /* (C would see only what precedes a NUL byte) */
      luaL_checkstring(L, 3);
      if (lh_has_nul(L, 3)) return luaL_argerror(L, 3, "invalid IP address");
      r = net_udp_socket(c, strchr(lua_tostring(L, 3), ':') ? AF_INET6
                                                             : AF_INET);
      if (r == 0)
        r = uv_udp_set_multicast_interface(u, lua_tostring(L, 3));
      break;
    default: { /* join/leave: group [, interface] */
      const char *group, *iface = NULL;
      int bad;
      if (lua_istable(L, 3)) {
        lua_rawgeti(L, 3, 1);
        lua_rawgeti(L, 3, 2);
        group = luaL_checkstring(L, -2);
        iface = lua_tostring(L, -1);
        bad = lh_has_nul(L, -2) || lh_has_nul(L, -1);
      } else {
        group = luaL_checkstring(L, 3);
        iface = luaL_optstring(L, 4, NULL);
        bad = lh_has_nul(L, 3) || lh_has_nul(L, 4);
      }
      if (bad) return luaL_argerror(L, 3, "invalid IP address");
      r = uv_udp_set_membership(u, group, iface,
                                i == 1 ? UV_JOIN_GROUP : UV_LEAVE_GROUP);
    }
  }
  if (r < 0) return net_fail_st(L, r);
  lua_settop(L, 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== opener */

static const luaL_Reg udp_functions[] = {
  {"udp", core_udp},
  {"udp_fd", core_udp_fd},
  {"udp_resolver", core_udp_resolver},
  {NULL, NULL}
};

static const luaL_Reg udp_methods[] = {
  {"connect", udp_connect},
  {"recv", udp_recv},
  {"recvfrom", udp_recvfrom},
  {"send", udp_send},
  {"sendto", udp_sendto},
  {"setopt", udp_setopt},
  {NULL, NULL}
};

void net_udp_open(lua_State *L) {
  net_setfuncs(L, udp_functions);
  net_add_methods(L, K_UDP, udp_methods);
}

/* }====================================================== */
