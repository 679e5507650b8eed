/*
** worker.c: a worker's side of a --workers group.
** See Copyright Notice in README.md
**
** The supervisor (supervisor.c) starts each worker as a fresh exec of this
** program with LUAHOST_WORKER="id:count:gen:fd:ppid" in its environment;
** fd is the worker's end of its channel to the supervisor. The worker
** says "ready" on it once its main chunk has run to its first wait.
*/
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "worker.h"

/* What this process knows as a worker (set once, before any Lua state). */
static struct {
  int id, count, gen;
  int notify_fd;      /* write 'R' here when ready; -1 after */
} self = {0, 0, 0, -1};

int host_worker_init(void) {
  const char *s = getenv("LUAHOST_WORKER");
  int id, count, gen, fd;
  long ppid;
  if (s == NULL) return 0;
  if (sscanf(s, "%d:%d:%d:%d:%ld", &id, &count, &gen, &fd, &ppid) != 5 ||
      id < 1 || count < id || fd < 3) {
    fprintf(stderr, "luahost: bad LUAHOST_WORKER '%s'\n", s);
    return -1;
  }
  /* Die with the supervisor, and not start if it is already gone. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != (pid_t)ppid) return -1;
  self.id = id;
  self.count = count;
  self.gen = gen;
  self.notify_fd = fd;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  unsetenv("LUAHOST_WORKER"); /* not for the processes the script starts */
  return 1;
}

int host_is_worker(void) { return self.id > 0; }

void host_worker_started(void) {
  char r = 'R';
  if (self.notify_fd < 0) return;
  /* Changing credentials (--user) cleared the parent-death signal. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (write(self.notify_fd, &r, 1) < 0) { /* supervisor gone */ }
  close(self.notify_fd);
  self.notify_fd = -1;
}

int host_lua_worker(lua_State *L) {
  if (self.id == 0) return 0;
  lua_pushinteger(L, self.id);
  lua_pushinteger(L, self.count);
  lua_pushinteger(L, self.gen);
  return 3;
}
