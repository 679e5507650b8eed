/*
** net_read.c: buffered input of a stream conn: the borrowed read buffer,
** io.read formats, recv.
** See Copyright Notice in README.md
*/
#include <limits.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#include "net_core.h"

/* {====================================================== buffer */

/* The state's one read buffer, shared with uv's handles (lh_readbuf, made
** at least RBUF_SIZE by net.core's opener); a malloc'd one while it is
** lent out (a nested loop run). */
static void alloc_cb(uv_handle_t *uvh, size_t hint, uv_buf_t *b) {
  conn *c = (conn *)((lh_handle *)uvh->data)->extra;
  (void)hint;
  /* A recv_into waits, nothing is unread, the bytes are the socket's own
  ** (plain, no pipe): the read lands in its net.buffer, and net_deliver
  ** lends it that as it lends the read buffer: no copy at all. */
  if (c->into && c->rco != NULL && c->rlen == 0 && c->tp == &net_plain &&
      X_PIPE(c) == NULL) {
    net_buffer *nb = (net_buffer *)(void *)((char *)c->rp -
                                            offsetof(net_buffer, data));
    b->base = nb->data;
    b->len = nb->cap;
    c->K->given = nb->data;
    c->K->ninto++;
    return;
  }
  c->K->given = NULL;
  lh_readbuf_alloc(c->K->ctx, b);
}

/* Append n bytes to c's owned input. */
static int append(conn *c, const char *p, size_t n) {
  size_t used;
  if (c->rlen == 0) c->rp = c->buf;
  used = (size_t)(c->rp - c->buf);
  if (used + c->rlen + n > c->cap) {
    if (used > 0) {
      memmove(c->buf, c->rp, c->rlen);
      c->rp = c->buf;
    }
    if (c->rlen + n > c->cap) {
      size_t ncap = c->cap ? c->cap : 1024;
      char *nb;
      while (ncap < c->rlen + n) ncap *= 2;
      nb = (char *)realloc(c->buf, ncap);
      if (nb == NULL) return UV_ENOMEM;
      c->buf = nb;
      c->rp = nb;
      c->cap = ncap;
    }
  }
  memcpy((char *)c->rp + c->rlen, p, n);
  c->rlen += n;
  return 0;
}

static void consume(conn *c, size_t n) {
  if (n == 0) return;
  c->rp += n;
  c->rlen -= n;
}

/* Push len of the next bytes as a string and consume take (>= len) of
** them. Consumed first: a push can run a collection step, whose
** finalizers may call recv on this very conn; the bytes are copied into
** the string before any step. */
static void push_take(lua_State *L, conn *c, size_t len, size_t take) {
  const char *p = c->rp;
  consume(c, take);
  lua_pushlstring(L, p, len);
}

static const char *find_nl(const conn *c) {
  return c->rlen ? (const char *)memchr(c->rp, '\n', c->rlen) : NULL;
}

void net_rstop(conn *c) {
  if (c->reading) {
    uv_read_stop(STREAM(c));
    c->reading = 0;
  }
}

