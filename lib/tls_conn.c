/*
** tls_conn.c: the TLS engine (tls_engine.c) under a net conn's read and
** write: a byte transport (net_core.h, "transport") whose on_data feeds
** the ciphertext to the engine, drives the handshake and hands the
** plaintext to net_deliver, and whose write encrypts and sends with
** net_send. Lua sees plaintext only; read, lines, write, shutdown,
** close, timeouts and backpressure are net's own.
** See Copyright Notice in README.md
**
** The handshake runs as the bytes arrive, whether a task waits or not;
** conn:handshake([secs]) waits for its end (the reader's slot) and is
** what net.connect, serve and starttls call. Plaintext written before the
** handshake ends is kept and sent right after it.
*/
#include <stdlib.h>
#include <string.h>

#include "net_core.h"
#include "tls.h"

#define PLAIN_CHUNK 16384 /* one record's worth of plaintext per read */

typedef struct tconn {
  tlse *e;
  char *pend;          /* plaintext written before the handshake ended */
  size_t plen, pcap;
  int shut;            /* shutdown asked before the handshake ended */
} tconn;

static const lh_transport tls_transport;

static tconn *tls_of(conn *c) {
  return c != NULL && c->kind == K_STREAM && c->tp == &tls_transport
             ? (tconn *)c->tpdata
             : NULL;
}

/* Send what the engine produced (net_send copies what cannot go now). */
static int pump(conn *c, tconn *tc) {
  const char *p;
  size_t n = tlse_out(tc->e, &p);
  uv_buf_t b;
  int r;
  if (n == 0) return 0;
  if (uv_is_closing(c->h->uv)) {
    tlse_out_done(tc->e, n);
    return 0;
  }
  b = uv_buf_init((char *)p, (unsigned)n);
  r = net_send(c, &b, 1);
  tlse_out_done(tc->e, n);
  return r;
}

/* Plaintext is encrypted and handed to the socket WRITE_SLICE bytes at a
** time: the engine's output buffer then stays near one slice (allocated
** once per write, from the heap) instead of growing by doubling to the
** size of the whole write, each realloc copying what came before
** (measured on a 64 MiB download in 256 KiB writes: the reallocs copied
** 0.8 bytes per byte sent, the buffers were fresh mmaps). */
#define WRITE_SLICE 65536

static int send_plain(conn *c, tconn *tc, const char *p, size_t n) {
  do {
    size_t k = n < WRITE_SLICE ? n : WRITE_SLICE;
    int r = tlse_write(tc->e, p, k);
    if (r != TLSE_OK)
      return strcmp(tlse_errmsg(tc->e), "not enough memory") == 0
                 ? UV_ENOMEM : NET_ETRANSPORT;
    if ((r = pump(c, tc)) < 0) return r;
    p += k;
    n -= k;
  } while (n > 0);
  return 0;
}

/* The handshake just ended: what was written meanwhile goes now. */
static int after_handshake(conn *c, tconn *tc) {
  int r = 0;
  if (tc->plen > 0) r = send_plain(c, tc, tc->pend, tc->plen);
  free(tc->pend);
  tc->pend = NULL;
  tc->plen = tc->pcap = 0;
  if (r == 0 && tc->shut) {
    tlse_close_notify(tc->e);
    r = pump(c, tc);
    if (r == 0) r = net_shutdown(c);
  }
  return r;
}

/* Run the engine over what it was fed: the handshake, then plaintext for
** the reader. Stops when c is closed or changes transport meanwhile (a
** reader woken here runs Lua). */
static int drive(conn *c, tconn *tc) {
  lua_State *L = c->K->ctx->L;
  char buf[PLAIN_CHUNK];
  int r, s;
  if (!tlse_done(tc->e)) {
    r = tlse_handshake(tc->e, L);
    s = pump(c, tc);
    if (r == TLSE_ERR) {
      /* what was written meanwhile cannot go: a write error too, for a
      ** writer or pipe waiting on it (the caller wakes the reader) */
      if (tc->plen > 0 && !c->werr) {
        c->werr = NET_ETRANSPORT;
        net_written(c);
      }
      return NET_ETRANSPORT;
    }
    if (s < 0) return s;
    if (r != TLSE_OK) return 0; /* more from the peer first */
    s = tc->plen > 0;
    if ((r = after_handshake(c, tc)) < 0) return r;
    net_wake_reader(L, c); /* the task in handshake(), if any */
    if (c->closed || tls_of(c) != tc) return 0;
    if (s) { /* what was held went on: a writer or pipe may go on too */
      net_written(c);
      if (c->closed || tls_of(c) != tc) return 0;
    }
  }
  for (;;) {
    size_t got = 0;
    r = tlse_read(tc->e, buf, sizeof(buf), &got);
    if (r == TLSE_OK) {
      if ((s = net_deliver(c, buf, got)) < 0) return s;
      if (c->closed || tls_of(c) != tc) return 0;
      continue;
    }
    s = pump(c, tc); /* tickets, key updates, alerts */
    if (r == TLSE_CLOSED) return UV_EOF; /* close_notify */
    if (r == TLSE_ERR) return NET_ETRANSPORT;
    if (s < 0) return s;
    break;
  }
  tlse_idle(tc->e);
  return 0;
}

