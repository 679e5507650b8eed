/*
** repl.c: the interactive mode (-i, or no script on a terminal), lua(1)'s
** REPL read through libuv so the timers and servers the session started
** keep running while it waits for input.
**
** Each statement runs as a task, so it may block (net.connect, task.sleep):
** while it runs, reading stops; when it finishes, its values are printed,
** the prompt comes back and the lines already read are processed. Ctrl-C
** cancels the running statement (tasks and servers started before keep
** running) or, at the prompt, discards the line.
**
** On a terminal, lines are edited with libedit (history, arrow keys)
** through its readline callback interface, fed by a uv_poll_t on fd 0;
** elsewhere (a pipe, a file) input is read as it comes.
** See Copyright Notice in README.md
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "runtime.h"

#define REPL_MAX_LINE (1 << 20) /* longest statement kept, in bytes */

/* The handle comes first: a repl is found from its handle by a cast. Its
** data is the lh_internal, so uv.walk hides it and shutdown frees it. */
typedef struct repl {
  union {
    uv_tty_t tty; uv_pipe_t pipe; uv_poll_t poll; uv_handle_t handle;
  } in;
  lh_internal internal;
  lh_ctx *ctx;
  int has_handle;   /* stdin is polled through `in` (not a regular file) */
  int busy;         /* a statement's task is running */
  int starting;     /* inside start_statement: done() must not recurse */
  int eof;          /* no more input will come */
  int editing;      /* libedit reads the terminal; `in` is a uv_poll_t */
  int edit_on;      /* libedit's line handler is installed (raw mode) */
  int next_first;   /* the prompt to show when editing resumes */
  int task_ref;     /* the running statement's task record */
  int closed;       /* finished: handle closing or struct freed */
  int runner_ref;   /* the Lua wrapper that runs one statement */
  int done_ref;     /* done(): a closure over a box that points to us */
  struct repl **box; /* NULLed when we are freed: done() may come later */
  char *input;      /* bytes read, not yet processed */
  size_t inlen, incap;
  char *stmt;       /* an incomplete statement waiting for more lines */
  size_t stmtlen;
  char readbuf[4096];
} repl;

/* Runs one compiled statement inside its own task, prints its values or
** its error, then tells the REPL (done) to go on. The os.exit marker (a
** light userdata) is passed through so the host can stop in order. */
static const char runner_source[] =
  "local fn, done = ...\n"
  "local function report(ok, ...)\n"
  "  if ok then\n"
  "    if select('#', ...) > 0 then print(...) end\n"
  "    return\n"
  "  end\n"
  "  local err = ...\n"
  "  if type(err) == 'userdata' then done() error(err, 0) end\n"
  "  if type(err) ~= 'string' and type(err) ~= 'number' then\n"
  "    local mt = getmetatable(err)\n"
  "    err = mt and mt.__tostring and tostring(err) or\n"
  "      ('(error object is a %s value)'):format(type(err))\n"
  "  end\n"
  "  io.stderr:write('luahost: ', err, '\\n')\n"
  "  io.stderr:flush()\n"
  "end\n"
  "local function traceback(e)\n"
  "  if type(e) ~= 'string' then return e end\n"
  "  return (debug.traceback(e, 2):gsub(\"\\n%s*%[C%]: in function 'xpcall'.*$\", ''))\n"
  "end\n"
  "report(xpcall(fn, traceback))\n"
  "done()\n";

static void process(repl *r);

/* {====================================================== line editing */

/* readline's callback interface passes no user data: the one REPL that
** reads the terminal is found here. Only the REPL sets it, for its life. */
static repl *edit_owner;

static const char *get_prompt(lua_State *L, int first);
static int append_input(repl *r, const char *s, size_t n);

/* Leave raw mode and stop reading the terminal (a statement runs). */
static void edit_pause(repl *r) {
  if (r->edit_on) {
    rl_callback_handler_remove();
    r->edit_on = 0;
  }
  if (!uv_is_closing(&r->in.handle)) uv_poll_stop(&r->in.poll);
}

static void edit_line(char *line);

static void poll_cb(uv_poll_t *p, int status, int events) {
  repl *r = (repl *)p;
  (void)events;
  if (status < 0) {
    r->eof = 1;
    edit_pause(r);
    process(r);
    return;
  }
  if (r->edit_on) rl_callback_read_char();
}

