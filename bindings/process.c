/*
** process.c: uv_process_t (spawn, process_kill, process_get_pid) and
** uv.kill. spawn(path, options, on_exit(code, signal)) -> process, pid.
** options: args (list, without argv[0]), env (list of "K=V"), cwd,
** stdio (list: stream handle | integer fd | nil), uid, gid, detached,
** verbatim_arguments, hide.
** See Copyright Notice in README.md
*/
#include <limits.h>
#include <signal.h>
#include <string.h>

#include "common.h"

#define MAX_ARGS 65536  /* list lengths spawn accepts */
#define MAX_STDIO 64

/* Strings a list field holds, as a NULL-terminated char* array in a
** userdata (collected with the call's stack, never leaked on a raise).
** first is an extra leading entry (argv[0]) or NULL. Numbers are turned
** into strings kept alive in the anchor table at anchor. Pushes the
** userdata; returns the array (NULL when the field is nil: pushes nil). */
static char **check_strlist(lua_State *L, int opts, const char *field,
                            const char *first, int anchor) {
  lua_Integer i, n;
  char **list;
  int skip = first != NULL;
  if (lua_getfield(L, opts, field) == LUA_TNIL) {
    if (!first) return NULL; /* leaves the nil pushed */
    lua_pop(L, 1);
    lua_newtable(L);
  }
  if (!lua_istable(L, -1))
    luaL_argerror(L, opts, lua_pushfstring(L, "field '%s' must be a table",
                                           field));
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n == 0) { /* a map such as {FOO = "bar"} would silently be empty */
    lua_pushnil(L);
    if (lua_next(L, -2))
      luaL_argerror(L, opts, lua_pushfstring(L, "field '%s' must be a "
                                             "list of strings", field));
  }
  if (n > MAX_ARGS)
    luaL_argerror(L, opts, lua_pushfstring(L, "field '%s' is too long",
                                           field));
  list = (char **)lua_newuserdatauv(L, sizeof(char *) *
                                    (size_t)(n + 1 + skip), 0);
  if (first) list[0] = (char *)first;
  for (i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, -2, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_argerror(L, opts, lua_pushfstring(L,
          "field '%s' must hold strings (item %I is %s)", field,
          (LUAI_UACINT)i, luaL_typename(L, -1)));
    if (lh_has_nul(L, -1)) /* exec would see it cut short */
      luaL_argerror(L, opts, lua_pushfstring(L,
          "field '%s': item %I contains a NUL byte", field, (LUAI_UACINT)i));
    list[i - 1 + skip] = (char *)lua_tostring(L, -1);
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  }
  list[n + skip] = NULL;
  lua_remove(L, -2); /* the field's table; keep the userdata */
  return list;
}

/* A stdio entry: nil (ignore), an integer fd (inherit it), or a stream
** handle (an unopened pipe is created, an open stream is inherited). */
static void check_stdio(lua_State *L, int opts, uv_stdio_container_t *c,
                        lua_Integer i) {
  int t = lua_rawgeti(L, -1, i);
  if (t == LUA_TNIL) {
    c->flags = UV_IGNORE;
  } else if (t == LUA_TNUMBER && lua_isinteger(L, -1) &&
             lua_tointeger(L, -1) >= 0 && lua_tointeger(L, -1) <= INT_MAX) {
    c->flags = UV_INHERIT_FD;
    c->data.fd = (int)lua_tointeger(L, -1);
  } else if (luaL_testudata(L, -1, "uv_pipe") ||
             luaL_testudata(L, -1, "uv_tcp") ||
             luaL_testudata(L, -1, "uv_tty")) {
    lh_handle *h = *(lh_handle **)lua_touserdata(L, -1);
    uv_os_fd_t fd;
    if (h == NULL || uv_is_closing(h->uv))
      luaL_argerror(L, opts, lua_pushfstring(L,
          "stdio[%I] is a closed handle", (LUAI_UACINT)i));
    c->data.stream = (uv_stream_t *)h->uv;
    if (uv_fileno(h->uv, &fd) < 0)
      c->flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_READABLE_PIPE |
                                  UV_WRITABLE_PIPE);
    else
      c->flags = UV_INHERIT_STREAM;
  } else {
    luaL_argerror(L, opts, lua_pushfstring(L, "stdio[%I] must be a stream "
                  "handle, a file descriptor or nil (got %s)",
                  (LUAI_UACINT)i, luaL_typename(L, -1)));
  }
  lua_pop(L, 1);
}

/* The highest integer key of the stdio table (holes are allowed). */
static int stdio_count(lua_State *L, int opts) {
  lua_Integer max = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_Integer k;
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || (k = lua_tointeger(L, -1)) < 1 ||
        k > MAX_STDIO) {
      lua_pop(L, 1);
      return luaL_argerror(L, opts, "field 'stdio' must be a list of at "
                           "most 64 entries");
    }
    if (k > max) max = k;
  }
  return (int)max;
}

