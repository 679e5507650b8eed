/*
** poll.c: uv_poll_t (new_poll, new_socket_poll, poll_start, poll_stop),
** readiness of a descriptor made by other means. Events are luv's
** strings: "r", "w", "rw", "d" (disconnect), "p" (prioritized) and their
** combinations in that order ("rwd", "rp"...). A descriptor that cannot
** be polled (a regular file: EPERM) fails at new_poll.
** See Copyright Notice in README.md
*/
#include <string.h>

#include "common.h"

/* Index in this table == the uv_poll_event bits (UV_READABLE = 1,
** UV_WRITABLE = 2, UV_DISCONNECT = 4, UV_PRIORITIZED = 8). Empty slots
** are combinations without a name; index 0 (no event) has none either. */
static const char *const events_names[] = {
  "", "r", "w", "rw", "d", "rd", "wd", "rwd",
  "p", "rp", "wp", "rwp", "dp", "rdp", "wdp", "rwdp"
};

static int check_events(lua_State *L, int idx) {
  const char *s;
  int i;
  if (lua_isnoneornil(L, idx)) return UV_READABLE | UV_WRITABLE;
  s = luaL_checkstring(L, idx);
  if (*s != '\0')
    for (i = 1; i < 16; i++)
      if (strcmp(s, events_names[i]) == 0) return i;
  return luaL_argerror(L, idx, lua_pushfstring(L, "invalid poll events "
                       "'%s' (want \"r\", \"w\", \"rw\", \"d\", \"p\"...)", s));
}

static int new_poll(lua_State *L, int socket) {
  int fd, rc = lh_check_fd(L, 1, LH_FD_POLL, &fd);
  lh_handle *h;
  uv_poll_t *p;
  if (rc) return rc;
  h = lh_handle_new(L, UV_POLL);
  p = lh_uv(h, uv_poll_t);
  rc = socket ? uv_poll_init_socket(h->ctx->loop, p, fd)
              : uv_poll_init(h->ctx->loop, p, fd);
  if (rc < 0) {
    /* uv_poll_init fails before registering the handle with the loop. */
    lh_handle_abort(L, h);
    return lh_fail(L, rc);
  }
  return 1;
}

static int poll_new(lua_State *L) { return new_poll(L, 0); }

static int poll_new_socket(lua_State *L) { return new_poll(L, 1); }

static void poll_cb(uv_poll_t *p, int status, int events) {
  lh_handle *h = (lh_handle *)p->data;
  lua_State *L = h->ctx->L;
  if (!lh_push_cb(h, LH_CB_EVENT)) return;
  lh_push_status(L, status);
  if (status < 0 || (events & 15) == 0)
    lua_pushnil(L);
  else
    lua_pushstring(L, events_names[events & 15]);
  lh_call(h->ctx, 2);
}

static int poll_start(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_POLL);
  int events = check_events(L, 2);
  int rc;
  lh_check_callable(L, 3);
  rc = uv_poll_start(lh_uv(h, uv_poll_t), events, poll_cb);
  if (rc == 0) lh_set_cb(L, h, LH_CB_EVENT, 3);
  return lh_result(L, rc);
}

static int poll_stop(lua_State *L) {
  lh_handle *h = lh_check_handle(L, 1, 1 << UV_POLL);
  return lh_result(L, uv_poll_stop(lh_uv(h, uv_poll_t)));
}

static const luaL_Reg poll_functions[] = {
  {"new_poll", poll_new},
  {"new_socket_poll", poll_new_socket},
  {"poll_start", poll_start},
  {"poll_stop", poll_stop},
  {NULL, NULL}
};

static const luaL_Reg poll_methods[] = {
  {"start", poll_start},
  {"stop", poll_stop},
  {NULL, NULL}
};

void lh_poll_open(lua_State *L) {
  luaL_setfuncs(L, poll_functions, 0);
  lh_new_metatable(L, "uv_poll", poll_methods, 0);
}
