/*
** http_head.c: strict HTTP/1.x message heads (RFC 9110, RFC 9112).
** See Copyright Notice in README.md
**
** parse_request / parse_response read one head from a Lua string and make
** the one framing decision of RFC 9112 6.3 for its body, so Lua never
** looks at Content-Length or Transfer-Encoding itself. Anything a
** front-end and a back-end could read two ways is refused: bare CR,
** obs-fold, whitespace before the colon, control bytes and NUL in names
** or values, Transfer-Encoding with Content-Length, more than one
** Content-Length, a Transfer-Encoding whose final coding is not chunked,
** Transfer-Encoding in HTTP/1.0, a missing or repeated Host.
**
** Lines may end in CRLF or in a bare LF (RFC 9112 2.2 lets a recipient
** accept LF); a CR anywhere else is an error.
**
** A head that has not fully arrived costs no parse: the terminator
** (an empty line) is searched for only in the bytes added since the last
** call (argument `from`), so a head trickled in byte by byte stays linear.
*/
#include <string.h>

#include "http_core.h"

/* Bit 1: tchar (RFC 9110 5.6.2). Bit 2: allowed inside a field value
** (VCHAR, obs-text, SP, HTAB). Bit 4: a reg-name character but "%"
** (RFC 3986 unreserved and sub-delims). Bit 8: a hex digit. */
const unsigned char http_tchar[256] = {
   0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* HTAB */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
  /* SP ! " # $ % & ' ( ) * + , - . / */
   2,  7,  2,  3,  7,  3,  7,  7,  6,  6,  7,  7,  6,  7,  7,  2,
  /* 0-9 : ; < = > ? */
  15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  2,  6,  2,  6,  2,  2,
  /* @ A-O */
   2, 15, 15, 15, 15, 15, 15,  7,  7,  7,  7,  7,  7,  7,  7,  7,
  /* P-Z [ \ ] ^ _ */
   7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  2,  2,  2,  3,  7,
  /* ` a-o */
   3, 15, 15, 15, 15, 15, 15,  7,  7,  7,  7,  7,  7,  7,  7,  7,
  /* p-z { | } ~ DEL */
   7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  2,  3,  2,  7,  0,
  /* obs-text 0x80-0xFF: values only */
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
};

/* The field names of a head table, interned once: upvalues of the parse
** functions (a rawset with one of them costs no string look-up). */
enum {
  K_METHOD = 1,
  K_TARGET,
  K_PATH,
  K_QUERY_STRING,
  K_STATUS,
  K_REASON,
  K_CHUNKED,
  K_UNTIL_CLOSE,
  K_LENGTH,
  K_HAS_BODY,
  KP_LEFT,    /* _left */
  KP_LENGTH,  /* _length */
  KP_DONE,    /* _done */
  K_FIELDS,
  K_HEADERS,
  K_VERSION,
  K_CLOSE,
  K_HBUF,     /* _hbuf */
  K_HB,       /* _hb */
  V_HTTP11,   /* "HTTP/1.1", the value of version (not a key) */
  V_HTTP10,   /* "HTTP/1.0" */
  V_GET,      /* the common methods, as values */
  V_HEAD,
  V_POST,
  NKEYS = V_POST
};
static const char *const key_names[NKEYS] = {
  "method",
  "target",
  "path",
  "query_string",
  "status",
  "reason",
  "chunked",
  "until_close",
  "length",
  "has_body",
  "_left",
  "_length",
  "_done",
  "fields",
  "headers",
  "version",
  "close",
  "_hbuf",
  "_hb",
  "HTTP/1.1",
  "HTTP/1.0",
  "GET",
  "HEAD",
  "POST",
};
#define KEY(k) lua_upvalueindex(k)
/* t[key] = the value `push` pushes, t at -1 */
#define SETKV(L, k, push) \
  (lua_pushvalue((L), KEY(k)), (push), lua_rawset((L), -3))

#define MAX_NAME 256  /* longest field name kept (longer: 431) */
#define MAX_SKIP 256  /* empty lines tolerated before a request line */

typedef http_seen head;

/* Result of a failed parse: false, status, reason; returns 3. */
static int bad(lua_State *L, int status, const char *why) {
  lua_pushboolean(L, 0);
  lua_pushinteger(L, status);
  lua_pushstring(L, why);
  return 3;
}

