/*
** http_fixed.c: fixed responses answered in C (http.fixed), as nginx's
** `return`: a request for one of them is read, checked and answered
** while its connection waits for its next request, with no task woken,
** no Lua table made and no Lua run.
** See Copyright Notice in README.md
**
** A server's answers (core.answers, one per http.listen whose handler is
** an http.fixed or a router with fixed routes) hold the bytes of each
** fixed response, made by the server's own Lua (build_head) when the
** route was added: the C answer is the same bytes the Lua handler sends,
** but the Date line, inserted here. They are net's answer for the server
** (net_answer, netcore.h): net asks them first when input arrives for one
** of its conns between two requests. A request is answered here only
** when it is whole in that input and one the Lua would answer the same
** way with nothing else to do: a valid head (http_scan_head, the parser
** the Lua path uses, with the server's limits), GET or HEAD, no
** body, no Connection: close (HTTP/1.0: a keep-alive), a path with a
** fixed response for its method (one that is the same for every request:
** not a body gzip compresses for some), the server open; the log
** module's access line, when it is on, is written here. Anything else,
** and everything after it in the input, goes to the Lua path as before,
** so responses stay in order.
*/
#include <stdlib.h>
#include <string.h>

#include "http_core.h"
#include "netcore.h"
#include "log.h"

/* One response: its bytes without the Date line, which goes at date
** (-1: none, the handler's fields had one). */
typedef struct fixed_resp {
  char *data;
  size_t len;
  long date;
  size_t hend; /* where the head's last CRLF is (in data): an HTTP/1.0
                  keep-alive request's "Connection: keep-alive" goes
                  there */
  size_t blen; /* the body's length (the access line's bytes) */
  int status;
} fixed_resp;

/* A path and the response of each method (none: the Lua answers it). */
typedef struct fixed_route {
  char *path;
  size_t plen;
  fixed_resp get, head;
} fixed_route;

typedef struct answers {
  net_answer base;   /* first: net's view */
  http_limits lim;   /* the server's: a head it refuses is the Lua's */
  int log;           /* its access log: 0 none, 1 the log module's (on at
                        info: its line written here) */
  int nroutes;
  fixed_route *routes; /* hashed by path, open addressing, a power of 2 */
  int cap;
  fixed_route all;   /* the handler itself is fixed: every path */
  int has_all;
  lua_Integer answered; /* requests answered here (count()) */
} answers;

#define ANSWERS "http.answers"

static void resp_free(fixed_resp *r) {
  free(r->data);
  r->data = NULL;
}

static void routes_free(answers *a) {
  int i;
  for (i = 0; i < a->cap; i++) {
    fixed_route *r = &a->routes[i];
    if (r->path == NULL) continue;
    free(r->path);
    resp_free(&r->get);
    resp_free(&r->head);
  }
  free(a->routes);
  a->routes = NULL;
  a->cap = a->nroutes = 0;
  resp_free(&a->all.get);
  resp_free(&a->all.head);
  a->has_all = 0;
}

static void answers_free(net_answer *na) {
  answers *a = (answers *)na;
  routes_free(a);
  free(a);
}

