/*
** tls_context.c: require "tls": tls.context{...}, the shared TLS settings.
** See Copyright Notice in README.md
**
** A context wraps one SSL_CTX that many connections share. Its options
** are checked strictly (an unknown name or a wrong type raises: a typo
** must never mean "no verification"); a file that cannot be loaded returns
** nil, "tls: ...". Defaults, and why:
**   - TLS 1.2 minimum; 1.0 and 1.1 are refused outright (RFC 8996);
**   - renegotiation off (a DoS vector and never needed by HTTP/1.1 or 2);
**     no compression (CRIME);
**   - clients verify the peer against the system store (honouring
**     SSL_CERT_FILE / SSL_CERT_DIR, Debian's ca-certificates) and the host
**     name; only verify = false, written out, turns that off;
**   - sessions resume on both sides: servers keep OpenSSL's cache and
**     tickets, clients cache one session per (host, port, ALPN).
**
** Sections: options, callbacks (SNI, ALPN, new sessions), userdata.
*/
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "tls.h"

/* {====================================================== ex_data */

/* The index of tls_ctx in SSL_CTX ex_data: process-wide and immutable
** once made (OpenSSL's own registry), like the BIO method of the engine. */
static int ctx_index = -1;
static CRYPTO_ONCE ctx_once = CRYPTO_ONCE_STATIC_INIT;

static void ctx_free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
                        int idx, long argl, void *argp) {
  tls_ctx *t = (tls_ctx *)ptr;
  (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
  if (t == NULL) return;
  while (t->sess) {
    tls_sess *s = t->sess;
    t->sess = s->next;
    SSL_SESSION_free(s->s);
    free(s);
  }
  free(t->servername);
  free(t->alpn);
  free(t->cert_src);
  free(t->key_src);
  free(t);
}

static void make_index(void) {
  ctx_index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, NULL,
                                      NULL, NULL, ctx_free_ex);
}

static tls_ctx *ctx_of(const SSL_CTX *ssl) {
  return (tls_ctx *)SSL_CTX_get_ex_data(ssl, ctx_index);
}

/* }====================================================== */

/* {====================================================== callbacks */

lua_State *tlse_lua_of(SSL *ssl); /* tls_engine.c: the thread driving it */

/* SNI (server): pick the context of the name the client asked for from
** the sni table (lower-case names) or function(name) -> ctx | nil. The
** chosen context lends its certificate, key and ALPN; the rest (verify,
** limits) stays that of the listening context. A function runs on the
** thread driving the handshake and must not block; if it raises, the
** error is reported and the default certificate is used. */
static int sni_cb(SSL *ssl, int *alert, void *arg) {
  tls_ctx *t = (tls_ctx *)arg, *pick;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  lua_State *L = tlse_lua_of(ssl);
  char low[256];
  size_t i, n;
  int top;
  (void)alert;
  if (name == NULL || L == NULL || t->sni_ref == LUA_NOREF)
    return SSL_TLSEXT_ERR_OK;
  n = strlen(name);
  if (n >= sizeof(low)) return SSL_TLSEXT_ERR_OK;
  for (i = 0; i <= n; i++)
    low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32
                                                        : name[i]);
  if (!lua_checkstack(L, 4)) return SSL_TLSEXT_ERR_OK;
  top = lua_gettop(L);
  lua_pushcfunction(L, lh_msghandler);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->sni_ref);
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_getfield(L, -1, low);
  } else {
    lua_pushstring(L, low);
    if (lua_pcall(L, 1, 1, top + 1) != LUA_OK) {
      lh_report(lua_tostring(L, -1));
      lua_settop(L, top);
      return SSL_TLSEXT_ERR_OK;
    }
  }
  pick = tls_test_ctx(L, -1);
  if (pick != NULL && pick->ssl != t->ssl && pick->has_cert)
    SSL_set_SSL_CTX(ssl, pick->ssl);
  lua_settop(L, top);
  return SSL_TLSEXT_ERR_OK;
}

/* ALPN (server): the first of our protocols the client offers. With no
** overlap the handshake fails (RFC 7301 3.2: no_application_protocol);
** a client that offers none is served without ALPN. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg) {
  tls_ctx *t = (tls_ctx *)arg;
  (void)ssl;
  if (SSL_select_next_proto((unsigned char **)out, outlen, t->alpn,
                            t->alpn_len, in, inlen) == OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_OK;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

const char *tlse_session_key(SSL *ssl, size_t *len); /* tls_engine.c */

