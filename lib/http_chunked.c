/*
** http_chunked.c: the chunked transfer coding (RFC 9112 7.1), decoded
** incrementally.
** See Copyright Notice in README.md
**
** A decoder is a small state machine fed whatever bytes arrived: each
** byte is looked at once (linear time), only the data bytes are copied
** out, and nothing else is kept (constant memory): an extension or a
** trailer section is checked and dropped as it streams by. Strict where
** readers disagree (the "funky chunks" smuggling family): every line of
** the framing ends in CRLF (a bare LF or CR is an error), a size is 1 to
** 8 significant hex digits (under 4 GiB a chunk; 16 digits with leading
** zeros), an extension must start with ';' and holds no control
** byte, the CRLF after the data must be exactly there, and a trailer line
** is a field (no obs-fold). Limits: 4 KiB of extension per chunk line,
** 16 KiB and 100 fields of trailers.
*/
#include <string.h>

#include "http_core.h"

/* A chunk holds less than 4 GiB (8 significant hex digits; a body may
** have many chunks); leading zeros count towards 16 digits in all. */
#define MAX_DIGITS 16
#define MAX_SIGNIFICANT 8
#define MAX_EXT 4096
#define MAX_TRAILER 16384
#define MAX_TRAILER_FIELDS 100
#define DECODER "http.chunked"

enum {
  S_SIZE,       /* hex digits of a chunk size */
  S_EXT_BWS,    /* blanks after the size: ';' or CR next */
  S_EXT,        /* inside an extension, up to CR */
  S_SIZE_LF,    /* the LF after a chunk line */
  S_DATA,       /* chunk data */
  S_DATA_CR,    /* the CRLF after the data */
  S_DATA_LF,
  S_TR_START,   /* start of a trailer line (or the final CRLF) */
  S_TR_NAME,
  S_TR_VALUE,
  S_TR_LF,
  S_END_LF,     /* the last LF */
  S_DONE,
  S_ERROR
};

typedef struct decoder {
  int state;
  int digits;            /* hex digits seen in this size */
  int fields;            /* trailer fields seen */
  size_t ext;            /* extension bytes on this chunk line */
  size_t trailer;        /* trailer bytes seen */
  unsigned long long size; /* data bytes left in this chunk */
  unsigned long long total; /* data bytes decoded so far */
} decoder;

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* chunked() -> a new decoder */
static int chunked_new(lua_State *L) {
  decoder *d = (decoder *)lua_newuserdatauv(L, sizeof(decoder), 0);
  memset(d, 0, sizeof *d);
  d->state = S_SIZE;
  luaL_setmetatable(L, DECODER);
  return 1;
}

