/*
** daemon.c: daemon mode, the pid file, dropping privileges, and the
** listening sockets a process starts with (systemd socket activation,
** --listen, or handed down by the worker supervisor).
** See Copyright Notice in README.md
**
** These are facts about the process, set up once before any Lua state
** exists, so they live in this file's statics rather than in lh_ctx.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

/* {====================================================== pid file */

static char *pidfile_path;  /* removed at exit by the process that made it */
static pid_t pidfile_owner;

/* The pid in the file at path, or 0 when there is none or it is garbage. */
static pid_t pidfile_read(const char *path) {
  FILE *f = fopen(path, "r");
  long pid = 0;
  if (f == NULL) return 0;
  if (fscanf(f, "%ld", &pid) != 1 || pid <= 0) pid = 0;
  fclose(f);
  return (pid_t)pid;
}

/* A live process holds the pid file (EPERM: alive, owned by another). */
static pid_t pidfile_holder(const char *path) {
  pid_t pid = pidfile_read(path);
  if (pid > 0 && pid != getpid() && (kill(pid, 0) == 0 || errno == EPERM))
    return pid;
  return 0;
}

static void pidfile_remove(void) {
  /* Forked children (the daemon's starter, workers before exec) inherit
  ** this handler: only the owner removes, and only its own pid. */
  if (pidfile_path == NULL || getpid() != pidfile_owner) return;
  if (pidfile_read(pidfile_path) == pidfile_owner) unlink(pidfile_path);
}

int host_pidfile_create(const char *path) {
  char tmp[4096];
  FILE *f;
  pid_t holder = pidfile_holder(path);
  if (holder > 0) {
    fprintf(stderr, "luahost: pid file %s is held by running process %ld\n",
            path, (long)holder);
    return -1;
  }
  if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >=
      (int)sizeof(tmp)) {
    fprintf(stderr, "luahost: pid file name too long: %s\n", path);
    return -1;
  }
  f = fopen(tmp, "w");
  if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 ||
      fclose(f) != 0 || rename(tmp, path) != 0) {
    fprintf(stderr, "luahost: cannot write pid file %s: %s\n", path,
            strerror(errno));
    unlink(tmp);
    return -1;
  }
  if (pidfile_path == NULL) atexit(pidfile_remove);
  free(pidfile_path);
  pidfile_path = strdup(path);
  pidfile_owner = getpid();
  return 0;
}

/* }====================================================== */

/* {====================================================== privileges */

/* Resolve "user[:group]" into ids; 0, or prints why and returns -1. */
static int lookup_user(const char *spec, uid_t *uid, gid_t *gid,
                       char *name, size_t namesz) {
  const char *colon = strchr(spec, ':');
  size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
  struct passwd *pw;
  if (ulen == 0 || ulen >= namesz) {
    fprintf(stderr, "luahost: bad --user '%s'\n", spec);
    return -1;
  }
  memcpy(name, spec, ulen);
  name[ulen] = '\0';
  pw = getpwnam(name);
  if (pw == NULL) {
    fprintf(stderr, "luahost: --user: no such user '%s'\n", name);
    return -1;
  }
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
  if (colon && colon[1] != '\0') {
    struct group *gr = getgrnam(colon + 1);
    if (gr == NULL) {
      fprintf(stderr, "luahost: --user: no such group '%s'\n", colon + 1);
      return -1;
    }
    *gid = gr->gr_gid;
  }
  return 0;
}