/* A new session (client): kept under the connection's (host, port,
** ALPN) key, replacing the older one; TLS 1.3 tickets arrive after the
** handshake, during a read. Servers leave theirs to OpenSSL's cache. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess) {
  tls_ctx *t = ctx_of(SSL_get_SSL_CTX(ssl));
  tls_sess *s, **pp;
  size_t klen;
  const char *key;
  if (SSL_is_server(ssl) || t == NULL || t->client_cache == 0) return 0;
  key = tlse_session_key(ssl, &klen);
  if (key == NULL || !SSL_SESSION_is_resumable(sess)) return 0;
  for (pp = &t->sess; *pp != NULL; pp = &(*pp)->next) {
    if (memcmp((*pp)->key, key, klen) == 0) { /* replace: unlink it */
      s = *pp;
      *pp = s->next;
      SSL_SESSION_free(s->s);
      free(s);
      t->nsess--;
      break;
    }
  }
  s = (tls_sess *)malloc(sizeof(tls_sess) + klen);
  if (s == NULL) return 0;
  memcpy(s->key, key, klen);
  s->s = sess; /* returning 1 keeps OpenSSL's reference for us */
  s->next = t->sess;
  t->sess = s;
  if (++t->nsess > t->client_cache) { /* drop the oldest */
    for (pp = &t->sess; (*pp)->next != NULL; pp = &(*pp)->next) {}
    SSL_SESSION_free((*pp)->s);
    free(*pp);
    *pp = NULL;
    t->nsess--;
  }
  return 1;
}

/* The cached session for key (borrowed), or NULL. */
SSL_SESSION *tls_ctx_session(tls_ctx *t, const char *key, size_t klen);
SSL_SESSION *tls_ctx_session(tls_ctx *t, const char *key, size_t klen) {
  tls_sess *s;
  for (s = t->sess; s != NULL; s = s->next)
    if (memcmp(s->key, key, klen) == 0) return s->s;
  return NULL;
}

/* }====================================================== */

/* {====================================================== options */

static const char *const known[] = {
  "alpn", "ca", "cert", "ciphers", "ciphersuites", "handshake_timeout",
  "key", "max_version", "min_version", "servername", "session_cache",
  "sni", "ticket_key", "tickets", "verify", NULL
};

/* Unknown option names raise: a typo must not silently mean a default. */
static void check_names(lua_State *L, int idx) {
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int i, ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      for (i = 0; known[i] != NULL; i++)
        if (strcmp(k, known[i]) == 0) ok = 1;
    }
    if (!ok) {
      lua_pushvalue(L, -2);
      luaL_error(L, "bad argument #1 to 'context' (unknown option '%s')",
                 luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
  }
}

/* opts[name] without metamethods (a value an __index made up could be
** collected while C still reads it). */
static int rawfield(lua_State *L, int idx, const char *name) {
  lua_pushstring(L, name);
  return lua_rawget(L, idx);
}

static int opt_error(lua_State *L, const char *name, const char *what) {
  return luaL_error(L, "bad argument #1 to 'context' (%s: %s)", name, what);
}

/* Field name of the options as a C string (no NUL inside), or NULL. */
static const char *opt_string(lua_State *L, int idx, const char *name) {
  const char *s;
  size_t len;
  int ty = rawfield(L, idx, name);
  lua_pop(L, 1); /* the options table keeps it alive */
  if (ty == LUA_TNIL) return NULL;
  if (ty != LUA_TSTRING) opt_error(L, name, "string expected");
  rawfield(L, idx, name);
  s = lua_tolstring(L, -1, &len);
  lua_pop(L, 1);
  if (strlen(s) != len) opt_error(L, name, "contains a NUL byte");
  return s;
}

