/*
** tcp.c: uv_tcp_t (new_tcp, tcp_open, tcp_nodelay, tcp_keepalive,
** tcp_simultaneous_accepts, tcp_bind, tcp_getsockname, tcp_getpeername,
** tcp_connect, tcp_close_reset, tcp_write_queue_size) and uv.socketpair,
** with luv's names and results. The stream methods come from stream.c,
** setopt/getopt from sockopt.c, both through the metatable flags.
** See Copyright Notice in README.md
*/
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "common.h"

#define KEEPALIVE_DEFAULT 60 /* seconds of idle before probing, when enabling
                                keepalive without a delay (luv needs one) */

static uv_tcp_t *check_tcp(lua_State *L, int idx, lh_handle **hp) {
  lh_handle *h = lh_check_handle(L, idx, 1 << UV_TCP);
  if (hp) *hp = h;
  return lh_uv(h, uv_tcp_t);
}

static int check_bool(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TBOOLEAN);
  return lua_toboolean(L, idx);
}

/*
** new_tcp([family]): family is "inet", "inet6", "unix", "unspec", an AF_*
** number or a table {family = ...}. With a family other than unspec the
** socket exists at once (uv_tcp_init_ex), so options can be set before
** bind; without one it is created by bind/connect/open.
*/
static int tcp_new(lua_State *L) {
  int family = AF_UNSPEC, st;
  lh_handle *h;
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_getfield(L, 1, "family");
    lua_replace(L, 1); /* check the field as if it were the argument */
  }
  if (lua_type(L, 1) == LUA_TNUMBER)
    lh_check_range(L, 1, 0, 0xffff); /* before the cast to int */
  if (!lua_isnil(L, 1)) family = lh_check_family(L, 1);
  h = lh_handle_new(L, UV_TCP);
  st = uv_tcp_init_ex(h->ctx->loop, lh_uv(h, uv_tcp_t), (unsigned)family);
  if (st < 0) {
    lh_handle_abort(L, h);
    return lh_fail(L, st);
  }
  return 1;
}

static int tcp_open(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, 1, NULL);
  int fd, n = lh_check_fd(L, 2, LH_FD_STREAM, &fd);
  /* checked first: uv_tcp_open failing on a socket it cannot set up
  ** leaves the handle flagged open with no fd (stream.c's has_fd guards
  ** the calls that would then assert, for the failures left: TCP options
  ** on a unix socket) */
  if (n) return n;
  return lh_result(L, uv_tcp_open(t, fd));
}

static int tcp_nodelay(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, 1, NULL);
  return lh_result(L, uv_tcp_nodelay(t, check_bool(L, 2)));
}

/* keepalive(enable [, delay]): delay in seconds, as libuv. */
static int tcp_keepalive(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, 1, NULL);
  int enable = check_bool(L, 2);
  unsigned delay = (unsigned)lh_opt_range(L, 3, KEEPALIVE_DEFAULT, 0,
                                          0x7fffffff);
  return lh_result(L, uv_tcp_keepalive(t, enable, delay));
}

static int tcp_simultaneous_accepts(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, 1, NULL);
  return lh_result(L, uv_tcp_simultaneous_accepts(t, check_bool(L, 2)));
}

/* bind(host, port [, {ipv6only = bool}]) */
static int tcp_bind(lua_State *L) {
  lh_handle *h;
  uv_tcp_t *t = check_tcp(L, 1, &h);
  struct sockaddr_storage ss;
  unsigned flags = 0;
  lh_check_addr(L, 2, 3, &ss);
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    if (lh_opt_boolfield(L, 4, "ipv6only")) flags |= UV_TCP_IPV6ONLY;
  }
  if (lh_bind_defer(h, (struct sockaddr *)&ss,
                    ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in),
                    (flags & UV_TCP_IPV6ONLY) ? LH_SHARE_V6ONLY : 0))
    return lh_result(L, 0); /* a worker: listen asks the supervisor */
  return lh_result(L, uv_tcp_bind(t, (struct sockaddr *)&ss, flags));
}

static int push_name(lua_State *L, int st, struct sockaddr_storage *ss) {
  if (st < 0) return lh_fail(L, st);
  lh_push_addr(L, (struct sockaddr *)ss);
  return 1;
}

static int tcp_getsockname(lua_State *L) {
  lh_handle *h;
  uv_tcp_t *t = check_tcp(L, 1, &h);
  struct sockaddr_storage ss;
  int len = (int)sizeof(ss), st = lh_bind_error(h);
  if (st < 0) return lh_fail(L, st); /* a worker's deferred bind */
  return push_name(L, uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len),
                   &ss);
}

static int tcp_getpeername(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, 1, NULL);
  struct sockaddr_storage ss;
  int len = (int)sizeof(ss);
  return push_name(L, uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len),
                   &ss);
}

/* luv's deprecated name for stream_get_write_queue_size, kept for code
** written against older luv. */
static int tcp_write_queue_size(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, 1, NULL);
  lua_pushinteger(L, (lua_Integer)uv_stream_get_write_queue_size(
                         (uv_stream_t *)t));
  return 1;
}

static void connect_cb(uv_connect_t *c, int status) {
  lh_req *r = lh_req_of(c);
  if (lh_req_push_cb(r)) {
    lh_push_status(r->ctx->L, status);
    lh_call(r->ctx, 1);
  }
  lh_req_free(r);
}

