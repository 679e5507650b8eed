/*
** netcore.h: the C core of the net and task modules ("net.core"), and
** the scheduler entry points the host uses (lib/net_sched.c).
** See Copyright Notice in README.md
*/
#ifndef NETCORE_H
#define NETCORE_H

#include "common.h"

int luaopen_net_core(lua_State *L);

/* {====================================================== tasks */

/*
** Resume coroutine co with nargs values already pushed on co. A yield is
** the normal case: its values are dropped. When co finishes or fails,
** task.lua's finish hook runs as finish(co, ok, results... | err), where err
** carries co's traceback. Resuming a coroutine that is not suspended is a
** no-op (a cancelled task that an event still refers to).
** Contracts: while a task waits on a C event, the C side must hold a strong
** reference to its coroutine (a registry ref or a user value) — task.lua
** keeps tasks only weakly; lh_resume anchors co while it runs. Before
** pushing the resume values on co, call lua_checkstack(co, n).
*/
void lh_resume(lh_ctx *ctx, lua_State *co, int nargs);
/* Start a fresh coroutine (function + nargs args on co), same outcome
** handling as lh_resume. */
void lh_start(lh_ctx *ctx, lua_State *co, int nargs);
/* Raise "what must be called from a task" unless the running coroutine
** is a task that can yield: the one check, for C outside net.core too. */
void lh_need_task(lua_State *L, const char *what);

/* }====================================================== */

#endif
