/*
** stream.c: (not yet written) see DESIGN.md.
** See Copyright Notice in README.md
*/
#include "common.h"

const luaL_Reg lh_stream_methods[] = {
  {NULL, NULL}
};

void lh_stream_open(lua_State *L) {
  (void)L;
}
