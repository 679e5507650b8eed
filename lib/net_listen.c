/*
** net_listen.c: listen, accept and connect.
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "net_core.h"

/* {====================================================== server */

/* The registry key of the table server conn (light userdata) -> fn of
** core.on_pending. */
static const char pending_key = 'p';

static void connection_cb(uv_stream_t *s, int status) {
  conn *c = (conn *)((lh_handle *)s->data)->extra;
  lua_State *L = c->K->ctx->L;
  if (status < 0) {
    c->rerr = status;
    if (status == UV_EMFILE) c->K->nofile = 0; /* (read the limit again) */
  } else
    c->pending = 1; /* libuv holds the fd and stops polling until accept */
  net_wake_reader(L, c);
  /* still pending, no task in accept: the server's on_pending, if any */
  if (c->pending && c->rco == NULL && LIVE(c)) {
    int top;
    lua_checkstack(L, LUA_MINSTACK); /* (see lh_push_cb) */
    top = lua_gettop(L);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pending_key) == LUA_TTABLE &&
        lua_rawgetp(L, -1, c) == LUA_TFUNCTION) {
      lua_remove(L, -2);
      lh_call(c->K->ctx, 0);
    }
    lua_settop(L, top);
  }
}

/* on_pending(server, fn | nil): while set, fn() is called when a client
** is pending and no task waits in accept (serve at max_connections: a
** drain takes the queued clients through it, see net.lua's wait_slot).
** The caller clears it (nil) before the server can be freed. */
static int core_on_pending(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_SERVER);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  if (c == NULL) return 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pending_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key);
  }
  lua_pushvalue(L, 2);
  lua_rawsetp(L, -2, c);
  return 0;
}

/* The path of a unix socket at idx: raises on a NUL byte or an empty
** path; true when it is too long for sun_path (sock.h). */
static int too_long(lua_State *L, int idx) {
  int toolong;
  lh_check_sock_path(L, idx, &toolong);
  return toolong;
}

/* listen(ip, port, backlog, v6only, reuseport) / listen(path, nil,
** backlog): a server, or nil, err. */
static int core_listen(lua_State *L) {
  core *K = net_getcore(L);
  const char *where = luaL_checkstring(L, 1);
  int pipe = lua_isnoneornil(L, 2);
  int port = pipe ? 0 : (int)lh_check_range(L, 2, 0, 65535);
  int backlog = (int)lh_opt_range(L, 3, 511, 1, 65535);
  int v6only = lua_toboolean(L, 4), reuseport = lua_toboolean(L, 5);
  struct sockaddr_storage ss;
  conn *c;
  int r;
  if (!pipe && (lh_has_nul(L, 1) || lh_parse_ip(where, port, &ss) < 0))
    return luaL_argerror(L, 1, "invalid IP address");
  if (pipe && too_long(L, 1)) return net_fail_st(L, UV_ENAMETOOLONG);
  c = net_conn_new(L, K, pipe ? UV_NAMED_PIPE : UV_TCP, K_SERVER);
  if (pipe)
    r = uv_pipe_init(K->ctx->loop, (uv_pipe_t *)c->h->uv, 0);
  else
    r = uv_tcp_init_ex(K->ctx->loop, (uv_tcp_t *)c->h->uv, ss.ss_family);
  if (net_conn_init_done(L, c, r) < 0) return net_fail_st(L, r);
  if (pipe) {
    r = uv_pipe_bind((uv_pipe_t *)c->h->uv, where);
  } else {
    if (reuseport) {
      uv_os_fd_t fd;
      int on = 1;
      r = uv_fileno(c->h->uv, &fd);
      if (r == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
                               sizeof(on)) < 0)
        r = uv_translate_sys_error(errno);
    } else {
      r = 0;
    }
    if (r == 0)
      r = uv_tcp_bind((uv_tcp_t *)c->h->uv, (struct sockaddr *)&ss,
                      v6only ? UV_TCP_IPV6ONLY : 0);
  }
  if (r == 0) r = uv_listen(STREAM(c), backlog, connection_cb);
  if (r < 0) {
    net_conn_close(L, c);
    return net_fail_st(L, r);
  }
  return 1;
}