/* The end of the line starting at p (the LF), or NULL. */
static const char *eol(const char *p, const char *end) {
  return (const char *)memchr(p, '\n', (size_t)(end - p));
}

/* Where the line [s, lf) really ends: before a CR right before the LF. */
static const char *trim_cr(const char *s, const char *lf) {
  return (lf > s && lf[-1] == '\r') ? lf - 1 : lf;
}

static int ieq(const char *a, size_t al, const char *b) {
  size_t i, bl = strlen(b);
  if (al != bl) return 0;
  for (i = 0; i < al; i++) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != b[i]) return 0;
  }
  return 1;
}

/*
** Walk a comma-separated list value (RFC 9110 5.6.1), calling fn on each
** element (OWS trimmed). Empty elements are skipped, as the RFC allows.
*/
typedef void (*elem_fn)(head *h, const char *s, size_t n, int last);

static void each_elem(head *h, const char *v, size_t n, elem_fn fn) {
  size_t i = 0;
  while (i < n) {
    size_t s, e;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    s = i;
    while (i < n && v[i] != ',') i++;
    e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e > s) {
      size_t j = i;
      while (j < n && (v[j] == ' ' || v[j] == '\t' || v[j] == ',')) j++;
      fn(h, v + s, e - s, j >= n);
    }
  }
}

static void conn_elem(head *h, const char *s, size_t n, int last) {
  (void)last;
  if (ieq(s, n, "close")) h->conn_close = 1;
  else if (ieq(s, n, "keep-alive")) h->conn_keepalive = 1;
}

/* Transfer-Encoding: only a final "chunked" is understood; any other
** coding, a chunked that is not last, or a non-token element is noted. */
static void te_elem(head *h, const char *s, size_t n, int last) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!HTTP_TCHAR(s[i])) { h->te_bad = 1; return; }
  if (ieq(s, n, "chunked")) {
    if (h->te_chunked || !last) h->te_bad = 1; /* only once, and last */
    if (last) h->te_chunked = 1;
  } else {
    h->te_other = 1;
  }
}

/* A Host value (RFC 9110 7.2): uri-host [":" port], or empty. uri-host
** is an IP literal in brackets, or a reg-name / IPv4 address (unreserved
** characters, %-escapes, sub-delims): no blank, no "@" (user info), no
** "/" that would make the authority something else to someone else. */
#define HOSTCHAR(c) (http_tchar[(unsigned char)(c)] & 4)
#define HEXDIGIT(c) (http_tchar[(unsigned char)(c)] & 8)
static int host_ok(const char *v, size_t n) {
  size_t i = 0;
  if (n > 0 && v[0] == '[') {
    for (i = 1; i < n && v[i] != ']'; i++)
      if (!HEXDIGIT(v[i]) && v[i] != ':' && v[i] != '.') return 0;
    if (i == n || i == 1) return 0;
    i++;
  } else {
    for (; i < n && v[i] != ':'; i++) {
      if (HOSTCHAR(v[i])) continue;
      if (v[i] != '%' || i + 2 >= n || !HEXDIGIT(v[i + 1]) ||
          !HEXDIGIT(v[i + 2]))
        return 0;
      i += 2;
    }
  }
  if (i < n) { /* ":" port */
    if (v[i] != ':') return 0;
    for (i++; i < n; i++)
      if (v[i] < '0' || v[i] > '9') return 0;
  }
  return 1;
}

/* The fields named in the framing decision, seen while they are read. */
static void note_field(head *h, const char *name, size_t nl, const char *v,
                       size_t vl) {
  switch (nl) {
    case 4:
      if (ieq(name, nl, "host")) {
        h->nhost++;
        if (h->request && !host_ok(v, vl)) h->host_bad = 1;
      }
      break;
    case 10:
      if (ieq(name, nl, "connection")) each_elem(h, v, vl, conn_elem);
      break;
    case 14:
      if (ieq(name, nl, "content-length")) {
        h->ncl++;
        h->cl = v;
        h->cll = vl;
      }
      break;
    case 17:
      if (ieq(name, nl, "transfer-encoding")) {
        h->nte++;
        h->te = v;
        h->tel = vl;
        if (h->te_chunked) h->te_bad = 1; /* chunked, then more codings */
        h->te_chunked = 0; /* only the final coding of all the lines counts */
        each_elem(h, v, vl, te_elem);
      }
      break;
  }
}

