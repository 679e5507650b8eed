/*
** common.c: results, argument checks, handle lifetime, requests and the
** one dispatcher for every call into Lua. See common.h for the contracts.
** See Copyright Notice in README.md
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include "blocks.h"
#include "common.h"
#include "sock.h"

/* {====================================================== results */

/* The _r forms: uv_err_name and uv_strerror malloc a string for a code
** they do not know (translate_sys_error of any errno) and never free it. */
#define ERRBUF 64
#define err_name(st, buf) uv_err_name_r((st), (buf), ERRBUF)

int lh_fail(lua_State *L, int status) {
  char name[ERRBUF], msg[ERRBUF];
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", err_name(status, name),
                  uv_strerror_r(status, msg, sizeof(msg)));
  lua_pushstring(L, name);
  return 3;
}

int lh_result(lua_State *L, int status) {
  if (status < 0) return lh_fail(L, status);
  lua_pushinteger(L, status);
  return 1;
}

void lh_push_status(lua_State *L, int status) {
  char name[ERRBUF];
  if (status < 0)
    lua_pushstring(L, err_name(status, name));
  else
    lua_pushnil(L);
}

int lh_fail_msg(lua_State *L, int status, const char *fmt, ...) {
  va_list ap;
  char name[ERRBUF];
  lua_pushnil(L);
  lua_pushstring(L, err_name(status, name));
  lua_pushliteral(L, ": ");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 3);
  lua_pushstring(L, name);
  return 3;
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
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) return 0; /* (no number converted) */
  s = lua_tolstring(L, idx, &len);
  return strlen(s) != len;
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
  if (lh_parse_ip(ip, port, ss) == 0) return;
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
  if (lh_sockaddr_ip(sa, ip, &port) < 0) {
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

/* {====================================================== descriptors */

/* Highest fd lh_default_loop looks at for the fds libuv makes. */
#define FDSCAN 1024

static void open_fds(unsigned char *set) {
  int fd;
  for (fd = 0; fd < FDSCAN; fd++)
    if (fcntl(fd, F_GETFD) != -1) set[fd / 8] |= (unsigned char)(1 << fd % 8);
}

/* Does the loop struct name fd as one of its own? */
static int loop_names_fd(uv_loop_t *loop, int fd) {
  return fd == loop->backend_fd || fd == loop->signal_pipefd[0] ||
         fd == loop->signal_pipefd[1] || fd == loop->async_wfd ||
         fd == loop->async_io_watcher.fd || fd == loop->emfile_fd
#ifdef __linux__
         || fd == loop->inotify_fd
#endif
         ;
}

uv_loop_t *lh_default_loop(lh_ctx *ctx) {
  unsigned char before[FDSCAN / 8], after[FDSCAN / 8];
  uv_loop_t *loop;
  int fd, n = 0, i;
  for (i = 0; i < 4; i++) ctx->libuv_fds[i] = 0;
  /* A process started with stdin, stdout or stderr closed would give
  ** libuv one of fds 0-2 for its epoll fd, and libuv aborts when it closes
  ** such an fd at exit (uv__close asserts fd > 2): hold them on /dev/null
  ** (open takes the lowest free fd). */
  for (fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) == -1 && open("/dev/null", O_RDWR) < 0) break;
  memset(before, 0, sizeof(before));
  memset(after, 0, sizeof(after));
  open_fds(before);
  loop = uv_default_loop();
  if (loop == NULL) return NULL;
  open_fds(after);
  /* New fds that the loop struct does not name: libuv's process-wide
  ** signal lock pipe, made once with the first loop. */
  for (fd = 0; fd < FDSCAN && n < 4; fd++)
    if ((after[fd / 8] & ~before[fd / 8] & (1 << fd % 8)) &&
        !loop_names_fd(loop, fd))
      ctx->libuv_fds[n++] = fd + 1;
  return loop;
}

int lh_loop_owns_fd(lh_ctx *ctx, int fd) {
  int i;
  if (fd < 0) return 0;
  for (i = 0; i < 4; i++)
    if (ctx->libuv_fds[i] - 1 == fd) return 1; /* fd + 1 may overflow */
  return ctx->loop != NULL && loop_names_fd(ctx->loop, fd);
}

/* uv_walk callback: the type of a handle that holds fd arg->fd: streams
** and udp own theirs, a poll handle watches its own. Two handles on one fd
** share libuv's one watcher slot for it; when one closes the fd, its number
** is reused while the other still watches it (a poll handle's events then
** reached a listening socket: libuv asserted, fuzz seed 1313). */
struct held { int fd; const char *by; };

static void find_holder(uv_handle_t *uvh, void *arg) {
  struct held *w = (struct held *)arg;
  uv_os_fd_t fd;
  if (uvh->type != UV_TCP && uvh->type != UV_NAMED_PIPE &&
      uvh->type != UV_TTY && uvh->type != UV_UDP && uvh->type != UV_POLL)
    return;
  if (uv_fileno(uvh, &fd) == 0 && fd == w->fd)
    w->by = uv_handle_type_name(uvh->type);
}