/* listen_fd(fd, backlog): a server on an inherited listening socket (a
** supervisor's, or systemd's LISTEN_FDS). */
static int core_listen_fd(lua_State *L) {
  core *K = net_getcore(L);
  int fd = (int)lh_check_range(L, 1, 0, 1 << 30);
  int backlog = (int)lh_opt_range(L, 2, 511, 1, 65535);
  uv_handle_type t = uv_guess_handle(fd);
  conn *c;
  int r;
  if (t != UV_TCP && t != UV_NAMED_PIPE)
    return luaL_argerror(L, 1, "not a stream socket");
  c = net_conn_new(L, K, t, K_SERVER);
  r = t == UV_TCP ? uv_tcp_init(K->ctx->loop, (uv_tcp_t *)c->h->uv)
                  : uv_pipe_init(K->ctx->loop, (uv_pipe_t *)c->h->uv, 0);
  if (net_conn_init_done(L, c, r) < 0) return net_fail_st(L, r);
  r = t == UV_TCP ? uv_tcp_open((uv_tcp_t *)c->h->uv, fd)
                  : uv_pipe_open((uv_pipe_t *)c->h->uv, fd);
  if (r == 0) r = uv_listen(STREAM(c), backlog, connection_cb);
  if (r < 0) {
    net_conn_close(L, c);
    return net_fail_st(L, r);
  }
  return 1;
}

/* bind_fd(ip, port, reuseaddr, reuseport, v6only) -> fd | nil, err: a TCP
** socket bound and not listening, for socket.core's bind (LuaSocket binds
** at bind and listens at listen: getsockname answers in between, and a
** taken port fails at bind); listen_fd takes it over, fd_close drops it. */
static int core_bind_fd(lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = (int)lh_check_range(L, 2, 0, 65535);
  int flags[3], names[3] = {SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY};
  struct sockaddr_storage ss;
  int fd, i, e;
  if (lh_has_nul(L, 1) || lh_parse_ip(ip, port, &ss) < 0)
    return luaL_argerror(L, 1, "invalid IP address");
  for (i = 0; i < 3; i++) flags[i] = lua_toboolean(L, 3 + i);
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return net_fail_st(L, uv_translate_sys_error(errno));
  for (i = 0; i < 3; i++) {
    int on = 1;
    if (!flags[i] || (i == 2 && ss.ss_family != AF_INET6)) continue;
    if (setsockopt(fd, i == 2 ? IPPROTO_IPV6 : SOL_SOCKET, names[i], &on,
                   sizeof(on)) < 0)
      goto fail;
  }
  if (bind(fd, (struct sockaddr *)&ss,
           ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                    : sizeof(struct sockaddr_in)) < 0)
    goto fail;
  lua_pushinteger(L, fd);
  return 1;
fail:
  e = errno;
  close(fd);
  return net_fail_st(L, uv_translate_sys_error(e));
}

/* fd_sockname(fd) -> ip, port, family | nil, err (of bind_fd's socket) */
static int core_fd_sockname(lua_State *L) {
  int fd = (int)lh_check_range(L, 1, 0, 1 << 30);
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char ip[INET6_ADDRSTRLEN];
  int port;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return net_fail_st(L, uv_translate_sys_error(errno));
  if (lh_sockaddr_ip((struct sockaddr *)&ss, ip, &port) < 0)
    return net_fail_st(L, UV_EAFNOSUPPORT);
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  lua_pushstring(L, ss.ss_family == AF_INET6 ? "inet6" : "inet");
  return 3;
}

/* fd_close(fd): closes bind_fd's socket (one listen_fd did not take). */
static int core_fd_close(lua_State *L) {
  close((int)lh_check_range(L, 1, 0, 1 << 30));
  return 0;
}

/* Descriptors kept free for what the handlers open (files, upstream
** connections): with fewer left, serve stops accepting (see accept_k). */
static int fd_reserve(rlim_t limit) {
  rlim_t r = limit / 16;
  return (int)(r < 8 ? 8 : r > 256 ? 256 : r);
}