/* Show the prompt (libedit prints it) and read the terminal again. */
static void edit_resume(repl *r, int first) {
  if (r->busy || r->closed || uv_is_closing(&r->in.handle)) return;
  if (r->edit_on) rl_callback_handler_remove();
  rl_callback_handler_install(get_prompt(r->ctx->L, first), edit_line);
  r->edit_on = 1;
  r->next_first = first;
  uv_poll_start(&r->in.poll, UV_READABLE, poll_cb);
}

/* A whole line (or NULL at end of input) from libedit. */
static void edit_line(char *line) {
  repl *r = edit_owner;
  if (r == NULL) {
    free(line);
    return;
  }
  /* Cooked mode while the line runs: the statement may print or read. */
  rl_callback_handler_remove();
  r->edit_on = 0;
  if (line == NULL) {
    r->eof = 1;
  } else {
    if (line[0] != '\0') add_history(line);
    if (append_input(r, line, strlen(line))) append_input(r, "\n", 1);
    free(line);
  }
  process(r);
}

/* }====================================================== */

static const char *get_prompt(lua_State *L, int first) {
  const char *p;
  lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
  p = lua_tostring(L, -1);
  if (p == NULL) p = first ? "> " : ">> ";
  lua_pop(L, 1); /* the string stays alive in the global */
  return p;
}

static void prompt(repl *r, int first) {
  if (r->editing) {
    r->next_first = first;
    return; /* shown by edit_resume when input is read again */
  }
  fputs(get_prompt(r->ctx->L, first), stdout);
  fflush(stdout);
}

/* Is the status a syntax error at <eof>, i.e. an incomplete statement? */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (lmsg >= 5 && strcmp(msg + lmsg - 5, "<eof>") == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/* done(): the statement's task finished; go on with the input. */
static int statement_done(lua_State *L) {
  repl *r = *(repl **)lua_touserdata(L, lua_upvalueindex(1));
  if (r == NULL || !r->busy) return 0;
  r->busy = 0;
  if (r->starting) return 0; /* finished at once: feed_line goes on */
  if (r->ctx->shutting_down || r->ctx->fatal || r->ctx->exit_requested)
    return 0;
  prompt(r, 1);
  process(r);
  return 0;
}

/* Start the compiled chunk on top of L as a task through the runner. */
static void start_statement(repl *r) {
  lh_ctx *ctx = r->ctx;
  lua_State *L = ctx->L, *co;
  int chunk = lua_gettop(L);
  co = lua_newthread(L);
  host_push_task_hook(L, "adopt"); /* a task, so that it may block */
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 0);
  lua_call(L, 2, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, r->task_ref);
  r->task_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* Ctrl-C cancels it */
  lua_rawgeti(co, LUA_REGISTRYINDEX, r->runner_ref);
  lua_pushvalue(L, chunk);
  lua_xmove(L, co, 1);
  lua_rawgeti(co, LUA_REGISTRYINDEX, r->done_ref);
  r->busy = 1;
  r->starting = 1;
  lh_start(ctx, co, 2);
  r->starting = 0;
  lua_settop(L, chunk - 1); /* the task is anchored by what it waits on */
}

/* Compile one statement ("=expr" and bare expressions return their
** values) and start it; returns 1 when it is incomplete. */
static int run_statement(repl *r, const char *code, size_t len) {
  lua_State *L = r->ctx->L;
  int base, status;
  lua_checkstack(L, LUA_MINSTACK); /* L may be suspended in a C frame */
  base = lua_gettop(L);
  if (len > 0 && code[0] == '=') { code++; len--; }
  lua_pushliteral(L, "return ");
  lua_pushlstring(L, code, len);
  lua_concat(L, 2);
  status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1),
                           "=stdin");
  lua_remove(L, -2);
  if (status != LUA_OK) {
    lua_pop(L, 1);
    status = luaL_loadbuffer(L, code, len, "=stdin");
    if (incomplete(L, status)) return 1;
  }
  if (status == LUA_OK)
    start_statement(r);
  else
    host_report(L, status);
  lua_settop(L, base);
  return 0;
}

