/*
** net_core.h: the private header of net.core, the C core of the net and
** task modules. Only lib/net_*.c and lib/netcore.c include it; the host
** sees lib/netcore.h (luaopen_net_core) alone.
** See Copyright Notice in README.md
**
** A blocking call parks the running task with lua_yieldk and returns from
** its continuation; the libuv callback that completes the wait resumes the
** task directly (lh_resume) with no values: the continuation re-reads the
** state it needs from the connection. A task is cancelled by resuming it
** with the cancel marker (net.core.CANCEL): every continuation then drops
** its wait (heap entry, parked slot, request) and raises the marker
** (net_was_cancelled + net_cancel_exit).
**
** The files, one concern each; netcore.c opens them as bindings/uv.c does:
**   net_sched.c     - the scheduler: resuming a task from C (lh_resume),
**                     the deadline heap on one uv_timer, the ready queue,
**                     sleep, yield, park and wake, the "inside a task" check;
**   net_conn.c      - the socket object: lifetime, close, the reader and
**                     writer slots, names, options, timeouts, addresses;
**   net_read.c      - buffered input (the borrowed read buffer), io.read
**                     formats, recv;
**   net_write.c     - write, flush, shutdown: backpressure over a transport;
**   net_transport.c - the plain byte transport and the raw send path
**                     (uv_try_write first, queue the rest);
**   net_listen.c    - listen, accept, connect;
**   net_dns.c       - getaddrinfo / getnameinfo without blocking the loop;
**   net_udp.c       - datagrams, a bounded receive queue;
**   net_proxy.c     - the PROXY protocol header (v1, v2) of an accepted
**                     conn, read before any transport handshake;
**   net_pipe.c      - conn:pipe, net.splice: bytes from conn to conn in C;
**   net_answer.c    - a server's answers in C (netcore.h), asked first
**                     when input arrives for a conn between two requests;
**   net_shelf.c     - a conn resting for SHELF_MS gives its uv handle back
**                     (the socket watched in an epoll set of the core's).
*/
#ifndef NET_CORE_H
#define NET_CORE_H

#include <stdint.h>
#include <sys/socket.h>

#include "common.h"
#include "sock.h"
#include "netcore.h"

#define RBUF_SIZE 65536        /* the shared read buffer (lh_readbuf), at
                                  least; recv's default size */
#define RHWM (256 * 1024)      /* stop reading when this much is unread */
#define UDP_QMAX 64            /* datagrams queued while nobody reads */
#define LINGER_MS 10000        /* close(): time left to send queued data;
                                  a lingering close: its whole time */
#define LINGER_READ_MS 2000    /* a lingering close: silence that ends it */
#define LINGER_MAX 1024        /* lingering closes at once; more close at
                                  once (each holds a descriptor) */
#define SHELF_MS 100           /* a conn resting this long goes on the shelf
                                  (net_shelf.c) */
#define FRESH_MS 1000          /* a drain: time a new conn that has sent
                                  nothing yet gets to send (net_conn.c) */
#define MAX_FORMATS 200

/* The cancel and drop markers (light userdata; see net_sched.c). */
extern const char net_cancel_mark, net_drop_mark;
#define CANCEL ((void *)&net_cancel_mark)
#define DROP ((void *)&net_drop_mark)

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

typedef struct core core;
typedef struct conn conn;
typedef struct net_pipe net_pipe;

/* What a PROXY protocol header said (net_proxy.c): the original client
** (src) and the address it connected to (dst); local: a header with no
** addresses to use (LOCAL command, UNSPEC, UNKNOWN). */
typedef struct net_proxied {
  struct sockaddr_storage src, dst;
  int local;
} net_proxied;
#define NET_PROXY_BAD (-1)

/* net.buffer (net_buffer.c): bytes conn:recv_into fills and conn:write
** sends, with no Lua string made for them. One userdata: len bytes of
** data are the buffer's content, cap its size. */
typedef struct net_buffer {
  size_t len, cap;
  int finalized; /* its __gc ran: never net_tobuffer's cached one again */
  char data[1];
} net_buffer;
/* The net.buffer at idx, or NULL. */
net_buffer *net_tobuffer(lua_State *L, core *K, int idx);
void net_buffer_open(lua_State *L);
/* Parse a header at p (n > 0 bytes): its length, 0 while incomplete,
** NET_PROXY_BAD when p cannot start a valid one. */
int net_proxy_parse(const unsigned char *p, size_t n, net_proxied *out);

