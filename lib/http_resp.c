/*
** http_resp.c: the server's response head, serialized in C.
** See Copyright Notice in README.md
**
** build_head makes the whole head of a response (status line, the fields
** the handler set, Date, the framing fields, Connection) in one string,
** with the body after it when it is small, so that a plain response is
** one allocation and one write; header_set is res:header's common case
** (a valid field, set or removed) without the Lua VM. Both decide exactly
** as http.server did in Lua: anything unusual (a bad name or value, a
** reserved field) is left to the Lua path, which raises the error.
*/
#include <string.h>
#include <time.h>

#include "http_core.h"

#define MAX_KEY 256      /* header_set: longer names take the Lua path */
#define MAX_INLINE 16384 /* a larger body is written after the head */

/* [s, s+n) equals the lower-case b, in any case? */
static int ieq(const char *s, size_t n, const char *b, size_t bl) {
  size_t i;
  if (n != bl) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != b[i]) return 0;
  }
  return 1;
}

/* Does the comma list v hold "close" (any case, blanks trimmed)? As
** common.has_token(v, "close"). */
static int has_close(const char *v, size_t n) {
  size_t i = 0;
  while (i <= n) {
    size_t s = i, e;
    while (i < n && v[i] != ',') i++;
    e = i;
    while (s < e && (v[s] == ' ' || v[s] == '\t')) s++;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (ieq(v + s, e - s, "close", 5)) return 1;
    i++;
  }
  return 0;
}

/* "Date: <IMF-fixdate>\r\n", made once a second (per thread: a Lua state
** may run in a thread of its own). */
static _Thread_local time_t date_t = (time_t)-1;
static _Thread_local char date_buf[48];
static _Thread_local size_t date_len;

