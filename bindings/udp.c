/*
** udp.c: uv_udp_t (new_udp, udp_open, udp_bind, udp_connect, udp_send,
** udp_try_send, udp_recv_start, udp_recv_stop, udp_getsockname,
** udp_getpeername, broadcast/ttl/multicast settings, send queue sizes),
** as uv.udp_<name>(u, ...) and u:<name>(...), with luv's arguments.
** See Copyright Notice in README.md
*/
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "sock.h"

/* Largest datagram payload (IPv4: 65535 - 20 - 8 = 65507); a receive slot
** of 64 KiB therefore always holds a whole datagram. */
#define DGRAM_SLOT 65536
/* Bounds of the mmsgs option (datagrams per recvmmsg call). */
#define MAX_MMSGS 64
/* Most strings one send takes (Linux IOV_MAX). */
#define MAX_BUFS 1024

static uv_udp_t *check_udp(lua_State *L, int idx, lh_handle **hp) {
  lh_handle *h = lh_check_handle(L, idx, 1 << UV_UDP);
  if (hp) *hp = h;
  return lh_uv(h, uv_udp_t);
}

/* mmsgs is kept in the handle's extra pointer: a small integer, no free. */
#define get_mmsgs(h) ((size_t)(uintptr_t)(h)->extra)

/* The family of new_udp, the value at idx (argument arg, or its field
** "family"): only what a UDP socket can be. */
static unsigned int check_udp_family(lua_State *L, int idx, int arg) {
  const char *s = lua_tostring(L, idx);
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER && lua_isinteger(L, idx)) {
    lua_Integer f = lua_tointeger(L, idx);
    if (f == AF_INET || f == AF_INET6 || f == AF_UNSPEC)
      return (unsigned int)f;
  } else if (t == LUA_TSTRING) {
    if (strcmp(s, "inet") == 0) return AF_INET;
    if (strcmp(s, "inet6") == 0) return AF_INET6;
    if (strcmp(s, "unspec") == 0) return AF_UNSPEC;
  } else if (idx == arg) {
    luaL_typeerror(L, arg, "string, integer or table");
  }
  return (unsigned int)luaL_argerror(L, arg, lua_pushfstring(L,
      "UDP family must be 'inet', 'inet6' or 'unspec', got %s%s%s",
      t == LUA_TSTRING ? "'" : "", t == LUA_TSTRING ? s : luaL_typename(L,
      idx), t == LUA_TSTRING ? "'" : ""));
}

/*
** new_udp([family | {family=, mmsgs=}]): without a family the socket is
** made lazily by bind/send (uv_udp_init); with one it exists at once
** (uv_udp_init_ex), so socket options can be set before binding.
*/
static int udp_new(lua_State *L) {
  unsigned int flags = AF_UNSPEC;
  lua_Integer mmsgs = 1;
  int with_family = 0, st;
  lh_handle *h;
  if (lua_type(L, 1) == LUA_TTABLE) {
    if (lua_getfield(L, 1, "family") != LUA_TNIL) {
      flags = check_udp_family(L, lua_gettop(L), 1);
      with_family = 1;
    }
    if (lua_getfield(L, 1, "mmsgs") != LUA_TNIL) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
          lua_tointeger(L, -1) > MAX_MMSGS)
        return luaL_argerror(L, 1, "field 'mmsgs' must be an integer in "
                                   "[1, 64]");
      mmsgs = lua_tointeger(L, -1);
      with_family = 1;
    }
    lua_settop(L, 1);
  } else if (!lua_isnoneornil(L, 1)) {
    flags = check_udp_family(L, 1, 1);
    with_family = 1;
  }
  if (mmsgs > 1) flags |= UV_UDP_RECVMMSG;
  h = lh_handle_new(L, UV_UDP);
  h->extra = (void *)(uintptr_t)mmsgs;
  if (with_family)
    st = uv_udp_init_ex(h->ctx->loop, lh_uv(h, uv_udp_t), flags);
  else
    st = uv_udp_init(h->ctx->loop, lh_uv(h, uv_udp_t));
  if (st < 0) {
    h->extra = NULL;
    lh_handle_abort(L, h);
    lua_pop(L, 1);
    return lh_fail(L, st);
  }
  return 1;
}