/* {====================================================== scheduler */

/*
** One deadline in the heap. Whoever queues it names the callback that
** runs when it is due (libuv style): the heap knows no kind of waiter.
** The entry is out of the heap when fire runs; fire may queue it again.
*/
typedef struct tmo tmo;
typedef void (*tmo_fire)(core *K, tmo *t);
struct tmo {
  uint64_t due, seq;
  int idx;              /* heap position, -1 when not queued */
  tmo_fire fire;
};

typedef struct sleeper {
  tmo t;
  lua_State *co;
  int ref;              /* registry slot anchoring co while it sleeps */
  int ready;            /* in the ready queue (yield), not in the heap */
  int park;             /* core.park: resumed with true (woken) or false
                           (its deadline), see net_sched.c */
  struct sleeper *next; /* free list or ready queue */
  struct sleeper *all;  /* every node ever made, freed with the core */
} sleeper;

/* Per-state data: one full userdata, the upvalue of every core function. */
struct core {
  lh_internal in;       /* first: the handles' data; uv.walk skips them */
  uv_timer_t timer;
  uv_idle_t idle;       /* runs the ready queue, once per loop iteration */
  uv_idle_t fidle;      /* sends setvbuf's batches (net_write.c) */
  conn *batched;        /* conns with a batch, linked by bnext/bprev */
  sleeper *rhead, *rtail; /* tasks that yielded, in order */
  lh_ctx *ctx;
  tmo **heap;
  int n, cap;
  uint64_t seq;
  int tasks_ref;        /* task.lua's coroutine -> task table */
  const char *lent;     /* the shared read buffer (lh_readbuf) while it is
                           lent to a conn being resumed, or NULL */
  int armed;            /* the timer is started, for armed_due */
  int nsleep;           /* sleeping tasks: only they need the timer ref'd
                           (other waits keep their own handle ref'd) */
  uint64_t armed_due;
  sleeper *free_sleepers, *all_sleepers;
  int parked_ref;       /* parked coroutine -> its sleeper (core.park) */
  conn *rest_head, *rest_tail; /* resting conns, oldest first (rest) */
  conn *shelf_next;     /* the first resting conn the shelf has not looked
                           at yet (net_shelf.c) */
  struct shelved *shelf_head, *shelf_tail; /* shelved conns, oldest
                                              first */
  uv_timer_t shelf_timer; /* when shelf_next has rested SHELF_MS */
  uv_poll_t shelf_poll; /* shelf_fd's readiness */
  int shelf_fd;         /* the epoll set of the shelved sockets, or -1 */
  int nshelved;
  int ngroups;          /* servers made: each its group number */
  int nlinger;          /* conns in a lingering close (net_conn.c) */
  /* defaults, set by net.lua (limits are 32-bit: a conn's fit beside
  ** hwm in the 8 bytes that maxline alone took) */
  uint32_t maxline, maxread;
  size_t hwm;
  lua_Integer nsends;   /* net_send calls, for core.stats */
  lua_Integer ninto;    /* reads that landed in a net.buffer (core.stats) */
  uint64_t nofile, nofile_at; /* RLIMIT_NOFILE's soft limit (0: not read
                           yet) and when it was read (loop ms): accept's
                           reserve check (net_listen.c) */
  const void *mt[3];    /* the metatables of the kinds (net_to_conn) */
  conn *anch_c;         /* anch_c's reader slot (rref) holds anch_co: a */
  lua_State *anch_co;   /* task that parks there again skips anchoring */
  const void *bufmt;    /* net.buffer's metatable (net_tobuffer) */
  const void *lastbuf;  /* the net.buffer net_tobuffer found last */
  const char *given;    /* the net.buffer alloc_cb gave libuv for the read
                           under way, or NULL (net_read.c) */
};