/* A TLS version: "1.2", "1.3" (or the numbers); 1.0 and 1.1 raise. */
static int opt_version(lua_State *L, int idx, const char *name, int def) {
  int v = def;
  int ty = rawfield(L, idx, name);
  if (ty == LUA_TNUMBER || ty == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "1.2") == 0 || strcmp(s, "TLSv1.2") == 0)
      v = TLS1_2_VERSION;
    else if (strcmp(s, "1.3") == 0 || strcmp(s, "TLSv1.3") == 0)
      v = TLS1_3_VERSION;
    else if (strcmp(s, "1.0") == 0 || strcmp(s, "1") == 0 ||
             strcmp(s, "1.1") == 0 || strncmp(s, "TLSv1", 5) == 0 ||
             strncmp(s, "SSL", 3) == 0)
      opt_error(L, name, "TLS 1.0 and 1.1 are refused (RFC 8996)");
    else
      opt_error(L, name, "\"1.2\" or \"1.3\" expected");
  } else if (ty != LUA_TNIL) {
    opt_error(L, name, "\"1.2\" or \"1.3\" expected");
  }
  lua_pop(L, 1);
  return v;
}

/* alpn = {"h2", "http/1.1"} -> wire format. */
static void opt_alpn(lua_State *L, int idx, tls_ctx *t) {
  int ty = rawfield(L, idx, "alpn"), i, n;
  size_t total = 0, off = 0;
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (ty != LUA_TTABLE) opt_error(L, "alpn", "list of strings expected");
  n = (int)luaL_len(L, -1);
  if (n < 1 || n > 32) opt_error(L, "alpn", "1 to 32 names expected");
  for (i = 1; i <= n; i++) {
    size_t len;
    if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
      opt_error(L, "alpn", "list of strings expected");
    lua_tolstring(L, -1, &len);
    if (len < 1 || len > 255)
      opt_error(L, "alpn", "names of 1 to 255 bytes expected");
    total += len + 1;
    lua_pop(L, 1);
  }
  t->alpn = (unsigned char *)malloc(total);
  if (t->alpn == NULL) luaL_error(L, "not enough memory");
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s;
    lua_rawgeti(L, -1, i);
    s = lua_tolstring(L, -1, &len);
    t->alpn[off++] = (unsigned char)len;
    memcpy(t->alpn + off, s, len);
    off += len;
    lua_pop(L, 1);
  }
  t->alpn_len = (unsigned)total;
  lua_pop(L, 1);
}

static int is_pem(const char *s) { return strstr(s, "-----BEGIN") != NULL; }

/* Push nil, "tls: <what>: <OpenSSL's reason>"; returns 2. */
static int load_fail(lua_State *L, const char *what, const char *name) {
  unsigned long e = ERR_peek_last_error(), x;
  const char *why = e ? ERR_reason_error_string(e) : NULL;
  while ((x = ERR_get_error()) != 0)
    if (ERR_SYSTEM_ERROR(x)) /* the cause is an errno: say which */
      why = strerror(ERR_GET_REASON(x));
  if (why == NULL) why = errno ? strerror(errno) : "invalid";
  lua_pushnil(L);
  if (name != NULL && !is_pem(name))
    lua_pushfstring(L, "tls: cannot load %s '%s': %s", what, name, why);
  else
    lua_pushfstring(L, "tls: cannot load %s: %s", what, why);
  ERR_clear_error();
  return 2;
}

/* cert: a file (a chain: leaf first) or PEM text. */
static int load_cert(SSL_CTX *ssl, const char *cert) {
  BIO *b;
  X509 *x;
  int ok;
  if (!is_pem(cert)) return SSL_CTX_use_certificate_chain_file(ssl, cert);
  b = BIO_new_mem_buf(cert, -1);
  if (b == NULL) return 0;
  x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
  ok = x != NULL && SSL_CTX_use_certificate(ssl, x) == 1;
  X509_free(x);
  while (ok && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    if (SSL_CTX_add0_chain_cert(ssl, x) != 1) {
      X509_free(x);
      ok = 0;
    }
  }
  BIO_free(b);
  if (ok) ERR_clear_error(); /* the end of the PEM text */
  return ok;
}

static int load_key(SSL_CTX *ssl, const char *key) {
  BIO *b;
  EVP_PKEY *k;
  int ok;
  if (!is_pem(key))
    return SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM);
  b = BIO_new_mem_buf(key, -1);
  if (b == NULL) return 0;
  k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  ok = k != NULL && SSL_CTX_use_PrivateKey(ssl, k) == 1;
  EVP_PKEY_free(k);
  BIO_free(b);
  return ok;
}

