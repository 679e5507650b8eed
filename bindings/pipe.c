/*
** pipe.c: uv_pipe_t, unix domain sockets and pipes (new_pipe, pipe_open,
** pipe_bind, pipe_connect, pipe_getsockname, pipe_getpeername,
** pipe_pending_instances, pipe_pending_count, pipe_pending_type,
** pipe_chmod) and uv.pipe, with luv's names and results. The stream
** methods come from stream.c through the metatable flags.
** See Copyright Notice in README.md
*/
#include <string.h>
#include <sys/un.h>

#include "common.h"
#include "sock.h"

/* Longest socket path bind/connect accept: sun_path less its NUL. */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

static uv_pipe_t *check_pipe(lua_State *L, int idx, lh_handle **hp) {
  lh_handle *h = lh_check_handle(L, idx, 1 << UV_NAMED_PIPE);
  if (hp) *hp = h;
  return lh_uv(h, uv_pipe_t);
}

/* A socket path: a string without NUL bytes (libuv would cut it there).
** Returns NULL for one too long for sun_path, which libuv 1.44 would
** silently truncate. */
static const char *check_path(lua_State *L, int idx) {
  int toolong;
  const char *name = lh_check_sock_path(L, idx, &toolong);
  return toolong ? NULL : name;
}

/* new_pipe([ipc]): ipc = true makes a pipe that can pass handles. */
static int pipe_new(lua_State *L) {
  int ipc = 0, st;
  lh_handle *h;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    ipc = lua_toboolean(L, 1);
  }
  h = lh_handle_new(L, UV_NAMED_PIPE);
  st = uv_pipe_init(h->ctx->loop, lh_uv(h, uv_pipe_t), ipc);
  if (st < 0) {
    lh_handle_abort(L, h);
    return lh_fail(L, st);
  }
  return 1;
}

static int pipe_open(lua_State *L) {
  uv_pipe_t *p = check_pipe(L, 1, NULL);
  int fd, n = lh_check_fd(L, 2, LH_FD_PIPE, &fd);
  if (n) return n;
  return lh_result(L, uv_pipe_open(p, fd));
}

static int pipe_bind(lua_State *L) {
  lh_handle *h;
  uv_pipe_t *p = check_pipe(L, 1, &h);
  const char *name = check_path(L, 2);
  struct sockaddr_un un;
  if (name == NULL) return lh_fail(L, UV_ENAMETOOLONG);
  memset(&un, 0, sizeof(un));
  un.sun_family = AF_UNIX;
  memcpy(un.sun_path, name, strlen(name) + 1); /* fits: check_path */
  if (lh_bind_defer(h, (struct sockaddr *)&un, (int)sizeof(un), 0))
    return lh_result(L, 0); /* a worker: listen asks the supervisor */
  return lh_result(L, uv_pipe_bind(p, name));
}

static void connect_cb(uv_connect_t *c, int status) {
  lh_req *r = lh_req_of(c);
  if (lh_req_push_cb(r)) {
    lh_push_status(r->ctx->L, status);
    lh_call(r->ctx, 1);
  }
  lh_req_free(r);
}

/* connect(name, cb(err)): libuv reports every failure through cb. */
static int pipe_connect(lua_State *L) {
  lh_handle *h;
  uv_pipe_t *p = check_pipe(L, 1, &h);
  const char *name = check_path(L, 2);
  lh_req *r;
  int st;
  lh_check_callable(L, 3);
  if (name == NULL) return lh_fail(L, UV_ENAMETOOLONG);
  if ((st = lh_bind_error(h)) < 0) return lh_fail(L, st);
  if (lh_is_listening(p)) return lh_fail(L, UV_EISCONN); /* (see common.h) */
  r = lh_req_new(L, sizeof(uv_connect_t), 3);
  uv_pipe_connect(lh_req_uv(r, uv_connect_t), p, name, connect_cb);
  lua_pushinteger(L, 0);
  return 1;
}