/*
** One header line [s, e) (without its line end): validate it and note
** what the framing decision needs. Returns 0 or the error status.
*/
static int field(head *h, const char *s, const char *e, const char **why) {
  const char *p = s, *v, *ve;
  size_t nl;
  if (*s == ' ' || *s == '\t') { *why = "obs-fold"; return 400; }
  while (p < e && HTTP_TCHAR(*p)) p++;
  if (p == e || *p != ':' || p == s) {
    *why = "bad header name";
    return 400;
  }
  nl = (size_t)(p - s);
  if (nl > MAX_NAME) { *why = "header name too long"; return 431; }
  v = p + 1;
  while (v < e && (*v == ' ' || *v == '\t')) v++;
  ve = e;
  while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
  for (p = v; p < ve; p++)
    if (!HTTP_VCHAR(*p)) {
      *why = *p == '\r' ? "bare CR" : "control byte in header value";
      return 400;
    }
  note_field(h, s, nl, v, (size_t)(ve - v));
  return 0;
}

/* Content-Length: 1*DIGIT. A value of more than 15 digits is larger
** than any body limit: it becomes 2^53 (so the answer is 413, not 400),
** which no integer arithmetic on it can overflow. */
#define HUGE_LENGTH ((lua_Integer)1 << 53)
static int content_length(const char *v, size_t n, lua_Integer *len) {
  size_t i;
  lua_Integer x = 0;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return 0;
    if (x < HUGE_LENGTH) x = x * 10 + (v[i] - '0');
  }
  *len = x < HUGE_LENGTH ? x : HUGE_LENGTH;
  return 1;
}

static int is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
** The path of the target [t, e) (up to a '?', not decoded) into sc: the
** target itself, "/" (an absolute-form target without a path), or the
** span [ps, pe); and the query string after a '?'. An absolute-form
** target ("http://host/p", RFC 9112 3.2.2) gives the path after the
** authority.
*/
static void target_parts(http_scan *sc, const char *t, const char *e) {
  const char *q = (const char *)memchr(t, '?', (size_t)(e - t));
  const char *pe = q ? q : e, *ps = t;
  if (pe > t && *t != '/' && is_alpha(*t)) { /* scheme "://" ? */
    const char *c = t + 1;
    while (c < pe && (is_alpha(*c) || (*c >= '0' && *c <= '9') ||
                      *c == '+' || *c == '.' || *c == '-'))
      c++;
    if (pe - c >= 3 && c[0] == ':' && c[1] == '/' && c[2] == '/') {
      ps = c + 3;
      while (ps < pe && *ps != '/') ps++;
    }
  }
  sc->q = q;
  if (ps == pe && ps != t) { /* no path: "/" */
    sc->ps = "/";
    sc->pe = sc->ps + 1;
  } else {
    sc->ps = ps;
    sc->pe = pe;
  }
}

/* The method [s, s+n): an interned upvalue for the common ones (no
** string made and looked up a request). */
static void push_method(lua_State *L, const char *s, size_t n) {
  if (n == 3 && memcmp(s, "GET", 3) == 0) lua_pushvalue(L, KEY(V_GET));
  else if (n == 4 && memcmp(s, "HEAD", 4) == 0)
    lua_pushvalue(L, KEY(V_HEAD));
  else if (n == 4 && memcmp(s, "POST", 4) == 0)
    lua_pushvalue(L, KEY(V_POST));
  else lua_pushlstring(L, s, n);
}