/* ca: a directory (hashed, c_rehash), a file or PEM text. The file or
** text also names the CAs a server asks client certificates from. */
static int load_ca(SSL_CTX *ssl, const char *ca) {
  struct stat st;
  if (is_pem(ca)) {
    BIO *b = BIO_new_mem_buf(ca, -1);
    X509_STORE *store = SSL_CTX_get_cert_store(ssl);
    X509 *x;
    int n = 0;
    if (b == NULL) return 0;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
      if (X509_STORE_add_cert(store, x) == 1) n++;
      SSL_CTX_add_client_CA(ssl, x);
      X509_free(x);
    }
    BIO_free(b);
    if (n > 0) ERR_clear_error();
    return n > 0;
  }
  if (stat(ca, &st) == 0 && S_ISDIR(st.st_mode))
    return SSL_CTX_load_verify_locations(ssl, NULL, ca);
  if (SSL_CTX_load_verify_locations(ssl, ca, NULL) != 1) return 0;
  SSL_CTX_set_client_CA_list(ssl, SSL_load_client_CA_file(ca));
  ERR_clear_error();
  return 1;
}

static int opt_verify(lua_State *L, int idx) {
  int ty = rawfield(L, idx, "verify"), v = TLSV_DEFAULT;
  if (ty == LUA_TBOOLEAN) {
    v = lua_toboolean(L, -1) ? TLSV_REQUIRE : TLSV_NONE;
  } else if (ty == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "peer") == 0) v = TLSV_PEER;
    else if (strcmp(s, "require") == 0) v = TLSV_REQUIRE;
    else if (strcmp(s, "none") == 0) v = TLSV_NONE;
    else opt_error(L, "verify", "true, false, \"peer\", \"require\" or "
                   "\"none\" expected");
  } else if (ty != LUA_TNIL) {
    opt_error(L, "verify", "boolean or string expected");
  }
  lua_pop(L, 1);
  return v;
}

/* Check every option before anything is allocated (a raise must not
** leak); values that need OpenSSL (ciphers) are checked on the SSL_CTX. */
static void check_types(lua_State *L, int idx) {
  int ty;
  check_names(L, idx);
  opt_string(L, idx, "cert");
  opt_string(L, idx, "key");
  opt_string(L, idx, "ca");
  opt_string(L, idx, "servername");
  opt_string(L, idx, "ciphers");
  opt_string(L, idx, "ciphersuites");
  opt_verify(L, idx);
  opt_version(L, idx, "min_version", 0);
  opt_version(L, idx, "max_version", 0);
  ty = rawfield(L, idx, "handshake_timeout");
  if (ty != LUA_TNIL && (ty != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0)))
    opt_error(L, "handshake_timeout", "positive number of seconds expected");
  lua_pop(L, 1);
  ty = rawfield(L, idx, "session_cache");
  if (ty != LUA_TNIL && ty != LUA_TBOOLEAN &&
      !(lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0 &&
        lua_tointeger(L, -1) <= (1 << 24)))
    opt_error(L, "session_cache", "boolean or positive integer expected");
  lua_pop(L, 1);
  ty = rawfield(L, idx, "ticket_key");
  if (ty != LUA_TNIL && (ty != LUA_TSTRING || lua_rawlen(L, -1) < 32))
    opt_error(L, "ticket_key", "string of 32 bytes or more expected");
  lua_pop(L, 1);
  ty = rawfield(L, idx, "tickets");
  if (ty != LUA_TNIL && ty != LUA_TBOOLEAN)
    opt_error(L, "tickets", "boolean expected");
  lua_pop(L, 1);
  ty = rawfield(L, idx, "sni");
  if (ty != LUA_TNIL && ty != LUA_TTABLE && ty != LUA_TFUNCTION) {
    if (luaL_getmetafield(L, -1, "__call") == LUA_TNIL)
      opt_error(L, "sni", "table or function expected");
    lua_pop(L, 1); /* the __call */
  }
  if (ty == LUA_TTABLE) { /* {[name] = ctx} */
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING || tls_test_ctx(L, -1) == NULL)
        opt_error(L, "sni", "{[name] = tls.context} expected");
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (opt_string(L, idx, "key") && !opt_string(L, idx, "cert"))
    opt_error(L, "key", "given without cert");
  if (opt_string(L, idx, "cert") && !opt_string(L, idx, "key"))
    opt_error(L, "cert", "given without key");
  if (opt_string(L, idx, "servername") &&
      (*opt_string(L, idx, "servername") == '\0' ||
       strlen(opt_string(L, idx, "servername")) > 253))
    opt_error(L, "servername", "host name expected");
}

