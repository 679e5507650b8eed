/*
** drain.h: the graceful stop of a serving process (a worker, or a single
** process under --daemon or --pidfile): on SIGTERM, stop accepting, let
** the open connections finish for --drain seconds, then stop in order.
** See Copyright Notice in README.md
*/
#ifndef HOST_DRAIN_H
#define HOST_DRAIN_H

#include "runtime.h"

/* Watch SIGTERM: luahost.exiting() turns true at once (http.health
** answers 503), the listeners stay open `delay` seconds more (not in a
** worker a reload replaces), then stop accepting, let connections finish
** for `seconds`, then exit 0 (a second SIGTERM stops a lone process at
** once; a worker leaves that to its supervisor). With reopen_log, SIGHUP
** reopens the --log file (after logrotate moved it). */
void host_drain_init(lh_ctx *ctx, double seconds, double delay,
                     int reopen_log);
/* luahost.exiting() -> true once a drain started. */
int host_lua_exiting(lua_State *L);
/* closing() -> true once the drain closes the listeners (private). */
int host_lua_closing(lua_State *L);
/* luahost.on_drain(fn): call fn() when the drain closes the listeners. */
int host_lua_on_drain(lua_State *L);

#endif