/* {====================================================== transport */

static int t_on_data(conn *c, const char *p, size_t n) {
  tconn *tc = (tconn *)c->tpdata;
  if (tlse_feed(tc->e, p, n) < 0) return UV_ENOMEM;
  return drive(c, tc);
}

static int t_on_end(conn *c, int status) {
  tconn *tc = (tconn *)c->tpdata;
  if (status != UV_EOF) return status;
  return tlse_peer_eof(tc->e) == TLSE_CLOSED ? UV_EOF : NET_ETRANSPORT;
}

static int t_write(conn *c, const uv_buf_t *bufs, int nb) {
  tconn *tc = (tconn *)c->tpdata;
  size_t total = 0;
  int i, r;
  for (i = 0; i < nb; i++) total += bufs[i].len;
  if (!tlse_done(tc->e)) { /* kept until the handshake ends */
    size_t need = tc->plen + total;
    if (need > tc->pcap) {
      size_t ncap = tc->pcap ? tc->pcap : 1024;
      char *np;
      while (ncap < need) ncap *= 2;
      np = (char *)realloc(tc->pend, ncap);
      if (np == NULL) return UV_ENOMEM;
      tc->pend = np;
      tc->pcap = ncap;
    }
    for (i = 0; i < nb; i++) {
      memcpy(tc->pend + tc->plen, bufs[i].base, bufs[i].len);
      tc->plen += bufs[i].len;
    }
    return 0;
  }
  if (nb > 1 && total <= PLAIN_CHUNK) { /* small pieces: one record */
    char buf[PLAIN_CHUNK];
    size_t off = 0;
    for (i = 0; i < nb; i++) {
      memcpy(buf + off, bufs[i].base, bufs[i].len);
      off += bufs[i].len;
    }
    r = send_plain(c, tc, buf, off);
  } else {
    r = 0;
    for (i = 0; i < nb && r == 0; i++)
      r = send_plain(c, tc, bufs[i].base, bufs[i].len);
  }
  if (r == 0) tlse_idle(tc->e);
  return r;
}

static int t_shutdown(conn *c) {
  tconn *tc = (tconn *)c->tpdata;
  int r;
  if (!tlse_done(tc->e)) {
    tc->shut = 1;
    return 0;
  }
  tlse_close_notify(tc->e);
  if ((r = pump(c, tc)) < 0) return r;
  return net_shutdown(c);
}

static void t_close(conn *c) {
  tconn *tc = (tconn *)c->tpdata;
  if (tlse_done(tc->e)) {
    tlse_close_notify(tc->e);
    pump(c, tc);
  }
}

static void t_free(conn *c) {
  tconn *tc = (tconn *)c->tpdata;
  c->tpdata = NULL;
  if (tc == NULL) return;
  tlse_free(tc->e);
  free(tc->pend);
  free(tc);
}

static size_t t_held(conn *c) {
  tconn *tc = (tconn *)c->tpdata;
  return tc != NULL ? tc->plen : 0;
}

static const char *t_errmsg(conn *c) {
  tconn *tc = (tconn *)c->tpdata;
  return tc != NULL ? tlse_errmsg(tc->e) : "tls: protocol error";
}

static const lh_transport tls_transport = {
  "tls", t_on_data, t_on_end, t_write, t_shutdown, t_close, t_free,
  t_errmsg, t_held
};

/* }====================================================== */

/* {====================================================== Lua */