/* Is the descriptor libuv accepted (fd) one too close to the limit?
** Then accepting more would run the process out: libuv's accept() would
** fail with EMFILE and its way out (closing a spare descriptor to accept
** and close every client in the backlog) drops clients silently. While
** that is so the connection stays with libuv, which polls the listening
** socket no more: the other clients wait in the kernel's backlog, and
** accept answers nil, "EMFILE" until enough descriptors are free (the
** lowest free one, which a dup would get, is below the reserve again). */
/* The soft RLIMIT_NOFILE (0: none to heed), read at most once a second
** (getrlimit was a system call per accept), and at once when fresh: a
** limit raised (setrlimit, prlimit) is seen before any client waits for
** it. */
#define NOFILE_NONE ((uint64_t)1 << 62) /* (no limit, or one above 2^30) */
static rlim_t nofile(core *K, int fresh) {
  uint64_t now = uv_now(K->ctx->loop);
  if (fresh || K->nofile == 0 || now - K->nofile_at >= 1000) {
    struct rlimit rl;
    K->nofile = getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
      rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)1 << 30 ?
      NOFILE_NONE : (uint64_t)rl.rlim_cur;
    K->nofile_at = now;
  }
  return K->nofile == NOFILE_NONE ? 0 : (rlim_t)K->nofile;
}

static int fd_short(core *K, uv_stream_t *s) {
  int fd = s->accepted_fd, spare;
  rlim_t lim;
  if (fd < 0) return 0;
  lim = nofile(K, 0);
  if (lim == 0 || (rlim_t)fd + fd_reserve(lim) < lim) return 0;
  lim = nofile(K, 1); /* close to it: the limit as it is now */
  if (lim == 0 || (rlim_t)fd + fd_reserve(lim) < lim) return 0;
  spare = dup(fd); /* the lowest free descriptor */
  if (spare < 0) return 1;
  close(spare);
  return (rlim_t)spare + fd_reserve(lim) >= lim;
}

static int accept_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  int ms = (int)kc;
  (void)status;
  int how = net_was_cancelled(L, 2);
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->pending) {
    uv_handle_type t = c->h->uv->type;
    conn *nc;
    if (fd_short(c->K, STREAM(c))) return net_fail_st(L, UV_EMFILE);
    nc = net_conn_new(L, c->K, t, K_STREAM);
    int r = t == UV_TCP ? uv_tcp_init(c->K->ctx->loop, (uv_tcp_t *)nc->h->uv)
                        : uv_pipe_init(c->K->ctx->loop,
                                       (uv_pipe_t *)nc->h->uv, 0);
    c->pending = 0;
    if (net_conn_init_done(L, nc, r) < 0) return net_fail_st(L, r);
    r = uv_accept(STREAM(c), STREAM(nc));
    if (r < 0) {
      net_conn_close(L, nc);
      return net_fail_st(L, r);
    }
    if (t == UV_TCP) uv_tcp_nodelay((uv_tcp_t *)nc->h->uv, 1);
    nc->maxline = c->maxline;
    nc->maxread = c->maxread;
    nc->hwm = c->hwm;
    nc->timeout = c->idle;
    if (c->ans != NULL && !c->ans->closed) {
      nc->ans = c->ans;
      net_answer_ref(nc->ans);
    }
    return 1;
  }
  if (c->rerr) {
    int e = c->rerr;
    c->rerr = 0; /* e.g. EMFILE: report it, keep listening */
    return net_fail_st(L, e);
  }
  if (c->rtimed) {
    c->rtimed = 0;
    return net_fail_str(L, "timeout");
  }
  /* (users reach this through net.lua's Server:accept: a misuse names
  ** its caller's line) */
  return net_park_reader_at(L, c, ms, kc, accept_k, "accept", 2);
}

/* accept([timeout]): the next connection. */
static int server_accept(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_SERVER);
  int ms;
  if (lua_isnoneornil(L, 2)) {
    ms = c ? c->timeout : -1;
  } else {
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s == s, 2, "invalid timeout");
    ms = s < 0 ? -1 : net_secs_to_ms(s);
  }
  lua_settop(L, 2);
  return accept_k(L, LUA_OK, (lua_KContext)ms);
}

/* }====================================================== */

/* {====================================================== connect */

static void connect_cb(uv_connect_t *req, int status) {
  conn *c = (conn *)req->data;
  free(req);
  c->cstatus = status;
  net_wake_reader(c->K->ctx->L, c);
}

