/*
** blocks.c: the blocks of net's handles (the lh_handle header, the uv
** handle and net's conn in one), kept apart from malloc's heap in chunks
** of their own, each given back to the kernel when its last block goes.
** See Copyright Notice in README.md
**
** Why: a burst of connections makes a block each; when they go quiet
** (net's shelf, lib/net_shelf.c) or close, malloc keeps the freed blocks
** as holes between the Lua heap's objects, in the process's memory for
** good: the server's RSS stays at its peak. Here the blocks of one size
** share 64 KiB chunks that hold nothing else, so a chunk whose blocks
** are all freed is unmapped (bench/README.md, "Bytes per idle
** connection"). A block costs no malloc header either.
**
** A chunk starts with its header (the class, its links, the indices of
** its free blocks); blocks follow. A chunk is aligned on its size, so a
** block finds its chunk by masking; lh_block_free tells a block of a
** chunk from a malloc'd one by the sorted list of chunk addresses. Each
** lh_ctx (one per Lua state and loop) has its own store: no lock.
** Under AddressSanitizer a free block is poisoned (a use after free is
** reported as malloc's would be) and blocks still in use at exit are
** reported as the leaks they are.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"

#if defined(__linux__) || defined(__APPLE__) || defined(__unix__)
#include <sys/mman.h>
#define HAVE_CHUNKS 1
#else
#define HAVE_CHUNKS 0
#endif

/* Under ASan: a free block is wiped (no stale pointer in it keeps a
** leak alive) and poisoned; a chunk is one of LeakSanitizer's roots,
** which it scans as it scans malloc's blocks (what a live conn points
** at, its conn_x or TLS state, is not a leak). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define POISON(p, n) (memset((p), 0, (n)), ASAN_POISON_MEMORY_REGION((p), (n)))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define ROOT(p, n) __lsan_register_root_region((p), (n))
#define UNROOT(p, n) __lsan_unregister_root_region((p), (n))
#define ASAN_POISON_FRESH(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNDER_ASAN 1
#else
#define ASAN_POISON_FRESH(p, n) ((void)(p), (void)(n))
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define ROOT(p, n) ((void)(p), (void)(n))
#define UNROOT(p, n) ((void)(p), (void)(n))
#define UNDER_ASAN 0
#endif

#define CHUNK_SIZE ((size_t)64 * 1024)
#define MAX_CLASSES 8    /* block sizes; others come from malloc */
#define MAX_BLOCK 4096   /* larger blocks come from malloc */

typedef struct bclass bclass;

typedef struct chunk {
  bclass *cls;
  struct chunk *next, *prev; /* the class's chunks with a free block */
  unsigned nfresh;           /* blocks never handed out: [nfresh, cap) */
  unsigned nfree;            /* entries of free[] */
  unsigned char *blocks;     /* the first block */
  uint16_t free[1];          /* indices of freed blocks (cap of them) */
} chunk;

/* blocks handed out: those ever handed out less those freed since */
#define USED(c) ((c)->nfresh - (c)->nfree)

struct bclass {
  size_t size;               /* of a block, a multiple of 8 */
  unsigned cap;              /* blocks in a chunk */
  chunk *avail;              /* chunks with a free block */
  chunk *spare;              /* an empty chunk kept (none: NULL) */
};

struct lh_blocks {
  bclass cls[MAX_CLASSES];
  int ncls;
  chunk **chunks;            /* every chunk, by address */
  size_t nchunks, cchunks;
};

#if HAVE_CHUNKS

static size_t header_size(unsigned cap) {
  return (offsetof(chunk, free) + cap * sizeof(uint16_t) + 15) &
         ~(size_t)15;
}

