/*
** misc.c: libuv's system utilities with luv's names and result shapes:
** the host (hostname, uname, interfaces, memory, load, cpus, uptime), the
** process (pid, ppid, cwd, chdir, exepath, env, rusage, passwd) and a few
** odds and ends (version, gettimeofday, sleep, random, process title,
** setuid/setgid, translate_sys_error, the handle dumps).
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* Paths and names libuv copies into a caller's buffer: big enough for any
** of them; a longer result fails with ENOBUFS rather than being cut. */
#define NAMEBUF 4096

typedef int (*strfn)(char *buf, size_t *size);

static int push_strfn(lua_State *L, strfn fn) {
  char buf[NAMEBUF];
  size_t size = sizeof(buf);
  int rc = fn(buf, &size);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushlstring(L, buf, size);
  return 1;
}

static int misc_cwd(lua_State *L) { return push_strfn(L, uv_cwd); }

static int misc_exepath(lua_State *L) { return push_strfn(L, uv_exepath); }

static int misc_os_homedir(lua_State *L) {
  return push_strfn(L, uv_os_homedir);
}

static int misc_os_tmpdir(lua_State *L) { return push_strfn(L, uv_os_tmpdir); }

static int misc_os_gethostname(lua_State *L) {
  return push_strfn(L, uv_os_gethostname);
}

static int misc_chdir(lua_State *L) {
  return lh_result(L, uv_chdir(lh_check_cstring(L, 1)));
}

/* {====================================================== environment */

/* os_getenv(name[, size]): size is accepted for luv compatibility; the
** buffer grows to whatever the value needs. */
static int misc_os_getenv(lua_State *L) {
  const char *name = lh_check_cstring(L, 1);
  char small[256];
  size_t size = sizeof(small);
  int rc;
  lh_opt_range(L, 2, 0, 0, INT_MAX);
  rc = uv_os_getenv(name, small, &size);
  if (rc == UV_ENOBUFS) { /* size now holds the length needed */
    char *buf = (char *)lua_newuserdatauv(L, size, 0);
    rc = uv_os_getenv(name, buf, &size);
    if (rc == 0) {
      lua_pushlstring(L, buf, size);
      return 1;
    }
  }
  if (rc < 0) return lh_fail(L, rc);
  lua_pushlstring(L, small, size);
  return 1;
}

static int misc_os_setenv(lua_State *L) {
  const char *name = lh_check_cstring(L, 1);
  const char *value = lh_check_cstring(L, 2);
  int rc = uv_os_setenv(name, value);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int misc_os_unsetenv(lua_State *L) {
  int rc = uv_os_unsetenv(lh_check_cstring(L, 1));
  if (rc < 0) return lh_fail(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int misc_os_environ(lua_State *L) {
  uv_env_item_t *items;
  int i, n, rc = uv_os_environ(&items, &n);
  if (rc < 0) return lh_fail(L, rc);
  lua_createtable(L, 0, n);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, items[i].value);
    lua_setfield(L, -2, items[i].name);
  }
  uv_os_free_environ(items, n);
  return 1;
}

/* }====================================================== */

/* {====================================================== process */

static int misc_os_getpid(lua_State *L) {
  lua_pushinteger(L, uv_os_getpid());
  return 1;
}

static int misc_os_getppid(lua_State *L) {
  lua_pushinteger(L, uv_os_getppid());
  return 1;
}

static int misc_os_getpriority(lua_State *L) {
  int pid = (int)lh_check_range(L, 1, INT_MIN, INT_MAX), prio;
  int rc = uv_os_getpriority(pid, &prio);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushinteger(L, prio);
  return 1;
}

/* os_setpriority(pid, priority): -20 (highest) .. 19 (lowest). */
static int misc_os_setpriority(lua_State *L) {
  int pid = (int)lh_check_range(L, 1, INT_MIN, INT_MAX);
  int prio = (int)lh_check_range(L, 2, UV_PRIORITY_HIGHEST,
                                 UV_PRIORITY_LOW);
  int rc = uv_os_setpriority(pid, prio);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int misc_getuid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getuid());
  return 1;
}

static int misc_getgid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getgid());
  return 1;
}

/* getpid(): luv's older name of os_getpid. */
static int misc_getpid(lua_State *L) { return misc_os_getpid(L); }

/* setuid(id), setgid(id): nothing on success (luv's shape); unlike luv,
** which raises, a refusal by the system is the fail triple. */
static int misc_setuid(lua_State *L) {
  uid_t id = (uid_t)lh_check_range(L, 1, 0, 0xFFFFFFFEu);
  if (setuid(id) != 0) return lh_fail(L, uv_translate_sys_error(errno));
  return 0;
}

