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

/* parse_request and parse_response, into the module table at -1. */
void http_head_open(lua_State *L);
/* build_head, a closure of the field names it uses, into the table at -1 */
void http_resp_open(lua_State *L);
/* The chunked decoder's metatable (created by luaopen_http_core). */
void http_chunked_open(lua_State *L);
/* The gzip stream metatable. */
void http_gzip_open(lua_State *L);

/* Character classes of RFC 9110 (5.6.2 token, 5.5 field values). */
extern const unsigned char http_tchar[256];
#define HTTP_TCHAR(c) (http_tchar[(unsigned char)(c)] & 1)
/* field-vchar / SP / HTAB: what a field value may hold */
#define HTTP_VCHAR(c) (http_tchar[(unsigned char)(c)] & 2)

int luaopen_http_core(lua_State *L);

#endif
