/*
** main.c: the luahost program, shaped like lua.c: main() creates the state,
** runs pmain in protected mode, reports, and returns the exit status. pmain
** reads the command line (lua(1)'s options plus the host's), turns it into
** a list of steps and starts them as the main task; then the loop runs
** until nothing is alive and the host shuts down in order.
** See Copyright Notice in README.md
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

#include "runtime.h"
#include "options.h"
#include "daemon.h"
#include "drain.h"
#include "supervisor.h"
#include "worker.h"

static const char *progname = HOST_NAME;

static void print_usage(const char *badoption) {
  FILE *f = badoption ? stderr : stdout;
  if (badoption) {
    if (badoption[1] == 'e' || badoption[1] == 'l')
      fprintf(f, "%s: '%s' needs argument\n", progname, badoption);
    else
      fprintf(f, "%s: unrecognized option '%s'\n", progname, badoption);
  }
  fprintf(f,
  "usage: %s [options] [script [args]]\n"
  "Available options are:\n"
  "  -e stat   execute string 'stat'\n"
  "  -i        enter interactive mode after executing 'script'\n"
  "  -l mod    require library 'mod' into global 'mod'\n"
  "  -l g=mod  require library 'mod' into global 'g'\n"
  "  -v        show version information\n"
  "  -E        ignore environment variables\n"
  "  -W        turn warnings on\n"
  "  --        stop handling options\n"
  "  -         stop handling options and execute stdin\n"
  "Host options (before the script):\n"
  "  -h, --help          show this help and exit\n"
  "  --version           show the version and exit\n"
  "%s"
  "Environment: LUA_INIT_5_4 or LUA_INIT (code or @file run first),\n"
  "  LUA_PATH_5_4/LUA_PATH, LUA_CPATH_5_4/LUA_CPATH (module search paths).\n",
  progname, host_options_usage());
  fflush(f);
}

/* {====================================================== arguments */

/* Bits of what the command line asks for. */
#define has_error 1  /* bad option */
#define has_i 2      /* -i */
#define has_v 4      /* -v */
#define has_e 8      /* -e */
#define has_E 16     /* -E */
#define has_help 32  /* --help, -h */
#define has_version 64 /* --version: -v, then exit without running */

/*
** Traverse the options, checking them. Returns the flags above and sets
** *first to the index of the script (or argc when there is none). Host
** options (--name) are handled by host_parse_option.
*/
static int collectargs(char **argv, int argc, int *first,
                       host_options *ho) {
  int args = 0, i;
  for (i = 1; i < argc; i++) {
    *first = i;
    if (argv[i][0] != '-') return args; /* not an option: the script */
    switch (argv[i][1]) {
      case '-': /* '--' or a host option */
        if (argv[i][2] == '\0') {
          *first = i + 1;
          return args;
        }
        if (strcmp(argv[i], "--help") == 0) {
          args |= has_help;
          break;
        }
        if (strcmp(argv[i], "--version") == 0) {
          args |= has_version;
          break;
        }
        {
          int used = host_parse_option(ho, argc - i, argv + i);
          if (used <= 0) {
            if (used == 0) print_usage(argv[i]);
            *first = i;
            return has_error;
          }
          i += used - 1;
        }
        break;
      case '\0': /* '-': script is stdin */
        return args;
      case 'h': /* as --help */
        if (argv[i][2] != '\0') return has_error;
        args |= has_help;
        break;
      case 'E':
        if (argv[i][2] != '\0') return has_error;
        args |= has_E;
        break;
      case 'W':
        if (argv[i][2] != '\0') return has_error;
        break;
      case 'i':
        args |= has_i; /* -i implies -v */
        /* FALLTHROUGH */
      case 'v':
        if (argv[i][2] != '\0') return has_error;
        args |= has_v;
        break;
      case 'e':
        args |= has_e;
        /* FALLTHROUGH */
      case 'l': /* both options need an argument */
        if (argv[i][2] == '\0') { /* no concatenated argument? */
          i++;
          if (i >= argc || argv[i][0] == '-') {
            *first = i - 1;
            return has_error;
          }
        }
        break;
      default: /* invalid option */
        return has_error;
    }
  }
  *first = i; /* no script name */
  return args;
}

/*
** The global 'arg': the script name at 0, its arguments at 1.., the
** interpreter and options before the script at negative indices.
*/
static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  if (script == argc) script = 0; /* no script: the program name at 0 */
  narg = argc - (script + 1);
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* }====================================================== */

/* {====================================================== steps */

