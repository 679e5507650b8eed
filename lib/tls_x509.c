/*
** tls_x509.c: tls.x509(pem) -> what a certificate says, for lib/ssl.lua's
** stand-in of LuaSec's x509 objects (ssl.x509.load, getpeercertificate):
** every field in LuaSec's form, so that code reading certificates through
** LuaSec reads the same here (spec/ssl_spec.lua compares with LuaSec).
** See Copyright Notice in README.md
*/
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

int lh_tls_x509(lua_State *L);

/* The object's dotted OID (numeric) or its long name. */
static void push_obj(lua_State *L, const ASN1_OBJECT *o, int numeric) {
  char buf[256];
  int n = OBJ_obj2txt(buf, (int)sizeof buf, o, numeric);
  if (n < 0) n = 0;
  if (n >= (int)sizeof buf) n = (int)sizeof buf - 1;
  lua_pushlstring(L, buf, (size_t)n);
}

/* A name as LuaSec gives it: {{oid =, name =, value =}, ...} in order. */
static void push_name(lua_State *L, const X509_NAME *name) {
  int i, n = X509_NAME_entry_count(name);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
    const ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
    lua_createtable(L, 0, 3);
    push_obj(L, X509_NAME_ENTRY_get_object(e), 1);
    lua_setfield(L, -2, "oid");
    push_obj(L, X509_NAME_ENTRY_get_object(e), 0);
    lua_setfield(L, -2, "name");
    /* (the bytes as encoded, LuaSec's default "ai5" encoding) */
    lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(v),
                    (size_t)ASN1_STRING_length(v));
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, i + 1);
  }
}

/* What BIO wrote, pushed; the BIO freed. */
static void push_bio(lua_State *L, BIO *b) {
  char *p = NULL;
  long len = b != NULL ? BIO_get_mem_data(b, &p) : 0;
  if (len > 0) lua_pushlstring(L, p, (size_t)len);
  else lua_pushliteral(L, "");
  BIO_free(b);
}

/* A time as OpenSSL prints it ("Dec  5 22:38:42 2026 GMT", LuaSec's), and
** its seconds since the epoch under key_s. */
static void set_time(lua_State *L, const ASN1_TIME *t, const char *key,
                     const char *key_s) {
  BIO *b = BIO_new(BIO_s_mem());
  struct tm tm;
  if (b != NULL) ASN1_TIME_print(b, t);
  push_bio(L, b);
  lua_setfield(L, -2, key);
  if (ASN1_TIME_to_tm(t, &tm) == 1) {
    lua_pushinteger(L, (lua_Integer)timegm(&tm));
    lua_setfield(L, -2, key_s);
  }
}

/* digests = {sha1 =, sha256 =, sha512 =}: lower-case hex, as LuaSec's. */
static void set_digests(lua_State *L, X509 *x) {
  static const char *const names[] = {"sha1", "sha256", "sha512"};
  int k;
  lua_createtable(L, 0, 3);
  for (k = 0; k < 3; k++) {
    unsigned char md[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned len = 0, i;
    const EVP_MD *alg = EVP_get_digestbyname(names[k]);
    if (alg == NULL || X509_digest(x, alg, md, &len) != 1) continue;
    for (i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    lua_pushlstring(L, hex, 2 * (size_t)len);
    lua_setfield(L, -2, names[k]);
  }
  lua_setfield(L, -2, "digests");
}

/* The subject alternative names as LuaSec's extensions() table: {[oid] =
** {name =, dNSName = {...}, iPAddress = {...}, rfc822Name = {...},
** uniformResourceIdentifier = {...}}}. */
static void set_alt_names(lua_State *L, X509 *x, int nid) {
  GENERAL_NAMES *gs = (GENERAL_NAMES *)X509_get_ext_d2i(x, nid, NULL, NULL);
  int i, n;
  if (gs == NULL) return;
  push_obj(L, OBJ_nid2obj(nid), 1);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, OBJ_nid2ln(nid)); /* (LuaSec's: the long name) */
  lua_setfield(L, -2, "name");
  n = sk_GENERAL_NAME_num(gs);
  for (i = 0; i < n; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gs, i);
    const char *kind = NULL;
    const ASN1_STRING *s = NULL;
    char ip[64];
    size_t iplen = 0;
    switch (g->type) {
      case GEN_DNS: kind = "dNSName"; s = g->d.dNSName; break;
      case GEN_EMAIL: kind = "rfc822Name"; s = g->d.rfc822Name; break;
      case GEN_URI:
        kind = "uniformResourceIdentifier";
        s = g->d.uniformResourceIdentifier;
        break;
      case GEN_IPADD: { /* (inet_ntop's form, as LuaSec's) */
        const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
        int dl = ASN1_STRING_length(g->d.iPAddress);
        kind = "iPAddress";
        if ((dl == 4 || dl == 16) &&
            inet_ntop(dl == 4 ? AF_INET : AF_INET6, d, ip, sizeof ip))
          iplen = strlen(ip);
        break;
      }
      default: break;
    }
    if (kind == NULL) continue;
    if (lua_getfield(L, -1, kind) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, kind);
    }
    if (s != NULL)
      lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(s),
                      (size_t)ASN1_STRING_length(s));
    else
      lua_pushlstring(L, ip, iplen);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
  }
  GENERAL_NAMES_free(gs);
  lua_settable(L, -3);
}