static int fail(lua_State *L, decoder *d, luaL_Buffer *b, const char *why) {
  d->state = S_ERROR;
  luaL_pushresult(b); /* (closes the buffer) */
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/*
** decoder:decode(s [, i]) -> data, false        all of s[i..] consumed
**                         -> data, next         the body ended; next is the
**                                               first byte after it in s
**                         -> nil, reason        bad framing (400, close)
*/
static int chunked_decode(lua_State *L) {
  decoder *d = (decoder *)luaL_checkudata(L, 1, DECODER);
  size_t len;
  const unsigned char *s =
    (const unsigned char *)luaL_checklstring(L, 2, &len);
  lua_Integer i0 = luaL_optinteger(L, 3, 1);
  size_t i;
  luaL_Buffer b;
  luaL_argcheck(L, i0 >= 1 && (size_t)i0 <= len + 1, 3, "out of range");
  if (d->state == S_DONE || d->state == S_ERROR) {
    lua_pushnil(L);
    lua_pushstring(L, d->state == S_DONE ? "body already ended"
                                         : "decoder failed before");
    return 2;
  }
  luaL_buffinit(L, &b);
  for (i = (size_t)i0 - 1; i < len; i++) {
    unsigned char c = s[i];
    switch (d->state) {
      case S_SIZE: {
        int v = hexval(c);
        if (v >= 0) {
          if (++d->digits > MAX_DIGITS ||
              d->size >= (1ull << (4 * (MAX_SIGNIFICANT - 1))))
            return fail(L, d, &b, "chunk size too long");
          d->size = d->size * 16 + (unsigned)v;
          break;
        }
        if (d->digits == 0) return fail(L, d, &b, "bad chunk size");
        if (c == '\r') d->state = S_SIZE_LF;
        else if (c == ';') d->state = S_EXT;
        else if (c == ' ' || c == '\t') d->state = S_EXT_BWS;
        else return fail(L, d, &b, "bad chunk size");
        break;
      }
      case S_EXT_BWS:
        if (++d->ext > MAX_EXT) return fail(L, d, &b, "chunk line too long");
        if (c == ';') d->state = S_EXT;
        else if (c == '\r') d->state = S_SIZE_LF;
        else if (c != ' ' && c != '\t')
          return fail(L, d, &b, "bad chunk extension");
        break;
      case S_EXT:
        if (++d->ext > MAX_EXT) return fail(L, d, &b, "chunk line too long");
        if (c == '\r') d->state = S_SIZE_LF;
        else if (!HTTP_VCHAR(c))
          return fail(L, d, &b, "bad chunk extension");
        break;
      case S_SIZE_LF:
        if (c != '\n') return fail(L, d, &b, "bare CR in chunk line");
        d->digits = 0;
        d->ext = 0;
        d->state = d->size == 0 ? S_TR_START : S_DATA;
        break;
      case S_DATA: {
        size_t n = len - i;
        if ((unsigned long long)n > d->size) n = (size_t)d->size;
        luaL_addlstring(&b, (const char *)s + i, n);
        d->size -= n;
        d->total += n;
        i += n - 1;
        if (d->size == 0) d->state = S_DATA_CR;
        break;
      }
      case S_DATA_CR:
        if (c != '\r') return fail(L, d, &b, "no CRLF after chunk data");
        d->state = S_DATA_LF;
        break;
      case S_DATA_LF:
        if (c != '\n') return fail(L, d, &b, "no CRLF after chunk data");
        d->state = S_SIZE;
        break;
      case S_TR_START:
        if (c == '\r') {
          d->state = S_END_LF;
          break;
        }
        if (!HTTP_TCHAR(c)) return fail(L, d, &b, "bad trailer field");
        if (++d->fields > MAX_TRAILER_FIELDS)
          return fail(L, d, &b, "too many trailer fields");
        d->state = S_TR_NAME;
        break;
      case S_TR_NAME:
        if (c == ':') d->state = S_TR_VALUE;
        else if (!HTTP_TCHAR(c)) return fail(L, d, &b, "bad trailer field");
        break;
      case S_TR_VALUE:
        if (c == '\r') d->state = S_TR_LF;
        else if (!HTTP_VCHAR(c)) return fail(L, d, &b, "bad trailer field");
        break;
      case S_TR_LF:
        if (c != '\n') return fail(L, d, &b, "bare CR in trailer");
        d->state = S_TR_START;
        break;
      case S_END_LF:
        if (c != '\n') return fail(L, d, &b, "bare CR after trailers");
        d->state = S_DONE;
        luaL_pushresult(&b);
        lua_pushinteger(L, (lua_Integer)i + 2);
        return 2;
    }
    if (d->state >= S_TR_START && d->state <= S_END_LF &&
        ++d->trailer > MAX_TRAILER)
      return fail(L, d, &b, "trailer section too large");
  }
  luaL_pushresult(&b);
  lua_pushboolean(L, 0);
  return 2;
}

/* decoder:total() -> data bytes decoded so far */
static int chunked_total(lua_State *L) {
  decoder *d = (decoder *)luaL_checkudata(L, 1, DECODER);
  lua_pushinteger(L, (lua_Integer)d->total);
  return 1;
}

/* decoder:pending() -> data bytes announced by the current chunk's size
** and not yet decoded (a 4 GiB chunk on a 1 MiB limit is 413 at once) */
static int chunked_pending(lua_State *L) {
  decoder *d = (decoder *)luaL_checkudata(L, 1, DECODER);
  lua_pushinteger(L, d->state == S_DATA ? (lua_Integer)d->size : 0);
  return 1;
}

/* decoder:done() -> whether the last chunk and trailers have been read */
static int chunked_done(lua_State *L) {
  decoder *d = (decoder *)luaL_checkudata(L, 1, DECODER);
  lua_pushboolean(L, d->state == S_DONE);
  return 1;
}

static const luaL_Reg decoder_methods[] = {
  {"decode", chunked_decode},
  {"done", chunked_done},
  {"pending", chunked_pending},
  {"total", chunked_total},
  {NULL, NULL}
};

void http_chunked_open(lua_State *L) {
  luaL_newmetatable(L, DECODER);
  luaL_newlib(L, decoder_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

const luaL_Reg http_chunked_funcs[] = {
  {"chunked", chunked_new},
  {NULL, NULL}
};