static unsigned hash_path(const char *p, size_t n) {
  unsigned h = 2166136261u; /* FNV-1a */
  size_t i;
  for (i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
  return h;
}

static fixed_route *find_route(answers *a, const char *p, size_t n) {
  unsigned i;
  if (a->cap == 0) return NULL;
  for (i = hash_path(p, n) & (unsigned)(a->cap - 1);;
       i = (i + 1) & (unsigned)(a->cap - 1)) {
    fixed_route *r = &a->routes[i];
    if (r->path == NULL) return NULL;
    if (r->plen == n && memcmp(r->path, p, n) == 0) return r;
  }
}

/* Responses gathered for one write: pipelined requests answered in one
** writev, as many as fit. */
#define MAX_BUFS 48

/* r's buffers into b at *nb, the Date line where it goes, and for an
** HTTP/1.0 request that keeps the connection, the field saying so (as
** build_head adds it): at most 5. */
static const char KEEP[] = "Connection: keep-alive\r\n";

static void add_resp(uv_buf_t *b, int *nb, const fixed_resp *r,
                     const char *d, size_t dl, int v10) {
  size_t at = 0, date = (size_t)r->date;
  size_t cut[2];
  int i;
  cut[0] = r->date < 0 ? 0 : date;
  cut[1] = v10 ? r->hend : r->len;
  for (i = 0; i < 2; i++) {
    if (cut[i] > at) b[(*nb)++] = uv_buf_init(r->data + at,
                                              (unsigned)(cut[i] - at));
    if (cut[i] > at) at = cut[i];
    if (i == 0 && r->date >= 0) b[(*nb)++] = uv_buf_init((char *)d,
                                                         (unsigned)dl);
    if (i == 1 && v10) b[(*nb)++] = uv_buf_init((char *)KEEP,
                                                sizeof KEEP - 1);
  }
  if (r->len > at) b[(*nb)++] = uv_buf_init(r->data + at,
                                            (unsigned)(r->len - at));
}

/* The longest "METHOD target" whose access line C writes (a longer one
** is the Lua's, whose log cuts a line as the module does). */
#define MSG_MAX 1024

/* The access line of a request answered here: the log module's, as
** http.server's access_log writes it (msg "METHOD target"; bytes, the
** body's length; ms, the time taken, none here; peer; status; version),
** fields in key order. */
static void access_line(const http_scan *sc, const fixed_resp *r,
                        const char *peer, size_t pl) {
  static const char *const keys[5] = {"bytes", "ms", "peer", "status",
                                      "version"};
  static const int quoted[5] = {0, 0, 1, 0, 1};
  char msg[MSG_MAX], bytes[24], status[8];
  const char *vals[5];
  size_t vl[5], tl = (size_t)(sc->te - sc->t), ml;
  memcpy(msg, sc->m, sc->ml);
  msg[sc->ml] = ' ';
  memcpy(msg + sc->ml + 1, sc->t, tl);
  ml = sc->ml + 1 + tl;
  vals[0] = bytes;
  vl[0] = (size_t)snprintf(bytes, sizeof bytes, "%zu", r->blen);
  vals[1] = "0.0";
  vl[1] = 3;
  vals[2] = peer;
  vl[2] = pl;
  vals[3] = status;
  vl[3] = (size_t)snprintf(status, sizeof status, "%d", r->status);
  vals[4] = sc->h.version == 10 ? "HTTP/1.0" : "HTTP/1.1";
  vl[4] = 8;
  host_log_fields(HOST_LOG_INFO, msg, ml, 5, keys, vals, vl, quoted);
}

/* May the request at [p, end) be one answered here, by its request line
** alone? 0 only when it surely is not (not GET or HEAD, or an
** origin-form path with no fixed response): a request for the Lua costs
** a look at its first line, not a whole scan of its head. */
static int may_answer(answers *a, const char *p, const char *end) {
  const char *t, *q;
  if (end - p >= 4 && memcmp(p, "GET ", 4) == 0) t = p + 4;
  else if (end - p >= 5 && memcmp(p, "HEAD ", 5) == 0) t = p + 5;
  else return *p == '\r' || *p == '\n'; /* (empty lines first: scan) */
  if (a->has_all || t == end || *t != '/') return 1; /* (the scan says) */
  for (q = t; q < end && *q != ' ' && *q != '?' && *q != '\r' &&
              *q != '\n'; q++) {
  }
  return q == end || find_route(a, t, (size_t)(q - t)) != NULL;
}

static size_t fixed_answer(net_answer *na, struct conn *c, const char *p,
                           size_t n) {
  answers *a = (answers *)na;
  size_t used = 0, dl = 0;
  const char *d = NULL;
  uv_buf_t b[MAX_BUFS];
  int nb = 0;
  int logging = -1; /* (asked at the first request answered here) */
  char peer[256];
  int pl = 0;
  if (a->nroutes == 0 && !a->has_all) return 0; /* (a router's, none yet) */
  while (used < n) {
    http_scan sc;
    const fixed_resp *r;
    const fixed_route *rt;
    int head;
    if (!may_answer(a, p + used, p + n) ||
        http_scan_head(&sc, p, n, used, used, &a->lim,
                       1 | HTTP_SCAN_WHOLE) != 1 ||
        sc.close || sc.blen != 0)
      break;
    if (sc.ml == 3 && memcmp(sc.m, "GET", 3) == 0) head = 0;
    else if (sc.ml == 4 && memcmp(sc.m, "HEAD", 4) == 0) head = 1;
    else break;
    rt = a->has_all ? &a->all
                    : find_route(a, sc.ps, (size_t)(sc.pe - sc.ps));
    if (rt == NULL) break;
    r = head ? &rt->head : &rt->get;
    if (r->data == NULL) break;
    if (logging < 0) {
      logging = a->log == 1 && host_log_enabled(HOST_LOG_INFO);
      if (logging && (pl = net_answer_peer(c, peer, sizeof peer)) < 0)
        break; /* (the Lua's peer: a PROXY header's) */
    }
    if (logging && sc.ml + 1 + (size_t)(sc.te - sc.t) > MSG_MAX) break;
    if (nb > MAX_BUFS - 5) { /* full: out first */
      int st = net_answer_send(c, b, nb);
      nb = 0;
      if (st != 0) return used; /* queued, or failed: no more */
    }
    if (d == NULL) d = http_date_line(&dl);
    add_resp(b, &nb, r, d, dl, sc.h.version == 10);
    used = (size_t)(sc.next - p);
    a->answered++;
    if (logging) access_line(&sc, r, peer, (size_t)pl);
  }
  if (nb > 0) net_answer_send(c, b, nb);
  return used;
}

static answers *check_answers(lua_State *L) {
  answers **ud = (answers **)luaL_checkudata(L, 1, ANSWERS);
  if (*ud == NULL) luaL_argerror(L, 1, "answers released");
  return *ud;
}

/* answers(max_line, max_head, max_fields, log) -> answers: log 0 (none)
** or 1 (the log module's, on at info). */
static int fixed_new(lua_State *L) {
  answers **ud;
  answers *a;
  int i;
  lua_Integer v[4];
  for (i = 0; i < 4; i++) v[i] = luaL_checkinteger(L, i + 1);
  luaL_argcheck(L, v[0] > 0 && v[1] > 0 && v[2] > 0, 1,
                "limits must be positive");
  luaL_argcheck(L, v[3] == 0 || v[3] == 1, 4, "log: 0 or 1");
  ud = (answers **)lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  a = (answers *)calloc(1, sizeof *a);
  if (a == NULL) return luaL_error(L, "not enough memory");
  a->base.answer = fixed_answer;
  a->base.free = answers_free;
  a->base.refs = 1; /* the userdata's */
  a->lim.line = v[0];
  a->lim.head = v[1];
  a->lim.fields = v[2];
  a->log = (int)v[3];
  *ud = a;
  luaL_setmetatable(L, ANSWERS);
  return 1;
}

/* A response from the values at i (bytes, or false for none), i + 1
** (the Date line's position, or -1), i + 2 (the head's last CRLF), i + 3
** (the body's length) and i + 4 (the status). */
#define RESP_N 5
static int take_resp(lua_State *L, int t, int i, fixed_resp *r) {
  size_t len;
  const char *s;
  lua_Integer v[RESP_N - 1];
  int k;
  r->data = NULL;
  if (lua_rawgeti(L, t, i) != LUA_TSTRING) { /* (false: none) */
    lua_pop(L, 1);
    return 1;
  }
  s = lua_tolstring(L, -1, &len);
  for (k = 0; k < RESP_N - 1; k++) {
    lua_rawgeti(L, t, i + 1 + k);
    v[k] = lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  if (len == 0 || len > 0x7fffffff || v[0] < -1 ||
      v[0] > (lua_Integer)len || v[1] < 0 || v[1] > (lua_Integer)len ||
      (v[0] >= 0 && v[1] < v[0]) || v[2] < 0 || v[3] < 200 || v[3] > 599) {
    lua_pop(L, 1);
    return 0;
  }
  r->data = (char *)malloc(len);
  if (r->data == NULL) {
    lua_pop(L, 1);
    return 0;
  }
  memcpy(r->data, s, len);
  r->len = len;
  r->date = (long)v[0];
  r->hend = (size_t)v[1];
  r->blen = (size_t)v[2];
  r->status = (int)v[3];
  lua_pop(L, 1);
  return 1;
}

/*
** answers:set(list [, all]): the fixed routes, replacing those before:
** list = {path, <GET's response>, <HEAD's response>, path, ...}, each
** response RESP_N values (see take_resp; false and RESP_N - 1 more for a
** method the Lua answers); all = {<GET's>, <HEAD's>}: the response to
** every path (the handler is fixed).
*/
static int fixed_set(lua_State *L) {
  answers *a = check_answers(L);
  lua_Integer n, i;
  int cap = 0, ok = 1;
  fixed_route *routes = NULL;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, 2) / (1 + 2 * RESP_N);
  routes_free(a);
  if (n > 0) {
    cap = 8;
    while (cap < 2 * n) cap *= 2;
    routes = (fixed_route *)calloc((size_t)cap, sizeof *routes);
    if (routes == NULL) return luaL_error(L, "not enough memory");
    a->routes = routes;
    a->cap = cap;
  }
  for (i = 0; ok && i < n; i++) {
    size_t pl;
    const char *p;
    fixed_route *r;
    lua_rawgeti(L, 2, (int)(i * (1 + 2 * RESP_N) + 1));
    p = lua_tolstring(L, -1, &pl);
    if (p == NULL) {
      lua_pop(L, 1);
      ok = 0;
      break;
    }
    r = find_route(a, p, pl);
    if (r == NULL) { /* (a path listed twice: the first counts) */
      unsigned k;
      for (k = hash_path(p, pl) & (unsigned)(cap - 1);
           routes[k].path != NULL; k = (k + 1) & (unsigned)(cap - 1)) {
      }
      r = &routes[k];
      r->path = (char *)malloc(pl + 1);
      if (r->path == NULL) {
        ok = 0;
      } else {
        memcpy(r->path, p, pl + 1);
        r->plen = pl;
        a->nroutes++;
        int at = (int)(i * (1 + 2 * RESP_N) + 2);
        ok = take_resp(L, 2, at, &r->get) &&
             take_resp(L, 2, at + RESP_N, &r->head);
      }
    }
    lua_pop(L, 1);
  }
  if (ok && lua_istable(L, 3)) {
    a->has_all = 1;
    ok = take_resp(L, 3, 1, &a->all.get) &&
         take_resp(L, 3, 1 + RESP_N, &a->all.head);
  }
  if (!ok) {
    routes_free(a);
    return luaL_error(L, "answers:set: a bad list, or not enough memory");
  }
  return 0;
}

/* answers:attach(net_server): the server's conns are answered here. */
static int fixed_attach(lua_State *L) {
  answers *a = check_answers(L);
  net_answer_attach(L, 2, &a->base);
  return 0;
}

/* answers:count() -> the paths with a fixed response, whether every
** path has one, and the requests answered here so far. */
static int fixed_count(lua_State *L) {
  answers *a = check_answers(L);
  lua_pushinteger(L, a->nroutes);
  lua_pushboolean(L, a->has_all);
  lua_pushinteger(L, a->answered);
  return 3;
}

static int fixed_gc(lua_State *L) {
  answers **ud = (answers **)luaL_checkudata(L, 1, ANSWERS);
  if (*ud != NULL) net_answer_unref(&(*ud)->base);
  *ud = NULL;
  return 0;
}

static const luaL_Reg answers_methods[] = {
  {"set", fixed_set},
  {"attach", fixed_attach},
  {"count", fixed_count},
  {NULL, NULL}
};

const luaL_Reg http_fixed_funcs[] = {
  {"answers", fixed_new},
  {NULL, NULL}
};

void http_fixed_open(lua_State *L) {
  luaL_newmetatable(L, ANSWERS);
  luaL_newlib(L, answers_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, fixed_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, fixed_gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}
