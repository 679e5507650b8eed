/*
** listeners.h: the supervisor's sockets: every listening (or bound UDP)
** socket a worker asked for, bound once and passed to every worker of
** every generation; closed when no worker of the serving generation
** asked for it and no live worker holds it.
** See Copyright Notice in README.md
*/
#ifndef HOST_LISTENERS_H
#define HOST_LISTENERS_H

#include "share.h"

typedef struct listener listener;

typedef struct listeners {
  listener *list;
} listeners;

/* The socket for rq, asked by a worker of generation gen: an inherited
** one (--listen, systemd) whose address is the one asked, the one bound
** for an earlier request, or a new one. Returns its fd (the caller sends
** a copy; it stays the supervisor's) and sets *held to the entry the
** worker now holds (NULL for an inherited socket); or returns a negative
** libuv error (the bind's: UV_EADDRINUSE, UV_EACCES, ...). */
int listeners_get(listeners *ls, const share_req *rq, int gen,
                  listener **held);
/* A worker that held l is gone. */
void listeners_release(listener *l);
/* Close the sockets no live worker holds and the serving generation did
** not ask for (a reload dropped them, or an abandoned one asked). */
void listeners_sweep(listeners *ls, int serving);
/* Close them all, inherited ones too (a final stop: new clients are
** refused at once instead of queueing where nobody will accept). */
void listeners_close_all(listeners *ls);
/* Free the table (at the supervisor's exit). */
void listeners_free(listeners *ls);

#endif