/* }====================================================== */

/* {====================================================== SIGHUP */

/*
** A lone process that made a context from certificate files reloads them
** all on SIGHUP (ctx:reload() each), as nginx does: a renewed certificate
** is served without a restart, and `kill -HUP` no longer ends the server.
** Under --workers the supervisor reloads (a new generation) and workers
** ignore the signal: no watcher there. The watcher is host-internal
** (uv.walk does not show it, it keeps no loop alive, the host closes it
** at the end), one per Lua state, made with the first such context; the
** contexts are a weak set in the registry.
*/
int host_is_worker(void); /* host/worker.c */
static const char hup_key = 'h'; /* registry: the weak set of contexts */

typedef struct hup_watch {
  uv_signal_t sig;
  lh_internal in;
  lh_ctx *ctx;
} hup_watch;

static int ctx_reload(lua_State *L);

/* Reload every context of the set (run protected): a line on stderr
** says how many, and one names each failure (its context unchanged). */
static int hup_reload_all(lua_State *L) {
  int done = 0, failed = 0;
  lua_settop(L, 0);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hup_key) != LUA_TTABLE) return 0;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    tls_ctx **ud;
    lua_pop(L, 1); /* the key stays, a strong reference meanwhile */
    ud = (tls_ctx **)luaL_testudata(L, 2, TLS_CTX_TNAME);
    if (ud == NULL || *ud == NULL || (*ud)->cert_src == NULL) continue;
    lua_pushcfunction(L, ctx_reload);
    lua_pushvalue(L, 2);
    /* (ctx, or nil, err; an error raised: its message, under a nil) */
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
      lua_pushnil(L);
      lua_insert(L, -2);
    }
    if (lua_isnil(L, -2)) {
      const char *err = lua_tostring(L, -1);
      lua_pushfstring(L, "SIGHUP: %s (that certificate stays)",
                      err != NULL ? err : "?");
      lh_report(lua_tostring(L, -1));
      failed++;
    } else {
      done++;
    }
    lua_settop(L, 2);
  }
  lua_pushfstring(L, "SIGHUP: %d of %d TLS certificate(s) reloaded", done,
                  done + failed);
  lh_report(lua_tostring(L, -1));
  return 0;
}

static void hup_cb(uv_signal_t *sig, int signum) {
  hup_watch *w = (hup_watch *)(void *)sig;
  lua_State *L = w->ctx->L;
  int top = lua_gettop(L);
  (void)signum;
  lua_pushcfunction(L, hup_reload_all);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK)
    lh_report(lua_tostring(L, -1) ? lua_tostring(L, -1) : "SIGHUP: error");
  lua_settop(L, top);
}

static void hup_closed(uv_handle_t *h) { free(h); }

/* The context at idx (made from files) goes in the set; the first one
** of the state starts the watcher. */
static void hup_register(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hup_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &hup_key);
    if (!host_is_worker()) {
      hup_watch *w = (hup_watch *)calloc(1, sizeof(hup_watch));
      lh_ctx *ctx = lh_getctx(L);
      if (w != NULL) {
        w->ctx = ctx;
        w->in.tag = &lh_internal_tag;
        w->in.close_cb = hup_closed;
        if (uv_signal_init(ctx->loop, &w->sig) != 0) {
          free(w);
        } else {
          w->sig.data = &w->in;
          uv_signal_start(&w->sig, hup_cb, SIGHUP);
          uv_unref((uv_handle_t *)&w->sig);
        }
      }
    }
  }
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* }====================================================== */

/* {====================================================== userdata */

tls_ctx *tls_test_ctx(lua_State *L, int idx) {
  tls_ctx **ud = (tls_ctx **)luaL_testudata(L, idx, TLS_CTX_TNAME);
  return ud != NULL ? *ud : NULL;
}