/* Plaintext for the reader, from the transport (plain: what the socket
** read). p is valid during the call only. */
int net_deliver(conn *c, const char *p, size_t n) {
  core *K = c->K;
  lua_State *L = K->ctx->L;
  c->fed = 1;
  if (X_PIPE(c) != NULL && net_pipe_data(c, p, n)) return 0;
  if ((c->rco || c->resting) && c->rlen == 0 && !K->ctx->readbuf_lent) {
    /* Requests its server answers in C (http.fixed) go first: no task
    ** wakes for them; what is left goes on below. */
    if (c->ans != NULL) {
      size_t used = net_answer_run(c, p, n);
      if (used == n || c->closed) return 0;
      p += used;
      n -= used;
    }
    /* Fast path: the reader (or the task a resting conn's callback
    ** starts) reads straight from p, lent while it runs;
    ** only what it leaves is copied. A nested loop run meanwhile reads
    ** into buffers of its own (see lh_readbuf_alloc). */
    c->rp = p;
    c->rlen = n;
    K->ctx->readbuf_lent = 1;
    K->lent = p;
    net_wake_reader(L, c);
    K->ctx->readbuf_lent = 0;
    K->lent = NULL;
    if (c->rlen > 0) {
      const char *q = c->rp;
      size_t m = c->rlen;
      c->rlen = 0;
      if (!c->closed && append(c, q, m) < 0) return UV_ENOMEM;
    }
    return 0;
  }
  if (append(c, p, n) < 0) return UV_ENOMEM;
  net_wake_reader(L, c);
  return 0;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  conn *c = (conn *)((lh_handle *)s->data)->extra;
  core *K = c->K;
  /* (a net.buffer is its owner's; only a spare read buffer is freed) */
  int r = 0, owned = b->base != K->given && lh_readbuf_owned(K->ctx, b);
  K->given = NULL;
  if (nread > 0 && !c->closed) /* (a closed conn drops input) */
    r = c->tp->on_data(c, b->base, (size_t)nread);
  else if (nread < 0)
    r = c->tp->on_end ? c->tp->on_end(c, (int)nread) : (int)nread;
  if (r < 0) {
    if (!c->rerr) c->rerr = r;
    net_rstop(c);
    net_wake_reader(K->ctx->L, c);
  }
  if (owned) free(b->base);
  /* Nobody reads and enough is buffered: let TCP push back on the peer. */
  if (c->reading && c->rco == NULL && c->rlen >= RHWM) net_rstop(c);
}

void net_rstart(conn *c) {
  if (!c->reading && !c->rerr && !c->closed) {
    int r = uv_read_start(STREAM(c), alloc_cb, read_cb);
    if (r < 0)
      c->rerr = r;
    else
      c->reading = 1;
  }
}

/* An empty owned buffer is freed before parking: idle connections then
** hold no input memory at all. (rp stays when a recv_into waits: it is
** where that task's net.buffer is, which alloc_cb reads; another task's
** read that is refused as a second reader comes through here first.) */
static void shrink(conn *c) {
  if (c->rlen == 0 && c->buf != NULL && c->rp != c->K->lent) {
    free(c->buf);
    c->buf = NULL;
    if (!c->into) c->rp = NULL;
    c->cap = 0;
  }
}

/* }====================================================== */

/* {====================================================== formats */

static int push_fail_input(lua_State *L, conn *c) {
  lua_pushnil(L);
  lua_pushstring(L, c == NULL || c->closed ? "closed"
                                           : net_conn_errname(c, c->rerr));
  return -1;
}

/* After a "line too long" that was dropped before its newline came, the
** rest of that line goes first, whatever reads next (docs/net.md: "the
** next read starts after it"): skipline stays set while more of it may
** come. */
static void skip_long_line(conn *c) {
  const char *nl = find_nl(c);
  if (nl == NULL) {
    consume(c, c->rlen);
    if (c->rerr) c->skipline = 0; /* (it ran to the end of input) */
    return;
  }
  consume(c, (size_t)(nl - c->rp) + 1);
  c->skipline = 0;
}

/* A number ("n"): the numeral io.read("n") would read, by the same
** scanner (liolib.c's read_number: blanks, a sign, "0x", digits, a
** point, digits, an exponent; at most 200 characters), run over the
** buffered input. The look-ahead character that ends it stays unread, as
** io.read leaves it; what the scanner took goes even when it is not a
** number. */
#define NUM_MAX 200 /* liolib.c's L_MAXLENNUM */
typedef struct numscan {
  const char *p;  /* the buffered input */
  size_t len, i;  /* its length; the scanner's position */
  int eof;        /* nothing comes after it */
  int need;       /* the scanner looked past it before the end */
  size_t n;       /* the numeral's length so far */
  char buf[NUM_MAX + 1];
} numscan;

static int ns_cur(numscan *s) {
  if (s->i < s->len) return (unsigned char)s->p[s->i];
  if (!s->eof) s->need = 1;
  return -1;
}

static int ns_next(numscan *s) { /* take the current character */
  if (s->n >= NUM_MAX) { /* too long: not a number */
    s->buf[0] = '\0';
    return 0;
  }
  s->buf[s->n++] = s->p[s->i++];
  return 1;
}