/* Append the values on top (n of them, a function first) as one step to
** the steps table at index steps. */
static void add_step(lua_State *L, int steps, int n) {
  int i;
  lua_createtable(L, n, 1);
  lua_insert(L, -(n + 1));
  for (i = n; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
  lua_pushinteger(L, n - 1); /* count of arguments after the function */
  lua_setfield(L, -2, "n");
  lua_rawseti(L, steps, (lua_Integer)lua_rawlen(L, steps) + 1);
}

/* -l [g=]mod: require mod and store it in global g (or mod). */
static int require_global(lua_State *L) {
  const char *globname = luaL_checkstring(L, 1);
  const char *modname = luaL_checkstring(L, 2);
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  lua_call(L, 1, 1);
  lua_setglobal(L, globname);
  return 0;
}

static int repl_step(lua_State *L) {
  host_repl_start(lh_getctx(L), L);
  return 0;
}

static int load_failed(lua_State *L, int status) {
  host_report(L, status);
  return 0;
}

/* A chunk that did not compile, as a step: lua runs the -e and -l chunks
** before it, then reports its error and exits with 1; so do we. */
static int load_error_step(lua_State *L) {
  lua_settop(L, 1);
  host_report(L, LUA_ERRSYNTAX);
  lh_fatal(lh_getctx(L), 1);
  return 0;
}

/* A load that failed (its message on top): at once when no step comes
** before it (0: nothing runs); else a step that reports it after those
** (-1: no step is added after it). */
static int load_failed_at(lua_State *L, int steps, int status) {
  if (lua_rawlen(L, steps) == 0) return load_failed(L, status);
  lua_pushcfunction(L, load_error_step);
  lua_insert(L, -2);
  add_step(L, steps, 2);
  return -1;
}

/* Turn -e and -l (in order) into steps: 1, or as load_failed_at when a
** chunk does not compile. */
static int collect_steps(lua_State *L, int steps, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    int option = argv[i][1];
    const char *extra;
    if (argv[i][0] != '-' || argv[i][1] == '-') {
      if (argv[i][1] == '-') /* a host option: skip its value */
        i += host_option_arity(argv[i]);
      continue;
    }
    if (option != 'e' && option != 'l' && option != 'W') continue;
    if (option == 'W') {
      lua_warning(L, "@on", 0);
      continue;
    }
    extra = argv[i] + 2; /* both options need an argument */
    if (*extra == '\0') extra = argv[++i];
    if (option == 'e') {
      int st = luaL_loadbuffer(L, extra, strlen(extra), "=(command line)");
      if (st != LUA_OK) return load_failed_at(L, steps, st);
      add_step(L, steps, 1);
    } else {
      const char *eq = strchr(extra, '=');
      lua_pushcfunction(L, require_global);
      if (eq != NULL) {
        lua_pushlstring(L, extra, (size_t)(eq - extra));
        lua_pushstring(L, eq + 1);
      } else {
        /* global name stops at the first '-' (lua 5.4: "mod-v2" -> "mod") */
        const char *dash = strchr(extra, '-');
        if (dash) lua_pushlstring(L, extra, (size_t)(dash - extra));
        else lua_pushstring(L, extra);
        lua_pushstring(L, extra);
      }
      add_step(L, steps, 3);
    }
  }
  return 1;
}

/* The script and its arguments as a step: 1, or as load_failed_at when
** it cannot be loaded. */
static int script_step(lua_State *L, int steps, char **argv, int argc,
                       int script) {
  const char *fname = argv[script];
  int st, i, n = argc - script - 1;
  if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
    fname = NULL; /* stdin */
  st = luaL_loadfile(L, fname);
  if (st != LUA_OK) return load_failed_at(L, steps, st);
  luaL_checkstack(L, n + 1, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_pushstring(L, argv[script + i]);
  add_step(L, steps, n + 1);
  return 1;
}

/* Run LUA_INIT_5_4 or LUA_INIT: code, or @file. Synchronous, before all. */
static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  int st;
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@')
    st = luaL_loadfile(L, init + 1);
  else
    st = luaL_loadbuffer(L, init, strlen(init), name);
  if (st == LUA_OK) st = host_docall(L, 0, 0);
  return host_report(L, st);
}

/* }====================================================== */

