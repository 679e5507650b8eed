/*
** tls_engine.c: one TLS session over a byte stream, without I/O.
** See Copyright Notice in README.md
**
** The SSL object reads and writes through a custom BIO over two plain
** buffers of the engine: `in` holds ciphertext fed from the socket and not
** yet consumed, `out` the ciphertext OpenSSL produced and the caller has
** not yet sent. Both are freed when empty (tlse_idle), and so are
** OpenSSL's own record buffers (SSL_free_buffers): an idle connection
** keeps only the SSL object and its session.
**
** The engine also tracks TLS record boundaries in what it was fed, to tell
** a peer that closed between records ("closed", with or without
** close_notify: OpenSSL 3 calls both "unexpected eof") from one that cut
** a record short (an error: the data is truncated).
**
** Sections: bio, records, session, errors, info.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include <lauxlib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls.h"

#define IN_KEEP 16384   /* an input buffer this small is kept while busy */
/* The most a record adds to its plaintext: TLS 1.3 5 + 1 + 16, TLS 1.2
** AEAD 5 + 8 + 16, CBC 5 + IV 16 + MAC up to 64 + padding up to 16. */
#define RECORD_COST 128

struct tlse {
  SSL *ssl;
  tls_ctx *t;            /* the context it began on (SSL holds a ref) */
  lua_State *L;          /* the thread driving a handshake (SNI fn) */
  char *in;              /* ciphertext received, not yet consumed */
  size_t inoff, inlen, incap;
  char *out;             /* ciphertext produced, not yet taken */
  size_t outoff, outlen, outcap;
  unsigned char hdr[5];  /* record tracking over fed bytes */
  size_t hdrlen, body;   /* header bytes seen, body bytes still due */
  int server, done, failed, closing, oom, verify;
  char *host;            /* as given: message, verification */
  char *skey;            /* client session key: host\0port\0alpn */
  size_t skeylen;
  char err[256];
};

SSL_SESSION *tls_ctx_session(tls_ctx *t, const char *key, size_t klen);

/* {====================================================== bio */

static BIO_METHOD *bio_method;       /* made once, immutable after */
static CRYPTO_ONCE bio_once = CRYPTO_ONCE_STATIC_INIT;

static int grow(char **buf, size_t *cap, size_t need) {
  size_t ncap = *cap ? *cap : 4096;
  char *nb;
  while (ncap < need) ncap *= 2;
  if (ncap == *cap) return 0;
  nb = (char *)realloc(*buf, ncap);
  if (nb == NULL) return -1;
  *buf = nb;
  *cap = ncap;
  return 0;
}

static int bio_write(BIO *b, const char *p, int n) {
  tlse *e = (tlse *)BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (n <= 0) return 0;
  if (e->outoff > 0 && e->outoff == e->outlen) e->outoff = e->outlen = 0;
  if (grow(&e->out, &e->outcap, e->outlen + (size_t)n) < 0) {
    e->oom = 1;
    return -1;
  }
  memcpy(e->out + e->outlen, p, (size_t)n);
  e->outlen += (size_t)n;
  return n;
}

static int bio_read(BIO *b, char *p, int n) {
  tlse *e = (tlse *)BIO_get_data(b);
  size_t m;
  BIO_clear_retry_flags(b);
  if (e->inlen == 0) {
    BIO_set_retry_read(b); /* WANT_READ: the caller feeds more */
    return -1;
  }
  m = (size_t)n < e->inlen ? (size_t)n : e->inlen;
  memcpy(p, e->in + e->inoff, m);
  e->inoff += m;
  e->inlen -= m;
  if (e->inlen == 0) e->inoff = 0;
  return (int)m;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  tlse *e = (tlse *)BIO_get_data(b);
  (void)num; (void)ptr;
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return (long)e->inlen;
    case BIO_CTRL_WPENDING: return (long)(e->outlen - e->outoff);
    default: return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void make_method(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "luahost buffers");
  if (m == NULL) return;
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  bio_method = m;
}

/* }====================================================== */

/* {====================================================== records */

