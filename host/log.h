/*
** log.h: the host's log lines, one format for C and Lua (the log module):
** a timestamp (RFC 3339, UTC, milliseconds), a level, the process (pid,
** worker id) and the message, as text or as JSON lines.
** See Copyright Notice in README.md
*/
#ifndef HOST_LOG_H
#define HOST_LOG_H

#include <lua.h>

enum { HOST_LOG_DEBUG, HOST_LOG_INFO, HOST_LOG_WARN, HOST_LOG_ERROR };
enum { HOST_LOG_TEXT, HOST_LOG_JSON };

/* --log-format / --log-level: 0, or -1 for a bad name (printed). */
int host_log_set_format(const char *name);
int host_log_set_level(const char *name);
/* Would a line at level be written? (the log module's enabled, in C) */
int host_log_enabled(int level);
/* A line at level with fields (keys in the order given: sorted, as the
** log module writes them), as the log module's log.info(msg, fields):
** vals[i] is the string of a number when quoted[i] is 0. */
void host_log_fields(int level, const char *msg, size_t n, int nf,
                     const char *const *keys, const char *const *vals,
                     const size_t *vlens, const int *quoted);
/* This process is worker id of its group (0: not a worker). */
void host_log_set_worker(int id);
/* A line at level (dropped below the level set), printf-style. */
void host_log(int level, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
/* The log module's C side (private.log): see log.c. */
void host_private_log(lua_State *L);

#endif