/*
** pmain: everything that may raise, in protected mode. Arguments: argc
** (integer), argv (light userdata), and what collectargs found (flags,
** script index). Returns true when the main task was started.
*/
static int pmain(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int args = (int)lua_tointeger(L, 3);   /* collectargs, run by main */
  int script = (int)lua_tointeger(L, 4);
  int steps, ok;
  luaL_checkversion(L);
  if (args == has_error) {
    if (script < argc && argv[script][0] == '-' && argv[script][1] != '-')
      print_usage(argv[script]);
    else if (script >= argc)
      print_usage(argv[argc - 1]);
    return 0;
  }
  if (args & (has_help | has_version)) {
    if (args & has_help) print_usage(NULL);
    else host_print_version();
    ctx->exit_code = 0;
    lua_pushboolean(L, 1);
    return 1;
  }
  if (args & has_E) { /* ignore environment: reset the search paths */
    lua_getglobal(L, "package");
    lua_pushliteral(L, LUA_PATH_DEFAULT);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, LUA_CPATH_DEFAULT);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
  }
  if (args & has_v) host_print_version();
  createargtable(L, argv, argc, script);
  if (!(args & has_E) && handle_luainit(L) != LUA_OK) return 0;
  lua_newtable(L);
  steps = lua_gettop(L);
  ok = collect_steps(L, steps, argv, script);
  if (ok == 0) return 0;
  if (ok > 0 && script < argc) ok = script_step(L, steps, argv, argc, script);
  if (ok == 0) return 0;
  if (ok < 0) {
    /* (the steps before a chunk that did not compile run, then its error
    ** ends the host) */
  } else if (args & has_i) {
    lua_pushcfunction(L, repl_step);
    add_step(L, steps, 1);
  } else if (script == argc && !(args & (has_e | has_v))) {
    if (isatty(0)) { /* no script, a terminal: interactive */
      host_print_version();
      lua_pushcfunction(L, repl_step);
      add_step(L, steps, 1);
    } else { /* no script, input redirected: run stdin */
      int st = luaL_loadfile(L, NULL);
      if (st != LUA_OK) return load_failed(L, st);
      add_step(L, steps, 1);
    }
  }
  host_start_main(ctx, L);
  lua_pushboolean(L, 1);
  return 1;
}

/* {====================================================== process */

/*
** The process around the script, set up before any Lua state exists:
** daemon mode, the pid file, listening sockets; with --workers this
** process becomes the supervisor and never runs the script. Returns 1
** when main must return *code now.
*/
static int setup_process(const host_options *ho, int argc, char **argv,
                         int script, int *code) {
  int worker = host_worker_init();
  *code = EXIT_FAILURE;
  host_signals_process(worker > 0); /* the policy: see signals.c */
  if (worker != 0) /* the supervisor did the rest */
    return worker < 0 || host_listen_init(NULL, 1) != 0;
  if (ho->workers != 0 &&
      (script >= argc || strcmp(argv[script], "-") == 0)) {
    fprintf(stderr, "%s: --workers needs a script file\n", progname);
    return 1;
  }
  if (host_daemon_check(ho) != 0) return 1;
  if (ho->daemon && host_daemonize(ho) != 0) return 1;
  if ((ho->pidfile && host_pidfile_create(ho->pidfile) != 0) ||
      host_listen_init(ho, 0) != 0) {
    host_daemon_ready(0);
    return 1;
  }
  if (ho->workers == 0) return 0;
  *code = host_supervise(ho, argc, argv, script);
  return 1;
}

/* The main chunk ran to its first wait (sockets are bound by now): drop
** privileges, then tell whoever waits for this process that it started. */
static void process_started(lh_ctx *ctx, const host_options *ho, int ok) {
  if (ok && ho->user && host_drop_privileges(ho->user) != 0) {
    lh_report("refusing to go on with the privileges it has");
    ok = 0;
    ctx->fatal = 1;
    ctx->exit_code = EXIT_FAILURE;
  }
  if (ok) host_worker_started();
  host_daemon_ready(ok);
}

/* }====================================================== */

int main(int argc, char **argv) {
  lh_ctx ctx;
  host_options ho;
  lua_State *L;
  int status, ok, args, script = argc, code;
  /* libuv keeps a copy of argv so that uv.set_process_title may reuse
  ** the memory of the original: from here on, only the copy is read. */
  argv = uv_setup_args(argc, argv);
  if (argv[0] && argv[0][0]) progname = argv[0];
  host_options_init(&ho);
  args = collectargs(argv, argc, &script, &ho);
  if (args != has_error && !(args & (has_help | has_version)) &&
      setup_process(&ho, argc, argv, script, &code))
    return code;
  memset(&ctx, 0, sizeof(ctx));
  ctx.loop = lh_default_loop(&ctx);
  ctx.task_finish_ref = LUA_NOREF;
  ctx.callback_errors_fatal = 1;
  ctx.exit_code = 0;
  host_worker_share(&ctx); /* a worker: the supervisor owns the sockets */
  L = host_newstate(&ctx);
  if (L == NULL) {
    lh_report("cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  if (host_is_worker() || ho.daemon || ho.pidfile || ho.drain_delay_given)
    host_drain_init(&ctx, ho.drain, /* SIGTERM drains, then exit 0 */
                    ho.drain_delay, !host_is_worker() && ho.log != NULL);
  if (!host_is_worker()) host_signals_init(&ctx);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushinteger(L, args);
  lua_pushinteger(L, script);
  status = lua_pcall(L, 4, 1, 0);
  ok = lua_toboolean(L, -1);
  if (status != LUA_OK) host_report(L, status);
  lua_settop(L, 0);
  if (status != LUA_OK || !ok) {
    ctx.fatal = 1;
    ctx.exit_code = EXIT_FAILURE;
  }
  process_started(&ctx, &ho, status == LUA_OK && ok && !ctx.fatal);
  host_run_loop(&ctx);
  return host_shutdown(&ctx, L);
}
