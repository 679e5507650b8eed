/*
** blocks.h: the blocks of net's handles, in chunks of their own that go
** back to the kernel when they empty (blocks.c).
** See Copyright Notice in README.md
*/
#ifndef LH_BLOCKS_H
#define LH_BLOCKS_H

#include <stddef.h>

#include "common.h"

typedef struct lh_blocks lh_blocks;

/* A block of size bytes (not zeroed), or NULL: out of memory. */
void *lh_block_alloc(lh_ctx *ctx, size_t size);
/* Free a block of lh_block_alloc (one it took from malloc too). */
void lh_block_free(lh_ctx *ctx, void *p);
/* How many chunks are mapped, and how many of their blocks are in use. */
void lh_blocks_stats(lh_ctx *ctx, size_t *chunks, size_t *used);
/* At exit, after lua_close: every chunk unmapped. */
void lh_blocks_close(lh_ctx *ctx);

#endif
