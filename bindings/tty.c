/*
** tty.c: uv_tty_t (new_tty, tty_set_mode, tty_reset_mode, tty_get_winsize,
** tty_get/set_vterm_state)
** and guess_handle. A tty is a stream: the stream methods come from
** stream.c through LH_MT_STREAM.
** See Copyright Notice in README.md
*/
#include <limits.h>
#include <string.h>

#include "common.h"

/* new_tty(fd, readable): libuv reopens a tty fd so the handle's mode does
** not leak into other users of the same terminal. A regular file fails. */
static int tty_new(lua_State *L) {
  int fd = (int)lh_check_range(L, 1, 0, INT_MAX);
  int readable;
  lh_handle *h;
  int rc;
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  readable = lua_toboolean(L, 2);
  h = lh_handle_new(L, UV_TTY);
  rc = uv_tty_init(h->ctx->loop, lh_uv(h, uv_tty_t), fd, readable);
  if (rc < 0) {
    /* uv_tty_init fails before the stream is registered with the loop. */
    lh_handle_abort(L, h);
    return lh_fail(L, rc);
  }
  return 1;
}

/* mode: 0/"normal", 1/"raw", 2/"io" (UV_TTY_MODE_*). */
static int tty_set_mode(lua_State *L) {
  static const char *const modes[] = {"normal", "raw", "io", NULL};
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_TTY);
  int mode;
  if (lua_type(L, 2) == LUA_TNUMBER)
    mode = (int)lh_check_range(L, 2, 0, 2);
  else
    mode = luaL_checkoption(L, 2, NULL, modes);
  return lh_result(L, uv_tty_set_mode(lh_uv(h, uv_tty_t),
                                      (uv_tty_mode_t)mode));
}

static int tty_reset_mode(lua_State *L) {
  return lh_result(L, uv_tty_reset_mode());
}

/* tty_set_vterm_state("supported" | "unsupported"),
** tty_get_vterm_state(): Windows console state; elsewhere libuv ignores
** the set and answers ENOTSUP to the get, as luv returns them. */
static const char *const vterm_states[] = {"supported", "unsupported", NULL};

static int tty_set_vterm_state(lua_State *L) {
  int st = luaL_checkoption(L, 1, NULL, vterm_states);
  uv_tty_set_vterm_state(st == 0 ? UV_TTY_SUPPORTED : UV_TTY_UNSUPPORTED);
  return 0;
}

static int tty_get_vterm_state(lua_State *L) {
  uv_tty_vtermstate_t st;
  int rc = uv_tty_get_vterm_state(&st);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushstring(L, vterm_states[st == UV_TTY_SUPPORTED ? 0 : 1]);
  return 1;
}

static int tty_get_winsize(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_TTY);
  int w, hgt, rc = uv_tty_get_winsize(lh_uv(h, uv_tty_t), &w, &hgt);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushinteger(L, w);
  lua_pushinteger(L, hgt);
  return 2;
}

/* luv's names: libuv's handle type names ("tty", "pipe", "tcp", "udp"),
** "file", and "unknown" for a descriptor that is none of these. */
static int guess_handle(lua_State *L) {
  int fd = (int)lh_check_range(L, 1, 0, INT_MAX);
  uv_handle_type t = uv_guess_handle(fd);
  if (t == UV_FILE)
    lua_pushliteral(L, "file");
  else if (t == UV_UNKNOWN_HANDLE || uv_handle_type_name(t) == NULL)
    lua_pushliteral(L, "unknown");
  else
    lua_pushstring(L, uv_handle_type_name(t));
  return 1;
}

static const luaL_Reg tty_functions[] = {
  {"guess_handle", guess_handle},
  {"new_tty", tty_new},
  {"tty_get_vterm_state", tty_get_vterm_state},
  {"tty_get_winsize", tty_get_winsize},
  {"tty_reset_mode", tty_reset_mode},
  {"tty_set_mode", tty_set_mode},
  {"tty_set_vterm_state", tty_set_vterm_state},
  {NULL, NULL}
};

static const luaL_Reg tty_methods[] = {
  {"get_winsize", tty_get_winsize},
  {"set_mode", tty_set_mode},
  {NULL, NULL}
};

void lh_tty_open(lua_State *L) {
  luaL_setfuncs(L, tty_functions, 0);
  lh_new_metatable(L, "uv_tty", tty_methods, LH_MT_STREAM);
}
