/*
** common.h: the one shared helper of the uv bindings.
** See Copyright Notice in README.md
**
** Everything a binding needs lives here, in sections:
**   context   - the per-state lh_ctx (loop, main thread, policy), reached
**               through lua_getextraspace, never through a C global;
**   results   - lh_fail / lh_result / lh_push_status: luv's error convention;
**   checks    - argument checks that raise naming the argument;
**   handles   - userdata <-> libuv handle, anchoring, callback slots;
**   requests  - libuv requests that carry a callback and anchored data;
**   dispatch  - lh_call, the single entry point for every call into Lua
**               (resuming a task is the scheduler's: lib/netcore.h).
*/
#ifndef LH_COMMON_H
#define LH_COMMON_H

#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

/* {====================================================== context */

struct lh_sub;
struct lh_blocks;

typedef struct lh_ctx {
  uv_loop_t *loop;
  lua_State *L;          /* main thread: every callback runs on it */
  int task_finish_ref;   /* task.lua's finish(co, ok, ...) or LUA_NOREF */
  int exit_code;         /* process exit status once the loop stops */
  int fatal;             /* an uncaught error asked the host to stop */
  int exit_requested;    /* os.exit(code, true) asked for an orderly stop */
  int shutting_down;     /* host is closing everything: no new Lua calls;
                            3: the loop is closed (lua_close's finalizers
                            run): nothing new may use it */
  int callback_errors_fatal; /* policy: 1 = report and exit 1 (default) */
  int in_run;            /* uv_run is on the C stack: do not re-enter */
  int run_mode;          /* its uv_run_mode while in_run (uv.loop_mode) */
  struct lh_sub *sub;    /* a substate's link to its thread (xfer.h), or
                            NULL in the host's main state */
  int script_ran_loop;   /* the script called uv.run itself (luv style) */
  int main_done;         /* the main task has finished */
  char *readbuf;         /* shared receive buffer (lh_readbuf), or NULL */
  struct lh_blocks *blocks; /* net's handle blocks (blocks.c), or NULL */
  size_t readbuf_size;
  int readbuf_lent;      /* net lends it to a reader running Lua */
  int libuv_fds[4];      /* fd + 1 of each fd libuv made for itself
                            outside the loop struct (its signal lock pipe),
                            0 when unused: see lh_default_loop */
  /* SIGINT that no script watcher takes goes here first (the REPL: cancel
  ** the running statement or clear the line); 1 = handled, go on. */
  int (*on_interrupt)(struct lh_ctx *ctx);
  void *repl;            /* the interactive reader, or NULL */
  /* In a --workers worker (set by the host, else NULL): the group's
  ** socket for sa (type UV_TCP, UV_NAMED_PIPE or UV_UDP; flags
  ** LH_SHARE_*), bound by the supervisor and, but for UDP, listening with
  ** backlog. Returns an fd the caller owns, or a negative libuv error. */
  int (*share_socket)(struct lh_ctx *ctx, int type, const struct sockaddr *sa,
                      int len, int backlog, int flags);
} lh_ctx;

/* uv_default_loop(), noting in ctx->libuv_fds the process-wide fds libuv
** creates while making its first loop (lh_check_fd refuses them). */
uv_loop_t *lh_default_loop(lh_ctx *ctx);
#define LH_SHARE_V6ONLY 1
#define LH_SHARE_REUSEPORT 2

/* The context pointer is stored in the state's extra space, which every
** coroutine inherits from the main thread at creation. */
#define lh_getctx(L) (*(lh_ctx **)lua_getextraspace(L))
#define lh_setctx(L, c) (*(lh_ctx **)lua_getextraspace(L) = (c))

/* }====================================================== */

/* {====================================================== results */

/* Push nil, "ENAME: message", "ENAME"; returns 3. */
int lh_fail(lua_State *L, int status);
/* status < 0: lh_fail; otherwise push the integer status; returns count. */
int lh_result(lua_State *L, int status);
/* For callbacks: push the error name, or nil when status >= 0. */
void lh_push_status(lua_State *L, int status);
/* Like lh_fail with a message of our own: nil, "ENAME: <fmt...>", "ENAME". */
int lh_fail_msg(lua_State *L, int status, const char *fmt, ...);

/* }====================================================== */

/* {====================================================== checks */

