/*
** netcore.c: luaopen_net_core assembles net.core, the C core of net and
** task, from one opener per file (see net_core.h for the map), as
** bindings/uv.c assembles uv.
** See Copyright Notice in README.md
*/
#include <string.h>

#include "blocks.h"
#include "net_core.h"

void net_setfuncs(lua_State *L, const luaL_Reg *l) {
  lua_pushvalue(L, -2);      /* module, core, module */
  lua_pushvalue(L, -2);      /* ..., core: the upvalue */
  luaL_setfuncs(L, l, 1);
  lua_pop(L, 1);
}

static int core_gc(lua_State *L) {
  core *K = (core *)lua_touserdata(L, 1);
  net_shelf_free(K);
  net_sched_free(K);
  return 0;
}

/* init(tasks, maxline, hwm): task.lua's table of tasks, net's defaults. */
static int core_init(lua_State *L) {
  core *K = net_getcore(L);
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushvalue(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, K->tasks_ref);
    K->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (!lua_isnoneornil(L, 2))
    K->maxline = (uint32_t)lh_check_range(L, 2, 1, NET_LIMIT_MAX);
  if (!lua_isnoneornil(L, 3))
    K->hwm = (size_t)lh_check_range(L, 3, 1, (lua_Integer)1 << 40);
  return 0;
}

/* Numbers about the core, for specs and benchmarks. */
static int core_stats(lua_State *L) {
  core *K = net_getcore(L);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, K->n);
  lua_setfield(L, -2, "deadlines");
  lua_pushinteger(L, K->nsends);
  lua_setfield(L, -2, "sends"); /* writes handed to the socket */
  lua_pushinteger(L, K->ninto);
  lua_setfield(L, -2, "reads_in_place"); /* landed in a net.buffer */
  lua_pushinteger(L, (lua_Integer)sizeof(conn));
  lua_setfield(L, -2, "conn_size");
  lua_pushinteger(L, K->nshelved);
  lua_setfield(L, -2, "shelved"); /* resting conns on the shelf */
  {
    size_t chunks, used;
    lh_blocks_stats(K->ctx, &chunks, &used);
    lua_pushinteger(L, (lua_Integer)chunks);
    lua_setfield(L, -2, "block_chunks"); /* mapped (blocks.c) */
    lua_pushinteger(L, (lua_Integer)used);
    lua_setfield(L, -2, "blocks"); /* handle blocks in use */
  }
  return 1;
}

/* strerror(name): libuv's description of an error name ("EADDRINUSE":
** "address already in use"), nil for a name libuv does not know. */
static int core_strerror(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
#define NET_XX(code, _)                       \
  if (strcmp(name, #code) == 0) {             \
    lua_pushstring(L, uv_strerror(UV_##code)); \
    return 1;                                 \
  }
  UV_ERRNO_MAP(NET_XX)
#undef NET_XX
  lua_pushnil(L);
  return 1;
}

static const luaL_Reg core_functions[] = {
  {"init", core_init},
  {"stats", core_stats},
  {"strerror", core_strerror},
  {NULL, NULL}
};

/* The core: one userdata, anchored in the registry, the upvalue of every
** function of the module. */
static core *new_core(lua_State *L, lh_ctx *ctx) {
  core *K = (core *)lua_newuserdatauv(L, sizeof(core), 0);
  memset(K, 0, sizeof(core));
  K->in.tag = &lh_internal_tag;
  K->in.close_cb = NULL;
  K->ctx = ctx;
  K->tasks_ref = LUA_NOREF;
  K->maxline = 65536;
  K->maxread = 1 << 20;
  K->hwm = 65536;
  lh_readbuf(L, RBUF_SIZE); /* the read buffer uv's handles use too */
  net_sched_init(L, K);
  net_write_init(K);
  net_shelf_init(K);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, core_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "net.core"); /* anchor */
  return K;
}

int luaopen_net_core(lua_State *L) {
  lh_ctx *ctx = lh_getctx(L);
  static const char *const uvtypes[] = {"uv_tcp", "uv_pipe", "uv_udp",
                                        NULL};
  int i;
  /* The uv handles behind sockets must have their metatables even when
  ** the uv bindings of those types are not built in. */
  luaL_requiref(L, "uv", luaopen_uv, 0);
  lua_pop(L, 1);
  for (i = 0; uvtypes[i] != NULL; i++) {
    if (luaL_getmetatable(L, uvtypes[i]) == LUA_TNIL)
      lh_new_metatable(L, uvtypes[i], NULL, 0);
    lua_pop(L, 1);
  }
  lua_newtable(L);           /* the module */
  new_core(L, ctx);          /* module, core */
  net_setfuncs(L, core_functions);
  net_sched_open(L);
  net_conn_open(L);          /* the socket kinds, before their methods */
  net_read_open(L);
  net_write_open(L);
  net_listen_open(L);
  net_dns_open(L);
  net_udp_open(L);
  net_proxy_open(L);
  net_tls_open(L);
  net_pipe_open(L);
  net_buffer_open(L);
  lua_pop(L, 1);             /* the core */
  lua_pushinteger(L, FRESH_MS); /* (net.lua's drain of a new conn) */
  lua_setfield(L, -2, "FRESH_MS");
  return 1;
}
