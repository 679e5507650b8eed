/*
** alloc.c: the host's Lua states: their allocator and collector mode.
** Lua's own allocator (lauxlib's l_alloc) is realloc/free; in front of
** it this keeps, per state, a free list for each size class of small
** blocks (up to POOL_MAX bytes), so the strings and tables a server
** makes and drops per message come from and go back to a list instead
** of malloc's bins. Why, and what it saves against glibc, mimalloc and
** jemalloc: bench/README.md ("Lua's allocator and collector").
** See Copyright Notice in README.md
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "alloc.h"

/*
** Classes of 16 bytes, each as large as glibc's chunk for it gives (a
** chunk of 16k + 16 bytes holds 16k + 8), so a pooled block uses no
** more memory than malloc would for the same request. Every pooled
** block is a plain malloc block: one that leaves the pool (the cap, a
** realloc to a larger class, the state's close) goes back to free.
*/
#define POOL_MAX 2056 /* largest pooled request: class 128 */
#define POOL_CLASSES 129
/* The lists keep at most half as many bytes as the state has in use (a
** minor collection of the generational mode frees about a fifth), and at
** least POOL_MIN: beyond, a block goes back to free, where the host's C
** blocks (a conn's, a shelved conn's) can use it: blocks kept here are
** Lua's alone (bench/README.md, "Bytes per idle connection"). */
#define POOL_MIN (64 * 1024)

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

#define CLASS_OF(n) ((n) <= 24 ? 1 : ((n) + 7) >> 4)
#define CLASS_SIZE(k) (((size_t)(k) << 4) + 8)

typedef struct pool {
  void *head[POOL_CLASSES]; /* each free block's first word: the next */
  size_t cached;            /* bytes on the lists */
  size_t inuse;             /* bytes the state holds (as Lua counts) */
} pool;

static void *pool_get(pool *p, size_t n) {
  int k = CLASS_OF(n);
  void *b = p->head[k];
  if (b != NULL) {
    p->head[k] = *(void **)b;
    p->cached -= CLASS_SIZE(k);
    return b;
  }
  return malloc(CLASS_SIZE(k));
}

static void pool_put(pool *p, void *b, size_t n) {
  int k = CLASS_OF(n);
  if (p->cached > p->inuse / 2 && p->cached > POOL_MIN) {
    free(b);
    return;
  }
  *(void **)b = p->head[k];
  p->head[k] = b;
  p->cached += CLASS_SIZE(k);
}

/* A block from or to the pool's sizes: a new one, the bytes copied. */
static void *pool_move(pool *p, void *ptr, size_t osize, size_t nsize) {
  void *nb = nsize <= POOL_MAX ? pool_get(p, nsize) : malloc(nsize);
  if (nb == NULL) return NULL;
  memcpy(nb, ptr, osize < nsize ? osize : nsize);
  if (osize <= POOL_MAX) pool_put(p, ptr, osize);
  else free(ptr);
  return nb;
}

/* What pool_alloc's fast paths leave: a new block when its list is
** empty or it is too large; a free that goes to free(); a resize. */
static NOINLINE void *pool_slow(pool *p, void *ptr, size_t osize,
                                size_t nsize) {
  void *nb;
  if (ptr == NULL) {
    nb = nsize == 0 ? NULL : nsize <= POOL_MAX ? pool_get(p, nsize)
                                               : malloc(nsize);
    if (nb != NULL) p->inuse += nsize;
    return nb;
  }
  if (nsize == 0) {
    p->inuse -= osize;
    if (osize <= POOL_MAX) pool_put(p, ptr, osize);
    else free(ptr);
    return NULL;
  }
  if (osize <= POOL_MAX && nsize <= POOL_MAX &&
      CLASS_OF(osize) == CLASS_OF(nsize))
    nb = ptr; /* the block already holds nsize */
  else if (osize > POOL_MAX && nsize > POOL_MAX)
    nb = realloc(ptr, nsize);
  else
    nb = pool_move(p, ptr, osize, nsize);
  if (nb != NULL) p->inuse += nsize - osize; /* modulo 2^N: fine */
  return nb; /* NULL: Lua keeps ptr */
}

