/*
** options.c: the host's long options. Each entry names the option, says
** whether it takes a value, and how to store it; the table also gives the
** usage text, so the two cannot disagree.
** See Copyright Notice in README.md
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "options.h"

typedef int (*option_set)(host_options *ho, const char *value);

typedef struct option_def {
  const char *name;
  const char *value;  /* the value's name in the usage text, NULL: none */
  option_set set;
  const char *help;
} option_def;

static int bad_value(const char *name, const char *value, const char *why) {
  fprintf(stderr, "luahost: bad value '%s' for %s (%s)\n", value, name, why);
  return -1;
}

static int set_workers(host_options *ho, const char *v) {
  char *end;
  long n;
  if (strcmp(v, "auto") == 0) {
    ho->workers = -1;
    return 0;
  }
  errno = 0;
  n = strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < 1 || n > 1024)
    return bad_value("--workers", v, "a count in [1, 1024] or 'auto'");
  ho->workers = (int)n;
  return 0;
}

static int set_drain(host_options *ho, const char *v) {
  char *end;
  double d;
  errno = 0;
  d = strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !(d >= 0) || d > 86400)
    return bad_value("--drain", v, "seconds in [0, 86400]");
  ho->drain = d;
  return 0;
}

static int set_drain_delay(host_options *ho, const char *v) {
  char *end;
  double d;
  errno = 0;
  d = strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !(d >= 0) || d > 3600)
    return bad_value("--drain-delay", v, "seconds in [0, 3600]");
  ho->drain_delay = d;
  ho->drain_delay_given = 1;
  return 0;
}

static int set_daemon(host_options *ho, const char *v) {
  (void)v;
  ho->daemon = 1;
  return 0;
}

static int set_log(host_options *ho, const char *v) {
  if (*v == '\0') return bad_value("--log", v, "a file name");
  ho->log = v;
  return 0;
}

static int set_pidfile(host_options *ho, const char *v) {
  if (*v == '\0') return bad_value("--pidfile", v, "a file name");
  ho->pidfile = v;
  return 0;
}

static int set_user(host_options *ho, const char *v) {
  if (*v == '\0' || *v == ':') return bad_value("--user", v, "USER[:GROUP]");
  ho->user = v;
  return 0;
}

static int set_listen(host_options *ho, const char *v) {
  if (*v == '\0') return bad_value("--listen", v, "HOST:PORT or a path");
  if (ho->nlisten >= HOST_MAX_LISTEN)
    return bad_value("--listen", v, "too many listening sockets");
  ho->listen[ho->nlisten++] = v;
  return 0;
}

static int set_log_format(host_options *ho, const char *v) {
  (void)ho;
  if (host_log_set_format(v) != 0)
    return bad_value("--log-format", v, "text or json");
  return 0;
}

static int set_log_level(host_options *ho, const char *v) {
  (void)ho;
  if (host_log_set_level(v) != 0)
    return bad_value("--log-level", v, "debug, info, warn or error");
  return 0;
}

/* Alphabetical; the usage text is built from this table. */
static const option_def options[] = {
  {"--daemon", NULL, set_daemon,
   "detach; stdio to /dev/null (or --log)"},
  {"--drain", "SECS", set_drain,
   "on SIGTERM, let open connections finish for SECS (10)"},
  {"--drain-delay", "SECS", set_drain_delay,
   "on SIGTERM, keep listening SECS more (health checks\n"
   "                      fail: the balancer moves away), then drain (0);\n"
   "                      turns the drain on for a lone process"},
  {"--listen", "ADDR", set_listen,
   "bind HOST:PORT, [V6]:PORT or a path before the script\n"
   "                      runs; see luahost.listen_fds(); ADDR,proxy:\n"
   "                      clients send the PROXY protocol header"},
  {"--log", "FILE", set_log, "with --daemon: append stdout/stderr to FILE"},
  {"--log-format", "FMT", set_log_format,
   "log lines as text (default) or json (one object a line)"},
  {"--log-level", "LEVEL", set_log_level,
   "debug, info (default), warn or error: the least logged"},
  {"--pidfile", "FILE", set_pidfile,
   "write the pid to FILE; refuse to start while it is held"},
  {"--user", "U[:G]", set_user,
   "drop privileges to user U (group G) once the main chunk\n"
   "                      has run to its first wait (sockets are bound)"},
  {"--workers", "N", set_workers,
   "run N workers under a supervisor (auto: one per core)"},
  {NULL, NULL, NULL, NULL}
};

void host_options_init(host_options *ho) {
  memset(ho, 0, sizeof(*ho));
  ho->drain = HOST_DEFAULT_DRAIN;
}

static const option_def *find(const char *arg) {
  int i;
  for (i = 0; options[i].name; i++)
    if (strcmp(arg, options[i].name) == 0) return &options[i];
  return NULL;
}

int host_parse_option(host_options *ho, int argc, char **argv) {
  const option_def *d = find(argv[0]);
  int takes = 0;
  if (d == NULL) return 0;
  takes = d->value != NULL;
  if (takes && argc < 2) {
    fprintf(stderr, "luahost: '%s' needs a value\n", argv[0]);
    return -1;
  }
  if (d->set(ho, takes ? argv[1] : NULL) != 0) return -1;
  return 1 + takes;
}

int host_option_arity(const char *arg) {
  const option_def *d = find(arg);
  return d && d->value ? 1 : 0;
}

const char *host_options_usage(void) {
  static char text[2048];
  size_t len = 0;
  int i;
  if (text[0] != '\0') return text;
  for (i = 0; options[i].name && len + 200 < sizeof(text); i++) {
    char head[32];
    snprintf(head, sizeof(head), "%s%s%s", options[i].name,
             options[i].value ? " " : "",
             options[i].value ? options[i].value : "");
    len += (size_t)snprintf(text + len, sizeof(text) - len, "  %-18s  %s\n",
                            head, options[i].help);
  }
  return text;
}