/* Anything that writes c's reader slot but net_park_reader says so. */
#define net_rslot_forget(c) \
  ((c)->K->anch_c == (c) ? (void)((c)->K->anch_c = NULL) : (void)0)

/* The core of a function registered by an opener (upvalue 1). */
#define net_getcore(L) ((core *)lua_touserdata(L, lua_upvalueindex(1)))

/* The loop's clock brought up to date: the base of every deadline. */
uint64_t net_now(core *K);
/* Queue t to fire ms from now / at due (a queued t moves); 0 or
** UV_ENOMEM. */
int net_tmo_add(core *K, tmo *t, tmo_fire fire, uint64_t ms);
int net_tmo_add_at(core *K, tmo *t, tmo_fire fire, uint64_t due);
/* Take t out of the heap (no-op when not queued). */
void net_tmo_del(core *K, tmo *t);

/* lh_resume with no values for a co the caller anchors (a registry
** slot): nothing is pushed on the main thread to keep it alive. */
void net_resume(core *K, lua_State *co);
/* Anchor the running coroutine L in registry slot *ref (made once);
** unanchor clears the slot, keeping it for reuse. */
void net_anchor(lua_State *L, int *ref);
void net_unanchor(lua_State *L, int ref);
/* Raise unless L is a task that can yield; what names the caller. The
** error names the position of the function at level (luaL_where's; 1,
** net_need_task's: the caller of the C function; 2 for one called
** through a Lua function of net.lua, to name that one's caller). */
void net_need_task(lua_State *L, core *K, const char *what);
void net_need_task_at(lua_State *L, core *K, const char *what, int level);
int net_can_wait(lua_State *L, core *K);
/* Resume values beyond base: 1 for the cancel marker, 2 for the drop
** marker, 0 for nothing; the stack is cut back to base. */
int net_was_cancelled(lua_State *L, int base);
/* After a wait dropped its registration: raise the cancel marker, or,
** for the drop marker (how == 2), stay parked with nothing registered. */
int net_cancel_exit(lua_State *L, int how);

void net_sched_init(lua_State *L, core *K);  /* timer, idle, parked */
void net_sched_free(core *K);                /* at the core's __gc */

/* }====================================================== */

/* {====================================================== transport */