/* lua_Alloc: for a new block osize is a type tag, not a size. Inline
** here only the two cases of a message's string: a new small block
** taken from its list, and a small block put back on it. */
static void *pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  pool *p = (pool *)ud;
  if (ptr == NULL) {
    if (nsize - 1 < POOL_MAX) { /* 1..POOL_MAX */
      int k = CLASS_OF(nsize);
      void *b = p->head[k];
      if (b != NULL) {
        p->head[k] = *(void **)b;
        p->cached -= CLASS_SIZE(k);
        p->inuse += nsize;
        return b;
      }
    }
  } else if (nsize == 0 && osize <= POOL_MAX &&
             (p->cached <= p->inuse / 2 || p->cached <= POOL_MIN)) {
    int k = CLASS_OF(osize);
    *(void **)ptr = p->head[k];
    p->head[k] = ptr;
    p->cached += CLASS_SIZE(k);
    p->inuse -= osize;
    return NULL;
  }
  return pool_slow(p, ptr, osize, nsize);
}

/* The plain allocator (lauxlib's): ASan builds and LUAHOST_MALLOC=libc. */
static void *plain_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

/* As luaL_newstate: a panic that says why before Lua aborts, and
** warnings off until a script says "@on". */
static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (msg == NULL) msg = "error object is not a string";
  fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", msg);
  fflush(stderr);
  return 0; /* Lua aborts */
}

static void warn_off(void *ud, const char *msg, int tocont);
static void warn_on(void *ud, const char *msg, int tocont);
static void warn_cont(void *ud, const char *msg, int tocont);

/* "@on" / "@off" as a whole message switch warnings; 1 if it was one. */
static int warn_control(lua_State *L, const char *msg, int tocont) {
  if (tocont || msg[0] != '@') return 0;
  if (strcmp(msg + 1, "off") == 0) lua_setwarnf(L, warn_off, L);
  else if (strcmp(msg + 1, "on") == 0) lua_setwarnf(L, warn_on, L);
  return 1; /* other controls are ignored */
}

static void warn_off(void *ud, const char *msg, int tocont) {
  warn_control((lua_State *)ud, msg, tocont);
}

static void warn_cont(void *ud, const char *msg, int tocont) {
  lua_State *L = (lua_State *)ud;
  fputs(msg, stderr);
  fflush(stderr);
  if (tocont) {
    lua_setwarnf(L, warn_cont, L);
  } else {
    fputs("\n", stderr);
    fflush(stderr);
    lua_setwarnf(L, warn_on, L);
  }
}

static void warn_on(void *ud, const char *msg, int tocont) {
  if (warn_control((lua_State *)ud, msg, tocont)) return;
  fputs("Lua warning: ", stderr);
  fflush(stderr);
  warn_cont(ud, msg, tocont);
}

/* Read once, by the first state (the main one, before any thread runs):
** a thread pool's state made later never calls getenv while a script's
** uv.os_setenv may be changing the environment. */
static int pooled(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 0; /* every block through malloc, so ASan sees each use */
#else
  static int pool_on = -1;
  if (pool_on < 0) {
    const char *v = getenv("LUAHOST_MALLOC");
    pool_on = v == NULL || strcmp(v, "libc") != 0;
  }
  return pool_on;
#endif
}

lua_State *lh_state_new(void) {
  pool *p = NULL;
  lua_State *L;
  if (pooled()) {
    p = (pool *)calloc(1, sizeof(pool));
    if (p == NULL) return NULL;
    L = lua_newstate(pool_alloc, p);
  } else {
    L = lua_newstate(plain_alloc, NULL);
  }
  if (L == NULL) {
    free(p);
    return NULL;
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, warn_off, L);
  /* Generational: a server's garbage is young (a string per read, a
  ** table per request) and its live heap old (modules, conns), so
  ** minor collections skip most of the marking an incremental cycle
  ** does. Lua 5.4.4's one known generational bug (fixed in 5.4.5): after
  ** an explicit full collection (collectgarbage()), the next one comes
  ** only once the heap is back at its size before it, not 20 % above
  ** what survived: a late collection, never a wrong one. */
  lua_gc(L, LUA_GCGEN, 0, 0);
  return L;
}

void lh_state_trim(lua_State *L, unsigned den) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  pool *p = (pool *)ud;
  size_t keep;
  int k;
  if (f != pool_alloc || den == 0) return;
  keep = p->inuse / den;
  for (k = POOL_CLASSES - 1; k > 0 && p->cached > keep; k--) {
    while (p->head[k] != NULL && p->cached > keep) {
      void *b = p->head[k];
      p->head[k] = *(void **)b;
      p->cached -= CLASS_SIZE(k);
      free(b);
    }
  }
}

void lh_state_close(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  int k;
  lua_close(L);
  if (f != pool_alloc) return;
  for (k = 0; k < POOL_CLASSES; k++) {
    pool *p = (pool *)ud;
    while (p->head[k] != NULL) {
      void *b = p->head[k];
      p->head[k] = *(void **)b;
      free(b);
    }
  }
  free(ud);
}