const char *http_date_line(size_t *len) {
  static const char wd[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
                                "Sat"};
  static const char mo[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t t = time(NULL);
  if (t != date_t) {
    struct tm tm;
    int n;
    if (gmtime_r(&t, &tm) == NULL) memset(&tm, 0, sizeof tm);
    n = snprintf(date_buf, sizeof date_buf,
                 "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                 wd[tm.tm_wday % 7], tm.tm_mday, mo[tm.tm_mon % 12],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    date_len = n > 0 && (size_t)n < sizeof date_buf ? (size_t)n : 0;
    date_t = t;
  }
  *len = date_len;
  return date_buf;
}

/* A field of the flat list (name, value, lower-case name per field). */
typedef struct fld {
  const char *s;
  size_t n;
} fld;

static fld list_str(lua_State *L, int list, lua_Integer i) {
  fld f;
  if (lua_rawgeti(L, list, i) != LUA_TSTRING)
    luaL_error(L, "build_head: header list item %d is not a string",
               (int)i);
  f.s = lua_tolstring(L, -1, &f.n); /* anchored by the list */
  lua_pop(L, 1);
  return f;
}

/* No body, and no framing field for one: 1xx, 204 and 304. (205 has no
** body either but must say so, Content-Length: 0, RFC 9110 15.3.6: build
** treats it apart.) */
static int no_body_status(lua_Integer s) {
  return s < 200 || s == 204 || s == 304;
}

/* x in decimal at p, as "%lld" (snprintf cost ~700 instructions, a
** tenth of a plain response's head); returns the end. */
static char *add_int(char *p, lua_Integer x) {
  char num[24];
  int k = (int)sizeof num;
  unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x
                               : (unsigned long long)x;
  if (x < 0) *p++ = '-';
  do {
    num[--k] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  memcpy(p, num + k, sizeof num - (size_t)k);
  return p + (sizeof num - (size_t)k);
}

/* A Content-Length value: 1*DIGIT that fits a lua_Integer. */
static int parse_length(const char *s, size_t n, lua_Integer *out) {
  lua_Integer x = 0;
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    int d = s[i] - '0';
    if (d < 0 || d > 9 || x > (LUA_MAXINTEGER - d) / 10) return 0;
    x = x * 10 + d;
  }
  *out = x;
  return 1;
}

#define ADD(p, s, n) (memcpy((p), (s), (n)), (p) += (n))
#define ADDLIT(p, lit) ADD(p, lit, sizeof(lit) - 1)

/*
** build_head(res, length, req, reason [, body]) -> data, body_apart
** res._status, res._headers (flat list), res._close; req.version,
** req.close, req.method. length: the body's length when known (nil:
** chunked on HTTP/1.1, else until close), unless the handler set a
** Content-Length. Sets res._length, res._chunked, res._close and
** res.head_sent. data is the head, followed by body when one is given,
** may be sent (not HEAD, a status with a body) and is at most 16 KiB;
** body_apart is true when a body that may be sent is not in data.
*/
/* The field names build_head reads and sets, interned once: upvalues
** (lua_gettable with one of them costs no look-up of a C string). */
enum { RK_STATUS = 1, RK_CLOSE, RK_VERSION, RK_RCLOSE, RK_METHOD,
       RK_HEADERS, RK_LENGTH, RK_CHUNKED, RK_HEAD_SENT, RK_N = RK_HEAD_SENT };
static const char *const rk_names[RK_N] = {
  "_status", "_close", "version", "close", "method", "_headers", "_length",
  "_chunked", "head_sent"
};
/* push t[key] (metamethods as lua_getfield); returns its type */
static int rget(lua_State *L, int t, int k) {
  lua_pushvalue(L, lua_upvalueindex(k));
  return lua_gettable(L, t);
}
/* t[key] = the value at the top, popped */
static void rset(lua_State *L, int t, int k) {
  lua_pushvalue(L, lua_upvalueindex(k));
  lua_insert(L, -2);
  lua_settable(L, t);
}

/* The head of the response at res (its request at req), as build_head
** describes, for status (100..999): pushes data and body_apart (and
** leaves temporaries below them). reason: the status's phrase; body: NULL
** for none. */
static void build(lua_State *L, int res, lua_Integer status, int has_length,
                  lua_Integer length, int req, const char *reason, size_t rl,
                  const char *body, size_t bl) {
  lua_Integer cl = 0, n, i;
  int has_cl = 0, any_cl = 0, skip_cl, has_date = 0, close,
      first_conn = -1;
  int v11, req_close, head_req, allowed;
  size_t total, dl = 0;
  const char *date = NULL;
  char *p, *start;
  luaL_Buffer b;
  int base = lua_gettop(L), list = base + 5;
  rget(L, res, RK_CLOSE);                           /* base + 1 */
  close = lua_toboolean(L, base + 1);
  /* (raw: a server's request has version only when it is not HTTP/1.1,
  ** the default of its metatable, whose __index a miss would call) */
  lua_pushvalue(L, lua_upvalueindex(RK_VERSION));   /* base + 2 */
  if (lua_rawget(L, req) == LUA_TNIL) {
    v11 = 1;
  } else {
    size_t vl;
    const char *v = lua_tolstring(L, base + 2, &vl);
    v11 = v != NULL && vl == 8 && memcmp(v, "HTTP/1.1", 8) == 0;
  }
  /* (raw: a server's request has close only when true, and a read
  ** that misses would call its __index) */
  lua_pushvalue(L, lua_upvalueindex(RK_RCLOSE));    /* base + 3 */
  lua_rawget(L, req);
  req_close = lua_toboolean(L, base + 3);
  rget(L, req, RK_METHOD);                          /* base + 4 */
  {
    size_t ml;
    const char *m = lua_tolstring(L, base + 4, &ml);
    head_req = m != NULL && ml == 4 && memcmp(m, "HEAD", 4) == 0;
  }
  if (rget(L, res, RK_HEADERS) != LUA_TTABLE)       /* base + 5: list */
    luaL_argerror(L, 1, "no header list");
  n = (lua_Integer)lua_rawlen(L, list);
  /* pass 1: what the fields decide, and the size */
  total = 9 + 3 + 1 + rl + 2 + 2;
  for (i = 1; i + 2 <= n; i += 3) {
    fld name = list_str(L, list, i), value = list_str(L, list, i + 1);
    fld key = list_str(L, list, i + 2);
    total += name.n + 2 + value.n + 2;
    if (key.n == 4 && memcmp(key.s, "date", 4) == 0) {
      has_date = 1;
    } else if (key.n == 14 && memcmp(key.s, "content-length", 14) == 0) {
      /* res:header lets only one, of digits, through (a second, or
      ** one the peer could read otherwise, would break the framing) */
      if (any_cl || !parse_length(value.s, value.n, &cl))
        luaL_error(L, "build_head: %s Content-Length",
                   any_cl ? "a second" : "a bad");
      any_cl = has_cl = 1;
    } else if (key.n == 10 && memcmp(key.s, "connection", 10) == 0) {
      int c = has_close(value.s, value.n);
      if (c) close = 1;
      if (first_conn < 0) first_conn = c;
    }
  }
  /* A whole body and a Content-Length of the handler's that disagree:
  ** one of them would break the framing (a client waiting for bytes that
  ** never come, or taking the rest for the next response) */
  if (has_cl && has_length && cl != length && !head_req &&
      !no_body_status(status) && status != 205)
    luaL_error(L, "send: Content-Length is %I but the body has %I bytes",
               (LUAI_UACINT)cl, (LUAI_UACINT)length);
  if (!has_date) {
    date = http_date_line(&dl);
    total += dl;
  }
  total += 128; /* the framing and Connection fields */
  allowed = body != NULL && bl > 0 && !head_req && !no_body_status(status) &&
            status != 205;
  if (allowed && bl <= MAX_INLINE) total += bl;
  start = p = luaL_buffinitsize(L, &b, total);
  ADDLIT(p, "HTTP/1.1 ");
  *p++ = (char)('0' + status / 100);
  *p++ = (char)('0' + status / 10 % 10);
  *p++ = (char)('0' + status % 10);
  *p++ = ' ';
  ADD(p, reason, rl);
  ADDLIT(p, "\r\n");
  /* 1xx and 204 send no Content-Length, and 205 its own 0 (RFC 9110
  ** 8.6, 15.3.6): a handler's goes (rare: only then is the key read) */
  skip_cl = any_cl && (status < 200 || status == 204 || status == 205);
  for (i = 1; i + 2 <= n; i += 3) {
    fld name = list_str(L, list, i), value = list_str(L, list, i + 1);
    if (skip_cl) {
      fld key = list_str(L, list, i + 2);
      if (key.n == 14 && memcmp(key.s, "content-length", 14) == 0) continue;
    }
    ADD(p, name.s, name.n);
    ADDLIT(p, ": ");
    ADD(p, value.s, value.n);
    ADDLIT(p, "\r\n");
  }
  if (date) ADD(p, date, dl);
  if (no_body_status(status)) {
    lua_pushinteger(L, 0);
  } else if (status == 205) {
    ADDLIT(p, "Content-Length: 0\r\n");
    lua_pushinteger(L, 0);
  } else if (has_cl) {
    lua_pushinteger(L, cl);
  } else if (has_length) {
    ADDLIT(p, "Content-Length: ");
    p = add_int(p, length);
    ADDLIT(p, "\r\n");
    lua_pushinteger(L, length);
  } else if (v11) {
    ADDLIT(p, "Transfer-Encoding: chunked\r\n");
    lua_pushboolean(L, 1);
    rset(L, res, RK_CHUNKED);
    lua_pushnil(L);
  } else {
    close = 1; /* the end of the body is the end of the connection */
    lua_pushnil(L);
  }
  if (!lua_isnil(L, -1)) rset(L, res, RK_LENGTH);
  else lua_pop(L, 1);
  if (req_close || close) {
    close = 1;
    if (v11 && first_conn != 1) ADDLIT(p, "Connection: close\r\n");
  } else if (!v11) {
    ADDLIT(p, "Connection: keep-alive\r\n");
  }
  ADDLIT(p, "\r\n");
  if (allowed && bl <= MAX_INLINE) ADD(p, body, bl);
  if (close) {
    lua_pushboolean(L, 1);
    rset(L, res, RK_CLOSE);
  }
  lua_pushboolean(L, 1);
  rset(L, res, RK_HEAD_SENT);
  luaL_pushresultsize(&b, (size_t)(p - start));
  lua_pushboolean(L, allowed && bl > MAX_INLINE);
}

static int resp_build_head(lua_State *L) {
  lua_Integer length = 0;
  int has_length;
  size_t rl, bl = 0;
  const char *reason, *body;
  luaL_checktype(L, 1, LUA_TTABLE);
  has_length = !lua_isnoneornil(L, 2);
  if (has_length) length = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  reason = luaL_optlstring(L, 4, "Unknown", &rl);
  body = luaL_optlstring(L, 5, NULL, &bl);
  lua_settop(L, 5);
  {
    lua_Integer status;
    rget(L, 1, RK_STATUS);
    status = lua_tointeger(L, 6);
    luaL_argcheck(L, status >= 100 && status <= 999, 1, "bad _status");
    build(L, 1, status, has_length, length, 3, reason, rl, body, bl);
  }
  return 2;
}

/*
** send_fast(res, status, body) -> true | false: res:send's common case
** (the head not sent, a valid status or none, a string body or none) whole
** in C: the status set, the head built with the body, written (a write
** that must wait for the peer yields, as conn:write does), res finished.
** False, res untouched, for any other case: res:send's Lua does it, and
** raises its errors. A failed write is send_failed(res, err), which
** raises. One per server without gzip (send_method): its net state's
** `closed` (a drain) makes the response the connection's last.
*/
enum { SK_REQ = RK_N + 1, SK_CLOSED, SK_SENT, SK_FINISHED, SK_CONN,
       SK_REASON, SK_WRITE, SK_FAILED, SK_ST };
static const char *const sk_names[] = {
  "_req", "closed", "_sent", "finished", "_conn"
};
#define SK_NNAMES ((int)(sizeof sk_names / sizeof sk_names[0]))

/* after the write (at once, or resumed after waiting): results at -2,
** -1 */
static int send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  if (!lua_toboolean(L, -2)) {
    int err = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(SK_FAILED));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, err);
    lua_call(L, 2, 0); /* raises */
  }
  lua_pushboolean(L, 1);
  rset(L, 1, SK_FINISHED);
  lua_pushboolean(L, 1);
  return 1;
}