/*
** The byte transport of a stream connection: what lies between the
** socket and the plaintext that read/write see. Plain (net_plain) moves
** bytes through unchanged; a TLS transport (a file of its own) encrypts
** and decrypts. The conn holds `tp` (never NULL for a stream) and `tpdata`
** (the transport's own state, NULL for plain).
**
** Contract, hook by hook (c is always a live stream conn; none of them
** runs Lua except through the net_* functions named below):
**
** on_data(c, p, n): n > 0 bytes arrived from the socket at p. p is valid
**   only during the call (it is often the shared read buffer). The
**   transport hands the plaintext it gets to net_deliver(c, q, m), in
**   order, as often as it likes (0 times for a record still incomplete;
**   net_deliver wakes the parked reader, which may run Lua, close c or
**   even switch the transport: re-read c->tp and check c->closed after
**   it). It may send bytes of its own (handshake, alerts) with
**   net_send. Returns 0, or a libuv-style error (< 0), which becomes the
**   conn's sticky read error: reading stops and the reader gets
**   net_conn_errname(c, err): a libuv name ("ECONNRESET") or, for
**   NET_ETRANSPORT, the transport's own message (errmsg below).
**
** on_end(c, status): the socket reported status < 0 (UV_EOF or an
**   error). Returns the status the reader will see: plain returns it
**   unchanged; TLS turns a UV_EOF with no close_notify after an
**   incomplete record into an error. NULL means unchanged.
**
** write(c, bufs, nb): plaintext to send, nb >= 1 buffers, none empty.
**   Everything is sent or queued before it returns: the bytes are copied
**   when they cannot go at once (the caller's memory is not kept). It
**   sends through net_send (plain: write is net_send itself). Returns 0,
**   UV_ENOMEM (the caller raises "not enough memory") or an error (it
**   becomes the sticky write error). It can be called whenever c is
**   live, handshake or not: setvbuf's batch is flushed when a read would
**   wait, at close, and from an idle callback (net_flush_out).
**   Backpressure (parking the writer, pausing a pipe, while more than
**   hwm bytes are queued) and flush are the caller's: they count what
**   net_send queued and what the transport holds (held, below).
**
** shutdown(c): conn:shutdown(): no more output after what is queued
**   (TLS: close_notify, then the plain shutdown, net_shutdown). Returns 0
**   or an error (reported, not sticky).
**
** close(c): c is being closed for Lua (conn:close, collection, a failed
**   connect), after the waiting tasks were woken and before the decision
**   to drain queued output (LINGER_MS) or close at once: a TLS transport
**   may queue a close_notify here with net_send. NULL for nothing.
**
** free(c): the conn's memory goes (the handle is closed); release tpdata.
**   Never runs Lua. NULL for nothing.
**
** held(c): plaintext written and kept by the transport, not yet handed
**   to net_send (TLS: what was written before the handshake ended).
**   Backpressure counts it with libuv's queue (net_queued). Once it
**   sends that on or fails without a write of the caller's (the
**   handshake ends), the transport calls net_written(c), as a write
**   leaving libuv's queue does. NULL: the transport keeps nothing.
**
** errmsg(c): the message of the last NET_ETRANSPORT this transport
**   returned (from any hook above): what read, recv, write and flush
**   answer after nil ("tls: certificate verify failed: ..."). The string
**   must live as long as tpdata. NULL: the transport never returns
**   NET_ETRANSPORT.
**
** net_set_transport(c, tp, data) switches a connection (STARTTLS): it
** stores tp and data, then hands tp->on_data the input already received
** and not yet read (a copy: the read buffer is emptied first), so no byte
** that arrived in plaintext mode is lost or read twice.
*/
typedef struct lh_transport {
  const char *name;                 /* "plain", "tls" */
  int (*on_data)(conn *c, const char *p, size_t n);
  int (*on_end)(conn *c, int status);
  int (*write)(conn *c, const uv_buf_t *bufs, int nb);
  int (*shutdown)(conn *c);
  void (*close)(conn *c);
  void (*free)(conn *c);
  const char *(*errmsg)(conn *c);
  size_t (*held)(conn *c);
} lh_transport;

/* The error code of a transport failure that libuv has no name for
** (outside libuv's range of error codes); tp->errmsg says why. */
#define NET_ETRANSPORT (-0x7fff)

extern const lh_transport net_plain;

/* The raw send path of every transport: uv_try_write first when nothing
** is queued, a copy of the rest queued with uv_write; 0 or an error. */
int net_send(conn *c, const uv_buf_t *bufs, int nb);
/* uv_shutdown of the socket (after queued output); 0 or an error. */
int net_shutdown(conn *c);
/* The largest max_line or max_read (they are 32-bit in a conn). */
#define NET_LIMIT_MAX ((lua_Integer)UINT32_MAX)

/* Output not yet sent: what the transport holds plus libuv's queue. */
size_t net_held(conn *c);
size_t net_queued(conn *c);
/* Output left (a write done, or what the transport held sent on): resume
** a paused pipe, wake a writer waiting for the queue to drain. May run
** Lua: check c->closed after it. */
void net_written(conn *c);
/* Switch c's transport; 0 or the first error of tp->on_data. */
int net_set_transport(conn *c, const lh_transport *tp, void *data);
/* Plaintext for the reader (see on_data above); 0 or UV_ENOMEM. */
int net_deliver(conn *c, const char *p, size_t n);
/* What c's answer (c->ans, netcore.h) used of n bytes at p that arrived
** with nothing unread before them (net_answer.c). */
size_t net_answer_run(conn *c, const char *p, size_t n);

/* }====================================================== */

/* {====================================================== connection */

enum { K_STREAM, K_SERVER, K_UDP };
extern const char *const net_tnames[];

typedef struct dgram {
  struct dgram *next;
  struct sockaddr_storage from;
  size_t len;
  char data[1];
} dgram;

