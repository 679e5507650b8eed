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
/* Give the pool's blocks back to malloc until it keeps at most a
** fraction 1/den of the bytes the state has in use: for a server gone
** quiet, where the host's C blocks can use them (no-op unpooled). */
void lh_state_trim(lua_State *L, unsigned den);
/* lua_close, then free the state's pool. */
void lh_state_close(lua_State *L);

#endif
