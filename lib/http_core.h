/*
** http_core.h: the C half of the http module ("http.core").
** See Copyright Notice in README.md
**
** One file per concern, each exporting one luaL_Reg list that
** http_core.c assembles into the module table:
**   http_head.c    - strict request and response heads (RFC 9112)
**   http_resp.c    - the server's response heads, serialized in C
**   http_chunked.c - the chunked transfer coding, decoded incrementally
**   http_ws.c      - WebSocket helpers: SHA-1, base64, masking
**   http_gzip.c    - gzip streams (zlib) for Content-Encoding
**   http_fixed.c   - fixed responses (http.fixed) answered in C
*/
#ifndef HTTP_CORE_H
#define HTTP_CORE_H

#include <lua.h>
#include <lauxlib.h>

extern const luaL_Reg http_head_funcs[];
extern const luaL_Reg http_resp_funcs[];
extern const luaL_Reg http_chunked_funcs[];
extern const luaL_Reg http_ws_funcs[];
extern const luaL_Reg http_gzip_funcs[];
extern const luaL_Reg http_fixed_funcs[];

/* parse_request and parse_response, into the module table at -1. */
void http_head_open(lua_State *L);
/* build_head, a closure of the field names it uses, into the table at -1 */
void http_resp_open(lua_State *L);
/* The chunked decoder's metatable (created by luaopen_http_core). */
void http_chunked_open(lua_State *L);
/* The gzip stream metatable. */
void http_gzip_open(lua_State *L);
/* The answers' metatable (http_fixed.c). */
void http_fixed_open(lua_State *L);

/* Character classes of RFC 9110 (5.6.2 token, 5.5 field values). */
extern const unsigned char http_tchar[256];
#define HTTP_TCHAR(c) (http_tchar[(unsigned char)(c)] & 1)
/* field-vchar / SP / HTAB: what a field value may hold */
#define HTTP_VCHAR(c) (http_tchar[(unsigned char)(c)] & 2)

/* {====================================================== heads in C */

/* The fields a head's framing decision reads, noted as they are read. */
typedef struct http_seen {
  int request;         /* parsing a request (else a response) */
  int version;         /* 10 or 11 */
  int nte, ncl, nhost; /* how many of these fields */
  int conn_close, conn_keepalive;
  const char *te, *cl; /* the (last) value of each, with its length */
  size_t tel, cll;
  int te_chunked;      /* TE list ends in chunked */
  int te_other;        /* TE list has another coding */
  int te_bad;          /* a chunked not last, twice, or a non-token */
  int host_bad;        /* a Host value that is not host[:port] */
} http_seen;

typedef struct http_limits {
  lua_Integer line, head, fields; /* limits.line, .head, .fields */
} http_limits;

/* What http_scan_head read of one head (pointers into its buffer). */
typedef struct http_scan {
  http_seen h;
  int st;                   /* a bad head: the status to answer */
  const char *why;          /* and why */
  const char *m;            /* request: the method, ml bytes */
  size_t ml;
  const char *t, *te;       /* the target */
  const char *ps, *pe;      /* its path (not decoded) */
  const char *q;            /* its '?', or NULL */
  int status;               /* response: the status */
  const char *rs, *re;      /* and the reason phrase */
  const char *hb;           /* the first field line */
  const char *next;         /* the first byte after the head */
  int nfields;
  lua_Integer blen;         /* body length; -1 chunked */
  int chunked, until_close; /* the framing (else blen bytes) */
  int close;                /* the connection ends after it (RFC 9112 9.3) */
} http_scan;

/* One head from buf[init..len), read as parse_request (request 1) or
** parse_response (0) read it, with every check of theirs in the same
** order, no Lua: 1 a whole head (sc), 0 not complete yet, -1 a bad one
** (sc->st, sc->why). The search for the head's end starts at buf[from].
** request | HTTP_SCAN_WHOLE: for a caller that takes a whole valid head
** or nothing (1, or anything else): the same heads are 1, with less
** work, but a bad head may be 0 or -1 with another why. */
#define HTTP_SCAN_WHOLE 2
int http_scan_head(http_scan *sc, const char *buf, size_t len, size_t init,
                   size_t from, const http_limits *lim, int request);

/* "Date: <IMF-fixdate>\r\n", made once a second (http_resp.c). */
const char *http_date_line(size_t *len);

/* }====================================================== */

int luaopen_http_core(lua_State *L);

#endif