int host_drop_privileges(const char *spec) {
  char name[256];
  uid_t uid;
  gid_t gid;
  if (lookup_user(spec, &uid, &gid, name, sizeof(name)) != 0) return -1;
  if (geteuid() == uid && getuid() == uid) return 0; /* already there */
  /* Groups first: after setuid we could no longer change them. */
  if (initgroups(name, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
    fprintf(stderr, "luahost: cannot drop privileges to '%s': %s\n", spec,
            strerror(errno));
    return -1;
  }
  /* A correct drop is irreversible: getting root back must fail. */
  if (uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
    fprintf(stderr, "luahost: privileges to '%s' were not dropped\n", spec);
    return -1;
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== daemon */

static int ready_fd = -1; /* write end: the starter waits on it */
static const char *log_path; /* --log, reopened by host_log_reopen */

int host_daemon_check(const host_options *ho) {
  if (ho->pidfile) {
    pid_t holder = pidfile_holder(ho->pidfile);
    if (holder > 0) {
      fprintf(stderr, "luahost: pid file %s is held by running process "
              "%ld\n", ho->pidfile, (long)holder);
      return -1;
    }
  }
  if (ho->user) {
    char name[256];
    uid_t uid;
    gid_t gid;
    if (lookup_user(ho->user, &uid, &gid, name, sizeof(name)) != 0)
      return -1;
  }
  if (ho->log && !ho->daemon) {
    fprintf(stderr, "luahost: --log needs --daemon\n");
    return -1;
  }
  return 0;
}

/* Point fd at path (opened with flags), as dup2 does. */
static int redirect(int fd, const char *path, int flags) {
  int f = open(path, flags | O_CLOEXEC, 0640);
  if (f < 0) {
    fprintf(stderr, "luahost: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (f != fd) {
    dup2(f, fd);
    close(f);
  }
  return 0;
}

int host_daemonize(const host_options *ho) {
  int fds[2];
  pid_t pid;
  char verdict = 0;
  const char *out = ho->log ? ho->log : "/dev/null";
  int oflags = ho->log ? O_WRONLY | O_CREAT | O_APPEND : O_WRONLY;
  fflush(NULL);
  if (pipe2(fds, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
    fprintf(stderr, "luahost: cannot detach: %s\n", strerror(errno));
    return -1;
  }
  if (pid > 0) { /* the starter: wait for the verdict, then leave */
    ssize_t n;
    close(fds[1]);
    do n = read(fds[0], &verdict, 1); while (n < 0 && errno == EINTR);
    waitpid(pid, NULL, 0); /* the intermediate child exits at once */
    _exit(n == 1 && verdict == 'R' ? EXIT_SUCCESS : EXIT_FAILURE);
  }
  close(fds[0]);
  /* New session, then fork again so the daemon is not a session leader
  ** and can never acquire a controlling terminal. */
  if (setsid() < 0 || (pid = fork()) < 0) _exit(EXIT_FAILURE);
  if (pid > 0) _exit(EXIT_SUCCESS);
  umask(022);
  /* Open the log first so that a failure is still reported to the
  ** starter's terminal. */
  if (redirect(STDOUT_FILENO, out, oflags) != 0 ||
      redirect(STDIN_FILENO, "/dev/null", O_RDONLY) != 0) {
    _exit(EXIT_FAILURE);
  }
  /* stderr stays the starter's until the verdict (host_daemon_ready), so
  ** a script that fails at start (a syntax error, an error in the main
  ** chunk, a bind that fails) is seen where it was started. */
  log_path = ho->log;
  /* No chdir("/"): the script and the pid file may be relative paths. */
  ready_fd = fds[1];
  return 0;
}

int host_log_reopen(void) {
  if (log_path == NULL) return 0;
  fflush(NULL);
  if (redirect(STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_APPEND) != 0)
    return -1; /* the old file stays in use; the reason went to it */
  dup2(STDOUT_FILENO, STDERR_FILENO);
  return 0;
}

void host_daemon_ready(int ok) {
  char c = ok ? 'R' : 'F';
  if (ready_fd < 0) return;
  fflush(stderr);
  dup2(STDOUT_FILENO, STDERR_FILENO); /* from now on, the log */
  if (write(ready_fd, &c, 1) < 0) { /* starter gone: nothing to tell */ }
  close(ready_fd);
  ready_fd = -1;
}

/* }====================================================== */

/* {====================================================== listening fds */

#define SD_LISTEN_FDS_START 3

typedef struct listen_fd {
  int fd;
  char *name;
} listen_fd;

static listen_fd listening[64];
static int nlistening;

static int add_listen(int fd, const char *name) {
  if (nlistening >= (int)(sizeof(listening) / sizeof(listening[0]))) {
    fprintf(stderr, "luahost: too many listening sockets\n");
    return -1;
  }
  /* Kept out of processes the script spawns; the supervisor hands them to
  ** workers explicitly. */
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  listening[nlistening].fd = fd;
  listening[nlistening].name = strdup(name ? name : "unknown");
  nlistening++;
  return 0;
}

/* The i-th name of LISTEN_FDNAMES (colon-separated) into buf. */
static const char *fdname(const char *names, int i, char *buf, size_t sz,
                          int unescape) {
  const char *p = names;
  size_t len;
  while (p && i-- > 0) {
    p = strchr(p, ':');
    if (p) p++;
  }
  if (p == NULL) return "unknown"; /* systemd's default name */
  len = strcspn(p, ":");
  if (len == 0 || len >= sz) return "unknown";
  memcpy(buf, p, len);
  buf[len] = '\0';
  if (unescape) { /* our supervisor's %3A and %25 (supervisor.c) */
    char *r = buf, *w = buf;
    for (; *r; r++) {
      if (r[0] == '%' && r[1] == '3' && r[2] == 'A') {
        *w++ = ':';
        r += 2;
      } else if (r[0] == '%' && r[1] == '2' && r[2] == '5') {
        *w++ = '%';
        r += 2;
      } else {
        *w++ = *r;
      }
    }
    *w = '\0';
  }
  return buf;
}

/* sd_listen_fds(3): LISTEN_PID must be ours (unless the parent is our own
** supervisor, which cannot know our pid before exec). */
static int inherit_fds(int trust_pid) {
  const char *s_fds = getenv("LISTEN_FDS");
  const char *s_pid = getenv("LISTEN_PID");
  const char *names = getenv("LISTEN_FDNAMES");
  long n, i;
  char *end;
  if (s_fds == NULL) return 0;
  if (!trust_pid && (s_pid == NULL || strtol(s_pid, NULL, 10) != getpid()))
    return 0; /* meant for another process */
  n = strtol(s_fds, &end, 10);
  if (*end != '\0' || n < 0 || n > 64) {
    fprintf(stderr, "luahost: bad LISTEN_FDS '%s'\n", s_fds);
    return -1;
  }
  for (i = 0; i < n; i++) {
    char buf[256];
    int fd = SD_LISTEN_FDS_START + (int)i;
    if (fcntl(fd, F_GETFD) < 0) {
      fprintf(stderr, "luahost: LISTEN_FDS: fd %d is not open\n", fd);
      return -1;
    }
    if (add_listen(fd, fdname(names, (int)i, buf, sizeof(buf), trust_pid)) != 0)
      return -1;
  }
  /* Not for the processes the script starts (sd_listen_fds(1)'s unset). */
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDNAMES");
  return 0;
}

/* Parse "HOST:PORT", "[V6]:PORT" or a unix path into ss; 0 or -1. */
static int parse_addr(const char *spec, struct sockaddr_storage *ss,
                      socklen_t *len) {
  char host[256];
  const char *colon;
  const char *h = spec;
  size_t hlen;
  long port;
  char *end;
  memset(ss, 0, sizeof(*ss));
  if (spec[0] == '/' || spec[0] == '.') { /* a unix socket path */
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    if (strlen(spec) >= sizeof(un->sun_path)) return -1;
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, spec);
    *len = sizeof(*un);
    return 0;
  }
  colon = strrchr(spec, ':');
  if (colon == NULL) return -1;
  hlen = (size_t)(colon - spec);
  if (spec[0] == '[') {
    if (hlen < 2 || spec[hlen - 1] != ']') return -1;
    h = spec + 1;
    hlen -= 2;
  }
  if (hlen >= sizeof(host)) return -1;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535)
    return -1;
  if (strcmp(host, "*") == 0) strcpy(host, "0.0.0.0");
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) {
    *len = sizeof(struct sockaddr_in);
    return 0;
  }
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) {
    *len = sizeof(struct sockaddr_in6);
    return 0;
  }
  return -1;
}

/* A unix socket file nobody accepts on (left by a process that died) is
** removed, so that bind can make it again; a live one is left alone and
** bind reports EADDRINUSE. */
static void remove_stale_socket(const struct sockaddr_un *un) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct stat st;
  if (fd < 0) return;
  if (stat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
      connect(fd, (const struct sockaddr *)un, sizeof(*un)) != 0 &&
      errno == ECONNREFUSED)
    unlink(un->sun_path);
  close(fd);
}