static int resp_send_fast(lua_State *L) {
  int ts, tb, bi, req;
  lua_Integer st = 0;
  size_t bl = 0, rl = 7;
  const char *body = "", *reason = "Unknown";
  lua_settop(L, 3);
  if (lua_type(L, 1) != LUA_TTABLE) goto decline;
  ts = lua_type(L, 2);
  tb = lua_type(L, 3);
  if (tb == LUA_TNIL && ts == LUA_TSTRING) { /* send(body) */
    bi = 2;
    ts = LUA_TNIL;
  } else if (tb == LUA_TNIL || tb == LUA_TSTRING) {
    bi = tb == LUA_TSTRING ? 3 : 0;
  } else {
    goto decline;
  }
  if (ts != LUA_TNIL) {
    if (!lua_isinteger(L, 2)) goto decline;
    st = lua_tointeger(L, 2);
    if (st < 200 || st > 599) goto decline; /* (Lua raises) */
  }
  if (rget(L, 1, RK_HEAD_SENT) != LUA_TBOOLEAN || lua_toboolean(L, -1) ||
      rget(L, 1, SK_REQ) != LUA_TTABLE)
    goto decline;
  req = lua_gettop(L);
  /* the response is this function's from here */
  if (bi) body = lua_tolstring(L, bi, &bl);
  if (ts != LUA_TNIL) {
    lua_pushinteger(L, st);
    rset(L, 1, RK_STATUS);
  } else {
    rget(L, 1, RK_STATUS);
    st = lua_tointeger(L, -1);
  }
  lua_pushinteger(L, (lua_Integer)bl);
  rset(L, 1, SK_SENT);
  /* a closed server (a drain): this is the connection's last response */
  if (rget(L, lua_upvalueindex(SK_ST), SK_CLOSED) != LUA_TNIL &&
      lua_toboolean(L, -1)) {
    lua_pushboolean(L, 1);
    rset(L, 1, RK_CLOSE);
  }
  if (lua_rawgeti(L, lua_upvalueindex(SK_REASON), st) == LUA_TSTRING)
    reason = lua_tolstring(L, -1, &rl); /* (anchored by the table) */
  build(L, 1, st, 1, (lua_Integer)bl, req, reason, rl, body, bl);
  {
    int apart = lua_toboolean(L, -1), data = lua_gettop(L) - 1;
    lua_pushvalue(L, lua_upvalueindex(SK_WRITE));
    rget(L, 1, SK_CONN);
    lua_pushvalue(L, data);
    if (apart) lua_pushvalue(L, bi);
    lua_callk(L, apart ? 3 : 2, 2, 0, send_k);
  }
  return send_k(L, LUA_OK, 0);
decline:
  lua_pushboolean(L, 0);
  return 1;
}