static int ns_test2(numscan *s, const char *set) {
  int ch = ns_cur(s);
  return (ch == set[0] || ch == set[1]) && ch != -1 ? ns_next(s) : 0;
}

static int ns_digits(numscan *s, int hex) {
  int count = 0, ch;
  while ((ch = ns_cur(s)) != -1 && (hex ? isxdigit(ch) : isdigit(ch)) &&
         ns_next(s))
    count++;
  return count;
}

static int read_number(lua_State *L, conn *c) {
  numscan s;
  int count = 0, hex = 0;
  size_t blanks = 0;
  while (blanks < c->rlen && strchr(" \t\r\n\f\v", c->rp[blanks]) &&
         c->rp[blanks])
    blanks++;
  consume(c, blanks); /* skipped blanks go: a flood of them stays bounded */
  s.p = c->rp;
  s.len = c->rlen;
  s.i = s.n = 0;
  s.eof = c->rerr != 0;
  s.need = 0;
  ns_test2(&s, "-+");
  if (ns_test2(&s, "00")) {
    if (ns_test2(&s, "xX")) hex = 1;
    else count = 1;
  }
  count += ns_digits(&s, hex);
  if (ns_test2(&s, ".."))
    count += ns_digits(&s, hex);
  if (count > 0 && ns_test2(&s, hex ? "pP" : "eE")) {
    ns_test2(&s, "-+");
    ns_digits(&s, 0);
  }
  if (s.need) return 0; /* the next byte decides: need more */
  s.buf[s.n] = '\0'; /* (after an overflow buf[0] is '\0' already) */
  if (s.i == 0 && s.eof && c->rlen == 0) return push_fail_input(L, c);
  consume(c, s.i);
  if (lua_stringtonumber(L, s.buf) != 0) return 1;
  lua_pushnil(L);
  lua_pushliteral(L, "not a number");
  return -1;
}

/* read("a") or read(n) would hold more than max_read: nil, "too long". */
static int push_too_long(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "too long");
  return -1;
}

/* Try to satisfy the format at fidx from buffered input: 1 = one value
** pushed, 0 = need more input, -1 = nil, err pushed. */
static int read_one(lua_State *L, conn *c, int fidx) {
  if (c == NULL || c->closed) return push_fail_input(L, c);
  if (c->skipline) {
    skip_long_line(c);
    if (c->skipline) return 0;
  }
  if (lua_type(L, fidx) == LUA_TNUMBER) {
    size_t n = (size_t)lua_tointeger(L, fidx);
    if (n > c->maxread) return push_too_long(L);
    /* (0, as io.read: "" once a byte is there, fail at the end: so it
    ** waits for one or the other) */
    if (c->rlen >= n && (n > 0 || c->rlen > 0)) {
      push_take(L, c, n, n);
      return 1;
    }
    if (!c->rerr) return 0;
    if (c->rlen == 0) return push_fail_input(L, c);
    push_take(L, c, c->rlen, c->rlen); /* the rest, as io.read */
    return 1;
  }
  const char *f = lua_tostring(L, fidx); /* (one look at the format) */
  switch (f[0] == '*' ? f[1] : f[0]) {
    case 'l': case 'L': {
      int keep = (f[0] == '*' ? f[1] : f[0]) == 'L';
      const char *nl = find_nl(c);
      if (nl != NULL) {
        size_t n = (size_t)(nl - c->rp);
        if (n > c->maxline) {
          consume(c, n + 1);
          lua_pushnil(L);
          lua_pushliteral(L, "line too long");
          return -1;
        }
        push_take(L, c, n + (size_t)keep, n + 1);
        return 1;
      }
      if (c->rlen > c->maxline) { /* drop it: memory stays bounded */
        consume(c, c->rlen);
        c->skipline = 1;
        lua_pushnil(L);
        lua_pushliteral(L, "line too long");
        return -1;
      }
      if (!c->rerr) return 0;
      if (c->rlen == 0) return push_fail_input(L, c);
      push_take(L, c, c->rlen, c->rlen); /* last line, no newline */
      return 1;
    }
    case 'a':
      /* More than max_read before the end: refused, with nothing
      ** consumed (recv or read(n) take the bytes in pieces); the socket
      ** stops reading meanwhile (read_cb): memory stays bounded. */
      if (c->rlen > c->maxread) return push_too_long(L);
      if (!c->rerr) return 0;
      push_take(L, c, c->rlen, c->rlen);
      return 1;
    default: /* 'n' */
      return read_number(L, c);
  }
}