tls_ctx *tls_check_ctx(lua_State *L, int idx) {
  tls_ctx **ud = (tls_ctx **)luaL_checkudata(L, idx, TLS_CTX_TNAME);
  if (*ud == NULL) luaL_argerror(L, idx, "tls.context is released");
  return *ud;
}

static int ctx_gc(lua_State *L) {
  tls_ctx **ud = (tls_ctx **)luaL_checkudata(L, 1, TLS_CTX_TNAME);
  tls_ctx *t = *ud;
  if (t != NULL) {
    *ud = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, t->sni_ref);
    t->sni_ref = LUA_NOREF;
    SSL_CTX_free(t->ssl); /* frees t too unless a connection holds it */
  }
  return 0;
}

static int ctx_tostring(lua_State *L) {
  tls_ctx **ud = (tls_ctx **)luaL_checkudata(L, 1, TLS_CTX_TNAME);
  if (*ud == NULL)
    lua_pushliteral(L, "tls.context (released)");
  else
    lua_pushfstring(L, "tls.context (%s): %p",
                    (*ud)->has_cert ? "certificate" : "no certificate",
                    (void *)*ud);
  return 1;
}

const char *host_ticket_seed(void); /* host/worker.c: a group's secret */

/* The session ticket keys (name, HMAC and AES keys: 80 bytes) derived
** from a secret: contexts made from the same secret, in any process,
** decrypt each other's tickets (a worker group, a fleet given one
** ticket_key). 1 on success. */
static int set_ticket_keys(SSL_CTX *ssl, const char *k, size_t kl) {
  unsigned char keys[80], md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  int ok = m != NULL && EVP_DigestInit_ex(m, EVP_sha512(), NULL) == 1 &&
           EVP_DigestUpdate(m, "luahost tickets\n", 16) == 1 &&
           EVP_DigestUpdate(m, k, kl) == 1 &&
           EVP_DigestFinal_ex(m, md, &mdlen) == 1 && mdlen == 64;
  if (ok) {
    memcpy(keys, md, 64);
    ok = EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(m, k, kl) == 1 &&
         EVP_DigestUpdate(m, "luahost ticket name", 19) == 1 &&
         EVP_DigestFinal_ex(m, md, &mdlen) == 1;
    memcpy(keys + 64, md, 16);
  }
  EVP_MD_CTX_free(m);
  if (ok) ok = SSL_CTX_set_tlsext_ticket_keys(ssl, keys, sizeof(keys)) == 1;
  OPENSSL_cleanse(keys, sizeof(keys));
  OPENSSL_cleanse(md, sizeof(md));
  ERR_clear_error();
  return ok;
}