struct conn {
  lh_handle *h;          /* the uv handle; freed with this struct */
  struct conn **ud;      /* the Lua userdata, NULL once collected */
  core *K;
  const lh_transport *tp; /* streams: the byte transport (see above) */
  void *tpdata;          /* the transport's state */
  char *buf;             /* owned input storage */
  size_t cap;
  const char *rp;        /* unread input: rp[0 .. rlen) */
  size_t rlen;
  lua_State *rco;        /* parked reader (or acceptor) */
  lua_State *task;       /* last thread known to be a task (need_task) */
  struct conn_x *x;      /* what only some conns use, NULL until then */
  net_answer *ans;       /* its server's answers in C, or NULL (netcore.h) */
  tmo rt;                /* the reader's deadline (also a resting conn's) */
  uint64_t rdue;         /* deadline of the parked reader, 0 = none */
  uint64_t rsince;       /* when the reader parked (net_now, ms) */
  uint32_t maxline;      /* longest line read("l") returns */
  uint32_t maxread;      /* most read("a") or read(n) buffers */
  size_t hwm;
  union {               /* one list at a time (anonymous: GNU C, C11) */
    struct { struct conn *bnext, *bprev; }; /* on K->batched while obuf
                                               holds data */
    struct { struct conn *rsnext, *rsprev; }; /* on K's list while it
                                                 rests (rest flushed obuf) */
    struct { dgram *qhead, *qtail; }; /* udp: received, not yet read */
  };
  int rref;              /* registry slot anchoring rco */
  int iref;              /* rest: the registry slot of its callback (the
                            conn has no userdata meanwhile: see
                            net_read.c) */
  int group;             /* server: its number; a resting conn: its
                            server's (server:close_idle, shedding) */
  int timeout;           /* ms for every later wait, -1 = none */
  int rerr, werr;        /* sticky: UV_EOF or an error */
  union {
    int cstatus;         /* stream: connect: 1 in progress, else its
                            status */
    int idle;            /* server: timeout given to accepted conns */
  };
  unsigned nwreq;        /* queued writes */
  int qlen;              /* udp: datagrams queued */
  unsigned char kind, reading, closed, rtimed, wtimed, wflush, pending;
  unsigned char skipline;
  unsigned char fed;     /* input has arrived (net_deliver): one that has
                            not may have its first bytes in flight (a
                            drain gives it a grace, core_close_resting) */
  unsigned char resting; /* rest: waits in C for input, no task (see
                            net_read.c) */
  unsigned char rested;  /* it has rested after input once (a kept-alive
                            conn that came back: http waits for its next
                            request before it rests again) */
  unsigned char vbuf;    /* VBUF_NO (default), VBUF_FULL, VBUF_LINE */
  unsigned char lingering; /* in a lingering close (net_conn.c) */
  unsigned char into;    /* the parked reader is a recv_into: rp is its
                            net.buffer's bytes, where a plain conn's next
                            read lands (net_read.c) */
  unsigned char next;    /* the parked reader is a recv_wait: http's wait
                            for a next request (core.waits_next) */
};

enum { VBUF_NO, VBUF_FULL, VBUF_LINE };

/*
** The part of a conn that an idle one does not use, in a block of its
** own made on first use (net_conn_x) and freed with the conn: a writer
** parked by backpressure (or flush), the linger of a close with output
** queued, setvbuf's batch, a PROXY header's addresses, a pipe. A conn
** that reads and writes without ever waiting to write has none: every
** idle connection is that much smaller (one C block per connection).
*/
typedef struct conn_x {
  conn *c;
  lua_State *wco;        /* parked writer */
  int wref;              /* registry slot anchoring it */
  tmo wt;                /* the writer's deadline; close's linger */
  char *obuf;            /* setvbuf "full"/"line": output not yet sent */
  size_t olen, osize;    /* bytes in obuf; flushed past osize */
  net_proxied *px;       /* a PROXY header's client, NULL if none */
  net_pipe *pipe;        /* the pipe or splice moving its bytes, if any
                            (net_pipe.c) */
} conn_x;

/* c's conn_x, made now if it has none; NULL when out of memory. */
conn_x *net_conn_x(conn *c);
/* Reads of the fields of c->x for a conn that may have none. */
#define X_WCO(c) ((c)->x != NULL ? (c)->x->wco : NULL)
#define X_OLEN(c) ((c)->x != NULL ? (c)->x->olen : 0)
#define X_PIPE(c) ((c)->x != NULL ? (c)->x->pipe : NULL)