#define KC(i, nf) ((lua_KContext)((i) | ((nf) << 16)))

static int read_k(lua_State *L, int status, lua_KContext kc) {
  int i = (int)(kc & 0xffff), nf = (int)(kc >> 16);
  int base = 1 + nf + (i - 2); /* conn, formats, results so far */
  conn *c = *(conn **)lua_touserdata(L, 1);
  (void)status;
  int how = net_was_cancelled(L, base);
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  for (; i <= nf + 1; i++) {
    int r = read_one(L, c, i);
    if (r < 0) return lua_gettop(L) - (nf + 1);
    if (r == 0) {
      if (c->rtimed) {
        c->rtimed = 0;
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return lua_gettop(L) - (nf + 1);
      }
      net_rstart(c);
      if (c->rerr) { i--; continue; } /* read_start failed: report it */
      shrink(c);
      return net_park_reader(L, c, c->timeout, KC(i, nf), read_k, "read");
    }
  }
  /* all done; keep the socket reading only while input is wanted */
  if (c->rlen >= RHWM) net_rstop(c);
  return lua_gettop(L) - (nf + 1);
}

static const char *const formats[] = {"l", "L", "a", "n", "*l", "*L", "*a",
                                      "*n", NULL};

/* read(fmt...): io.read's formats; default "l". */
static int conn_read(lua_State *L) {
  int n = lua_gettop(L), i;
  conn *c = net_to_conn(L, 1, K_STREAM);
  if (n == 1) { /* the default: nothing to check */
    lua_pushliteral(L, "l");
    return read_k(L, LUA_OK, KC(2, 1));
  }
  luaL_argcheck(L, n - 1 <= MAX_FORMATS, MAX_FORMATS, "too many formats");
  for (i = 2; i <= n; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      luaL_argcheck(L, lua_isinteger(L, i) && lua_tointeger(L, i) >= 0, i,
                    "invalid format");
    } else {
      luaL_checkoption(L, i, NULL, formats);
    }
  }
  /* read_k pushes one result per format (as lines_iter makes room for) */
  luaL_checkstack(L, n + LUA_MINSTACK, "too many formats");
  (void)c;
  return read_k(L, LUA_OK, KC(2, n - 1));
}

/* The iterator of lines(): upvalues are the conn and the formats. */
static int lines_iter(lua_State *L) {
  int nf = (int)lua_tointeger(L, lua_upvalueindex(1)), i;
  lua_settop(L, 0);
  luaL_checkstack(L, nf + LUA_MINSTACK, "too many formats");
  for (i = 0; i <= nf; i++) lua_pushvalue(L, lua_upvalueindex(i + 2));
  return read_k(L, LUA_OK, KC(2, nf));
}

