/*
** common.c: results, argument checks, handle lifetime, requests and the
** one dispatcher for every call into Lua. See common.h for the contracts.
** See Copyright Notice in README.md
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common.h"

/* {====================================================== results */

int lh_fail(lua_State *L, int status) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(status), uv_strerror(status));
  lua_pushstring(L, uv_err_name(status));
  return 3;
}

int lh_result(lua_State *L, int status) {
  if (status < 0) return lh_fail(L, status);
  lua_pushinteger(L, status);
  return 1;
}

void lh_push_status(lua_State *L, int status) {
  if (status < 0)
    lua_pushstring(L, uv_err_name(status));
  else
    lua_pushnil(L);
}

/* }====================================================== */

/* {====================================================== checks */

static int is_callable(lua_State *L, int idx) {
  int t = lua_type(L, idx), ok;
  if (t == LUA_TFUNCTION) return 1;
  if (t != LUA_TTABLE && t != LUA_TUSERDATA) return 0;
  if (!lua_getmetatable(L, idx)) return 0;
  lua_pushliteral(L, "__call"); /* raw: no Lua code runs mid-check */
  ok = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return ok;
}

void lh_check_callable(lua_State *L, int idx) {
  if (!is_callable(L, idx)) luaL_typeerror(L, idx, "function");
}

int lh_opt_callable(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  lh_check_callable(L, idx);
  return 1;
}

int lh_has_nul(lua_State *L, int idx) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  return s != NULL && strlen(s) != len;
}

const char *lh_check_cstring(lua_State *L, int idx) {
  const char *s = luaL_checkstring(L, idx);
  if (lh_has_nul(L, idx))
    luaL_argerror(L, idx, "string contains a NUL byte");
  return s;
}

lua_Integer lh_check_range(lua_State *L, int idx, lua_Integer lo,
                           lua_Integer hi) {
  lua_Integer v = luaL_checkinteger(L, idx);
  if (v < lo || v > hi)
    luaL_argerror(L, idx, lua_pushfstring(L, "out of range [%I, %I]",
                                          (LUAI_UACINT)lo, (LUAI_UACINT)hi));
  return v;
}

lua_Integer lh_opt_range(lua_State *L, int idx, lua_Integer def,
                         lua_Integer lo, lua_Integer hi) {
  if (lua_isnoneornil(L, idx)) return def;
  return lh_check_range(L, idx, lo, hi);
}

int lh_opt_boolfield(lua_State *L, int idx, const char *name) {
  int t, v;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  t = lua_getfield(L, idx, name);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
    lua_pop(L, 1);
    return luaL_argerror(L, idx, lua_pushfstring(L,
        "field '%s' must be a boolean", name));
  }
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Signal names libuv users spell: "sigint", "SIGINT", "int". The table
** holds luv's spelling, which lh_signal_name returns. */
static const struct { const char *name; int num; } signals[] = {
  {"sighup", SIGHUP}, {"sigint", SIGINT}, {"sigquit", SIGQUIT},
  {"sigill", SIGILL}, {"sigtrap", SIGTRAP}, {"sigabrt", SIGABRT},
  {"sigbus", SIGBUS}, {"sigfpe", SIGFPE}, {"sigkill", SIGKILL},
  {"sigusr1", SIGUSR1}, {"sigsegv", SIGSEGV}, {"sigusr2", SIGUSR2},
  {"sigpipe", SIGPIPE}, {"sigalrm", SIGALRM}, {"sigterm", SIGTERM},
  {"sigchld", SIGCHLD}, {"sigcont", SIGCONT}, {"sigstop", SIGSTOP},
  {"sigtstp", SIGTSTP}, {"sigttin", SIGTTIN}, {"sigttou", SIGTTOU},
  {"sigurg", SIGURG}, {"sigxcpu", SIGXCPU}, {"sigxfsz", SIGXFSZ},
  {"sigvtalrm", SIGVTALRM}, {"sigprof", SIGPROF}, {"sigwinch", SIGWINCH},
  {"sigio", SIGIO}, {"sigsys", SIGSYS}, {NULL, 0}
};

