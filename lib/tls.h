/*
** tls.h: TLS for net, on OpenSSL 3 (the "tls" module and the engine).
** See Copyright Notice in README.md
**
** Three parts, one file each:
**   tls_context.c - require "tls": tls.context{...}, a userdata over one
**                   SSL_CTX shared by many connections (options, SNI,
**                   ALPN, the client session cache);
**   tls_engine.c  - one TLS session over a byte stream, with no I/O of
**                   its own: ciphertext is fed in and taken out through a
**                   custom BIO on two plain buffers, plaintext goes in
**                   and out through calls; errors become messages;
**   tls_conn.c    - the glue: the engine under a net conn's read/write.
*/
#ifndef LH_TLS_H
#define LH_TLS_H

#include <stddef.h>

#include <lua.h>
#include <openssl/ssl.h>

#define TLS_CTX_TNAME "tls.context"

/* Verification modes: clients verify unless verify = false; servers ask
** for a client certificate with "peer" (verified if sent) or "require". */
enum { TLSV_DEFAULT, TLSV_NONE, TLSV_PEER, TLSV_REQUIRE };

#define TLS_HANDSHAKE_MS 10000   /* default handshake_timeout */
#define TLS_CLIENT_SESSIONS 256  /* client cache entries per context */
#define TLS_SERVER_SESSIONS 20480 /* server session-id cache (TLS 1.2) */

typedef struct tls_sess {        /* one client cache entry */
  struct tls_sess *next;
  SSL_SESSION *s;
  char key[1];                   /* "host\0port\0alpn" flattened */
} tls_sess;

/*
** A context lives as long as its SSL_CTX: it hangs off the SSL_CTX's
** ex_data and is freed by OpenSSL when the last reference goes (the Lua
** userdata holds one, every connection's SSL another, and a context
** chosen by SNI is held by the SSLs it was chosen for).
*/
typedef struct tls_ctx {
  SSL_CTX *ssl;
  int verify;                    /* TLSV_* */
  int handshake_ms;
  int sni_ref;                   /* registry: sni table/function, or
                                    LUA_NOREF; released by the Lua __gc */
  lua_State *L;                  /* the state sni_ref lives in */
  char *servername;              /* client: name for SNI + verification */
  unsigned char *alpn;           /* wire format (length-prefixed names) */
  unsigned alpn_len;
  int has_cert;                  /* a certificate was loaded (server) */
  char *cert_src, *key_src;      /* what cert and key were loaded from
                                    (files or PEM text), for reload */
  int client_cache;              /* max client sessions, 0 = none */
  int nsess;
  tls_sess *sess;                /* most recent first */
} tls_ctx;

/* The context at idx: tls_check_ctx raises, tls_test_ctx gives NULL. */
tls_ctx *tls_check_ctx(lua_State *L, int idx);
tls_ctx *tls_test_ctx(lua_State *L, int idx);
/* Build a context from the options table at idx (raises on a mistake,
** returns nil, err on a failure such as an unreadable file) and push it:
** returns 1 or 2 values, as tls.context does. */
int tls_context_new(lua_State *L, int idx);
int luaopen_tls(lua_State *L);

/* {====================================================== engine */

typedef struct tlse tlse;

enum {
  TLSE_OK = 0,      /* done / data produced */
  TLSE_WANT = 1,    /* needs more input from the peer */
  TLSE_CLOSED = 2,  /* the peer sent close_notify */
  TLSE_ERR = -1     /* failed: tlse_errmsg says why */
};

/* A session on context t. server: 1 to accept, 0 to connect. host: the
** peer's name or IP as the user gave it (client: SNI unless an IP
** literal, and verification unless verify = false; both use the
** context's servername instead when set); port and host key the client
** session cache. Returns NULL with err filled on failure. */
tlse *tlse_new(tls_ctx *t, int server, const char *host, int port,
               char *err, size_t errlen);
void tlse_free(tlse *e);
/* Ciphertext from the peer (copied); 0, or -1 when out of memory. */
int tlse_feed(tlse *e, const char *p, size_t n);
/* The peer closed its side (TCP EOF): TLSE_CLOSED when it fell between
** records (close_notify or not: "closed"), TLSE_ERR mid-record. */
int tlse_peer_eof(tlse *e);
/* Drive the handshake; L is the calling thread (an SNI function runs on
** it). TLSE_OK once complete. */
int tlse_handshake(tlse *e, lua_State *L);
int tlse_done(const tlse *e);
/* Decrypt into buf: TLSE_OK with *got > 0, TLSE_WANT, TLSE_CLOSED,
** TLSE_ERR. */
int tlse_read(tlse *e, char *buf, size_t cap, size_t *got);
/* Encrypt all of p (the output grows by it): TLSE_OK or TLSE_ERR. */
int tlse_write(tlse *e, const char *p, size_t n);
/* Queue close_notify (once; nothing after a failure). */
void tlse_close_notify(tlse *e);
/* Ciphertext waiting to be sent: peek, then mark n bytes as taken. */
size_t tlse_out(tlse *e, const char **p);
void tlse_out_done(tlse *e, size_t n);
/* Give memory back while idle (no input or output buffered). */
void tlse_idle(tlse *e);
/* The reason of the last TLSE_ERR ("tls: ..."). */
const char *tlse_errmsg(const tlse *e);
/* Push the tlsinfo() table. */
void tlse_push_info(lua_State *L, tlse *e);
/* Handshake deadline of the context the session began on (ms). */
int tlse_handshake_ms(const tlse *e);

/* }====================================================== */

#endif
