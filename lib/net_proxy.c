/*
** net_proxy.c: the PROXY protocol (v1 text, v2 binary), read on an
** accepted conn before anything else: a load balancer's header naming
** the original client. The parser is strict: a header is whole and
** well-formed or the connection is refused; it never takes a byte past
** the header (what follows stays unread for the reader or a transport,
** TLS after PROXY).
** Spec: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
** See Copyright Notice in README.md
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "net_core.h"

#define V1_MAX 107          /* the longest v1 line, CRLF included */
#define V2_MAX (16 + 4096)  /* v2: fixed part + addresses and TLVs */

static const unsigned char v2sig[12] = {
  0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

/* {====================================================== parser */

/* A decimal port: 1-5 digits, no leading zero, <= 65535. */
static int v1_port(const char *s, size_t n) {
  long v = 0;
  size_t i;
  if (n == 0 || n > 5 || (s[0] == '0' && n > 1)) return -1;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v <= 65535 ? (int)v : -1;
}

static int v1_addr(const char *s, size_t n, int af, int port,
                   struct sockaddr_storage *ss) {
  char buf[INET6_ADDRSTRLEN];
  memset(ss, 0, sizeof(*ss));
  if (n == 0 || n >= sizeof(buf)) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (af == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, buf, &a->sin_addr) == 1 ? 0 : -1;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    return inet_pton(AF_INET6, buf, &a->sin6_addr) == 1 ? 0 : -1;
  }
}

/* "PROXY TCP4 src dst sport dport\r\n" (or TCP6, or UNKNOWN ...). */
static int parse_v1(const unsigned char *p, size_t n, net_proxied *out) {
  const char *s = (const char *)p, *f[6];
  size_t len, fl[6], i, nf = 0, start;
  const unsigned char *cr = memchr(p, '\r', n < V1_MAX ? n : V1_MAX);
  int af, sp, dp;
  if (cr == NULL) return n >= V1_MAX ? NET_PROXY_BAD : 0;
  len = (size_t)(cr - p);
  if (len + 1 >= n) return 0; /* the LF is not here yet */
  if (cr[1] != '\n') return NET_PROXY_BAD;
  /* fields separated by exactly one space */
  for (i = 0, start = 0; i <= len; i++) {
    if (i == len || s[i] == ' ') {
      if (i == start || nf == 6) return NET_PROXY_BAD;
      f[nf] = s + start;
      fl[nf++] = i - start;
      start = i + 1;
    } else if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
      return NET_PROXY_BAD;
    }
  }
  if (fl[0] != 5 || memcmp(f[0], "PROXY", 5) != 0 || nf < 2)
    return NET_PROXY_BAD;
  memset(out, 0, sizeof(*out));
  if (fl[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0) {
    out->local = 1; /* the rest of the line is ignored */
    return (int)len + 2;
  }
  if (fl[1] != 4 || (memcmp(f[1], "TCP4", 4) && memcmp(f[1], "TCP6", 4)))
    return NET_PROXY_BAD;
  if (nf != 6) return NET_PROXY_BAD;
  af = f[1][3] == '4' ? AF_INET : AF_INET6;
  sp = v1_port(f[4], fl[4]);
  dp = v1_port(f[5], fl[5]);
  if (sp < 0 || dp < 0 || v1_addr(f[2], fl[2], af, sp, &out->src) < 0 ||
      v1_addr(f[3], fl[3], af, dp, &out->dst) < 0)
    return NET_PROXY_BAD;
  return (int)len + 2;
}

static int parse_v2(const unsigned char *p, size_t n, net_proxied *out) {
  size_t len, total;
  int cmd, fam;
  if (n < 16) return 0;
  if ((p[12] >> 4) != 2) return NET_PROXY_BAD;
  cmd = p[12] & 0x0f;
  fam = p[13];
  len = ((size_t)p[14] << 8) | p[15];
  total = 16 + len;
  if (cmd > 1 || total > V2_MAX) return NET_PROXY_BAD;
  if (n < total) return 0;
  memset(out, 0, sizeof(*out));
  if (cmd == 0) { /* LOCAL: the balancer's own (health check) */
    out->local = 1;
    return (int)total;
  }
  switch (fam) {
    case 0x11: { /* TCP over IPv4 */
      struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
      struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
      if (len < 12) return NET_PROXY_BAD;
      s->sin_family = d->sin_family = AF_INET;
      memcpy(&s->sin_addr, p + 16, 4);
      memcpy(&d->sin_addr, p + 20, 4);
      memcpy(&s->sin_port, p + 24, 2);
      memcpy(&d->sin_port, p + 26, 2);
      return (int)total;
    }
    case 0x21: { /* TCP over IPv6 */
      struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
      struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
      if (len < 36) return NET_PROXY_BAD;
      s->sin6_family = d->sin6_family = AF_INET6;
      memcpy(&s->sin6_addr, p + 16, 16);
      memcpy(&d->sin6_addr, p + 32, 16);
      memcpy(&s->sin6_port, p + 48, 2);
      memcpy(&d->sin6_port, p + 50, 2);
      return (int)total;
    }
    case 0x00: /* UNSPEC: keep the connection's own addresses */
      out->local = 1;
      return (int)total;
    default: /* datagrams, unix sockets, unknown: not for a TCP server */
      return NET_PROXY_BAD;
  }
}

