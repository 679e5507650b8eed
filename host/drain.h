/*
** drain.h: the graceful stop of a serving process (a worker, or a single
** process under --daemon or --pidfile): on SIGTERM, stop accepting, let
** the open connections finish for --drain seconds, then stop in order.
** See Copyright Notice in README.md
*/
#ifndef HOST_DRAIN_H
#define HOST_DRAIN_H

#include "runtime.h"

/* Watch SIGTERM: stop accepting, let connections finish for `seconds`,
** then exit 0 (a second SIGTERM stops a lone process at once; a worker
** leaves that to its supervisor). With reopen_log, SIGHUP reopens the
** --log file (after logrotate moved it). */
void host_drain_init(lh_ctx *ctx, double seconds, int reopen_log);
/* luahost.exiting() -> true once a drain started. */
int host_lua_exiting(lua_State *L);
/* luahost.on_drain(fn): call fn() when a drain starts. */
int host_lua_on_drain(lua_State *L);

#endif