int lh_check_signal(lua_State *L, int idx) {
  char buf[16];
  const char *s;
  size_t len, i;
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)lh_check_range(L, idx, 1, 64);
  s = luaL_checklstring(L, idx, &len);
  if (len >= sizeof(buf)) goto bad;
  for (i = 0; i <= len; i++) buf[i] = (char)tolower((unsigned char)s[i]);
  s = buf;
  if (strncmp(s, "sig", 3) == 0) s += 3;
  for (i = 0; signals[i].name; i++)
    if (strcmp(s, signals[i].name + 3) == 0) return signals[i].num;
bad:
  return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'",
                                               lua_tostring(L, idx)));
}

const char *lh_signal_name(int signum) {
  size_t i;
  for (i = 0; signals[i].name; i++)
    if (signals[i].num == signum) return signals[i].name;
  return NULL;
}

void lh_check_addr(lua_State *L, int ipidx, int portidx,
                   struct sockaddr_storage *ss) {
  const char *ip = lh_check_cstring(L, ipidx);
  int port = (int)lh_check_range(L, portidx, 0, 65535);
  memset(ss, 0, sizeof(*ss));
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)ss) == 0) return;
  if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss) == 0) return;
  luaL_argerror(L, ipidx, lua_pushfstring(L, "invalid IP address '%s'", ip));
}

const char *lh_family_name(int family) {
  switch (family) {
    case AF_INET: return "inet";
    case AF_INET6: return "inet6";
    case AF_UNIX: return "unix";
    case AF_UNSPEC: return "unspec";
    default: return NULL;
  }
}

int lh_check_family(lua_State *L, int idx) {
  static const char *const names[] = {"unspec", "inet", "inet6", "unix",
                                      NULL};
  static const int values[] = {AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX};
  if (lua_type(L, idx) == LUA_TNUMBER) {
    int f = (int)luaL_checkinteger(L, idx);
    if (f == AF_UNSPEC || f == AF_INET || f == AF_INET6 || f == AF_UNIX)
      return f;
    return luaL_argerror(L, idx, "unknown address family");
  }
  return values[luaL_checkoption(L, idx, NULL, names)];
}

void lh_push_addr(lua_State *L, const struct sockaddr *sa) {
  char ip[INET6_ADDRSTRLEN];
  int port;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, ip, sizeof(ip));
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, ip, sizeof(ip));
    port = ntohs(in6->sin6_port);
  } else {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 3);
  lua_pushstring(L, ip);
  lua_setfield(L, -2, "ip");
  lua_pushinteger(L, port);
  lua_setfield(L, -2, "port");
  lua_pushstring(L, lh_family_name(sa->sa_family));
  lua_setfield(L, -2, "family");
}

/* }====================================================== */

/* {====================================================== handles */

const char lh_internal_tag = 'i';

/* Key of the marker every handle metatable carries (its address). */
static const char handle_mt_key = 'h';

static void unref_all(lua_State *L, lh_handle *h) {
  int i;
  for (i = 0; i < LH_NCB; i++) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->cb[i]);
    h->cb[i] = LUA_NOREF;
  }
}

lh_handle *lh_handle_new(lua_State *L, uv_handle_type type) {
  size_t size = sizeof(lh_handle) + uv_handle_size(type);
  lh_handle **box;
  lh_handle *h;
  int i;
  /* The box exists, closed, before the memory: an allocation error then
  ** leaves nothing half-made (liolib's newprefile). */
  char tname[32];
  snprintf(tname, sizeof(tname), "uv_%s", uv_handle_type_name(type));
  box = (lh_handle **)lua_newuserdatauv(L, sizeof(lh_handle *), 0);
  *box = NULL;
  luaL_setmetatable(L, tname);
  h = (lh_handle *)malloc(size);
  if (h == NULL) luaL_error(L, "not enough memory");
  memset(h, 0, size);
  h->ctx = lh_getctx(L);
  h->box = box;
  h->uv = (uv_handle_t *)(h + 1);
  for (i = 0; i < LH_NCB; i++) h->cb[i] = LUA_NOREF;
  lua_pushvalue(L, -1);
  h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->uv->data = h;
  *box = h;
  return h;
}

void lh_handle_abort(lua_State *L, lh_handle *h) {
  *h->box = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, h->ref);
  unref_all(L, h);
  free(h);
}

