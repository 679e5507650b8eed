/*
** supervisor.c: the --workers supervisor: spawns the workers, restarts
** the ones that die, stops them (drain) and replaces them (reload).
** See Copyright Notice in README.md
**
** The supervisor never runs the script: it only compiles it in a
** throwaway state (at start and on SIGHUP). It spawns each worker as a
** fresh exec of this program with the same command line, so every worker
** (and every generation after a reload) reads the script again. A worker
** learns who it is from LUAHOST_WORKER="id:count:gen:fd:ppid"; fd is its
** end of a channel to the supervisor (share.h), on which it reports
** "ready" once its main chunk has run to its first wait, and asks for
** every socket its script listens on: the supervisor owns them all
** (listeners.c), so the script runs unchanged in a group. Listening
** sockets the supervisor inherited (--listen, systemd) are also handed
** down as fds 3.. with LISTEN_FDS/LISTEN_FDNAMES, exactly as systemd does.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lualib.h>

#include "daemon.h"
#include "listeners.h"
#include "log.h"
#include "supervisor.h"

extern char **environ;

#define MAX_STARTUP_FAILURES 5   /* in a row, with no worker ready: give up */
#define BACKOFF_FIRST_MS 100     /* restart delay after a first crash */
#define BACKOFF_MAX_MS 5000      /* doubling, capped here */
#define STABLE_MS 2000           /* lived this long: back-off resets */
#define KILL_GRACE_MS 3000       /* after the drain: SIGKILL what is left */
#define RELOAD_READY_MS 30000    /* a new generation must be ready by then */

typedef struct supervisor supervisor;

typedef struct worker {
  uv_process_t proc;
  uv_poll_t chan;     /* our end of the channel (share.h) */
  int chan_fd;
  supervisor *sup;
  struct worker *next;
  int id, gen;
  int ready, exited, draining;
  int open;           /* handles not yet closed: free at 0 */
  uint64_t started;   /* loop time at spawn */
  listener **held;    /* the sockets it asked for */
  int nheld, maxheld;
} worker;

typedef struct slot {
  uv_timer_t timer;   /* pending restart */
  supervisor *sup;
  int id;
  int fails;          /* consecutive quick deaths: the back-off exponent */
} slot;

struct supervisor {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint, sighup;
  uv_timer_t kill_timer;
  uv_timer_t reload_timer;  /* the pending generation's deadline */
  listeners sockets;    /* every socket a worker asked for */
  slot *slots;
  worker *list;
  int count;            /* workers per generation */
  int gen;              /* the generation serving */
  int pending;          /* the generation a reload is starting, or 0 */
  int lastgen;
  int stopping;         /* 1: draining, 2: second signal */
  int startup_failures; /* in a row */
  int exit_code;
  int started_ok;       /* the first generation became ready */
  char **argv;
  const char *script;
  char exe[4096];
  double drain, drain_delay;
};

/* The supervisor's lines: the host's log format (log.c). */
#define sup_log(level, ...) host_log(HOST_LOG_##level, __VA_ARGS__)

