/*
** worker.h: a worker's side of a --workers group: who it is (id, count,
** generation), telling the supervisor it is ready, and asking it for the
** listening sockets the script binds (the supervisor owns them all).
** See Copyright Notice in README.md
*/
#ifndef HOST_WORKER_H
#define HOST_WORKER_H

#include "runtime.h"

/* Is this process a worker started by a supervisor? Reads (and removes)
** the supervisor's environment entry; 1 yes, 0 no, -1 bad (printed). */
int host_worker_init(void);
int host_is_worker(void);
/* The group's TLS ticket secret (from the supervisor), NULL outside a
** group: tls_context.c derives the ticket keys from it. */
const char *host_ticket_seed(void);
/* The main chunk ran to its first wait: tell the supervisor (workers). */
void host_worker_started(void);
/* Did the supervisor announce the final stop (not a reload)? Reads the
** channel without waiting; call when SIGTERM arrives. */
int host_worker_final_stop(void);
/* luahost.worker() -> id, count, generation (nothing outside a group). */
int host_lua_worker(lua_State *L);
/* luahost.share(kind, where, port, backlog, v6only, reuseport) -> fd |
** nil, err | false (not a worker): the group's socket, from the
** supervisor. */
int host_lua_share(lua_State *L);
/* In a worker: let the uv bindings ask the supervisor too (tcp:bind and
** pipe:bind, then listen: ctx->share_socket). */
void host_worker_share(lh_ctx *ctx);

#endif
