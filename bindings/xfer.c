/*
** xfer.c: values and code copied between Lua states on different threads,
** and the bookkeeping of the substates that run them (see xfer.h).
** See Copyright Notice in README.md
**
** Encoding is two passes: the first only checks, in Lua, and raises
** naming the bad value; the second writes C memory and never raises (out
** of memory is a return code), so a failure leaves nothing allocated.
*/
#include <stdlib.h>
#include <string.h>

#include "xfer.h"

#define MAX_DEPTH 100        /* nesting of copied tables */

/* {====================================================== encoding */

/* Append len bytes; 0, or -1 when memory runs out. */
static int put(lh_buf *b, const void *s, size_t len) {
  if (b->cap - b->n < len) {
    size_t cap = b->cap ? b->cap : 64;
    char *p;
    while (cap - b->n < len) cap *= 2;
    p = (char *)realloc(b->p, cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
  return 0;
}

static int put_tag(lh_buf *b, char tag) { return put(b, &tag, 1); }

static int add_ref(lh_buf *b, void *shared) {
  if (b->nrefs == b->refcap) {
    int cap = b->refcap ? b->refcap * 2 : 4;
    void **p = (void **)realloc(b->refs, sizeof(void *) * (size_t)cap);
    if (p == NULL) return -1;
    b->refs = p;
    b->refcap = cap;
  }
  b->refs[b->nrefs++] = shared;
  return 0;
}

static const char *what(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TUSERDATA ? "userdata"
                                           : luaL_typename(L, idx);
}

/* Pass 1: raise unless the value at idx can cross. `seen` holds the
** tables on the current path (a cycle raises). */
static void check(lua_State *L, int idx, int flags, int seen, int depth,
                  int argn) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL: case LUA_TBOOLEAN: case LUA_TNUMBER: case LUA_TSTRING:
    case LUA_TLIGHTUSERDATA:
      return;
    case LUA_TUSERDATA: {
      uv_thread_t tid;
      void *sh;
      if (lh_thread_get(L, idx, &tid)) return;
      sh = lh_async_share(L, idx);
      if (sh != NULL) {
        lh_async_release(sh);
        return;
      }
      break;
    }
    case LUA_TTABLE:
      if (!(flags & LH_XFER_TABLES)) break;
      if (depth >= MAX_DEPTH)
        luaL_error(L, "cannot copy tables nested deeper than %d",
                   MAX_DEPTH);
      luaL_checkstack(L, 4, "nested tables");
      lua_pushvalue(L, idx);
      if (lua_rawget(L, seen) != LUA_TNIL)
        luaL_error(L, "cannot copy a table with a cycle");
      lua_pop(L, 1);
      lua_pushvalue(L, idx);
      lua_pushboolean(L, 1);
      lua_rawset(L, seen);
      lua_pushnil(L);
      while (lua_next(L, idx)) { /* raw: metatables are not copied */
        check(L, -2, flags, seen, depth + 1, 0);
        check(L, -1, flags, seen, depth + 1, 0);
        lua_pop(L, 1);
      }
      lua_pushvalue(L, idx);
      lua_pushnil(L);
      lua_rawset(L, seen);
      return;
    default:
      break;
  }
  if (argn > 0 && (flags & LH_XFER_ARGS))
    luaL_argerror(L, argn, lua_pushfstring(L,
                  "cannot copy a %s value to another thread", what(L, idx)));
  luaL_error(L, "cannot copy a %s value to or from a thread (%s)",
             what(L, idx), (flags & LH_XFER_TABLES)
             ? "plain data only"
             : "nil, boolean, number, string, thread, async");
}

/* Pass 2: write the value at idx; 0, or -1 when memory runs out. */
static int encode(lua_State *L, lh_buf *b, int idx) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return put_tag(b, 'n');
    case LUA_TBOOLEAN: return put_tag(b, lua_toboolean(L, idx) ? 'T' : 'F');
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        return put_tag(b, 'i') || put(b, &i, sizeof(i));
      } else {
        lua_Number d = lua_tonumber(L, idx);
        return put_tag(b, 'd') || put(b, &d, sizeof(d));
      }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      return put_tag(b, 's') || put(b, &len, sizeof(len)) ||
             put(b, s, len);
    }
    case LUA_TLIGHTUSERDATA: {
      void *p = lua_touserdata(L, idx);
      return put_tag(b, 'p') || put(b, &p, sizeof(p));
    }
    case LUA_TUSERDATA: { /* a thread or an async: check said so */
      uv_thread_t tid;
      void *sh;
      if (lh_thread_get(L, idx, &tid))
        return put_tag(b, 'h') || put(b, &tid, sizeof(tid));
      sh = lh_async_share(L, idx);
      if (sh == NULL) return -1;
      if (add_ref(b, sh) != 0) {
        lh_async_release(sh);
        return -1;
      }
      return put_tag(b, 'a') || put(b, &sh, sizeof(sh));
    }
    case LUA_TTABLE:
      if (put_tag(b, 't') != 0 || !lua_checkstack(L, 3)) return -1;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        if (encode(L, b, -2) != 0 || encode(L, b, -1) != 0) {
          lua_pop(L, 2);
          return -1;
        }
        lua_pop(L, 1);
      }
      return put_tag(b, 'e');
    default:
      return -1; /* check refused it already */
  }
}

