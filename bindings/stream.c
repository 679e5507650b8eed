/*
** stream.c: methods every uv stream (tcp, pipe, tty) has: listen, accept,
** read_start, read_stop, write, write2, try_write, try_write2, shutdown,
** is_readable, is_writable, get_write_queue_size, set_blocking; available
** as uv.<name>(stream, ...) and stream:<name>(...), as in luv.
** See Copyright Notice in README.md
**
** Hot paths. Reading uses one read buffer per state (lh_readbuf), never a
** malloc per read: read_cb turns the bytes into a Lua string at once, so
** the buffer is free again before the next alloc_cb. Writing tries
** uv_try_write first; only what the kernel did not take is queued with
** uv_write, and then the Lua strings are anchored (the request's data_ref),
** never copied. A write that completes at once and has no callback
** allocates nothing.
*/
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define READBUF_SIZE (64 * 1024)
#define MAX_BUFS (1 << 20)     /* a larger array is surely a mistake */

static uv_stream_t *check_stream(lua_State *L, int idx, lh_handle **hp) {
  lh_handle *h = lh_check_handle(L, idx, LH_STREAM_MASK);
  if (hp) *hp = h;
  return lh_uv(h, uv_stream_t);
}

/* A stream that may be closing (but not closed: that raises). On a
** closing stream luv lets libuv answer, and so do we, without calling
** libuv on it: it has no fd any more (has_fd below), so shutdown gives
** ENOTCONN, the writes EBADF and read_start EINVAL. */
static uv_stream_t *check_stream_live(lua_State *L, int idx,
                                      lh_handle **hp) {
  lh_handle *h = lh_check_handle_any(L, idx, LH_STREAM_MASK);
  if (h == NULL) luaL_argerror(L, idx, "attempt to use a closed handle");
  if (hp) *hp = h;
  return lh_uv(h, uv_stream_t);
}

/* A handle to pass over an ipc pipe. */
static lh_handle *check_send_handle(lua_State *L, int idx) {
  return lh_check_handle(L, idx, LH_SOCKET_MASK);
}

/* Has the handle a descriptor? A socket never bound, opened or connected
** has none: libuv asserts when asked to send it or shut it down. */
static int has_fd(uv_handle_t *uvh) {
  uv_os_fd_t fd;
  return uv_fileno(uvh, &fd) == 0;
}

/* {====================================================== requests */

/* Shared completion of write and shutdown requests: cb(err), then free. */
static void finish_req(lh_req *r, int status) {
  if (lh_req_push_cb(r)) {
    lh_push_status(r->ctx->L, status);
    lh_call(r->ctx, 1);
  }
  lh_req_free(r);
}

/* r->extra is write2's pinned send handle, or NULL. */
static void write_cb(uv_write_t *w, int status) {
  lh_req *r = lh_req_of(w);
  if (r->extra != NULL) lh_handle_unpin((lh_handle *)r->extra);
  finish_req(r, status);
}

static void shutdown_cb(uv_shutdown_t *sr, int status) {
  finish_req(lh_req_of(sr), status);
}

/* }====================================================== */

/* {====================================================== buffers */

/* Drop the first `done` bytes from bs (after a partial uv_try_write). */
static void skip_bytes(lh_bufs *bs, size_t done) {
  while (bs->n > 0 && done >= bs->bufs->len) {
    done -= bs->bufs->len;
    bs->bufs++;
    bs->n--;
  }
  if (bs->n > 0) {
    bs->bufs->base += done;
    bs->bufs->len -= done;
  }
}

/* }====================================================== */

/* {====================================================== writing */

