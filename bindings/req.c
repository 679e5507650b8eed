/*
** req.c: the Lua face of libuv requests, as luv: an asynchronous call
** returns a "uv_req" userdata with cancel and get_type; uv.cancel(req) and
** uv.req_get_type(req) are the module forms.
** See Copyright Notice in README.md
**
** The box does not keep its request alive, nor the request its box: a
** request is owned by C from submission to its callback (lh_req_free), and
** the box only points at it meanwhile. Dropping the box never cancels.
*/
#include "common.h"

#define REQ_MT "uv_req"

lh_reqbox *lh_req_push_box(lua_State *L, lh_req *r, uv_req_type type) {
  lh_reqbox *b = (lh_reqbox *)lua_newuserdatauv(L, sizeof(*b), 0);
  b->req = r;
  b->type = (int)type;
  b->owned = 0;
  luaL_setmetatable(L, REQ_MT);
  r->box = b;
  return b;
}

lh_reqbox *lh_check_reqbox(lua_State *L, int idx) {
  return (lh_reqbox *)luaL_checkudata(L, idx, REQ_MT);
}

/* A kept request (fs_scandir's listing) is freed with its box.
** (checked: getmetatable(req).__gc can be called by hand, with anything) */
static int req_gc(lua_State *L) {
  lh_reqbox *b = lh_check_reqbox(L, 1);
  lh_req *r = b->req;
  if (r == NULL) return 0;
  b->req = NULL;
  r->box = NULL;
  if (b->owned) {
    if (b->type == UV_FS) uv_fs_req_cleanup(lh_req_uv(r, uv_fs_t));
    lh_req_free(r);
  }
  return 0;
}

/* cancel(req): 0, or fail. A request that is running or done cannot be
** cancelled: libuv says EBUSY, and so do we once it is gone. */
static int req_cancel(lua_State *L) {
  lh_reqbox *b = lh_check_reqbox(L, 1);
  if (b->req == NULL || b->owned) return lh_fail(L, UV_EBUSY);
  return lh_result(L, uv_cancel(lh_req_uv(b->req, uv_req_t)));
}

/* get_type(req): the type's name ("fs", "getaddrinfo"...) and number. */
static int req_get_type(lua_State *L) {
  lh_reqbox *b = lh_check_reqbox(L, 1);
  lua_pushstring(L, uv_req_type_name((uv_req_type)b->type));
  lua_pushinteger(L, b->type);
  return 2;
}

static int req_tostring(lua_State *L) {
  lh_reqbox *b = lh_check_reqbox(L, 1);
  lua_pushfstring(L, "uv_%s_t: %p%s", uv_req_type_name((uv_req_type)b->type),
                  (void *)b, b->req == NULL ? " (done)" : "");
  return 1;
}

static const luaL_Reg req_functions[] = {
  {"cancel", req_cancel},
  {"req_get_type", req_get_type},
  {NULL, NULL}
};

static const luaL_Reg req_methods[] = {
  {"cancel", req_cancel},
  {"get_type", req_get_type},
  {NULL, NULL}
};

void lh_req_open(lua_State *L) {
  luaL_setfuncs(L, req_functions, 0);
  luaL_newmetatable(L, REQ_MT);
  luaL_newlib(L, req_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, req_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, req_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