static lh_handle **check_box(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  int ok = 0;
  if (p != NULL && lua_getmetatable(L, idx)) {
    ok = lua_rawgetp(L, -1, &handle_mt_key) != LUA_TNIL;
    lua_pop(L, 2);
  }
  if (!ok) luaL_typeerror(L, idx, "uv handle");
  return (lh_handle **)p;
}

lh_handle *lh_check_handle_any(lua_State *L, int idx, int mask) {
  lh_handle **box = check_box(L, idx);
  lh_handle *h = *box;
  if (h != NULL && !(mask & (1 << h->uv->type))) {
    const char *want = mask == LH_STREAM_MASK ? "uv_stream"
                     : mask == LH_SOCKET_MASK ? "uv socket handle"
                     : "uv handle of another type";
    int t;
    for (t = 1; t < UV_HANDLE_TYPE_MAX; t++) /* one type: name it */
      if (mask == (1 << t))
        want = lua_pushfstring(L, "uv_%s",
                               uv_handle_type_name((uv_handle_type)t));
    luaL_typeerror(L, idx, want);
  }
  return h;
}

lh_handle *lh_check_handle(lua_State *L, int idx, int mask) {
  lh_handle *h = lh_check_handle_any(L, idx, mask);
  if (h == NULL || uv_is_closing(h->uv))
    luaL_argerror(L, idx, "attempt to use a closed handle");
  return h;
}

static void handle_close_cb(uv_handle_t *uvh) {
  lh_handle *h = (lh_handle *)uvh->data;
  lh_ctx *ctx = h->ctx;
  lua_State *L = ctx->L;
  if (h->free_extra) h->free_extra(h);
  if (h->ref != LUA_NOREF && lh_push_cb(h, LH_CB_CLOSE)) {
    lh_call(ctx, 0);
  }
  if (h->ref != LUA_NOREF) {
    /* The box is still anchored: mark it closed before letting it go. */
    *h->box = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, h->ref);
  }
  unref_all(L, h);
  if (h->pins > 0)
    h->closed = 1; /* a request still points here: lh_handle_unpin frees */
  else
    free(h);
}

void lh_handle_pin(lh_handle *h) { h->pins++; }

void lh_handle_unpin(lh_handle *h) {
  if (--h->pins == 0 && h->closed) free(h);
}

void lh_handle_close_cb(uv_handle_t *uvh) { handle_close_cb(uvh); }

void lh_handle_close(lh_handle *h) {
  if (!uv_is_closing(h->uv)) uv_close(h->uv, handle_close_cb);
}

void lh_set_cb(lua_State *L, lh_handle *h, int slot, int idx) {
  lh_check_callable(L, idx);
  lua_pushvalue(L, idx);
  luaL_unref(L, LUA_REGISTRYINDEX, h->cb[slot]);
  h->cb[slot] = luaL_ref(L, LUA_REGISTRYINDEX);
}

void lh_unset_cb(lua_State *L, lh_handle *h, int slot) {
  luaL_unref(L, LUA_REGISTRYINDEX, h->cb[slot]);
  h->cb[slot] = LUA_NOREF;
}

/* Callbacks push onto the main thread while it may be suspended deep in a
** C function (pmain resuming the main task, a task running uv.run): only
** the slots its frame was given are there, so make room first. */
int lh_push_cb(lh_handle *h, int slot) {
  if (h->cb[slot] == LUA_NOREF || h->ctx->shutting_down > 1) return 0;
  lua_checkstack(h->ctx->L, LUA_MINSTACK);
  lua_rawgeti(h->ctx->L, LUA_REGISTRYINDEX, h->cb[slot]);
  return 1;
}

void lh_push_handle(lua_State *L, lh_handle *h) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
}

/* __gc: an unanchored box whose handle is still open cannot happen while
** the state lives (the anchor keeps it); at lua_close the host has already
** closed every handle. So only a never-closed box is left to close here. */
static int handle_gc(lua_State *L) {
  lh_handle **box = (lh_handle **)lua_touserdata(L, 1);
  lh_handle *h = *box;
  if (h != NULL) {
    *box = NULL;
    h->ref = LUA_NOREF; /* close_cb must not touch the box */
    lh_handle_close(h);
  }
  return 0;
}

