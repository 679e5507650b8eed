/*
** options.h: the host's own long options (--name [value]), parsed before
** the script; lua(1)'s short options are handled in main.c.
** See Copyright Notice in README.md
*/
#ifndef HOST_OPTIONS_H
#define HOST_OPTIONS_H

#define HOST_MAX_LISTEN 16   /* --listen given at most this many times */

typedef struct host_options {
  int workers;         /* --workers N: 0 = no supervisor, -1 = auto */
  double drain;        /* --drain SECONDS: grace for open connections */
  double drain_delay;  /* --drain-delay SECONDS: listen on (health 503)
                          this long before the drain closes listeners */
  int drain_delay_given; /* (a lone process then drains on SIGTERM) */
  int daemon;          /* --daemon: detach from the terminal */
  const char *log;     /* --log FILE: daemon's stdout/stderr (append) */
  const char *pidfile; /* --pidfile FILE */
  const char *user;    /* --user USER[:GROUP]: drop privileges to */
  int nlisten;         /* --listen ADDR: bound before the script runs */
  const char *listen[HOST_MAX_LISTEN];
} host_options;

#define HOST_DEFAULT_DRAIN 10.0

void host_options_init(host_options *ho);
/* Parse the option at argv[0] (argc left). Returns how many argv entries
** it used, 0 for an unknown option, -1 for a bad or missing value (after
** printing why). */
int host_parse_option(host_options *ho, int argc, char **argv);
/* How many values follow the option named by arg (0 or 1). */
int host_option_arity(const char *arg);
/* Usage lines for the host options. */
const char *host_options_usage(void);

#endif
