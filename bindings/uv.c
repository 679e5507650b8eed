/*
** uv.c: luaopen_uv assembles the module from one opener per binding file,
** plus the errno table generated from libuv's UV_ERRNO_MAP.
** See Copyright Notice in README.md
*/
#include "common.h"

static void push_errno_table(lua_State *L) {
  lua_newtable(L);
#define XX(code, _) \
  lua_pushinteger(L, UV_##code); \
  lua_setfield(L, -2, #code);
  UV_ERRNO_MAP(XX)
#undef XX
}

int luaopen_uv(lua_State *L) {
  if (lh_getctx(L) == NULL)
    return luaL_error(L, "uv: this state has no luahost event loop");
  lua_newtable(L);
  lh_loop_open(L);
  lh_handle_open(L);
  lh_timer_open(L);
  lh_stream_open(L);
  lh_tcp_open(L);
  lh_udp_open(L);
  lh_pipe_open(L);
  lh_tty_open(L);
  lh_process_open(L);
  lh_signal_open(L);
  lh_poll_open(L);
  lh_watchers_open(L);
  lh_dns_open(L);
  lh_netdb_open(L);
  lh_sockopt_open(L);
  lh_misc_open(L);
  lh_req_open(L);
  lh_fs_open(L);
  lh_fsdir_open(L);
  lh_fs_event_open(L);
  lh_fs_poll_open(L);
  lh_thread_open(L);
  lh_work_open(L);
  push_errno_table(L);
  lua_setfield(L, -2, "errno");
  return 1;
}