static int misc_setgid(lua_State *L) {
  gid_t id = (gid_t)lh_check_range(L, 1, 0, 0xFFFFFFFEu);
  if (setgid(id) != 0) return lh_fail(L, uv_translate_sys_error(errno));
  return 0;
}

/* get_process_title() / set_process_title(title): the host hands its
** argv to libuv (uv_setup_args) at start, so the title can be set. */
static int misc_get_process_title(lua_State *L) {
  char buf[NAMEBUF];
  int rc = uv_get_process_title(buf, sizeof(buf));
  if (rc < 0) return lh_fail(L, rc);
  lua_pushstring(L, buf);
  return 1;
}

static int misc_set_process_title(lua_State *L) {
  return lh_result(L, uv_set_process_title(lh_check_cstring(L, 1)));
}

static int misc_disable_stdio_inheritance(lua_State *L) {
  (void)L;
  uv_disable_stdio_inheritance();
  return 0;
}

/* translate_sys_error(errno) -> "ENAME: message", "ENAME" | nothing for
** 0, as luv. */
static int misc_translate_sys_error(lua_State *L) {
  int rc = uv_translate_sys_error((int)lh_check_range(L, 1, INT_MIN + 1,
                                                      INT_MAX));
  if (rc >= 0) return 0;
  lh_fail(L, rc);
  lua_remove(L, -3); /* the nil */
  return 2;
}

/* print_all_handles(), print_active_handles(): libuv's debugging dump of
** the loop's handles, on stderr. */
static int misc_print_all_handles(lua_State *L) {
  uv_print_all_handles(lh_getctx(L)->loop, stderr);
  return 0;
}

static int misc_print_active_handles(lua_State *L) {
  uv_print_active_handles(lh_getctx(L)->loop, stderr);
  return 0;
}

static void set_timeval(lua_State *L, const char *field, uv_timeval_t tv) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, tv.tv_sec);
  lua_setfield(L, -2, "sec");
  lua_pushinteger(L, tv.tv_usec);
  lua_setfield(L, -2, "usec");
  lua_setfield(L, -2, field);
}

static int misc_getrusage(lua_State *L) {
  uv_rusage_t ru;
  int rc = uv_getrusage(&ru);
  if (rc < 0) return lh_fail(L, rc);
  lua_createtable(L, 0, 16);
  set_timeval(L, "utime", ru.ru_utime);
  set_timeval(L, "stime", ru.ru_stime);
#define F(name) \
  lua_pushinteger(L, (lua_Integer)ru.ru_##name); \
  lua_setfield(L, -2, #name);
  F(maxrss) F(ixrss) F(idrss) F(isrss) F(minflt) F(majflt) F(nswap)
  F(inblock) F(oublock) F(msgsnd) F(msgrcv) F(nsignals) F(nvcsw) F(nivcsw)
#undef F
  return 1;
}

static int misc_resident_set_memory(lua_State *L) {
  size_t rss;
  int rc = uv_resident_set_memory(&rss);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushinteger(L, (lua_Integer)rss);
  return 1;
}

static int misc_os_get_passwd(lua_State *L) {
  uv_passwd_t pw;
  int rc = uv_os_get_passwd(&pw);
  if (rc < 0) return lh_fail(L, rc);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, pw.username);
  lua_setfield(L, -2, "username");
  lua_pushinteger(L, (lua_Integer)pw.uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)pw.gid);
  lua_setfield(L, -2, "gid");
  if (pw.shell) {
    lua_pushstring(L, pw.shell);
    lua_setfield(L, -2, "shell");
  }
  if (pw.homedir) {
    lua_pushstring(L, pw.homedir);
    lua_setfield(L, -2, "homedir");
  }
  uv_os_free_passwd(&pw);
  return 1;
}

/* }====================================================== */

/* {====================================================== host */

static int misc_os_uname(lua_State *L) {
  uv_utsname_t u;
  int rc = uv_os_uname(&u);
  if (rc < 0) return lh_fail(L, rc);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, u.sysname);
  lua_setfield(L, -2, "sysname");
  lua_pushstring(L, u.release);
  lua_setfield(L, -2, "release");
  lua_pushstring(L, u.version);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, u.machine);
  lua_setfield(L, -2, "machine");
  return 1;
}

static int misc_uptime(lua_State *L) {
  double t;
  int rc = uv_uptime(&t);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushnumber(L, t);
  return 1;
}

