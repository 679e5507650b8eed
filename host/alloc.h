/*
** alloc.h: the host's Lua states, made with its allocator (alloc.c).
** See Copyright Notice in README.md
*/
#ifndef HOST_ALLOC_H
#define HOST_ALLOC_H

#include <lua.h>

/* As luaL_newstate (same panic, warnings off until "@on"), with small
** blocks pooled per state (the plain realloc/free under ASan or with
** LUAHOST_MALLOC=libc in the environment) and the collector in
** generational mode. NULL if out of memory. */
lua_State *lh_state_new(void);
/* lua_close, then free the state's pool. */
void lh_state_close(lua_State *L);

#endif