/* connect(host, port, cb(err)): the address is checked before the request
** is allocated; a call that fails at once never runs cb. */
static int tcp_connect(lua_State *L) {
  lh_handle *h;
  uv_tcp_t *t = check_tcp(L, 1, &h);
  struct sockaddr_storage ss;
  lh_req *r;
  int st;
  lh_check_addr(L, 2, 3, &ss);
  lh_check_callable(L, 4);
  if ((st = lh_bind_error(h)) < 0) return lh_fail(L, st);
  if (lh_is_listening(t)) return lh_fail(L, UV_EISCONN);
  r = lh_req_new(L, sizeof(uv_connect_t), 4);
  st = uv_tcp_connect(lh_req_uv(r, uv_connect_t), t,
                      (struct sockaddr *)&ss, connect_cb);
  if (st < 0) {
    lh_req_free(r);
    return lh_fail(L, st);
  }
  lua_pushinteger(L, 0);
  return 1;
}

/* close_reset([cb]): close with an RST (SO_LINGER 0) instead of a FIN; the
** callback is the handle's close callback, as with close(). */
static int tcp_close_reset(lua_State *L) {
  lh_handle *h = lh_check_handle_any(L, 1, 1 << UV_TCP);
  int hascb, st;
  if (h == NULL) luaL_argerror(L, 1, "attempt to use a closed handle");
  hascb = lh_opt_callable(L, 2);
  /* closing: its fd is gone, libuv's own answer (it is not called) */
  if (uv_is_closing(h->uv)) return lh_fail(L, UV_EBADF);
  st = uv_tcp_close_reset(lh_uv(h, uv_tcp_t), lh_handle_close_cb);
  if (st < 0) return lh_fail(L, st);
  if (hascb) lh_set_cb(L, h, LH_CB_CLOSE, 2);
  lua_pushinteger(L, 0);
  return 1;
}

/* {====================================================== socketpair */

static int check_socktype(lua_State *L, int idx) {
  static const char *const names[] = {"stream", "dgram", "raw", "rdm",
                                      "seqpacket", NULL};
  static const int values[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM,
                               SOCK_SEQPACKET};
  if (lua_isnoneornil(L, idx)) return SOCK_STREAM;
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)lh_check_range(L, idx, 0, 0xffff);
  return values[luaL_checkoption(L, idx, NULL, names)];
}

static int check_protocol(lua_State *L, int idx) {
  const char *name;
  struct protoent *p;
  if (lua_isnoneornil(L, idx)) return 0;
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)lh_check_range(L, idx, 0, 0xffff);
  name = luaL_checkstring(L, idx);
  p = getprotobyname(name);
  if (p == NULL)
    luaL_argerror(L, idx, lua_pushfstring(L, "unknown protocol '%s'", name));
  return p->p_proto;
}

/* {nonblock = bool} or nil -> UV_NONBLOCK_PIPE or 0 */
static int check_pipe_flags(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  return lh_opt_boolfield(L, idx, "nonblock") ? UV_NONBLOCK_PIPE : 0;
}

/* socketpair([socktype [, protocol [, flags1 [, flags2]]]]) -> {fd1, fd2},
** a table as in luv. */
static int tcp_socketpair(lua_State *L) {
  int type = check_socktype(L, 1);
  int protocol = check_protocol(L, 2);
  int f1 = check_pipe_flags(L, 3), f2 = check_pipe_flags(L, 4);
  uv_os_sock_t fds[2];
  int st = uv_socketpair(type, protocol, fds, f1, f2);
  if (st < 0) return lh_fail(L, st);
  lua_createtable(L, 2, 0);
  lua_pushinteger(L, fds[0]);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, fds[1]);
  lua_rawseti(L, -2, 2);
  return 1;
}

/* }====================================================== */

static const luaL_Reg tcp_functions[] = {
  {"new_tcp", tcp_new},
  {"socketpair", tcp_socketpair},
  {"tcp_bind", tcp_bind},
  {"tcp_close_reset", tcp_close_reset},
  {"tcp_connect", tcp_connect},
  {"tcp_getpeername", tcp_getpeername},
  {"tcp_getsockname", tcp_getsockname},
  {"tcp_keepalive", tcp_keepalive},
  {"tcp_nodelay", tcp_nodelay},
  {"tcp_open", tcp_open},
  {"tcp_simultaneous_accepts", tcp_simultaneous_accepts},
  {"tcp_write_queue_size", tcp_write_queue_size},
  {NULL, NULL}
};

static const luaL_Reg tcp_methods[] = {
  {"bind", tcp_bind},
  {"close_reset", tcp_close_reset},
  {"connect", tcp_connect},
  {"getpeername", tcp_getpeername},
  {"getsockname", tcp_getsockname},
  {"keepalive", tcp_keepalive},
  {"nodelay", tcp_nodelay},
  {"open", tcp_open},
  {"simultaneous_accepts", tcp_simultaneous_accepts},
  {"write_queue_size", tcp_write_queue_size},
  {NULL, NULL}
};

void lh_tcp_open(lua_State *L) {
  luaL_setfuncs(L, tcp_functions, 0);
  lh_new_metatable(L, "uv_tcp", tcp_methods, LH_MT_STREAM | LH_MT_SOCKET);
}