int net_proxy_parse(const unsigned char *p, size_t n, net_proxied *out) {
  size_t m = n < 12 ? n : 12;
  if (memcmp(p, v2sig, m) == 0) /* a v2 header, or its start */
    return n < 12 ? 0 : parse_v2(p, n, out);
  m = n < 6 ? n : 6;
  if (memcmp(p, "PROXY ", m) == 0) return n < 6 ? 0 : parse_v1(p, n, out);
  return NET_PROXY_BAD;
}

/* }====================================================== */

/* {====================================================== trusted */

/* Does the socket address sa lie in the CIDR string s ("10.0.0.0/8",
** "::1", "fd00::/8")? -1 when s is not a CIDR. */
static int in_cidr(const char *s, const struct sockaddr *sa) {
  char buf[INET6_ADDRSTRLEN + 5];
  unsigned char net[16], addr[16];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  int af, alen, bits, i;
  if (n == 0 || n >= INET6_ADDRSTRLEN) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  af = strchr(buf, ':') ? AF_INET6 : AF_INET;
  alen = af == AF_INET ? 4 : 16;
  if (inet_pton(af, buf, net) != 1) return -1;
  bits = alen * 8;
  if (slash) {
    int v = 0, d = 0;
    const char *q = slash + 1;
    for (; *q >= '0' && *q <= '9' && d < 4; q++, d++) v = v * 10 + *q - '0';
    if (d == 0 || *q != '\0' || v > alen * 8) return -1;
    bits = v;
  }
  if (sa == NULL) return 0;
  if (sa->sa_family == AF_INET && af == AF_INET) {
    memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const unsigned char *a6 =
        (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                             0xff, 0xff};
    if (af == AF_INET6) {
      memcpy(addr, a6, 16);
    } else if (memcmp(a6, mapped, 12) == 0) {
      memcpy(addr, a6 + 12, 4); /* ::ffff:a.b.c.d against an IPv4 CIDR */
    } else {
      return 0;
    }
  } else {
    return 0;
  }
  for (i = 0; bits > 0; i++, bits -= 8) {
    unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
    if ((addr[i] & mask) != (net[i] & mask)) return 0;
  }
  return 1;
}

/* proxy_cidr(s [, ip]): is s a CIDR (net.listen's check)? With ip: is
** the address ip in it (http's trusted proxies)? */
static int core_proxy_cidr(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  struct sockaddr_storage ss;
  if (lh_has_nul(L, 1)) return lua_pushboolean(L, 0), 1;
  if (lua_isnoneornil(L, 2)) {
    lua_pushboolean(L, in_cidr(s, NULL) == 0);
    return 1;
  }
  if (lh_has_nul(L, 2) || lh_parse_ip(luaL_checkstring(L, 2), 0, &ss) < 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, in_cidr(s, (struct sockaddr *)&ss) == 1);
  return 1;
}

/* Is c's peer one of the CIDRs in the table at idx (nil: anyone)? */
static int trusted(lua_State *L, conn *c, int idx) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), i, ok = 0;
  if (lua_isnil(L, idx)) return 1;
  if (c->h->uv->type != UV_TCP) return 1; /* a unix socket: local peers */
  memset(&ss, 0, sizeof(ss));
  if (uv_tcp_getpeername((uv_tcp_t *)c->h->uv, (struct sockaddr *)&ss,
                         &len) < 0)
    return 0;
  for (i = 1; !ok && lua_rawgeti(L, idx, i) == LUA_TSTRING; i++) {
    ok = in_cidr(lua_tostring(L, -1), (struct sockaddr *)&ss) == 1;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ok;
}

/* }====================================================== */

/* {====================================================== reading */