void lh_xfer_put(lua_State *L, int first, int n, int flags, lh_buf *b) {
  int i, seen;
  first = lua_absindex(L, first);
  memset(b, 0, sizeof(*b));
  lua_newtable(L);
  seen = lua_gettop(L);
  for (i = 0; i < n; i++) check(L, first + i, flags, seen, 0, first + i);
  lua_pop(L, 1);
  for (i = 0; i < n; i++)
    if (encode(L, b, first + i) != 0) {
      lh_xfer_free(b);
      luaL_error(L, "not enough memory");
    }
}

void lh_xfer_free(lh_buf *b) {
  int i;
  for (i = 0; i < b->nrefs; i++) lh_async_release(b->refs[i]);
  free(b->refs);
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* }====================================================== */

/* {====================================================== decoding */

typedef struct reader {
  const char *p, *end;
} reader;

static void take(lua_State *L, reader *r, void *dst, size_t len) {
  if ((size_t)(r->end - r->p) < len) luaL_error(L, "corrupt thread data");
  memcpy(dst, r->p, len);
  r->p += len;
}

/* Push the next value; returns 0 (pushing nothing) at a table's end. */
static int decode(lua_State *L, reader *r) {
  char tag;
  luaL_checkstack(L, 3, "nested tables");
  take(L, r, &tag, 1);
  switch (tag) {
    case 'n': lua_pushnil(L); break;
    case 'T': lua_pushboolean(L, 1); break;
    case 'F': lua_pushboolean(L, 0); break;
    case 'i': {
      lua_Integer i;
      take(L, r, &i, sizeof(i));
      lua_pushinteger(L, i);
      break;
    }
    case 'd': {
      lua_Number d;
      take(L, r, &d, sizeof(d));
      lua_pushnumber(L, d);
      break;
    }
    case 's': {
      size_t len;
      take(L, r, &len, sizeof(len));
      if ((size_t)(r->end - r->p) < len) luaL_error(L, "corrupt thread data");
      lua_pushlstring(L, r->p, len);
      r->p += len;
      break;
    }
    case 'p': {
      void *p;
      take(L, r, &p, sizeof(p));
      lua_pushlightuserdata(L, p);
      break;
    }
    case 'a': {
      void *sh;
      take(L, r, &sh, sizeof(sh));
      lh_async_push(L, sh);
      break;
    }
    case 'h': {
      uv_thread_t tid;
      take(L, r, &tid, sizeof(tid));
      lh_thread_push(L, tid);
      break;
    }
    case 't':
      lua_newtable(L);
      while (decode(L, r)) { /* key */
        if (!decode(L, r)) luaL_error(L, "corrupt thread data");
        lua_rawset(L, -3);
      }
      break;
    case 'e': return 0;
    default: luaL_error(L, "corrupt thread data");
  }
  return 1;
}

int lh_xfer_push(lua_State *L, const lh_buf *b) {
  reader r;
  int n = 0;
  r.p = b->p;
  r.end = b->p + b->n;
  while (r.p < r.end) {
    luaL_checkstack(L, 1, "too many values");
    if (!decode(L, &r)) luaL_error(L, "corrupt thread data");
    n++;
  }
  return n;
}

/* }====================================================== */

/* {====================================================== code */

/* lua_dump's writer: must not raise, it reports (non-zero) instead. */
static int writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  return put((lh_buf *)ud, p, sz);
}

char *lh_dump_code(lua_State *L, int idx, size_t *len) {
  lh_buf b;
  memset(&b, 0, sizeof(b));
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tolstring(L, idx, len);
    /* Compile it here too: a syntax error is the caller's bad argument,
    ** not a message on another thread later. */
    if (luaL_loadbufferx(L, s, *len, "=thread", NULL) != LUA_OK)
      luaL_argerror(L, idx, lua_tostring(L, -1));
    lua_pop(L, 1);
    b.p = (char *)malloc(*len ? *len : 1);
    if (b.p == NULL) luaL_error(L, "not enough memory");
    memcpy(b.p, s, *len);
    return b.p;
  }
  luaL_argexpected(L, lua_type(L, idx) == LUA_TFUNCTION, idx,
                   "function or string");
  if (lua_iscfunction(L, idx))
    luaL_argerror(L, idx, "a C function cannot run in another thread");
  lua_pushvalue(L, idx);
  if (lua_dump(L, writer, &b, 0) != 0) {
    free(b.p);
    luaL_error(L, "cannot dump the function");
  }
  lua_pop(L, 1);
  *len = b.n;
  return b.p;
}