static void feed_line(repl *r, const char *s, size_t len) {
  char *stmt;
  size_t n = r->stmtlen + (r->stmt ? 1 : 0) + len;
  if (n > REPL_MAX_LINE) {
    lh_report("statement too long; discarded");
    free(r->stmt);
    r->stmt = NULL;
    r->stmtlen = 0;
    prompt(r, 1);
    return;
  }
  stmt = (char *)malloc(n + 1);
  if (stmt == NULL) return;
  if (r->stmt) {
    memcpy(stmt, r->stmt, r->stmtlen);
    stmt[r->stmtlen] = '\n';
  }
  memcpy(stmt + n - len, s, len);
  stmt[n] = '\0';
  free(r->stmt);
  r->stmt = NULL;
  r->stmtlen = 0;
  if (run_statement(r, stmt, n)) {
    r->stmt = stmt; /* incomplete: keep it, ask for more */
    r->stmtlen = n;
    prompt(r, 0);
    return;
  }
  free(stmt);
  if (!r->busy && !r->ctx->fatal && !r->ctx->exit_requested) prompt(r, 1);
}

static void free_repl(repl *r) {
  lua_State *L = r->ctx->L;
  *r->box = NULL;
  if (edit_owner == r) edit_owner = NULL;
  if (r->ctx->repl == r) {
    r->ctx->repl = NULL;
    r->ctx->on_interrupt = NULL;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, r->runner_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->done_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->task_ref);
  free(r->input);
  free(r->stmt);
  free(r);
}

/* __gc of the box: a REPL on a regular file has no handle that shutdown
** would close, so if the session ended early (os.exit, a fatal error) the
** collector at lua_close frees it. Memory only: no Lua calls here. */
static int box_gc(lua_State *L) {
  repl *r = *(repl **)lua_touserdata(L, 1);
  if (r != NULL && !r->has_handle) {
    free(r->input);
    free(r->stmt);
    free(r);
  }
  return 0;
}

static void close_cb(uv_handle_t *h) {
  free_repl((repl *)h);
}

/* End of input with no statement running: the session is over. */
static void finish(repl *r) {
  if (r->closed) return;
  if (r->editing) edit_pause(r);
  r->closed = 1;
  fputc('\n', stdout);
  fflush(stdout);
  if (r->has_handle) {
    if (!uv_is_closing(&r->in.handle)) uv_close(&r->in.handle, close_cb);
  } else {
    free_repl(r);
  }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  repl *r = (repl *)h;
  (void)suggested;
  buf->base = r->readbuf;
  buf->len = sizeof(r->readbuf);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Feed every complete line of the input while no statement is running;
** pause reading while one is. */
static void process(repl *r) {
  size_t pos = 0;
  lh_ctx *ctx = r->ctx;
  while (!r->busy && !ctx->fatal && !ctx->exit_requested) {
    char *nl = memchr(r->input + pos, '\n', r->inlen - pos);
    size_t len;
    if (nl == NULL) {
      if (!r->eof || pos == r->inlen) break;
      len = r->inlen - pos; /* a last line without newline */
      feed_line(r, r->input + pos, len);
      pos = r->inlen;
      continue;
    }
    len = (size_t)(nl - (r->input + pos));
    feed_line(r, r->input + pos, len);
    pos += len + 1;
  }
  memmove(r->input, r->input + pos, r->inlen - pos);
  r->inlen -= pos;
  if (ctx->fatal || ctx->exit_requested) return;
  if (!r->busy && r->eof) {
    finish(r);
    return;
  }
  if (r->editing) {
    if (r->busy) edit_pause(r);
    else if (!r->edit_on) edit_resume(r, r->next_first);
  } else if (r->has_handle && !uv_is_closing(&r->in.handle)) {
    if (r->busy)
      uv_read_stop((uv_stream_t *)&r->in.handle);
    else
      uv_read_start((uv_stream_t *)&r->in.handle, alloc_cb, read_cb);
  }
}

static int append_input(repl *r, const char *s, size_t n) {
  if (r->inlen + n > r->incap) {
    size_t cap = r->incap ? r->incap * 2 : 8192;
    char *grown;
    while (cap < r->inlen + n) cap *= 2;
    if (cap > 2 * REPL_MAX_LINE + sizeof(r->readbuf)) {
      lh_report("input line too long; discarded");
      r->inlen = 0;
      return 0;
    }
    grown = (char *)realloc(r->input, cap);
    if (grown == NULL) return 0;
    r->input = grown;
    r->incap = cap;
  }
  memcpy(r->input + r->inlen, s, n);
  r->inlen += n;
  return 1;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  repl *r = (repl *)s;
  if (nread < 0)
    r->eof = 1; /* EOF or error: the session ends after what was read */
  else if (nread > 0)
    append_input(r, buf->base, (size_t)nread);
  process(r);
}

void host_print_version(void) {
  printf("%s %s  (%s, libuv %s)\n", HOST_NAME, HOST_VERSION, LUA_RELEASE,
         uv_version_string());
  fflush(stdout);
}

/* SIGINT with the REPL on: cancel the running statement, or at the
** prompt drop what was typed. The session and its servers go on. */
static int repl_interrupt(lh_ctx *ctx) {
  repl *r = (repl *)ctx->repl;
  lua_State *L = ctx->L;
  if (r == NULL || r->closed || ctx->shutting_down) return 0;
  if (r->busy) {
    /* lh_report, not stdout: the statement may have printed half a line */
    lh_report("interrupted!");
    lua_checkstack(L, 4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->task_ref);
    if (lua_getfield(L, -1, "cancel") == LUA_TFUNCTION) {
      lua_insert(L, -2);
      if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lh_report(lua_tostring(L, -1));
        lua_pop(L, 1);
      }
    } else {
      lua_pop(L, 2);
    }
    return 1;
  }
  /* at the prompt: discard the line and any unfinished statement */
  free(r->stmt);
  r->stmt = NULL;
  r->stmtlen = 0;
  r->inlen = 0;
  fputc('\n', stdout);
  fflush(stdout);
  if (r->editing) {
    if (r->edit_on) edit_resume(r, 1); /* libedit clears its line */
  } else {
    prompt(r, 1);
  }
  return 1;
}