/* send_method(reasons, conn_write, send_failed, net_state) -> send_fast
** for one server */
static int resp_send_method(lua_State *L) {
  int i;
  luaL_checktype(L, 1, LUA_TTABLE);    /* the reason phrases */
  luaL_checktype(L, 2, LUA_TFUNCTION); /* conn:write */
  luaL_checktype(L, 3, LUA_TFUNCTION); /* send_failed */
  luaL_checktype(L, 4, LUA_TTABLE);    /* net's state of the server */
  lua_settop(L, 4);
  for (i = 0; i < RK_N; i++) lua_pushstring(L, rk_names[i]);
  for (i = 0; i < SK_NNAMES; i++) lua_pushstring(L, sk_names[i]);
  for (i = 1; i <= 4; i++) lua_pushvalue(L, i);
  lua_pushcclosure(L, resp_send_fast, SK_ST);
  return 1;
}

/*
** header_set(list, name, value|nil, add) -> true | false
** res:header / res:add_header on the flat list (name, value, lower-case
** name per field): removes the fields of that name (unless add), then
** appends the new one (unless value is nil). False, the list untouched,
** for anything else (a name or value that is not a string, a bad name or
** value, a reserved field): the Lua path then raises the right error.
*/
/* header_set's work on the list at index list, name at ni, value at vi
** (absolute indices): 1 done, 0 for the Lua path. */
static int list_set(lua_State *L, int list, int ni, int vi, int add) {
  size_t nl, vl = 0, i;
  const char *name, *value = NULL;
  char key[MAX_KEY];
  lua_Integer n, j, w;
  if (lua_type(L, ni) != LUA_TSTRING) return 0;
  name = lua_tolstring(L, ni, &nl);
  if (!lua_isnoneornil(L, vi)) {
    if (lua_type(L, vi) != LUA_TSTRING) return 0;
    value = lua_tolstring(L, vi, &vl);
  }
  if (nl == 0 || nl > MAX_KEY) return 0;
  for (i = 0; i < nl; i++) {
    char c = name[i];
    if (!HTTP_TCHAR(c)) return 0;
    key[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
  }
  /* (reserved; and a Content-Length is checked in Lua: digits only) */
  if ((nl == 17 && memcmp(key, "transfer-encoding", 17) == 0) ||
      (nl == 14 && memcmp(key, "content-length", 14) == 0))
    return 0;
  for (i = 0; value != NULL && i < vl; i++)
    if (!HTTP_VCHAR(value[i])) return 0;
  n = (lua_Integer)lua_rawlen(L, list);
  if (!add && n > 0) { /* remove every field of that name, in place */
    for (j = 1, w = 1; j + 2 <= n; j += 3) {
      size_t kl;
      const char *k;
      lua_rawgeti(L, list, j + 2);
      k = lua_tolstring(L, -1, &kl);
      lua_pop(L, 1);
      if (k != NULL && kl == nl && memcmp(k, key, nl) == 0) continue;
      if (w != j) {
        int d;
        for (d = 0; d < 3; d++) {
          lua_rawgeti(L, list, j + d);
          lua_rawseti(L, list, w + d);
        }
      }
      w += 3;
    }
    for (j = w; j <= n; j++) {
      lua_pushnil(L);
      lua_rawseti(L, list, j);
    }
    n = w - 1;
  }
  if (value != NULL) {
    lua_pushvalue(L, ni);
    lua_rawseti(L, list, n + 1);
    lua_pushvalue(L, vi);
    lua_rawseti(L, list, n + 2);
    lua_pushlstring(L, key, nl);
    lua_rawseti(L, list, n + 3);
  }
  return 1;
}

static int resp_header_set(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 4);
  lua_pushboolean(L, list_set(L, 1, 2, 3, lua_toboolean(L, 4)));
  return 1;
}

