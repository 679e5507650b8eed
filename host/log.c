/*
** log.c: the host's log lines. One writer for the supervisor, the drain,
** the workers (C) and the log module (Lua, through private.log):
**
**   text: 2026-12-04T06:15:02.345Z warn luahost[1234 w2]: message k=v
**   json: {"time":"2026-12-04T06:15:02.345Z","level":"warn","pid":1234,
**          "worker":2,"msg":"message","k":"v"}
**
** Lines go to stderr (under --daemon: the --log file) or to the file the
** log module opened; each line is one write(2) on an O_APPEND descriptor,
** so lines of several processes (a worker group) never interleave.
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "common.h"
#include "log.h"

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          NULL};
static const char *const format_names[] = {"text", "json", NULL};

static int log_level = HOST_LOG_INFO;
static int log_format = HOST_LOG_TEXT;
static int log_worker = 0;
static int log_fd = 2;

#define LINE_MAX_BYTES 8192 /* a longer message is cut (marked "...") */

static int find(const char *const *names, const char *name) {
  int i;
  for (i = 0; names[i] != NULL; i++)
    if (strcmp(names[i], name) == 0) return i;
  return -1;
}

/* JSON lines: the host's reports (a failed task's traceback...) become
** error lines too, so that every line of stderr is JSON. */
static void report_json(const char *msg) {
  host_log(HOST_LOG_ERROR, "%s", msg);
}

static void set_format(int i) {
  log_format = i;
  lh_report_hook = i == HOST_LOG_JSON ? report_json : NULL;
}

int host_log_set_format(const char *name) {
  int i = find(format_names, name);
  if (i < 0) return -1;
  set_format(i);
  return 0;
}

int host_log_set_level(const char *name) {
  int i = find(level_names, name);
  if (i < 0) return -1;
  log_level = i;
  return 0;
}

void host_log_set_worker(int id) { log_worker = id; }

int host_log_enabled(int level) { return level >= log_level; }

/* {====================================================== a line */

typedef struct line {
  char b[LINE_MAX_BYTES];
  size_t n;
  int cut;    /* it did not fit: what follows is dropped */
  int in_msg; /* (JSON) the cut came inside the msg string */
} line;

/* Room kept for what ends a cut line: ..." ,"cut":true} and the LF. */
#define LINE_TAIL 20

/* Text takes as much of s as fits; JSON takes all of it or nothing (a
** piece is an escape, a character or a field's syntax: a part of one
** would be no JSON). */
static void put(line *l, const char *s, size_t n) {
  if (l->cut) return;
  if (l->n + n > sizeof(l->b) - LINE_TAIL) {
    l->cut = 1;
    if (log_format == HOST_LOG_JSON) return;
    n = sizeof(l->b) - LINE_TAIL > l->n ? sizeof(l->b) - LINE_TAIL - l->n
                                        : 0;
  }
  memcpy(l->b + l->n, s, n);
  l->n += n;
}

/* The length of the well-formed UTF-8 character at s (RFC 3629: no
** overlong form, no surrogate, nothing past U+10FFFF), or 0. */
static size_t utf8_char(const unsigned char *s, size_t n) {
  size_t len, i;
  unsigned long cp, min;
  if (s[0] < 0xC2) return 0;
  if (s[0] < 0xE0) len = 2, cp = s[0] & 0x1F, min = 0x80;
  else if (s[0] < 0xF0) len = 3, cp = s[0] & 0x0F, min = 0x800;
  else if (s[0] < 0xF5) len = 4, cp = s[0] & 0x07, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static void puts_(line *l, const char *s) { put(l, s, strlen(s)); }

/* s as the inside of a JSON string: quotes, backslashes and control
** bytes escaped; UTF-8 passes through, and a byte that is not part of a
** well-formed character becomes U+FFFD (RFC 8259 8.1: JSON text is
** UTF-8; a log shipper drops a line that is not). */
static void put_json(line *l, const char *s, size_t n) {
  size_t i;
  char esc[8];
  for (i = 0; i < n && !l->cut; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      size_t k = utf8_char((const unsigned char *)s + i, n - i);
      if (k == 0) {
        put(l, "\\ufffd", 6);
      } else {
        put(l, s + i, k);
        i += k - 1;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(l, esc, 2);
    } else if (c == '\n') {
      put(l, "\\n", 2);
    } else if (c == '\t') {
      put(l, "\\t", 2);
    } else if (c == '\r') {
      put(l, "\\r", 2);
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof(esc), "\\u%04x", c);
      put(l, esc, 6);
    } else {
      put(l, s + i, 1);
    }
  }
}