/*
** write(stream, data [, cb]) and write2(stream, data, send_handle [, cb]).
** Plain writes go through uv_try_write first. Whatever is left is queued;
** a callback always runs from the loop, never from inside this call, so a
** write that completed at once but has a callback queues an empty buffer,
** which libuv completes on the next loop iteration.
*/
static int do_write(lua_State *L, int sendidx, int cbidx) {
  uv_stream_t *s = check_stream_live(L, 1, NULL);
  lh_handle *send = NULL;
  lh_bufs bs;
  int hascb, st, data_ref = LUA_NOREF;
  lh_req *r;
  uv_write_t *w;
  lua_settop(L, cbidx); /* a buffer array check_bufs pushes goes above */
  lh_check_bufs(L, 2, &bs, MAX_BUFS);
  if (sendidx) send = check_send_handle(L, sendidx);
  hascb = lh_opt_callable(L, cbidx);
  if (!has_fd((uv_handle_t *)s)) return lh_fail(L, UV_EBADF); /* closing */
  if (lh_is_listening(s)) return lh_fail(L, UV_ENOTCONN);
  if (send != NULL && !has_fd(send->uv)) return lh_fail(L, UV_EBADF);
  if (send == NULL) {
    st = uv_try_write(s, bs.bufs, bs.n);
    if (st >= 0) skip_bytes(&bs, (size_t)st); /* also drops empty strings */
    if (bs.n == 0) {
      if (!hascb) {
        lua_pushinteger(L, 0);
        return 1;
      }
      bs.small[0].base = (char *)"";
      bs.small[0].len = 0;
      bs.bufs = bs.small;
      bs.n = 1;
    }
  }
  if (bs.bufs[0].len > 0 || bs.n > 1) data_ref = lh_anchor_bufs(L, 2);
  r = lh_req_new(L, sizeof(uv_write_t), hascb ? cbidx : 0);
  r->data_ref = data_ref;
  w = lh_req_uv(r, uv_write_t);
  if (send != NULL) {
    /* libuv reads the send handle when the write reaches the head of the
    ** queue, maybe after the handle was closed: pin its memory till then */
    st = uv_write2(w, s, bs.bufs, bs.n, lh_uv(send, uv_stream_t), write_cb);
    if (st == 0) {
      r->extra = send;
      lh_handle_pin(send);
    }
  } else {
    st = uv_write(w, s, bs.bufs, bs.n, write_cb);
  }
  if (st < 0) {
    lh_req_free(r);
    return lh_fail(L, st);
  }
  lua_pushinteger(L, 0);
  return 1;
}

static int stream_write(lua_State *L) {
  return do_write(L, 0, 3);
}

/* Closing the sent handle before the callback ran makes the write fail
** with EBADF (its descriptor is read when the write is done). */
static int stream_write2(lua_State *L) {
  return do_write(L, 3, 4);
}

static int stream_try_write(lua_State *L) {
  uv_stream_t *s = check_stream_live(L, 1, NULL);
  lh_bufs bs;
  lua_settop(L, 2);
  lh_check_bufs(L, 2, &bs, MAX_BUFS);
  if (!has_fd((uv_handle_t *)s)) return lh_fail(L, UV_EBADF);
  return lh_result(L, uv_try_write(s, bs.bufs, bs.n));
}

static int stream_try_write2(lua_State *L) {
  uv_stream_t *s = check_stream_live(L, 1, NULL);
  lh_handle *sh;
  lh_bufs bs;
  lua_settop(L, 3);
  lh_check_bufs(L, 2, &bs, MAX_BUFS);
  sh = check_send_handle(L, 3);
  if (!has_fd((uv_handle_t *)s)) return lh_fail(L, UV_EBADF);
  if (!has_fd(sh->uv)) return lh_fail(L, UV_EBADF); /* libuv asserts */
  return lh_result(L, uv_try_write2(s, bs.bufs, bs.n,
                                    lh_uv(sh, uv_stream_t)));
}

static int stream_shutdown(lua_State *L) {
  uv_stream_t *s = check_stream_live(L, 1, NULL);
  int hascb = lh_opt_callable(L, 2), st;
  lh_req *r;
  if (!has_fd((uv_handle_t *)s) || lh_is_listening(s))
    return lh_fail(L, UV_ENOTCONN);
  r = lh_req_new(L, sizeof(uv_shutdown_t), hascb ? 2 : 0);
  st = uv_shutdown(lh_req_uv(r, uv_shutdown_t), s, shutdown_cb);
  if (st < 0) {
    lh_req_free(r);
    return lh_fail(L, st);
  }
  lua_pushinteger(L, 0);
  return 1;
}

/* }====================================================== */

/* {====================================================== reading */

/* The shared buffer (made by read_start through lh_readbuf); if there is
** none libuv reports UV_ENOBUFS to read_cb. */
static void alloc_cb(uv_handle_t *uvh, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  lh_readbuf_alloc(((lh_handle *)uvh->data)->ctx, buf);
}

/* cb(nil, data); at EOF cb() with no arguments, on error cb(err), as luv. */
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  lh_handle *h = (lh_handle *)s->data;
  lua_State *L = h->ctx->L;
  int owned = lh_readbuf_owned(h->ctx, buf);
  if (nread != 0 && lh_push_cb(h, LH_CB_EVENT)) { /* 0: EAGAIN */
    if (nread > 0) {
      lua_pushnil(L);
      lua_pushlstring(L, buf->base, (size_t)nread);
      lh_call(h->ctx, 2);
    } else if (nread == UV_EOF) {
      lh_call(h->ctx, 0);
    } else {
      lh_push_status(L, (int)nread);
      lh_call(h->ctx, 1);
    }
  }
  if (owned) free(buf->base);
}