/*
** header_method(slow, add, fname) -> res:header (add false) or
** res:add_header (add true) as a C function: a valid field set on
** res._headers before the head is sent, res returned; anything else (and
** every error) is slow(res, name, value, add, fname), the Lua it replaces.
*/
static int resp_header_call(lua_State *L) {
  int add = lua_toboolean(L, lua_upvalueindex(2));
  lua_settop(L, 3);
  if (lua_type(L, 1) == LUA_TTABLE) {
    /* (the keys are upvalues 4 and 5: no C string to intern a call) */
    lua_pushvalue(L, lua_upvalueindex(4));
    lua_gettable(L, 1); /* 4: head_sent (a default in the metatable) */
    if (!lua_toboolean(L, 4) &&
        (lua_pushvalue(L, lua_upvalueindex(5)),
         lua_gettable(L, 1) == LUA_TTABLE) && /* 5: _headers */
        list_set(L, 5, 2, 3, add)) {
      lua_settop(L, 1);
      return 1;
    }
    lua_settop(L, 3);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_call(L, 5, 1);
  return 1;
}

static int resp_header_method(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TSTRING);
  lua_settop(L, 3);
  lua_pushboolean(L, lua_toboolean(L, 2));
  lua_replace(L, 2);
  lua_pushliteral(L, "head_sent");
  lua_pushliteral(L, "_headers");
  lua_pushcclosure(L, resp_header_call, 5);
  return 1;
}