/* stack: conn, trusted, [marker]. kc: the header's deadline (loop
** time, ms), -1 for none. */
static int proxy_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  net_proxied px;
  int r, ms = -1;
  (void)status;
  int how = net_was_cancelled(L, 2);
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  if (!LIVE(c)) return net_fail_str(L, "closed");
  r = c->rlen > 0 ? net_proxy_parse((const unsigned char *)c->rp, c->rlen,
                                    &px)
                  : 0;
  if (r == NET_PROXY_BAD) return net_fail_str(L, "invalid PROXY header");
  if (r > 0) {
    net_proxied *keep = NULL;
    conn_x *x = net_conn_x(c);
    if (x == NULL) return luaL_error(L, "not enough memory");
    if (!px.local) {
      keep = (net_proxied *)malloc(sizeof(net_proxied));
      if (keep == NULL) return luaL_error(L, "not enough memory");
      *keep = px;
    }
    free(x->px);
    x->px = keep;
    c->rp += r; /* the header goes; what follows stays unread */
    c->rlen -= (size_t)r;
    c->rtimed = 0;
    /* The header is the balancer's, sent as it connects; the client's
    ** first bytes may still be on their way. A drain that took the conn
    ** for fed would close it as idle, with its request in flight. */
    c->fed = c->rlen > 0;
    lua_pushboolean(L, 1);
    return 1;
  }
  if (c->rerr) {
    /* the peer ended (or failed) before a whole header */
    return net_fail_str(L, c->rerr == UV_EOF
                               ? "invalid PROXY header"
                               : net_conn_errname(c, c->rerr));
  }
  if (c->rtimed) {
    c->rtimed = 0;
    return net_fail_str(L, "timeout");
  }
  net_rstart(c);
  if (c->rerr) return net_fail_str(L, net_conn_errname(c, c->rerr));
  if (kc >= 0) { /* one deadline for the whole header, however sent */
    uint64_t now = net_now(c->K);
    if ((uint64_t)kc <= now) return net_fail_str(L, "timeout");
    ms = (int)((uint64_t)kc - now);
  }
  return net_park_reader(L, c, ms, kc, proxy_k, "proxy_header");
}

/* proxy_header(conn, ms, trusted): read the PROXY header of a conn just
** accepted, within ms; true (peername is now the client's), or nil, err
** ("untrusted", "invalid PROXY header", "timeout", "closed", ...). */
static int core_proxy_header(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  int ms = (int)lh_check_range(L, 2, -1, (lua_Integer)1 << 30);
  if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  net_need_task(L, net_getcore(L), "proxy_header");
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (!trusted(L, c, 3)) return net_fail_str(L, "untrusted");
  lua_remove(L, 2); /* conn, trusted */
  return proxy_k(L, LUA_OK,
                 ms < 0 ? -1 : (lua_KContext)(net_now(c->K) + (uint64_t)ms));
}

/* proxyname(): the balancer's address (the socket's peer) when a PROXY
** header named another client; nil otherwise. */
static int conn_proxyname(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  struct sockaddr_storage ss;
  int len = sizeof(ss), r;
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->x == NULL || c->x->px == NULL) {
    lua_pushnil(L);
    return 1;
  }
  memset(&ss, 0, sizeof(ss));
  r = uv_tcp_getpeername((uv_tcp_t *)c->h->uv, (struct sockaddr *)&ss, &len);
  if (r < 0) return net_fail_st(L, r);
  return net_push_sockaddr(L, (struct sockaddr *)&ss);
}

/* proxy_parse(s): the parser alone, for the fuzz spec: bytes taken
** (0: incomplete), or nil, "invalid"; then the client's ip, port. */
static int core_proxy_parse(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  net_proxied px;
  int r = n ? net_proxy_parse((const unsigned char *)s, n, &px) : 0;
  if (r == NET_PROXY_BAD) return net_fail_str(L, "invalid");
  lua_pushinteger(L, r);
  if (r > 0 && !px.local)
    return 1 + net_push_sockaddr(L, (struct sockaddr *)&px.src);
  return 1;
}

/* }====================================================== */

static const luaL_Reg proxy_functions[] = {
  {"proxy_cidr", core_proxy_cidr},
  {"proxy_header", core_proxy_header},
  {"proxy_parse", core_proxy_parse},
  {NULL, NULL}
};

static const luaL_Reg proxy_methods[] = {
  {"proxyname", conn_proxyname},
  {NULL, NULL}
};

void net_proxy_open(lua_State *L) {
  net_setfuncs(L, proxy_functions);
  net_add_methods(L, K_STREAM, proxy_methods);
}
