/*
** process.c: (not yet written) see DESIGN.md.
** See Copyright Notice in README.md
*/
#include "common.h"

void lh_process_open(lua_State *L) {
  (void)L;
}
