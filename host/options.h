/*
** options.h: the host's own long options (--name [value]), parsed before
** the script; lua(1)'s short options are handled in main.c.
** See Copyright Notice in README.md
*/
#ifndef HOST_OPTIONS_H
#define HOST_OPTIONS_H

typedef struct host_options {
  int unused; /* process-group and daemon options come here */
} host_options;

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