/* A text message: as it is, but for its control bytes, escaped as JSON
** escapes them (a message that holds a line end or a terminal's escape
** sequence cannot forge a line or repaint the screen). */
static void put_text_msg(line *l, const char *s, size_t n) {
  size_t i, from = 0;
  for (i = 0; i < n && !l->cut; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      put(l, s + from, i - from);
      put_json(l, s + i, 1);
      from = i + 1;
    }
  }
  put(l, s + from, n - from);
}

/* A text value: as it is when it has no blank, quote or control byte,
** else quoted with those escaped (so k=v pairs stay parseable). */
static void put_text_value(line *l, const char *s, size_t n) {
  size_t i;
  int plain = n > 0;
  for (i = 0; i < n && plain; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c == '"' || c == '=' || c == 0x7f) plain = 0;
  }
  if (plain) {
    put(l, s, n);
    return;
  }
  put(l, "\"", 1);
  put_json(l, s, n);
  put(l, "\"", 1);
}

/* The start of a line: time, level, process; then the message. */
static void begin(line *l, int level, const char *msg, size_t n) {
  struct timeval tv;
  struct tm tm;
  char t[64], who[48];
  time_t secs;
  gettimeofday(&tv, NULL);
  secs = tv.tv_sec;
  gmtime_r(&secs, &tm);
  snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
  l->n = 0;
  l->cut = l->in_msg = 0;
  if (log_format == HOST_LOG_JSON) {
    puts_(l, "{\"time\":\"");
    puts_(l, t);
    puts_(l, "\",\"level\":\"");
    puts_(l, level_names[level]);
    snprintf(who, sizeof(who), "\",\"pid\":%ld", (long)getpid());
    puts_(l, who);
    if (log_worker > 0) {
      snprintf(who, sizeof(who), ",\"worker\":%d", log_worker);
      puts_(l, who);
    }
    puts_(l, ",\"msg\":\"");
    l->in_msg = 1;
    put_json(l, msg, n);
    puts_(l, "\"");
    if (!l->cut) l->in_msg = 0;
  } else {
    puts_(l, t);
    puts_(l, " ");
    puts_(l, level_names[level]);
    if (log_worker > 0)
      snprintf(who, sizeof(who), " luahost[%ld w%d]: ", (long)getpid(),
               log_worker);
    else
      snprintf(who, sizeof(who), " luahost[%ld]: ", (long)getpid());
    puts_(l, who);
    put_text_msg(l, msg, n);
  }
}

static void field(line *l, const char *k, size_t kn, const char *v,
                  size_t vn, int quoted) {
  if (log_format == HOST_LOG_JSON) {
    size_t start = l->n;
    puts_(l, ",\"");
    put_json(l, k, kn);
    puts_(l, "\":");
    if (quoted) puts_(l, "\"");
    put_json(l, v, vn);
    if (quoted) puts_(l, "\"");
    if (l->cut) l->n = start; /* a field whole, or none of it */
  } else {
    puts_(l, " ");
    put(l, k, kn);
    puts_(l, "=");
    if (quoted) put_text_value(l, v, vn);
    else put(l, v, vn);
  }
}

