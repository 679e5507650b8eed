/*
** net_sys.c: signals and host information for net and task.
** See Copyright Notice in README.md
*/
#include <netdb.h>
#include <stdio.h>
#include <netinet/in.h>

#include "net_core.h"

/* {====================================================== signals */

static void signal_cb(uv_signal_t *sig, int signum) {
  lh_handle *h = (lh_handle *)sig->data;
  (void)signum;
  if (lh_push_cb(h, LH_CB_EVENT)) {
    lh_push_cb(h, LH_CB_AUX); /* the name as given */
    lh_call(h->ctx, 1);
  }
}

/* signal(name, fn, keepalive): a started uv_signal handle calling
** fn(name) on each signal; closing it stops. Without keepalive the
** handle does not keep the loop alive. */
static int core_signal(lua_State *L) {
  core *K = net_getcore(L);
  int signum = lh_check_signal(L, 1);
  lh_handle *h;
  int r;
  lh_check_callable(L, 2);
  h = lh_handle_new(L, UV_SIGNAL);
  r = uv_signal_init(K->ctx->loop, lh_uv(h, uv_signal_t));
  if (r < 0) {
    lh_handle_abort(L, h);
    return net_fail_st(L, r);
  }
  lh_set_cb(L, h, LH_CB_EVENT, 2);
  lua_pushvalue(L, 1);
  h->cb[LH_CB_AUX] = luaL_ref(L, LUA_REGISTRYINDEX);
  r = uv_signal_start(lh_uv(h, uv_signal_t), signal_cb, signum);
  if (r < 0) {
    lh_handle_close(h);
    return net_fail_st(L, r);
  }
  if (!lua_toboolean(L, 3)) uv_unref(h->uv);
  return 1;
}

/* }====================================================== */

/* {====================================================== host info */

static int core_hostname(lua_State *L) {
  char buf[UV_MAXHOSTNAMESIZE];
  size_t n = sizeof(buf);
  int r = uv_os_gethostname(buf, &n);
  if (r < 0) return net_fail_st(L, r);
  lua_pushlstring(L, buf, n);
  return 1;
}

static int core_interfaces(lua_State *L) {
  uv_interface_address_t *ifs;
  int n, i, r = uv_interface_addresses(&ifs, &n);
  if (r < 0) return net_fail_st(L, r);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    char mac[18];
    const unsigned char *m = (const unsigned char *)ifs[i].phys_addr;
    lua_createtable(L, 0, 6);
    lua_pushstring(L, ifs[i].name);
    lua_setfield(L, -2, "name");
    if (net_push_sockaddr(L, (struct sockaddr *)&ifs[i].address) == 3) {
      lua_setfield(L, -4, "family");
      lua_pop(L, 1);
      lua_setfield(L, -2, "address");
    } else {
      lua_pop(L, 2);
    }
    if (net_push_sockaddr(L, (struct sockaddr *)&ifs[i].netmask) == 3) {
      lua_pop(L, 2);
      lua_setfield(L, -2, "netmask");
    } else {
      lua_pop(L, 2);
    }
    lua_pushboolean(L, ifs[i].is_internal);
    lua_setfield(L, -2, "internal");
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1],
             m[2], m[3], m[4], m[5]);
    lua_pushstring(L, mac);
    lua_setfield(L, -2, "mac");
    lua_rawseti(L, -2, i + 1);
  }
  uv_free_interface_addresses(ifs, n);
  return 1;
}

/* service(name | port, proto): the port of a service name or the name of
** a port, from the services database (a local file: it does not block
** the loop in any way that matters). */
static int core_service(lua_State *L) {
  const char *proto = luaL_optstring(L, 2, "tcp");
  struct servent se, *res = NULL;
  char buf[1024];
  if (net_has_nul(L, 1) || net_has_nul(L, 2))
    return net_fail_str(L, "ENOTFOUND");
  if (lua_type(L, 1) == LUA_TNUMBER) {
    int port = (int)lh_check_range(L, 1, 0, 65535);
    getservbyport_r(htons((uint16_t)port), proto, &se, buf, sizeof(buf),
                    &res);
    if (res == NULL) return net_fail_str(L, "ENOTFOUND");
    lua_pushstring(L, res->s_name);
    return 1;
  }
  getservbyname_r(luaL_checkstring(L, 1), proto, &se, buf, sizeof(buf),
                  &res);
  if (res == NULL) return net_fail_str(L, "ENOTFOUND");
  lua_pushinteger(L, ntohs((uint16_t)res->s_port));
  return 1;
}

/* protocol(name | number) -> number | name */
static int core_protocol(lua_State *L) {
  struct protoent pe, *res = NULL;
  char buf[1024];
  if (net_has_nul(L, 1)) return net_fail_str(L, "ENOTFOUND");
  if (lua_type(L, 1) == LUA_TNUMBER) {
    getprotobynumber_r((int)lh_check_range(L, 1, 0, 255), &pe, buf,
                       sizeof(buf), &res);
    if (res == NULL) return net_fail_str(L, "ENOTFOUND");
    lua_pushstring(L, res->p_name);
    return 1;
  }
  getprotobyname_r(luaL_checkstring(L, 1), &pe, buf, sizeof(buf), &res);
  if (res == NULL) return net_fail_str(L, "ENOTFOUND");
  lua_pushinteger(L, res->p_proto);
  return 1;
}

/* }====================================================== */

/* {====================================================== opener */

static const luaL_Reg sys_functions[] = {
  {"hostname", core_hostname},
  {"interfaces", core_interfaces},
  {"protocol", core_protocol},
  {"service", core_service},
  {"signal", core_signal},
  {NULL, NULL}
};

void net_sys_open(lua_State *L) {
  net_setfuncs(L, sys_functions);
}

/* }====================================================== */
