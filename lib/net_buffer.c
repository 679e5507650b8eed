/*
** net_buffer.c: net.buffer, bytes that conn:recv_into fills and
** conn:write sends without a Lua string between them.
** See Copyright Notice in README.md
*/
#include <stddef.h>
#include <string.h>

#include "net_core.h"

/*
** A received string is a copy: from the read buffer into a new string,
** which the collector frees later. For bytes that only pass through (an
** echo, a relay, a checksum) a buffer is filled where the kernel puts
** them: recv_into on a plain conn has its next read land in the buffer
** itself (net_read.c), and write sends from it (what the kernel does not
** take at once is copied, as for a string). One buffer can serve every
** connection of a server whose handlers write what they received before
** they wait again.
*/

#define BUFFER_MAX ((lua_Integer)1 << 30)
static const char buffer_name[] = "net.buffer";

/* At most n arguments: an extra one is an error, named. */
#define NARGS(L, n) \
  luaL_argcheck((L), lua_gettop(L) <= (n), (n) + 1, "no value expected")

static net_buffer *check_buffer(lua_State *L, int idx) {
  return (net_buffer *)luaL_checkudata(L, idx, buffer_name);
}

/* (K->lastbuf: the buffer found last, whose metatable need not be looked
** at again: the echo of every connection passes the same one; a buffer's
** __gc forgets it before its address can be another userdata's, and
** marks it so that it is not remembered again: a finalizer that runs
** after its own (another object's) may still pass it, and its block is
** freed at the next cycle, for a userdata of any type to take) */
net_buffer *net_tobuffer(lua_State *L, core *K, int idx) {
  net_buffer *nb;
  const void *mt;
  if (lua_type(L, idx) != LUA_TUSERDATA) return NULL;
  nb = (net_buffer *)lua_touserdata(L, idx);
  if (nb == K->lastbuf) return nb;
  if (!lua_getmetatable(L, idx)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  if (mt != K->bufmt) return NULL;
  if (!nb->finalized) K->lastbuf = nb;
  return nb;
}

/* (check_buffer: getmetatable(buf).__gc can be called with anything) */
static int buffer_gc(lua_State *L) {
  core *K = net_getcore(L);
  net_buffer *nb = check_buffer(L, 1);
  if (K->lastbuf == nb) K->lastbuf = NULL;
  nb->finalized = 1;
  return 0;
}

/* net.buffer(size): an empty buffer of size bytes (1 .. 2^30). */
static int core_buffer(lua_State *L) {
  lua_Integer size = lh_check_range(L, 1, 1, BUFFER_MAX);
  net_buffer *nb;
  NARGS(L, 1);
  nb = (net_buffer *)lua_newuserdatauv(
      L, offsetof(net_buffer, data) + (size_t)size, 0);
  nb->len = 0;
  nb->cap = (size_t)size;
  nb->finalized = 0;
  luaL_setmetatable(L, buffer_name);
  return 1;
}

static int buffer_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_buffer(L, 1)->len);
  return 1;
}

/* The first and last positions, as string.sub takes them (negative:
** from the end). */
static size_t start_pos(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0 || pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

static size_t end_pos(lua_Integer pos, size_t len) {
  if (pos > (lua_Integer)len) return len;
  if (pos >= 0) return (size_t)pos;
  if (pos < -(lua_Integer)len) return 0;
  return len + (size_t)pos + 1;
}

/* buf:tostring([i [, j]]): its bytes (i to j, as string.sub) as a
** string. */
static int buffer_tostring(lua_State *L) {
  net_buffer *nb = check_buffer(L, 1);
  size_t i = start_pos(luaL_optinteger(L, 2, 1), nb->len);
  size_t j = end_pos(luaL_optinteger(L, 3, -1), nb->len);
  NARGS(L, 3);
  if (i > j) lua_pushliteral(L, "");
  else lua_pushlstring(L, nb->data + i - 1, j - i + 1);
  return 1;
}

static int buffer_capacity(lua_State *L) {
  net_buffer *nb = check_buffer(L, 1);
  NARGS(L, 1);
  lua_pushinteger(L, (lua_Integer)nb->cap);
  return 1;
}

/* buf:clear(): empty (its length 0); returns buf. */
static int buffer_clear(lua_State *L) {
  net_buffer *nb = check_buffer(L, 1);
  NARGS(L, 1);
  nb->len = 0;
  return 1;
}

/* __close: the buffer is emptied and the bytes it held are zeroed (its
** memory is the collector's to free): a buffer that carried a secret
** leaves no copy of it behind its scope. */
static int buffer_close(lua_State *L) {
  net_buffer *nb = check_buffer(L, 1);
  memset(nb->data, 0, nb->len);
  nb->len = 0;
  return 0;
}

static int buffer_name_m(lua_State *L) {
  net_buffer *nb = check_buffer(L, 1);
  lua_pushfstring(L, "net.buffer (%I of %I bytes): %p", (lua_Integer)nb->len,
                  (lua_Integer)nb->cap, (void *)nb);
  return 1;
}

static const luaL_Reg buffer_methods[] = {
  {"tostring", buffer_tostring},
  {"capacity", buffer_capacity},
  {"clear", buffer_clear},
  {NULL, NULL}
};

static const luaL_Reg buffer_functions[] = {
  {"buffer", core_buffer},
  {NULL, NULL}
};

/* (module, core on the stack) */
void net_buffer_open(lua_State *L) {
  core *K = (core *)lua_touserdata(L, -1);
  luaL_newmetatable(L, buffer_name);
  lua_pushvalue(L, -2); /* the core */
  lua_pushcclosure(L, buffer_gc, 1);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, buffer_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, buffer_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, buffer_name_m);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, buffer_methods);
  lua_setfield(L, -2, "__index");
  K->bufmt = lua_topointer(L, -1);
  lua_pop(L, 1);
  net_setfuncs(L, buffer_functions);
}
