/*
** handle.c: methods every handle has (close, is_active, is_closing, ref,
** unref, has_ref, fileno, send/recv_buffer_size, get_type), available both
** as uv.<name>(h, ...) and h:<name>(...).
** See Copyright Notice in README.md
*/
#include "common.h"

static int handle_is_active(lua_State *L) {
  lh_handle *h = lh_check_handle_any(L, 1, LH_ANY_MASK);
  lua_pushboolean(L, h != NULL &&
                        (uv_is_active(h->uv) || lh_fs_poll_pending(h)));
  return 1;
}

static int handle_is_closing(lua_State *L) {
  lh_handle *h = lh_check_handle_any(L, 1, LH_ANY_MASK);
  lua_pushboolean(L, h == NULL || uv_is_closing(h->uv));
  return 1;
}

static int handle_ref(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, LH_ANY_MASK);
  uv_ref(h->uv);
  return 0;
}

static int handle_unref(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, LH_ANY_MASK);
  uv_unref(h->uv);
  return 0;
}

static int handle_has_ref(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, LH_ANY_MASK);
  lua_pushboolean(L, uv_has_ref(h->uv));
  return 1;
}

static int handle_fileno(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, LH_ANY_MASK);
  uv_os_fd_t fd;
  int st = uv_fileno(h->uv, &fd);
  if (st < 0) return lh_fail(L, st);
  lua_pushinteger(L, fd);
  return 1;
}

/* luv: with no size (or 0) reads the size; with a size sets it, returns 0. */
static int buffer_size(lua_State *L,
                       int (*fn)(uv_handle_t *, int *)) {
  lh_handle *h = lh_check_handle(L, 1, LH_SOCKET_MASK);
  int value = (int)lh_opt_range(L, 2, 0, 0, 0x7fffffff);
  int st = fn(h->uv, &value);
  if (st < 0) return lh_fail(L, st);
  lua_pushinteger(L, lua_isnoneornil(L, 2) || lua_tointeger(L, 2) == 0
                     ? value : 0);
  return 1;
}

static int handle_send_buffer_size(lua_State *L) {
  return buffer_size(L, uv_send_buffer_size);
}

static int handle_recv_buffer_size(lua_State *L) {
  return buffer_size(L, uv_recv_buffer_size);
}

/* Returns the type name and the libuv enum value, as luv does. */
static int handle_get_type(lua_State *L) {
  lh_handle *h = lh_check_handle_any(L, 1, LH_ANY_MASK);
  if (h == NULL) return luaL_argerror(L, 1, "attempt to use a closed handle");
  lua_pushstring(L, uv_handle_type_name(h->uv->type));
  lua_pushinteger(L, h->uv->type);
  return 2;
}

const luaL_Reg lh_handle_methods[] = {
  {"close", lh_handle_close_method},
  {"fileno", handle_fileno},
  {"get_type", handle_get_type},
  {"has_ref", handle_has_ref},
  {"is_active", handle_is_active},
  {"is_closing", handle_is_closing},
  {"recv_buffer_size", handle_recv_buffer_size},
  {"ref", handle_ref},
  {"send_buffer_size", handle_send_buffer_size},
  {"unref", handle_unref},
  {NULL, NULL}
};

void lh_handle_open(lua_State *L) {
  /* The module-level names are the method names: uv.close(h), ... */
  luaL_setfuncs(L, lh_handle_methods, 0);
  lua_getfield(L, -1, "get_type");
  lua_setfield(L, -2, "handle_get_type");
}
