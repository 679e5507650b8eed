/*
** http_core.c: luaopen_http_core, the C half of require "http".
** See Copyright Notice in README.md
*/
#include "http_core.h"

static void add(lua_State *L, const luaL_Reg *l) {
  luaL_setfuncs(L, l, 0);
}

int luaopen_http_core(lua_State *L) {
  http_chunked_open(L);
  http_gzip_open(L);
  http_fixed_open(L);
  lua_newtable(L);
  add(L, http_head_funcs);
  http_head_open(L);
  add(L, http_resp_funcs);
  http_resp_open(L);
  add(L, http_chunked_funcs);
  add(L, http_ws_funcs);
  add(L, http_gzip_funcs);
  add(L, http_fixed_funcs);
  return 1;
}