static int push_name(lua_State *L,
                     int (*fn)(const uv_pipe_t *, char *, size_t *)) {
  uv_pipe_t *p = check_pipe(L, 1, NULL);
  char buf[SUN_PATH_MAX + 2];
  size_t len = sizeof(buf);
  int st = fn(p, buf, &len);
  if (st < 0) return lh_fail(L, st);
  lua_pushlstring(L, buf, len);
  return 1;
}

static int pipe_getsockname(lua_State *L) {
  return push_name(L, uv_pipe_getsockname);
}

static int pipe_getpeername(lua_State *L) {
  return push_name(L, uv_pipe_getpeername);
}

/* Windows only in libuv; accepted (and ignored) elsewhere, as in luv. */
static int pipe_pending_instances(lua_State *L) {
  uv_pipe_t *p = check_pipe(L, 1, NULL);
  uv_pipe_pending_instances(p, (int)lh_check_range(L, 2, 0, 0x7fffffff));
  return 0;
}

static int pipe_pending_count(lua_State *L) {
  lua_pushinteger(L, uv_pipe_pending_count(check_pipe(L, 1, NULL)));
  return 1;
}

/* The type of the next handle to accept ("tcp", "pipe", "udp"), or nil. */
static int pipe_pending_type(lua_State *L) {
  uv_handle_type type = uv_pipe_pending_type(check_pipe(L, 1, NULL));
  const char *name = type == UV_UNKNOWN_HANDLE ? NULL
                   : uv_handle_type_name(type);
  if (name == NULL) return 0;
  lua_pushstring(L, name);
  return 1;
}

/* chmod("r" | "w" | "rw" | "wr") */
static int pipe_chmod(lua_State *L) {
  static const char *const names[] = {"r", "w", "rw", "wr", NULL};
  static const int modes[] = {UV_READABLE, UV_WRITABLE,
                              UV_READABLE | UV_WRITABLE,
                              UV_READABLE | UV_WRITABLE};
  uv_pipe_t *p = check_pipe(L, 1, NULL);
  int mode = modes[luaL_checkoption(L, 2, NULL, names)];
  return lh_result(L, uv_pipe_chmod(p, mode));
}

/* {nonblock = bool} or nil -> UV_NONBLOCK_PIPE or 0 */
static int check_pipe_flags(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  return lh_opt_boolfield(L, idx, "nonblock") ? UV_NONBLOCK_PIPE : 0;
}

/* pipe([read_flags [, write_flags]]) -> {read = fd, write = fd}, as luv. */
static int pipe_fds(lua_State *L) {
  int rf = check_pipe_flags(L, 1), wf = check_pipe_flags(L, 2);
  uv_file fds[2];
  int st = uv_pipe(fds, rf, wf);
  if (st < 0) return lh_fail(L, st);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, fds[0]);
  lua_setfield(L, -2, "read");
  lua_pushinteger(L, fds[1]);
  lua_setfield(L, -2, "write");
  return 1;
}

static const luaL_Reg pipe_functions[] = {
  {"new_pipe", pipe_new},
  {"pipe", pipe_fds},
  {"pipe_bind", pipe_bind},
  {"pipe_chmod", pipe_chmod},
  {"pipe_connect", pipe_connect},
  {"pipe_getpeername", pipe_getpeername},
  {"pipe_getsockname", pipe_getsockname},
  {"pipe_open", pipe_open},
  {"pipe_pending_count", pipe_pending_count},
  {"pipe_pending_instances", pipe_pending_instances},
  {"pipe_pending_type", pipe_pending_type},
  {NULL, NULL}
};

static const luaL_Reg pipe_methods[] = {
  {"bind", pipe_bind},
  {"chmod", pipe_chmod},
  {"connect", pipe_connect},
  {"getpeername", pipe_getpeername},
  {"getsockname", pipe_getsockname},
  {"open", pipe_open},
  {"pending_count", pipe_pending_count},
  {"pending_instances", pipe_pending_instances},
  {"pending_type", pipe_pending_type},
  {NULL, NULL}
};

void lh_pipe_open(lua_State *L) {
  luaL_setfuncs(L, pipe_functions, 0);
  lh_new_metatable(L, "uv_pipe", pipe_methods, LH_MT_STREAM | LH_MT_SOCKET);
}