static int udp_open(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  int fd, n = lh_check_fd(L, 2, LH_FD_DGRAM, &fd);
  if (n) return n;
  return lh_result(L, uv_udp_open(u, fd));
}

static int udp_bind(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  struct sockaddr_storage ss;
  unsigned int flags = 0;
  lh_check_addr(L, 2, 3, &ss);
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    if (lh_opt_boolfield(L, 4, "reuseaddr")) flags |= UV_UDP_REUSEADDR;
    if (lh_opt_boolfield(L, 4, "ipv6only")) flags |= UV_UDP_IPV6ONLY;
  }
  return lh_result(L, uv_udp_bind(u, (struct sockaddr *)&ss, flags));
}

/*
** A destination given as host, port: both nil means "the connected peer"
** (NULL), as in luv; one of them nil is a mistake.
*/
static struct sockaddr *check_opt_addr(lua_State *L, int hostidx,
                                       struct sockaddr_storage *ss) {
  int portidx = hostidx + 1;
  if (lua_isnoneornil(L, hostidx)) {
    if (!lua_isnoneornil(L, portidx))
      luaL_argerror(L, hostidx, "host and port must both be nil or both set");
    return NULL;
  }
  /* a wrong host is named whether or not a port follows */
  lh_check_cstring(L, hostidx);
  if (lua_isnoneornil(L, portidx))
    luaL_argerror(L, portidx, "host and port must both be nil or both set");
  lh_check_addr(L, hostidx, portidx, ss);
  return (struct sockaddr *)ss;
}

static int udp_connect(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  struct sockaddr_storage ss;
  struct sockaddr *sa = check_opt_addr(L, 2, &ss);
  return lh_result(L, uv_udp_connect(u, sa));
}

static int push_name(lua_State *L, int st, struct sockaddr_storage *ss) {
  if (st < 0) return lh_fail(L, st);
  lh_push_addr(L, (struct sockaddr *)ss);
  return 1;
}

static int udp_getsockname(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  struct sockaddr_storage ss;
  int len = (int)sizeof(ss);
  return push_name(L, uv_udp_getsockname(u, (struct sockaddr *)&ss, &len),
                   &ss);
}

static int udp_getpeername(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  struct sockaddr_storage ss;
  int len = (int)sizeof(ss);
  return push_name(L, uv_udp_getpeername(u, (struct sockaddr *)&ss, &len),
                   &ss);
}

/* {====================================================== options */

/* An IP address argument (multicast group, interface, source). */
static const char *check_ip(lua_State *L, int idx) {
  struct sockaddr_storage ss;
  const char *ip = lh_check_cstring(L, idx);
  if (lh_parse_ip(ip, 0, &ss) < 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "invalid IP address '%s'", ip));
  return ip;
}

/* Optional interface address: nil lets the kernel choose. */
static const char *opt_ip(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : check_ip(L, idx);
}

static const char *const membership_names[] = {"leave", "join", NULL};

static uv_membership check_membership(lua_State *L, int idx) {
  return luaL_checkoption(L, idx, NULL, membership_names) == 0
         ? UV_LEAVE_GROUP : UV_JOIN_GROUP;
}

static int udp_set_membership(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  const char *group = check_ip(L, 2);
  const char *iface = opt_ip(L, 3);
  uv_membership m = check_membership(L, 4);
  return lh_result(L, uv_udp_set_membership(u, group, iface, m));
}

static int udp_set_source_membership(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  const char *group = check_ip(L, 2);
  const char *iface = opt_ip(L, 3);
  const char *source = check_ip(L, 4);
  uv_membership m = check_membership(L, 5);
  return lh_result(L, uv_udp_set_source_membership(u, group, iface, source,
                                                   m));
}

static int udp_set_multicast_interface(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  return lh_result(L, uv_udp_set_multicast_interface(u, opt_ip(L, 2)));
}