/* A function, or a table/userdata with __call; raises otherwise. */
void lh_check_callable(lua_State *L, int idx);
/* Optional callable: returns 0 when absent (none or nil). */
int lh_opt_callable(lua_State *L, int idx);
/* A string that C will see whole: raises if it holds a NUL byte (C would
** cut it there: "127.0.0.1\0junk" must not bind 127.0.0.1). */
const char *lh_check_cstring(lua_State *L, int idx);
/* Does the string (or number) at idx hold a NUL byte? */
int lh_has_nul(lua_State *L, int idx);
/* An integer in [lo, hi]; raises naming the argument otherwise. */
lua_Integer lh_check_range(lua_State *L, int idx, lua_Integer lo,
                           lua_Integer hi);
lua_Integer lh_opt_range(lua_State *L, int idx, lua_Integer def,
                         lua_Integer lo, lua_Integer hi);
/* Field of a table argument as boolean (absent -> 0); raises on bad type. */
int lh_opt_boolfield(lua_State *L, int idx, const char *name);
/* A signal given as a number or as a name ("sigint", "SIGINT", "int"). */
int lh_check_signal(lua_State *L, int idx);
/* luv's name of a signal ("sigint"), or NULL for an unknown number. */
const char *lh_signal_name(int signum);
/* Parse ip+port into a sockaddr; raises on a malformed address. */
void lh_check_addr(lua_State *L, int ipidx, int portidx,
                   struct sockaddr_storage *ss);
/* Push {ip=, port=, family=} for a sockaddr; nil for an unknown family. */
void lh_push_addr(lua_State *L, const struct sockaddr *sa);
/* Family name as luv spells it ("inet", "inet6", "unix"...). */
const char *lh_family_name(int family);
/* "inet"/"inet6"/"unix"/"unspec" or a number -> AF_*; raises if unknown. */
int lh_check_family(lua_State *L, int idx);

/* What a handle's open() (and new_tty, new_poll) may be given. */
enum {
  LH_FD_ANY,    /* an open fd no one else holds (tty) */
  LH_FD_PIPE,   /* and one epoll can watch (pipe open) */
  LH_FD_STREAM, /* and a SOCK_STREAM socket (tcp open) */
  LH_FD_DGRAM,  /* and a SOCK_DGRAM socket (udp open) */
  LH_FD_POLL    /* one epoll can watch (poll) */
};
/*
** The fd argument at idx of a function that hands an fd to libuv. Raises
** unless an integer in [0, INT_MAX]. Returns 0 and sets *fd when usable;
** otherwise pushes luv's fail triple and returns 3: for an fd that is not
** open, that belongs to the loop itself (its epoll fd, signal and async
** pipes: writing to them corrupts the loop), that another handle already
** holds (both would close it), that epoll cannot watch (a regular file,
** /dev/null: libuv would abort in the loop) or that is not the socket
** `kind` asks for (libuv would be left flagged open with no fd).
*/
int lh_check_fd(lua_State *L, int idx, int kind, int *fd);
/* Does the loop (or libuv, process-wide) own fd? For the fs functions. */
int lh_loop_owns_fd(lh_ctx *ctx, int fd);
/* The type name of the handle that holds fd ("tcp", "poll"...), or NULL.
** Walks the loop's handles: for opens and fs_close, not per read. */
const char *lh_fd_holder(lh_ctx *ctx, int fd);

/* }====================================================== */

/* {====================================================== buffers */

#define LH_SMALL_BUFS 16 /* up to this many strings need no allocation */

/*
** The data argument of write, send, try_write...: a string or an array of
** strings, described in place (no copy). bufs points at small, or at a
** temporary userdata pushed on the Lua stack. The strings stay alive
** while the argument is on the stack. There is always at least one buffer
** (libuv asserts nbufs > 0): an empty array is one empty string.
*/
typedef struct lh_bufs {
  uv_buf_t *bufs;
  unsigned int n;
  size_t total;          /* bytes in all */
  uv_buf_t small[LH_SMALL_BUFS];
} lh_bufs;

/* May push a buffer array: callers first lua_settop to their last
** argument, so it never sits where an absent argument is read. */
void lh_check_bufs(lua_State *L, int idx, lh_bufs *b, size_t max);
/* A registry ref anchoring what bufs point into for a queued request: the
** string, or a fresh array of the same strings (the caller may change its
** table meanwhile). */
int lh_anchor_bufs(lua_State *L, int idx);

/* }====================================================== */

/* {====================================================== handles */