void http_resp_open(lua_State *L) {
  int i;
  for (i = 0; i < RK_N; i++) lua_pushstring(L, rk_names[i]);
  lua_pushcclosure(L, resp_build_head, RK_N);
  lua_setfield(L, -2, "build_head");
}

/*
** send_args(status, body) -> status, body | false, typename: res:send's
** two forms ([status,] [body]) told apart in C: two type() calls in Lua
** cost ~700 instructions a response (type() pushes its name through the
** string cache). false when body is neither nil nor a string (the Lua
** side raises, naming the caller's line).
*/
static int resp_send_args(lua_State *L) {
  int ts = lua_type(L, 1), tb = lua_type(L, 2);
  if (tb == LUA_TNIL || tb == LUA_TNONE) {
    if (ts == LUA_TSTRING) { /* send(body) */
      lua_pushnil(L);
      lua_pushvalue(L, 1);
      return 2;
    }
  } else if (tb != LUA_TSTRING) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, luaL_typename(L, 2));
    return 2;
  }
  lua_settop(L, 2);
  return 2;
}

const luaL_Reg http_resp_funcs[] = {
  {"send_args", resp_send_args},
  {"send_method", resp_send_method},
  {"header_set", resp_header_set},
  {"header_method", resp_header_method},
  {NULL, NULL}
};