/* "ADDR,proxy": a socket whose clients come through a load balancer
** that sends the PROXY protocol header (listen_fds: proxy = true). */
#define PROXY_SUFFIX ",proxy"

static int has_proxy_suffix(const char *name) {
  size_t n = strlen(name), k = sizeof(PROXY_SUFFIX) - 1;
  return n > k && strcmp(name + n - k, PROXY_SUFFIX) == 0;
}

static int bind_listen(const char *spec) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd, on = 1;
  char addr[1024];
  size_t n = strlen(spec);
  if (has_proxy_suffix(spec)) n -= sizeof(PROXY_SUFFIX) - 1;
  if (n >= sizeof(addr)) n = sizeof(addr) - 1; /* parse_addr refuses it */
  memcpy(addr, spec, n);
  addr[n] = '\0';
  if (parse_addr(addr, &ss, &len) != 0) {
    fprintf(stderr, "luahost: --listen: bad address '%s' (HOST:PORT, "
            "[V6]:PORT or a path)\n", spec);
    return -1;
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) goto fail;
  if (ss.ss_family != AF_UNIX)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
  if (ss.ss_family == AF_UNIX)
    remove_stale_socket((struct sockaddr_un *)&ss);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
      listen(fd, SOMAXCONN) != 0)
    goto fail;
  return add_listen(fd, spec);
