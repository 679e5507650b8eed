/*
** runtime.h: the luahost runtime: state, embedded modules, the main task,
** the loop driver and the orderly shutdown.
** See Copyright Notice in README.md
*/
#ifndef HOST_RUNTIME_H
#define HOST_RUNTIME_H

#include "../bindings/common.h"
#include "netcore.h"

#define HOST_NAME "luahost"
#define HOST_VERSION "0.1.0"

/* Generated into build/embed.c from the Lua files of lib/. */
typedef struct host_module {
  const char *name;
  const char *chunkname;
  const char *source;
  size_t size;
} host_module;
extern const host_module host_modules[];

/* Create the state with ctx attached, standard libraries open, the
** embedded modules and uv/luv preloaded, os.exit made loop-safe. */
lua_State *host_newstate(lh_ctx *ctx);

/* The plumbing the embedded modules share, out of the scripts' reach: a
** table in the registry, handed to each embedded module as its second
** argument (`local _, private = ...`). It holds the host's functions
** (resume, start, report, fatal, main_done, share: hostlib.c), require
** for the private C modules ("net.core", "luahost.thread": the scheduler
** and the thread pool, which package.preload does not hold) and, once
** task.lua ran, its hooks in private.task (finish, adopt, own, wait...). */
#define HOST_PRIVATE "luahost.private"
void host_private_lib(lua_State *L);
int luaopen_luahost_thread(lua_State *L); /* thread.c */
/* Ask task.thread's running jobs to stop (os.exit without close). */
void host_thread_cancel_all(lua_State *L);
/* Push private.task[name] (requiring "task" first); raises on failure. */
void host_push_task_hook(lua_State *L, const char *name);
/* Run the function under nargs args synchronously with a traceback
** handler (lua.c's docall). */
int host_docall(lua_State *L, int narg, int nres);
/* Print msg (if any) to stderr as "progname: msg"; returns status. */
int host_report(lua_State *L, int status);
/* The table on top is a list of steps {fn, args..., n=}: run them in order
** as the main task. Pops the table. */
void host_start_main(lh_ctx *ctx, lua_State *L);
/* Drive the loop until nothing referenced is alive or a fatal stop. */
void host_run_loop(lh_ctx *ctx);
/* Close every handle, let close callbacks run, close the loop and the
** state. Returns the process exit status. */
int host_shutdown(lh_ctx *ctx, lua_State *L);
/* signals.c: the process-wide dispositions (SIGPIPE ignored; a worker
** ignores SIGINT and SIGHUP), before any loop exists. */
void host_signals_process(int worker);
/* A lone process: SIGINT -> "interrupted!", exit status 130, unless the
** script listens for SIGINT itself. */
void host_signals_init(lh_ctx *ctx);

/* repl.c: start the interactive reader on stdin (through the loop). */
void host_repl_start(lh_ctx *ctx, lua_State *L);
void host_print_version(void);

#endif
