/*
** http_gzip.c: gzip streams (zlib) for Content-Encoding: gzip.
** See Copyright Notice in README.md
**
** gzip([level]) makes a compressor, gunzip() a decompressor; both are fed
** pieces with :write and give back what they produced so far. A
** compressor flushes on every write (Z_SYNC_FLUSH: a streamed response
** goes out as it is written, not when zlib's window fills). A
** decompressor takes a bound on its output, so a small body that
** inflates enormously (a "zip bomb") is refused instead of filling memory.
** The zlib state is freed by :close or the garbage collector, whichever
** comes first.
*/
#include <string.h>
#include <zlib.h>

#include "http_core.h"

#define GZ "http.gzip"
#define OUTBUF 16384

typedef struct gz {
  z_stream z;
  int live;     /* deflateInit/inflateInit succeeded and no End yet */
  int inflate;  /* a decompressor */
  int ended;    /* the stream's end was produced or seen */
} gz;

static gz *check_gz(lua_State *L) {
  gz *g = (gz *)luaL_checkudata(L, 1, GZ);
  if (!g->live) luaL_error(L, "attempt to use a closed gzip stream");
  return g;
}

static void gz_end(gz *g) {
  if (g->live) {
    if (g->inflate) inflateEnd(&g->z);
    else deflateEnd(&g->z);
    g->live = 0;
  }
}

static gz *new_gz(lua_State *L, int inflating) {
  gz *g = (gz *)lua_newuserdatauv(L, sizeof(gz), 0);
  memset(g, 0, sizeof *g);
  g->inflate = inflating;
  luaL_setmetatable(L, GZ); /* complete from birth: __gc is safe */
  return g;
}

/* gzip([level]) -> compressor (level 1..9, default 6) */
static int gz_new_deflate(lua_State *L) {
  int level = (int)luaL_optinteger(L, 1, 6);
  gz *g;
  luaL_argcheck(L, level >= 1 && level <= 9, 1, "level 1..9 expected");
  g = new_gz(L, 0);
  /* windowBits 15 + 16: a gzip wrapper, not zlib's */
  if (deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return luaL_error(L, "not enough memory");
  g->live = 1;
  return 1;
}

/* gunzip() -> decompressor (gzip or zlib data, detected) */
static int gz_new_inflate(lua_State *L) {
  gz *g = new_gz(L, 1);
  if (inflateInit2(&g->z, 15 + 32) != Z_OK)
    return luaL_error(L, "not enough memory");
  g->live = 1;
  return 1;
}

/* Run zlib over the input at index 2 (or none) with flush; push the
** output. max bounds it (inflate): nil, "too large" past it. */
static int run(lua_State *L, gz *g, int flush, size_t max) {
  size_t len = 0, total = 0;
  const char *in = lua_isnoneornil(L, 2) ? "" : luaL_checklstring(L, 2, &len);
  luaL_Buffer b;
  int r;
  if (g->ended) {
    if (len == 0) { lua_pushliteral(L, ""); return 1; }
    lua_pushnil(L);
    lua_pushliteral(L, "data after the end of the gzip stream");
    return 2;
  }
  g->z.next_in = (Bytef *)in;
  g->z.avail_in = (uInt)len;
  luaL_buffinit(L, &b);
  do {
    char *out = luaL_prepbuffsize(&b, OUTBUF);
    g->z.next_out = (Bytef *)out;
    g->z.avail_out = OUTBUF;
    r = g->inflate ? inflate(&g->z, flush) : deflate(&g->z, flush);
    if (r == Z_STREAM_ERROR || r == Z_DATA_ERROR || r == Z_NEED_DICT ||
        r == Z_MEM_ERROR) {
      luaL_pushresult(&b);
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_pushstring(L, g->z.msg ? g->z.msg : "bad gzip data");
      return 2;
    }
    luaL_addsize(&b, OUTBUF - g->z.avail_out);
    total += OUTBUF - g->z.avail_out;
    if (total > max) {
      luaL_pushresult(&b);
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_pushliteral(L, "too large");
      return 2;
    }
    if (r == Z_STREAM_END) {
      g->ended = 1;
      if (g->z.avail_in > 0 && g->inflate) {
        luaL_pushresult(&b);
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushliteral(L, "data after the end of the gzip stream");
        return 2;
      }
      break;
    }
    /* (Z_BUF_ERROR: no progress possible, all input taken) */
  } while (g->z.avail_out == 0 || g->z.avail_in > 0);
  luaL_pushresult(&b);
  return 1;
}

/* z:write(data [, max]) -> output so far | nil, err */
static int gz_write(lua_State *L) {
  gz *g = check_gz(L);
  lua_Integer max = luaL_optinteger(L, 3, LUA_MAXINTEGER);
  luaL_checkstring(L, 2);
  luaL_argcheck(L, max >= 0, 3, "non-negative size expected");
  return run(L, g, g->inflate ? Z_NO_FLUSH : Z_SYNC_FLUSH, (size_t)max);
}

/* z:finish() -> the rest of the output (compressor: the gzip trailer) */
static int gz_finish(lua_State *L) {
  gz *g = check_gz(L);
  lua_settop(L, 1);
  return run(L, g, Z_FINISH, LUA_MAXINTEGER);
}

/* z:done() -> whether the end of the stream was produced or seen */
static int gz_done(lua_State *L) {
  gz *g = (gz *)luaL_checkudata(L, 1, GZ);
  lua_pushboolean(L, g->ended);
  return 1;
}

static int gz_close(lua_State *L) {
  gz_end((gz *)luaL_checkudata(L, 1, GZ));
  return 0;
}

static const luaL_Reg gz_methods[] = {
  {"close", gz_close},
  {"done", gz_done},
  {"finish", gz_finish},
  {"write", gz_write},
  {NULL, NULL}
};

void http_gzip_open(lua_State *L) {
  luaL_newmetatable(L, GZ);
  luaL_newlib(L, gz_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gz_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, gz_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

const luaL_Reg http_gzip_funcs[] = {
  {"gunzip", gz_new_inflate},
  {"gzip", gz_new_deflate},
  {NULL, NULL}
};