static int misc_loadavg(lua_State *L) {
  double avg[3];
  uv_loadavg(avg);
  lua_pushnumber(L, avg[0]);
  lua_pushnumber(L, avg[1]);
  lua_pushnumber(L, avg[2]);
  return 3;
}

static int misc_get_total_memory(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_get_total_memory());
  return 1;
}

static int misc_get_free_memory(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_get_free_memory());
  return 1;
}

static int misc_get_constrained_memory(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_get_constrained_memory());
  return 1;
}

static int misc_available_parallelism(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_available_parallelism());
  return 1;
}

/* Array of {model, speed, times = {user, nice, sys, idle, irq}}. */
static int misc_cpu_info(lua_State *L) {
  uv_cpu_info_t *cpus;
  int i, n, rc = uv_cpu_info(&cpus, &n);
  if (rc < 0) return lh_fail(L, rc);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, cpus[i].model);
    lua_setfield(L, -2, "model");
    lua_pushinteger(L, cpus[i].speed);
    lua_setfield(L, -2, "speed");
    lua_createtable(L, 0, 5);
#define T(name) \
    lua_pushinteger(L, (lua_Integer)cpus[i].cpu_times.name); \
    lua_setfield(L, -2, #name);
    T(user) T(nice) T(sys) T(idle) T(irq)
#undef T
    lua_setfield(L, -2, "times");
    lua_rawseti(L, -2, i + 1);
  }
  uv_free_cpu_info(cpus, n);
  return 1;
}

/* name -> array of {ip, family, netmask, internal, mac}; mac is the raw
** six bytes, as in luv. */
static int misc_interface_addresses(lua_State *L) {
  uv_interface_address_t *ifs;
  char ip[INET6_ADDRSTRLEN], mask[INET6_ADDRSTRLEN];
  int i, n, rc = uv_interface_addresses(&ifs, &n);
  if (rc < 0) return lh_fail(L, rc);
  lua_newtable(L);
  for (i = 0; i < n; i++) {
    const uv_interface_address_t *a = &ifs[i];
    int family = a->address.address4.sin_family;
    if (family == AF_INET) {
      uv_ip4_name(&a->address.address4, ip, sizeof(ip));
      uv_ip4_name(&a->netmask.netmask4, mask, sizeof(mask));
    } else if (family == AF_INET6) {
      uv_ip6_name(&a->address.address6, ip, sizeof(ip));
      uv_ip6_name(&a->netmask.netmask6, mask, sizeof(mask));
    } else {
      continue;
    }
    if (lua_getfield(L, -1, a->name) == LUA_TNIL) { /* first of this name */
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, a->name);
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, ip);
    lua_setfield(L, -2, "ip");
    lua_pushstring(L, lh_family_name(family));
    lua_setfield(L, -2, "family");
    lua_pushstring(L, mask);
    lua_setfield(L, -2, "netmask");
    lua_pushboolean(L, a->is_internal);
    lua_setfield(L, -2, "internal");
    lua_pushlstring(L, a->phys_addr, sizeof(a->phys_addr));
    lua_setfield(L, -2, "mac");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1); /* this name's array */
  }
  uv_free_interface_addresses(ifs, n);
  return 1;
}

static int if_name(lua_State *L,
                   int (*fn)(unsigned int, char *, size_t *)) {
  unsigned int index = (unsigned int)lh_check_range(L, 1, 0, UINT_MAX);
  char buf[UV_IF_NAMESIZE];
  size_t size = sizeof(buf);
  int rc = fn(index, buf, &size);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushlstring(L, buf, size);
  return 1;
}

static int misc_if_indextoname(lua_State *L) {
  return if_name(L, uv_if_indextoname);
}

static int misc_if_indextoiid(lua_State *L) {
  return if_name(L, uv_if_indextoiid);
}

/* }====================================================== */

/* {====================================================== odds and ends */

static int misc_version(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_version());
  return 1;
}

static int misc_version_string(lua_State *L) {
  lua_pushstring(L, uv_version_string());
  return 1;
}

static int misc_gettimeofday(lua_State *L) {
  uv_timeval64_t tv;
  int rc = uv_gettimeofday(&tv);
  if (rc < 0) return lh_fail(L, rc);
  lua_pushinteger(L, (lua_Integer)tv.tv_sec);
  lua_pushinteger(L, (lua_Integer)tv.tv_usec);
  return 2;
}

/* sleep(ms) blocks the whole process, loop included: for tests and
** scripts that truly want that. */
static int misc_sleep(lua_State *L) {
  uv_sleep((unsigned int)lh_check_range(L, 1, 0, UINT_MAX));
  return 0;
}