/* the chunk's place in the sorted list (or where it would go) */
static size_t find(const lh_blocks *b, const void *base) {
  size_t lo = 0, hi = b->nchunks;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if ((const void *)b->chunks[mid] < base) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static chunk *chunk_of(const lh_blocks *b, const void *p) {
  const void *base = (const void *)((uintptr_t)p & ~(CHUNK_SIZE - 1));
  size_t i;
  if (b == NULL || b->nchunks == 0) return NULL;
  i = find(b, base);
  return i < b->nchunks && (const void *)b->chunks[i] == base
             ? b->chunks[i] : NULL;
}

static void avail_unlink(chunk *c) {
  if (c->prev) c->prev->next = c->next; else c->cls->avail = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

/* The list is kept by address and blocks are taken from its first
** chunk: new conns fill the low chunks, the high ones drain as their
** conns close, and empty, go (first fit by address, as jemalloc's runs;
** taking the chunk freed from last would keep every chunk partly used
** under churn). A few hundred chunks at 10,000 conns: the walk is short
** beside an accept. */
static void avail_push(chunk *c) {
  chunk *p = NULL, *q = c->cls->avail;
  while (q != NULL && q < c) {
    p = q;
    q = q->next;
  }
  c->prev = p;
  c->next = q;
  if (p) p->next = c; else c->cls->avail = c;
  if (q) q->prev = c;
}

/* A chunk aligned on CHUNK_SIZE: twice that mapped, the ends unmapped. */
static chunk *chunk_new(lh_blocks *b, bclass *k) {
  unsigned char *m, *base;
  size_t i, lead;
  chunk *c;
  if (b->nchunks == b->cchunks) {
    size_t n = b->cchunks ? 2 * b->cchunks : 16;
    chunk **a = (chunk **)realloc(b->chunks, n * sizeof(chunk *));
    if (a == NULL) return NULL;
    b->chunks = a;
    b->cchunks = n;
  }
  m = (unsigned char *)mmap(NULL, 2 * CHUNK_SIZE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == (unsigned char *)MAP_FAILED) return NULL;
  base = (unsigned char *)(((uintptr_t)m + CHUNK_SIZE - 1) &
                           ~(uintptr_t)(CHUNK_SIZE - 1));
  lead = (size_t)(base - m);
  if (lead) munmap(m, lead);
  munmap(base + CHUNK_SIZE, CHUNK_SIZE - lead);
  c = (chunk *)base;
  c->cls = k;
  c->next = c->prev = NULL;
  c->nfresh = c->nfree = 0;
  c->blocks = base + header_size(k->cap);
  ASAN_POISON_FRESH(c->blocks, k->cap * k->size);
  ROOT(base, CHUNK_SIZE);
  i = find(b, base);
  memmove(b->chunks + i + 1, b->chunks + i,
          (b->nchunks - i) * sizeof(chunk *));
  b->chunks[i] = c;
  b->nchunks++;
  return c;
}

static void chunk_drop(lh_blocks *b, chunk *c) {
  size_t i = find(b, c);
  memmove(b->chunks + i, b->chunks + i + 1,
          (b->nchunks - i - 1) * sizeof(chunk *));
  b->nchunks--;
  UNPOISON(c->blocks, c->cls->cap * c->cls->size);
  UNROOT(c, CHUNK_SIZE);
  munmap(c, CHUNK_SIZE);
}

static bclass *class_of(lh_blocks *b, size_t size) {
  int i;
  bclass *k;
  for (i = 0; i < b->ncls; i++)
    if (b->cls[i].size == size) return &b->cls[i];
  if (b->ncls == MAX_CLASSES) return NULL;
  k = &b->cls[b->ncls++];
  k->size = size;
  k->cap = (unsigned)((CHUNK_SIZE - offsetof(chunk, free)) /
                      (size + sizeof(uint16_t)));
  while (header_size(k->cap) + k->cap * size > CHUNK_SIZE) k->cap--;
  k->avail = k->spare = NULL;
  return k;
}

void *lh_block_alloc(lh_ctx *ctx, size_t size) {
  lh_blocks *b = ctx->blocks;
  bclass *k;
  chunk *c;
  unsigned char *p;
  size = (size + 7) & ~(size_t)7;
  if (size > MAX_BLOCK) return malloc(size);
  if (b == NULL) {
    b = (lh_blocks *)calloc(1, sizeof(lh_blocks));
    if (b == NULL) return NULL;
    ctx->blocks = b;
  }
  k = class_of(b, size);
  if (k == NULL) return malloc(size);
  c = k->avail;
  if (c == NULL) {
    c = k->spare;
    k->spare = NULL;
    if (c == NULL && (c = chunk_new(b, k)) == NULL) return malloc(size);
    avail_push(c);
  }
  if (c->nfree > 0) p = c->blocks + (size_t)c->free[--c->nfree] * size;
  else p = c->blocks + (size_t)c->nfresh++ * size;
  if (USED(c) == k->cap) avail_unlink(c);
  UNPOISON(p, size);
  return p;
}

void lh_block_free(lh_ctx *ctx, void *p) {
  lh_blocks *b = ctx->blocks;
  chunk *c;
  bclass *k;
  if (p == NULL) return;
  c = chunk_of(b, p);
  if (c == NULL) {
    free(p);
    return;
  }
  k = c->cls;
  if (USED(c) == k->cap) avail_push(c); /* it was full */
  c->free[c->nfree++] =
      (uint16_t)((size_t)((unsigned char *)p - c->blocks) / k->size);
  POISON(p, k->size);
  if (USED(c) > 0) return;
  /* empty: kept as the class's spare (a server of few connections makes
  ** and frees a block each: no map and unmap each time), else unmapped */
  avail_unlink(c);
  if (k->spare == NULL) {
    k->spare = c;
  } else {
    chunk_drop(b, c);
  }
}

void lh_blocks_stats(lh_ctx *ctx, size_t *chunks, size_t *used) {
  lh_blocks *b = ctx->blocks;
  size_t i;
  *chunks = *used = 0;
  if (b == NULL) return;
  *chunks = b->nchunks;
  for (i = 0; i < b->nchunks; i++) *used += USED(b->chunks[i]);
}

void lh_blocks_close(lh_ctx *ctx) {
  lh_blocks *b = ctx->blocks;
  size_t used = 0;
  if (b == NULL) return;
  while (b->nchunks > 0) {
    chunk *c = b->chunks[b->nchunks - 1];
    used += USED(c);
    chunk_drop(b, c);
  }
  free(b->chunks);
  free(b);
  ctx->blocks = NULL;
  if (UNDER_ASAN && used > 0) {
    /* (malloc'd, LeakSanitizer would have said so) */
    fprintf(stderr, "luahost: %zu handle block(s) never freed (a leak)\n",
            used);
    abort();
  }
}

#else /* no mmap: malloc's */

void *lh_block_alloc(lh_ctx *ctx, size_t size) {
  (void)ctx;
  return malloc(size);
}

void lh_block_free(lh_ctx *ctx, void *p) {
  (void)ctx;
  free(p);
}

void lh_blocks_stats(lh_ctx *ctx, size_t *chunks, size_t *used) {
  (void)ctx;
  *chunks = *used = 0;
}

void lh_blocks_close(lh_ctx *ctx) { (void)ctx; }

#endif
