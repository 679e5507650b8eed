/*
** hostlib.c: the "luahost" module, the whole table in one place: facts
** about this process (its place in a worker group, the drain, the sockets
** it was given), whose functions live with their role (worker.c, drain.c,
** daemon.c); and, apart, the host's plumbing for the embedded modules
** (resuming tasks through the one C path, reporting, stopping), which
** scripts never see (host_private_lib).
** See Copyright Notice in README.md
*/
#include <string.h>

#include "runtime.h"
#include "daemon.h"
#include "drain.h"
#include "log.h"
#include "worker.h"

/* resume(co, ...): wake a suspended task (stale wake-ups of a
** finished or cancelled task are ignored), the same path C events use. */
static int hostlib_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int n = lua_gettop(L) - 1;
  luaL_argexpected(L, co != NULL, 1, "thread");
  if (co == L) return luaL_argerror(L, 1, "cannot resume itself");
  luaL_checkstack(co, n, "too many arguments to resume");
  lua_xmove(L, co, n);
  lh_resume(lh_getctx(L), co, n);
  return 0;
}

/* start(co, ...): run a fresh coroutine (from coroutine.create)
** until its first wait, with the same outcome handling as a resume. */
static int hostlib_start(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int n = lua_gettop(L) - 1;
  luaL_argexpected(L, co != NULL, 1, "thread");
  luaL_argcheck(L, lua_status(co) == LUA_OK && lua_gettop(co) == 1 &&
                lua_type(co, 1) == LUA_TFUNCTION, 1,
                "coroutine already started");
  luaL_checkstack(co, n, "too many arguments to start");
  lua_xmove(L, co, n);
  lh_start(lh_getctx(L), co, n);
  return 0;
}

/* report(msg): print "luahost: msg" on stderr. */
static int hostlib_report(lua_State *L) {
  lh_report(luaL_checkstring(L, 1));
  return 0;
}

/* fatal(code): stop the loop; the process exits with code. */
static int hostlib_fatal(lua_State *L) {
  lh_fatal(lh_getctx(L), (int)luaL_optinteger(L, 1, 1));
  return 0;
}

/* main_done(): the main task finished (task.lua tells us). */
static int hostlib_main_done(lua_State *L) {
  lh_getctx(L)->main_done = 1;
  return 0;
}

/* The C modules only the embedded modules use (task.lua and net.lua's
** scheduler and sockets, task.thread's pool): not in package.preload, so
** no script can require them and reach the plumbing. */
static const luaL_Reg private_modules[] = {
  {"luahost.thread", luaopen_luahost_thread},
  {"net.core", luaopen_net_core},
  {NULL, NULL}
};

/* Registry key of the private modules opened so far. */
static const char private_loaded_key = 'p';

/* require(name): a private C module, opened once. */
static int hostlib_require(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int i;
  lua_settop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &private_loaded_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &private_loaded_key);
  }
  if (lua_getfield(L, 2, name) != LUA_TNIL) return 1;
  for (i = 0; private_modules[i].name != NULL; i++) {
    if (strcmp(private_modules[i].name, name) == 0) {
      lua_pushcfunction(L, private_modules[i].func);
      lua_pushvalue(L, 1);
      lua_call(L, 1, 1);
      lua_pushvalue(L, -1);
      lua_setfield(L, 2, name);
      return 1;
    }
  }
  return luaL_error(L, "no private module '%s'", name);
}

/* The public table: only what docs/deploy.md documents. */
static const luaL_Reg hostlib_functions[] = {
  {"exiting", host_lua_exiting},       /* drain.c */
  {"listen_fds", host_lua_listen_fds}, /* daemon.c */
  {"on_drain", host_lua_on_drain},     /* drain.c */
  {"worker", host_lua_worker},         /* worker.c */
  {NULL, NULL}
};

/* The host's plumbing for the embedded modules. */
static const luaL_Reg private_functions[] = {
  {"closing", host_lua_closing},       /* drain.c */
  {"fatal", hostlib_fatal},
  {"main_done", hostlib_main_done},
  {"report", hostlib_report},
  {"require", hostlib_require},
  {"resume", hostlib_resume},
  {"share", host_lua_share},           /* worker.c: a group's socket */
  {"start", hostlib_start},
  {NULL, NULL}
};

int luaopen_luahost(lua_State *L);
int luaopen_luahost(lua_State *L) {
  luaL_newlib(L, hostlib_functions);
  lua_pushliteral(L, HOST_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

void host_private_lib(lua_State *L) {
  luaL_newlib(L, private_functions);
  host_private_log(L); /* log.c: the log module's writer */
  lua_setfield(L, -2, "log");
}