/* Follow the record framing of fed bytes: 5-byte headers, then the
** length they announce. Only the position is kept, not the bytes. */
static void track(tlse *e, const unsigned char *p, size_t n) {
  while (n > 0) {
    if (e->body > 0) {
      size_t k = n < e->body ? n : e->body;
      e->body -= k;
      p += k;
      n -= k;
    } else {
      e->hdr[e->hdrlen++] = *p++;
      n--;
      if (e->hdrlen == 5) {
        e->body = ((size_t)e->hdr[3] << 8) | e->hdr[4];
        e->hdrlen = 0;
      }
    }
  }
}

int tlse_feed(tlse *e, const char *p, size_t n) {
  if (n == 0) return 0;
  track(e, (const unsigned char *)p, n);
  if (e->inlen == 0) e->inoff = 0;
  if (e->inoff > 0 && e->inoff + e->inlen + n > e->incap) {
    memmove(e->in, e->in + e->inoff, e->inlen);
    e->inoff = 0;
  }
  if (grow(&e->in, &e->incap, e->inoff + e->inlen + n) < 0) return -1;
  memcpy(e->in + e->inoff + e->inlen, p, n);
  e->inlen += n;
  return 0;
}

static int set_err(tlse *e, const char *fmt, const char *a, const char *b);

int tlse_peer_eof(tlse *e) {
  if (e->hdrlen == 0 && e->body == 0 && e->done) return TLSE_CLOSED;
  if (!e->done)
    set_err(e, "tls: the peer closed the connection during the handshake",
            NULL, NULL);
  else
    set_err(e, "tls: truncated record (the peer closed the connection "
            "mid-record)", NULL, NULL);
  return TLSE_ERR;
}

/* }====================================================== */

/* {====================================================== session */

/* An IP literal (v4, or v6 with or without a zone): no SNI for it, and
** the certificate is checked for the address, not a name. */
static int is_ip(const char *h) {
  struct in_addr a4;
  return h != NULL &&
         (strchr(h, ':') != NULL || inet_pton(AF_INET, h, &a4) == 1);
}

lua_State *tlse_lua_of(SSL *ssl);
lua_State *tlse_lua_of(SSL *ssl) {
  tlse *e = (tlse *)SSL_get_app_data(ssl);
  return e != NULL ? e->L : NULL;
}

const char *tlse_session_key(SSL *ssl, size_t *len);
const char *tlse_session_key(SSL *ssl, size_t *len) {
  tlse *e = (tlse *)SSL_get_app_data(ssl);
  if (e == NULL || e->skey == NULL) return NULL;
  *len = e->skeylen;
  return e->skey;
}

/* Client: SNI for a host name (never an IP literal, RFC 6066 3), the
** name or address checked against the certificate, a cached session
** offered. */
static int client_setup(tlse *e, int port) {
  tls_ctx *t = e->t;
  const char *name = t->servername ? t->servername : e->host;
  char portbuf[16];
  size_t hl, pl;
  SSL_SESSION *s;
  if (name != NULL && !is_ip(name) &&
      SSL_set_tlsext_host_name(e->ssl, name) != 1)
    return -1;
  if (e->verify) {
    SSL_set_verify(e->ssl, SSL_VERIFY_PEER, NULL);
    if (name == NULL || *name == '\0') {
      /* nothing to check the certificate against: refuse rather than
      ** accept any valid certificate for any name */
      set_err(e, "tls: no host name to verify (give servername)", NULL,
              NULL);
      return -1;
    }
    if (is_ip(name)) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(e->ssl), name) != 1)
        return -1;
    } else {
      SSL_set_hostflags(e->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set1_host(e->ssl, name) != 1) return -1;
    }
  } else {
    SSL_set_verify(e->ssl, SSL_VERIFY_NONE, NULL);
  }
  if (t->client_cache > 0 && e->host != NULL) {
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    hl = strlen(e->host) + 1;
    pl = strlen(portbuf) + 1;
    e->skeylen = hl + pl + t->alpn_len;
    e->skey = (char *)malloc(e->skeylen);
    if (e->skey == NULL) return -1;
    memcpy(e->skey, e->host, hl);
    memcpy(e->skey + hl, portbuf, pl);
    if (t->alpn_len) memcpy(e->skey + hl + pl, t->alpn, t->alpn_len);
    s = tls_ctx_session(t, e->skey, e->skeylen);
    if (s != NULL) SSL_set_session(e->ssl, s);
  }
  SSL_set_connect_state(e->ssl);
  return 0;
}