const char *lh_fd_holder(lh_ctx *ctx, int fd) {
  struct held w;
  w.fd = fd;
  w.by = NULL;
  uv_walk(ctx->loop, find_holder, &w);
  return w.by;
}

static const char *file_kind(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return "a file";
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
  return "a file";
}

/* Can epoll watch fd? Asked of a throwaway epoll set: the loop's own
** may hold fd already from an earlier handle (libuv drops it lazily). */
static int pollable(int fd) {
#ifdef __linux__
  struct epoll_event ev;
  int ep = epoll_create1(EPOLL_CLOEXEC), err = 0;
  if (ep < 0) return 0; /* cannot tell: let libuv decide */
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) err = errno;
  close(ep);
  return err == EPERM ? UV_EPERM : 0;
#else
  (void)fd;
  return 0;
#endif
}

int lh_check_fd(lua_State *L, int idx, int kind, int *fdp) {
  lh_ctx *ctx = lh_getctx(L);
  int fd = (int)lh_check_range(L, idx, 0, INT_MAX), st;
  *fdp = fd;
  if (fcntl(fd, F_GETFD) == -1)
    return lh_fail_msg(L, UV_EBADF, "fd %d is not open", fd);
  if (lh_loop_owns_fd(ctx, fd))
    return lh_fail_msg(L, UV_EBUSY, "fd %d belongs to the event loop", fd);
  {
    const char *by = lh_fd_holder(ctx, fd);
    if (by != NULL)
      return lh_fail_msg(L, UV_EEXIST, "fd %d is already held by a uv_%s "
                         "handle", fd, by);
  }
  if (kind == LH_FD_STREAM || kind == LH_FD_DGRAM) {
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
      return lh_fail_msg(L, UV_ENOTSOCK, "fd %d is not a socket", fd);
    if (kind == LH_FD_DGRAM && type != SOCK_DGRAM)
      return lh_fail_msg(L, UV_EINVAL, "fd %d is not a datagram socket", fd);
    if (kind == LH_FD_STREAM && type != SOCK_STREAM)
      return lh_fail_msg(L, UV_EINVAL, "fd %d is not a stream socket", fd);
  }
  if (kind != LH_FD_ANY && (st = pollable(fd)) < 0)
    return lh_fail_msg(L, st, "fd %d is %s, which the event loop cannot "
                       "watch", fd, file_kind(fd));
  return 0;
}

/* }====================================================== */

/* {====================================================== buffers */

void lh_check_bufs(lua_State *L, int idx, lh_bufs *b, size_t max) {
  size_t len, i, n;
  b->bufs = b->small;
  b->total = 0;
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tolstring(L, idx, &len);
    luaL_argcheck(L, len <= UINT_MAX, idx, "string too long");
    b->small[0] = uv_buf_init((char *)s, (unsigned int)len);
    b->n = 1;
    b->total = len;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE)
    luaL_typeerror(L, idx, "string or array of strings");
  n = lua_rawlen(L, idx);
  if (n > max)
    luaL_argerror(L, idx, lua_pushfstring(L, "too many strings (at most %d)",
                                          (int)max));
  for (i = 1; i <= n; i++) { /* all checked before anything is used */
    if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TSTRING)
      luaL_argerror(L, idx, lua_pushfstring(L, "item %d is a %s, not a "
                    "string", (int)i, luaL_typename(L, -1)));
    luaL_argcheck(L, lua_rawlen(L, -1) <= UINT_MAX, idx, "string too long");
    lua_pop(L, 1);
  }
  if (n > LH_SMALL_BUFS)
    b->bufs = (uv_buf_t *)lua_newuserdatauv(L, n * sizeof(uv_buf_t), 0);
  for (i = 0; i < n; i++) {
    const char *s;
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    s = lua_tolstring(L, -1, &len);
    lua_pop(L, 1); /* still referenced by the table on the stack */
    b->bufs[i] = uv_buf_init((char *)s, (unsigned int)len);
    b->total += len;
  }
  if (n == 0) { /* libuv asserts nbufs > 0: send one empty string */
    b->small[0] = uv_buf_init((char *)"", 0);
    b->bufs = b->small;
    n = 1;
  }
  b->n = (unsigned int)n;
}

int lh_anchor_bufs(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, i);
      lua_rawseti(L, -2, i);
    }
  } else {
    lua_pushvalue(L, idx);
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
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

/* The box of h: a userdata with h's metatable, anchored by h->ref. */
static void new_box(lua_State *L, lh_handle *h) {
  char tname[32];
  lh_handle **box = (lh_handle **)lua_newuserdatauv(L, sizeof(lh_handle *),
                                                    0);
  *box = NULL;
  snprintf(tname, sizeof(tname), "uv_%s", uv_handle_type_name(h->uv->type));
  luaL_setmetatable(L, tname);
  lua_pushvalue(L, -1);
  h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->box = box;
  *box = h;
}

/* The owner's state starts here, past the uv handle, aligned for the
** pointers and 64-bit integers it holds (8: not malloc's 16, which would
** waste 8 bytes of every net connection's block). */
#define EXTRA_AT(type) (((sizeof(lh_handle) + uv_handle_size(type)) + 7) & \
                        ~(size_t)7)

