/*
** sockopt.c: (not yet written) named socket options, see DESIGN.md.
** See Copyright Notice in README.md
*/
#include "common.h"

const luaL_Reg lh_sockopt_methods[] = {
  {NULL, NULL}
};

int lh_sockopt_set(lua_State *L, uv_os_fd_t fd, int nameidx, int validx) {
  (void)fd; (void)nameidx; (void)validx;
  return lh_fail(L, UV_ENOSYS);
}

int lh_sockopt_get(lua_State *L, uv_os_fd_t fd, int nameidx) {
  (void)fd; (void)nameidx;
  return lh_fail(L, UV_ENOSYS);
}

void lh_sockopt_open(lua_State *L) {
  (void)L;
}