tlse *tlse_new(tls_ctx *t, int server, const char *host, int port,
               char *err, size_t errlen) {
  tlse *e;
  BIO *b;
  CRYPTO_THREAD_run_once(&bio_once, make_method);
  e = (tlse *)calloc(1, sizeof(tlse));
  if (e == NULL || bio_method == NULL) goto oom;
  e->t = t;
  e->server = server;
  e->verify = server ? (t->verify == TLSV_PEER || t->verify == TLSV_REQUIRE)
                     : t->verify != TLSV_NONE;
  if (host != NULL && (e->host = strdup(host)) == NULL) goto oom;
  e->ssl = SSL_new(t->ssl);
  b = BIO_new(bio_method);
  if (e->ssl == NULL || b == NULL) {
    BIO_free(b);
    goto oom;
  }
  BIO_set_data(b, e);
  SSL_set_bio(e->ssl, b, b); /* one reference, taken by the SSL */
  SSL_set_app_data(e->ssl, e);
  if (server) {
    int mode = SSL_VERIFY_NONE;
    if (t->verify == TLSV_PEER) mode = SSL_VERIFY_PEER;
    if (t->verify == TLSV_REQUIRE)
      mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_set_verify(e->ssl, mode | (mode ? SSL_VERIFY_CLIENT_ONCE : 0),
                   NULL);
    SSL_set_accept_state(e->ssl);
  } else if (client_setup(e, port) < 0) {
    if (e->err[0] == '\0') goto oom;
    snprintf(err, errlen, "%s", e->err);
    tlse_free(e);
    return NULL;
  }
  return e;
oom:
  snprintf(err, errlen, "not enough memory");
  ERR_clear_error();
  tlse_free(e);
  return NULL;
}

void tlse_free(tlse *e) {
  if (e == NULL) return;
  SSL_free(e->ssl); /* and its BIO */
  free(e->in);
  free(e->out);
  free(e->host);
  free(e->skey);
  free(e);
}

int tlse_done(const tlse *e) { return e->done; }

int tlse_handshake_ms(const tlse *e) { return e->t->handshake_ms; }

/* }====================================================== */

/* {====================================================== errors */

static int set_err(tlse *e, const char *fmt, const char *a, const char *b) {
  if (!e->failed) snprintf(e->err, sizeof(e->err), fmt, a, b);
  e->failed = 1;
  return TLSE_ERR;
}

/* After a failed call: name the reason. A verification failure says
** what OpenSSL found wrong with the certificate and which host it was
** checked for ("unable to get local issuer certificate" means: give ca =,
** never verify = false). */
static int fail(tlse *e) {
  unsigned long code = ERR_peek_last_error();
  long v = SSL_get_verify_result(e->ssl);
  const char *who = e->server ? "client certificate"
                              : (e->t->servername ? e->t->servername
                                                  : e->host);
  if (e->oom) {
    ERR_clear_error();
    return set_err(e, "not enough memory", NULL, NULL);
  }
  if (e->verify && v != X509_V_OK &&
      ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    ERR_clear_error();
    return set_err(e, "tls: certificate verify failed: %s (%s)",
                   X509_verify_cert_error_string(v), who ? who : "?");
  }
  if (code != 0) {
    const char *why = ERR_reason_error_string(code);
    char buf[64];
    if (why == NULL) {
      snprintf(buf, sizeof(buf), "error %lu", code);
      why = buf;
    }
    ERR_clear_error();
    return set_err(e, "tls: %s%s", why, "");
  }
  return set_err(e, "tls: protocol error", NULL, NULL);
}