/* How a worker ended, for the log: "exited with status 1" or "was killed
** by signal 9 (SIGKILL)". */
static const char *how_ended(char *buf, size_t sz, int64_t status,
                             int sig) {
  if (sig != 0)
    snprintf(buf, sz, "was killed by signal %d (SIG%s)", sig,
             sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
  else
    snprintf(buf, sz, "exited with status %ld", (long)status);
  return buf;
}

static int alive_count(supervisor *sup) {
  int n = 0;
  worker *w;
  for (w = sup->list; w; w = w->next) n += !w->exited;
  return n;
}

static void signal_gen(supervisor *sup, int gen, int sig) {
  worker *w;
  for (w = sup->list; w; w = w->next)
    if (!w->exited && (gen == 0 || w->gen == gen)) {
      if (sig == SIGTERM) w->draining = 1;
      uv_process_kill(&w->proc, sig);
    }
}

/* Tell every live worker that the SIGTERM coming is the final stop (not
** a reload): their --drain-delay applies. A full channel or a worker gone
** only loses the notice (that worker then closes at once). */
static void notify_stop(supervisor *sup) {
  worker *w;
  share_rep rep;
  memset(&rep, 0, sizeof(rep));
  rep.magic = SHARE_MAGIC;
  rep.seq = 0;
  rep.status = SHARE_STOP_NOTICE;
  for (w = sup->list; w; w = w->next) {
    ssize_t n;
    if (w->exited) continue;
    do n = send(w->chan_fd, &rep, sizeof(rep), MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
  }
}

static void close_if_open(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Nothing left to run: close the supervisor's own handles so uv_run
** returns. */
static void sup_finish(supervisor *sup) {
  int i;
  close_if_open((uv_handle_t *)&sup->sigterm);
  close_if_open((uv_handle_t *)&sup->sigint);
  close_if_open((uv_handle_t *)&sup->sighup);
  close_if_open((uv_handle_t *)&sup->kill_timer);
  close_if_open((uv_handle_t *)&sup->reload_timer);
  for (i = 0; i < sup->count; i++)
    close_if_open((uv_handle_t *)&sup->slots[i].timer);
}

static void kill_timer_cb(uv_timer_t *t) {
  supervisor *sup = (supervisor *)t->data;
  sup_log(WARN, "workers still running after the drain; killing them");
  signal_gen(sup, 0, SIGKILL);
}

/* Graceful stop: workers stop accepting and drain; a second call stops
** at once (the drain cut short: code says so, e.g. 128 + the signal). */
static void sup_stop(supervisor *sup, int code) {
  int i;
  uint64_t grace;
  if (code != 0 && sup->exit_code == 0) sup->exit_code = code;
  if (sup->stopping) { /* the second signal: stop at once */
    sup->stopping = 2;
    signal_gen(sup, 0, SIGKILL);
    return;
  }
  sup->stopping = 1;
  /* No worker will accept again: new clients are refused at once rather
  ** than queued on a socket nobody serves (the workers close their
  ** copies as their drain starts). */
  listeners_close_all(&sup->sockets);
  sup->pending = 0;
  uv_timer_stop(&sup->reload_timer);
  for (i = 0; i < sup->count; i++) uv_timer_stop(&sup->slots[i].timer);
  notify_stop(sup);
  signal_gen(sup, 0, SIGTERM);
  if (alive_count(sup) == 0) {
    sup_finish(sup);
    return;
  }
  grace = (uint64_t)((sup->drain + sup->drain_delay) * 1000) +
          KILL_GRACE_MS;
  uv_timer_start(&sup->kill_timer, kill_timer_cb, grace, 0);
}

static void worker_closed(uv_handle_t *h) {
  worker *w = (worker *)h->data;
  if (--w->open == 0) {
    worker **p = &w->sup->list;
    while (*p != w) p = &(*p)->next;
    *p = w->next;
    close(w->chan_fd); /* (the poll on it is closed by now) */
    free(w->held);
    free(w);
  }
}

/* Each handle of a worker counts down w->open when it closes. */
static void close_worker_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, worker_closed);
}

static void worker_ready(worker *w);
static int spawn_worker(supervisor *sup, int id, int gen);

/* Reply to request rq: the socket (fd >= 0) or the error. */
static void reply(worker *w, const share_req *rq, int fd) {
  share_rep rep;
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct iovec iov;
  struct msghdr mh;
  ssize_t n;
  memset(&rep, 0, sizeof(rep));
  memset(&mh, 0, sizeof(mh));
  rep.magic = SHARE_MAGIC;
  rep.seq = rq->seq;
  rep.status = fd < 0 ? fd : 0;
  iov.iov_base = &rep;
  iov.iov_len = sizeof(rep);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (fd >= 0) {
    struct cmsghdr *cm;
    memset(&u, 0, sizeof(u));
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  }
  do n = sendmsg(w->chan_fd, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  /* A worker that died meanwhile has its exit_cb coming; one that is
  ** alive waits for this reply, so its buffer has room. */
}

/* Keep l on w's list of held sockets; 0, or -1 out of memory. */
static int hold(worker *w, listener *l) {
  if (w->nheld == w->maxheld) {
    int n = w->maxheld ? 2 * w->maxheld : 4;
    listener **h = (listener **)realloc(w->held, (size_t)n * sizeof(*h));
    if (h == NULL) return -1;
    w->held = h;
    w->maxheld = n;
  }
  w->held[w->nheld++] = l;
  return 0;
}

/* A worker asks for a socket: bind it once, or hand over the one bound. */
static void serve_request(worker *w, const share_req *rq) {
  supervisor *sup = w->sup;
  listener *l = NULL;
  int fd;
  if (rq->magic != SHARE_MAGIC)
    fd = UV_EPROTO; /* a worker of another build */
  else if (sup->stopping)
    fd = UV_ECANCELED; /* the group is stopping: no new server */
  else
    fd = listeners_get(&sup->sockets, rq, w->gen, &l);
  if (l != NULL && hold(w, l) != 0) {
    listeners_release(l);
    fd = UV_ENOMEM;
  }
  reply(w, rq, fd);
}

/* Messages from a worker: "ready", or a request for a socket. */
static void chan_cb(uv_poll_t *p, int status, int events) {
  worker *w = (worker *)p->data;
  (void)events;
  for (;;) {
    share_req rq;
    ssize_t n;
    if (status < 0) break;
    memset(&rq, 0, sizeof(rq));
    n = recv(w->chan_fd, &rq, sizeof(rq), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) break; /* the worker is gone (exit_cb follows) */
    if (n != (ssize_t)sizeof(rq)) rq.magic = 0; /* refused: EPROTO */
    if (rq.op == SHARE_READY && rq.magic == SHARE_MAGIC) {
      if (!w->ready) worker_ready(w);
    } else {
      serve_request(w, &rq);
    }
  }
  uv_poll_stop(p);
}

/* The pending generation failed: stop it, keep the serving one. */
static void abandon_reload(supervisor *sup, int sig) {
  uv_timer_stop(&sup->reload_timer);
  signal_gen(sup, sup->pending, sig);
  sup->pending = 0;
}

static void reload_timer_cb(uv_timer_t *t) {
  supervisor *sup = (supervisor *)t->data;
  if (!sup->pending) return;
  sup_log(ERROR, "reload failed: the new workers were not ready after %ds; "
          "keeping the old workers", RELOAD_READY_MS / 1000);
  abandon_reload(sup, SIGKILL); /* may be stuck before its first wait */
}

/* All workers of the pending generation are ready: it takes over, and the
** generation it replaces drains. */
static void commit_reload(supervisor *sup) {
  int i, old = sup->gen;
  for (i = 0; i < sup->count; i++) uv_timer_stop(&sup->slots[i].timer);
  uv_timer_stop(&sup->reload_timer);
  sup->gen = sup->pending;
  sup->pending = 0;
  signal_gen(sup, old, SIGTERM);
  sup_log(INFO, "reloaded: generation %d serving, generation %d draining",
          sup->gen, old);
}

static int gen_ready(supervisor *sup, int gen) {
  int n = 0;
  worker *w;
  for (w = sup->list; w; w = w->next)
    n += w->gen == gen && w->ready && !w->exited;
  return n == sup->count;
}

static void worker_ready(worker *w) {
  supervisor *sup = w->sup;
  w->ready = 1;
  sup->startup_failures = 0;
  if (sup->pending && w->gen == sup->pending && gen_ready(sup, w->gen))
    commit_reload(sup);
  else if (!sup->started_ok && w->gen == sup->gen &&
           gen_ready(sup, sup->gen)) {
    sup->started_ok = 1;
    host_daemon_ready(1);
  }
}

static void restart_cb(uv_timer_t *t) {
  slot *s = (slot *)t->data;
  supervisor *sup = s->sup;
  if (sup->stopping) return;
  if (spawn_worker(sup, s->id, sup->gen) != 0) {
    sup->startup_failures++;
    if (sup->startup_failures >= MAX_STARTUP_FAILURES) {
      sup_log(ERROR, "cannot start workers; giving up");
      sup_stop(sup, EXIT_FAILURE);
      return;
    }
    uv_timer_start(&s->timer, restart_cb, BACKOFF_MAX_MS, 0);
  }
}

static void schedule_restart(supervisor *sup, worker *w) {
  slot *s = &sup->slots[w->id - 1];
  uint64_t lived = uv_now(&sup->loop) - w->started, delay;
  if (lived >= STABLE_MS) s->fails = 0;
  delay = (uint64_t)BACKOFF_FIRST_MS << (s->fails < 6 ? s->fails : 6);
  if (delay > BACKOFF_MAX_MS) delay = BACKOFF_MAX_MS;
  s->fails++;
  sup_log(INFO, "restarting worker %d in %.1fs", w->id, (double)delay / 1000);
  uv_timer_start(&s->timer, restart_cb, delay, 0);
}

static void exit_cb(uv_process_t *p, int64_t status, int sig) {
  worker *w = (worker *)p->data;
  supervisor *sup = w->sup;
  char how[96];
  int k, crashed = status != 0 || sig != 0;
  w->exited = 1;
  close_worker_handle((uv_handle_t *)&w->proc);
  close_worker_handle((uv_handle_t *)&w->chan);
  for (k = 0; k < w->nheld; k++) listeners_release(w->held[k]);
  w->nheld = 0;
  if (!sup->stopping) listeners_sweep(&sup->sockets, sup->gen);
  how_ended(how, sizeof(how), status, sig);
  if (sup->stopping) {
    if (crashed && sup->stopping == 1)
      sup_log(WARN, "worker %d (pid %d) %s while stopping", w->id, p->pid, how);
    if (alive_count(sup) == 0) sup_finish(sup);
    return;
  }
  if (sup->pending && w->gen == sup->pending) {
    /* The new generation failed: keep the old one serving. */
    sup_log(ERROR, "reload failed: new worker %d (pid %d) %s; keeping the old "
            "workers", w->id, p->pid, how);
    abandon_reload(sup, SIGTERM);
    return;
  }
  if (w->draining || w->gen != sup->gen) {
    /* A generation a reload replaced, or the rest of one it abandoned. */
    if (crashed && sig != SIGTERM)
      sup_log(WARN, "%s worker %d (pid %d, generation %d) %s",
              w->gen > sup->gen ? "abandoned new" : "old", w->id, p->pid,
              w->gen, how);
    return;
  }
  if (!crashed) { /* the script finished: nothing to restart */
    if (alive_count(sup) == 0) {
      int i, waiting = 0;
      for (i = 0; i < sup->count; i++)
        waiting |= uv_is_active((uv_handle_t *)&sup->slots[i].timer);
      if (!waiting) sup_stop(sup, 0);
    }
    return;
  }
  sup_log(WARN, "worker %d (pid %d) %s", w->id, p->pid, how);
  if (!w->ready && ++sup->startup_failures >= MAX_STARTUP_FAILURES) {
    sup_log(ERROR, "workers keep dying at start-up (%d in a row, the last %s); "
            "giving up", sup->startup_failures, how);
    sup_stop(sup, EXIT_FAILURE);
    return;
  }
  schedule_restart(sup, w);
}

/* The environment of a worker: ours, minus what we set, plus its
** identity and the listening sockets. Returns a malloc'd array whose
** strings are in the same block. */
/* The group's TLS ticket secret (hex), made once per supervisor: every
** worker, of every generation (SIGHUP), derives the same ticket keys
** from it, so a session one worker issued resumes on another. */
static char ticket_seed[65];

static void make_ticket_seed(void) {
  unsigned char b[32];
  int i;
  if (uv_random(NULL, NULL, b, sizeof(b), 0, NULL) != 0) return;
  for (i = 0; i < 32; i++) sprintf(ticket_seed + 2 * i, "%02x", b[i]);
}

static char **worker_env(supervisor *sup, int id, int gen, int fd) {
  size_t n = 0, i, k = 0, extra = 5;
  char **env;
  char *p;
  size_t names = 1;
  int j, nl = host_listen_count();
  for (j = 0; j < nl; j++) names += 3 * strlen(host_listen_name(j)) + 1;
  while (environ[n]) n++;
  env = (char **)malloc((n + extra + 1) * sizeof(char *) + 352 + names +
                        sizeof("LISTEN_FDNAMES="));
  if (env == NULL) return NULL;
  p = (char *)(env + n + extra + 1);
  for (i = 0; i < n; i++) {
    if (strncmp(environ[i], "LUAHOST_WORKER=", 15) == 0 ||
        strncmp(environ[i], "LUAHOST_TICKET_SEED=", 20) == 0 ||
        strncmp(environ[i], "LISTEN_", 7) == 0)
      continue;
    env[k++] = environ[i];
  }
  env[k++] = p;
  p += sprintf(p, "LUAHOST_WORKER=%d:%d:%d:%d:%ld", id, sup->count, gen,
               fd, (long)getpid()) + 1;
  if (ticket_seed[0]) {
    env[k++] = p;
    p += sprintf(p, "LUAHOST_TICKET_SEED=%s", ticket_seed) + 1;
  }
  /* Workers share each listening socket, and every one of them is woken
  ** for a new connection; by default libuv accepts until the queue is
  ** empty, so one worker would take a burst alone. One accept at a time
  ** (then a yield) spreads the burst; measured with 200 clients over 2
  ** workers: 50/50 instead of anything up to 200/0. */
  if (getenv("UV_TCP_SINGLE_ACCEPT") == NULL)
    env[k++] = (char *)"UV_TCP_SINGLE_ACCEPT=1";
  if (nl > 0) {
    env[k++] = p;
    p += sprintf(p, "LISTEN_FDS=%d", nl) + 1;
    env[k++] = p;
    p += sprintf(p, "LISTEN_FDNAMES=");
    /* A --listen name holds ':' (HOST:PORT), the separator: escaped as
    ** %3A (and '%' as %25); the worker unescapes (daemon.c, fdname). */
    for (j = 0; j < nl; j++) {
      const char *c = host_listen_name(j);
      if (j) *p++ = ':';
      for (; *c; c++) {
        if (*c == ':' || *c == '%')
          p += sprintf(p, "%%%02X", (unsigned char)*c);
        else
          *p++ = *c;
      }
    }
    *p++ = '\0';
  }
  env[k] = NULL;
  return env;
}

static void free_data(uv_handle_t *h) { free(h->data); }

/* Start worker id of generation gen. 0, or -1 (logged). */
static int spawn_worker(supervisor *sup, int id, int gen) {
  uv_process_options_t opts;
  uv_stdio_container_t stdio[3 + 64 + 1];
  int fds[2], i, nl = host_listen_count(), st;
  char **env;
  worker *w = (worker *)calloc(1, sizeof(worker));
  if (w == NULL ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    sup_log(ERROR, "cannot start worker %d: out of resources", id);
    free(w);
    return -1;
  }
  env = worker_env(sup, id, gen, 3 + nl);
  memset(&opts, 0, sizeof(opts));
  for (i = 0; i < 3; i++) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = i;
  }
  for (i = 0; i < nl; i++) {
    stdio[3 + i].flags = UV_INHERIT_FD;
    stdio[3 + i].data.fd = host_listen_fd(i);
  }
  stdio[3 + nl].flags = UV_INHERIT_FD;
  stdio[3 + nl].data.fd = fds[1];
  opts.file = sup->exe;
  opts.args = sup->argv;
  opts.env = env;
  opts.exit_cb = exit_cb;
  opts.stdio = stdio;
  opts.stdio_count = 3 + nl + 1;
  w->proc.data = w;
  st = env ? uv_spawn(&sup->loop, &w->proc, &opts) : UV_ENOMEM;
  free(env);
  close(fds[1]);
  if (st != 0) {
    sup_log(ERROR, "cannot start worker %d: %s", id, uv_strerror(st));
    close(fds[0]);
    if (env) /* uv_spawn registered the handle before failing */
      uv_close((uv_handle_t *)&w->proc, free_data);
    else
      free(w);
    return -1;
  }
  w->sup = sup;
  w->id = id;
  w->gen = gen;
  w->started = uv_now(&sup->loop);
  w->open = 2;
  w->chan_fd = fds[0];
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  uv_poll_init(&sup->loop, &w->chan, fds[0]);
  w->chan.data = w;
  uv_poll_start(&w->chan, UV_READABLE | UV_DISCONNECT, chan_cb);
  w->next = sup->list;
  sup->list = w;
  return 0;
}

/* SIGHUP: reopen the log; read the script again; if it compiles, start a
** new generation and, once it is ready, drain the old one. */
/* Does the script compile? Compiled in a throwaway state, never run. 1
** yes; 0 no, with the reason in why. */
static int script_compiles(const char *script, char *why, size_t sz) {
  lua_State *T = luaL_newstate();
  int ok;
  if (T == NULL) {
    snprintf(why, sz, "not enough memory");
    return 0;
  }
  ok = luaL_loadfile(T, script) == LUA_OK;
  if (!ok) snprintf(why, sz, "%s", lua_tostring(T, -1));
  lua_close(T);
  return ok;
}

static void reload(supervisor *sup) {
  char why[1024];
  int i;
  host_log_reopen(); /* --log moved by logrotate: the new workers use the
                        new file (the supervisor too) */
  if (sup->stopping) return;
  if (sup->pending) {
    sup_log(WARN, "reload already in progress; SIGHUP ignored");
    return;
  }
  if (!script_compiles(sup->script, why, sizeof(why))) {
    sup_log(ERROR, "reload: %s; keeping the old workers", why);
    return;
  }
  sup->pending = ++sup->lastgen;
  sup_log(INFO, "reload: starting generation %d", sup->pending);
  for (i = 1; i <= sup->count; i++) {
    if (spawn_worker(sup, i, sup->pending) != 0) {
      sup_log(ERROR, "reload failed; keeping the old workers");
      abandon_reload(sup, SIGTERM);
      return;
    }
  }
  uv_timer_start(&sup->reload_timer, reload_timer_cb, RELOAD_READY_MS, 0);
}

static void signal_cb(uv_signal_t *h, int signum) {
  supervisor *sup = (supervisor *)h->data;
  if (signum == SIGHUP)
    reload(sup);
  else /* a second one cuts the drain short: exit as killed by it */
    sup_stop(sup, sup->stopping ? 128 + signum : 0);
}

/* After a failed start-up: close whatever is left (the worker records
** still listed are freed by host_supervise). */
static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int host_supervise(const host_options *ho, int argc, char **argv,
                   int script) {
  supervisor sup;
  size_t len = sizeof(sup.exe);
  int i, n = ho->workers;
  char why[1024];
  (void)argc;
  /* A script that does not compile would only make every worker die at
  ** start-up: say so at once. */
  if (!script_compiles(argv[script], why, sizeof(why))) {
    fprintf(stderr, "luahost: %s\n", why);
    host_daemon_ready(0);
    return EXIT_FAILURE;
  }
  memset(&sup, 0, sizeof(sup));
  if (n < 0) n = (int)uv_available_parallelism();
  if (n < 1) n = 1;
  sup.count = n;
  sup.argv = argv;
  sup.script = argv[script];
  sup.drain = ho->drain;
  sup.drain_delay = ho->drain_delay;
  sup.gen = sup.lastgen = 1;
  make_ticket_seed();
  if (uv_exepath(sup.exe, &len) != 0 || uv_loop_init(&sup.loop) != 0) {
    fprintf(stderr, "luahost: cannot start the supervisor\n");
    return EXIT_FAILURE;
  }
  sup.slots = (slot *)calloc((size_t)n, sizeof(slot));
  if (sup.slots == NULL) {
    fprintf(stderr, "luahost: not enough memory\n");
    uv_loop_close(&sup.loop);
    return EXIT_FAILURE;
  }
  for (i = 0; i < n; i++) {
    sup.slots[i].sup = &sup;
    sup.slots[i].id = i + 1;
    uv_timer_init(&sup.loop, &sup.slots[i].timer);
    sup.slots[i].timer.data = &sup.slots[i];
  }
  uv_timer_init(&sup.loop, &sup.kill_timer);
  sup.kill_timer.data = &sup;
  uv_timer_init(&sup.loop, &sup.reload_timer);
  sup.reload_timer.data = &sup;
  uv_signal_init(&sup.loop, &sup.sigterm);
  uv_signal_init(&sup.loop, &sup.sigint);
  uv_signal_init(&sup.loop, &sup.sighup);
  sup.sigterm.data = sup.sigint.data = sup.sighup.data = &sup;
  uv_signal_start(&sup.sigterm, signal_cb, SIGTERM);
  uv_signal_start(&sup.sigint, signal_cb, SIGINT);
  uv_signal_start(&sup.sighup, signal_cb, SIGHUP);
  for (i = 1; i <= n; i++) {
    if (spawn_worker(&sup, i, sup.gen) != 0) {
      sup_stop(&sup, EXIT_FAILURE);
      break;
    }
  }
  uv_run(&sup.loop, UV_RUN_DEFAULT);
  /* Anything still open (only after a failure) is closed here. */
  uv_walk(&sup.loop, walk_close, NULL);
  uv_run(&sup.loop, UV_RUN_DEFAULT);
  uv_loop_close(&sup.loop);
  listeners_free(&sup.sockets);
  while (sup.list) { /* workers whose handles closed without the count */
    worker *w = sup.list;
    sup.list = w->next;
    close(w->chan_fd);
    free(w->held);
    free(w);
  }
  free(sup.slots);
  /* Only reached before readiness when all workers finished (or failed)
  ** early: the exit status says which. */
  host_daemon_ready(sup.exit_code == 0);
  return sup.exit_code;
}