/* __close and close(): closing twice is harmless. */
static int handle_close(lua_State *L) {
  lh_handle *h = lh_check_handle_any(L, 1, LH_ANY_MASK);
  int has_cb = lh_opt_callable(L, 2); /* checked even when already closed */
  if (h == NULL || uv_is_closing(h->uv)) return 0;
  if (has_cb) lh_set_cb(L, h, LH_CB_CLOSE, 2);
  lh_handle_close(h);
  return 0;
}

static int handle_tostring(lua_State *L) {
  lh_handle **box = check_box(L, 1);
  lh_handle *h = *box;
  if (h == NULL)
    lua_pushliteral(L, "uv handle (closed)");
  else
    lua_pushfstring(L, "uv_%s: %p%s", uv_handle_type_name(h->uv->type),
                    (void *)h, uv_is_closing(h->uv) ? " (closing)" : "");
  return 1;
}

int lh_handle_close_method(lua_State *L) { return handle_close(L); }

/* Registry key of the list of receive buffers (see lh_readbuf). */
static const char readbufs_key = 'r';

char *lh_readbuf(lua_State *L, size_t size) {
  lh_ctx *ctx = lh_getctx(L);
  size_t n;
  if (ctx->readbuf_size >= size) return ctx->readbuf;
  n = ctx->readbuf_size * 2;
  if (n < size) n = size;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &readbufs_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &readbufs_key);
  }
  /* Older, smaller buffers stay anchored: a read callback running now may
  ** still be handing out chunks of one (recvmmsg). Sizes at least double,
  ** so they cost less than the newest one. */
  ctx->readbuf = (char *)lua_newuserdatauv(L, n, 0);
  ctx->readbuf_size = n;
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1); /* the list */
  return ctx->readbuf;
}