static int outcome(tlse *e, int r) {
  switch (SSL_get_error(e->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return e->oom ? fail(e) : TLSE_WANT;
    case SSL_ERROR_ZERO_RETURN:
      return TLSE_CLOSED;
    default:
      return fail(e);
  }
}

int tlse_handshake(tlse *e, lua_State *L) {
  int r;
  if (e->failed) return TLSE_ERR;
  if (e->done) return TLSE_OK;
  ERR_clear_error();
  e->L = L;
  r = SSL_do_handshake(e->ssl);
  e->L = NULL;
  if (r == 1) {
    e->done = 1;
    return TLSE_OK;
  }
  return outcome(e, r);
}

int tlse_read(tlse *e, char *buf, size_t cap, size_t *got) {
  size_t n = 0;
  *got = 0;
  if (e->failed) return TLSE_ERR;
  ERR_clear_error();
  if (SSL_read_ex(e->ssl, buf, cap, &n) == 1) {
    *got = n;
    return TLSE_OK;
  }
  return outcome(e, 0);
}

int tlse_write(tlse *e, const char *p, size_t n) {
  size_t w, need;
  if (e->failed) return TLSE_ERR;
  if (n == 0) return TLSE_OK;
  /* Room for all the records at once (each adds at most RECORD_COST):
  ** one allocation, not a doubling from 4 KiB that copies at each step.
  ** (Failing, bio_write grows it or fails.) */
  if (e->outoff > 0 && e->outoff == e->outlen) e->outoff = e->outlen = 0;
  need = e->outlen + n + (n / 16384 + 1) * RECORD_COST;
  if (need > e->outcap) {
    char *nb = (char *)realloc(e->out, need);
    if (nb != NULL) {
      e->out = nb;
      e->outcap = need;
    }
  }
  ERR_clear_error();
  /* The BIO takes everything, so one call encrypts it all. */
  if (SSL_write_ex(e->ssl, p, n, &w) == 1 && w == n) return TLSE_OK;
  return outcome(e, 0) == TLSE_WANT ? fail(e) : TLSE_ERR;
}

void tlse_close_notify(tlse *e) {
  if (e->failed || e->closing || !e->done) return;
  e->closing = 1;
  ERR_clear_error();
  SSL_shutdown(e->ssl); /* queues close_notify; the reply is not awaited */
  ERR_clear_error();
}

size_t tlse_out(tlse *e, const char **p) {
  *p = e->out + e->outoff;
  return e->outlen - e->outoff;
}

void tlse_out_done(tlse *e, size_t n) {
  e->outoff += n;
  if (e->outoff >= e->outlen) e->outoff = e->outlen = 0;
}

void tlse_idle(tlse *e) {
  if (e->inlen == 0 && e->in != NULL) {
    free(e->in);
    e->in = NULL;
    e->incap = e->inoff = 0;
  }
  if (e->outlen == 0 && e->out != NULL) {
    free(e->out);
    e->out = NULL;
    e->outcap = 0;
  }
  if (e->done) SSL_free_buffers(e->ssl); /* refuses while data is held */
}

const char *tlse_errmsg(const tlse *e) {
  return e->err[0] ? e->err : "tls: protocol error";
}

/* }====================================================== */

/* {====================================================== info */

static void push_name(lua_State *L, const X509_NAME *n) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p;
  long len;
  if (b == NULL || X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) < 0) {
    BIO_free(b);
    lua_pushnil(L);
    return;
  }
  len = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, (size_t)len);
  BIO_free(b);
}

/* not_after as "YYYY-MM-DDTHH:MM:SSZ". */
static void push_time(lua_State *L, const ASN1_TIME *at) {
  struct tm tm;
  char buf[32];
  if (at == NULL || ASN1_TIME_to_tm(at, &tm) != 1) {
    lua_pushnil(L);
    return;
  }
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  lua_pushstring(L, buf);
}

/* x in PEM (ssl.lua makes LuaSec's x509 objects of it, tls_x509.c). */
static void push_pem(lua_State *L, X509 *x) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p = NULL;
  long len = 0;
  if (b != NULL && PEM_write_bio_X509(b, x) == 1)
    len = BIO_get_mem_data(b, &p);
  if (len > 0) lua_pushlstring(L, p, (size_t)len);
  else lua_pushnil(L);
  BIO_free(b);
}