#define RANDOM_MAX ((lua_Integer)1 << 24) /* bytes per call */

static void random_cb(uv_random_t *req, int status, void *buf, size_t len) {
  lh_req *r = lh_req_of(req);
  lua_State *L = r->ctx->L;
  if (lh_req_push_cb(r)) {
    lh_push_status(L, status);
    if (status < 0)
      lua_pushnil(L);
    else
      lua_pushlstring(L, (const char *)buf, len);
    lh_call(r->ctx, 2);
  }
  free(buf);
  lh_req_free(r);
}

/* random(len[, flags[, cb]]): len random bytes; with cb, from the thread
** pool and cb(err, bytes) later. flags is nil, an integer or a table
** (luv's reserved options). As in luv, a negative len fails with E2BIG
** and flags other than 0 with EINVAL (libuv has none yet); a len over
** RANDOM_MAX fails with E2BIG too (luv would try to allocate it). */
static int misc_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  size_t len;
  int rc, t = lua_type(L, 2);
  if (t == LUA_TNUMBER) {
    if (luaL_checkinteger(L, 2) != 0) return lh_fail(L, UV_EINVAL);
  } else if (t != LUA_TNONE && t != LUA_TNIL && t != LUA_TTABLE) {
    luaL_typeerror(L, 2, "nil, integer or table");
  }
  if (n < 0 || n > RANDOM_MAX) return lh_fail(L, UV_E2BIG);
  len = (size_t)n;
  if (lh_opt_callable(L, 3)) {
    lh_req *r;
    void *buf = malloc(len ? len : 1);
    if (buf == NULL) return luaL_error(L, "not enough memory");
    r = lh_req_new(L, sizeof(uv_random_t), 3);
    rc = uv_random(r->ctx->loop, lh_req_uv(r, uv_random_t), buf, len, 0,
                   random_cb);
    if (rc < 0) {
      free(buf);
      lh_req_free(r);
      return lh_fail(L, rc);
    }
    lua_pushinteger(L, 0);
    return 1;
  } else {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len);
    rc = uv_random(NULL, NULL, p, len, 0, NULL);
    if (rc < 0) return lh_fail(L, rc);
    luaL_pushresultsize(&b, len);
    return 1;
  }
}

/* }====================================================== */

static const luaL_Reg misc_functions[] = {
  {"available_parallelism", misc_available_parallelism},
  {"chdir", misc_chdir},
  {"cpu_info", misc_cpu_info},
  {"cwd", misc_cwd},
  {"exepath", misc_exepath},
  {"get_constrained_memory", misc_get_constrained_memory},
  {"get_free_memory", misc_get_free_memory},
  {"get_total_memory", misc_get_total_memory},
  {"disable_stdio_inheritance", misc_disable_stdio_inheritance},
  {"get_process_title", misc_get_process_title},
  {"getgid", misc_getgid},
  {"getpid", misc_getpid},
  {"getrusage", misc_getrusage},
  {"gettimeofday", misc_gettimeofday},
  {"getuid", misc_getuid},
  {"if_indextoiid", misc_if_indextoiid},
  {"if_indextoname", misc_if_indextoname},
  {"interface_addresses", misc_interface_addresses},
  {"loadavg", misc_loadavg},
  {"os_environ", misc_os_environ},
  {"os_get_passwd", misc_os_get_passwd},
  {"os_getenv", misc_os_getenv},
  {"os_gethostname", misc_os_gethostname},
  {"os_getpid", misc_os_getpid},
  {"os_getppid", misc_os_getppid},
  {"os_getpriority", misc_os_getpriority},
  {"os_homedir", misc_os_homedir},
  {"os_setenv", misc_os_setenv},
  {"os_setpriority", misc_os_setpriority},
  {"os_tmpdir", misc_os_tmpdir},
  {"os_uname", misc_os_uname},
  {"print_active_handles", misc_print_active_handles},
  {"print_all_handles", misc_print_all_handles},
  {"os_unsetenv", misc_os_unsetenv},
  {"random", misc_random},
  {"resident_set_memory", misc_resident_set_memory},
  {"set_process_title", misc_set_process_title},
  {"setgid", misc_setgid},
  {"setuid", misc_setuid},
  {"sleep", misc_sleep},
  {"translate_sys_error", misc_translate_sys_error},
  {"uptime", misc_uptime},
  {"version", misc_version},
  {"version_string", misc_version_string},
  {NULL, NULL}
};

void lh_misc_open(lua_State *L) {
  luaL_setfuncs(L, misc_functions, 0);
}
