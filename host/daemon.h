/*
** daemon.h: the process around the script: daemon mode, the pid file,
** dropping privileges, and listening sockets handed over by systemd
** (socket activation), by --listen, or by the worker supervisor.
** See Copyright Notice in README.md
*/
#ifndef HOST_DAEMON_H
#define HOST_DAEMON_H

#include "options.h"
#include "runtime.h"

/* Checks that need no fork: the pid file is free, the user exists.
** Returns 0, or prints why and returns -1. */
int host_daemon_check(const host_options *ho);
/* --daemon: fork, setsid, fork; stdio to /dev/null (stdout/stderr to
** --log). Only the daemon returns (0); the starting process waits until
** the daemon calls host_daemon_ready and exits with its verdict. -1 on
** failure (printed). */
int host_daemonize(const host_options *ho);
/* --daemon --log: open the log file again (SIGHUP, after logrotate moved
** it) as stdout and stderr. 0, or -1 (the old file stays). */
int host_log_reopen(void);
/* Tell the waiting starter (if any) that start-up succeeded (ok) or not. */
void host_daemon_ready(int ok);
/* Write the pid file atomically (temp file, then rename) and remove it at
** exit. Returns 0, or prints why and returns -1. */
int host_pidfile_create(const char *path);
/* Drop to USER[:GROUP]. Returns 0, or prints why and returns -1; a
** process still running as root after a failed drop must not go on. */
int host_drop_privileges(const char *spec);

/* Listening sockets: collect the ones this process inherited (systemd's
** LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, or a supervisor's), then bind
** the --listen ones (none when ho is NULL). Returns 0, or prints why
** and returns -1. */
int host_listen_init(const host_options *ho, int trust_pid);
/* How many listening sockets, and the fd / name of the i-th (0-based). */
int host_listen_count(void);
int host_listen_fd(int i);
const char *host_listen_name(int i);
/* Close them all (the supervisor's final stop). */
void host_listen_close_all(void);
/* luahost.listen_fds() -> the list of those sockets. */
int host_lua_listen_fds(lua_State *L);

#endif