/* The public key: its PEM, type ("RSA", "EC", ...) and size in bits. */
static void set_pubkey(lua_State *L, X509 *x) {
  EVP_PKEY *k = X509_get0_pubkey(x);
  BIO *b;
  const char *type;
  if (k == NULL) return;
  b = BIO_new(BIO_s_mem());
  if (b != NULL) PEM_write_bio_PUBKEY(b, k);
  push_bio(L, b);
  lua_setfield(L, -2, "pubkey");
  switch (EVP_PKEY_base_id(k)) {
    case EVP_PKEY_RSA: type = "RSA"; break;
    case EVP_PKEY_DSA: type = "DSA"; break;
    case EVP_PKEY_DH: type = "DH"; break;
    case EVP_PKEY_EC: type = "EC"; break;
    default: type = "Unknown"; break;
  }
  lua_pushstring(L, type);
  lua_setfield(L, -2, "pubkey_type");
  lua_pushinteger(L, EVP_PKEY_bits(k));
  lua_setfield(L, -2, "pubkey_bits");
}

/* tls.x509(pem) -> {subject, issuer, notbefore, notafter, notbefore_s,
** notafter_s, serial, digests, signature, pubkey, pubkey_type,
** pubkey_bits, extensions, pem} | nil, err: the first certificate of pem. */
int lh_tls_x509(lua_State *L) {
  size_t len;
  const char *pem = luaL_checklstring(L, 1, &len);
  BIO *in = BIO_new_mem_buf(pem, (int)len);
  X509 *x = in != NULL ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
  BIO_free(in);
  if (x == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "not a PEM certificate");
    return 2;
  }
  lua_createtable(L, 0, 14);
  push_name(L, X509_get_subject_name(x));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(x));
  lua_setfield(L, -2, "issuer");
  set_time(L, X509_get0_notBefore(x), "notbefore", "notbefore_s");
  set_time(L, X509_get0_notAfter(x), "notafter", "notafter_s");
  {
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    lua_pushstring(L, hex != NULL ? hex : "");
    lua_setfield(L, -2, "serial");
    OPENSSL_free(hex);
    BN_free(bn);
  }
  set_digests(L, x);
  lua_pushstring(L, OBJ_nid2sn(X509_get_signature_nid(x))); /* (LuaSec's) */
  lua_setfield(L, -2, "signature");
  set_pubkey(L, x);
  lua_newtable(L);
  set_alt_names(L, x, NID_subject_alt_name); /* (the one LuaSec reads) */
  lua_setfield(L, -2, "extensions");
  {
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL) PEM_write_bio_X509(b, x);
    push_bio(L, b);
    lua_setfield(L, -2, "pem");
  }
  X509_free(x);
  return 1;
}
