/*
** netcore.h: the C core of the net and task modules ("net.core"), and
** the scheduler entry points the host uses (lib/net_sched.c).
** See Copyright Notice in README.md
*/
#ifndef NETCORE_H
#define NETCORE_H

#include "common.h"

int luaopen_net_core(lua_State *L);

/* {====================================================== tasks */

/*
** Resume coroutine co with nargs values already pushed on co. A yield is
** the normal case: its values are dropped. When co finishes or fails,
** task.lua's finish hook runs as finish(co, ok, results... | err), where err
** carries co's traceback. Resuming a coroutine that is not suspended is a
** no-op (a cancelled task that an event still refers to).
** Contracts: while a task waits on a C event, the C side must hold a strong
** reference to its coroutine (a registry ref or a user value) — task.lua
** keeps tasks only weakly; lh_resume anchors co while it runs. Before
** pushing the resume values on co, call lua_checkstack(co, n).
*/
void lh_resume(lh_ctx *ctx, lua_State *co, int nargs);
/* Start a fresh coroutine (function + nargs args on co), same outcome
** handling as lh_resume. */
void lh_start(lh_ctx *ctx, lua_State *co, int nargs);
/* Raise "what must be called from a task" unless the running coroutine
** is a task that can yield: the one check, for C outside net.core too. */
void lh_need_task(lua_State *L, const char *what);

/* }====================================================== */

/* {====================================================== answers */

/*
** A protocol's answers given in C, with no Lua: http's fixed responses
** (http.fixed, lib/http_fixed.c). An answer is attached to a server
** (net_answer_attach); every conn it accepts shares it. When plaintext
** arrives for such a conn while it waits for its next request (resting,
** net's conn:rest, or in recv_wait), with nothing unread before it and no
** output queued, answer(a, c, p, n) may answer requests from the start of
** p itself, writing with net_answer_send; it returns how many bytes it
** used (0: none). What it leaves goes to the conn's reader as before, in
** order. It must use only whole requests it would answer exactly as the
** Lua behind the conn would, and decline (stop) at anything else.
** refs: one per holder (the creator's, the server, each conn); closed:
** the server closed (net sets it): answer nothing more.
*/
struct conn;
typedef struct net_answer net_answer;
struct net_answer {
  size_t (*answer)(net_answer *a, struct conn *c, const char *p, size_t n);
  void (*free)(net_answer *a);
  int refs;
  int closed;
};
void net_answer_ref(net_answer *a);
void net_answer_unref(net_answer *a); /* free at the last reference */
/* Attach a to the net server at idx (a net.listen server); an earlier
** answer of it is let go. Raises when idx is not a live server. */
void net_answer_attach(lua_State *L, int idx, net_answer *a);
/* Send nb buffers on c (through its transport): 0 when all went at once,
** 1 when some is queued (answer no more), < 0 an error (now c's write
** error). */
int net_answer_send(struct conn *c, const uv_buf_t *bufs, int nb);
/* c's peer as conn:peername() says it first (an IP address, or a unix
** socket's path) into buf (n bytes): its length, or -1 when there is none
** to give or it came in a PROXY header (the caller leaves such a conn
** to its Lua). */
int net_answer_peer(struct conn *c, char *buf, size_t n);

/* }====================================================== */

#endif