static int opt_id(lua_State *L, int opts, const char *field, int *set) {
  lua_Integer v = 0;
  int t = lua_getfield(L, opts, field);
  *set = t != LUA_TNIL;
  if (*set) {
    if (!lua_isinteger(L, -1) || (v = lua_tointeger(L, -1)) < 0 ||
        v > INT_MAX)
      luaL_argerror(L, opts, lua_pushfstring(L, "field '%s' must be a "
                                             "non-negative integer", field));
  }
  lua_pop(L, 1);
  return (int)v;
}

static void exit_cb(uv_process_t *p, int64_t status, int signum) {
  lh_handle *h = (lh_handle *)p->data;
  lua_State *L = h->ctx->L;
  if (!lh_push_cb(h, LH_CB_EVENT)) return;
  lua_pushinteger(L, (lua_Integer)status);
  lua_pushinteger(L, signum);
  lh_call(h->ctx, 2);
}

static int process_spawn(lua_State *L) {
  uv_process_options_t o;
  uv_stdio_container_t stdio[MAX_STDIO];
  const char *path = lh_check_cstring(L, 1);
  int i, n, anchor, set, rc, has_cb;
  lh_handle *h;
  memset(&o, 0, sizeof(o));
  luaL_checktype(L, 2, LUA_TTABLE);
  has_cb = lh_opt_callable(L, 3);
  lua_settop(L, 3);
  lua_newtable(L); /* anchor for strings made from numbers */
  anchor = lua_gettop(L);
  o.file = path;
  o.exit_cb = exit_cb;
  o.args = check_strlist(L, 2, "args", path, anchor);
  o.env = check_strlist(L, 2, "env", NULL, anchor);
  if (lua_getfield(L, 2, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING || lh_has_nul(L, -1))
      luaL_argerror(L, 2, "field 'cwd' must be a string without NUL");
    o.cwd = lua_tostring(L, -1); /* stays on the stack */
  }
  o.uid = (uv_uid_t)opt_id(L, 2, "uid", &set);
  if (set) o.flags |= UV_PROCESS_SETUID;
  o.gid = (uv_gid_t)opt_id(L, 2, "gid", &set);
  if (set) o.flags |= UV_PROCESS_SETGID;
  if (lh_opt_boolfield(L, 2, "detached")) o.flags |= UV_PROCESS_DETACHED;
  if (lh_opt_boolfield(L, 2, "verbatim_arguments"))
    o.flags |= UV_PROCESS_WINDOWS_VERBATIM_ARGUMENTS;
  if (lh_opt_boolfield(L, 2, "hide")) o.flags |= UV_PROCESS_WINDOWS_HIDE;
  if (lua_getfield(L, 2, "stdio") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      luaL_argerror(L, 2, "field 'stdio' must be a table");
    n = stdio_count(L, 2);
    for (i = 0; i < n; i++) check_stdio(L, 2, &stdio[i], i + 1);
    o.stdio = stdio;
    o.stdio_count = n;
  }
  h = lh_handle_new(L, UV_PROCESS);
  rc = uv_spawn(h->ctx->loop, lh_uv(h, uv_process_t), &o);
  if (rc < 0) {
    /* uv_spawn registered the handle before failing: it must be closed,
    ** and close_cb frees it. No exit callback was set, none runs. */
    lh_handle_close(h);
    return lh_fail(L, rc);
  }
  if (has_cb) lh_set_cb(L, h, LH_CB_EVENT, 3);
  lua_pushinteger(L, lh_uv(h, uv_process_t)->pid);
  return 2;
}

/* The signal of kill: SIGTERM by default; 0 too (no signal: is the
** process there, and may we signal it? as kill(2) and luv). */
static int opt_signal(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return SIGTERM;
  if (lua_isinteger(L, idx) && lua_tointeger(L, idx) == 0) return 0;
  return lh_check_signal(L, idx);
}

static int process_kill(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_PROCESS);
  int signum = opt_signal(L, 2);
  return lh_result(L, uv_process_kill(lh_uv(h, uv_process_t), signum));
}

static int process_get_pid(lua_State *L) {
  lh_handle *h = lh_check_handle_any(L, 1, 1 << UV_PROCESS);
  if (h == NULL) return luaL_argerror(L, 1, "attempt to use a closed handle");
  lua_pushinteger(L, uv_process_get_pid(lh_uv(h, uv_process_t)));
  return 1;
}

static int kill_pid(lua_State *L) {
  int pid = (int)lh_check_range(L, 1, INT_MIN + 1, INT_MAX);
  int signum = opt_signal(L, 2);
  return lh_result(L, uv_kill(pid, signum));
}

static const luaL_Reg process_functions[] = {
  {"kill", kill_pid},
  {"process_get_pid", process_get_pid},
  {"process_kill", process_kill},
  {"spawn", process_spawn},
  {NULL, NULL}
};

static const luaL_Reg process_methods[] = {
  {"get_pid", process_get_pid},
  {"kill", process_kill},
  {NULL, NULL}
};

void lh_process_open(lua_State *L) {
  luaL_setfuncs(L, process_functions, 0);
  lh_new_metatable(L, "uv_process", process_methods, 0);
}