static int check_bool(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TBOOLEAN);
  return lua_toboolean(L, idx);
}

static int udp_set_broadcast(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  return lh_result(L, uv_udp_set_broadcast(u, check_bool(L, 2)));
}

static int udp_set_multicast_loop(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  return lh_result(L, uv_udp_set_multicast_loop(u, check_bool(L, 2)));
}

static int udp_set_ttl(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  return lh_result(L, uv_udp_set_ttl(u, (int)lh_check_range(L, 2, 1, 255)));
}

static int udp_set_multicast_ttl(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  int ttl = (int)lh_check_range(L, 2, 0, 255);
  return lh_result(L, uv_udp_set_multicast_ttl(u, ttl));
}

static int udp_get_send_queue_size(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  lua_pushinteger(L, (lua_Integer)uv_udp_get_send_queue_size(u));
  return 1;
}

static int udp_get_send_queue_count(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  lua_pushinteger(L, (lua_Integer)uv_udp_get_send_queue_count(u));
  return 1;
}

/* }====================================================== */

/* {====================================================== send */

static void send_cb(uv_udp_send_t *req, int status) {
  lh_req *r = lh_req_of(req);
  if (lh_req_push_cb(r)) {
    lh_push_status(r->ctx->L, status);
    lh_call(r->ctx, 1);
  }
  lh_req_free(r);
}

/* send(data, host, port [, cb]); host and port nil on a connected socket.
** The callback, if any, gets err (ECANCELED when the handle closes). */
static int udp_send(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  struct sockaddr_storage ss;
  struct sockaddr *sa;
  lh_bufs b;
  lh_req *r;
  int st, hascb;
  lua_settop(L, 5); /* a buffer array check_bufs pushes goes above */
  lh_check_bufs(L, 2, &b, MAX_BUFS);
  sa = check_opt_addr(L, 3, &ss);
  hascb = lh_opt_callable(L, 5);
  r = lh_req_new(L, sizeof(uv_udp_send_t), hascb ? 5 : 0);
  st = uv_udp_send(lh_req_uv(r, uv_udp_send_t), u, b.bufs, b.n, sa,
                   send_cb);
  if (st < 0) {
    lh_req_free(r);
    return lh_fail(L, st);
  }
  r->data_ref = lh_anchor_bufs(L, 2);
  lua_pushinteger(L, 0);
  return 1;
}

/* try_send(data, host, port): bytes sent, or fail (EAGAIN while sends are
** queued). Nothing is kept, so nothing is anchored. */
static int udp_try_send(lua_State *L) {
  uv_udp_t *u = check_udp(L, 1, NULL);
  struct sockaddr_storage ss;
  struct sockaddr *sa;
  lh_bufs b;
  lua_settop(L, 4);
  lh_check_bufs(L, 2, &b, MAX_BUFS);
  sa = check_opt_addr(L, 3, &ss);
  return lh_result(L, uv_udp_try_send(u, b.bufs, b.n, sa));
}

/* }====================================================== */

/* {====================================================== receive */

/* Every handle reads into the state's shared buffer (lh_readbuf), made
** big enough by recv_start: no allocation per datagram. While net lends
** it to a reader (lh_readbuf_alloc), a loop run nested there gets none:
** libuv reports UV_ENOBUFS and the datagram waits in the kernel (chunks
** of one recvmmsg buffer reach Lua one by one: one malloc'd buffer would
** have no safe place to be freed). */
static void alloc_cb(uv_handle_t *uvh, size_t suggested, uv_buf_t *buf) {
  lh_handle *h = (lh_handle *)uvh->data;
  (void)suggested;
  buf->base = h->ctx->readbuf_lent ? NULL : h->ctx->readbuf;
  buf->len = buf->base != NULL ? get_mmsgs(h) * DGRAM_SLOT : 0;
}