void lh_new_metatable(lua_State *L, const char *tname, const luaL_Reg *own,
                      int flags) {
  luaL_newmetatable(L, tname);
  lua_pushboolean(L, 1);
  lua_rawsetp(L, -2, &handle_mt_key);
  lua_newtable(L); /* __index */
  luaL_setfuncs(L, lh_handle_methods, 0);
  if (flags & LH_MT_STREAM) luaL_setfuncs(L, lh_stream_methods, 0);
  if (flags & LH_MT_SOCKET) luaL_setfuncs(L, lh_sockopt_methods, 0);
  if (own) luaL_setfuncs(L, own, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, handle_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, handle_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, handle_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

/* }====================================================== */

/* {====================================================== requests */

lh_req *lh_req_new(lua_State *L, size_t size, int cbidx) {
  lh_req *r = (lh_req *)malloc(sizeof(lh_req) + size);
  if (r == NULL) luaL_error(L, "not enough memory");
  memset(r, 0, sizeof(lh_req) + size);
  r->ctx = lh_getctx(L);
  r->cb_ref = r->data_ref = r->handle_ref = LUA_NOREF;
  if (cbidx > 0) {
    lua_pushvalue(L, cbidx);
    r->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return r;
}

void lh_req_free(lh_req *r) {
  lua_State *L = r->ctx->L;
  if (r->box) r->box->req = NULL; /* done: its userdata outlives it */
  luaL_unref(L, LUA_REGISTRYINDEX, r->cb_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->data_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->handle_ref);
  free(r);
}

int lh_req_push_cb(lh_req *r) {
  if (r->cb_ref == LUA_NOREF || r->ctx->shutting_down > 1) return 0;
  lua_checkstack(r->ctx->L, LUA_MINSTACK); /* see lh_push_cb */
  lua_rawgeti(r->ctx->L, LUA_REGISTRYINDEX, r->cb_ref);
  return 1;
}

/* }====================================================== */

/* {====================================================== dispatch */

void lh_report(const char *msg) {
  fprintf(stderr, "luahost: %s\n", msg);
  fflush(stderr);
}

void lh_fatal(lh_ctx *ctx, int code) {
  if (!ctx->fatal) {
    ctx->fatal = 1;
    ctx->exit_code = code;
  }
  uv_stop(ctx->loop);
}

/* The os.exit(code, true) marker: an error value lh_call must not report. */
static const char exit_marker = 'x';

int lh_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (lua_islightuserdata(L, 1) && lua_touserdata(L, 1) == &exit_marker)
    return 1; /* os.exit in progress: pass the marker through */
  if (msg == NULL) { /* error object is not a string? */
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

void *lh_exit_marker(void) { return (void *)&exit_marker; }

int lh_call(lh_ctx *ctx, int nargs) {
  lua_State *L = ctx->L;
  int base = lua_gettop(L) - nargs; /* function index */
  int status;
  lua_pushcfunction(L, lh_msghandler);
  lua_insert(L, base); /* put it under function and args */
  status = lua_pcall(L, nargs, 0, base);
  if (status != LUA_OK) {
    if (lua_touserdata(L, -1) == &exit_marker) {
      uv_stop(ctx->loop); /* os.exit(code, true): exit_code already set */
    } else {
      lh_report(lua_tostring(L, -1));
      if (ctx->callback_errors_fatal) lh_fatal(ctx, 1);
    }
    lua_pop(L, 1);
  }
  lua_remove(L, base); /* remove message handler */
  if (ctx->exit_requested) uv_stop(ctx->loop);
  return status;
}

/* }====================================================== */

/* {====================================================== tasks */

/* Push on L the message of the error value on top of co, lua.c style. */
static const char *error_text(lua_State *L, lua_State *co) {
  const char *msg = lua_tostring(co, -1);
  if (msg != NULL) return lua_pushstring(L, msg);
  if (luaL_callmeta(co, -1, "__tostring") && lua_isstring(co, -1)) {
    msg = lua_pushstring(L, lua_tostring(co, -1));
    lua_pop(co, 1);
    return msg;
  }
  return lua_pushfstring(L, "(error object is a %s value)",
                         luaL_typename(co, -1));
}

static void resume_anchored(lh_ctx *ctx, lua_State *co, int nargs) {
  lua_State *L = ctx->L;
  int nres, status = lua_resume(co, L, nargs, &nres);
  if (status == LUA_YIELD) {
    lua_pop(co, nres);
    return;
  }
  if (status != LUA_OK && lua_touserdata(co, -1) == &exit_marker) {
    lua_settop(co, 0);
    uv_stop(ctx->loop); /* os.exit(code, true) inside a task */
    return;
  }
  if (ctx->task_finish_ref == LUA_NOREF) { /* no task module: be plain */
    if (status != LUA_OK) {
      luaL_traceback(L, co, error_text(L, co), 0);
      lh_report(lua_tostring(L, -1));
      lua_pop(L, 2);
      lh_fatal(ctx, 1);
    }
    lua_settop(co, 0);
    return;
  }
  /* Finished or failed: hand the outcome to task.lua's finish hook. */
  if (!lua_checkstack(L, nres + 4)) { /* cannot carry them: drop them */
    lua_settop(co, 0);
    nres = 0;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->task_finish_ref);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushboolean(L, status == LUA_OK);
  if (status == LUA_OK) {
    lua_xmove(co, L, nres);
    lh_call(ctx, 2 + nres); /* finish(co, true, results...) */
  } else {
    /* The message with the coroutine's own traceback, taken now, before
    ** the hook closes the coroutine; then the original error value. */
    luaL_traceback(L, co, error_text(L, co), 0);
    lua_remove(L, -2);   /* the bare message */
    lua_xmove(co, L, 1); /* the error value */
    lua_settop(co, 0);
    lh_call(ctx, 4); /* finish(co, false, traceback, errvalue) */
  }
}

/* A running coroutine must be anchored by its resumer: keep it on L. */
static void resume(lh_ctx *ctx, lua_State *co, int nargs) {
  lua_State *L = ctx->L;
  lua_checkstack(L, LUA_MINSTACK); /* see lh_push_cb */
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  resume_anchored(ctx, co, nargs);
  lua_pop(L, 1);
}

void lh_resume(lh_ctx *ctx, lua_State *co, int nargs) {
  if (lua_status(co) != LUA_YIELD) {
    lua_pop(co, nargs); /* not suspended: a stale wake-up, ignore it */
    return;
  }
  resume(ctx, co, nargs);
}

void lh_start(lh_ctx *ctx, lua_State *co, int nargs) {
  resume(ctx, co, nargs);
}

/* }====================================================== */
