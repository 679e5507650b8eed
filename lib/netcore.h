/*
** netcore.h: the C core of the net and task modules ("net.core").
** See Copyright Notice in README.md
*/
#ifndef NETCORE_H
#define NETCORE_H

#include <lua.h>

int luaopen_net_core(lua_State *L);

#endif
