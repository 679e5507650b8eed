/*
** xfer.h: what crosses from one Lua state to another running on another
** thread (uv.new_thread, uv.queue_work, async_send, task.thread): values
** copied into C memory, and the states themselves ("substates").
** See Copyright Notice in README.md
*/
#ifndef LH_XFER_H
#define LH_XFER_H

#include "common.h"

/* {====================================================== values */

/*
** Values are encoded into a malloc'd buffer that any thread may decode:
** nil, booleans, integers and floats (kept apart), strings, light
** userdata, thread values (by id), and async handles (passed by
** reference: the receiving state gets a handle whose send wakes the
** original loop). Tables of those are copied too when LH_XFER_TABLES is
** given (task.thread does; luv does not).
** An async handle in a buffer holds a reference until lh_xfer_free.
*/
#define LH_XFER_TABLES 1   /* copy tables (no cycles, nesting <= 100) */
#define LH_XFER_ARGS 2     /* a value that cannot cross is a bad argument */

/* luv copies at most this many values per crossing; more are dropped. */
#define LH_XFER_MAXARGS 9

typedef struct lh_buf {
  char *p;
  size_t n, cap;
  void **refs;          /* async handles referenced by the data */
  int nrefs, refcap;
} lh_buf;

/* Encode the n values from first into b (empty on entry). Raises, leaving
** b empty, on a value that cannot cross or on out of memory. */
void lh_xfer_put(lua_State *L, int first, int n, int flags, lh_buf *b);
/* Push every value of b; returns how many. Raises on out of memory. */
int lh_xfer_push(lua_State *L, const lh_buf *b);
/* Release the memory and the references; b is empty afterwards. */
void lh_xfer_free(lh_buf *b);

/* Async handles across threads (watchers.c). share: the shared side of
** the async at idx (a handle of this state or one received from another),
** with a new reference; NULL if idx holds no open async. push: a handle
** for it in L (the original box when L owns it), taking its own
** reference. release: drop a reference. */
void *lh_async_share(lua_State *L, int idx);
void lh_async_push(lua_State *L, void *shared);
void lh_async_release(void *shared);

/* Thread values (thread.c) cross by id, as luv copies them: the copy
** compares equal and prints the same, but only the state that made a
** thread can join it. get: 1 and the id if idx holds a thread value. */
int lh_thread_get(lua_State *L, int idx, uv_thread_t *tid);
void lh_thread_push(lua_State *L, uv_thread_t tid);

/* }====================================================== */

/* {====================================================== substates */

/*
** A substate is a fresh Lua state for code on another thread: standard
** libraries, and uv/luv with a loop of its own (luv's rule). The thread or
** job that runs it owns an lh_sub, through which the loop thread asks it
** to stop when the host exits: the flag is read by a count hook (a busy
** computation raises "cancelled") and the wake-up stops its loop (a
** uv.run waiting for events raises the same).
*/
typedef struct lh_sub lh_sub;
struct lh_sub {
  uv_mutex_t mutex;
  int cancel;              /* atomic: set once, by the loop thread */
  uv_async_t *wake;        /* the substate's wake-up while it lives */
  /* loop-thread side: the host's list of what runs on other threads */
  struct lh_subs *reg;
  lh_sub *prev, *next;
  void (*on_exit)(lh_sub *s); /* at host exit, after cancel: join/cancel */
};

/* 0, or a libuv error code. */
int lh_sub_init(lh_sub *s);
void lh_sub_destroy(lh_sub *s);
/* Ask it to stop (any thread but its own). */
void lh_sub_cancel(lh_sub *s);
/* Has the host asked this state to stop? (In the substate's thread.) */
int lh_sub_cancelled(lh_sub *s);
/* Add to / remove from the list of the state L's host; at host exit every
** one still listed is cancelled, then its on_exit runs, then it is
** unlisted (reg becomes NULL). */
void lh_sub_track(lua_State *L, lh_sub *s);
void lh_sub_untrack(lh_sub *s);
/* Ask every listed substate of L's host whose on_exit is `only` to stop
** now (os.exit without close: see host/runtime.c). */
void lh_subs_cancel(lua_State *L, void (*only)(lh_sub *s));

/* host/runtime.c: open a substate for s (NULL when memory runs out) and
** close it (closes its handles, runs their close callbacks, closes its
** loop and frees everything). A substate may serve several owners in
** turn (work items reuse them): detach it from one, attach it to the
** next; s may be NULL at open. */
lua_State *lh_substate_open(lh_sub *s);
void lh_substate_close(lua_State *T);
void lh_substate_attach(lua_State *T, lh_sub *s);
void lh_substate_detach(lua_State *T);

/* Load code (a dumped function or source) as a function; returns the
** lua_load status, the function or the message on top. */
int lh_load_code(lua_State *T, const char *code, size_t len,
                 const char *chunkname);
/* Copy the function or source string at idx into a malloc'd block. */
char *lh_dump_code(lua_State *L, int idx, size_t *len);

/* }====================================================== */

#endif