/* The callback is stored only once libuv accepted the call, so a failed
** read_start leaves a listening stream's callback alone. */
static int stream_read_start(lua_State *L) {
  lh_handle *h;
  uv_stream_t *s = check_stream_live(L, 1, &h);
  int st;
  lh_check_callable(L, 2);
  if (uv_is_closing((uv_handle_t *)s)) return lh_fail(L, UV_EINVAL);
  if (!has_fd((uv_handle_t *)s) || lh_is_listening(s))
    return lh_fail(L, UV_ENOTCONN);
  lh_readbuf(L, READBUF_SIZE); /* the shared buffer alloc_cb hands out */
  st = uv_read_start(s, alloc_cb, read_cb);
  if (st < 0) return lh_fail(L, st);
  lh_set_cb(L, h, LH_CB_EVENT, 2);
  lua_pushinteger(L, 0);
  return 1;
}

static int stream_read_stop(lua_State *L) {
  return lh_result(L, uv_read_stop(check_stream(L, 1, NULL)));
}

/* }====================================================== */

/* {====================================================== listening */

/* The connection callback has its own slot (read_start uses LH_CB_EVENT),
** so a read_start on a listening stream cannot swap the two. */
static void connection_cb(uv_stream_t *s, int status) {
  lh_handle *h = (lh_handle *)s->data;
  if (lh_push_cb(h, LH_CB_AUX)) {
    lh_push_status(h->ctx->L, status);
    lh_call(h->ctx, 1);
  }
}

static int stream_listen(lua_State *L) {
  /* not check_stream: it would make a worker's deferred bind here */
  lh_handle *h = lh_check_handle_any(L, 1, LH_STREAM_MASK);
  uv_stream_t *s;
  int backlog, st;
  if (h == NULL || uv_is_closing(h->uv))
    luaL_argerror(L, 1, "attempt to use a closed handle");
  s = lh_uv(h, uv_stream_t);
  backlog = (int)lh_check_range(L, 2, 0, 0x7fffffff);
  lh_check_callable(L, 3);
  if (h->bind != NULL) st = lh_bind_listen(h, backlog);
  else st = lh_bind_error(h);
  /* libuv accepts until EAGAIN: a socket made blocking (set_blocking)
  ** would block the loop in accept once the backlog is empty */
  if (st == 0 && has_fd((uv_handle_t *)s)) st = uv_stream_set_blocking(s, 0);
  if (st == 0) st = uv_listen(s, backlog, connection_cb);
  if (st < 0) return lh_fail(L, st);
  lh_set_cb(L, h, LH_CB_AUX, 3);
  lua_pushinteger(L, 0);
  return 1;
}

static int stream_accept(lua_State *L) {
  uv_stream_t *server = check_stream(L, 1, NULL);
  uv_stream_t *client = check_stream(L, 2, NULL);
  return lh_result(L, uv_accept(server, client));
}

/* }====================================================== */

/* {====================================================== state */

static int stream_is_readable(lua_State *L) {
  lua_pushboolean(L, uv_is_readable(check_stream(L, 1, NULL)));
  return 1;
}

static int stream_is_writable(lua_State *L) {
  lua_pushboolean(L, uv_is_writable(check_stream(L, 1, NULL)));
  return 1;
}

static int stream_get_write_queue_size(lua_State *L) {
  uv_stream_t *s = check_stream(L, 1, NULL);
  lua_pushinteger(L, (lua_Integer)uv_stream_get_write_queue_size(s));
  return 1;
}

/* Refused on a listening stream (EINVAL): see stream_listen. */
static int stream_set_blocking(lua_State *L) {
  uv_stream_t *s = check_stream(L, 1, NULL);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  if (lh_is_listening(s) && lua_toboolean(L, 2))
    return lh_fail(L, UV_EINVAL);
  return lh_result(L, uv_stream_set_blocking(s, lua_toboolean(L, 2)));
}

/* }====================================================== */

const luaL_Reg lh_stream_methods[] = {
  {"accept", stream_accept},
  {"get_write_queue_size", stream_get_write_queue_size},
  {"is_readable", stream_is_readable},
  {"is_writable", stream_is_writable},
  {"listen", stream_listen},
  {"read_start", stream_read_start},
  {"read_stop", stream_read_stop},
  {"set_blocking", stream_set_blocking},
  {"shutdown", stream_shutdown},
  {"try_write", stream_try_write},
  {"try_write2", stream_try_write2},
  {"write", stream_write},
  {"write2", stream_write2},
  {NULL, NULL}
};

/* Module-level names are the method names, except two that luv prefixes. */
static const luaL_Reg stream_functions[] = {
  {"stream_get_write_queue_size", stream_get_write_queue_size},
  {"stream_set_blocking", stream_set_blocking},
  {NULL, NULL}
};

void lh_stream_open(lua_State *L) {
  luaL_setfuncs(L, lh_stream_methods, 0);
  lua_pushnil(L);
  lua_setfield(L, -2, "get_write_queue_size");
  lua_pushnil(L);
  lua_setfield(L, -2, "set_blocking");
  luaL_setfuncs(L, stream_functions, 0);
}
