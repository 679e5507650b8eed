/*
** repl.c: the interactive mode (-i, or no script on a terminal), lua(1)'s
** REPL read through libuv so the timers and servers the session started
** keep running while it waits for input.
** See Copyright Notice in README.md
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

#define REPL_MAX_LINE (1 << 20) /* longest statement kept, in bytes */

/* The handle comes first: a repl is found from its handle by a cast. Its
** data is the lh_internal, so uv.walk hides it and shutdown frees it. */
typedef struct repl {
  union { uv_tty_t tty; uv_pipe_t pipe; uv_handle_t handle; } in;
  lh_internal internal;
  lh_ctx *ctx;
  char *line;       /* bytes read, not yet ending in a newline */
  size_t linelen;
  char *stmt;       /* an incomplete statement waiting for more lines */
  size_t stmtlen;
  char readbuf[4096];
} repl;

static const char *get_prompt(lua_State *L, int first) {
  const char *p;
  lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
  p = lua_tostring(L, -1);
  if (p == NULL) p = first ? "> " : ">> ";
  lua_pop(L, 1); /* the string stays alive in the global */
  return p;
}

static void prompt(repl *r, int first) {
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

/* Print the values on the stack above base with the global print. */
static void print_results(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n > 0) {
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, base + 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
      lh_report(lua_pushfstring(L, "error calling 'print' (%s)",
                                lua_tostring(L, -1)));
  }
  lua_settop(L, base);
}

/* Compile and run one complete statement (or ask for more): returns 1 when
** the statement is incomplete. "=expr" and bare expressions print. */
static int run_statement(repl *r, const char *code, size_t len) {
  lua_State *L = r->ctx->L;
  int base = lua_gettop(L), status;
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
  if (status == LUA_OK) status = host_docall(L, 0, LUA_MULTRET);
  if (status == LUA_OK)
    print_results(L, base);
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
  if (!r->ctx->fatal && !r->ctx->exit_requested) prompt(r, 1);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  repl *r = (repl *)h;
  (void)suggested;
  buf->base = r->readbuf;
  buf->len = sizeof(r->readbuf);
}

static void close_cb(uv_handle_t *h) {
  repl *r = (repl *)h;
  free(r->line);
  free(r->stmt);
  free(r);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  repl *r = (repl *)s;
  size_t i, start = 0;
  if (nread < 0) { /* EOF or error: the session is over */
    fputc('\n', stdout);
    fflush(stdout);
    uv_close((uv_handle_t *)s, close_cb);
    return;
  }
  for (i = 0; i < (size_t)nread; i++) {
    if (buf->base[i] != '\n') continue;
    if (r->linelen > 0) { /* complete the partial line kept earlier */
      char *joined = (char *)realloc(r->line, r->linelen + i - start);
      if (joined == NULL) return;
      memcpy(joined + r->linelen, buf->base + start, i - start);
      feed_line(r, joined, r->linelen + i - start);
      free(joined);
      r->line = NULL;
      r->linelen = 0;
    } else {
      feed_line(r, buf->base + start, i - start);
    }
    start = i + 1;
    if (r->ctx->fatal || r->ctx->exit_requested) return;
  }
  if (start < (size_t)nread) { /* keep the partial line */
    size_t more = (size_t)nread - start;
    char *grown;
    if (r->linelen + more > REPL_MAX_LINE) {
      lh_report("line too long; discarded");
      free(r->line);
      r->line = NULL;
      r->linelen = 0;
      return;
    }
    grown = (char *)realloc(r->line, r->linelen + more);
    if (grown == NULL) return;
    memcpy(grown + r->linelen, buf->base + start, more);
    r->line = grown;
    r->linelen += more;
  }
}

void host_print_version(void) {
  printf("%s %s  (%s, libuv %s)\n", HOST_NAME, HOST_VERSION, LUA_RELEASE,
         uv_version_string());
  fflush(stdout);
}

void host_repl_start(lh_ctx *ctx, lua_State *L) {
  repl *r = (repl *)calloc(1, sizeof(repl));
  uv_handle_type t = uv_guess_handle(0);
  int st;
  (void)L;
  if (r == NULL) return;
  r->ctx = ctx;
  if (t == UV_TTY)
    st = uv_tty_init(ctx->loop, &r->in.tty, 0, 1);
  else if (t == UV_NAMED_PIPE || t == UV_TCP) {
    st = uv_pipe_init(ctx->loop, &r->in.pipe, 0);
    if (st == 0) st = uv_pipe_open(&r->in.pipe, 0);
  } else {
    /* A regular file cannot be polled and never blocks: read it now. */
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    prompt(r, 1);
    while (!ctx->fatal && !ctx->exit_requested &&
           (len = getline(&buf, &cap, stdin)) >= 0) {
      if (len > 0 && buf[len - 1] == '\n') len--;
      feed_line(r, buf, (size_t)len);
    }
    fputc('\n', stdout);
    free(buf);
    free(r->stmt);
    free(r);
    return;
  }
  if (st != 0) {
    lh_report(uv_strerror(st));
    free(r);
    return;
  }
  r->internal.tag = &lh_internal_tag;
  r->internal.close_cb = close_cb;
  r->in.handle.data = &r->internal;
  prompt(r, 1);
  uv_read_start((uv_stream_t *)&r->in.handle, alloc_cb, read_cb);
}