#define STREAM(c) ((uv_stream_t *)(c)->h->uv)
#define LIVE(c) ((c) != NULL && !(c)->closed)

/* Push a new conn userdata of kind with an lh_handle of type (not yet
** initialized: call net_conn_init_done with the uv_*_init result). */
conn *net_conn_new(lua_State *L, core *K, uv_handle_type type, int kind);
int net_conn_init_done(lua_State *L, conn *c, int r);
/* The conn at idx of kind (raises on another type); NULL once freed.
** Called from functions whose upvalue 1 is the core, or that have no
** upvalues (never another userdata there). */
conn *net_to_conn(lua_State *L, int idx, int kind);
/* The box of a socket of any of the three kinds at idx, or a type error. */
conn **net_check_socket(lua_State *L, int idx);
void net_conn_close(lua_State *L, conn *c);
/* Resume the task parked in the reader (reader, acceptor, connect) or
** writer slot, if any. A resting conn (no task: see core.rest in
** net_read.c) has its callback called instead, once there is something
** to tell: input, an error or end of input, its close, its deadline. */
void net_wake_reader(lua_State *L, conn *c);
void net_wake_writer(lua_State *L, conn *c);
/* Park the running task in a slot; k continues it. ms < 0: no deadline
** (the writer's deadline is c->timeout). flush: the writer waits for an
** empty queue rather than for room under hwm. */
int net_park_reader(lua_State *L, conn *c, int ms, lua_KContext kc,
                    lua_KFunction k, const char *what);
/* The same, a misuse (no task, another reader waiting) raised at level
** (see net_need_task_at). */
int net_park_reader_at(lua_State *L, conn *c, int ms, lua_KContext kc,
                       lua_KFunction k, const char *what, int level);
/* The same for recv_into: the conn's next read may land in nb. */
int net_park_reader_into(lua_State *L, conn *c, int ms, lua_KContext kc,
                         lua_KFunction k, net_buffer *nb);
/* The same for recv_wait: the reader waits for a next request. */
int net_park_reader_next(lua_State *L, conn *c, int ms, lua_KContext kc,
                         lua_KFunction k);
/* Raises unless L can park as c's writer (a yieldable task, no other
** writer parked); net_writer_can_wait tells without raising. */
void net_check_writer(lua_State *L, conn *c, const char *what);
int net_writer_can_wait(lua_State *L, conn *c);
int net_park_writer(lua_State *L, conn *c, int flush, lua_KFunction k,
                    const char *what);
/* Close a stream conn whose output is out: unread input dropped first
** (a close with unread input is a reset; net_conn.c). */
void net_close_stream(conn *c);
/* Put a conn that starts resting at the end of K's list. */
void net_rest_link(conn *c);
/* Take a conn off K's list (it no longer rests). */
void net_rest_unlink(conn *c);
/* The reader's deadline (lazy: see net_park_reader), also a resting
** conn's. */
void net_rd_fire(core *K, tmo *t);
/* The close of a conn's handle (its free_extra). */
void net_conn_free(lh_handle *h);

/*
** net_shelf.c. A resting conn on the shelf: what makes it again, in a
** block of its own (the uv handle closed, the socket in the core's epoll
** set): 120 bytes where a resting conn's block is 552.
*/
typedef struct shelved {
  struct shelved *next, *prev; /* K's shelf, oldest first */
  core *K;
  conn_x *x;             /* the conn's (a PROXY header's address), or NULL */
  net_answer *ans;       /* as the conn's */
  tmo rt;                /* its deadline (shelf_fire), when it has one */
  uint64_t rdue, rsince; /* as the conn's */
  uint32_t maxline, maxread;
  size_t hwm;
  int fd;                /* the socket (a duplicate of libuv's) */
  int iref, rref;        /* the rest callback and tag (core.rest) */
  int group, timeout;
  unsigned char fed, rested, vbuf, skipline;
  unsigned char pipe;    /* a unix socket (uv_pipe_t), else TCP */
} shelved;