fail:
  fprintf(stderr, "luahost: --listen %s: %s\n", spec, strerror(errno));
  if (fd >= 0) close(fd);
  return -1;
}

int host_listen_init(const host_options *ho, int trust_pid) {
  int i;
  if (inherit_fds(trust_pid) != 0) return -1;
  for (i = 0; ho && i < ho->nlisten; i++)
    if (bind_listen(ho->listen[i]) != 0) return -1;
  return 0;
}

void host_listen_close_all(void) {
  int i;
  for (i = 0; i < nlistening; i++) {
    close(listening[i].fd);
    free(listening[i].name);
  }
  nlistening = 0;
}

int host_listen_count(void) { return nlistening; }
int host_listen_fd(int i) { return listening[i].fd; }
const char *host_listen_name(int i) { return listening[i].name; }

/* Push the socket's family and address fields into the table on top. */
static void push_sockname(lua_State *L, int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char ip[INET6_ADDRSTRLEN];
  int port = -1;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    uv_ip4_name(in, ip, sizeof(ip));
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(in6, ip, sizeof(ip));
    port = ntohs(in6->sin6_port);
  } else if (ss.ss_family == AF_UNIX) {
    lua_pushstring(L, ((struct sockaddr_un *)&ss)->sun_path);
    lua_setfield(L, -2, "path");
  }
  lua_pushstring(L, lh_family_name(ss.ss_family));
  lua_setfield(L, -2, "family");
  if (port >= 0) {
    lua_pushstring(L, ip);
    lua_setfield(L, -2, "ip");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "port");
  }
}

/*
** luahost.listen_fds() -> {{fd=, name=, family=, ip=, port= | path=}...}:
** the listening sockets this process was given (systemd, --listen, or the
** worker supervisor), in order. A fresh list each call; the fds stay
** owned by the host until a caller adopts one (e.g. net.listen{fd = n}).
*/
int host_lua_listen_fds(lua_State *L) {
  int i;
  lua_createtable(L, nlistening, 0);
  for (i = 0; i < nlistening; i++) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, listening[i].fd);
    lua_setfield(L, -2, "fd");
    lua_pushstring(L, listening[i].name);
    lua_setfield(L, -2, "name");
    if (has_proxy_suffix(listening[i].name)) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "proxy");
    }
    push_sockname(L, listening[i].fd);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}


/* }====================================================== */