enum { LH_CB_CLOSE, LH_CB_EVENT, LH_CB_AUX, LH_NCB };

/*
** Every Lua-visible libuv handle is one malloc'd block: this header, then
** the libuv handle (sized by uv_handle_size). The userdata (the "box") only
** holds a pointer to it, because libuv needs the memory until close_cb,
** which may run after Lua has collected the box. While open, the handle
** anchors its box with a registry ref, so it is never collected early;
** close_cb drops the anchor, sets *box = NULL and frees the block.
*/
typedef struct lh_handle {
  lh_ctx *ctx;            /* first: never equal to &lh_internal_tag */
  struct lh_handle **box; /* the userdata, valid while anchored */
  int ref;                /* registry ref anchoring the box */
  int cb[LH_NCB];         /* callback refs, LUA_NOREF when unset */
  void *extra;            /* per-type state (freed by free_extra) */
  void (*free_extra)(struct lh_handle *h);
  uv_handle_t *uv;        /* points just past this header */
  int pins;               /* requests that still point at this handle */
  int closed;             /* close_cb ran while pinned: the last unpin frees */
  struct lh_bind *bind;   /* a bind a worker deferred (groupbind.c) */
  int bind_err;           /* that bind failed when it was made at last */
  int detached;           /* closed for the script, finished by the host
                             (net's lingering close): uv.walk does not
                             show it, loop_close does not count it */
} lh_handle;

/* Is h an fs_poll whose start waits (fs_poll.c)? It counts as active. */
int lh_fs_poll_pending(const lh_handle *h);

#define LH_STREAM_MASK ((1 << UV_TCP) | (1 << UV_NAMED_PIPE) | (1 << UV_TTY))
#define LH_SOCKET_MASK ((1 << UV_TCP) | (1 << UV_NAMED_PIPE) | (1 << UV_UDP))
#define LH_ANY_MASK (~0)

/* Allocate an lh_handle for a uv handle of `type`, push its box (metatable
** set, anchored). The uv handle is NOT initialized: the caller calls
** uv_<type>_init and, if that fails, lh_handle_abort. */
lh_handle *lh_handle_new(lua_State *L, uv_handle_type type);
/* The same with `extra` bytes of the owner's state in the same block
** (h->extra points at them, zeroed: one malloc for the header, the uv
** handle and the owner's struct). boxed: push the box as lh_handle_new
** does; 0: no box and nothing pushed (a handle that only its owner shows
** to Lua, such as net's connections: no userdata and no registry slot of
** its own); lh_handle_push_box makes one when it is asked for. */
/* Raises once the loop is closed (lua_close's finalizers at exit). */
void lh_check_loop(lua_State *L);
lh_handle *lh_handle_new_ex(lua_State *L, uv_handle_type type, size_t extra,
                            int boxed);
/* The block of lh_handle_new_ex alone (no box, no loop check): for C
** that remakes a handle outside any Lua call; NULL when out of memory. */
lh_handle *lh_handle_alloc(lh_ctx *ctx, uv_handle_type type, size_t extra);
/* Push h's box, made (and anchored) now for an open handle made without
** one. */
void lh_handle_push_box(lua_State *L, lh_handle *h);
/* Undo lh_handle_new when uv_*_init failed: frees, box marked closed. */
void lh_handle_abort(lua_State *L, lh_handle *h);
/* groupbind.c: in a --workers worker, tcp:bind and pipe:bind only note
** the address; listen then asks the supervisor for the group's socket
** (lh_bind_listen), and any other use binds in the worker after all
** (lh_bind_now, from lh_check_handle: a client's bind before connect).
** lh_bind_defer: 1 when deferred, 0 when the caller binds now. */
int lh_bind_defer(lh_handle *h, const struct sockaddr *sa, int len,
                  int flags);