/* A conn started resting (core.rest): the shelf looks at it once it has
** rested SHELF_MS. */
void net_shelf_rested(core *K);
/* Take s off the shelf: a resting conn with a uv handle again, reading,
** at the head of the rest list; NULL when that failed (then s is gone:
** closed, its callback told "closed", which runs Lua). */
conn *net_unshelve(shelved *s);
/* The oldest shelved conn of group (with input once, when fed), or NULL.
** How many of group's are shelved, and the oldest of them (or NULL). */
shelved *net_shelf_first(core *K, int group, int fed);
lua_Integer net_shelf_count(core *K, int group, shelved **oldest);
/* close_resting's deadline for group's shelved conns that have sent
** nothing yet: due at the latest. */
void net_shelf_fresh(core *K, int group, uint64_t due);
void net_shelf_init(core *K);
void net_shelf_free(core *K);   /* at the core's __gc */
/* Cancel cleanup: take L out of whichever slot of c it waits in. */
void net_drop_waits(lua_State *L, conn *c);
/* Seconds (not NaN) to ms for a wait: -1 when negative, clamped. */
int net_secs_to_ms(double s);
/* conn:setopt, the generic socket options (udp's setopt falls back). */
int net_conn_setopt(lua_State *L);
/* Add methods to the __index table of a socket kind. */
void net_add_methods(lua_State *L, int kind, const luaL_Reg *l);

/* The error strings of the high-level API: short and stable. */
const char *net_errname(int status);
/* Push nil, msg / nil, net_errname(status); return 2. */
int net_fail_str(lua_State *L, const char *msg);
int net_fail_st(lua_State *L, int status);
/* net_errname, or the transport's message for NET_ETRANSPORT. */
const char *net_conn_errname(conn *c, int status);

/* Addresses: push ip, port, family (3) or nil, "EAFNOSUPPORT" (2). */
int net_push_sockaddr(lua_State *L, const struct sockaddr *sa);
/* (Parsing ip + port, NUL checks and unix socket paths: the socket
** toolkit shared with uv, bindings/sock.h.) */

/* }====================================================== */

/* {====================================================== input */

/* Hand the output batched by setvbuf to the transport (the buffer goes:
** an idle connection holds none); 0 or an error, also made sticky. */
int net_flush_out(conn *c);
/* Drop c's batch unsent (the conn's memory goes). */
void net_batch_free(conn *c);
void net_write_init(core *K);

/* Start / stop reading the socket of a stream. */
void net_rstart(conn *c);
void net_rstop(conn *c);

/* }====================================================== */

/* {====================================================== pipes */

/* The hooks of net_pipe.c, called only when c->pipe is set. */
/* Plaintext of c (net_deliver): 1 when the pipe took it, 0 when c is no
** source of the pipe (read as usual). */
int net_pipe_data(conn *c, const char *p, size_t n);
/* c's input ended or failed (net_wake_reader): 1 when the pipe took the
** news (c is its source). */
int net_pipe_input(conn *c);
/* A write request of c left (write_cb). */
void net_pipe_written(conn *c);
/* c is being closed or freed: its pipe ends; wake: resume the task. */
void net_pipe_gone(conn *c, int wake);

/* }====================================================== */

/* The openers, called with the module table at -2 and the core at -1
** (left there): each adds its functions with net_setfuncs (upvalue 1:
** the core) and its methods to the socket kinds (net_add_methods). */
void net_setfuncs(lua_State *L, const luaL_Reg *l);
void net_sched_open(lua_State *L);
void net_conn_open(lua_State *L);
void net_read_open(lua_State *L);
void net_write_open(lua_State *L);
void net_listen_open(lua_State *L);
void net_dns_open(lua_State *L);
void net_udp_open(lua_State *L);
/* The socket of a udp conn made with none (net.udp{}), made now: 0 or a
** status (net_udp.c). */
int net_udp_socket(conn *c, int family);
void net_proxy_open(lua_State *L);
void net_tls_open(lua_State *L);     /* tls_conn.c */
void net_pipe_open(lua_State *L);

#endif