/* Raise unless the loop can take something new: the finalizers that
** lua_close runs at exit come after the loop was closed. */
void lh_check_loop(lua_State *L) {
  if (lh_getctx(L)->shutting_down >= 3)
    luaL_error(L, "the event loop is closed (the host is exiting)");
}

lh_handle *lh_handle_alloc(lh_ctx *ctx, uv_handle_type type, size_t extra) {
  size_t size = extra ? EXTRA_AT(type) + extra
                      : sizeof(lh_handle) + uv_handle_size(type);
  /* (net's conns, the blocks with extra: in chunks of their own) */
  lh_handle *h = (lh_handle *)(extra ? lh_block_alloc(ctx, size)
                                     : malloc(size));
  int i;
  if (h == NULL) return NULL;
  memset(h, 0, size);
  h->ctx = ctx;
  h->uv = (uv_handle_t *)(h + 1);
  h->ref = LUA_NOREF;
  for (i = 0; i < LH_NCB; i++) h->cb[i] = LUA_NOREF;
  if (extra) h->extra = (char *)h + EXTRA_AT(type);
  h->uv->data = h;
  return h;
}

lh_handle *lh_handle_new_ex(lua_State *L, uv_handle_type type, size_t extra,
                            int boxed) {
  lh_handle **box = NULL;
  lh_handle *h;
  lh_check_loop(L);
  /* The box exists, closed, before the memory: an allocation error then
  ** leaves nothing half-made (liolib's newprefile). */
  if (boxed) {
    char tname[32];
    snprintf(tname, sizeof(tname), "uv_%s", uv_handle_type_name(type));
    box = (lh_handle **)lua_newuserdatauv(L, sizeof(lh_handle *), 0);
    *box = NULL;
    luaL_setmetatable(L, tname);
  }
  h = lh_handle_alloc(lh_getctx(L), type, extra);
  if (h == NULL) luaL_error(L, "not enough memory");
  if (boxed) {
    h->box = box;
    lua_pushvalue(L, -1);
    h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    *box = h;
  }
  return h;
}

lh_handle *lh_handle_new(lua_State *L, uv_handle_type type) {
  return lh_handle_new_ex(L, type, 0, 1);
}

void lh_handle_push_box(lua_State *L, lh_handle *h) {
  if (h->ref == LUA_NOREF && h->box == NULL && !uv_is_closing(h->uv)) {
    new_box(L, h);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
}

void lh_handle_abort(lua_State *L, lh_handle *h) {
  if (h->box != NULL) *h->box = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, h->ref);
  unref_all(L, h);
  lh_block_free(h->ctx, h);
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
  if (h->bind != NULL) lh_bind_now(h); /* not a listen: bind it here */
  return h;
}

static void handle_close_cb(uv_handle_t *uvh) {
  lh_handle *h = (lh_handle *)uvh->data;
  lh_ctx *ctx = h->ctx;
  lua_State *L = ctx->L;
  if (h->free_extra) h->free_extra(h);
  free(h->bind); /* (a deferred bind never made) */
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
    lh_block_free(ctx, h);
}

void lh_handle_pin(lh_handle *h) { h->pins++; }

void lh_handle_unpin(lh_handle *h) {
  if (--h->pins == 0 && h->closed) lh_block_free(h->ctx, h);
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
** closed every handle. So only a never-closed box is left to close here.
** (check_box: getmetatable(h).__gc can be called by hand, with anything;
** on a live handle it closes it, and its anchor stays taken) */
static int handle_gc(lua_State *L) {
  lh_handle **box = check_box(L, 1);
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

void lh_readbuf_alloc(lh_ctx *ctx, uv_buf_t *b) {
  if (!ctx->readbuf_lent) {
    b->base = ctx->readbuf;
    b->len = ctx->readbuf != NULL ? ctx->readbuf_size : 0;
  } else {
    b->base = (char *)malloc(ctx->readbuf_size);
    b->len = b->base != NULL ? ctx->readbuf_size : 0;
  }
}

int lh_readbuf_owned(lh_ctx *ctx, const uv_buf_t *b) {
  return b->base != NULL && b->base != ctx->readbuf;
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
  lh_req *r;
  lh_check_loop(L);
  r = (lh_req *)malloc(sizeof(lh_req) + size);
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

void (*lh_report_hook)(const char *msg) = NULL;

void lh_report(const char *msg) {
  if (lh_report_hook != NULL) {
    lh_report_hook(msg);
    return;
  }
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
