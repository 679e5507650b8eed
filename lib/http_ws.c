/*
** http_ws.c: what WebSocket (RFC 6455) needs in C: SHA-1 and base64 for
** the handshake key, and the XOR mask over frame payloads.
** See Copyright Notice in README.md
**
** SHA-1 is written here (FIPS 180-4, ~60 lines) rather than taken from
** libcrypto: the handshake needs nothing else from OpenSSL, and SHA-1 is
** used only as RFC 6455 prescribes (not for security).
*/
#include <stdint.h>
#include <string.h>

#include "http_core.h"

/* {====================================================== SHA-1 */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha1_block(uint32_t h[5], const unsigned char *p) {
  uint32_t w[80], a, b, c, d, e, t;
  int i;
  for (i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^
                                       w[i - 16], 1);
  a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];
  for (i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
    else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
    else { f = b ^ c ^ d; k = 0xCA62C1D6; }
    t = ROL(a, 5) + f + e + k + w[i];
    e = d; d = c; c = ROL(b, 30); b = a; a = t;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

/* sha1(s) -> the 20-byte binary digest */
static int ws_sha1(lua_State *L) {
  size_t len, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1,
                                                                    &len);
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
                   0xC3D2E1F0};
  unsigned char last[128], out[20];
  size_t full = len & ~(size_t)63, rest = len - full, pad;
  uint64_t bits = (uint64_t)len * 8;
  for (i = 0; i < full; i += 64) sha1_block(h, s + i);
  memset(last, 0, sizeof last);
  if (rest) memcpy(last, s + full, rest);
  last[rest] = 0x80;
  pad = rest < 56 ? 64 : 128;
  for (i = 0; i < 8; i++) last[pad - 1 - i] = (unsigned char)(bits >> (8 * i));
  sha1_block(h, last);
  if (pad == 128) sha1_block(h, last + 64);
  for (i = 0; i < 20; i++)
    out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
  lua_pushlstring(L, (const char *)out, 20);
  return 1;
}

/* }====================================================== */

/* {====================================================== base64 */

static const char b64[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64encode(s) -> base64 text (RFC 4648, padded) */
static int ws_b64encode(lua_State *L) {
  size_t len, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1,
                                                                    &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 0; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    luaL_addchar(&b, b64[v >> 18]);
    luaL_addchar(&b, b64[(v >> 12) & 63]);
    luaL_addchar(&b, b64[(v >> 6) & 63]);
    luaL_addchar(&b, b64[v & 63]);
  }
  if (i < len) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8
                                                     : 0);
    luaL_addchar(&b, b64[v >> 18]);
    luaL_addchar(&b, b64[(v >> 12) & 63]);
    luaL_addchar(&b, i + 1 < len ? b64[(v >> 6) & 63] : '=');
    luaL_addchar(&b, '=');
  }
  luaL_pushresult(&b);
  return 1;
}

/* b64decode(s) -> bytes, or nil when s is not canonical padded base64 */
static int ws_b64decode(lua_State *L) {
  size_t len, i, o = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out;
  if (len % 4) { lua_pushnil(L); return 1; }
  out = luaL_buffinitsize(L, &b, len / 4 * 3 + 1);
  for (i = 0; i < len; i += 4) {
    int v[4], k;
    for (k = 0; k < 4; k++) {
      const char *q = s[i + k] ? strchr(b64, s[i + k]) : NULL;
      if (q != NULL) v[k] = (int)(q - b64);
      else if (s[i + k] == '=' && i + 4 == len && k >= 2 &&
               (k == 3 || s[i + 3] == '=')) v[k] = -1;
      else { lua_pushnil(L); return 1; }
    }
    /* canonical: the bits the padding leaves over are zero (else two
    ** strings would decode to the same bytes) */
    if ((v[3] < 0 && v[2] >= 0 && (v[2] & 3)) ||
        (v[2] < 0 && (v[1] & 15))) {
      lua_pushnil(L);
      return 1;
    }
    out[o++] = (char)(v[0] << 2 | v[1] >> 4);
    if (v[2] >= 0) out[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
    if (v[3] >= 0) out[o++] = (char)((v[2] & 3) << 6 | v[3]);
  }
  luaL_pushresultsize(&b, o);
  return 1;
}

/* }====================================================== */

/* mask(data, key [, offset]) -> data XOR the 4-byte key, starting at key
** byte offset % 4 (a payload may be unmasked in pieces). */
static int ws_mask(lua_State *L) {
  size_t len, kl, i;
  const char *s = luaL_checklstring(L, 1, &len);
  const unsigned char *k = (const unsigned char *)luaL_checklstring(L, 2,
                                                                    &kl);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  luaL_Buffer b;
  char *out;
  luaL_argcheck(L, kl == 4, 2, "4-byte key expected");
  luaL_argcheck(L, off >= 0, 3, "non-negative offset expected");
  out = luaL_buffinitsize(L, &b, len);
  for (i = 0; i < len; i++)
    out[i] = (char)(s[i] ^ k[(i + (size_t)off) & 3]);
  luaL_pushresultsize(&b, len);
  return 1;
}

const luaL_Reg http_ws_funcs[] = {
  {"b64decode", ws_b64decode},
  {"b64encode", ws_b64encode},
  {"mask", ws_mask},
  {"sha1", ws_sha1},
  {NULL, NULL}
};