/*
** cb(err, data, addr, flags) with addr {ip=, port=, family=} and flags
** {partial=, mmsg_chunk=}, as luv. Unlike luv, the "nothing more to read"
** call (nread 0, no address) is not passed on: it carries no data.
*/
static void recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags) {
  lh_handle *h = (lh_handle *)u->data;
  lua_State *L = h->ctx->L;
  if (flags & UV_UDP_MMSG_FREE) return; /* the buffer is shared: keep it */
  if (nread == 0 && addr == NULL) return;
  if (!lh_push_cb(h, LH_CB_EVENT)) return;
  lh_push_status(L, nread < 0 ? (int)nread : 0);
  if (nread < 0)
    lua_pushnil(L);
  else
    lua_pushlstring(L, buf->base, (size_t)nread);
  if (addr)
    lh_push_addr(L, addr);
  else
    lua_pushnil(L);
  lua_createtable(L, 0, 2);
  if (flags & UV_UDP_PARTIAL) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "partial");
  }
  if (flags & UV_UDP_MMSG_CHUNK) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "mmsg_chunk");
  }
  lh_call(h->ctx, 4);
}

static int udp_recv_start(lua_State *L) {
  lh_handle *h;
  uv_udp_t *u = check_udp(L, 1, &h);
  int st;
  lh_check_callable(L, 2);
  lh_readbuf(L, get_mmsgs(h) * DGRAM_SLOT);
  lh_set_cb(L, h, LH_CB_EVENT, 2);
  st = uv_udp_recv_start(u, alloc_cb, recv_cb);
  if (st < 0) lh_unset_cb(L, h, LH_CB_EVENT);
  return lh_result(L, st);
}

static int udp_recv_stop(lua_State *L) {
  lh_handle *h;
  uv_udp_t *u = check_udp(L, 1, &h);
  int st = uv_udp_recv_stop(u);
  if (st >= 0) lh_unset_cb(L, h, LH_CB_EVENT);
  return lh_result(L, st);
}

/* }====================================================== */

static const luaL_Reg udp_functions[] = {
  {"new_udp", udp_new},
  {"udp_bind", udp_bind},
  {"udp_connect", udp_connect},
  {"udp_get_send_queue_count", udp_get_send_queue_count},
  {"udp_get_send_queue_size", udp_get_send_queue_size},
  {"udp_getpeername", udp_getpeername},
  {"udp_getsockname", udp_getsockname},
  {"udp_open", udp_open},
  {"udp_recv_start", udp_recv_start},
  {"udp_recv_stop", udp_recv_stop},
  {"udp_send", udp_send},
  {"udp_set_broadcast", udp_set_broadcast},
  {"udp_set_membership", udp_set_membership},
  {"udp_set_multicast_interface", udp_set_multicast_interface},
  {"udp_set_multicast_loop", udp_set_multicast_loop},
  {"udp_set_multicast_ttl", udp_set_multicast_ttl},
  {"udp_set_source_membership", udp_set_source_membership},
  {"udp_set_ttl", udp_set_ttl},
  {"udp_try_send", udp_try_send},
  {NULL, NULL}
};

static const luaL_Reg udp_methods[] = {
  {"bind", udp_bind},
  {"connect", udp_connect},
  {"get_send_queue_count", udp_get_send_queue_count},
  {"get_send_queue_size", udp_get_send_queue_size},
  {"getpeername", udp_getpeername},
  {"getsockname", udp_getsockname},
  {"open", udp_open},
  {"recv_start", udp_recv_start},
  {"recv_stop", udp_recv_stop},
  {"send", udp_send},
  {"set_broadcast", udp_set_broadcast},
  {"set_membership", udp_set_membership},
  {"set_multicast_interface", udp_set_multicast_interface},
  {"set_multicast_loop", udp_set_multicast_loop},
  {"set_multicast_ttl", udp_set_multicast_ttl},
  {"set_source_membership", udp_set_source_membership},
  {"set_ttl", udp_set_ttl},
  {"try_send", udp_try_send},
  {NULL, NULL}
};

void lh_udp_open(lua_State *L) {
  luaL_setfuncs(L, udp_functions, 0);
  lh_new_metatable(L, "uv_udp", udp_methods, LH_MT_SOCKET);
}