/* The chain the peer sent, leaf first: {{subject=, issuer=, pem=}...}. */
static void push_chain(lua_State *L, tlse *e) {
  STACK_OF(X509) *sk = SSL_get_peer_cert_chain(e->ssl);
  int i, n = sk ? sk_X509_num(sk) : 0;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    X509 *x = sk_X509_value(sk, i);
    lua_createtable(L, 0, 3);
    push_name(L, X509_get_subject_name(x));
    lua_setfield(L, -2, "subject");
    push_name(L, X509_get_issuer_name(x));
    lua_setfield(L, -2, "issuer");
    push_pem(L, x);
    lua_setfield(L, -2, "pem");
    lua_rawseti(L, -2, i + 1);
  }
}

static void push_peer(lua_State *L, tlse *e) {
  X509 *x = SSL_get1_peer_certificate(e->ssl);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0, i;
  char hex[EVP_MAX_MD_SIZE * 3 + 1];
  if (x == NULL) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 5);
  push_name(L, X509_get_subject_name(x));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(x));
  lua_setfield(L, -2, "issuer");
  push_time(L, X509_get0_notAfter(x));
  lua_setfield(L, -2, "not_after");
  lua_pushboolean(L, e->verify &&
                     SSL_get_verify_result(e->ssl) == X509_V_OK);
  lua_setfield(L, -2, "verified");
  if (SSL_get_verify_result(e->ssl) != X509_V_OK) { /* verify = false */
    lua_pushstring(L, X509_verify_cert_error_string(
                        SSL_get_verify_result(e->ssl)));
    lua_setfield(L, -2, "verify_error");
  }
  if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1) {
    for (i = 0; i < mdlen; i++)
      snprintf(hex + 3 * i, 4, "%02X%s", md[i], i + 1 < mdlen ? ":" : "");
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "fingerprint");
  }
  push_pem(L, x);
  lua_setfield(L, -2, "pem");
  X509_free(x);
  push_chain(L, e);
  lua_setfield(L, -2, "chain");
}

void tlse_push_info(lua_State *L, tlse *e) {
  const unsigned char *alpn = NULL;
  unsigned alen = 0;
  const char *sn = SSL_get_servername(e->ssl, TLSEXT_NAMETYPE_host_name);
  lua_createtable(L, 0, 7);
  lua_pushstring(L, SSL_get_version(e->ssl));
  lua_setfield(L, -2, "version");
  lua_pushstring(L, SSL_get_cipher_name(e->ssl));
  lua_setfield(L, -2, "cipher");
  {
    /* (OpenSSL's one-line description and sizes: ssl.lua's info() reads
    ** LuaSec's fields from them, as LuaSec does) */
    const SSL_CIPHER *c = SSL_get_current_cipher(e->ssl);
    char desc[256];
    int algbits = 0;
    if (c != NULL && SSL_CIPHER_description(c, desc, (int)sizeof desc)) {
      lua_pushstring(L, desc);
      lua_setfield(L, -2, "cipher_description");
      lua_pushinteger(L, SSL_CIPHER_get_bits(c, &algbits));
      lua_setfield(L, -2, "cipher_bits");
      lua_pushinteger(L, algbits);
      lua_setfield(L, -2, "cipher_algbits");
    }
  }
  SSL_get0_alpn_selected(e->ssl, &alpn, &alen);
  if (alen > 0) {
    lua_pushlstring(L, (const char *)alpn, alen);
    lua_setfield(L, -2, "alpn");
  }
  if (sn != NULL) {
    lua_pushstring(L, sn);
    lua_setfield(L, -2, "servername");
  }
  lua_pushboolean(L, SSL_session_reused(e->ssl));
  lua_setfield(L, -2, "resumed");
  lua_pushboolean(L, e->server);
  lua_setfield(L, -2, "server");
  push_peer(L, e);
  lua_setfield(L, -2, "peer");
}

/* }====================================================== */
