/*
** supervisor.h: --workers: a supervisor process that runs N workers (each
** the script with its own loop), restarts the ones that die, drains them
** on SIGTERM/SIGINT and replaces them on SIGHUP.
** See Copyright Notice in README.md
*/
#ifndef HOST_SUPERVISOR_H
#define HOST_SUPERVISOR_H

#include "options.h"

/* Run the supervisor for argv (the script is argv[script]) until it
** stops; no Lua state is created. Returns the process exit status. */
int host_supervise(const host_options *ho, int argc, char **argv,
                   int script);

#endif
