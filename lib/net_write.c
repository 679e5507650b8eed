/*
** net_write.c: output of a stream conn: write, flush, shutdown, with
** backpressure over the conn's transport.
** See Copyright Notice in README.md
*/
#include "net_core.h"

/* {====================================================== write */

static int write_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  (void)status; (void)kc;
  int how = net_was_cancelled(L, 1);
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  if (c == NULL || c->closed) return net_fail_str(L, "closed");
  if (c->werr) return net_fail_str(L, net_errname(c->werr));
  if (c->wtimed) {
    c->wtimed = 0;
    return net_fail_str(L, "timeout");
  }
  return 1; /* the conn: calls chain */
}

/* write(...): strings and numbers. Sends at once what the kernel takes
** and queues the rest; blocks while more than hwm bytes are queued. */
static int conn_write(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  int n = lua_gettop(L), i, nb = 0, r;
  uv_buf_t bufs[16];
  size_t total = 0;
  for (i = 2; i <= n; i++) luaL_checklstring(L, i, NULL);
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->werr) return net_fail_str(L, net_errname(c->werr));
  if (n - 1 > 16) {
    lua_concat(L, n - 1);
    n = 2;
  }
  for (i = 2; i <= n; i++) {
    size_t l;
    const char *s = lua_tolstring(L, i, &l);
    if (l == 0) continue;
    bufs[nb].base = (char *)s;
    bufs[nb].len = l;
    nb++;
    total += l;
  }
  if (total == 0) {
    lua_settop(L, 1);
    return 1;
  }
  r = c->tp->write(c, bufs, nb);
  if (r == UV_ENOMEM) return luaL_error(L, "not enough memory");
  if (r < 0) {
    c->werr = r;
    return net_fail_str(L, net_errname(r));
  }
  /* (Nothing is queued when everything went at once.) */
  if (uv_stream_get_write_queue_size(STREAM(c)) > c->hwm) {
    lua_settop(L, 1);
    return net_park_writer(L, c, 0, write_k, "write");
  }
  lua_settop(L, 1);
  return 1;
}

/* flush(): wait until everything written so far has left. */
static int conn_flush(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_settop(L, 1);
  if (!LIVE(c)) return net_fail_str(L, "closed");
  if (c->werr) return net_fail_str(L, net_errname(c->werr));
  if (c->nwreq == 0) return 1;
  return net_park_writer(L, c, 1, write_k, "flush");
}

/* shutdown(): no more output (after what is queued); input continues. */
static int conn_shutdown(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  int r;
  if (!LIVE(c)) return net_fail_str(L, "closed");
  r = c->tp->shutdown(c);
  if (r == UV_ENOMEM) return luaL_error(L, "not enough memory");
  if (r < 0) return net_fail_str(L, net_errname(r));
  lua_settop(L, 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== opener */

static const luaL_Reg write_methods[] = {
  {"flush", conn_flush},
  {"shutdown", conn_shutdown},
  {"write", conn_write},
  {NULL, NULL}
};

void net_write_open(lua_State *L) {
  net_add_methods(L, K_STREAM, write_methods);
}

/* }====================================================== */