static int connect_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1); /* stack: conn [marker] */
  (void)status; (void)kc;
  int how = net_was_cancelled(L, 1);
  if (how) {
    net_drop_waits(L, c);
    if (c) net_conn_close(L, c);
    return net_cancel_exit(L, how);
  }
  if (c == NULL || c->closed) return net_fail_str(L, "closed");
  if (c->cstatus == 1) {
    if (c->rtimed) {
      net_conn_close(L, c);
      return net_fail_str(L, "timeout");
    }
    return net_park_reader(L, c, -1, 0, connect_k, "connect");
  }
  if (c->cstatus < 0) {
    int e = c->cstatus;
    net_conn_close(L, c);
    return net_fail_st(L, e);
  }
  return 1; /* the conn */
}

/* connect(ip, port, timeout_ms, bind_ip, bind_port, nodelay) or
** connect(path, nil, timeout_ms): a conn, or nil, err. */
static int core_connect(lua_State *L) {
  core *K = net_getcore(L);
  const char *where = luaL_checkstring(L, 1);
  int pipe = lua_isnoneornil(L, 2);
  int port = pipe ? 0 : (int)lh_check_range(L, 2, 0, 65535);
  int ms = (int)lh_opt_range(L, 3, -1, -1, (lua_Integer)1 << 30);
  struct sockaddr_storage ss, bs;
  uv_connect_t *req;
  conn *c;
  int r;
  net_need_task(L, K, "net.connect");
  if (!pipe && (lh_has_nul(L, 1) || lh_parse_ip(where, port, &ss) < 0))
    return luaL_argerror(L, 1, "invalid IP address");
  if (pipe && too_long(L, 1)) return net_fail_st(L, UV_ENAMETOOLONG);
  if (!lua_isnoneornil(L, 4) &&
      (lh_parse_ip(luaL_checkstring(L, 4),
                  (int)lh_opt_range(L, 5, 0, 0, 65535), &bs) < 0 ||
       lh_has_nul(L, 4)))
    return luaL_argerror(L, 4, "invalid bind address");
  req = (uv_connect_t *)malloc(sizeof(uv_connect_t));
  if (req == NULL) return luaL_error(L, "not enough memory");
  c = net_conn_new(L, K, pipe ? UV_NAMED_PIPE : UV_TCP, K_STREAM);
  r = pipe ? uv_pipe_init(K->ctx->loop, (uv_pipe_t *)c->h->uv, 0)
           : uv_tcp_init_ex(K->ctx->loop, (uv_tcp_t *)c->h->uv,
                            ss.ss_family);
  if (net_conn_init_done(L, c, r) < 0) {
    free(req);
    return net_fail_st(L, r);
  }
  r = 0;
  if (!pipe && !lua_isnoneornil(L, 4))
    r = uv_tcp_bind((uv_tcp_t *)c->h->uv, (struct sockaddr *)&bs, 0);
  if (r == 0 && !pipe && lua_toboolean(L, 6))
    r = uv_tcp_nodelay((uv_tcp_t *)c->h->uv, 1);
  req->data = c;
  if (r == 0) {
    if (pipe)
      uv_pipe_connect(req, (uv_pipe_t *)c->h->uv, where, connect_cb);
    else
      r = uv_tcp_connect(req, (uv_tcp_t *)c->h->uv, (struct sockaddr *)&ss,
                         connect_cb);
  }
  if (r < 0) {
    free(req);
    net_conn_close(L, c);
    return net_fail_st(L, r);
  }
  c->cstatus = 1;
  lua_replace(L, 1);
  lua_settop(L, 1);
  return net_park_reader(L, c, ms, 0, connect_k, "net.connect");
}

/* }====================================================== */

/* {====================================================== opener */

static const luaL_Reg listen_functions[] = {
  {"connect", core_connect},
  {"listen", core_listen},
  {"listen_fd", core_listen_fd},
  {"bind_fd", core_bind_fd},
  {"fd_sockname", core_fd_sockname},
  {"fd_close", core_fd_close},
  {"on_pending", core_on_pending},
  {NULL, NULL}
};

static const luaL_Reg server_methods[] = {
  {"accept", server_accept},
  {NULL, NULL}
};

void net_listen_open(lua_State *L) {
  net_setfuncs(L, listen_functions);
  net_add_methods(L, K_SERVER, server_methods);
}

/* }====================================================== */