/* libedit on a terminal: history, arrow keys. Signals stay libuv's. */
static int edit_start(repl *r) {
  const char *term = getenv("TERM");
  if (!isatty(1) || term == NULL || strcmp(term, "dumb") == 0 ||
      edit_owner != NULL)
    return 0;
  rl_catch_signals = 0;
  if (rl_initialize() != 0) return 0;
  rl_readline_name = "luahost";
  stifle_history(1000);
  if (uv_poll_init(r->ctx->loop, &r->in.poll, 0) != 0) return 0;
  edit_owner = r;
  r->editing = 1;
  r->has_handle = 1;
  r->next_first = 1;
  return 1;
}

void host_repl_start(lh_ctx *ctx, lua_State *L) {
  repl *r = (repl *)calloc(1, sizeof(repl));
  uv_handle_type t = uv_guess_handle(0);
  int st = 0;
  if (r == NULL) return;
  r->ctx = ctx;
  r->task_ref = LUA_NOREF;
  if (luaL_loadbuffer(L, runner_source, sizeof(runner_source) - 1,
                      "=[repl]") != LUA_OK) {
    lh_report(lua_tostring(L, -1));
    lua_pop(L, 1);
    free(r);
    return;
  }
  r->runner_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  r->box = (repl **)lua_newuserdatauv(L, sizeof(repl *), 0);
  *r->box = r;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushcclosure(L, statement_done, 1);
  r->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (t == UV_TTY && edit_start(r)) {
    /* r->in is the poll handle */
  } else if (t == UV_TTY) {
    st = uv_tty_init(ctx->loop, &r->in.tty, 0, 1);
    r->has_handle = 1;
  } else if (t == UV_NAMED_PIPE || t == UV_TCP) {
    st = uv_pipe_init(ctx->loop, &r->in.pipe, 0);
    if (st == 0) st = uv_pipe_open(&r->in.pipe, 0);
    r->has_handle = 1;
  }
  if (st != 0) {
    lh_report(uv_strerror(st));
    if (r->has_handle) {
      r->closed = 1;
      uv_close(&r->in.handle, close_cb);
    } else {
      free_repl(r);
    }
    return;
  }
  ctx->repl = r;
  ctx->on_interrupt = repl_interrupt;
  prompt(r, 1);
  if (r->has_handle) {
    r->internal.tag = &lh_internal_tag;
    r->internal.close_cb = close_cb;
    r->in.handle.data = &r->internal;
    if (r->editing)
      edit_resume(r, 1);
    else
      uv_read_start((uv_stream_t *)&r->in.handle, alloc_cb, read_cb);
  } else {
    /* A regular file (or /dev/null) cannot be polled and never blocks:
    ** take it all now; statements still run as tasks, in order. */
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
      if (!append_input(r, buf, n)) break;
    r->eof = 1;
    process(r);
  }
}
