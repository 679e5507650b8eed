/*
** options.c: the host's long options. Each entry names the option, says
** whether it takes a value, and how to store it.
** See Copyright Notice in README.md
*/
#include <stdio.h>
#include <string.h>

#include "options.h"

typedef struct option_def {
  const char *name;
  int takes_value;
  const char *help;
} option_def;

static const option_def options[] = {
  {NULL, 0, NULL}
};

void host_options_init(host_options *ho) {
  memset(ho, 0, sizeof(*ho));
}

static const option_def *find(const char *arg) {
  int i;
  for (i = 0; options[i].name; i++)
    if (strcmp(arg, options[i].name) == 0) return &options[i];
  return NULL;
}

int host_parse_option(host_options *ho, int argc, char **argv) {
  const option_def *d = find(argv[0]);
  (void)ho;
  if (d == NULL) return 0;
  if (d->takes_value && argc < 2) {
    fprintf(stderr, "luahost: '%s' needs a value\n", argv[0]);
    return -1;
  }
  return 1 + d->takes_value;
}

int host_option_arity(const char *arg) {
  const option_def *d = find(arg);
  return d ? d->takes_value : 0;
}

const char *host_options_usage(void) {
  return "";
}