void lh_bind_now(lh_handle *h);
/* The deferred bind's failure (once), or 0. */
int lh_bind_error(lh_handle *h);
/* listen on a handle whose bind was deferred: adopt the group's socket. 0
** or a negative libuv error. */
int lh_bind_listen(lh_handle *h, int backlog);
/* Is the stream listening? libuv watches a listening stream with its
** accept callback alone, which asserts on anything but input: a write,
** shutdown or connect on it would abort the process (libuv 1.44 sets the
** stream writable on a failed connect and feeds a pipe's connect error to
** that callback), so the bindings refuse them first. */
#define lh_is_listening(s) (((uv_stream_t *)(s))->connection_cb != NULL)
/* Check arg idx is an open handle whose type is in mask; raises
** "attempt to use a closed handle" for a closing or closed one. */
lh_handle *lh_check_handle(lua_State *L, int idx, int mask);
/* Same but accepts closing/closed handles: returns NULL when closed. */
lh_handle *lh_check_handle_any(lua_State *L, int idx, int mask);
/* Start closing h (idempotent); the close callback slot is already set. */
void lh_handle_close(lh_handle *h);
/* The close_cb lh_handle_close passes to uv_close, for the calls that close
** a handle themselves (uv_tcp_close_reset). */
void lh_handle_close_cb(uv_handle_t *uvh);
/* A request that libuv keeps a pointer to another handle in (write2's
** send_handle, read when the write reaches the head of the queue) pins
** that handle: its memory then outlives close_cb until the last unpin. */
void lh_handle_pin(lh_handle *h);
void lh_handle_unpin(lh_handle *h);
/* Set callback slot from arg idx (must be callable); replaces the old. */
void lh_set_cb(lua_State *L, lh_handle *h, int slot, int idx);
void lh_unset_cb(lua_State *L, lh_handle *h, int slot);
/* Push the callback of slot on ctx->L; returns 0 (pushes nothing) if unset.
** It also makes room for LUA_MINSTACK values on ctx->L: code that pushes on
** ctx->L or on a suspended coroutine without it must lua_checkstack first. */
int lh_push_cb(lh_handle *h, int slot);
/* Push the handle's box (its userdata) on L. */
void lh_push_handle(lua_State *L, lh_handle *h);
/* Register the metatable "uv_<name>" for a handle type: __index gets the
** generic handle methods, the stream methods (LH_MT_STREAM), the socket
** option methods setopt/getopt (LH_MT_SOCKET), then own. */
#define LH_MT_STREAM 1
#define LH_MT_SOCKET 2
void lh_new_metatable(lua_State *L, const char *tname, const luaL_Reg *own,
                      int flags);
/* The receive buffer shared by every handle of the state, grown to at least
** size bytes (raises on out of memory, so call it from Lua, e.g. in
** read_start/recv_start, never from alloc_cb). libuv hands the buffer to
** the read callback before the next alloc_cb, and callbacks cannot re-enter
** the loop, so one buffer serves all handles, uv's and net's, with no malloc
** per read. The memory is Lua userdata anchored in the registry: lua_close
** frees it. */
char *lh_readbuf(lua_State *L, size_t size);
/* An alloc_cb's buffer: the shared one; or, while net lends it to a reader
** running Lua (readbuf_lent: lib/net_read.c) and a loop run nested there
** reads, a malloc'd one of the same size. The read callback asks
** lh_readbuf_owned first thing (before any Lua runs: Lua may grow the
** shared buffer) and frees an owned one at its end. */
void lh_readbuf_alloc(lh_ctx *ctx, uv_buf_t *b);
int lh_readbuf_owned(lh_ctx *ctx, const uv_buf_t *b);
/* Typed view of the uv handle. */
#define lh_uv(h, T) ((T *)(h)->uv)

/*
** Host-internal handles (the REPL's stdin, the SIGINT watcher) point their
** data at an lh_internal: uv.walk skips them and shutdown closes them with
** their own close_cb. Every other handle's data is an lh_handle.
*/
typedef struct lh_internal {
  const char *tag;       /* == &lh_internal_tag */
  uv_close_cb close_cb;
} lh_internal;
extern const char lh_internal_tag;
#define lh_is_internal(uvh) \
  ((uvh)->data == NULL || *(const char **)(uvh)->data == &lh_internal_tag)

/* Methods every handle has (handle.c), every stream has (stream.c), and
** every socket handle has (sockopt.c: setopt, getopt). */
extern const luaL_Reg lh_handle_methods[];
extern const luaL_Reg lh_stream_methods[];
extern const luaL_Reg lh_sockopt_methods[];

/* Socket options by name on a raw fd (sockopt.c), for net and the uv
** methods alike: set takes the name at nameidx and the value at validx and
** returns lh_result-style counts; get pushes the typed value (or fail). */
int lh_sockopt_set(lua_State *L, uv_os_fd_t fd, int nameidx, int validx);
int lh_sockopt_get(lua_State *L, uv_os_fd_t fd, int nameidx);
/* Raise as set (validx > 0) or get (validx 0) would on a wrong name or
** value, with no socket: a check before one is made for the option. */
void lh_sockopt_check(lua_State *L, int nameidx, int validx);