/* tls_attach(conn, ctx, server, host, port): run TLS on conn from now
** on (the input not yet read is the first ciphertext): true, or nil,
** err. The handshake starts (a client sends its hello). */
static int core_tls_attach(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  tls_ctx *t = tls_check_ctx(L, 2);
  int server = lua_toboolean(L, 3);
  const char *host = luaL_optstring(L, 4, NULL);
  int port = (int)luaL_optinteger(L, 5, 0);
  char err[256];
  tconn *tc;
  size_t fed;
  int r;
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->tp != &net_plain)
    return luaL_error(L, "starttls: the connection runs TLS already");
  if (server && !t->has_cert)
    return luaL_error(L, "tls: a server context needs cert and key");
  if (X_OLEN(c) > 0 && net_flush_out(c) < 0) /* plaintext batch first */
    return net_fail_str(L, net_conn_errname(c, c->werr));
  tc = (tconn *)calloc(1, sizeof(tconn));
  if (tc == NULL) return luaL_error(L, "not enough memory");
  tc->e = tlse_new(t, server, host, port, err, sizeof(err));
  if (tc->e == NULL) {
    free(tc);
    if (strcmp(err, "not enough memory") == 0)
      return luaL_error(L, "not enough memory");
    return net_fail_str(L, err);
  }
  fed = c->rlen;
  r = net_set_transport(c, &tls_transport, tc);
  if (r == 0 && !server && fed == 0)
    r = drive(c, tc); /* the ClientHello */
  if (r < 0 && !c->rerr) c->rerr = r;
  if (LIVE(c)) net_rstart(c);
  if (r < 0) return net_fail_str(L, net_conn_errname(c, r));
  lua_pushboolean(L, 1);
  return 1;
}

/* (the context: the deadline in ms of the loop clock, 0 for none) */
static int handshake_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  uint64_t due = (uint64_t)kc, now;
  tconn *tc;
  (void)status;
  int how = net_was_cancelled(L, 2);
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if ((tc = tls_of(c)) == NULL)
    return luaL_error(L, "handshake: not a TLS connection");
  if (tlse_done(tc->e)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (c->rerr) {
    if (c->rerr == UV_EOF)
      return net_fail_str(L, "tls: the peer closed the connection during "
                          "the handshake");
    return net_fail_str(L, net_conn_errname(c, c->rerr));
  }
  now = net_now(c->K);
  if (c->rtimed || (due != 0 && now >= due)) {
    c->rtimed = 0;
    return net_fail_str(L, "tls: handshake timed out");
  }
  net_rstart(c);
  if (c->rerr) return net_fail_str(L, net_conn_errname(c, c->rerr));
  return net_park_reader(L, c, due ? (int)(due - now) : -1, kc,
                         handshake_k, "handshake");
}

/* handshake([secs]): wait for the end of the handshake: true, or nil,
** err ("tls: handshake timed out", a verification failure...). The
** default deadline is the context's handshake_timeout. */
static int conn_handshake(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  tconn *tc = tls_of(c);
  uint64_t due = 0;
  int ms;
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (tc == NULL) return luaL_error(L, "handshake: not a TLS connection");
  if (lua_isnoneornil(L, 2)) {
    ms = tlse_handshake_ms(tc->e);
  } else {
    double s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s == s, 2, "invalid timeout");
    ms = s < 0 ? -1 : net_secs_to_ms(s);
  }
  if (ms >= 0) due = net_now(c->K) + (uint64_t)ms + (ms == 0);
  lua_settop(L, 1);
  return handshake_k(L, LUA_OK, (lua_KContext)due);
}

/* tlsinfo(): {version, cipher, alpn, servername, resumed, peer = {...}}
** once the handshake is done; nil for a plain connection or before. */
static int conn_tlsinfo(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  tconn *tc = LIVE(c) ? tls_of(c) : NULL;
  if (tc == NULL || !tlse_done(tc->e)) {
    lua_pushnil(L);
    return 1;
  }
  tlse_push_info(L, tc->e);
  return 1;
}

/* tls_running(conn) -> boolean: conn runs TLS (net.lua's starttls asks
** first, to raise at its caller's line). */
static int core_tls_running(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_pushboolean(L, LIVE(c) && c->tp != &net_plain);
  return 1;
}

static const luaL_Reg tls_functions[] = {
  {"tls_attach", core_tls_attach},
  {"tls_running", core_tls_running},
  {NULL, NULL}
};

static const luaL_Reg tls_methods[] = {
  {"handshake", conn_handshake},
  {"tlsinfo", conn_tlsinfo},
  {NULL, NULL}
};

void net_tls_open(lua_State *L) {
  net_setfuncs(L, tls_functions);
  net_add_methods(L, K_STREAM, tls_methods);
}

/* }====================================================== */