int tls_context_new(lua_State *L, int idx) {
  tls_ctx **ud, *t;
  SSL_CTX *ssl;
  const char *s;
  int minv, maxv, ty;
  long opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  check_types(L, idx);
  CRYPTO_THREAD_run_once(&ctx_once, make_index);
  if (ctx_index < 0) return luaL_error(L, "tls: no ex_data index");
  /* A complete userdata first: an error below leaves nothing behind. */
  ud = (tls_ctx **)lua_newuserdatauv(L, sizeof(tls_ctx *), 0);
  *ud = NULL;
  luaL_setmetatable(L, TLS_CTX_TNAME);
  ssl = SSL_CTX_new(TLS_method());
  if (ssl == NULL) return luaL_error(L, "not enough memory");
  t = (tls_ctx *)calloc(1, sizeof(tls_ctx));
  if (t == NULL || SSL_CTX_set_ex_data(ssl, ctx_index, t) != 1) {
    free(t);
    SSL_CTX_free(ssl);
    return luaL_error(L, "not enough memory");
  }
  t->ssl = ssl;
  t->sni_ref = LUA_NOREF;
  t->L = L;
  t->handshake_ms = TLS_HANDSHAKE_MS;
  t->client_cache = TLS_CLIENT_SESSIONS;
  *ud = t; /* from here on __gc frees it all */
  t->verify = opt_verify(L, idx);
  minv = opt_version(L, idx, "min_version", TLS1_2_VERSION);
  maxv = opt_version(L, idx, "max_version", 0);
  if (maxv && maxv < minv)
    opt_error(L, "max_version", "below min_version");
  SSL_CTX_set_min_proto_version(ssl, minv);
  SSL_CTX_set_max_proto_version(ssl, maxv);
  if (rawfield(L, idx, "tickets") == LUA_TBOOLEAN &&
      !lua_toboolean(L, -1))
    opts |= SSL_OP_NO_TICKET;
  lua_pop(L, 1);
  SSL_CTX_set_options(ssl, opts);
  if (rawfield(L, idx, "handshake_timeout") == LUA_TNUMBER) {
    double secs = lua_tonumber(L, -1);
    t->handshake_ms = secs * 1000 >= (1 << 30) ? (1 << 30)
                                               : (int)(secs * 1000 + 0.5);
    if (t->handshake_ms < 1) t->handshake_ms = 1;
  }
  lua_pop(L, 1);
  if ((s = opt_string(L, idx, "ciphers")) != NULL &&
      SSL_CTX_set_cipher_list(ssl, s) != 1) {
    ERR_clear_error();
    opt_error(L, "ciphers", "no cipher matches");
  }
  if ((s = opt_string(L, idx, "ciphersuites")) != NULL &&
      SSL_CTX_set_ciphersuites(ssl, s) != 1) {
    ERR_clear_error();
    opt_error(L, "ciphersuites", "no cipher suite matches");
  }
  opt_alpn(L, idx, t);
  if (t->alpn != NULL) {
    SSL_CTX_set_alpn_select_cb(ssl, alpn_cb, t);
    if (SSL_CTX_set_alpn_protos(ssl, t->alpn, t->alpn_len) != 0)
      return luaL_error(L, "not enough memory");
  }
  if ((s = opt_string(L, idx, "servername")) != NULL) {
    t->servername = strdup(s);
    if (t->servername == NULL) return luaL_error(L, "not enough memory");
  }
  /* sessions: servers cache (and send tickets); clients keep ours */
  ty = rawfield(L, idx, "session_cache");
  if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    t->client_cache = 0;
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
  } else {
    long n = ty == LUA_TNUMBER ? (long)lua_tointeger(L, -1) : 0;
    if (n > 0) t->client_cache = n < TLS_CLIENT_SESSIONS * 16
                                 ? (int)n : TLS_CLIENT_SESSIONS * 16;
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_BOTH);
    SSL_CTX_sess_set_cache_size(ssl, n > 0 ? n : TLS_SERVER_SESSIONS);
    SSL_CTX_sess_set_new_cb(ssl, new_session_cb);
  }
  lua_pop(L, 1);
  {
    const char *k;
    size_t kl = 0;
    if (rawfield(L, idx, "ticket_key") == LUA_TSTRING)
      k = lua_tolstring(L, -1, &kl);
    else if ((k = host_ticket_seed()) != NULL)
      kl = strlen(k);
    if (k != NULL && set_ticket_keys(ssl, k, kl) != 1)
      return luaL_error(L, "tls: cannot set the ticket keys");
    lua_pop(L, 1);
  }
  SSL_CTX_set_session_id_context(ssl, (const unsigned char *)"luahost", 7);
  if ((s = opt_string(L, idx, "cert")) != NULL) {
    if (load_cert(ssl, s) != 1) return load_fail(L, "cert", s);
    if (load_key(ssl, opt_string(L, idx, "key")) != 1)
      return load_fail(L, "key", opt_string(L, idx, "key"));
    if (SSL_CTX_check_private_key(ssl) != 1) {
      ERR_clear_error();
      lua_pushnil(L);
      lua_pushliteral(L, "tls: key does not match cert");
      return 2;
    }
    t->has_cert = 1;
    t->cert_src = strdup(s);
    t->key_src = strdup(opt_string(L, idx, "key"));
    if (t->cert_src == NULL || t->key_src == NULL)
      return luaL_error(L, "not enough memory");
  }
  if ((s = opt_string(L, idx, "ca")) != NULL) {
    errno = 0;
    if (load_ca(ssl, s) != 1) return load_fail(L, "ca", s);
  } else if (!t->has_cert || t->verify == TLSV_PEER ||
             t->verify == TLSV_REQUIRE) {
    /* The system store, read where OpenSSL reads it: SSL_CERT_FILE and
    ** SSL_CERT_DIR override Debian's /etc/ssl/certs. A server that does
    ** not ask for client certificates needs none of it. */
    if (SSL_CTX_set_default_verify_paths(ssl) != 1)
      return load_fail(L, "the system CA store", NULL);
  }
  if (rawfield(L, idx, "sni") != LUA_TNIL) {
    t->sni_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    SSL_CTX_set_tlsext_servername_callback(ssl, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ssl, t);
  } else {
    lua_pop(L, 1);
  }
  ERR_clear_error();
  /* (made from files: SIGHUP reloads it; the userdata is on top) */
  if (t->cert_src != NULL && !is_pem(t->cert_src)) hup_register(L, -1);
  return 1;
}