/* }====================================================== */

/* {====================================================== requests */

/*
** A request (connect, write, shutdown, send, getaddrinfo...) is malloc'd
** with this header in front. cb_ref holds the Lua callback (or LUA_NOREF),
** data_ref anchors what must live until completion (strings being written,
** the handle). lh_req_free releases both and frees. Rule: if the uv_* call
** fails synchronously, free the request there and never call back.
*/
typedef struct lh_req {
  lh_ctx *ctx;
  int cb_ref;
  int data_ref;
  int handle_ref;
  void *extra;
  struct lh_reqbox *box; /* its Lua userdata (req.c), or NULL */
} lh_req;

/*
** The Lua face of a request (req.c): a userdata with metatable "uv_req"
** (cancel, get_type). It points at the request while that is in flight;
** lh_req_free clears the pointer, its __gc clears the request's. `owned`:
** the request is done but kept for its results (fs_scandir), and the box
** frees it when collected.
*/
typedef struct lh_reqbox {
  lh_req *req;
  int type;  /* uv_req_type, kept after the request is done */
  int owned;
} lh_reqbox;

/* Push a new box for request r of the given type and link the two. */
lh_reqbox *lh_req_push_box(lua_State *L, lh_req *r, uv_req_type type);
/* Check that arg idx is a request box; returns it. */
lh_reqbox *lh_check_reqbox(lua_State *L, int idx);

/* Allocate a request of `size` bytes for the libuv request struct; the
** callable at cbidx (0 = none) is referenced. */
lh_req *lh_req_new(lua_State *L, size_t size, int cbidx);
#define lh_req_uv(r, T) ((T *)((r) + 1))
#define lh_req_of(uvreq) (((lh_req *)(uvreq)) - 1)
void lh_req_free(lh_req *r);
/* Push the request's callback; 0 if none. */
int lh_req_push_cb(lh_req *r);

/* }====================================================== */

/* {====================================================== dispatch */

/*
** lh_call: the function and nargs arguments are on ctx->L. Calls it in
** protected mode with a traceback handler; on error reports it through
** lh_report and applies the callback-error policy (default: stop the loop,
** exit status 1). Always leaves the stack as it was below the function.
** Returns the lua_pcall status.
*/
int lh_call(lh_ctx *ctx, int nargs);
/* The message handler (error -> string with traceback). */
int lh_msghandler(lua_State *L);
/* Print "luahost: msg" to stderr. */
void lh_report(const char *msg);
/* When set, lh_report hands msg to it instead (the host's JSON log). */
extern void (*lh_report_hook)(const char *msg);
/* Ask the host to stop: exit code, loop stopped. */
void lh_fatal(lh_ctx *ctx, int code);

/* }====================================================== */

/* {====================================================== tasks */

/* The error value os.exit(code, true) raises to unwind to the host. */
void *lh_exit_marker(void);
/* close method shared by every handle (also __close). */
int lh_handle_close_method(lua_State *L);

/* }====================================================== */

/* Openers, one per binding file; each adds to the uv table on top. */
void lh_loop_open(lua_State *L);
void lh_handle_open(lua_State *L);
void lh_timer_open(lua_State *L);
void lh_stream_open(lua_State *L);
void lh_tcp_open(lua_State *L);
void lh_udp_open(lua_State *L);
void lh_pipe_open(lua_State *L);
void lh_tty_open(lua_State *L);
void lh_process_open(lua_State *L);
void lh_signal_open(lua_State *L);
void lh_poll_open(lua_State *L);
void lh_watchers_open(lua_State *L);
void lh_dns_open(lua_State *L);
void lh_netdb_open(lua_State *L);
void lh_sockopt_open(lua_State *L);
void lh_misc_open(lua_State *L);
void lh_constants_open(lua_State *L);
void lh_req_open(lua_State *L);
void lh_fs_open(lua_State *L);
void lh_fsdir_open(lua_State *L);
void lh_fs_event_open(lua_State *L);
void lh_fs_poll_open(lua_State *L);
void lh_thread_open(lua_State *L);
void lh_work_open(lua_State *L);
/* Ask the work items running Lua now to stop (os.exit without close). */
void lh_work_cancel_running(lua_State *L);

int luaopen_uv(lua_State *L);

#endif