static void finish(line *l) {
  ssize_t w;
  size_t off = 0;
  if (l->cut && log_format == HOST_LOG_JSON) {
    /* a cut msg ends in "..."; either way the line says it was cut */
    const char *end = l->in_msg ? "...\",\"cut\":true" : ",\"cut\":true";
    memcpy(l->b + l->n, end, strlen(end));
    l->n += strlen(end);
  } else if (l->cut) {
    memcpy(l->b + l->n, "...", 3);
    l->n += 3;
  }
  if (log_format == HOST_LOG_JSON) l->b[l->n++] = '}';
  l->b[l->n++] = '\n';
  while (off < l->n) {
    w = write(log_fd, l->b + off, l->n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
}

void host_log(int level, const char *fmt, ...) {
  line l;
  char msg[LINE_MAX_BYTES / 2];
  va_list ap;
  int n;
  if (level < log_level) return;
  va_start(ap, fmt);
  n = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof(msg)) n = (int)sizeof(msg) - 1;
  begin(&l, level, msg, (size_t)n);
  finish(&l);
}

void host_log_fields(int level, const char *msg, size_t n, int nf,
                     const char *const *keys, const char *const *vals,
                     const size_t *vlens, const int *quoted) {
  line l;
  int i;
  if (level < log_level) return;
  begin(&l, level, msg, n);
  for (i = 0; i < nf; i++)
    field(&l, keys[i], strlen(keys[i]), vals[i], vlens[i], quoted[i]);
  finish(&l);
}

/* }====================================================== */

/* {====================================================== private.log */

/* The line being made by log_write: one per thread (task.thread states
** log too). No Lua runs while it is being filled (the fields are turned
** into strings first: a __tostring that logs cannot clobber it). */
static __thread line lua_line;

/* write(level, msg [, fields]): a line, if level is on. fields: a table
** of string keys to strings, numbers or booleans, written in key order
** (so lines compare); other values are written with tostring. */
static int log_write(lua_State *L) {
  int level = luaL_checkoption(L, 1, NULL, level_names);
  size_t n, kn, vn;
  const char *msg = luaL_checklstring(L, 2, &n);
  line *l = &lua_line;
  int i, nkeys = 0, base;
  char quoted[256];
  if (level < log_level) return 0;
  lua_settop(L, 3);
  base = lua_gettop(L);
  if (lua_type(L, 3) == LUA_TTABLE) {
    lua_newtable(L); /* base + 1: the keys, sorted */
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pop(L, 1);
      if (lua_type(L, -1) == LUA_TSTRING && nkeys < (int)sizeof(quoted)) {
        lua_pushvalue(L, -1);
        lua_rawseti(L, base + 1, ++nkeys);
      }
    }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, base + 1);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    luaL_checkstack(L, 2 * nkeys + 2, "too many fields");
    for (i = 1; i <= nkeys; i++) { /* key, then its value as a string */
      int t;
      lua_rawgeti(L, base + 1, i);
      lua_pushvalue(L, -1);
      lua_rawget(L, 3);
      t = lua_type(L, -1);
      quoted[i - 1] = !(t == LUA_TNUMBER || t == LUA_TBOOLEAN);
      if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
        lua_Number x = lua_tonumber(L, -1);
        if (x - x != 0) quoted[i - 1] = 1; /* inf, NaN: not JSON numbers */
      }
      luaL_tolstring(L, -1, NULL);
      lua_replace(L, -2);
    }
  }
  begin(l, level, msg, n);
  for (i = 1; i <= nkeys; i++) {
    const char *k = lua_tolstring(L, base + 2 * i, &kn);
    const char *v = lua_tolstring(L, base + 2 * i + 1, &vn);
    field(l, k, kn, v, vn, quoted[i - 1]);
  }
  finish(l);
  return 0;
}

/* config([level, format]) -> level, format: set what is given. */
static int log_config(lua_State *L) {
  if (!lua_isnoneornil(L, 1))
    log_level = luaL_checkoption(L, 1, NULL, level_names);
  if (!lua_isnoneornil(L, 2))
    set_format(luaL_checkoption(L, 2, NULL, format_names));
  lua_pushstring(L, level_names[log_level]);
  lua_pushstring(L, format_names[log_format]);
  return 2;
}

/* enabled(level) -> would a line at level be written? (log.enabled: in C,
** as the http server asks it once per request for its access line) */
static int log_enabled(lua_State *L) {
  size_t n;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n)
                                                : NULL;
  int i = -1;
  if (s != NULL) { /* the names differ in their first byte: one compare */
    switch (s[0]) {
    case 'd': i = 0; break;
    case 'i': i = 1; break;
    case 'w': i = 2; break;
    case 'e': i = 3; break;
    }
    if (i >= 0 && (strlen(level_names[i]) != n ||
                   memcmp(s, level_names[i], n) != 0))
      i = -1;
  }
  if (i < 0)
    return luaL_error(L, "bad argument #1 to 'enabled' (level name expected)");
  lua_pushboolean(L, i >= log_level);
  return 1;
}

/* open(path | nil): lines go to path (appended, created 0644), or back to
** stderr with nil. true, or nil, err. */
static int log_open(lua_State *L) {
  const char *path = luaL_optstring(L, 1, NULL);
  int fd = 2;
  if (path != NULL) {
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s: %s", path, strerror(errno));
      return 2;
    }
  }
  if (log_fd != 2) close(log_fd);
  log_fd = fd;
  lua_pushboolean(L, 1);
  return 1;
}

void host_private_log(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"write", log_write},
    {"config", log_config},
    {"enabled", log_enabled},
    {"open", log_open},
    {NULL, NULL}
  };
  luaL_newlib(L, fns);
}

/* }====================================================== */