/* lines(fmt...): for line in conn:lines() do ... end; ends on any
** failure (end of input, timeout, ...). */
static int conn_lines(lua_State *L) {
  int n = lua_gettop(L), i;
  net_to_conn(L, 1, K_STREAM);
  if (n == 1) {
    lua_pushliteral(L, "l");
    n = 2;
  }
  luaL_argcheck(L, n - 1 <= MAX_FORMATS, MAX_FORMATS, "too many formats");
  for (i = 2; i <= n; i++) {
    if (lua_type(L, i) == LUA_TNUMBER)
      luaL_argcheck(L, lua_isinteger(L, i) && lua_tointeger(L, i) >= 0, i,
                    "invalid format");
    else
      luaL_checkoption(L, i, NULL, formats);
  }
  lua_pushinteger(L, n - 1);
  lua_insert(L, 1); /* nf, conn, formats */
  lua_pushcclosure(L, lines_iter, n + 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== recv */

static int recv_k(lua_State *L, int status, lua_KContext kc);
static int recv_wait_k(lua_State *L, int status, lua_KContext kc);

#define CONN_TIMEOUT INT_MIN /* recv_do's ms: the conn's own timeout */

/* recv's work on c (conn at 1, nothing above it), max bytes at most;
** a wait is for ms (CONN_TIMEOUT: the conn's timeout), then k(kc). */
static int recv_do(lua_State *L, conn *c, size_t max, int ms,
                   lua_KFunction k, lua_KContext kc) {
  if (c == NULL || c->closed) return net_fail_str(L, "closed");
  if (c->skipline) skip_long_line(c);
  if (c->rlen > 0) {
    size_t n = c->rlen < max ? c->rlen : max;
    push_take(L, c, n, n);
    return 1;
  }
  if (c->rerr) return net_fail_str(L, net_conn_errname(c, c->rerr));
  if (c->rtimed) {
    c->rtimed = 0;
    return net_fail_str(L, "timeout");
  }
  net_rstart(c);
  if (c->rerr) return net_fail_str(L, net_conn_errname(c, c->rerr));
  shrink(c);
  if (ms == CONN_TIMEOUT) ms = c->timeout;
  if (k == recv_wait_k) return net_park_reader_next(L, c, ms, kc, k);
  return net_park_reader(L, c, ms, kc, k, "recv");
}

/* A parked recv or recv_wait goes on: its task was cancelled, or it
** reads again. */
static int recv_again(lua_State *L, size_t max, int ms, lua_KFunction k,
                      lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  int how = net_was_cancelled(L, 1);
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  return recv_do(L, c, max, ms, k, kc);
}

static int recv_k(lua_State *L, int status, lua_KContext kc) {
  (void)status;
  return recv_again(L, (size_t)kc, CONN_TIMEOUT, recv_k, kc);
}

static int recv_wait_k(lua_State *L, int status, lua_KContext kc) {
  (void)status;
  return recv_again(L, RBUF_SIZE, (int)kc, recv_wait_k, kc);
}

/* recv_into's work on c (conn at 1, its net.buffer nb at 2). */
static int recv_into_k(lua_State *L, int status, lua_KContext kc);

static int recv_into_do(lua_State *L, conn *c, net_buffer *nb) {
  if (c == NULL || c->closed) return net_fail_str(L, "closed");
  if (c->skipline) skip_long_line(c);
  if (c->rlen > 0) {
    size_t n = c->rlen < nb->cap ? c->rlen : nb->cap;
    /* (in place when the read landed in nb: alloc_cb) */
    if (c->rp != nb->data) memmove(nb->data, c->rp, n);
    nb->len = n;
    consume(c, n);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
  }
  if (c->rerr) return net_fail_str(L, net_conn_errname(c, c->rerr));
  if (c->rtimed) {
    c->rtimed = 0;
    return net_fail_str(L, "timeout");
  }
  net_rstart(c);
  if (c->rerr) return net_fail_str(L, net_conn_errname(c, c->rerr));
  shrink(c);
  return net_park_reader_into(L, c, c->timeout, 0, recv_into_k, nb);
}

static int recv_into_k(lua_State *L, int status, lua_KContext kc) {
  conn *c = *(conn **)lua_touserdata(L, 1);
  int how = net_was_cancelled(L, 2);
  (void)status; (void)kc;
  if (how) {
    net_drop_waits(L, c);
    return net_cancel_exit(L, how);
  }
  return recv_into_do(L, c, (net_buffer *)lua_touserdata(L, 2));
}

/* recv_into(buf): recv's next chunk (at most buf's capacity) into buf,
** whose length it becomes: its length, or nil, err (buf unchanged). */
static int conn_recv_into(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  net_buffer *nb = net_tobuffer(L, net_getcore(L), 2);
  if (nb == NULL) return luaL_typeerror(L, 2, "net.buffer");
  luaL_argcheck(L, lua_gettop(L) <= 2, 3, "no value expected");
  return recv_into_do(L, c, nb);
}

/* waits_next(conn): is a task waiting in conn's recv_wait (http's wait
** for a next request)? http.server's close closes those conns. */
static int core_waits_next(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_pushboolean(L, LIVE(c) && c->rco != NULL && c->next);
  return 1;
}

/* buffered(): bytes received and not yet read, without any I/O: a
** pipelining server reads requests while this is above 0, then writes
** its replies at once. (Input arrives only while the conn is reading,
** that is after a first read; a closed conn has dropped its input.) */
static int conn_buffered(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_pushinteger(L, LIVE(c) ? (lua_Integer)c->rlen : 0);
  return 1;
}

/* recv([max]): the next chunk of input, whatever has arrived. */
static int conn_recv(lua_State *L) {
  int n = lua_gettop(L);
  lua_Integer max = n < 2 ? RBUF_SIZE : luaL_optinteger(L, 2, RBUF_SIZE);
  conn *c = net_to_conn(L, 1, K_STREAM);
  luaL_argcheck(L, max > 0, 2, "positive size expected");
  if (n != 1) lua_settop(L, 1); /* (as recv_k wants it) */
  return recv_do(L, c, (size_t)max, CONN_TIMEOUT, recv_k,
                 (lua_KContext)max);
}

/* recv_wait(conn, ms): recv, waiting ms at most (not the conn's timeout,
** which stays as it is): http's wait for a next request on a kept-alive
** conn, with no settimeout before and after. */
static int core_recv_wait(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_Integer ms = luaL_checkinteger(L, 2);
  luaL_argcheck(L, ms >= 0, 2, "non-negative milliseconds expected");
  if (ms > INT_MAX) ms = INT_MAX;
  lua_settop(L, 1);
  return recv_do(L, c, RBUF_SIZE, (int)ms, recv_wait_k, (lua_KContext)ms);
}

/* }====================================================== */

/* {====================================================== rest */

/*
** rest(conn, ms, fn, server, tag): between two requests, a server's
** connection waits here with no task, no coroutine, no input buffer and
** nothing in Lua but two registry slots (fn and tag, a value the caller
** gets back: net.lua's is the client address, shared by the conns from
** there): the conn's userdata lets go of it (it reads
** as closed from now on; nothing holds the connection in Lua), the socket
** keeps reading, and the first thing to tell calls fn(conn, err, tag) from the
** loop with a new userdata for it (as a callback: it must not fail, nor
** wait): err is nil when input arrived (the task fn starts reads it
** straight from the shared read buffer), else "closed" (the peer's end of
** input, or a close: close_resting), "timeout" (ms passed with nothing,
** ms < 0: never) or the error. Then the conn no longer rests. Meanwhile
** it is on the core's list of resting conns, under server's group
** (core.resting, core.close_resting: net_conn.c).
** Returns false, doing nothing, when the conn cannot rest: input is
** buffered already (pipelining: read it), an error or the end of input
** is pending, a task waits to read it, or it is closed.
*/
static void anchor_top(lua_State *L, int *ref) {
  if (*ref == LUA_NOREF || *ref == LUA_REFNIL)
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else
    lua_rawseti(L, LUA_REGISTRYINDEX, *ref);
}

static int core_rest(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  lua_Integer ms = luaL_checkinteger(L, 2);
  conn *s;
  luaL_checktype(L, 3, LUA_TFUNCTION);
  s = net_to_conn(L, 4, K_SERVER);
  if (!LIVE(c) || s == NULL || c->rlen > 0 || c->rerr || c->cstatus == 1 ||
      c->resting || (c->rco != NULL && lua_status(c->rco) == LUA_YIELD)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (X_OLEN(c) > 0) net_flush_out(c); /* as a read that waits does */
  net_rstart(c);
  if (c->rerr) {
    lua_pushboolean(L, 0);
    return 1;
  }
  shrink(c);
  c->rdue = 0;
  if (ms >= 0) { /* lazy, as net_park_reader's */
    uint64_t due = net_now(c->K) + (uint64_t)(ms > INT_MAX ? INT_MAX : ms);
    c->rdue = due;
    if (c->rt.idx >= 0 && c->rt.due > due) net_tmo_del(c->K, &c->rt);
    if (c->rt.idx < 0 && net_tmo_add_at(c->K, &c->rt, net_rd_fire, due) < 0)
      return luaL_error(L, "not enough memory");
  }
  /* fn in iref, tag in the reader's slot (no reader while it rests) */
  lua_settop(L, 5);
  net_rslot_forget(c);
  anchor_top(L, &c->rref); /* tag */
  lua_settop(L, 3);
  anchor_top(L, &c->iref); /* fn */
  c->rtimed = 0;
  c->rsince = net_now(c->K);
  c->resting = 1;
  c->rested |= c->fed; /* (after input: between two requests) */
  c->group = s->group;
  net_rest_link(c);
  net_shelf_rested(c->K);
  c->task = NULL;
  *c->ud = NULL; /* the userdata lets go: C alone holds the conn */
  c->ud = NULL;
  uv_ref(c->h->uv); /* as a task waiting to read would */
  lua_pushboolean(L, 1);
  return 1;
}

/* fd_readable(fd) -> boolean: would a read of the socket fd (or an
** accept) not wait, as far as the kernel knows: input, a connection to
** accept, the end or an error (poll, no wait). For the socket layer's
** select with a timeout of 0, as LuaSocket's: net reads a socket only
** while a task waits on it, so what the kernel holds is not yet in net's
** buffers. */
static int core_fd_readable(lua_State *L) {
  struct pollfd p;
  p.fd = (int)lh_check_range(L, 1, 0, INT_MAX);
  p.events = POLLIN;
  p.revents = 0;
  lua_pushboolean(L, poll(&p, 1, 0) > 0 &&
                     (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0);
  return 1;
}

/* idle_ok(conn) -> boolean: may a conn that waits for nothing (an http
** client's pooled connection: no answer is due) be sent on? Not when
** closed, nor when input, the peer's end or an error came. A conn that
** reads needs no system call for it: the loop watches its socket, and an
** end it saw is in rerr; only one that stopped reading is polled. */
static int core_idle_ok(lua_State *L) {
  conn *c = net_to_conn(L, 1, K_STREAM);
  int ok = LIVE(c) && c->rlen == 0 && c->rerr == 0;
  if (ok && !c->reading) {
    uv_os_fd_t fd;
    struct pollfd p;
    if (uv_fileno(c->h->uv, &fd) != 0) {
      ok = 0;
    } else {
      p.fd = fd;
      p.events = POLLIN;
      p.revents = 0;
      ok = poll(&p, 1, 0) == 0;
    }
  }
  lua_pushboolean(L, ok);
  return 1;
}

/* fd_shutdown(fd, how) -> true | nil, err: shutdown(2) of the socket fd
** now, how "read" or "write", for the socket layer's shutdown: LuaSocket's
** is the kernel's, at once, where libuv has no call for the read side and
** makes its write side's in a later turn of the loop. */
static int core_fd_shutdown(lua_State *L) {
  static const char *const hows[] = {"read", "write", NULL};
  int fd = (int)lh_check_range(L, 1, 0, INT_MAX);
  int how = luaL_checkoption(L, 2, NULL, hows) == 0 ? SHUT_RD : SHUT_WR;
  if (shutdown(fd, how) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, uv_err_name(uv_translate_sys_error(errno)));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg rest_functions[] = {
  {"fd_readable", core_fd_readable},
  {"idle_ok", core_idle_ok},
  {"fd_shutdown", core_fd_shutdown},
  {"recv_wait", core_recv_wait},
  {"waits_next", core_waits_next},
  {"rest", core_rest},
  {NULL, NULL}
};

/* }====================================================== */

/* {====================================================== opener */

static const luaL_Reg read_methods[] = {
  {"buffered", conn_buffered},
  {"lines", conn_lines},
  {"read", conn_read},
  {"recv", conn_recv},
  {"recv_into", conn_recv_into},
  {NULL, NULL}
};

void net_read_open(lua_State *L) {
  net_setfuncs(L, rest_functions);
  net_add_methods(L, K_STREAM, read_methods);
}

/* }====================================================== */
