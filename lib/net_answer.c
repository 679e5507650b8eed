/*
** net_answer.c: answers given in C (netcore.h, "answers"): a server's
** net_answer, shared by the conns it accepts, asked first when input
** arrives for a conn waiting for its next request (net_deliver).
** See Copyright Notice in README.md
*/
#include <string.h>

#include "net_core.h"

void net_answer_ref(net_answer *a) { a->refs++; }

void net_answer_unref(net_answer *a) {
  if (--a->refs == 0) a->free(a);
}

void net_answer_attach(lua_State *L, int idx, net_answer *a) {
  conn *s = net_to_conn(L, idx, K_SERVER);
  if (!LIVE(s)) luaL_argerror(L, idx, "server closed");
  net_answer_ref(a);
  if (s->ans != NULL) net_answer_unref(s->ans);
  s->ans = a;
}

int net_answer_send(conn *c, const uv_buf_t *bufs, int nb) {
  int r = c->tp->write(c, bufs, nb);
  if (r < 0) {
    if (r != UV_ENOMEM && !c->werr) c->werr = r;
    return r;
  }
  return net_queued(c) > 0;
}

int net_answer_peer(conn *c, char *buf, size_t n) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), port;
  char ip[INET6_ADDRSTRLEN];
  size_t il;
  if (c->x != NULL && c->x->px != NULL) return -1;
  if (c->h->uv->type == UV_NAMED_PIPE) {
    size_t pn = n;
    if (uv_pipe_getpeername((uv_pipe_t *)c->h->uv, buf, &pn) < 0) return -1;
    return (int)pn;
  }
  if (c->h->uv->type != UV_TCP ||
      uv_tcp_getpeername((uv_tcp_t *)c->h->uv, (struct sockaddr *)&ss,
                         &len) < 0 ||
      lh_sockaddr_ip((struct sockaddr *)&ss, ip, &port) < 0)
    return -1;
  il = strlen(ip);
  if (il >= n) return -1;
  memcpy(buf, ip, il);
  return (int)il;
}

/*
** n > 0 bytes at p for c, nothing unread before them: what c's answer
** used of them (0: none). Only for a conn between two requests (resting,
** or its task in recv_wait) with no output waiting (queued, held by the
** transport, setvbuf's batch): an answer must never pass a response
** still being sent, nor grow a queue the peer does not read.
*/
size_t net_answer_run(conn *c, const char *p, size_t n) {
  net_answer *a = c->ans;
  size_t used;
  if (a->closed || c->closed || c->werr || c->into || c->skipline ||
      X_OLEN(c) > 0 ||
      !(c->resting || (c->rco != NULL && c->next)) || net_queued(c) > 0)
    return 0;
  used = a->answer(a, c, p, n);
  if (used > 0 && c->resting && !c->closed) {
    /* it was busy, not idle: its idle time starts again, and it goes to
    ** the end of the rest list (oldest first: the shelf's order) */
    uint64_t now = uv_now(c->K->ctx->loop); /* (this turn's: no clock read) */
    uint64_t ms = c->rdue != 0 ? c->rdue - c->rsince : 0;
    net_rest_unlink(c);
    c->resting = 1;
    c->rsince = now;
    if (c->rdue != 0) c->rdue = now + ms; /* (rt is lazy: net_rd_fire) */
    net_rest_link(c);
    net_shelf_rested(c->K);
  }
  return used;
}