/* tls.context{options} -> context | nil, err */
static int tls_context(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, lua_gettop(L) == 1, 2, "no value expected");
  return tls_context_new(L, 1);
}

/* tls.is_context(v) -> boolean */
static int tls_is_context(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, tls_test_ctx(L, 1) != NULL);
  return 1;
}

/* tls._has_cert(ctx) -> boolean: can it serve (net.listen checks). */
static int tls_has_cert(lua_State *L) {
  lua_pushboolean(L, tls_check_ctx(L, 1)->has_cert);
  return 1;
}

/* ctx:reload([cert, key]): read the certificate and key again (the
** files the context was made from, or new ones): connections made from
** now on present them; established ones keep theirs. Both are checked
** on a scratch context first, so a failure (nil, err) changes nothing. */
static int ctx_reload(lua_State *L) {
  tls_ctx *t = tls_check_ctx(L, 1);
  const char *cert = luaL_optstring(L, 2, t->cert_src);
  const char *key = luaL_optstring(L, 3, t->key_src);
  SSL_CTX *scratch;
  char *nc, *nk;
  if (cert == NULL || key == NULL)
    return luaL_error(L, "reload: the context has no certificate");
  scratch = SSL_CTX_new(TLS_method());
  if (scratch == NULL) return luaL_error(L, "not enough memory");
  errno = 0;
  if (load_cert(scratch, cert) != 1) {
    SSL_CTX_free(scratch);
    return load_fail(L, "cert", cert);
  }
  if (load_key(scratch, key) != 1) {
    SSL_CTX_free(scratch);
    return load_fail(L, "key", key);
  }
  if (SSL_CTX_check_private_key(scratch) != 1) {
    SSL_CTX_free(scratch);
    ERR_clear_error();
    lua_pushnil(L);
    lua_pushliteral(L, "tls: key does not match cert");
    return 2;
  }
  SSL_CTX_free(scratch);
  nc = strdup(cert);
  nk = strdup(key);
  if (nc == NULL || nk == NULL) {
    free(nc);
    free(nk);
    return luaL_error(L, "not enough memory");
  }
  SSL_CTX_clear_chain_certs(t->ssl);
  if (load_cert(t->ssl, nc) != 1 || load_key(t->ssl, nk) != 1 ||
      SSL_CTX_check_private_key(t->ssl) != 1) { /* the files changed? */
    free(nc);
    free(nk);
    return load_fail(L, "cert", cert);
  }
  free(t->cert_src);
  free(t->key_src);
  t->cert_src = nc;
  t->key_src = nk;
  ERR_clear_error();
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg ctx_methods[] = {
  {"reload", ctx_reload},
  {NULL, NULL}
};

int lh_tls_x509(lua_State *L); /* tls_x509.c */

static const luaL_Reg tls_functions[] = {
  {"_has_cert", tls_has_cert},
  {"x509", lh_tls_x509},
  {"context", tls_context},
  {"is_context", tls_is_context},
  {NULL, NULL}
};

int luaopen_tls(lua_State *L) {
  if (luaL_newmetatable(L, TLS_CTX_TNAME)) {
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    /* (<close> releases it as the collector would: conns that run on it
    ** keep it until they end, a new conn on it raises "released") */
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, ctx_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, TLS_CTX_TNAME);
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "tls.context");
    lua_setfield(L, -2, "__metatable");
    luaL_newlib(L, ctx_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, tls_functions);
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "openssl_version");
  return 1;
}

/* }====================================================== */