/* The request line [s, e): method, target (and its path and query) and
** version into sc. Returns 0 or an error status. */
static int request_line(http_scan *sc, const char *s, const char *e,
                        const char **why) {
  const char *p = s, *t;
  /* Methods are case-sensitive tokens, and every registered one is upper
  ** case (A-Z, '-', '_'): "get" is refused rather than guessed at. */
  while (p < e && ((*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_')) p++;
  if (p == s || p == e || *p != ' ') { *why = "bad method"; return 400; }
  sc->m = s;
  sc->ml = (size_t)(p - s);
  t = ++p;
  /* (visible ASCII; no "#": a fragment is never part of a target) */
  while (p < e && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f &&
         *p != '#')
    p++;
  if (p == t || p == e || *p != ' ') { *why = "bad target"; return 400; }
  sc->t = t;
  sc->te = p;
  target_parts(sc, t, p);
  p++;
  if (e - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' ||
      p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9') {
    *why = "bad version";
    return 400;
  }
  if (p[5] != '1') {
    *why = "version not supported";
    return 505;
  }
  /* HTTP/1.2 and up: read as the highest 1.x this server speaks (RFC
  ** 9110 2.5), 1.1 */
  sc->h.version = p[7] == '0' ? 10 : 11;
  /* the four forms of RFC 9112 3.2: origin ("/..."), absolute
  ** ("scheme://..."), asterisk ("*", OPTIONS's alone) and authority
  ** ("host:port", CONNECT's alone); anything else is no target */
  if (t[0] == '*' && t[1] == ' ') {
    if (!(t - s == 8 && memcmp(s, "OPTIONS", 7) == 0)) {
      *why = "\"*\" is a target for OPTIONS only";
      return 400;
    }
  } else if (t[0] != '/') {
    const char *c = t;
    while (is_alpha(*c) || (c > t && ((*c >= '0' && *c <= '9') ||
                                      *c == '+' || *c == '.' || *c == '-')))
      c++;
    if (!(c > t && c[0] == ':' && c[1] == '/' && c[2] == '/') &&
        !(t - s == 8 && memcmp(s, "CONNECT", 7) == 0)) {
      *why = "bad target";
      return 400;
    }
  }
  return 0;
}

/* The status line [s, e): status and reason into sc. */
static int status_line(http_scan *sc, const char *s, const char *e,
                       const char **why) {
  const char *p = s + 12;
  if (e - s < 12 || memcmp(s, "HTTP/1.", 7) != 0 ||
      (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
      s[9] < '1' || s[9] > '9' || s[10] < '0' || s[10] > '9' ||
      s[11] < '0' || s[11] > '9' || (p < e && *p != ' ')) {
    *why = "bad status line";
    return 400;
  }
  sc->h.version = s[7] == '1' ? 11 : 10;
  sc->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + s[11] - '0';
  if (p < e) p++;
  {
    const char *q;
    for (q = p; q < e; q++)
      if (!HTTP_VCHAR(*q)) { *why = "bad reason phrase"; return 400; }
  }
  sc->rs = p;
  sc->re = e;
  return 0;
}

/*
** The body's framing, RFC 9112 6.3, into sc: its length (bytes that
** follow), chunked, or for a response until_close. A response to HEAD,
** 1xx, 204 and 304 have no body whatever the fields say: Lua decides
** that, it knows the request.
*/
static int framing(http_scan *sc, const char **why) {
  head *h = &sc->h;
  lua_Integer len = 0;
  if (h->nte > 0) {
    if (h->ncl > 0) {
      *why = "both Transfer-Encoding and Content-Length";
      return 400;
    }
    if (h->version == 10) {
      *why = "Transfer-Encoding in HTTP/1.0";
      return 400;
    }
    if (h->te_chunked && !h->te_other && !h->te_bad) {
      sc->chunked = 1;
      sc->blen = -1;
      return 0;
    }
    /* a final chunked after other codings ("gzip, chunked") is framed
    ** by its chunks (RFC 9112 6.3), whose data is still coded: a
    ** response too is refused then, not read until the close (which
    ** would hand over the chunks' framing as the body) */
    if (h->request || (h->te_chunked && !h->te_bad)) {
      int unknown = h->te_chunked && !h->te_bad;
      *why = unknown ? "transfer coding not implemented"
                     : "final transfer coding is not chunked";
      return unknown ? 501 : 400;
    }
    /* a response whose final coding is not chunked: read until the
    ** server closes */
    sc->until_close = 1;
    return 0;
  }
  if (h->ncl > 1) { *why = "repeated Content-Length"; return 400; }
  if (h->ncl == 1 && !content_length(h->cl, h->cll, &len)) {
    *why = "bad Content-Length";
    return 400;
  }
  if (h->ncl == 0 && !h->request) {
    sc->until_close = 1;
    return 0;
  }
  sc->blen = len;
  return 0;
}

/* Is the head complete in [p, end): an empty line after a line end? The
** search starts at `from` (earlier bytes were searched before). */
static int complete(const char *p, const char *from, const char *end) {
  from -= 2; /* an LF, CR searched before may begin the empty line */
  if (from < p) from = p;
  while (from < end) {
    const char *lf = eol(from, end);
    if (lf == NULL) return 0;
    if (lf + 1 < end && lf[1] == '\n') return 1;
    if (lf + 2 < end && lf[1] == '\r' && lf[2] == '\n') return 1;
    from = lf + 1;
  }
  return 0;
}

/* A failed scan: the status and why in sc; returns -1. */
static int fail(http_scan *sc, int status, const char *why) {
  sc->st = status;
  sc->why = why;
  return -1;
}

/*
** http_scan_head: one head from [buf + init, buf + len), no Lua (see
** http_core.h). Every check parse_request and parse_response make, in
** the same order, so both read every head alike. from: where the search
** for the head's end starts (earlier bytes were searched before).
*/
int http_scan_head(http_scan *sc, const char *buf, size_t len, size_t init,
                   size_t from, const http_limits *lim, int request) {
  const char *p, *end = buf + len, *lf, *line, *hb;
  const char *why = NULL;
  int n = 0, st, whole = request & HTTP_SCAN_WHOLE;
  request &= 1;
  memset(sc, 0, sizeof *sc);
  sc->h.request = request;
  p = buf + init;
  /* RFC 9112 2.2: empty lines before a request line are ignored */
  line = p;
  while (request && line < end && (*line == '\r' || *line == '\n')) {
    if (*line == '\r' && line + 1 < end && line[1] != '\n')
      return fail(sc, 400, "bare CR");
    line++;
    if (line - p > MAX_SKIP) return fail(sc, 400, "too many empty lines");
  }
  if (from > len) from = len;
  if (whole) {
    /* (its caller takes a whole valid head or nothing: no search for its
    ** end first, the lines below find it or return 0) */
    if (line == end || eol(line, end) == NULL) return 0;
  } else if (line == end || !complete(line, buf + from, end)) {
    /* not complete: only the limits can be judged */
    lf = eol(line, end);
    if (lf == NULL) {
      if (end - line > lim->line + 1)
        return fail(sc, request ? 414 : 400, "start line too long");
    } else if (lf - line > lim->line + 1) {
      return fail(sc, request ? 414 : 400, "start line too long");
    } else if (end - (lf + 1) > lim->head + 2) {
      return fail(sc, request ? 431 : 400, "header block too large");
    }
    return 0;
  }
  lf = eol(line, end); /* complete() found one */
  {
    const char *le = trim_cr(line, lf), *q;
    if (le - line > lim->line)
      return fail(sc, request ? 414 : 400, "start line too long");
    for (q = line; q < le; q++)
      if (*q == '\r' || *q == '\0')
        return fail(sc, 400, *q ? "bare CR" : "NUL in start line");
    st = request ? request_line(sc, line, le, &why)
                 : status_line(sc, line, le, &why);
    if (st) return fail(sc, st, why);
  }
  sc->hb = hb = lf + 1;
  for (p = hb;;) {
    const char *le;
    lf = eol(p, end);
    if (lf == NULL) return 0; /* (complete() says it cannot be) */
    if (lf + 1 - hb > lim->head + 2)
      return fail(sc, request ? 431 : 400, "header block too large");
    le = trim_cr(p, lf);
    if (le == p) break; /* the empty line */
    if (le - p > lim->line)
      return fail(sc, request ? 431 : 400, "header line too long");
    /* (field() refuses a CR too: this says why as it should; a caller
    ** that takes whole valid heads only does not need to know) */
    if (!whole && memchr(p, '\r', (size_t)(le - p)) != NULL)
      return fail(sc, 400, "bare CR");
    if (++n > lim->fields)
      return fail(sc, request ? 431 : 400, "too many header fields");
    st = field(&sc->h, p, le, &why);
    if (st) return fail(sc, request ? st : 400, why);
    p = lf + 1;
  }
  sc->nfields = n;
  if (request && (sc->h.version == 11 ? sc->h.nhost != 1 : sc->h.nhost > 1))
    return fail(sc, 400, sc->h.nhost ? "repeated Host" : "missing Host");
  if (sc->h.host_bad) return fail(sc, 400, "bad Host");
  st = framing(sc, &why);
  if (st) return fail(sc, st, why);
  /* persistence (RFC 9112 9.3) */
  sc->close = sc->h.conn_close ||
              (sc->h.version == 10 && !sc->h.conn_keepalive);
  sc->next = lf + 1;
  return 1;
}

/*
** http.server's request (parse_request given its two metatables, at 7
** and 8): the head table at -1 gets the request's, and the state of its
** body: for none only _done (true); else has_body (true), and for a
** length _left and _length (a server request has no `length`). Its
** headers table and fields list are not made: _hbuf (the string parsed)
** and _hb (where its field lines start) let head_headers and head_fields
** make them when they are read (req.headers gets the headers metatable
** then, in the server's Lua).
*/
static void server_request(lua_State *L, lua_Integer blen) {
  lua_pushvalue(L, 7);
  lua_setmetatable(L, -2);
  if (blen == 0) { /* most requests: nothing more to set */
    SETKV(L, KP_DONE, lua_pushboolean(L, 1));
    return;
  }
  SETKV(L, K_HAS_BODY, lua_pushboolean(L, 1));
  if (blen > 0) {
    SETKV(L, KP_LEFT, lua_pushinteger(L, blen));
    SETKV(L, KP_LENGTH, lua_pushinteger(L, blen));
  }
}

static int push_fields(lua_State *L, const char *p, const char *end);
static int push_headers(lua_State *L, const char *p, const char *end);

/*
** parse(buf, init, from, max_line, max_head, max_fields [, req_mt,
** headers_mt]), shared by both kinds (the metatables: a request for
** http.server, see server_request; for a response, its metatable at 7
** alone: the head gets it, and _hbuf and _hb instead of its headers
** table and fields list, which head_headers and head_fields make when
** the client's response is asked for them). Returns:
**   nil                           the head is not complete yet;
**   t, next                       t = the head, next = first body byte;
**   false, status, reason         a bad head (answer status and close).
*/
/* The upvalues of a server's parser (request_parser), after the keys:
** its limits and the request metatable. */
enum { B_LINE = NKEYS + 1, B_HEAD, B_FIELDS, B_REQ_MT, B_N = B_REQ_MT };

static int parse(lua_State *L, int request, int bound) {
  size_t len;
  const char *buf = luaL_checklstring(L, 1, &len);
  lua_Integer init = luaL_optinteger(L, 2, 1);
  lua_Integer from = luaL_optinteger(L, 3, init);
  http_limits lim;
  int server, lazy, r; /* lazy: no headers table or fields list made */
  http_scan sc;
  if (bound) { /* (checked when the parser was made) */
    lim.line = lua_tointeger(L, lua_upvalueindex(B_LINE));
    lim.head = lua_tointeger(L, lua_upvalueindex(B_HEAD));
    lim.fields = lua_tointeger(L, lua_upvalueindex(B_FIELDS));
    server = lazy = 1;
    lua_settop(L, 6);
    lua_pushvalue(L, lua_upvalueindex(B_REQ_MT)); /* 7, as given */
  } else {
    lim.line = luaL_optinteger(L, 4, 8192);
    lim.head = luaL_optinteger(L, 5, 16384);
    lim.fields = luaL_optinteger(L, 6, 100);
    lazy = !lua_isnoneornil(L, 7);
    server = request && lazy;
    luaL_argcheck(L, lim.line > 0 && lim.head > 0 && lim.fields > 0, 4,
                  "limits must be positive");
    if (server) {
      luaL_checktype(L, 7, LUA_TTABLE);
      luaL_checktype(L, 8, LUA_TTABLE);
    } else if (lazy) {
      luaL_checktype(L, 7, LUA_TTABLE);
    }
  }
  luaL_argcheck(L, init >= 1 && (size_t)init <= len + 1, 2, "out of range");
  luaL_argcheck(L, from >= 1, 3, "out of range");
  lua_settop(L, 8); /* the head table goes at 9 */
  r = http_scan_head(&sc, buf, len, (size_t)init - 1,
                     from > (lua_Integer)len + 1 ? len : (size_t)from - 1,
                     &lim, request);
  if (r < 0) return bad(L, sc.st, sc.why);
  if (r == 0) {
    lua_pushnil(L);
    return 1;
  }
  /* a request gets room for what http.server adds (path, query_string,
  ** _reader, has_body, _left, _length, _done): no rehash */
  lua_createtable(L, 0, request ? 16 : 8);
  if (request) {
    SETKV(L, K_METHOD, push_method(L, sc.m, sc.ml));
    /* the target's string, kept for the path (most targets are one) */
    lua_pushlstring(L, sc.t, (size_t)(sc.te - sc.t));
    lua_pushvalue(L, KEY(K_TARGET));
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
    lua_pushvalue(L, KEY(K_PATH));
    if (sc.ps == sc.t && sc.pe == sc.te) lua_pushvalue(L, -2);
    else lua_pushlstring(L, sc.ps, (size_t)(sc.pe - sc.ps));
    lua_rawset(L, -4);
    lua_pushvalue(L, KEY(K_QUERY_STRING));
    if (sc.q) lua_pushlstring(L, sc.q + 1, (size_t)(sc.te - sc.q - 1));
    else lua_pushliteral(L, "");
    lua_rawset(L, -4);
    lua_pop(L, 1);
  } else {
    SETKV(L, K_STATUS, lua_pushinteger(L, sc.status));
    SETKV(L, K_REASON, lua_pushlstring(L, sc.rs, (size_t)(sc.re - sc.rs)));
  }
  if (!lazy) {
    const char *hend = sc.next;
    SETKV(L, K_FIELDS, push_fields(L, sc.hb, hend));
    SETKV(L, K_HEADERS, push_headers(L, sc.hb, hend));
  } else {
    /* the head's bytes, for head_fields and head_headers when req.fields
    ** or req.headers is read */
    SETKV(L, K_HBUF, lua_pushvalue(L, 1));
    SETKV(L, K_HB, lua_pushinteger(L, (lua_Integer)(sc.hb - buf) + 1));
  }
  if (sc.chunked) SETKV(L, K_CHUNKED, lua_pushboolean(L, 1));
  else if (sc.until_close) SETKV(L, K_UNTIL_CLOSE, lua_pushboolean(L, 1));
  /* (http.server's request keeps it as _length: server_request) */
  else if (!server) SETKV(L, K_LENGTH, lua_pushinteger(L, sc.blen));
  /* a server's request has version only when it is not HTTP/1.1 (the
  ** request metatable's default: one key less most requests) */
  if (!server || sc.h.version != 11)
    SETKV(L, K_VERSION,
          lua_pushvalue(L, KEY(sc.h.version == 11 ? V_HTTP11 : V_HTTP10)));
  /* a server's request has close only when true (false is its
  ** metatable's default: one key less a request) */
  if (sc.close || !server) SETKV(L, K_CLOSE, lua_pushboolean(L, sc.close));
  if (server) {
    server_request(L, sc.blen);
  } else if (lazy) { /* a response with its metatable */
    lua_pushvalue(L, 7);
    lua_setmetatable(L, -2);
  }
  lua_pushinteger(L, (lua_Integer)(sc.next - buf) + 1);
  return 2;
}

static int head_parse_request(lua_State *L) { return parse(L, 1, 0); }
static int head_parse_response(lua_State *L) { return parse(L, 0, 0); }
static int head_parse_bound(lua_State *L) { return parse(L, 1, 1); }

/*
** request_parser(max_line, max_head, max_fields, req_mt) -> parse(buf
** [, init [, from]]): parse_request with a server's limits and request
** metatable bound once (a request passes three arguments, not eight).
*/
static int head_request_parser(lua_State *L) {
  int i;
  for (i = 1; i <= 3; i++)
    luaL_argcheck(L, luaL_checkinteger(L, i) > 0, i, "must be positive");
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  for (i = 0; i < NKEYS; i++) lua_pushstring(L, key_names[i]);
  for (i = 1; i <= 4; i++) lua_pushvalue(L, i);
  lua_pushcclosure(L, head_parse_bound, B_N);
  return 1;
}

/*
** check_field(name, value): raises unless name is a token and value holds
** only field-value bytes (no CR, LF, NUL or other control byte): a value
** from a handler must never split a response (header injection).
*/
static int head_check_field(lua_State *L) {
  size_t nl, vl, i;
  const char *n = luaL_checklstring(L, 1, &nl);
  const char *v = luaL_checklstring(L, 2, &vl);
  luaL_argcheck(L, nl > 0, 1, "empty header name");
  for (i = 0; i < nl; i++)
    if (!HTTP_TCHAR(n[i]))
      return luaL_argerror(L, 1, "header name is not a token");
  for (i = 0; i < vl; i++)
    if (!HTTP_VCHAR(v[i]))
      return luaL_argerror(L, 2, "CR, LF, NUL or control byte in value");
  return 0;
}

/*
** field_ok(name, value) -> true | false, why: check_field without raising
** (the server names its own function in the error it raises).
*/
static int head_field_ok(lua_State *L) {
  size_t nl, vl, i;
  const char *n = luaL_checklstring(L, 1, &nl);
  const char *v = luaL_checklstring(L, 2, &vl);
  const char *why = NULL;
  if (nl == 0) why = "empty header name";
  for (i = 0; why == NULL && i < nl; i++)
    if (!HTTP_TCHAR(n[i])) why = "header name is not a token";
  for (i = 0; why == NULL && i < vl; i++)
    if (!HTTP_VCHAR(v[i])) why = "CR, LF, NUL or control byte in value";
  if (why == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, why);
  return 2;
}

/*
** head_fields(buf, init) -> {name, value, ...}: the field lines of a head
** that parse_request accepted, from init up to the empty line, as its
** fields list (names as sent, values without their blanks). The server's
** requests make req.fields so, when it is read. Any string is safe: a
** line with no ':' ends the list.
*/
static int head_fields(lua_State *L) {
  size_t len;
  const char *buf = luaL_checklstring(L, 1, &len);
  lua_Integer init = luaL_checkinteger(L, 2);
  luaL_argcheck(L, init >= 1 && (size_t)init <= len + 1, 2, "out of range");
  return push_fields(L, buf + init - 1, buf + len);
}

/* The fields list of the field lines at [p, end), up to the empty line
** (a line with no ':' ends it); pushes it, returns 1. */
static int push_fields(lua_State *L, const char *p, const char *end) {
  int n = 0;
  lua_newtable(L);
  while (p < end) {
    const char *lf = eol(p, end), *le, *c, *v, *ve;
    if (lf == NULL) lf = end;
    le = trim_cr(p, lf);
    c = (const char *)memchr(p, ':', (size_t)(le - p));
    if (le == p || c == NULL) break;
    v = c + 1;
    while (v < le && (*v == ' ' || *v == '\t')) v++;
    ve = le;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    lua_pushlstring(L, p, (size_t)(c - p));
    lua_rawseti(L, -2, ++n);
    lua_pushlstring(L, v, (size_t)(ve - v));
    lua_rawseti(L, -2, ++n);
    p = lf + 1;
  }
  return 1;
}

/*
** head_headers(buf, init) -> {lower-case name = value}: the headers
** table of a head that parse_request accepted (its field lines from init
** up to the empty line), repeated fields joined by ", ", as
** parse_request makes it; the server's requests make req.headers so,
** when it is read. Any string is safe: a line with no ':' ends it.
*/
static int head_headers(lua_State *L) {
  size_t len;
  const char *buf = luaL_checklstring(L, 1, &len);
  lua_Integer init = luaL_checkinteger(L, 2);
  luaL_argcheck(L, init >= 1 && (size_t)init <= len + 1, 2, "out of range");
  return push_headers(L, buf + init - 1, buf + len);
}

/* The headers table of the field lines at [p, end) (see head_headers);
** pushes it, returns 1. */
static int push_headers(lua_State *L, const char *p, const char *end) {
  char lname[MAX_NAME];
  lua_newtable(L);
  while (p < end) {
    const char *lf = eol(p, end), *le, *c, *v, *ve;
    size_t nl, i;
    if (lf == NULL) lf = end;
    le = trim_cr(p, lf);
    c = (const char *)memchr(p, ':', (size_t)(le - p));
    if (le == p || c == NULL) break;
    nl = (size_t)(c - p);
    if (nl > MAX_NAME) break; /* (parse_request refused it: 431) */
    v = c + 1;
    while (v < le && (*v == ' ' || *v == '\t')) v++;
    ve = le;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    for (i = 0; i < nl; i++) {
      char ch = p[i];
      lname[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    lua_pushlstring(L, lname, nl);           /* key */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) {  /* key old */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_concat(L, 3);                      /* key "old, new" */
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(ve - v));
    }
    lua_rawset(L, -3);
    p = lf + 1;
  }
  return 1;
}

const luaL_Reg http_head_funcs[] = {
  {"check_field", head_check_field},
  {"field_ok", head_field_ok},
  {"head_fields", head_fields},
  {"head_headers", head_headers},
  {"request_parser", head_request_parser},
  {NULL, NULL}
};

/* parse_request and parse_response into the table at -1, with the
** interned field names as their upvalues. */
void http_head_open(lua_State *L) {
  int i, f;
  lua_CFunction fn[2] = {head_parse_request, head_parse_response};
  const char *name[2] = {"parse_request", "parse_response"};
  for (f = 0; f < 2; f++) {
    for (i = 0; i < NKEYS; i++) lua_pushstring(L, key_names[i]);
    lua_pushcclosure(L, fn[f], NKEYS);
    lua_setfield(L, -2, name[f]);
  }
}
