/*
** workers.h: --workers: a supervisor process that runs N workers (each
** the script with its own loop), restarts the ones that die, drains them
** on SIGTERM/SIGINT and replaces them on SIGHUP; and the worker's side:
** its id, the drain on SIGTERM, telling the supervisor it is ready.
** See Copyright Notice in README.md
*/
#ifndef HOST_WORKERS_H
#define HOST_WORKERS_H

#include "options.h"
#include "runtime.h"

/* Run the supervisor for argv (the script is argv[script]) until it
** stops; no Lua state is created. Returns the process exit status. */
int host_supervise(const host_options *ho, int argc, char **argv,
                   int script);
/* Is this process a worker started by a supervisor? Reads (and removes)
** the supervisor's environment entry; 1 yes, 0 no, -1 bad (printed). */
int host_worker_init(void);
int host_is_worker(void);
/* Watch SIGTERM: stop accepting, let connections finish for `drain`
** seconds, then exit 0 (a second SIGTERM stops at once). Workers also
** leave SIGINT and SIGHUP to the supervisor. With reopen_log, SIGHUP
** reopens the --log file (after logrotate moved it). */
void host_drain_init(lh_ctx *ctx, double drain, int reopen_log);
/* The main chunk ran to its first wait: tell the supervisor (workers). */
void host_worker_started(void);
/* Adds worker() and exiting() to the luahost table on top of L. */
void host_workers_lib(lua_State *L);

#endif