int lh_load_code(lua_State *T, const char *code, size_t len,
                 const char *chunkname) {
  int i, st;
  const char *name;
  int binary = len > 0 && code[0] == LUA_SIGNATURE[0];
  st = luaL_loadbufferx(T, code, len, chunkname, binary ? "b" : "t");
  if (st != LUA_OK || !binary) return st;
  /* A dumped function's upvalues have no meaning here: _ENV becomes the
  ** globals, the others nil. */
  for (i = 1; (name = lua_getupvalue(T, -1, i)) != NULL; i++) {
    lua_pop(T, 1);
    if (strcmp(name, "_ENV") == 0)
      lua_pushglobaltable(T);
    else
      lua_pushnil(T);
    lua_setupvalue(T, -2, i);
  }
  return st;
}

/* }====================================================== */

/* {====================================================== substates */

int lh_sub_init(lh_sub *s) {
  memset(s, 0, sizeof(*s));
  return uv_mutex_init(&s->mutex);
}

void lh_sub_destroy(lh_sub *s) { uv_mutex_destroy(&s->mutex); }

void lh_sub_cancel(lh_sub *s) {
  __atomic_store_n(&s->cancel, 1, __ATOMIC_RELAXED);
  uv_mutex_lock(&s->mutex);
  if (s->wake) uv_async_send(s->wake);
  uv_mutex_unlock(&s->mutex);
}

int lh_sub_cancelled(lh_sub *s) {
  return __atomic_load_n(&s->cancel, __ATOMIC_RELAXED);
}

/*
** One list per state, created on first use, held by an internal handle
** that is never started: the host's shutdown walk closes it, and its
** close callback is the moment to stop and collect every thread and job.
*/
typedef struct lh_subs {
  uv_check_t handle;     /* first: found from the handle by a cast */
  lh_internal internal;
  lua_State *L;
  lh_sub *list;
} lh_subs;

static const char subs_key = 's';

static void subs_closed(uv_handle_t *h) {
  lh_subs *reg = (lh_subs *)h;
  lh_sub *s, *next;
  lua_checkstack(reg->L, LUA_MINSTACK); /* see lh_push_cb */
  lua_pushnil(reg->L); /* forget it: a later use makes a new one */
  lua_rawsetp(reg->L, LUA_REGISTRYINDEX, &subs_key);
  for (s = reg->list; s; s = s->next) lh_sub_cancel(s);
  for (s = reg->list; s; s = next) {
    next = s->next;
    s->reg = NULL;
    s->prev = s->next = NULL;
    if (s->on_exit) s->on_exit(s);
  }
  free(reg);
}

void lh_subs_cancel(lua_State *L, void (*only)(lh_sub *s)) {
  lh_subs *reg;
  lh_sub *s;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &subs_key);
  reg = (lh_subs *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (reg == NULL) return;
  for (s = reg->list; s; s = s->next)
    if (s->on_exit == only) lh_sub_cancel(s);
}

void lh_sub_track(lua_State *L, lh_sub *s) {
  lh_ctx *ctx = lh_getctx(L);
  lh_subs *reg;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &subs_key);
  reg = (lh_subs *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (reg == NULL) {
    reg = (lh_subs *)calloc(1, sizeof(lh_subs));
    if (reg == NULL) luaL_error(L, "not enough memory");
    reg->internal.tag = &lh_internal_tag;
    reg->internal.close_cb = subs_closed;
    reg->L = ctx->L;
    uv_check_init(ctx->loop, &reg->handle);
    reg->handle.data = &reg->internal;
    uv_unref((uv_handle_t *)&reg->handle);
    lua_pushlightuserdata(L, reg);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &subs_key);
  }
  s->reg = reg;
  s->prev = NULL;
  s->next = reg->list;
  if (reg->list) reg->list->prev = s;
  reg->list = s;
}

void lh_sub_untrack(lh_sub *s) {
  if (s->reg == NULL) return;
  if (s->prev) s->prev->next = s->next;
  else s->reg->list = s->next;
  if (s->next) s->next->prev = s->prev;
  s->reg = NULL;
  s->prev = s->next = NULL;
}

/* }====================================================== */
